"""Robustness of cnsvol against files that never end, headers that lie about their size, crashes,
signals and hostile ids, through the command line (the unit-level tests: tests/test_limits.py).

Every command runs in its own session (process group) with its output in files, under a time
limit: a command that hangs fails its test (and its whole process group is killed) instead of
hanging pytest. Memory is measured per command with ``os.wait4`` (the peak RSS of that child and
its waited-for descendants, KiB on Linux); a command that might read a multi-GiB array runs with
an address-space limit, so that a product that does read it fails the test instead of the machine.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

BIN = Path(sys.executable).parent
CNSVOL = str(BIN / "cnsvol") if (BIN / "cnsvol").exists() else (shutil.which("cnsvol") or "cnsvol")
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"

HANG_TIMEOUT = 60  # seconds: a command still running after this is a hang
GIB = 1 << 30
KIB_PER_GIB = 1 << 20
AS_CAP = 4 * GIB  # address-space cap for commands handed a header that declares ~4 GiB
RSS_FAR_BELOW = 1 * KIB_PER_GIB  # "far below" a declared 3.8 GiB: under 1 GiB of peak RSS

SHAPE = (40, 40, 30)
TABLES = ("subjects.csv", "timepoints.csv", "tracks.csv", "lesions.csv", "cohort.json", "report.html")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than tab and newline


# ------------------------------------------------------------------------------------------------
# running the command line


@dataclass
class Done:
    rc: int  # exit code; -N when killed by signal N
    out: str
    err: str
    seconds: float
    maxrss_kib: int

    @property
    def both(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return (f"exit {self.rc} after {self.seconds:.1f}s, peak RSS {self.maxrss_kib / 1024:.0f} MiB"
                f"\n--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-3000:]}")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(proc: subprocess.Popen, deadline: float):
    """(status, rusage) of ``proc`` once it exits, or None when ``deadline`` passes first."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


# sets the resource limits, then becomes cnsvol (same pid: wait4 measures cnsvol itself)
_EXEC_WITH_LIMITS = (
    "import os, resource, sys\n"
    "as_limit, fsize_limit = int(sys.argv[1]), int(sys.argv[2])\n"
    "if as_limit: resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))\n"
    "if fsize_limit: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def _start(args, *, cwd, stdout, stderr, as_limit=None, fsize_limit=None, env=None):
    argv = [CNSVOL, *map(str, args)]
    if as_limit or fsize_limit:
        argv = [sys.executable, "-c", _EXEC_WITH_LIMITS, str(as_limit or 0), str(fsize_limit or 0),
                *argv]
    return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr, start_new_session=True, env=env)


def cnsvol(args, *, cwd=None, timeout=HANG_TIMEOUT, as_limit=None, fsize_limit=None,
           env=None) -> Done:
    """Run ``cnsvol ARGS`` to its end; a command still running after ``timeout`` s fails the test."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.monotonic()
        proc = _start(args, cwd=cwd, stdout=fo, stderr=fe, as_limit=as_limit,
                      fsize_limit=fsize_limit, env=env)
        done = _wait(proc, t0 + timeout)
        seconds = time.monotonic() - t0
        _kill_group(proc.pid)  # whatever it left behind (e.g. workers blocked on a pipe)
        if done is None:
            os.wait4(proc.pid, 0)
            proc.returncode = -9
        fo.seek(0)
        fe.seek(0)
        out = fo.read().decode("utf-8", "replace")
        err = fe.read().decode("utf-8", "replace")
    if done is None:
        pytest.fail(f"`cnsvol {' '.join(map(str, args))}` still running after {timeout}s: it "
                    f"hangs (killed)\n--- stderr so far ---\n{err[-3000:]}")
    return Done(proc.returncode, out, err, seconds, int(done[1].ru_maxrss))


# ------------------------------------------------------------------------------------------------
# input files


def save_mask(path: Path, data: np.ndarray, affine=None) -> Path:
    """A NIfTI-1 mask with consistent qform and sform (code 1), mm units."""
    affine = np.eye(4) if affine is None else np.asarray(affine, float)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(data, np.uint8), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))
    return path


def cubes(*boxes, shape=SHAPE) -> np.ndarray:
    """A uint8 mask holding cubes (i, j, k, side)."""
    data = np.zeros(shape, np.uint8)
    for i, j, k, s in boxes:
        data[i:i + s, j:j + s, k:k + s] = 1
    return data


def subject_masks(folder: Path, n: int) -> tuple[Path, Path]:
    """Baseline (a 10- and an 8-voxel cube) and a follow-up where the first cube shrank."""
    b0 = save_mask(folder / "v0.nii.gz", cubes((4, 4, 4, 10), (24, 24, 14, 8)))
    b1 = save_mask(folder / "v1.nii.gz", cubes((4, 4, 4, 9 - 2 * (n % 3)), (24, 24, 14, 8)))
    return b0, b1


MANIFEST_HEADER = ["subject_id", "timepoint", "days_from_baseline", "mask_path"]


def _csv_cell(value) -> str:
    text = str(value)
    if re.search(r'[",\r\n]', text):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_manifest(path: Path, rows) -> Path:
    """A CSV manifest; any cell holding a quote, comma, CR or LF is quoted (Python's csv writer
    leaves a bare CR unquoted), so that ids may hold anything and read back intact."""
    rows = [[str(v) for v in row] for row in rows]
    text = "".join(",".join(_csv_cell(v) for v in row) + "\n" for row in [MANIFEST_HEADER, *rows])
    path.write_bytes(text.encode("utf-8"))
    with open(path, newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [MANIFEST_HEADER, *rows]  # the file says what we mean
    return path


def pair_rows(sid: str, b0, b1):
    return [(sid, "baseline", 0, b0), (sid, "week8", 56, b1)]


def good_cohort(folder: Path, ids) -> list[tuple]:
    """Masks for ``ids`` under ``folder/masks/sNN`` and their manifest rows (relative paths)."""
    rows = []
    for n, sid in enumerate(ids):
        subject_masks(folder / "masks" / f"s{n:02d}", n)
        rows += pair_rows(sid, f"masks/s{n:02d}/v0.nii.gz", f"masks/s{n:02d}/v1.nii.gz")
    return rows


def write_mhd(path: Path, data_file: str, *, dims=SHAPE, element="MET_UCHAR",
              compressed_size: int | None = None) -> Path:
    """A MetaImage detached header (.mhd) whose voxels are in ``data_file``."""
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        f"CompressedData = {'True' if compressed_size is not None else 'False'}",
    ]
    if compressed_size is not None:
        lines.append(f"CompressedDataSize = {compressed_size}")
    lines += [
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
        "Offset = 0 0 0",
        "ElementSpacing = 1 1 1",
        "DimSize = " + " ".join(str(d) for d in dims),
        f"ElementType = {element}",
        f"ElementDataFile = {data_file}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_nhdr(path: Path, data_file: str, *, dims=SHAPE) -> Path:
    """An NRRD detached header (.nhdr) whose voxels are in ``data_file``."""
    path.write_text(
        "NRRD0004\n"
        "type: uint8\n"
        "dimension: 3\n"
        f"sizes: {' '.join(str(d) for d in dims)}\n"
        "space: left-posterior-superior\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\n"
        "space origin: (0,0,0)\n"
        "encoding: raw\n"
        f"data file: {data_file}\n"
        "\n"
    )
    return path


def nifti_header(shape, dtype, *, vox_offset=352) -> bytes:
    """The 348-byte NIfTI-1 header of a 1 mm grid, with qform = sform (code 1)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr.set_zooms((1.0,) * len(shape))
    hdr.set_qform(np.eye(4), code=1)
    hdr.set_sform(np.eye(4), code=1)
    hdr.set_xyzt_units("mm", "sec")
    hdr["vox_offset"] = vox_offset
    return hdr.binaryblock


def gzip_with_zeros(prefix: bytes, n_zeros: int, suffix: bytes = b"") -> bytes:
    """A valid single-member gzip file of ``prefix + n_zeros zero bytes + suffix``, built in about
    a second whatever ``n_zeros``: one 64 MiB block of zeros is deflated once after a full flush
    (so its compressed bytes are the same every time) and repeated; the CRC is computed over the
    real content."""
    chunk = 1 << 26
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)]
    zeros = bytes(chunk)
    full, rest = divmod(n_zeros, chunk)
    if full:
        block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
        if full > 1:
            again = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
            assert again == block  # the property this writer relies on
        parts += [block] * full
    parts.append(comp.compress(zeros[:rest]) + comp.compress(suffix) + comp.flush(zlib.Z_FINISH))
    crc = zlib.crc32(prefix)
    for _ in range(full):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(suffix, zlib.crc32(zeros[:rest], crc))
    total = len(prefix) + n_zeros + len(suffix)
    head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return head + b"".join(parts) + struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF)


def read_subjects(out: Path) -> dict[str, dict]:
    with open(out / "subjects.csv", newline="", encoding="utf-8") as fh:
        return {row["subject_id"]: row for row in csv.DictReader(fh)}


def run_ended_count(out: Path) -> int:
    log = out / "run.log"
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
               if line.split("\t")[1:2] == ["run ended"])


def provenance_complete(out: Path):
    """``provenance.json``'s "complete" (None when there is no provenance.json)."""
    path = out / "provenance.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("complete")


def assert_same_tables(a: Path, b: Path) -> None:
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), (
            f"{name} of {a} and {b} differ: the same manifest must give the same bytes")


def no_traceback(done: Done) -> None:
    assert "Traceback (most recent call last)" not in done.both, str(done)


# ------------------------------------------------------------------------------------------------
# one small cohort, run cleanly: shared by the tests of the finished folder


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three subjects (manifest ``full``) and two of them (``small``), run cleanly with the default
    options: ``full`` into two folders of different names, ``small`` into a third."""
    base = tmp_path_factory.mktemp("robust_cohort")
    data = base / "data"
    data.mkdir()
    rows = good_cohort(data, ["A01", "A02", "A03"])
    full = write_manifest(data / "manifest.csv", rows)
    small = write_manifest(data / "manifest_small.csv", [r for r in rows if r[0] != "A03"])
    outs = {"out_full": base / "clean_first",
            "out_full_again": base / "second_folder_with_a_longer_name",
            "out_small": base / "clean_small"}
    for key, out in outs.items():
        manifest = small if key == "out_small" else full
        done = cnsvol(["run", manifest, "--out", out, "--quiet"], cwd=base)
        assert done.rc == 0, f"clean run of the test cohort failed: {done}"
    return {"base": base, "manifest_full": full, "manifest_small": small, **outs}


# ================================================================================================
# 1. no hang


def _special_data_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """(header, name of its data file) for a header whose data file blocks or never ends."""
    if kind == "mhd-fifo":
        os.mkfifo(tmp_path / "pipe.raw")
        return write_mhd(tmp_path / "followup.mhd", "pipe.raw"), "pipe.raw"
    if kind == "mhd-dev-zero":
        return write_mhd(tmp_path / "followup.mhd", "/dev/zero"), "/dev/zero"
    if kind == "nhdr-fifo":
        os.mkfifo(tmp_path / "pipe.raw")
        return write_nhdr(tmp_path / "followup.nhdr", "pipe.raw"), "pipe.raw"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["mhd-fifo", "mhd-dev-zero", "nhdr-fifo"])
def test_compare_refuses_a_detached_header_whose_data_file_is_special(tmp_path, kind):
    base = save_mask(tmp_path / "baseline.nii.gz", cubes((4, 4, 4, 10)))
    header, data_name = _special_data_file(tmp_path, kind)
    done = cnsvol(["compare", base, header], cwd=tmp_path)
    assert done.rc == 1, f"a {kind} data file must be refused (exit 1): {done}"
    assert done.seconds < 30, f"refusing a {kind} data file must be quick: {done}"
    assert header.name in done.err or data_name in done.err, (
        f"the message must name the file: {done}")
    assert re.search(r"pipe|fifo|device|regular file|special file", done.err, re.IGNORECASE), (
        f"the message must say what the data file is (a pipe / device, not a regular file): {done}")
    no_traceback(done)


@pytest.mark.slow
def test_run_fails_only_the_subjects_whose_data_file_is_a_pipe(tmp_path):
    rows = good_cohort(tmp_path, ["G01", "G02"])
    pipes = tmp_path / "pipes"
    pipes.mkdir()
    save_mask(pipes / "v0.nii.gz", cubes((4, 4, 4, 10)))
    os.mkfifo(pipes / "mhd_pipe.raw")
    os.mkfifo(pipes / "nhdr_pipe.raw")
    write_mhd(pipes / "v1.mhd", "mhd_pipe.raw")
    write_nhdr(pipes / "v1.nhdr", "nhdr_pipe.raw")
    rows += pair_rows("P_MHD", "pipes/v0.nii.gz", "pipes/v1.mhd")
    rows += pair_rows("P_NHDR", "pipes/v0.nii.gz", "pipes/v1.nhdr")
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "out"
    done = cnsvol(["run", manifest, "--out", out, "--quiet", "--no-qc"], cwd=tmp_path)
    assert done.rc == 3, f"finished with failed subjects expected: {done}"
    for name in TABLES:
        assert (out / name).is_file(), f"{name} missing: {done}"
    subjects = read_subjects(out)
    assert subjects["G01"]["status"] == "ok" and subjects["G02"]["status"] == "ok", subjects
    for sid, names in (("P_MHD", ("mhd_pipe.raw", "v1.mhd")), ("P_NHDR", ("nhdr_pipe.raw", "v1.nhdr"))):
        row = subjects[sid]
        assert row["status"] == "failed", row
        assert any(n in row["error"] for n in names), f"{sid}: the error must name the file: {row}"
    no_traceback(done)


def _find_option(help_text: str, name_pattern: str, exclude: str | None = None):
    """(option, its help block) of the first option of ``--help`` whose name matches."""
    for match in re.finditer(r"^\s+(--[a-z0-9][a-z0-9-]*)", help_text, re.MULTILINE):
        name = match.group(1)
        if re.search(name_pattern, name) and not (exclude and re.search(exclude, name)):
            rest = help_text[match.end():]
            nxt = re.search(r"^\s+--", rest, re.MULTILINE)
            return name, help_text[match.start(): match.end() + (nxt.start() if nxt else len(rest))]
    return None, ""


def _time_limit_option(help_text: str):
    """(option, its help block) of the per-subject time limit in ``cnsvol run --help``."""
    return _find_option(help_text, r"timeout|time-limit|timelimit|walltime|wall-time|seconds|minutes",
                        exclude=r"dask|worker|scheduler")


def _slow_masks(folder: Path) -> tuple[Path, Path]:
    """Two 240 x 240 x 60 masks of 16,000 three-voxel lesions each: about half a minute to
    evaluate (matching and diameters of every lesion), far above a 5 s limit."""
    shape = (240, 240, 60)
    data = np.zeros(shape, np.uint8)
    data[2::6, 2::6, 2::6] = 1
    data[3::6, 2::6, 2::6] = 1
    data[2::6, 3::6, 2::6] = 1
    b0 = save_mask(folder / "v0.nii.gz", data)
    data[4::6, 2::6, 2::6] = 1
    b1 = save_mask(folder / "v1.nii.gz", data)
    return b0, b1


@pytest.mark.slow
def test_run_has_a_per_subject_time_limit_and_goes_on(tmp_path):
    helped = cnsvol(["run", "--help"], timeout=30)
    option, block = _time_limit_option(helped.out)
    assert option is not None, (
        "`cnsvol run --help` lists no per-subject time limit option (e.g. --subject-timeout): "
        "a run needs one (a generous default)\n" + helped.out)
    value = "0.0833" if re.search(r"minute", block, re.IGNORECASE) else "5"
    rows = good_cohort(tmp_path, ["G01", "G02"])
    _slow_masks(tmp_path / "masks" / "slow")
    rows += pair_rows("SLOW", "masks/slow/v0.nii.gz", "masks/slow/v1.nii.gz")
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "out"
    done = cnsvol(["run", manifest, "--out", out, "--quiet", "--no-qc", "--jobs", "2",
                   option, value], cwd=tmp_path)
    if done.rc == 2 and "invalid" in done.err:
        pytest.skip(f"{option} does not take {value} (5 s); cannot test a limit quickly: {done.err}")
    assert done.rc == 3, f"the slow subject must fail on the time limit and the run finish: {done}"
    subjects = read_subjects(out)
    assert subjects["G01"]["status"] == "ok" and subjects["G02"]["status"] == "ok", subjects
    slow = subjects["SLOW"]
    assert slow["status"] == "failed", slow
    assert re.search(r"time|second|minute", slow["error"], re.IGNORECASE), (
        f"the error must say the subject ran out of time: {slow}")
    assert done.seconds < 45, f"the limit must stop the slow subject early: {done}"
    for name in TABLES:
        assert (out / name).is_file(), name
    no_traceback(done)


_KILLER_PRELOAD = '''
import os
from distributed.diagnostics.plugin import WorkerPlugin


class KillOnFirstTask(WorkerPlugin):
    name = "kill-on-first-task"

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing":
            os._exit(17)  # the worker dies as a task starts, as on an out-of-memory kill


async def dask_setup(worker):
    await worker.plugin_add(KillOnFirstTask())
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_text(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_dask_run_whose_workers_all_die_stops_with_a_clear_error(tmp_path):
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("dask.distributed is not installed (pip install 'cnsvol[dask]')")
    dask = BIN / "dask"
    if not dask.exists():
        pytest.skip(f"no `dask` command beside {sys.executable}")
    rows = good_cohort(tmp_path, ["D01", "D02", "D03"])
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    preload = tmp_path / "kill_on_first_task.py"
    preload.write_text(_KILLER_PRELOAD)
    port = _free_port()
    procs = []
    with contextlib.ExitStack() as stack:
        logs = {name: stack.enter_context(open(tmp_path / f"{name}.log", "wb"))
                for name in ("scheduler", "worker")}
        _dask_run(tmp_path, dask, port, preload, manifest, logs, procs)


def _dask_run(tmp_path, dask, port, preload, manifest, logs, procs):
    """Scheduler + one worker that dies on its first task, then the run on them."""
    address = f"tcp://127.0.0.1:{port}"
    try:
        procs.append(subprocess.Popen(
            [str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=logs["scheduler"], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True))
        assert _wait_for_text(tmp_path / "scheduler.log", "Scheduler at", 30), (
            (tmp_path / "scheduler.log").read_text())
        worker = subprocess.Popen(
            [str(dask), "worker", address, "--no-nanny", "--nthreads", "1", "--no-dashboard",
             "--preload", str(preload), "--death-timeout", "90"],
            stdout=logs["worker"], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        procs.append(worker)
        assert _wait_for_text(tmp_path / "worker.log", "Registered to", 30), (
            (tmp_path / "worker.log").read_text())
        out = tmp_path / "out"
        # a documented knob for how long a run waits without any live worker is used (short):
        # the test is of stopping with an error, not of the default's length
        option, _ = _find_option(cnsvol(["run", "--help"], timeout=30).out,
                                 r"(dask|worker).*(timeout|wait|seconds)")
        knob = [option, "5"] if option else []
        done = cnsvol(["run", manifest, "--out", out, "--scheduler", address, "--quiet", "--no-qc",
                       *knob], cwd=tmp_path)
        no_traceback(done)
        assert done.rc in (1, 3), f"a run without any live worker must stop with an error: {done}"
        assert re.search(r"worker", done.err, re.IGNORECASE), (
            f"the error must say that the workers died / none is left: {done}")
        assert worker.poll() is not None, (
            "test precondition: the Dask worker should have died on its first task "
            f"(worker log: {(tmp_path / 'worker.log').read_text()[-1500:]})")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


# ================================================================================================
# 2. QC pictures by default


@pytest.mark.slow
def test_run_draws_qc_pictures_by_default(cohort):
    qc = cohort["out_full"] / "figures" / "qc"
    for sid in ("A01", "A02", "A03"):
        png = qc / f"{sid}.png"
        assert png.is_file(), f"no QC picture {png}: {sorted(p.name for p in qc.glob('*'))}"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


# ================================================================================================
# 3. --max-gib bounds real memory


def _assert_memory_refusal(done: Done, name: str) -> None:
    assert name in done.err, f"the error must name the file: {done}"
    assert "--max-gib" in done.err, f"the error must give the fix (--max-gib): {done}"
    assert re.search(r"\d[\d.,]*\s*GiB", done.err), f"the error must give the estimate: {done}"
    assert not re.search(r"unexpected", done.err, re.IGNORECASE), done
    no_traceback(done)


@pytest.mark.slow
def test_declared_3_8_gib_uint8_is_refused_or_read_in_bounded_memory(tmp_path):
    side = 1600  # 1600^3 uint8 = 3.81 GiB: under the default 4 GiB limit
    big = tmp_path / "huge_u8.nii.gz"
    big.write_bytes(gzip_with_zeros(nifti_header((side,) * 3, np.uint8) + bytes(4), side ** 3))
    assert big.stat().st_size < 20 << 20  # a few MB on disk
    base = save_mask(tmp_path / "baseline.nii.gz", cubes((4, 4, 4, 10)))
    done = cnsvol(["compare", base, big, "--format", "json"], cwd=tmp_path, as_limit=AS_CAP)
    assert "MemoryError" not in done.both, f"the declared size must be handled, not tried: {done}"
    assert done.maxrss_kib < RSS_FAR_BELOW, (
        f"peak RSS {done.maxrss_kib / 1024:.0f} MiB for a file declaring 3.8 GiB: the array was "
        f"read (it must be refused before reading, or streamed): {done}")
    if done.rc != 0:
        assert done.rc == 1, str(done)
        _assert_memory_refusal(done, big.name)
    no_traceback(done)


@pytest.mark.slow
def test_declared_4_gib_float32_gives_a_clear_error(tmp_path):
    side = 1000  # 1000^3 float32 = 3.73 GiB declared; decoding and thresholding it needs more
    big = tmp_path / "huge_f32.nii.gz"
    big.write_bytes(gzip_with_zeros(nifti_header((side,) * 3, np.float32) + bytes(4),
                                    4 * side ** 3))
    base = save_mask(tmp_path / "baseline.nii.gz", cubes((4, 4, 4, 10)))
    done = cnsvol(["compare", base, big], cwd=tmp_path, as_limit=AS_CAP)
    assert done.rc == 1, f"a float32 mask of ~4 GiB must be refused with a clear error: {done}"
    _assert_memory_refusal(done, big.name)
    assert "truncated or corrupt" not in done.err, f"the file is neither: {done}"


@pytest.mark.slow
def test_nifti_with_a_huge_header_extension_is_refused_without_reading_it(tmp_path):
    vox_offset = 1 << 31  # 2 GiB of header extension before a 36,000-byte array
    esize = vox_offset - 352
    prefix = (nifti_header(SHAPE, np.uint8, vox_offset=vox_offset) + b"\x01\x00\x00\x00"
              + struct.pack("<ii", esize, 6))
    voxels = cubes((4, 4, 4, 10)).tobytes(order="F")
    path = tmp_path / "huge_extension.nii.gz"
    path.write_bytes(gzip_with_zeros(prefix, esize - 8, voxels))
    base = save_mask(tmp_path / "baseline.nii.gz", cubes((4, 4, 4, 10)))
    done = cnsvol(["compare", base, path], cwd=tmp_path, as_limit=AS_CAP)
    assert done.rc == 1, f"a 2 GiB header extension must be refused: {done}"
    assert path.name in done.err, f"the error must name the file: {done}"
    assert re.search(r"extension|vox_offset", done.err, re.IGNORECASE), (
        f"the error must say what is too large (the header extension / vox_offset): {done}")
    assert done.maxrss_kib < RSS_FAR_BELOW, (
        f"peak RSS {done.maxrss_kib / 1024:.0f} MiB: the 2 GiB extension was read: {done}")
    no_traceback(done)


# ================================================================================================
# 4. a crash late in a run never leaves a folder that looks finished


@pytest.mark.slow
def test_provenance_says_complete_only_for_a_finished_run(cohort):
    for key in ("out_full", "out_full_again", "out_small"):
        assert provenance_complete(cohort[key]) is True, (
            f"provenance.json of a finished run must hold \"complete\": true ({cohort[key]})")


@pytest.mark.slow
def test_report_is_deterministic_across_folders(cohort):
    first, second = cohort["out_full"], cohort["out_full_again"]
    assert_same_tables(first, second)
    report = (first / "report.html").read_text(encoding="utf-8")
    for text in (str(first), first.name):
        assert text not in report, f"report.html holds the --out path ({text!r})"


@pytest.mark.slow
def test_run_ended_line_once_per_finished_run(cohort):
    for key in ("out_full", "out_full_again", "out_small"):
        lines = (cohort[key] / "run.log").read_text(encoding="utf-8").splitlines()
        assert run_ended_count(cohort[key]) == 1, lines
        assert lines[-1].split("\t")[1:2] == ["run ended"], lines


def _kill_in_final_phase(manifest: Path, out: Path, cwd: Path, trigger: str, n_subjects: int):
    """Start ``cnsvol run`` on ``out``, SIGKILL its whole process group as soon as ``trigger``
    is seen; True when it was killed, False when it finished (successfully) first."""
    log = out / "run.log"
    log_lines_before = len(log.read_text().splitlines()) if log.exists() else 0

    def stamp(name):
        try:
            st = (out / name).stat()
            return st.st_mtime_ns, st.st_size, st.st_ino
        except FileNotFoundError:
            return None

    watched = ("subjects.csv", "timepoints.csv", "cohort.json", "report.html", "provenance.json")
    before = {name: stamp(name) for name in watched}

    def fired() -> bool:
        if trigger == "all subjects logged":
            if not log.exists():
                return False
            new = log.read_text(errors="replace").splitlines()[log_lines_before:]
            return sum(1 for line in new if re.match(r"[^\t]+\tA0\d\t", line)) >= n_subjects
        if trigger == "a table rewritten":
            return any(stamp(n) != before[n] for n in watched[:3])
        if trigger == "the report rewritten":
            return stamp("report.html") != before["report.html"]
        raise AssertionError(trigger)

    proc = _start(["run", manifest, "--out", out, "--quiet"], cwd=cwd,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + HANG_TIMEOUT
    try:
        while proc.poll() is None:
            if fired():
                _kill_group(proc.pid)
                proc.wait(30)
                return True
            if time.monotonic() > deadline:
                pytest.fail(f"run into {out} still running after {HANG_TIMEOUT}s")
            time.sleep(0.002)
        assert proc.returncode == 0, (
            f"the run to be killed at '{trigger}' ended on its own with exit {proc.returncode}")
        return False
    finally:
        _kill_group(proc.pid)
        if proc.poll() is None:
            proc.wait(30)


@pytest.mark.slow
def test_run_killed_in_its_final_phase_never_looks_finished_and_resumes_byte_identical(
        cohort, tmp_path):
    # the folder holds a finished run of another manifest (two subjects); the new run has three
    out = tmp_path / "killed"
    shutil.copytree(cohort["out_small"], out)
    ended = run_ended_count(out)
    kills = []
    for trigger in ("all subjects logged", "a table rewritten", "the report rewritten"):
        killed = _kill_in_final_phase(cohort["manifest_full"], out, cohort["base"], trigger, 3)
        kills.append(killed)
        now_ended = run_ended_count(out)
        if provenance_complete(out) is True:
            # only a finished run may say so, and then the folder is that run's, whole: the new
            # one's, or (outputs swapped in at the very end) still the earlier one's
            said = json.loads((out / "provenance.json").read_text())["parameters"]["manifest"]
            which = {str(cohort["manifest_full"].resolve()): "out_full",
                     str(cohort["manifest_small"].resolve()): "out_small"}.get(
                         str(Path(said).resolve()))
            assert which, f"provenance.json names manifest {said!r}"
            for name in TABLES:
                assert (out / name).read_bytes() == (cohort[which] / name).read_bytes(), (
                    f"killed at '{trigger}' (killed={killed}): provenance.json says complete for "
                    f"{Path(said).name} but {name} is not that finished run's")
            if which == "out_full":
                ended = now_ended
                continue
        assert now_ended == ended, (
            f"killed at '{trigger}': run.log got a 'run ended' line from an unfinished run")
    assert any(kills), "test precondition: no run was killed before it finished"
    done = cnsvol(["run", cohort["manifest_full"], "--out", out, "--quiet"], cwd=cohort["base"])
    assert done.rc == 0, str(done)
    assert_same_tables(out, cohort["out_full"])
    assert provenance_complete(out) is True
    assert run_ended_count(out) == ended + 1


# ================================================================================================
# 5. signals: workers stopped, exit 128 + signal, one line saying what was kept


def _demo_manifest_without_failures(path: Path) -> Path:
    """The demo cohort minus its corrupt subject (S07), with absolute paths."""
    with open(DEMO / "manifest.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        rows = [r for r in reader if r["subject_id"] != "S07"]
    for row in rows:
        for col in ("mask_path", "image_path"):
            if row.get(col):
                row[col] = str(DEMO / row[col])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path


def _descendants(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not reaped by a container's init, is not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_for_ok_subjects(proc, log: Path, n: int) -> None:
    """Until ``run.log`` has ``n`` subject lines with status ok (the run still running)."""
    deadline = time.monotonic() + HANG_TIMEOUT
    while True:
        assert proc.poll() is None, "the run ended before it could be stopped"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        if sum(1 for line in lines if re.match(r"[^\t]+\tS\d\d\tok\t", line)) >= n:
            return
        assert time.monotonic() < deadline, "no subject finished within the time limit"
        time.sleep(0.01)


def _kill_survivors(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_workers_and_says_what_was_kept(tmp_path, sig):
    manifest = _demo_manifest_without_failures(tmp_path / "manifest.csv")
    out = tmp_path / "out"
    log = out / "run.log"
    with open(tmp_path / "stdout", "wb") as fo, open(tmp_path / "stderr", "wb") as fe:
        proc = _start(["run", manifest, "--out", out, "--quiet", "--jobs", "2"], cwd=tmp_path,
                      stdout=fo, stderr=fe)
    kids: list[int] = []
    try:
        _wait_for_ok_subjects(proc, log, 2)
        kids = _descendants(proc.pid)
        assert kids, "test precondition: `--jobs 2` should run worker processes"
        os.kill(proc.pid, sig)
        done = _wait(proc, time.monotonic() + 30)
        assert done is not None, f"still running 30 s after {sig.name}"
        rc = proc.returncode
        time.sleep(3)
        alive = [pid for pid in kids if _alive(pid)]
        err = (tmp_path / "stderr").read_text(errors="replace")
        assert rc in (128 + sig, -sig), f"exit code {rc} after {sig.name}, {128 + sig} expected\n{err}"
        assert not alive, f"worker process(es) {alive} still running 3 s after {sig.name}"
        assert "Traceback" not in err, err
        said = [line for line in err.splitlines() if line.strip()]
        assert len(said) == 1, f"one line on stderr expected, got {len(said)}:\n{err}"
        assert re.search(r"kept|stored|saved|resum", said[0], re.IGNORECASE), (
            f"the line must say what was kept: {said[0]!r}")
    finally:
        _kill_survivors(kids)
        _kill_group(proc.pid)
        if proc.returncode is None:
            proc.wait(30)


@pytest.mark.slow
def test_workers_end_when_the_run_process_is_killed_outright(tmp_path):
    """SIGKILL cannot be handled: the workers notice their parent is gone and end themselves."""
    manifest = _demo_manifest_without_failures(tmp_path / "manifest.csv")
    out = tmp_path / "out"
    log = out / "run.log"
    proc = _start(["run", manifest, "--out", out, "--quiet", "--jobs", "2"], cwd=tmp_path,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []
    try:
        _wait_for_ok_subjects(proc, log, 1)
        kids = _descendants(proc.pid)
        assert kids, "test precondition: `--jobs 2` should run worker processes"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        end = time.monotonic() + 10
        while [pid for pid in kids if _alive(pid)] and time.monotonic() < end:
            time.sleep(0.1)
        alive = [pid for pid in kids if _alive(pid)]
        assert not alive, f"worker process(es) {alive} still running 10 s after the kill"
    finally:
        _kill_survivors(kids)
        if proc.returncode is None:
            proc.kill()
            proc.wait(30)


# ================================================================================================
# 6. geometry of odd NIfTI headers


def test_2d_nifti_without_slice_thickness_is_refused(tmp_path):
    data = np.zeros((40, 40), np.uint8)
    data[10:20, 10:20] = 1
    img = nib.Nifti1Image(data, None)
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    img.header.set_xyzt_units("mm")
    path = tmp_path / "flat_2d.nii"
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<f", raw, 76 + 4 * 3, 0.0)  # pixdim[3] = 0, as nibabel would not write it
    path.write_bytes(bytes(raw))
    with open(path, "rb") as fh:
        hdr = nib.Nifti1Header.from_fileobj(fh, check=False)
    assert hdr["pixdim"][3] == 0 and hdr["qform_code"] == 0 and hdr["sform_code"] == 0
    done = cnsvol(["volumes", path, "--format", "json"], cwd=tmp_path, timeout=30)
    assert done.rc == 1, f"a 2D mask without slice thickness has no voxel volume: {done}"
    assert path.name in done.err, done
    assert re.search(r"\bfix\b", done.err, re.IGNORECASE), f"the error must give the fix: {done}"
    no_traceback(done)


def test_qform_sform_disagreement_gets_a_note_naming_the_one_used(tmp_path):
    data = cubes((5, 5, 5, 10))  # 1000 voxels: 1000 mm3 by the sform, 8000 mm3 by the qform
    img = nib.Nifti1Image(data, np.eye(4))
    img.set_sform(np.eye(4), code=2)
    img.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)
    img.header.set_xyzt_units("mm")
    path = tmp_path / "two_geometries.nii.gz"
    nib.save(img, str(path))
    done = cnsvol(["volumes", path, "--format", "json"], cwd=tmp_path, timeout=30)
    assert done.rc == 0, str(done)
    record = json.loads(done.out)
    volume = record["total_volume_mm3"]
    assert volume in (1000.0, 8000.0), volume
    # the note may be in the file's JSON record (which names the file) or on stderr
    in_record = [str(n) for n in record.get("notes", []) if re.search(r"qform", str(n), re.IGNORECASE)]
    on_stderr = [line for line in done.err.splitlines() if re.search(r"qform", line, re.IGNORECASE)]
    notes = in_record + on_stderr
    assert notes, f"no note on the qform/sform disagreement: {done}"
    note = " ".join(notes)
    assert re.search(r"sform", note, re.IGNORECASE), note
    said = re.search(r"\b(sform|qform)\s+(?:is|was|will be|has been)\s+used"
                     r"|\bus(?:ed|ing|es)\s+(?:the\s+)?(sform|qform)", note, re.IGNORECASE)
    assert said, f"the note must say which of the two was used: {note}"
    used = "sform" if volume == 1000.0 else "qform"
    assert (said.group(1) or said.group(2)).lower() == used, (
        f"the note says the {(said.group(1) or said.group(2))} was used but the volume "
        f"({volume} mm3) is the {used}'s: {note}")
    if not in_record:
        assert path.name in " ".join(on_stderr), f"the note must name the file: {done}"


# ================================================================================================
# 7. stale pictures, control characters in ids, I/O errors


@pytest.mark.slow
def test_rerun_removes_qc_pictures_of_subjects_no_longer_in_the_manifest(cohort, tmp_path):
    out = tmp_path / "shrunk"
    shutil.copytree(cohort["out_full"], out)
    assert (out / "figures" / "qc" / "A03.png").is_file()
    done = cnsvol(["run", cohort["manifest_small"], "--out", out, "--quiet"], cwd=cohort["base"])
    assert done.rc == 0, str(done)
    pictures = sorted(p.name for p in (out / "figures" / "qc").iterdir())
    assert pictures == ["A01.png", "A02.png"], f"stale QC pictures left: {pictures}"
    assert_same_tables(out, cohort["out_small"])


@pytest.mark.slow
def test_control_characters_in_an_id_cannot_forge_run_log_lines(tmp_path):
    forged = "1999-01-01T00:00:00+00:00\tFORGED\tok\t0.001s"
    evil_ids = [f"EVIL\n{forged}", "CR\rOVERWRITE", "ESC\x1b[2Jclear", "BEL\x07bell"]
    rows = good_cohort(tmp_path, ["G01", *evil_ids])
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "out"
    done = cnsvol(["run", manifest, "--out", out, "--quiet", "--no-qc"], cwd=tmp_path)
    assert done.rc in (0, 3), f"odd ids cost at most their own subject: {done}"
    text = (out / "run.log").read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    assert lines[-1] == "", "run.log must end with a newline"
    for line in lines[:-1]:
        assert re.match(r"\d{4}-\d\d-\d\dT[^\t]+\t", line), f"a run.log line not written by a run: {line!r}"
        assert not line.startswith("1999-01-01"), f"forged run.log line: {line!r}"
    assert not CONTROL.search(text), (
        f"raw control character(s) in run.log: {sorted(set(CONTROL.findall(text)))!r}")
    subject_lines = [line for line in lines[:-1]
                     if re.search(r"\t(ok|failed)\t[\d.]+s(\t|$)|\t(ok|failed)\tstored", line)]
    assert len(subject_lines) == 1 + len(evil_ids), (
        "one run.log line per subject expected:\n" + "\n".join(subject_lines))
    subjects = read_subjects(out)
    assert len(subjects) == 1 + len(evil_ids), f"one subjects.csv row per subject: {list(subjects)}"
    assert subjects["G01"]["status"] == "ok"


@pytest.mark.slow
def test_write_error_in_the_final_phase_names_the_path_and_a_fix(cohort, tmp_path):
    # a file-size limit makes every write beyond 120 kB fail with EFBIG, as a full disk would
    # (report.html of this cohort is larger; the tables and stored results are far smaller)
    out = tmp_path / "disk_full_folder"
    shutil.copytree(cohort["out_full"], out)
    assert (out / "report.html").stat().st_size > 120_000
    ended = run_ended_count(out)
    done = cnsvol(["run", cohort["manifest_full"], "--out", out, "--quiet"], cwd=cohort["base"],
                  fsize_limit=120_000)
    assert done.rc not in (0, 3) and done.rc > 0, (
        f"a run that could not write its outputs must not report success: {done}")
    assert out.name in done.err, f"the error must name the path: {done}"
    assert re.search(r"\bfix\b", done.err, re.IGNORECASE), f"the error must give a fix: {done}"
    no_traceback(done)
    assert run_ended_count(out) == ended, "a run that failed wrote a 'run ended' line"


def test_out_folder_that_cannot_be_created_names_the_path_and_a_fix(tmp_path):
    rows = good_cohort(tmp_path, ["G01"])
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    blocker = tmp_path / "a_plain_file"
    blocker.write_text("not a folder\n")
    done = cnsvol(["run", manifest, "--out", blocker / "out", "--quiet", "--no-qc"],
                  cwd=tmp_path, timeout=30)
    assert done.rc == 1, str(done)
    assert "a_plain_file" in done.err, f"the error must name the path: {done}"
    assert re.search(r"\bfix\b", done.err, re.IGNORECASE), f"the error must give a fix: {done}"
    no_traceback(done)
