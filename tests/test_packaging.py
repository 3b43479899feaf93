"""The package's shape: every subpackage installed with its data, lazy exports that resolve, and
no exported name shadowed by a submodule of the same name."""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path

import pytest

import cnsvol

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cnsvol"


def _packages() -> list[str]:
    names = ["cnsvol"]
    for info in pkgutil.walk_packages(cnsvol.__path__, "cnsvol."):
        if info.ispkg:
            names.append(info.name)
    return sorted(names)


def test_every_package_folder_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {"cnsvol" + "".join(f".{p}" for p in d.relative_to(SRC).parts)
               for d in [SRC, *SRC.rglob("*")] if (d / "__init__.py").is_file()}
    assert folders <= listed, sorted(folders - listed)
    data = config["tool"]["setuptools"]["package-data"]
    assert "presets/*.toml" in data["cnsvol.response"]
    assert "templates/*" in data["cnsvol.report"]
    assert sorted(p.name for p in (SRC / "response" / "presets").glob("*.toml")) == [
        "lin2009.toml", "rano-bm-vol.toml", "rano2-vol.toml", "tbcrc022.toml"]


@pytest.mark.parametrize("package", _packages())
def test_lazy_exports_resolve_and_are_not_shadowed_by_submodules(package):
    """Each name a package exports is importable, and is not also the name of one of its
    submodules (importing that submodule would replace the exported function by the module)."""
    module = importlib.import_module(package)
    submodules = {info.name for info in pkgutil.iter_modules(getattr(module, "__path__", []))}
    exported = [n for n in getattr(module, "__all__", []) if n != "__version__"]
    assert exported, package
    clash = sorted(set(exported) & submodules)
    assert not clash, f"{package}: {clash} are both exports and submodules"
    for name in exported:
        assert getattr(module, name) is not None, (package, name)
    assert set(exported) <= set(dir(module))


def test_presets_cite_their_source():
    for path in (SRC / "response" / "presets").glob("*.toml"):
        text = path.read_text(encoding="utf-8")
        comments = [line for line in text.splitlines() if line.startswith("#")]
        assert len(comments) >= 3, path.name
        assert any(word in text for word in ("Lancet Oncol", "Clin Cancer Res", "J Clin Oncol"))
        name = path.stem
        assert cnsvol.PRESETS[name].source and cnsvol.PRESETS[name].name == name
