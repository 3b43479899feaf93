"""Memory of `cnsvol run` as the cohort grows: the run's own process must stay flat (results
are stored per subject and the tables streamed from the store, not held), whatever the number
of subjects.

    python benchmarks/cohort_memory.py                 # 250, 500, 1000, 2000 subjects
    python benchmarks/cohort_memory.py --sizes 100,200 --no-write

For each size it generates that many small subjects (two 48x48x32 masks each, 1-4 lesions,
seeded), runs `cnsvol run --jobs 2 --no-qc --quiet` in a fresh interpreter and reads the
peak resident memory (VmHWM, Linux) of the run's process and of its largest worker.
Writes `benchmarks/COHORT_MEMORY.md` with the exact command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_WRAPPER = r"""
import json, os, sys, threading, time
from cnsvol_cli.main import main
peak_workers = [0]
def watch():
    me = os.getpid()
    while True:
        try:
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    try:
                        with open(f'/proc/{pid}/stat') as fh:
                            ppid = int(fh.read().rsplit(')', 1)[1].split()[1])
                        if ppid == me:
                            with open(f'/proc/{pid}/status') as fh:
                                for line in fh:
                                    if line.startswith('VmHWM:'):
                                        peak_workers[0] = max(peak_workers[0], int(line.split()[1]))
                    except (OSError, ValueError, IndexError):
                        pass
        except OSError:
            pass
        time.sleep(0.2)
threading.Thread(target=watch, daemon=True).start()
t0 = time.perf_counter()
code = main(sys.argv[1:])
seconds = time.perf_counter() - t0
with open('/proc/self/status') as fh:
    hwm = [int(l.split()[1]) for l in fh if l.startswith('VmHWM:')][0]
print(json.dumps({"code": code, "seconds": seconds, "main_kib": hwm, "worker_kib": peak_workers[0]}))
"""


def make_cohort(folder: Path, n: int, seed: int = 11) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(seed)
    masks = folder / "masks"
    masks.mkdir(parents=True)
    rows = ["subject_id,timepoint,days_from_baseline,mask_path"]
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    for i in range(n):
        sid = f"P{i:05d}"
        centres = rng.uniform([10, 10, 8], [38, 38, 24], size=(rng.integers(1, 5), 3))
        radii = rng.uniform(2.0, 6.0, size=len(centres))
        scale = rng.uniform(0.4, 1.3)
        for tp, day, r in (("baseline", 0, radii), ("week8", 56, radii * scale)):
            data = np.zeros((48, 48, 32), dtype=np.uint8)
            for c, rad in zip(centres, r):  # the ball, computed in its bounding box only
                lo = np.maximum(np.floor(c - rad).astype(int), 0)
                hi = np.minimum(np.ceil(c + rad).astype(int) + 1, data.shape)
                box = np.indices(hi - lo).transpose(1, 2, 3, 0) + lo
                inside = ((box - c) ** 2).sum(axis=-1) <= rad ** 2
                data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside] = 1
            path = masks / f"{sid}_{tp}.nii.gz"
            nib.save(nib.Nifti1Image(data, affine), str(path))
            rows.append(f"{sid},{tp},{day},masks/{path.name}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def measure(n: int, work: Path) -> dict:
    folder = work / f"cohort{n}"
    manifest = make_cohort(folder, n)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    cmd = [sys.executable, "-c", _WRAPPER, "run", str(manifest), "--out", str(folder / "out"),
           "--jobs", "2", "--no-qc", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    try:
        result = json.loads(last)
    except ValueError:
        raise SystemExit(f"run of {n} subjects failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if result["code"] != 0:
        raise SystemExit(f"run of {n} subjects exited {result['code']}:\n{proc.stderr[-2000:]}")
    shutil.rmtree(folder)
    return {"n": n, **result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="250,500,1000,2000")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if not Path("/proc/self/status").exists():
        raise SystemExit("needs Linux (/proc) to read peak resident memory")
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="cnsvol-cohort-memory-"))
    started = time.time()
    try:
        results = []
        for n in sizes:
            r = measure(n, work)
            results.append(r)
            print(f"{n:6d} subjects: {r['seconds']:.1f} s, run process peak "
                  f"{r['main_kib'] / 1024:.0f} MiB, largest worker peak "
                  f"{r['worker_kib'] / 1024:.0f} MiB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first, last = results[0], results[-1]
    growth = (last["main_kib"] - first["main_kib"]) / 1024
    lines = [
        "# cnsvol run: memory as the cohort grows",
        "",
        "Reproduce (from the repository root):",
        "",
        "```bash",
        f"python benchmarks/cohort_memory.py --sizes {args.sizes}",
        "```",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores; Python {platform.python_version()};"
        f" {time.strftime('%Y-%m-%d', time.gmtime(started))}. Each subject: two 48x48x32 masks"
        " with 1-4 lesions; `--jobs 2 --no-qc --quiet`; peak resident memory (VmHWM).",
        "",
        "| subjects | wall time | subjects/s | run process peak | largest worker peak |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['n']} | {r['seconds']:.1f} s | {r['n'] / r['seconds']:.0f} | "
                     f"{r['main_kib'] / 1024:.0f} MiB | {r['worker_kib'] / 1024:.0f} MiB |")
    worker_growth = (last["worker_kib"] - first["worker_kib"]) / 1024
    lines += ["", f"From {first['n']} to {last['n']} subjects the run process's peak changes by "
              f"{growth:+.1f} MiB ({growth * 1024 / max(last['n'] - first['n'], 1):+.2f} KiB "
              f"per subject) and the largest worker's by {worker_growth:+.1f} MiB.", "",
              "What still grows with the cohort in the run process: one compact plan per "
              "subject (its scans' paths and clinical fields) and the cohort-level outputs "
              "(the ordered store keys, the responder and PFS columns that the statistics "
              "use). The workers' growth is the figures: a waterfall and a spider plot "
              "with one bar or line per subject are drawn in one worker.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        (ROOT / "benchmarks" / "COHORT_MEMORY.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
