"""What the per-subject QC pictures cost in a run: `cnsvol run` with QC (the default) against
`--no-qc`, on many small subjects and on one large pair, in one run of this script.

    python benchmarks/qc_cost.py                         # 400 small subjects, the 512 pair
    python benchmarks/qc_cost.py --small 1000 --repeats 3 --no-write

Small subjects: two 96x96x60 masks each with 1-3 ellipsoid lesions (seeded). The large pair:
the 512x512x300 pair of `benchmarks/make_masks.py` (made when missing). Each configuration runs
`--jobs 1 --quiet` in a fresh interpreter, `--repeats` times; the median wall time is reported,
with the ratio QC / no QC. Writes `benchmarks/QC_COST.md` with the exact command.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(tempfile.gettempdir()) / "cnsvol-bench-masks"


def small_cohort(folder: Path, n: int, seed: int = 7) -> Path:
    """``n`` subjects of two 96x96x60 masks (1 x 1 x 2 mm), 1-3 lesions shrinking by 0-60%."""
    rng = np.random.default_rng(seed)
    shape = (96, 96, 60)
    ii, jj, kk = np.indices(shape)
    rows = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for s in range(n):
        lesions = [(rng.uniform(20, 76, 2), rng.uniform(10, 50), rng.uniform(3, 9))
                   for _ in range(int(rng.integers(1, 4)))]
        for t, shrink in enumerate((1.0, rng.uniform(0.4, 1.0))):
            data = np.zeros(shape, np.uint8)
            for (ci, cj), ck, r in lesions:
                rr = r * shrink ** (1 / 3)
                data[(ii - ci) ** 2 + (jj - cj) ** 2 + ((kk - ck) * 2) ** 2 <= rr ** 2] = 1
            path = folder / f"s{s:04d}_{t}.nii.gz"
            nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
            rows.append(f"S{s:04d},{'base' if t == 0 else 'wk8'},{56 * t},{path.name}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def large_pair(folder: Path) -> Path:
    pair = DATA / "pair512"
    if not (pair / "baseline_uint8.nii.gz").is_file():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_masks.py"), str(DATA)],
                       check=True)
    manifest = folder / "manifest512.csv"
    manifest.write_text("subject_id,timepoint,days_from_baseline,mask_path\n"
                        f"B,base,0,{pair / 'baseline_uint8.nii.gz'}\n"
                        f"B,wk8,56,{pair / 'followup_uint8.nii.gz'}\n")
    return manifest


def timed_run(manifest: Path, out: Path, qc: bool) -> float:
    cmd = [sys.executable, "-m", "cnsvol_cli", "run", str(manifest), "--out", str(out),
           "--jobs", "1", "--quiet", "--force"] + ([] if qc else ["--no-qc"])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=400, help="small subjects (default 400)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnsvol-qc-") as tmp:
        work = Path(tmp)
        cases = {f"{args.small} small subjects (96x96x60)": small_cohort(work, args.small),
                 "one 512x512x300 pair": large_pair(work)}
        rows = []
        for name, manifest in cases.items():
            times = {qc: [timed_run(manifest, work / f"out{qc}{r}", qc)
                          for r in range(args.repeats)] for qc in (True, False)}
            med = {qc: statistics.median(v) for qc, v in times.items()}
            rows.append(f"| {name} | {med[True]:.1f} s | {med[False]:.1f} s | "
                        f"{med[True] / med[False]:.2f}x | {med[True] - med[False]:.1f} s |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# cnsvol run: the cost of the QC pictures", "",
        "Reproduce (from the repository root):", "", "```bash",
        f"python benchmarks/qc_cost.py --small {args.small} --repeats {args.repeats}", "```", "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}. `cnsvol run --jobs 1 --quiet --force`, median of "
        f"{args.repeats} runs in a fresh interpreter each.", "",
        "| cohort | with QC | --no-qc | ratio | QC pictures |",
        "|---|---:|---:|---:|---:|", *rows, ""])
    if not args.no_write:
        (ROOT / "benchmarks" / "QC_COST.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
