"""Hostile input end to end: the corpus of fixtures/make_hostile.py run as one cohort through the
real command line, in a subprocess, next to a run of its good subjects alone.

What bad input may cost: a bad mask file, an odd id, duplicate manifest rows or bytes that are
not UTF-8 in one subject's cells cost that subject (``failed`` with a message naming the file,
the problem and the fix); a PFS row problem costs that subject its PFS; nothing costs any other
subject a byte of its results. A manifest that cannot be trusted as a whole is refused (exit 1).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnsvol.report.names import safe_filename
from helpers import read_text_table as read_output_table
from cnsvol_cli.main import EXIT_INPUT_ERROR, EXIT_PARTIAL, main

pytestmark = pytest.mark.slow  # end-to-end runs

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("subjects.csv", "timepoints.csv", "tracks.csv", "lesions.csv")
PEAK_LIMIT_BYTES = int(1.5 * 1024**3)  # the 10^12-voxel header claims ~931 GiB

# ``cnsvol`` in a fresh interpreter; at exit it records its peak resident memory (VmHWM) and
# that of its largest worker process (RUSAGE_CHILDREN, once the workers are joined).
_RUNNER = """
import json, os, resource, sys
from cnsvol_cli.main import main
code = main(sys.argv[1:])
peak = {"self_kb": None, "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}
try:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                peak["self_kb"] = int(line.split()[1])
except OSError:
    pass
with open(os.environ["CNSVOL_TEST_PEAK"], "w") as fh:
    json.dump(peak, fh)
sys.exit(code)
"""


def _make_hostile():
    """fixtures/make_hostile.py, imported from its file (it imports make_fixtures beside it)."""
    here = str(ROOT / "fixtures")
    sys.path.insert(0, here)
    try:
        spec = importlib.util.spec_from_file_location(
            "make_hostile", ROOT / "fixtures" / "make_hostile.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.path.remove(here)
    return module.make_hostile


def _start(args: list[str], peak_file: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["CNSVOL_TEST_PEAK"] = str(peak_file)
    return subprocess.Popen([sys.executable, "-c", _RUNNER, "run", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, peak_file: Path) -> dict:
    out, err = proc.communicate(timeout=600)
    return {"code": proc.returncode, "stdout": out.decode("utf-8", "replace"),
            "stderr": err.decode("utf-8", "replace"),
            "peak": json.loads(peak_file.read_text()) if peak_file.is_file() else None}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The corpus, its run as one cohort (2 workers) and the good subjects' run alone (1)."""
    root = tmp_path_factory.mktemp("hostile")
    corpus = _make_hostile()(root / "corpus")
    secret = Path(corpus["manifest"]).parent / "masks" / "H_NO_PERMISSION" / "v1_secret.nii.gz"
    try:
        started = time.perf_counter()
        procs = {
            "all": _start([str(corpus["manifest"]), "--pfs", str(corpus["pfs"]), "--out",
                           str(root / "all"), "--jobs", "2", "--quiet"], root / "peak_all.json"),
            "good": _start([str(corpus["good_manifest"]), "--pfs", str(corpus["good_pfs"]),
                            "--out", str(root / "good"), "--jobs", "1", "--quiet"],
                           root / "peak_good.json"),
        }
        done = {k: _finish(p, root / f"peak_{k}.json") for k, p in procs.items()}
        seconds = time.perf_counter() - started
    finally:
        secret.chmod(0o644)  # so that the temporary folder can be cleaned up by anyone
    return {"corpus": corpus, "all": done["all"], "good": done["good"], "seconds": seconds,
            "out": root / "all", "good_out": root / "good"}


def _subjects(out: Path) -> dict[str, dict[str, str]]:
    return {r["subject_id"]: r for r in read_output_table(out / "subjects.csv").to_dict("records")}


# --------------------------------------------------------------------------------------------
# the cohort run


def test_the_run_finishes_with_exit_3_and_lists_every_failure(runs):
    res = runs["all"]
    assert res["code"] == EXIT_PARTIAL, res["stderr"][-3000:]
    assert runs["good"]["code"] == 0, runs["good"]["stderr"][-3000:]
    assert "Traceback" not in res["stderr"]
    # no line that does not say which file it is about (nibabel logs its header repairs)
    for noise in ("sizeof_hdr", "vox offset", "not attempting fix", "setting to minimum"):
        assert noise not in res["stderr"], res["stderr"][-3000:]
    failed = [c for c in runs["corpus"]["cases"].values() if c["outcome"] == "failed"]
    for c in failed:
        assert f"failed {c['subject_id']}: " in res["stdout"], c
    n_failed = len(failed)
    n_all = len(_subjects(runs["out"]))
    assert f"{n_all} subject(s), {n_all - n_failed} ok, {n_failed} failed" in res["stdout"]


def test_every_subject_is_reported_once_with_its_expected_outcome(runs):
    corpus, out = runs["corpus"], runs["out"]
    subjects = _subjects(out)
    expected = {c["subject_id"] for c in corpus["cases"].values()} | set(corpus["good_ids"])
    assert set(subjects) == expected
    timepoints = read_output_table(out / "timepoints.csv").to_dict("records")
    for name, c in corpus["cases"].items():
        row = subjects[c["subject_id"]]
        assert row["status"] == c["outcome"], (name, row["error"])
        if c["outcome"] == "failed":
            assert row["error"].strip(), name
            for word in c["words"]:
                assert word in row["error"], (name, word, row["error"])
            assert row["best_response"] == "" and int(row["n_timepoints"]) >= 2, name
            continue
        assert row["error"] == "", (name, row["error"])
        for word in c["words"]:
            key, value = word.split("=")
            if key == "lesion_count":
                counts = [t["lesion_count"] for t in timepoints
                          if t["subject_id"] == c["subject_id"]]
                assert value in counts, (name, counts)
            else:
                assert row[key] == value, (name, key, row[key])
    for sid in corpus["good_ids"]:
        assert subjects[sid]["status"] == "ok" and subjects[sid]["has_pfs"] == "True", sid
    cohort = json.loads((out / "cohort.json").read_text())
    failed = sorted(c["subject_id"] for c in corpus["cases"].values() if c["outcome"] == "failed")
    assert cohort["failed_ids"] == failed and cohort["n_failed"] == len(failed)
    provenance = json.loads((out / "provenance.json").read_text())
    assert sorted(provenance["subject_errors"]) == failed


def test_good_subjects_get_byte_identical_rows_whatever_else_is_in_the_cohort(runs):
    good = set(runs["corpus"]["good_ids"])
    for name in TABLES:
        mixed = _rows_by_subject(runs["out"] / name)
        alone = _rows_by_subject(runs["good_out"] / name)
        assert set(alone) == good if name != "tracks.csv" else set(alone) <= good
        assert (runs["out"] / name).read_text().splitlines()[0] == \
            (runs["good_out"] / name).read_text().splitlines()[0]
        for sid in good:
            assert mixed.get(sid) == alone.get(sid), (name, sid)


def _rows_by_subject(path: Path) -> dict[str, list[str]]:
    """Each data record of a CSV, verbatim (a quoted cell may span lines), grouped by its
    (unguarded) subject id."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    rows: dict[str, list[str]] = {}
    reader = csv.reader(io.StringIO("\n".join(lines)))
    start = 0
    for rec in reader:
        rows.setdefault(_unguard(rec[0]), []).append("\n".join(lines[start:reader.line_num]))
        start = reader.line_num
    return rows


def _unguard(cell: str) -> str:
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def test_no_csv_cell_can_run_as_a_spreadsheet_formula(runs):
    seen_guarded = set()
    for path in sorted(runs["out"].glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            for rec in csv.reader(fh):
                for cell in rec:
                    if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                        assert _NUMBER.fullmatch(cell), (path.name, cell)
                    if cell[:1] == "'":
                        seen_guarded.add(cell)
    # RFC 4180: a cell with a comma or a quote is quoted, its quotes doubled
    raw = (runs["out"] / "subjects.csv").read_text(encoding="utf-8")
    assert '\n"O\'Brien, ""Jr"" $5",ok,' in raw
    assert '\n"\'=HYPERLINK(""http://example.invalid"",""click"")",ok,' in raw
    odd = {i for i in runs["corpus"]["good_ids"] if i[0] in "=+-@"}
    assert {c[1:] for c in seen_guarded} >= odd  # the ids are there, guarded, not dropped
    # and they read back exactly as written in the manifest
    assert set(_subjects(runs["out"])) >= set(runs["corpus"]["good_ids"])


def test_report_escapes_ids_and_qc_file_names_are_safe(runs):
    out = runs["out"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()  # the report has no script of its own
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "O&#x27;Brien, &quot;Jr&quot; $5" in html
    subjects = _subjects(out)
    qc = sorted(p.name for p in (out / "figures" / "qc").iterdir())
    for name in qc:
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.png", name), name
    ok = [sid for sid, r in subjects.items() if r["status"] == "ok"]
    assert qc == sorted(safe_filename(sid) + ".png" for sid in ok)
    assert len(set(qc)) == len(ok)
    for sid in ok:  # every link in the report points at its picture
        assert f'href="figures/qc/{safe_filename(sid)}.png"' in html, sid


def test_pfs_row_problems_cost_those_subjects_their_pfs_and_nothing_else(runs):
    corpus, out = runs["corpus"], runs["out"]
    subjects = _subjects(out)
    cohort = json.loads((out / "cohort.json").read_text())
    aside = corpus["pfs_set_aside"]
    assert set(aside) <= set(cohort["ids_without_pfs"])
    notes = " ".join(cohort["pfs_table"]["notes"])
    for sid, words in aside.items():
        assert subjects[sid]["status"] == "ok" and subjects[sid]["has_pfs"] == "False"
        assert subjects[sid]["pfs_days"] == "" and subjects[sid]["pfs_event"] == ""
        for word in words:
            assert word in notes, (word, notes)
    lines = Path(corpus["pfs"]).read_text(encoding="utf-8").splitlines()
    dup_rows = ", ".join(str(n) for n, line in enumerate(lines, 1) if line.startswith("P_DUP"))
    neg_row = next(n for n, line in enumerate(lines, 1) if line.startswith("P_NEGATIVE"))
    assert f"P_DUPLICATE (rows {dup_rows})" in notes and f"(row {neg_row})" in notes
    assert "pfs.csv" in notes and "Fix" in notes
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"P_DUPLICATE (rows {dup_rows})" in html
    # the PFS statistics use exactly the evaluated subjects that have a usable PFS row
    with_pfs = [r for r in subjects.values() if r["status"] == "ok" and r["has_pfs"] == "True"
                and r["responder_20pct"] in ("True", "False")]
    assert cohort["pfs"]["n"] == len(with_pfs)
    assert cohort["pfs"]["events"] == sum(r["pfs_event"] == "True" for r in with_pfs)
    for sid in aside:
        assert sid in runs["all"]["stdout"]  # "ids without PFS: ..." on screen


@pytest.mark.skipif(not Path("/proc/self/status").is_file(),
                    reason="peak memory is read from /proc/self/status (Linux only)")
def test_peak_memory_is_far_below_what_the_huge_header_claims(runs):
    peak = runs["all"]["peak"]
    assert peak is not None and peak["self_kb"] is not None
    worst = max(peak["self_kb"], peak["children_kb"]) * 1024
    assert worst < PEAK_LIMIT_BYTES, f"peak resident memory {worst / 1024**2:.0f} MiB"


def test_the_corpus_runs_quickly(runs):
    assert runs["seconds"] < 60, runs["seconds"]


# --------------------------------------------------------------------------------------------
# manifests refused as a whole


@pytest.fixture(scope="module")
def corpus(runs):
    return runs["corpus"]


@pytest.mark.parametrize("case", ["missing_mask_path", "utf16", "latin1_header",
                                  "every_subject_bad", "empty_id"])
def test_a_manifest_that_cannot_be_trusted_is_refused_with_exit_1(corpus, case, tmp_path, capsys):
    spec = corpus["whole_file"][case]
    code = main(["run", str(spec["manifest"]), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR, err
    assert err.startswith("cnsvol run: error: ")
    for word in spec["words"]:
        assert word in err, (case, word, err)
    assert "Fix" in err
    assert not (tmp_path / "out" / "subjects.csv").exists()  # nothing was run


# --------------------------------------------------------------------------------------------
# the unreadable-file path, whoever runs the tests


def test_a_file_the_os_refuses_to_read_costs_its_subject(corpus, tmp_path, monkeypatch, capsys):
    """As root a mode-000 file is readable, so the operating system's answer is given here:
    ``os.access`` says no for that one file (the serial executor runs in this process)."""
    folder = Path(corpus["manifest"]).parent
    secret = folder / "masks" / "H_NO_PERMISSION" / "v1_secret.nii.gz"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "subject_id,timepoint,days_from_baseline,mask_path\n"
        f"G01,baseline,0,{folder}/masks/G01/v0.nii.gz\nG01,week8,56,{folder}/masks/G01/v1.nii.gz\n"
        f"H_NO_PERMISSION,baseline,0,{folder}/masks/H_NO_PERMISSION/v0.nii.gz\n"
        f"H_NO_PERMISSION,week8,56,{secret}\n"
    )
    real_access = os.access

    def access(path, mode, *args, **kw):
        if Path(path) == secret and mode & os.R_OK:
            return False
        return real_access(path, mode, *args, **kw)

    monkeypatch.setattr(os, "access", access)
    out = tmp_path / "out"
    code = main(["run", str(manifest), "--out", str(out), "--jobs", "1", "--quiet", "--no-qc"])
    capsys.readouterr()
    assert code == EXIT_PARTIAL
    subjects = _subjects(out)
    assert subjects["G01"]["status"] == "ok"
    row = subjects["H_NO_PERMISSION"]
    assert row["status"] == "failed"
    for word in ("v1_secret.nii.gz", "no permission", "chmod +r"):
        assert word in row["error"], row["error"]


def test_an_id_with_a_newline_cannot_forge_a_run_log_line(runs):
    lines = (runs["out"] / "run.log").read_text(encoding="utf-8").splitlines()
    assert not any(line.startswith("FORGED") for line in lines)
    mine = [line for line in lines if "H_ID\\nFORGED\\tline" in line]
    assert len(mine) == 1 and mine[0].split("\t")[2] == "ok", mine
    assert lines[-1].endswith("\trun ended")
