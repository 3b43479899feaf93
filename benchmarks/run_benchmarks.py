"""cnsvol against the floor and against peers, in one run (issue 5).

    python benchmarks/run_benchmarks.py                # full run (~10 min, 2 cores); RESULTS.md
    python benchmarks/run_benchmarks.py --quick        # few repeats, 100-pair cohort; prints only
    python benchmarks/run_benchmarks.py --only cohort  # one section (comma-separated for several)

Sections (see benchmarks/README.md for what every line means):

    floor    (a) decode both files + 26-connected labelling + per-lesion counts, fastest libraries
    compare  (b) cnsvol.compare in-process: same grid, cross-grid, int16, float32, 512 pair
    sitk     (c) peer pipeline from SimpleITK (ReadImage, ConnectedComponent, LabelShapeStatistics,
                 overlap by numpy)
    naive    (d) nibabel get_fdata + skimage.measure.label + np.unique
    cohort   (e) ``cnsvol run`` on an N-pair manifest, --jobs 1 and --jobs 2
    memory   (f) peak resident memory of one pair in a fresh process (240 and 512)
    startup  (g) ``cnsvol --help`` vs ``python -c "import numpy"``
    profile  (not in the default set) cProfile of cnsvol.compare on the 240 pair, top entries

In-process timings are medians over repeated runs, taken round-robin (one run of each pipeline
per round), so that machine noise hits every pipeline alike; the first call of each pipeline is
an untimed warm-up whose output is checked. Before any time is reported, every pipeline must
find the same voxel count for every lesion (sorted component sizes) as the floor, on every file
it reads, including the cohort run's lesions.csv; otherwise the run aborts with exit code 2.

RESULTS.md is written only by a full run (no --quick, no --only), or when --write is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata as md
import json
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_MD = HERE / "RESULTS.md"
DEFAULT_DATA = Path("/tmp/cnsvol-bench-masks")  # = make_masks.DEFAULT_OUT
SECTIONS = ("floor", "compare", "sitk", "naive", "cohort", "memory", "startup")
EXTRA_SECTIONS = ("profile",)
CONNECTIVITY = 26
MB = 1e6  # peak memory is reported in decimal megabytes; the target is 1 GB = 1000 MB

# Files inside the data folder (written by make_masks.py).
P240 = {dtype: (f"pair240/baseline_{dtype}.nii.gz", f"pair240/followup_{dtype}.nii.gz")
        for dtype in ("uint8", "int16", "float32")}
P240_CROSS = ("pair240/baseline_uint8.nii.gz", "pair240/followup_crossgrid_uint8.nii.gz")
P512 = ("pair512/baseline_uint8.nii.gz", "pair512/followup_uint8.nii.gz")
COHORT_PAIRS = (P240["uint8"],) + tuple(
    (f"cohort/pair{k}/baseline.nii.gz", f"cohort/pair{k}/followup.nii.gz") for k in (1, 2, 3)
)

Counts = list[list[int]]  # per file of a pair: lesion voxel counts, largest first


class Disagreement(RuntimeError):
    """A pipeline found other lesion voxel counts than the floor (or a run failed)."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sorted_counts(counts: Any) -> list[int]:
    return sorted((int(c) for c in counts), reverse=True)


# =============================================================================== pipelines
# (a) the floor: plain code, fastest libraries available.

_NIFTI_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64,
                 256: np.int8, 512: np.uint16, 768: np.uint32}


def _available_inflaters() -> dict[str, Callable[[bytes, int], bytes]]:
    """gzip decoders installed, each ``(raw gzip bytes, decoded size hint) -> bytes``."""
    found: dict[str, Callable[[bytes, int], bytes]] = {}
    try:
        from zlib_ng import zlib_ng

        found["zlib-ng"] = lambda raw, size: zlib_ng.decompress(raw, 31, size)
    except ImportError:
        pass
    try:
        from isal import igzip_lib

        found["isal igzip_lib"] = lambda raw, size: igzip_lib.decompress(
            raw, flag=igzip_lib.DECOMP_GZIP, bufsize=size)
    except ImportError:
        pass
    found["zlib (stdlib)"] = lambda raw, size: zlib.decompress(raw, 31, size)
    return found


INFLATERS = _available_inflaters()
INFLATER_NAME, _inflate = next(iter(INFLATERS.items()))  # calibrated by Bench.in_process


def choose_inflater(sample: Path, runs: int = 7) -> dict[str, float]:
    """Make the floor use the fastest inflater installed on ``sample``; median ms of each."""
    global INFLATER_NAME, _inflate
    raw = sample.read_bytes()
    size = int.from_bytes(raw[-4:], "little")
    times = {}
    for name, fn in INFLATERS.items():
        fn(raw, size)
        t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(raw, size)
            t.append((time.perf_counter() - t0) * 1000.0)
        times[name] = statistics.median(t)
    INFLATER_NAME = min(times, key=times.__getitem__)
    _inflate = INFLATERS[INFLATER_NAME]
    return times


def floor_read(path: str | Path) -> np.ndarray:
    """Decode a little-endian NIfTI-1 .nii.gz straight into a numpy view ``[i, j, k]`` (F order).

    Only what the benchmark files need: no scaling (checked), 3D, NIfTI-1.
    """
    raw = Path(path).read_bytes()
    size = int.from_bytes(raw[-4:], "little")  # gzip ISIZE: the decoded size (mod 2**32)
    buf = _inflate(raw, size)
    if struct.unpack_from("<i", buf, 0)[0] != 348:
        raise ValueError(f"{path}: the floor reads little-endian NIfTI-1 only")
    dim = struct.unpack_from("<8h", buf, 40)
    datatype = struct.unpack_from("<h", buf, 70)[0]
    vox_offset, slope, inter = struct.unpack_from("<3f", buf, 108)
    scaled = not (np.isnan(slope) or slope in (0.0, 1.0)) or not (np.isnan(inter) or inter == 0.0)
    if scaled:
        raise ValueError(f"{path}: the floor does not apply scl_slope/scl_inter")
    shape = dim[1:1 + dim[0]]
    return np.frombuffer(buf, _NIFTI_DTYPES[datatype], count=int(np.prod(shape)),
                         offset=int(vox_offset)).reshape(shape, order="F")


def decode_with(inflate: Callable[[bytes, int], bytes], path: Path) -> bytes:
    raw = path.read_bytes()
    return inflate(raw, int.from_bytes(raw[-4:], "little"))


def floor_counts(data: np.ndarray) -> np.ndarray:
    """26-connected components (cc3d on the F-ordered foreground) and their voxel counts."""
    import cc3d

    fg = data >= 0.5 if data.dtype.kind == "f" else data != 0  # keeps F order
    labels, n = cc3d.connected_components(fg, connectivity=CONNECTIVITY, return_N=True)
    flat = labels.reshape(-1, order="A")
    return np.bincount(flat[fg.reshape(-1, order="A")], minlength=n + 1)[1:]


def floor_pair(baseline: str | Path, followup: str | Path) -> list[np.ndarray]:
    return [floor_counts(floor_read(baseline)), floor_counts(floor_read(followup))]


def floor_norm(result: list[np.ndarray]) -> Counts:
    return [sorted_counts(c) for c in result]


# (b) cnsvol.compare in-process.


def compare_pair(baseline: str | Path, followup: str | Path) -> Any:
    import cnsvol

    return cnsvol.compare(baseline, followup)


def compare_norm(result: Any) -> Counts:
    return [sorted_counts(les.voxel_count for les in ls.lesions)
            for ls in (result.baseline, result.followup)]


# (c) the SimpleITK peer.

_SITK_THREADS = 1


def _sitk() -> Any:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(_SITK_THREADS)
    return sitk


def sitk_pair(baseline: str | Path, followup: str | Path) -> tuple[Counts, np.ndarray]:
    """ReadImage, ConnectedComponent (fully connected = 26), LabelShapeStatistics (count,
    physical size, centroid; perimeter off), then lesion overlap pairs by numpy."""
    sitk = _sitk()
    counts, arrays, keep = [], [], []  # the array views need their images alive
    for path in (baseline, followup):
        img = sitk.ReadImage(str(path))
        if img.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
            img = sitk.GreaterEqual(img, 0.5)
        cc = sitk.ConnectedComponent(img, True)
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.ComputePerimeterOff()
        stats.Execute(cc)
        labels = stats.GetLabels()
        counts.append([stats.GetNumberOfPixels(lab) for lab in labels])
        _ = [(stats.GetPhysicalSize(lab), stats.GetCentroid(lab)) for lab in labels]
        keep.append(cc)
        arrays.append(sitk.GetArrayViewFromImage(cc))
    a, b = arrays
    both = (a != 0) & (b != 0)
    overlap = np.unique(a[both].astype(np.int64) * (int(b.max()) + 1) + b[both])
    return counts, overlap


def sitk_norm(result: tuple[Counts, np.ndarray]) -> Counts:
    return [sorted_counts(c) for c in result[0]]


# (d) the naive script.


def naive_pair(baseline: str | Path, followup: str | Path) -> Counts:
    import nibabel as nib
    from skimage.measure import label

    out = []
    for path in (baseline, followup):
        data = nib.load(str(path)).get_fdata()
        labels = label(data > 0.5, connectivity=3)
        ids, counts = np.unique(labels, return_counts=True)  # the whole volume, as written
        out.append(counts[ids > 0].tolist())
    return out


def naive_norm(result: Counts) -> Counts:
    return [sorted_counts(c) for c in result]


PIPELINES: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any], Counts]]] = {
    "floor": (floor_pair, floor_norm),
    "compare": (compare_pair, compare_norm),
    "sitk": (sitk_pair, sitk_norm),
    "naive": (naive_pair, naive_norm),
}


# =============================================================================== measuring


@dataclass
class Measure:
    """One line of the table."""

    key: str
    label: str
    unit: str  # "ms", "s", "MB", "pairs/s"
    values: list[float] = field(default_factory=list)
    floor_key: str | None = None  # the line this one is divided by in the "x floor" column
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data: Path = args.data
        self.lines: dict[str, Measure] = {}
        self.reference: dict[str, list[int]] = {}  # file -> floor counts
        self.notes: list[str] = []

    # ---------------------------------------------------------------- reference and checks
    def path(self, rel: str) -> Path:
        return self.data / rel

    def expected(self, pair: tuple[str, str]) -> Counts:
        for rel in pair:
            if rel not in self.reference:
                self.reference[rel] = sorted_counts(floor_counts(floor_read(self.path(rel))))
        return [self.reference[rel] for rel in pair]

    def check(self, who: str, pair: tuple[str, str], got: Counts) -> None:
        want = self.expected(pair)
        for rel, g, w in zip(pair, got, want):
            if g != w:
                raise Disagreement(
                    f"{who} disagrees with the floor on {rel}:\n"
                    f"  floor ({len(w)} lesions): {w}\n  {who} ({len(g)} lesions): {g}\n"
                    "refusing to report any time")

    def add(self, m: Measure) -> Measure:
        self.lines[m.key] = m
        return m

    # ---------------------------------------------------------------- in-process timings
    def timed_rounds(self, jobs: list[tuple[Measure, Callable[[], Any]]], repeats: int) -> None:
        """Round-robin: each round runs every job once; gc before each run."""
        for _ in range(repeats):
            for m, fn in jobs:
                gc.collect()
                t0 = time.perf_counter()
                fn()
                m.values.append((time.perf_counter() - t0) * 1000.0)

    def in_process(self, sections: set[str]) -> None:
        """Sections a-d: the 240 pair (all storages, cross-grid) and the 512 pair."""
        plan_240: list[tuple[str, str, str, tuple[str, str], str | None, str]] = []
        plan_512: list[tuple[str, str, str, tuple[str, str], str | None, str]] = []
        want = set(sections)
        if want & {"compare", "sitk", "naive"}:
            want.add("floor")  # every ratio needs it
        # (key, label, pipeline, pair, floor_key, note)
        if "floor" in want:
            plan_240 += [
                ("floor240", "(a) floor: decode + label + counts, 240 pair uint8", "floor",
                 P240["uint8"], "floor240",
                 f"{INFLATER_NAME} + cc3d (F order) + bincount over foreground"),
            ]
            if "compare" in want:
                plan_240 += [
                    ("floor240_int16", "(a) floor, 240 pair int16", "floor", P240["int16"],
                     "floor240_int16", ""),
                    ("floor240_float32", "(a) floor, 240 pair float32 (>= 0.5)", "floor",
                     P240["float32"], "floor240_float32", ""),
                    ("floor240_cross", "(a) floor, 240 baseline + cross-grid follow-up", "floor",
                     P240_CROSS, "floor240_cross", "0.9x0.9x1.2 mm, 266x266x130, shifted"),
                ]
            plan_512 += [("floor512", "(a) floor, 512 pair uint8", "floor", P512, "floor512",
                          "")]
        if "compare" in want:
            plan_240 += [
                ("compare240", "(b) cnsvol.compare, 240 same grid uint8", "compare",
                 P240["uint8"], "floor240", ""),
                ("compare240_cross", "(b) cnsvol.compare, 240 cross-grid follow-up", "compare",
                 P240_CROSS, "floor240_cross", "resampled for matching"),
                ("compare240_int16", "(b) cnsvol.compare, 240 int16", "compare", P240["int16"],
                 "floor240_int16", ""),
                ("compare240_float32", "(b) cnsvol.compare, 240 float32 probability map",
                 "compare", P240["float32"], "floor240_float32", ""),
            ]
            plan_512 += [("compare512", "(b) cnsvol.compare, 512 pair uint8", "compare", P512,
                          "floor512", "")]
        if "sitk" in want:
            plan_240 += [("sitk240", "(c) SimpleITK peer, 240 pair uint8", "sitk",
                          P240["uint8"], "floor240", f"{_SITK_THREADS} ITK thread(s)")]
            plan_512 += [("sitk512", "(c) SimpleITK peer, 512 pair uint8", "sitk", P512,
                          "floor512", "")]
        if "naive" in want:
            plan_240 += [("naive240", "(d) naive script, 240 pair uint8", "naive",
                          P240["uint8"], "floor240", "get_fdata + skimage label + np.unique")]
            # the 512 naive run (6-8 s, ~3 GB) is timed once, in the memory section
        if "floor" in want:
            speeds = choose_inflater(self.path(P240["uint8"][0]))
            self.notes.append("floor inflater: " + INFLATER_NAME + " (calibration, ms per 240 "
                              "uint8 file: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                        speeds.items()) + ")")
            plan_240[0] = plan_240[0][:5] + (
                f"{INFLATER_NAME} + cc3d (F order) + bincount over foreground",)
            for name in reversed(list(INFLATERS)):
                plan_240.insert(1, (f"decode240_{name}", f"(a) decode only, 240 pair uint8: {name}",
                                    f"decode:{name}", P240["uint8"], "floor240",
                                    "used by the floor" if name == INFLATER_NAME else ""))
        for plan, repeats, size in ((plan_240, self.args.repeats, "240"),
                                    (plan_512, self.args.repeats_512, "512")):
            if not plan:
                continue
            jobs = []
            for key, label, pipe, pair, floor_key, note in plan:
                a, b = self.path(pair[0]), self.path(pair[1])
                if pipe.startswith("decode:"):
                    m = self.add(Measure(key, label, "ms", floor_key=floor_key, note=note))
                    jobs.append((m, (lambda f=INFLATERS[pipe[7:]], a=a, b=b:
                                     (decode_with(f, a), decode_with(f, b)))))
                    continue
                fn, norm = PIPELINES[pipe]
                log(f"check + warm-up: {key}")
                result = fn(a, b)
                self.check(label, pair, norm(result))
                if pipe == "compare":
                    cross = pair == P240_CROSS
                    if result.same_grid == cross:
                        raise Disagreement(f"{label}: same_grid={result.same_grid}, expected "
                                           f"{not cross}; the line would measure the wrong path")
                del result
                m = self.add(Measure(key, label, "ms", floor_key=floor_key, note=note))
                jobs.append((m, (lambda fn=fn, a=a, b=b: fn(a, b))))
            log(f"timing the {size} pair: {len(jobs)} pipelines x {repeats} rounds")
            self.timed_rounds(jobs, repeats)

    # ---------------------------------------------------------------- (e) cohort
    def cohort(self) -> None:
        import pandas as pd

        n = self.args.cohort_pairs
        cli = cnsvol_command()
        for pair in COHORT_PAIRS:
            self.expected(pair)
        work = Path(tempfile.mkdtemp(prefix="cnsvol-bench-cohort-"))
        try:
            manifest = work / "manifest.csv"
            rows = ["subject_id,timepoint,days_from_baseline,mask_path"]
            for i in range(n):
                b, f = COHORT_PAIRS[i % len(COHORT_PAIRS)]
                rows.append(f"S{i:05d},baseline,0,{self.path(b)}")
                rows.append(f"S{i:05d},week8,56,{self.path(f)}")
            manifest.write_text("\n".join(rows) + "\n")
            expected = {}
            for i in range(n):
                pair = COHORT_PAIRS[i % len(COHORT_PAIRS)]
                expected[(f"S{i:05d}", "baseline")] = self.reference[pair[0]]
                expected[(f"S{i:05d}", "week8")] = self.reference[pair[1]]
            ms = {j: self.add(Measure(f"cohort_j{j}", f"(e) cnsvol run, {n} pairs, --jobs {j}",
                                      "pairs/s", note=f"{len(COHORT_PAIRS)} distinct 240 pairs "
                                      "reused; --no-qc --quiet; wall time of the command"))
                  for j in (1, 2)}
            first_lesions: bytes | None = None
            for r in range(self.args.cohort_repeats):
                for j in (1, 2):
                    out = work / f"out_j{j}_{r}"
                    cmd = [*cli, "run", str(manifest), "--out", str(out), "--jobs", str(j),
                           "--no-qc", "--quiet"]
                    log(f"cohort: {n} pairs, --jobs {j} (round {r + 1})")
                    t0 = time.perf_counter()
                    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    seconds = time.perf_counter() - t0
                    if proc.returncode != 0:
                        raise Disagreement(f"cnsvol run --jobs {j} exited {proc.returncode}:\n"
                                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
                    lesions_bytes = (out / "lesions.csv").read_bytes()
                    self._check_cohort(out, expected, n, j, pd)
                    if first_lesions is None:
                        first_lesions = lesions_bytes
                    elif lesions_bytes != first_lesions:
                        raise Disagreement("lesions.csv differs between cohort runs "
                                           f"(--jobs {j}, round {r + 1}): results depend on it")
                    ms[j].values.append(n / seconds)
                    shutil.rmtree(out)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _check_cohort(self, out: Path, expected: dict, n: int, jobs: int, pd: Any) -> None:
        subjects = pd.read_csv(out / "subjects.csv", dtype={"subject_id": str})
        bad = subjects[subjects["status"] != "ok"]
        if len(subjects) != n or len(bad):
            raise Disagreement(f"cnsvol run --jobs {jobs}: {len(subjects)} subjects in "
                               f"subjects.csv (expected {n}), {len(bad)} not ok")
        lesions = pd.read_csv(out / "lesions.csv", dtype={"subject_id": str, "timepoint": str},
                              usecols=["subject_id", "timepoint", "voxel_count"])
        got = {k: sorted_counts(g) for k, g in lesions.groupby(["subject_id", "timepoint"])
               ["voxel_count"]}
        for key, want in expected.items():
            if got.get(key, []) != want:
                raise Disagreement(f"cnsvol run --jobs {jobs} disagrees with the floor for "
                                   f"{key}:\n  floor: {want}\n  run:   {got.get(key)}")

    # ---------------------------------------------------------------- (f) memory
    def memory(self) -> None:
        plan = [
            ("rss_imports", "(f) RSS after imports only (python + cnsvol)", "imports",
             P240["uint8"]),
            ("rss_floor512", "(f) peak RSS, floor, 512 pair", "floor", P512),
            ("rss_compare240", "(f) peak RSS, cnsvol.compare, 240 pair", "compare", P240["uint8"]),
            ("rss_compare512", "(f) peak RSS, cnsvol.compare, 512 pair", "compare", P512),
            ("rss_naive512", "(f) peak RSS, naive script, 512 pair", "naive", P512),
        ]
        naive512 = self.add(Measure("naive512", "(d) naive script, 512 pair uint8 (one run)",
                                    "ms", floor_key="floor512",
                                    note="timed inside the memory run"))
        for key, label, mode, pair in plan:
            m = self.add(Measure(key, label, "MB"))
            maxrss = []
            for _ in range(self.args.memory_runs):
                log(f"memory: {key}")
                res = run_fresh(mode, self.path(pair[0]), self.path(pair[1]))
                if mode == "imports":
                    m.values.append(res["import_kib"] * 1024 / MB)
                    maxrss.append(res["import_maxrss_kib"] * 1024 / MB)
                    continue
                self.check(label, pair, res["counts"])
                m.values.append(res["peak_kib"] * 1024 / MB)
                maxrss.append(res["maxrss_kib"] * 1024 / MB)
                if key == "rss_naive512":
                    naive512.values.append(res["seconds"] * 1000.0)
            m.note = f"fresh process, VmHWM (ru_maxrss {statistics.median(maxrss):.0f} MB)"
            if mode == "compare":
                m.note += f"; after imports {res['import_kib'] * 1024 / MB:.0f} MB"

    # ---------------------------------------------------------------- (g) start-up
    def startup(self) -> None:
        cli = cnsvol_command()
        cmds = {
            "help": [*cli, "--help"],
            "import_numpy": [sys.executable, "-c", "import numpy"],
            "python_bare": [sys.executable, "-c", "pass"],
        }
        ms = {
            "help": self.add(Measure("startup_help", "(g) cnsvol --help", "ms",
                                     note=" ".join(shlex.quote(c) for c in cmds["help"]))),
            "import_numpy": self.add(Measure("startup_numpy", '(g) python -c "import numpy"',
                                             "ms")),
            "python_bare": self.add(Measure("startup_bare", '(g) python -c "pass"', "ms")),
        }
        for name, cmd in cmds.items():  # warm the file cache, check it works
            proc = subprocess.run(cmd, capture_output=True, check=False)
            if proc.returncode != 0:
                raise Disagreement(f"{cmd} exited {proc.returncode}: {proc.stderr[-2000:]!r}")
        log(f"start-up: {len(cmds)} commands x {self.args.startup_runs} runs")
        for _ in range(self.args.startup_runs):
            for name, cmd in cmds.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
                ms[name].values.append((time.perf_counter() - t0) * 1000.0)

    # ---------------------------------------------------------------- profile (on demand)
    def profile(self) -> str:
        import cProfile
        import io
        import pstats

        a, b = self.path(P240["uint8"][0]), self.path(P240["uint8"][1])
        compare_pair(a, b)  # warm-up (lazy imports)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(self.args.repeats):
            compare_pair(a, b)
        prof.disable()
        s = io.StringIO()
        st = pstats.Stats(prof, stream=s).strip_dirs()
        s.write(f"cProfile of cnsvol.compare on the 240 pair, {self.args.repeats} calls\n")
        st.sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(25)
        return s.getvalue()


# =============================================================================== helpers

_FRESH = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import run_benchmarks as rb
mode, a, b = sys.argv[2:5]
if mode in ("compare", "imports"):
    import cnsvol, cnsvol.pipeline  # reading, measuring, matching, response
elif mode == "naive":
    import nibabel, skimage.measure
elif mode == "floor":
    import cc3d
def hwm_kib():
    # VmHWM: this process's own peak RSS since exec. ru_maxrss can also hold the launching
    # process's high-water mark, inherited through fork + exec on Linux.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
out = {"import_kib": hwm_kib(),
       "import_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
if mode != "imports":
    fn, norm = rb.PIPELINES[mode]
    t0 = time.perf_counter()
    res = fn(a, b)
    out["seconds"] = time.perf_counter() - t0
    out["counts"] = norm(res)
out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["peak_kib"] = hwm_kib()
if out["peak_kib"] is None:  # no /proc: fall back to ru_maxrss
    out["peak_kib"], out["import_kib"] = out["maxrss_kib"], out["import_maxrss_kib"]
print(json.dumps(out))
"""


def run_fresh(mode: str, a: Path, b: Path) -> dict:
    """Run one pipeline on one pair in a new interpreter; ru_maxrss is in KiB on Linux."""
    proc = subprocess.run([sys.executable, "-c", _FRESH, str(HERE), mode, str(a), str(b)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Disagreement(f"fresh-process {mode} run failed ({proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cnsvol_command() -> list[str]:
    """The installed ``cnsvol`` entry point beside this interpreter (not a pyenv shim)."""
    beside = Path(sys.executable).parent / "cnsvol"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("cnsvol")
    return [found] if found else [sys.executable, "-m", "cnsvol_cli"]


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "cli"],
                           capture_output=True, text=True, check=False).stdout.strip()
    libs = ", ".join(f"{name} {_version(dist)}" for name, dist in (
        ("cnsvol", "cnsvol"), ("numpy", "numpy"), ("nibabel", "nibabel"),
        ("SimpleITK", "SimpleITK"), ("scikit-image", "scikit-image"), ("scipy", "scipy"),
        ("cc3d", "connected-components-3d"), ("isal", "isal"), ("zlib-ng", "zlib-ng"),
        ("pandas", "pandas")))
    return [
        ("date (UTC)", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")),
        ("cnsvol source",
         f"git {git}" + (" + uncommitted changes in src/ or cli/" if dirty else "")),
        ("CPU", f"{cpu}; nproc {os.cpu_count()}, usable {affinity}; RAM {mem}"),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("libraries", libs),
    ]


# =============================================================================== report

TARGETS: list[tuple[str, str, str, Callable[[dict[str, float]], float], str, float]] = [
    # (name, value format, goal text, value from medians, comparison, bound)
    ("cnsvol.compare / floor, 240 pair", "{:.2f}x", "<= 1.5x",
     lambda m: m["compare240"] / m["floor240"], "<=", 1.5),
    ("SimpleITK peer / cnsvol.compare, 240 pair", "{:.2f}x", ">= 2x",
     lambda m: m["sitk240"] / m["compare240"], ">=", 2.0),
    ("naive script / cnsvol.compare, 240 pair", "{:.1f}x", ">= 10x",
     lambda m: m["naive240"] / m["compare240"], ">=", 10.0),
    ("peak RSS of cnsvol.compare, 512 pair", "{:.0f} MB", "< 1000 MB",
     lambda m: m["rss_compare512"], "<", 1000.0),
    ("cnsvol run pairs/s, 2 workers / 1 worker", "{:.2f}x", ">= 1.7x",
     lambda m: m["cohort_j2"] / m["cohort_j1"], ">=", 1.7),
    ("cnsvol --help / python -c 'import numpy'", "{:.2f}x", "<= 1.5x",
     lambda m: m["startup_help"] / m["startup_numpy"], "<=", 1.5),
    ("cross-grid / same-grid cnsvol.compare, 240", "{:.2f}x", "<= 3x",
     lambda m: m["compare240_cross"] / m["compare240"], "<=", 3.0),
]


def _fmt_value(m: Measure) -> str:
    v = m.median
    if m.unit == "ms":
        return f"{v / 1000:.2f} s" if v >= 10_000 else f"{v:.1f} ms"
    if m.unit == "pairs/s":
        return f"{v:.1f} pairs/s"
    return f"{v:.0f} {m.unit}"


def _spread(m: Measure) -> str:
    if len(m.values) < 2:
        return ""
    q = np.percentile(m.values, [25, 75])
    if m.unit == "ms":
        return f"{q[0]:.1f}-{q[1]:.1f}"
    return f"{q[0]:.1f}-{q[1]:.1f}"


def render(bench: Bench, command: str, title_note: str) -> str:
    med = {k: m.median for k, m in bench.lines.items() if m.values}
    out = [f"# cnsvol benchmark results{title_note}", "",
           ("Reproduce (from the repository root; the masks are generated into the data folder "
            "by `benchmarks/make_masks.py` when missing):"), "", "```bash", command, "```", ""]
    out += ["| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in machine()]
    out += ["", "## Measurements (medians)", "",
            "| measurement | median | runs | IQR | x floor | notes |",
            "|---|---:|---:|---:|---:|---|"]
    order = sorted(bench.lines.values(), key=lambda m: (m.label[:3], "512" in m.key))
    for m in order:
        if not m.values:
            continue
        ratio = ""
        if m.floor_key and m.floor_key in med and m.key != m.floor_key:
            ratio = f"{m.median / med[m.floor_key]:.2f}"
        elif m.key == m.floor_key:
            ratio = "1.00"
        out.append(f"| {m.label} | {_fmt_value(m)} | {len(m.values)} | {_spread(m)} | "
                   f"{ratio} | {m.note} |")
    out += ["", "## Targets (issue 5; ratios within this one run)", "",
            "| target | value | goal | result |", "|---|---:|---:|---|"]
    for name, fmt, goal, value, op, bound in TARGETS:
        try:
            v = value(med)
        except KeyError:
            out.append(f"| {name} | - | {goal} | not measured |")
            continue
        ok = {"<=": v <= bound, ">=": v >= bound, "<": v < bound}[op]
        out.append(f"| {name} | {fmt.format(v)} | {goal} | {'PASS' if ok else 'FAIL'} |")
    out += ["", ("All pipelines agreed on every lesion's voxel count (sorted component sizes) "
                 "on every file they read before any time above was taken.")]
    out += [f"- {n}" for n in bench.notes]
    return "\n".join(out) + "\n"


# =============================================================================== main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Benchmark cnsvol against the floor and peers (issue 5).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--quick", action="store_true",
                   help="fast check: 5 repeats (2 at 512), 100-pair cohort, 5 start-up runs")
    p.add_argument("--only", metavar="NAME[,NAME]",
                   help=f"run only these sections: {', '.join(SECTIONS + EXTRA_SECTIONS)}")
    p.add_argument("--repeats", type=int, help="timed rounds on the 240 pair (default 30; quick 5)")
    p.add_argument("--repeats-512", type=int,
                   help="timed rounds on the 512 pair (default 7; quick 2)")
    p.add_argument("--cohort-pairs", type=int, help="pairs in the cohort manifest (default 1000; "
                   "quick 100)")
    p.add_argument("--cohort-repeats", type=int,
                   help="runs of the cohort per worker count, interleaved (default 3; quick 1)")
    p.add_argument("--memory-runs", type=int, default=1,
                   help="fresh-process runs per memory line (default 1)")
    p.add_argument("--startup-runs", type=int, help="runs of each start-up command (default 15; "
                   "quick 5)")
    p.add_argument("--sitk-threads", type=int, default=1,
                   help="ITK threads for the SimpleITK peer (default 1, like the other pipelines)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"folder of generated masks (default {DEFAULT_DATA})")
    p.add_argument("--write", action="store_true",
                   help="write RESULTS.md even for a --quick or --only run")
    p.add_argument("--no-write", action="store_true", help="never write RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS_MD, help="where to write RESULTS.md")
    return p


def main(argv: list[str] | None = None) -> int:
    global _SITK_THREADS
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (5 if quick else 30)
    args.repeats_512 = args.repeats_512 or (2 if quick else 7)
    args.cohort_pairs = args.cohort_pairs or (100 if quick else 1000)
    args.startup_runs = args.startup_runs or (5 if quick else 15)
    args.cohort_repeats = args.cohort_repeats or (1 if quick else 3)
    _SITK_THREADS = args.sitk_threads
    if args.only:
        sections = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = sections - set(SECTIONS + EXTRA_SECTIONS)
        if unknown:
            build_parser().error(f"unknown section(s) {sorted(unknown)}; choose from "
                                 f"{', '.join(SECTIONS + EXTRA_SECTIONS)}")
    else:
        sections = set(SECTIONS)

    sys.path.insert(0, str(HERE))
    import make_masks

    make_masks.ensure(args.data)
    bench = Bench(args)
    t_start = time.perf_counter()
    try:
        if "profile" in sections:
            print(bench.profile())
            sections.discard("profile")
            if not sections:
                return 0
        if "memory" in sections:
            bench.memory()
        if sections & {"floor", "compare", "sitk", "naive"}:
            bench.in_process(sections)
        if "cohort" in sections:
            bench.cohort()
        if "startup" in sections:
            bench.startup()
    except Disagreement as exc:
        print("\n" + "!" * 78 + f"\nBENCHMARK ABORTED: {exc}\n" + "!" * 78, file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t_start
    bench.notes.append(f"whole run: {elapsed / 60:.1f} min")
    if args.sitk_threads != 1:
        bench.notes.append(f"SimpleITK peer ran with {args.sitk_threads} threads")

    command = "python benchmarks/run_benchmarks.py" + (" " + shlex.join(argv) if argv else "")
    partial = bool(quick or args.only)
    title_note = " (partial: " + ("--quick" if quick else "") + (
        f" --only {args.only}" if args.only else "") + ")" if partial else ""
    text = render(bench, command, title_note)
    print(text)
    if not args.no_write and (args.write or not partial):
        args.results.write_text(text)
        log(f"wrote {args.results}")
    else:
        log("RESULTS.md not written (partial run; add --write to write it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
