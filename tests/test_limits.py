"""Limits of a run, unit by unit: the per-subject time limit (signal and watchdog paths), the
data files behind NRRD/MetaImage headers, the memory estimate and the workers' share, the
commit of the final outputs, and how operating-system errors are worded. End-to-end versions
(subprocesses, signals, Dask) are in tests/test_robustness.py."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import patch_nifti_header

import cnsvol
from cnsvol.batch.limits import RunLimits, SubjectTimeout, time_limit, worker_memory
from cnsvol.errors import MaskError, MaskTooLargeError, ResultsError, describe_os_error
from cnsvol.io.files import memory_estimate
from cnsvol.io.headers import data_files


# --------------------------------------------------------------------------------------------
# the per-subject time limit


def _busy(seconds: float) -> None:
    """Python-level work for ``seconds`` (the watchdog interrupts between instructions)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)


def test_the_time_limit_interrupts_a_block_in_the_main_thread():
    t0 = time.monotonic()
    with pytest.raises(SubjectTimeout, match="time limit of 0.3 s"):
        with time_limit(0.3):
            time.sleep(5)  # a blocking call: the timer signal interrupts it
    assert time.monotonic() - t0 < 2
    with time_limit(0.5):  # a block that ends in time is untouched, and no timer is left
        pass
    time.sleep(0.7)


def test_the_time_limit_interrupts_a_block_in_another_thread():
    caught: list[BaseException] = []

    def work():
        try:
            with time_limit(0.3):
                _busy(5)
        except SubjectTimeout as exc:
            caught.append(exc)

    t0 = time.monotonic()
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - t0 < 3
    assert len(caught) == 1 and "0.3 s" in str(caught[0]) and "--subject-timeout" in str(caught[0])

    done = []

    def quick():
        with time_limit(0.3):
            _busy(0.05)
        _busy(0.5)  # after the block: no timeout may arrive late
        done.append(True)

    thread = threading.Thread(target=quick)
    thread.start()
    thread.join(10)
    assert done == [True]


def test_no_limit_and_invalid_limits():
    with time_limit(None):
        pass
    assert RunLimits(subject_seconds=None).subject_seconds is None
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="subject_seconds"):
            RunLimits(subject_seconds=bad)
        with pytest.raises(ValueError, match="no_worker_seconds"):
            RunLimits(no_worker_seconds=bad)


def _cohort(folder: Path, ids) -> Path:
    rows = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for sid in ids:
        for t, r in enumerate((4, 3)):
            data = np.zeros((24, 24, 16), np.uint8)
            data[12 - r:12 + r, 12 - r:12 + r, 8 - r:8 + r] = 1
            nib.save(nib.Nifti1Image(data, np.eye(4)), str(folder / f"{sid}_{t}.nii.gz"))
            rows.append(f"{sid},t{t},{56 * t},{sid}_{t}.nii.gz")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def test_a_subject_over_the_time_limit_fails_saying_so_and_the_run_goes_on(tmp_path, monkeypatch):
    import cnsvol.batch.evaluate as ev

    manifest = _cohort(tmp_path, ["FAST", "SLOW"])
    real = ev.evaluate_series

    def slow_for_one(masks, *args, **kw):
        if "SLOW" in str(masks[0]):
            time.sleep(30)
        return real(masks, *args, **kw)

    monkeypatch.setattr(ev, "evaluate_series", slow_for_one)
    config = cnsvol.RunConfig(qc=False, limits=RunLimits(subject_seconds=1.0))
    t0 = time.monotonic()
    summary = cnsvol.run_cohort(manifest, tmp_path / "out", config, jobs=1)
    assert time.monotonic() - t0 < 20
    assert list(summary.failed) == ["SLOW"]
    assert summary.failed["SLOW"].startswith("timed out: ") and "1 s" in summary.failed["SLOW"]
    subjects = cnsvol.read_results(tmp_path / "out").subjects
    assert dict(zip(subjects.subject_id, subjects.status)) == {"FAST": "ok", "SLOW": "failed"}
    # the timed-out subject is computed again by the next run (without the delay: ok now)
    monkeypatch.setattr(ev, "evaluate_series", real)
    again = cnsvol.run_cohort(manifest, tmp_path / "out", config, jobs=1)
    assert again.n_failed == 0 and again.n_from_earlier_run == 1


def test_the_time_limit_is_recorded_but_does_not_change_store_keys():
    a = cnsvol.RunConfig(limits=RunLimits(subject_seconds=5))
    b = cnsvol.RunConfig(limits=RunLimits(subject_seconds=600, memory_bytes=1 << 30))
    assert a.fingerprint() == b.fingerprint()
    assert a.to_dict()["limits"]["subject_seconds"] == 5
    with pytest.raises(TypeError, match="RunLimits"):
        cnsvol.RunConfig(limits={"subject_seconds": 5})


# --------------------------------------------------------------------------------------------
# the data files behind a header


def _mhd(folder: Path, data_file: str, extra: str = "") -> Path:
    path = folder / "m.mhd"
    path.write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 2\nElementSpacing = 1 1 1\n"
                    f"ElementType = MET_UCHAR\nElementDataFile = {data_file}\n{extra}")
    return path


def test_data_files_of_metaimage_and_nrrd_headers(tmp_path):
    assert data_files(_mhd(tmp_path, "LOCAL")) == []
    assert data_files(_mhd(tmp_path, "voxels.raw")) == [tmp_path / "voxels.raw"]
    assert data_files(_mhd(tmp_path, "/abs/voxels.raw")) == [Path("/abs/voxels.raw")]
    assert data_files(_mhd(tmp_path, "LIST", "a.raw\nb.raw\n")) == [tmp_path / "a.raw",
                                                                  tmp_path / "b.raw"]
    assert data_files(_mhd(tmp_path, "s%02d.raw 1 5 2")) == [tmp_path / f"s{i:02d}.raw"
                                                            for i in (1, 3, 5)]
    nhdr = tmp_path / "m.nhdr"
    nhdr.write_text("NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 2\nencoding: raw\n"
                    "data file: v.raw\n")
    assert data_files(nhdr) == [tmp_path / "v.raw"]
    nhdr.write_text("NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 2\nencoding: raw\n"
                    "data file: LIST\nx.raw\ny.raw\n")
    assert data_files(nhdr) == [tmp_path / "x.raw", tmp_path / "y.raw"]
    attached = tmp_path / "a.nrrd"  # attached data: the header ends at the blank line
    attached.write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 2\nencoding: raw\n\n"
                         b"data file: not-a-field" + bytes(32))
    assert data_files(attached) == []


@pytest.mark.parametrize("kind", ["fifo", "device", "missing", "folder"])
def test_a_header_whose_data_file_is_not_a_regular_file_is_refused(tmp_path, kind):
    target = {"fifo": tmp_path / "voxels.raw", "device": Path("/dev/zero"),
              "missing": tmp_path / "voxels.raw", "folder": tmp_path / "voxels.raw"}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    header = _mhd(tmp_path, str(target))
    for read in (cnsvol.read_mask, cnsvol.read_image):
        with pytest.raises(MaskError) as ei:
            read(header)  # returns at once: nothing opens the pipe
        assert str(target) in str(ei.value) and str(header) in str(ei.value)
        assert "Fix:" in str(ei.value)


# --------------------------------------------------------------------------------------------
# memory


def test_memory_estimate_and_the_workers_share():
    assert memory_estimate(1000, 1) == 4000
    assert memory_estimate(1000, 4, reader_copies=2, held_bytes=10) == 1000 * (8 + 3) + 10
    gib = 1024**3
    assert worker_memory(4 * gib, 2, 20 * gib) is None  # 2 x 4 GiB fit in 18 GiB
    assert worker_memory(4 * gib, 8, 20 * gib) == int(20 * gib * 0.9) // 8
    assert worker_memory(4 * gib, 8, None) is None


def test_a_small_file_declaring_a_huge_float_array_is_refused_with_the_estimate(tmp_path):
    """1024^3 float32 is 4.00 GiB decoded: with the working arrays, 7 GiB, above the default
    4 GiB; the error names the file, the estimate and the fix, before any voxel is read."""
    path = tmp_path / "bomb.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), str(path))
    patch_nifti_header(path, dim=[3, 1024, 1024, 1024, 1, 1, 1, 1])
    with pytest.raises(MaskTooLargeError) as ei:
        cnsvol.read_mask(path)
    text = str(ei.value)
    assert str(path) in text and "4.00 GiB decoded" in text and "7.00 GiB" in text
    assert "--max-gib" in text


def test_float_masks_are_converted_slab_by_slab_with_the_same_result(monkeypatch):
    import cnsvol.io.mask as mk

    rng = np.random.default_rng(2)
    probability = rng.random((30, 20, 17)).astype(np.float32)
    labels = rng.integers(0, 4, (30, 20, 17)).astype(np.float32)
    whole = [mk.to_labels(a, None, 0.5, None) for a in (probability, labels)]
    monkeypatch.setattr(mk, "_SLAB_VOXELS", 600)  # 1 plane of 600 voxels per slab
    for order in ("F", "C"):
        for a, (expected, storage, _) in zip((probability, labels), whole):
            got, got_storage, _ = mk.to_labels(np.asarray(a, order=order), None, 0.5, None)
            assert got_storage == storage and got.dtype == expected.dtype
            assert np.array_equal(got, expected)
    assert np.array_equal(whole[0][0], (probability >= 0.5).astype(np.uint8))
    assert np.array_equal(whole[1][0], labels.astype(np.uint8))
    bad = labels.copy()
    bad[29, 19, 16] = np.nan  # in the last slab
    with pytest.raises(MaskError, match="1 NaN"):
        mk.to_labels(bad, None, 0.5, None)


def test_a_huge_nifti_header_extension_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "ext.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), str(path))
    patch_nifti_header(path, vox_offset=float(200 << 20))  # 200 MiB before the voxels
    with pytest.raises(MaskError, match="header extensions take 200 MiB"):
        cnsvol.read_mask(path)


# --------------------------------------------------------------------------------------------
# committing the outputs


def test_the_outputs_are_committed_with_complete_last_and_stale_ones_removed(tmp_path):
    from cnsvol.batch.outputs import commit_outputs

    out, stage = tmp_path / "out", tmp_path / "out" / ".staging"
    (out / "figures").mkdir(parents=True)
    for name in ("km_naive.png", "km_naive.svg", "spider.png"):
        (out / "figures" / name).write_text("old")
    (out / "pfs_reconciliation.csv").write_text("old")
    (stage / "figures").mkdir(parents=True)
    (stage / "figures" / "spider.png").write_text("new")
    (stage / "subjects.csv").write_text("new")
    (stage / "provenance.json").write_text(json.dumps({"complete": True}))
    commit_outputs(stage, out)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["spider.png"]
    assert (out / "figures" / "spider.png").read_text() == "new"
    assert not (out / "pfs_reconciliation.csv").exists() and not stage.exists()
    assert json.loads((out / "provenance.json").read_text()) == {"complete": True}


def test_a_folder_interrupted_while_committing_is_refused_and_the_next_run_repairs_it(tmp_path):
    manifest = _cohort(tmp_path, ["A", "B"])
    config = cnsvol.RunConfig(qc=False)
    cnsvol.run_cohort(manifest, tmp_path / "out", config, jobs=1)
    prov = tmp_path / "out" / "provenance.json"
    assert json.loads(prov.read_text())["complete"] is True
    assert list(json.loads(prov.read_text()))[-1] == "complete"
    prov.write_text(json.dumps({"complete": False}))  # as a kill between the moves leaves it
    (tmp_path / "out" / ".staging").mkdir()
    with pytest.raises(ResultsError, match="interrupted"):
        cnsvol.read_results(tmp_path / "out")
    cnsvol.run_cohort(manifest, tmp_path / "out", config, jobs=1)
    assert cnsvol.read_results(tmp_path / "out").provenance["complete"] is True
    assert not (tmp_path / "out" / ".staging").exists()


def test_a_run_stopped_while_computing_subjects_leaves_a_folder_marked_incomplete(tmp_path):
    """Its QC pictures (written as subjects finish) may already describe the new run, so the
    earlier run's complete: true must not stand."""
    manifest = _cohort(tmp_path, ["A", "B"])
    out = tmp_path / "out"
    cnsvol.run_cohort(manifest, out, cnsvol.RunConfig(), jobs=1)
    first = (out / "figures" / "qc" / "A.png").read_bytes()

    class Stop(Exception):
        pass

    def stop(done, n_done, total):
        raise Stop

    with pytest.raises(Stop):  # other criteria: every subject is computed again
        cnsvol.run_cohort(manifest, out, cnsvol.RunConfig(criteria="tbcrc022"), jobs=1,
                          progress=stop)
    assert json.loads((out / "provenance.json").read_text())["complete"] is False
    with pytest.raises(ResultsError, match="complete: false"):
        cnsvol.read_results(out)
    cnsvol.run_cohort(manifest, out, cnsvol.RunConfig(), jobs=1)
    assert cnsvol.read_results(out).provenance["complete"] is True
    assert (out / "figures" / "qc" / "A.png").read_bytes() == first


def test_run_ended_is_logged_only_by_a_run_that_finished(tmp_path, monkeypatch):
    import cnsvol.batch.run as run

    manifest = _cohort(tmp_path, ["A"])
    cnsvol.run_cohort(manifest, tmp_path / "out", cnsvol.RunConfig(qc=False), jobs=1)

    def broken(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x"))

    monkeypatch.setattr(run, "commit_outputs", broken)
    with pytest.raises(OSError):
        cnsvol.run_cohort(manifest, tmp_path / "out", cnsvol.RunConfig(qc=False), jobs=1)
    lines = (tmp_path / "out" / "run.log").read_text().splitlines()
    assert sum(line.endswith("\trun ended") for line in lines) == 1
    assert "run stopped before its end (OSError" in lines[-1]


# --------------------------------------------------------------------------------------------
# operating-system errors


def test_operating_system_errors_name_the_path_and_a_fix(tmp_path):
    from cnsvol.atomic import atomic_write_bytes

    full = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/out/x.csv"))
    assert full.startswith("/data/out/x.csv: No space left on device (ENOSPC). Fix: free space")
    assert "Fix: check the path" in describe_os_error(OSError(errno.EBADF, "Bad file"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError) as ei:
        atomic_write_bytes(blocker / "sub" / "y.bin", b"1")
    assert ei.value.filename is not None and str(blocker) in str(ei.value.filename)


# --------------------------------------------------------------------------------------------
# a worker dying while the figures are drawn


_PARENT = os.getpid()


def _dies_in_a_worker(path: Path) -> list[Path]:
    """A figure task that kills the worker process it runs in, and draws in the run process."""
    if os.getpid() != _PARENT:
        os._exit(1)
    path.write_text("drawn")
    return [path]


@pytest.mark.slow
def test_a_worker_dying_while_figures_are_drawn_costs_nothing(tmp_path, monkeypatch):
    from functools import partial

    import cnsvol.report.figures as figures
    from cnsvol.batch.executors import ProcessExecutor
    from cnsvol.batch.outputs import draw_figures_and_report

    manifest = _cohort(tmp_path, ["A", "B"])
    out = tmp_path / "out"
    cnsvol.run_cohort(manifest, out, cnsvol.RunConfig(qc=False), jobs=1)
    monkeypatch.setattr(figures, "cohort_figure_tasks", lambda results: {
        "a": partial(_dies_in_a_worker, tmp_path / "a.txt"),
        "b": partial(_dies_in_a_worker, tmp_path / "b.txt")})
    executor = ProcessExecutor(2)
    try:
        report = draw_figures_and_report(out, executor)
    finally:
        executor.close()
    assert report.is_file()
    assert (tmp_path / "a.txt").read_text() == "drawn" == (tmp_path / "b.txt").read_text()


def test_report_on_a_folder_a_run_is_writing_names_the_run(tmp_path):
    from cnsvol.batch.lock import FolderLock
    from cnsvol.errors import FolderLockedError

    manifest = _cohort(tmp_path, ["A"])
    out = tmp_path / "out"
    cnsvol.run_cohort(manifest, out, cnsvol.RunConfig(qc=False), jobs=1)
    with FolderLock(out, "cnsvol run"):
        with pytest.raises(FolderLockedError, match="cnsvol run"):
            cnsvol.rebuild_report(out)
    (out / "subjects.csv").unlink()  # as in a first run, before its tables
    with pytest.raises(ResultsError, match="no subjects.csv yet"):
        cnsvol.read_results(out)
    with pytest.raises(ResultsError, match="no subjects.csv here"):
        cnsvol.read_results(tmp_path)


def test_a_signal_in_a_deferred_section_raises_at_its_end_and_a_lost_one_at_the_next_check():
    import signal as sig

    from cnsvol.batch.signals import RunInterrupted, check_interrupted, deferred, interruptible

    with interruptible():
        reached = False
        with pytest.raises(RunInterrupted, match="SIGTERM"):
            with deferred():  # e.g. forking workers
                os.kill(os.getpid(), sig.SIGTERM)
                time.sleep(0.05)
                reached = True  # not interrupted inside the section
        assert reached
    with interruptible():
        try:  # as a fork hook or a finaliser swallows the exception
            os.kill(os.getpid(), sig.SIGINT)
            time.sleep(0.05)
        except RunInterrupted:
            pass
        os.kill(os.getpid(), sig.SIGINT)  # a second signal is ignored, not raised
        time.sleep(0.05)
        with pytest.raises(RunInterrupted, match="SIGINT"):
            check_interrupted()  # the run's next safe point stops it
    check_interrupted()  # outside a run: nothing
