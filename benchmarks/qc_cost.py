"""What the per-subject QC pictures cost: the picture of one subject against its measurement,
and `cnsvol run` with QC (the default) against `--no-qc`, in one run of this script.

    python benchmarks/qc_cost.py                         # 400 small subjects, 512 and 1024 pairs
    python benchmarks/qc_cost.py --small 1000 --repeats 3 --no-write

1. In one process, for the 240x240x155 pair of `benchmarks/make_masks.py` (12 lesions), without
   and with an MRI-like image per timepoint (int16, skull-stripped: zero outside the head): the subject's measurement (reading both masks, finding,
   measuring, matching, classifying; `evaluate_subject` without QC) against its QC picture
   (`qc_picture`, reading the images), median of `--repeats` x 5 calls.
2. Runs (`--jobs 1 --quiet --force`, a fresh interpreter each, median of `--repeats`) with QC
   and with `--no-qc`: small subjects (two 96x96x60 masks, 1-3 ellipsoid lesions, seeded), the
   512x512x300 pair of `make_masks.py`, and a 1024x1024x300 pair (0.25 x 0.25 x 0.6 mm, three
   lesions, written here).

Writes `benchmarks/QC_COST.md` with the exact command.
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


def huge_pair(folder: Path) -> Path:
    """Two 1024x1024x300 uint8 masks (0.25 x 0.25 x 0.6 mm), three ellipsoids each, the
    follow-up shrunk; drawn in boxes around each lesion (the whole grid never as float)."""
    shape, spacing = (1024, 1024, 300), np.array([0.25, 0.25, 0.6])
    affine = np.diag([*spacing, 1.0])
    lesions = [((300, 400, 150), 9.0), ((700, 600, 120), 6.0), ((512, 800, 200), 4.0)]
    rows = ["subject_id,timepoint,days_from_baseline,mask_path"]
    for t, factor in enumerate((1.0, 0.8)):
        data = np.zeros(shape, np.uint8)
        for centre, radius_mm in lesions:
            r = radius_mm * factor
            reach = np.ceil(r / spacing).astype(int) + 1
            lo = [max(c - e, 0) for c, e in zip(centre, reach)]
            hi = [min(c + e + 1, n) for c, e, n in zip(centre, reach, shape)]
            box = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
            d2 = sum(((g - c) * sp) ** 2 for g, c, sp in zip(box, centre, spacing))
            data[tuple(slice(a, b) for a, b in zip(lo, hi))][d2 <= r * r] = 1
        path = folder / f"huge_{t}.nii.gz"
        img = nib.Nifti1Image(data, affine)
        img.header.set_data_dtype(np.uint8)
        nib.save(img, str(path))
        rows.append(f"H,{'base' if t == 0 else 'wk8'},{56 * t},{path.name}")
    manifest = folder / "manifest1024.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def picture_vs_measurement(folder: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """Per case (masks only; with an image per timepoint): (median seconds of the measurement,
    of the QC picture) of the 240x240x155 pair (see the module docstring)."""
    from cnsvol import RunConfig, read_manifest
    from cnsvol.batch.evaluate import evaluate_subject
    from cnsvol.pipeline import evaluate_series
    from cnsvol.report.qc import qc_picture

    pair = DATA / "pair240"
    rows = ["subject_id,timepoint,days_from_baseline,mask_path,image_path"]
    for t, name in enumerate(("baseline", "followup")):
        path = folder / f"image240_{t}.nii.gz"
        mri_like(pair / f"{name}_uint8.nii.gz", path, seed=t)
        rows.append(f"P,{name},{56 * t},{pair / f'{name}_uint8.nii.gz'},{path}")
    (folder / "manifest240.csv").write_text("\n".join(rows) + "\n")
    plan = next(iter(read_manifest(folder / "manifest240.csv")))
    series = evaluate_series([s.mask for s in plan.scans],
                             [s.days_from_baseline for s in plan.scans])
    out = {}
    for case, images in (("masks only", None), ("with images", [s.image_path for s in plan.scans])):
        measure, picture = [], []
        for _ in range(repeats * 5):
            t0 = time.perf_counter()
            result = evaluate_subject(plan, RunConfig(qc=False))
            measure.append(time.perf_counter() - t0)
            assert result.ok, result.error
            t0 = time.perf_counter()
            qc_picture(series, images, folder / "qc240", title="P")
            picture.append(time.perf_counter() - t0)
        out[case] = (statistics.median(measure), statistics.median(picture))
    return out


def mri_like(mask_path: Path, path: Path, seed: int) -> None:
    """A skull-stripped T1c-like int16 image on the mask's grid: a head ellipsoid of smooth
    tissue contrast with noise, enhancing lesions, zero outside (as BraTS images are stored)."""
    mask = nib.load(str(mask_path))
    lesion = np.asarray(mask.dataobj) > 0
    rng = np.random.default_rng(seed)
    shape = mask.shape
    ii, jj, kk = np.ogrid[:shape[0], :shape[1], :shape[2]]
    r2 = ((ii - shape[0] / 2) / 70) ** 2 + ((jj - shape[1] / 2) / 88) ** 2 \
        + ((kk - shape[2] / 2) / 62) ** 2
    brain = r2 <= 1.0
    image = (500 + 150 * np.cos(3 * np.sqrt(r2)) + 25 * rng.standard_normal(shape)
             + 500 * lesion) * brain
    nib.save(nib.Nifti1Image(image.astype(np.int16), mask.affine), str(path))


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
                 "one 512x512x300 pair": large_pair(work),
                 "one 1024x1024x300 pair": huge_pair(work)}
        singles = []
        for case, (measure, picture) in picture_vs_measurement(work, args.repeats).items():
            singles.append(f"| 240x240x155 pair, 12 lesions, {case} | {measure * 1000:.0f} ms | "
                           f"{picture * 1000:.0f} ms | {picture / measure:.2f}x |")
            print(singles[-1], flush=True)
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
        f"{time.strftime('%Y-%m-%d')}.", "",
        f"One subject in one process, median of {args.repeats * 5} calls:", "",
        "| subject | measurement | QC picture | picture / measurement |",
        "|---|---:|---:|---:|", *singles, "",
        f"Runs: `cnsvol run --jobs 1 --quiet --force`, median of {args.repeats} runs in a fresh "
        "interpreter each:", "",
        "| cohort | with QC | --no-qc | ratio | QC pictures |",
        "|---|---:|---:|---:|---:|", *rows, ""])
    if not args.no_write:
        (ROOT / "benchmarks" / "QC_COST.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
