"""The lock on the results folder, between processes.

While one ``cnsvol run ... --out DIR`` runs, a second one on the same DIR stops at once with
exit code 1 and a message naming DIR and the holder's PID and host; the first finishes intact
(its tables are those of a run alone). ``cnsvol.run_cohort`` on a locked folder raises
``cnsvol.FolderLockedError``. A run killed with SIGKILL leaves no lock that blocks the next run.

How the race is made deterministic, whatever the machine's speed: the first run (``--jobs 1``,
so the lock holder is the command's own process) is watched until it has stored a first subject
result (it is then mid-way and holds the lock), and is then paused with SIGSTOP. The second run
happens while the first is paused, so it cannot have finished; a second run that waited for the
lock instead of stopping would hang, which the generous timeout turns into a failure, not a
timed assertion. The first run is then resumed with SIGCONT.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from helpers import write_nifti

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals"),
]

ROOT = Path(__file__).resolve().parents[1]
N_SUBJECTS = 400
TIMEOUT_S = 180  # generous: only a hang reaches it
TABLES = ("subjects.csv", "timepoints.csv", "tracks.csv", "lesions.csv", "cohort.json")


def cli_command() -> list[str]:
    """A command that runs the ``cnsvol`` console entry point named in pyproject.toml."""
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["cnsvol"]
    module, func = spec.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


def run_args(manifest: Path, out: Path) -> list[str]:
    return ["run", str(manifest), "--out", str(out), "--jobs", "1", "--no-qc", "--quiet"]


def write_many_subjects(folder: Path, ids: range, name: str = "manifest.csv") -> Path:
    """Subjects S<i> for i in ids, each a baseline and a week-8 scan pointing at the same two
    tiny masks."""
    folder.mkdir(parents=True, exist_ok=True)
    aff = np.diag([1.0, 0.5, 1.5, 1.0])
    aff[:3, 3] = [-10.0, 5.0, 3.0]
    full = np.zeros((16, 24, 8), np.uint8)
    full[2:14, 2:22, 2:6] = 1
    half = np.zeros_like(full)
    half[2:8, 2:22, 2:6] = 1
    write_nifti(folder / "full.nii.gz", full, aff)
    write_nifti(folder / "half.nii.gz", half, aff)
    lines = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for i in ids:
        lines += [f"S{i:04d},baseline,0,full.nii.gz", f"S{i:04d},week8,56,half.nii.gz"]
    manifest = folder / name
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def write_subset(manifest: Path, n: int) -> Path:
    """The last n subjects of the cohort (those the first run reaches last), as another
    manifest beside it."""
    return write_many_subjects(manifest.parent, range(N_SUBJECTS - n, N_SUBJECTS),
                               name="subset.csv")


def subjects_done(out: Path) -> int:
    """Subjects the run has finished so far: stored results, or per-subject lines of run.log."""
    stored = len(list((out / ".cnsvol" / "subjects").glob("*.json")))
    logged = 0
    log = out / "run.log"
    if log.is_file():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split("\t")
            if len(fields) >= 3 and fields[2] in ("ok", "failed"):
                logged += 1
    return max(stored, logged)


def start_run(manifest: Path, out: Path, logs: Path) -> tuple[subprocess.Popen, Path, Path]:
    logs.mkdir(parents=True, exist_ok=True)
    stdout, stderr = logs / "stdout.txt", logs / "stderr.txt"
    with stdout.open("wb") as so, stderr.open("wb") as se:
        proc = subprocess.Popen([*cli_command(), *run_args(manifest, out)], stdout=so, stderr=se,
                                stdin=subprocess.DEVNULL)
    return proc, stdout, stderr


def wait_until_mid_way(proc: subprocess.Popen, out: Path, stderr: Path) -> None:
    """Poll (no fixed sleep) until the run has finished at least one subject."""
    deadline = time.monotonic() + TIMEOUT_S
    while subjects_done(out) < 1:
        if proc.poll() is not None:
            pytest.fail(f"the first run ended (exit {proc.returncode}) before any subject was "
                        f"stored: {stderr.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the first run stored no subject result within the timeout")
        time.sleep(0.005)


def tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in TABLES}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    base = tmp_path_factory.mktemp("lockcohort").resolve()
    return write_many_subjects(base / "cohort", range(N_SUBJECTS))


@pytest.fixture(scope="module")
def alone(cohort, tmp_path_factory):
    """The same run with nobody else on its folder."""
    out = tmp_path_factory.mktemp("alone").resolve() / "out"
    done = subprocess.run([*cli_command(), *run_args(cohort, out)], capture_output=True,
                          timeout=TIMEOUT_S * 2)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return out


@pytest.fixture(scope="module")
def contested(cohort, tmp_path_factory):
    """A first run paused mid-way; meanwhile a second CLI run and a library run_cohort on the
    same folder; then the first run resumed to its end. The intruders run a smaller cohort (its
    last 10 subjects): unlocked, they would prune the results the first run has stored so far
    and rewrite the tables, which the intact check below would see."""
    subset = write_subset(cohort, 10)
    base = tmp_path_factory.mktemp("contested").resolve()
    out = base / "out"
    first, _, first_err = start_run(cohort, out, base / "first")
    record: dict[str, object] = {"out": out, "holder_pid": first.pid}
    try:
        wait_until_mid_way(first, out, first_err)
        os.kill(first.pid, signal.SIGSTOP)
        if first.poll() is not None:
            pytest.fail("the first run ended before it could be paused; enlarge N_SUBJECTS")
        try:
            second = subprocess.run([*cli_command(), *run_args(subset, out)],
                                    capture_output=True, timeout=TIMEOUT_S)
            record["second"] = (second.returncode, second.stdout.decode(errors="replace"),
                                second.stderr.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            record["second"] = None  # waited for the lock instead of stopping at once
        try:
            import cnsvol

            cnsvol.run_cohort(subset, out, cnsvol.RunConfig("lin2009", qc=False), jobs=1)
            record["library"] = None
        except Exception as exc:  # recorded, asserted in its own test  # noqa: BLE001
            record["library"] = exc
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
    try:
        record["first_code"] = first.wait(timeout=TIMEOUT_S * 2)
    except subprocess.TimeoutExpired:
        first.kill()
        first.wait()
        record["first_code"] = None
    record["first_stderr"] = first_err.read_text(errors="replace")
    return record


def test_second_run_on_a_locked_folder_exits_1_at_once(contested):
    assert contested["second"] is not None, "the second run waited for the lock (hung)"
    code, _, stderr = contested["second"]
    assert code == 1, stderr[-2000:]


def test_lock_message_names_the_folder_the_pid_and_the_host(contested):
    assert contested["second"] is not None, "the second run waited for the lock (hung)"
    _, stdout, stderr = contested["second"]
    out: Path = contested["out"]
    assert str(out) in stderr or str(out.resolve()) in stderr, stderr[-2000:]
    assert str(contested["holder_pid"]) in stderr, stderr[-2000:]
    host = socket.gethostname()
    assert host in stderr or host.split(".")[0] in stderr, stderr[-2000:]


def test_library_run_on_a_locked_folder_raises_folder_locked_error(contested):
    import cnsvol

    exc = contested["library"]
    assert exc is not None, "run_cohort ran into a folder locked by another run"
    assert isinstance(exc, cnsvol.FolderLockedError), repr(exc)
    assert isinstance(exc, cnsvol.CnsvolError)
    out: Path = contested["out"]
    assert str(out) in str(exc) or str(out.resolve()) in str(exc), str(exc)


def test_first_run_finishes_intact(contested, alone):
    assert contested["first_code"] == 0, contested["first_stderr"][-2000:]
    out: Path = contested["out"]
    assert tables(out) == tables(alone)
    stored = list((out / ".cnsvol" / "subjects").glob("*.json"))
    assert len(stored) == N_SUBJECTS


def test_a_sigkilled_run_leaves_no_blocking_lock(cohort, alone, tmp_path):
    out = tmp_path.resolve() / "out"
    first, _, first_err = start_run(cohort, out, tmp_path / "killed")
    try:
        wait_until_mid_way(first, out, first_err)
        if first.poll() is not None:
            pytest.fail("the run ended before it could be killed; enlarge N_SUBJECTS")
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
        first.wait(timeout=TIMEOUT_S)
    assert first.returncode == -signal.SIGKILL
    nxt = subprocess.run([*cli_command(), *run_args(cohort, out)], capture_output=True,
                         timeout=TIMEOUT_S * 2)
    assert nxt.returncode in (0, 3), nxt.stderr.decode(errors="replace")[-2000:]
    assert nxt.returncode == 0  # every subject of this cohort is fine
    assert tables(out) == tables(alone)
