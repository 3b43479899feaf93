"""Cohort runs at scale: executors give identical folders, a killed run resumes to the folder an
uninterrupted run writes, only what changed is recomputed, a dying worker costs one subject,
progress is shown as a bar on a terminal and as plain lines elsewhere."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnsvol_cli.main import EXIT_INPUT_ERROR, EXIT_PARTIAL, main

pytestmark = pytest.mark.slow  # end-to-end runs

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
N_DEMO = 30
# files that record when and how a run happened, not what it found
VARYING = {"provenance.json", "run.log"}


def demo_copy(tmp_path: Path) -> Path:
    """The demo cohort copied (manifest paths are relative, so the copy is self-contained)."""
    dst = tmp_path / "demo"
    shutil.copytree(DEMO, dst)
    return dst


def run_args(demo: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(demo / "manifest.csv"), "--out", str(out), "--pfs",
            str(demo / "pfs.csv"), "--quiet", *extra]


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of a results folder, the report without its provenance/date parts."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_dir() or rel in VARYING:
            continue
        data = path.read_bytes()
        if rel == "report.html":
            text = data.decode("utf-8")
            text = re.sub(r"<section[^>]*id=\"provenance\".*?</section>", "", text, flags=re.S)
            text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+0-9:]*", "<time>", text)
            data = text.encode("utf-8")
        files[rel] = data
    return files


def assert_same_folder(a: Path, b: Path) -> None:
    sa, sb = snapshot(a), snapshot(b)
    assert sorted(sa) == sorted(sb)
    different = [name for name in sa if sa[name] != sb[name]]
    assert not different, different


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """The demo cohort, uninterrupted, serial."""
    base = tmp_path_factory.mktemp("clean")
    demo = demo_copy(base)
    out = base / "out"
    assert main(run_args(demo, out, "--jobs", "1")) == EXIT_PARTIAL
    return demo, out


def test_report_snapshot_keeps_the_report_itself(clean_run):
    _, out = clean_run
    report = snapshot(out)["report.html"].decode()
    assert "S01" in report and "<time>" not in report.split("provenance")[0][:200]
    assert len(snapshot(out)) > 30  # tables, figures, QC pictures, stored results


def test_process_and_dask_executors_give_the_same_folder(clean_run, tmp_path):
    pytest.importorskip("distributed")
    demo, serial = clean_run
    # the same paths as the clean run (the tables hold mask paths)
    for extra, name in ((["--jobs", "2"], "process"), (["--dask-local", "2"], "dask")):
        out = serial.parent / f"out-{name}"
        assert main(run_args(demo, out, *extra)) == EXIT_PARTIAL
        assert_same_folder(serial, out)
        assert (out / ".cnsvol" / "subjects").is_dir()


def test_an_existing_dask_scheduler_gives_the_same_folder(clean_run):
    distributed = pytest.importorskip("distributed")
    import logging

    demo, serial = clean_run
    out = serial.parent / "out-scheduler"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        assert main(run_args(demo, out, "--scheduler", cluster.scheduler_address)) == EXIT_PARTIAL
    assert_same_folder(serial, out)
    import json

    assert "Dask (tcp://" in json.loads((out / "provenance.json").read_text())["executor"]


def _cnsvol(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.Popen([sys.executable, "-m", "cnsvol_cli.main", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stored(out: Path) -> int:
    folder = out / ".cnsvol" / "subjects"
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, N_DEMO // 2, N_DEMO], ids=["first", "half", "all"])
def test_sigkill_then_resume_gives_the_uninterrupted_folder(clean_run, kill_after):
    """SIGKILL once `kill_after` results are stored (with all stored, the kill lands while the
    tables, statistics and report are written), then the same command again."""
    demo, clean = clean_run
    out = clean.parent / f"out-killed-{kill_after}"
    shutil.rmtree(out, ignore_errors=True)
    proc = _cnsvol(run_args(demo, out, "--jobs", "2"))
    deadline = time.monotonic() + 120
    while _stored(out) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, as when the plug is pulled
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert main(run_args(demo, out, "--jobs", "2")) == EXIT_PARTIAL
    log = (out / "run.log").read_text()
    assert log.count("run started") == 2 and "from earlier runs" in log
    assert_same_folder(clean, out)
    assert not list(out.rglob(".*.tmp"))


def test_resume_recomputes_only_what_changed(tmp_path):
    demo = demo_copy(tmp_path)
    out = tmp_path / "out"
    from cnsvol.batch.run import RunConfig, run_cohort
    from cnsvol.response.criteria import get_criteria
    from cnsvol.cohort.manifest import read_manifest

    plans = read_manifest(demo / "manifest.csv")
    config = RunConfig(get_criteria("lin2009"), qc=False)
    first = run_cohort(plans, out, config, jobs=1)
    assert first.n_from_earlier_run == 0
    again = run_cohort(plans, out, config, jobs=1)
    assert again.n_from_earlier_run == N_DEMO
    # a stored result left empty (a power cut before the data reached the disk) or altered
    # is not trusted: computed again
    records = sorted((out / ".cnsvol" / "subjects").glob("*.json"))
    records[0].write_text("")
    records[1].write_text(records[1].read_text().replace('"store_key": "', '"store_key": "x'))
    before = (out / "lesions.csv").read_bytes()
    healed = run_cohort(plans, out, config, jobs=1)
    assert healed.n_from_earlier_run == N_DEMO - 2
    assert (out / "lesions.csv").read_bytes() == before
    # one subject's follow-up replaced by its baseline: only that subject is computed again
    s01 = sorted((demo / "masks" / "S01").glob("*.nii.gz"))
    shutil.copyfile(s01[0], s01[1])
    changed = run_cohort(plans, out, config, jobs=1)
    assert changed.n_from_earlier_run == N_DEMO - 1
    stored = {p.name for p in (out / ".cnsvol" / "subjects").iterdir()}
    assert len(stored) == N_DEMO  # the replaced result is pruned
    # other parameters: everything again; force: everything again
    other = run_cohort(plans, out, RunConfig(get_criteria("tbcrc022"), qc=False), jobs=1)
    assert other.n_from_earlier_run == 0
    forced = run_cohort(plans, out, RunConfig(get_criteria("tbcrc022"), qc=False), jobs=1,
                        force=True)
    assert forced.n_from_earlier_run == 0


def test_resume_with_force_from_the_command_line(clean_run, tmp_path, capsys):
    demo, clean = clean_run
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    assert main(run_args(demo, out, "--jobs", "1")) == EXIT_PARTIAL
    assert f"{N_DEMO} subject(s) taken from the earlier run" in capsys.readouterr().out
    assert main(run_args(demo, out, "--jobs", "1", "--force")) == EXIT_PARTIAL
    assert "taken from the earlier run" not in capsys.readouterr().out
    assert_same_folder(clean, out)


def _boom_on_s03(plan, config, qc_stem):  # replaces the evaluation in forked workers
    if plan.subject_id == "S03":
        os._exit(13)
    return _REAL_EVALUATE(plan, config, qc_stem)


_REAL_EVALUATE = None


def test_a_dying_worker_costs_one_subject(clean_run, tmp_path, monkeypatch):
    import multiprocessing

    if multiprocessing.get_start_method() != "fork":
        pytest.skip("needs forked workers to inherit the patched function")
    import cnsvol.batch.evaluate as batch
    from cnsvol import RunConfig, read_manifest, run_cohort
    from cnsvol.batch.executors import ProcessExecutor

    global _REAL_EVALUATE
    _REAL_EVALUATE = batch._evaluate
    monkeypatch.setattr(batch, "_evaluate", _boom_on_s03)
    demo, clean = clean_run
    plans = read_manifest(demo / "manifest.csv")
    config = RunConfig("lin2009", qc=False)
    out = tmp_path / "out"
    summary = run_cohort(plans, out, config, executor=ProcessExecutor(2))
    monkeypatch.setattr(batch, "_evaluate", _REAL_EVALUATE)
    assert set(summary.failed) == {"S03", "S07"}
    assert "worker failed" in summary.failed["S03"] and "died" in summary.failed["S03"]
    run_cohort(plans, tmp_path / "ref", config, jobs=1)  # the reference: the same run, no worker dying
    for name in ("timepoints.csv", "lesions.csv", "tracks.csv"):
        got = [ln for ln in (out / name).read_text().splitlines() if not ln.startswith("S03,")]
        want = [ln for ln in (tmp_path / "ref" / name).read_text().splitlines()
                if not ln.startswith("S03,")]
        assert got == want, name
    # the next run tries the dead worker's subject again
    again = run_cohort(plans, out, config, jobs=1)
    assert again.n_from_earlier_run == N_DEMO - 1 and "S03" not in again.failed


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class _Done:
    def __init__(self, sid, status="ok", error="", seconds=0.1):
        self.subject_id, self.status, self.error, self.seconds = sid, status, error, seconds


def test_progress_bar_on_a_terminal_and_plain_lines_elsewhere():
    from cnsvol_cli.progress import Progress

    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).__next__
    tty = _Stream(True)
    bar = Progress(tty, clock=clock, interval=0.0)
    bar(_Done("A"), 1, 4)
    bar(_Done("B", "failed", "MaskError: bad"), 2, 4)
    text = tty.getvalue()
    assert "\r" in text and "[" + "#" * 6 + "." * 18 + "] 1/4" in text
    # no ETA from the first subjects (a run's start-up would make it wildly long)
    assert "1/4 subjects, 0 failed, 1.0 subjects/s, ETA ?" in text
    assert "FAILED B: MaskError: bad" in text

    clock = iter([0.0, 5.0, 8.0, 20.0, 21.0, 32.0, 40.0, 45.0]).__next__
    plain = _Stream(False)
    lines = Progress(plain, clock=clock)  # every 10 s when not a terminal
    for n, sid in enumerate("ABCDEF", start=1):  # A at 5 s, B 8 (no line), C 20, ... F 45
        lines(_Done(sid), n, 8)
    lines(_Done("G", seconds=None), 8, 8)  # taken from an earlier run; the last always shows
    out = plain.getvalue().splitlines()
    assert out == [
        "progress: 1/8 subjects, 0 failed, 0.2 subjects/s, ETA ?",
        "progress: 3/8 subjects, 0 failed, 0.1 subjects/s, ETA ?",
        "progress: 5/8 subjects, 0 failed, 0.2 subjects/s, ETA 19s",  # 5 done in 32 s
        "progress: 8/8 subjects, 0 failed, 0.1 subjects/s, ETA done",
    ]
    assert "\r" not in plain.getvalue()


def test_asking_for_dask_without_it_says_how_to_install(monkeypatch, tmp_path, capsys):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("blocked for this test")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    code = main(run_args(DEMO, tmp_path / "out", "--dask-local", "2"))
    assert code == EXIT_INPUT_ERROR
    err = capsys.readouterr().err
    assert "pip install 'cnsvol[dask]'" in err
    assert not (tmp_path / "out").exists()
