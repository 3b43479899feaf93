"""Compare two `cnsvol run` results folders byte for byte, or run the demo cohort with two
versions of cnsvol and compare what they write.

    python tools/compare_results.py folders A_DIR B_DIR
    python tools/compare_results.py demo REF [--other REF2]

``folders``: every file in either folder is compared, except ``provenance.json`` and
``run.log`` (they hold the clock, the command line and the machine) and the stored
per-subject results under ``.cnsvol/`` (an internal cache whose format is versioned
separately). In ``report.html`` the parts that come from provenance (the run's date and
version line, the Provenance section) are removed before comparing. Exit code 0 when the
folders agree, 1 otherwise, with every difference listed.

``demo``: checks out ``REF`` (a commit, tag or branch) into a temporary git worktree, installs
it into a temporary virtual environment, and runs the bundled demo cohort with it and with the
working tree (or with ``--other REF2``), both on one copy of ``fixtures/demo`` so that the
paths written into the tables are the same; then compares the two folders as above.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

IGNORED = {"provenance.json", "run.log"}
IGNORED_DIRS = {".cnsvol"}
ROOT = Path(__file__).resolve().parents[1]

_HEADER_LINE = re.compile(r"<p class=\"muted\">cnsvol [^<]*; run of [^<]*?\. ")
_PROVENANCE = re.compile(r"<section id=\"provenance\">.*?</section>", re.S)


def _files(folder: Path) -> set[str]:
    out = set()
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] not in IGNORED_DIRS and rel.name not in IGNORED:
            out.add(rel.as_posix())
    return out


def _normalised_report(data: bytes) -> bytes:
    text = data.decode("utf-8")
    text = _HEADER_LINE.sub('<p class="muted">', text)
    text = _PROVENANCE.sub("<section id=\"provenance\"></section>", text)
    return text.encode("utf-8")


def compare_folders(a: Path, b: Path) -> list[str]:
    """Differences between two results folders (empty when they agree)."""
    problems = []
    fa, fb = _files(a), _files(b)
    problems += [f"only in {a}: {name}" for name in sorted(fa - fb)]
    problems += [f"only in {b}: {name}" for name in sorted(fb - fa)]
    for name in sorted(fa & fb):
        da, db = (a / name).read_bytes(), (b / name).read_bytes()
        if name == "report.html":
            da, db = _normalised_report(da), _normalised_report(db)
        if da == db:
            continue
        problems.append(f"differs: {name} ({len(da)} vs {len(db)} bytes)")
        if name.endswith((".csv", ".json", ".html")):
            diff = difflib.unified_diff(
                da.decode("utf-8", "replace").splitlines(),
                db.decode("utf-8", "replace").splitlines(), lineterm="", n=0)
            problems += ["    " + line[:200] for line in list(diff)[2:12]]
    return problems


def _run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, **kw)


def _install(source: Path, venv: Path) -> Path:
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                          str(source)], capture_output=True, text=True)
    if pip.returncode:
        raise SystemExit(f"installing {source} failed:\n{pip.stderr}")
    return venv / "bin" / "cnsvol"


def _demo_run(cnsvol: Path, demo: Path, out: Path) -> None:
    cmd = [str(cnsvol), "run", str(demo / "manifest.csv"), "--pfs", str(demo / "pfs.csv"),
           "--out", str(out), "--quiet"]
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    if code not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} exited {code}")


def demo(ref: str, other: str | None) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cnsvol-compare-") as tmp:
        work = Path(tmp)
        demo_dir = work / "demo"
        shutil.copytree(ROOT / "fixtures" / "demo", demo_dir)
        sources = []
        for i, r in enumerate((ref, other)):
            if r is None:
                sources.append(ROOT)
                continue
            tree = work / f"tree{i}"
            _run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), r],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sources.append(tree)
        try:
            outs = []
            for i, source in enumerate(sources):
                cnsvol = _install(source, work / f"venv{i}")
                out = work / f"out{i}"
                _demo_run(cnsvol, demo_dir, out)
                outs.append(out)
            return compare_folders(outs[0], outs[1])
        finally:
            for i, source in enumerate(sources):
                if source != ROOT:
                    _run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(source)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("folders", help="compare two results folders")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p = sub.add_parser("demo", help="run the demo cohort with two versions and compare")
    p.add_argument("ref", help="git commit, tag or branch of the first version")
    p.add_argument("--other", default=None,
                   help="git ref of the second version (default: the working tree)")
    args = parser.parse_args(argv)
    problems = (compare_folders(args.a, args.b) if args.mode == "folders"
                else demo(args.ref, args.other))
    for line in problems:
        print(line)
    print("identical" if not problems else f"{sum(not p.startswith(' ') for p in problems)} "
          "difference(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
