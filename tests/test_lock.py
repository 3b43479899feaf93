"""The results-folder lock, in one process (the operating system's flock conflicts between two
open files of one process as between two processes): who holds it is said, release frees it,
and what a dead holder left (its lock.json) does not block."""

from __future__ import annotations

import json
import os
import socket

import pytest

import cnsvol
from cnsvol.batch.lock import FolderLock


def test_a_held_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "results"
    with FolderLock(out, "cnsvol run"):
        info = json.loads((out / ".cnsvol" / "lock.json").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(cnsvol.FolderLockedError) as err:
            FolderLock(out, "cnsvol report").acquire()
        message = str(err.value)
        assert str(out) in message and f"PID {os.getpid()}" in message
        assert socket.gethostname() in message and "cnsvol run" in message
        assert "wait for that run to finish" in message and "--out" not in message
        with pytest.raises(cnsvol.FolderLockedError, match="or give another --out"):
            FolderLock(out, "cnsvol run").acquire()
    assert not (out / ".cnsvol" / "lock.json").exists()
    with FolderLock(out, "again"):  # released: free again
        pass


def test_what_a_dead_holder_left_does_not_block(tmp_path):
    out = tmp_path / "results"
    (out / ".cnsvol").mkdir(parents=True)
    (out / ".cnsvol" / "lock").write_text("")
    (out / ".cnsvol" / "lock.json").write_text(json.dumps(
        {"pid": 999999, "host": "gone", "what": "cnsvol run", "since": "2020-01-01T00:00:00"}))
    with FolderLock(out):
        info = json.loads((out / ".cnsvol" / "lock.json").read_text())
        assert info["pid"] == os.getpid()


def test_run_cohort_on_a_locked_folder_stops_before_any_work(tmp_path):
    out = tmp_path / "out"
    plans = [cnsvol.SubjectPlan("S1", (), error="no scans")]
    with FolderLock(out, "cnsvol run"):
        with pytest.raises(cnsvol.FolderLockedError):
            cnsvol.run_cohort(plans, out, jobs=1)
        assert not (out / "run.log").exists() and not (out / "subjects.csv").exists()
