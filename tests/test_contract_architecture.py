"""The code's shape, checked statically by parsing the sources with
``ast`` (nothing is imported): the pipeline stages are subpackages, the import graph between
cnsvol modules has no cycle and flows one way (io -> lesions -> tracking -> response -> cohort
-> report -> batch), modules and functions stay small, the CLI has one module per command, and
a few practices DESIGN.md / STYLE.md name (one boolean/event vocabulary, no swallowed
exceptions, no printing in the library, image readers only at the I/O boundary).

Limits carry slack over the design's "~400 lines" / "~80 lines": 420 and 85.
"""

from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cnsvol"
CLI = ROOT / "cli"

STAGES = ("io", "lesions", "tracking", "response", "cohort", "report", "batch")
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 85
CLI_COMMANDS = ("volumes", "compare", "track", "run", "report", "manifest")


# --------------------------------------------------------------------------- the module graph

def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


@lru_cache(maxsize=None)
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.Module, *, runtime_only: bool):
    """Every Import/ImportFrom anywhere in the tree (function-level included); with
    runtime_only, those under ``if TYPE_CHECKING:`` are left out."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _known_prefix(name: str, known: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imported_modules(name: str, path: Path, *, runtime_only: bool) -> set[str]:
    """The cnsvol modules that module ``name`` (file ``path``) imports."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in import_nodes(parsed(path), runtime_only=runtime_only):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "cnsvol" or alias.name.startswith("cnsvol."):
                    hit = _known_prefix(alias.name, known)
                    if hit:
                        targets.add(hit)
            continue
        if node.level:
            base_parts = package.split(".")
            if node.level > 1:
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts)
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        if not (source == "cnsvol" or source.startswith("cnsvol.")):
            continue
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            if sub in known:
                targets.add(sub)
            else:
                hit = _known_prefix(source, known)
                if hit:
                    targets.add(hit)
    # importing cnsvol.a.b also runs cnsvol.a/__init__.py first: an edge to every parent
    # package that is not the importer's own package or one of its ancestors (nor the root)
    for target in list(targets):
        parts = target.split(".")
        for cut in range(2, len(parts)):
            parent = ".".join(parts[:cut])
            if parent in known and not (name == parent or name.startswith(parent + ".")):
                targets.add(parent)
    targets.discard(name)
    return targets


@lru_cache(maxsize=None)
def graph(runtime_only: bool) -> dict[str, frozenset[str]]:
    return {name: frozenset(imported_modules(name, path, runtime_only=runtime_only))
            for name, path in modules().items()}


def strongly_connected(g: dict[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in g:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def forbidden_for(stage: str) -> set[str]:
    return set(STAGES[STAGES.index(stage) + 1:])


def python_files() -> list[Path]:
    return sorted(SRC.rglob("*.py")) + sorted(CLI.rglob("*.py"))


# --------------------------------------------------------------------------- the helpers themselves

def test_the_graph_builder_resolves_relative_and_function_level_imports(tmp_path, monkeypatch):
    """The checks below are only as good as the import resolution: try it on a toy package."""
    pkg = tmp_path / "cnsvol"
    for sub in ("io", "batch", "report"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .io import read\n")
    (pkg / "io" / "__init__.py").write_text("from .read import f\n")
    (pkg / "io" / "read.py").write_text(
        "def f():\n    from ..batch import run\n    return run\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cnsvol.report import html\n")
    (pkg / "batch" / "__init__.py").write_text("")
    (pkg / "batch" / "run.py").write_text("import cnsvol.io.read\nfrom .. import io\n")
    (pkg / "report" / "__init__.py").write_text("")
    (pkg / "report" / "html.py").write_text("import os\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", pkg)
    modules.cache_clear()
    graph.cache_clear()
    parsed.cache_clear()
    try:
        g = graph(True)
        assert g["cnsvol"] == {"cnsvol.io.read", "cnsvol.io"}
        assert g["cnsvol.io"] == {"cnsvol.io.read"}
        # function level, relative, with the implicit cnsvol/batch/__init__.py
        assert g["cnsvol.io.read"] == {"cnsvol.batch.run", "cnsvol.batch"}
        assert graph(False)["cnsvol.io.read"] == {"cnsvol.batch.run", "cnsvol.batch",
                                                  "cnsvol.report.html", "cnsvol.report"}
        assert g["cnsvol.batch.run"] == {"cnsvol.io.read", "cnsvol.io"}
        assert g["cnsvol.report.html"] == set()
        assert strongly_connected(g) == [["cnsvol.batch.run", "cnsvol.io", "cnsvol.io.read"]]
        assert strongly_connected({"a": frozenset({"b"}), "b": frozenset()}) == []
        assert direct_violations(g) == ["cnsvol.io.read -> cnsvol.batch",
                                        "cnsvol.io.read -> cnsvol.batch.run"]
        assert direct_violations({"cnsvol.batch.run": frozenset({"cnsvol.io.read"})}) == []
    finally:
        parsed.cache_clear()
        modules.cache_clear()
        graph.cache_clear()


# --------------------------------------------------------------------------- stages as packages

@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_a_subpackage(stage):
    assert (SRC / stage / "__init__.py").is_file(), f"src/cnsvol/{stage}/__init__.py missing"
    assert not (SRC / f"{stage}.py").exists(), f"a flat src/cnsvol/{stage}.py shadows the package"


def test_no_import_cycle_between_cnsvol_modules():
    g = graph(True)
    assert len(g) > 10  # the package really was read
    cycles = strongly_connected(g)
    assert not cycles, f"import cycles: {cycles}"


def direct_violations(g: dict[str, frozenset[str]]) -> list[str]:
    found = []
    for module, targets in g.items():
        stage = stage_of(module)
        if stage is None:
            continue
        found += [f"{module} -> {t}" for t in sorted(targets) if stage_of(t) in forbidden_for(stage)]
    return found


def test_stages_import_only_earlier_stages():
    # annotations-only (TYPE_CHECKING) imports count too: they are dependencies
    violations = direct_violations(graph(False))
    assert not violations, violations


def test_stages_do_not_reach_later_stages_through_other_modules():
    """One way also through shared top-level modules (or the cnsvol facade itself)."""
    g = graph(True)
    violations = []
    for module in g:
        stage = stage_of(module)
        if stage is None:
            continue
        seen, todo = set(), [module]
        while todo:
            current = todo.pop()
            for target in g.get(current, ()):
                if target in seen:
                    continue
                seen.add(target)
                if stage_of(target) in forbidden_for(stage):
                    violations.append(f"{module} ~> {target} (via {current})")
                else:
                    todo.append(target)
    assert not violations, sorted(set(violations))[:20]


# --------------------------------------------------------------------------- sizes

def test_no_module_over_the_line_limit():
    long = {}
    for path in python_files():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES:
            long[str(path.relative_to(ROOT))] = n
    assert not long, long


def test_no_function_over_the_line_limit():
    long = {}
    for path in python_files():
        for node in ast.walk(parsed(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = n
    assert not long, long


def test_functions_with_many_parameters_are_typed():
    """No `_finish` with 14 untyped parameters: a function of more than six parameters
    annotates every one, and none takes more than twelve."""
    bad = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(parsed(path)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            args = node.args
            params = [a for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)
                      if a.arg not in ("self", "cls")]
            untyped = [a.arg for a in params if a.annotation is None]
            if len(params) > 12 or (len(params) > 6 and untyped):
                bad[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = (len(params), untyped)
    assert not bad, bad


# --------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_cli_has_one_module_per_command(command):
    stems = [p.stem for p in CLI.rglob("*.py")]
    assert any(command in stem for stem in stems), (command, sorted(stems))


def test_cli_command_modules_are_distinct():
    """Not one module for several commands: each command gets a module of its own (a
    matching of commands to distinct files whose names contain them)."""
    files = sorted({p.relative_to(CLI).as_posix() for p in CLI.rglob("*.py")})
    options = {c: [f for f in files if c in Path(f).stem] for c in CLI_COMMANDS}
    owner: dict[str, str] = {}

    def assign(command: str, seen: set[str]) -> bool:
        for f in options[command]:
            if f in seen:
                continue
            seen.add(f)
            if f not in owner or assign(owner[f], seen):
                owner[f] = command
                return True
        return False

    unmatched = [c for c in CLI_COMMANDS if not assign(c, set())]
    assert not unmatched, (unmatched, options)


# --------------------------------------------------------------------------- practices

_BOOL_WORDS = {"true", "yes"}
_EVENT_WORDS = {"censored", "alive"}


def _literal_strings(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
        elts = node.elts
    elif isinstance(node, ast.Dict):
        elts = [k for k in node.keys if k is not None]
    else:
        return set()
    return {e.value.lower() for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}


def test_one_boolean_and_event_vocabulary():
    """The words read as true/false or event/censored are listed in one module only."""
    holders = set()
    for path in python_files():
        for node in ast.walk(parsed(path)):
            words = _literal_strings(node)
            if _BOOL_WORDS <= words or _EVENT_WORDS <= words:
                holders.add(str(path.relative_to(ROOT)))
    assert len(holders) <= 1, sorted(holders)


def _swallows(handler: ast.ExceptHandler) -> bool:
    broad = handler.type is None or (
        isinstance(handler.type, ast.Name) and handler.type.id in ("Exception", "BaseException"))
    trivial = all(isinstance(s, (ast.Pass, ast.Continue)) or (
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in handler.body)
    return broad and trivial


def test_no_bare_except_and_no_swallowed_exceptions():
    bad = []
    for path in python_files():
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ExceptHandler) and (node.type is None or _swallows(node)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


def test_library_never_prints():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


REGISTRATION_ENGINE = SRC / "tracking" / "_registration_sitk.py"


def test_image_readers_are_used_only_at_the_io_boundary():
    """nibabel / SimpleITK (orientation, axis order) only in cnsvol/io: figures and response
    no longer read images with their own geometry. The one exception is the registration
    engine, which needs SimpleITK's registration framework, on images cnsvol.io read and
    converted (cnsvol.io.itk.to_sitk): it reads no file itself."""
    text = REGISTRATION_ENGINE.read_text(encoding="utf-8")
    assert "ReadImage" not in text and "ImageSeriesReader" not in text and "nibabel" not in text
    bad = []
    for path in python_files():
        if path.is_relative_to(SRC / "io") or path == REGISTRATION_ENGINE:
            continue
        for node in import_nodes(parsed(path), runtime_only=False):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in ("nibabel", "SimpleITK"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not bad, bad


# --------------------------------------------------------------------------- deliverables

def _requirement_name(spec: str) -> str:
    import re

    return re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0).lower().replace("_", "-")


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_test_extra_reuses_the_other_extras():
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    test = extras["test"]
    others = {_requirement_name(r) for name, reqs in extras.items() if name != "test" for r in reqs}
    repeated = sorted({_requirement_name(r) for r in test} & others)
    assert not repeated, f"the test extra repeats {repeated} instead of reusing the extras"
    own = _requirement_name(project["name"])
    assert any(_requirement_name(r) == own and "[" in r for r in test), test


def test_scikit_image_is_core_only_if_the_library_uses_it():
    deps = {_requirement_name(r) for r in _pyproject()["project"]["dependencies"]}
    users = []
    for path in sorted(SRC.rglob("*.py")):
        for node in import_nodes(parsed(path), runtime_only=False):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.split(".")[0] == "skimage" for n in names):
                users.append(str(path.relative_to(ROOT)))
    if "scikit-image" in deps:
        assert users, "scikit-image is a core dependency but no library module uses it"
    else:
        extras = {_requirement_name(r) for reqs in _pyproject()["project"]["optional-dependencies"].values()
                  for r in reqs}
        assert "scikit-image" in extras or not users, users


def _size_mib(cell: str) -> float:
    value, unit = cell.strip().split()[:2]
    return float(value.replace(",", "")) * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}[unit]


def test_cohort_memory_is_measured_up_to_20000_subjects_and_flat():
    """benchmarks/COHORT_MEMORY.md: a table with subjects and the run process's peak; the
    largest cohort is at least 20,000 subjects and the run process grows by under 5 KiB per
    subject (room for what a run must hold per subject: its plan, its key, its hashes, and the
    cohort-level outputs that have a row per subject)."""
    text = (ROOT / "benchmarks" / "COHORT_MEMORY.md").read_text(encoding="utf-8")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.strip().startswith("|")]
    header = next(r for r in rows if any("subjects" in c.lower() for c in r))
    n_col = next(i for i, c in enumerate(header) if c.lower().startswith("subjects"))
    peak_col = next(i for i, c in enumerate(header) if "run process" in c.lower())
    data = []
    for row in rows:
        cell = row[n_col].replace(",", "") if len(row) > n_col else ""
        if cell.isdigit():
            data.append((int(cell), _size_mib(row[peak_col])))
    assert data, "no measurements found"
    data.sort()
    (n0, m0), (n1, m1) = data[0], data[-1]
    assert n1 >= 20000
    kib_per_subject = (m1 - m0) * 1024 / (n1 - n0)
    assert kib_per_subject < 5.0, kib_per_subject
