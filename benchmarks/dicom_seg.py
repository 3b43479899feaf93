"""Reading a DICOM SEG with cnsvol against highdicom's own volume API, on the same files, in one
run of this script.

    python benchmarks/dicom_seg.py                  # writes benchmarks/DICOM_SEG.md
    python benchmarks/dicom_seg.py --repeats 5 --no-write

For each file, the median over ``--repeats`` rounds (after one warm-up) of

* highdicom: ``pydicom.dcmread`` + ``Segmentation.from_dataset`` + ``get_volume`` of every
  segment (``combine_segments=False``): the floor, the decoded voxels and their geometry;
* cnsvol: ``cnsvol.read_mask``: the same read, plus what cnsvol adds (content detection, the
  truncation check, the series array order, one label per voxel, each segment measured on its
  own voxels, the plausibility checks).

Files: the dcmqi liver SEG and the five overlapping segments of ../shared/realdata (when
present), and SEGs written here with highdicom over synthetic series: the 240x240x155 grid of a
BraTS-like subject (1 mm, 12 lesions in one segment and as 12 segments) and a 512x512x300 CT-like
grid (0.5 x 0.5 x 1 mm, 6 lesions). The target (DESIGN.md): cnsvol within 1.5x of highdicom.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REALDATA = ROOT.parent / "shared" / "realdata" / "dicom" / "dcmqi"


def synthetic(folder: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float],
              n: int, *, segments: bool, seed: int) -> Path:
    """A SEG of ``n`` seeded ellipsoids over a synthetic MR series (one segment, or one per
    lesion)."""
    from fixtures.make_dicom import write_seg, write_series
    from fixtures.make_fixtures import Ellipsoid, grid_affine, render

    rng = np.random.default_rng(seed)
    affine = grid_affine(spacing, shape)
    extent = (np.array(shape) - 1) * np.array(spacing) / 2
    lesions = [Ellipsoid(tuple(rng.uniform(-0.6, 0.6, 3) * extent), tuple(rng.uniform(3, 12, 3)),
                         label=i + 1) for i in range(n)]
    labels = render(lesions, shape, affine, np.uint16)
    name = f"{'x'.join(map(str, shape))}-{n}-{'segs' if segments else 'one'}"
    series = write_series(folder / name / "image", np.zeros(shape, np.int16), affine, name=name)
    return write_seg(folder / name / "seg.dcm", series,
                     labels if segments else (labels > 0).astype(np.uint8), name=name + "/seg")


def _highdicom(path: Path) -> int:
    import highdicom as hd
    import pydicom

    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(str(path)), copy=False)
    vol = seg.get_volume(segment_numbers=list(seg.segment_numbers), combine_segments=False)
    return int(np.count_nonzero(vol.array))


def _cnsvol(path: Path) -> int:
    import cnsvol

    mask = cnsvol.read_mask(path, allow_large_lesions=True)
    return sum(s.voxel_count for s in mask.segments)


def timed(fn, path: Path, repeats: int) -> tuple[float, int]:
    result = fn(path)  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = [(f"realdata {p.name}", p) for p in
                 (REALDATA / "liver.dcm", REALDATA / "partial_overlaps.dcm") if p.is_file()]
        files += [
            ("240x240x155, 12 lesions, 1 segment",
             synthetic(Path(tmp), (240, 240, 155), (1.0, 1.0, 1.0), 12, segments=False, seed=1)),
            ("240x240x155, 12 lesions, 12 segments",
             synthetic(Path(tmp), (240, 240, 155), (1.0, 1.0, 1.0), 12, segments=True, seed=1)),
            ("512x512x300, 6 lesions, 1 segment",
             synthetic(Path(tmp), (512, 512, 300), (0.5, 0.5, 1.0), 6, segments=False, seed=2)),
        ]
        rows = []
        for name, path in files:
            floor, n_floor = timed(_highdicom, path, args.repeats)
            ours, n_ours = timed(_cnsvol, path, args.repeats)
            if n_floor != n_ours:
                print(f"BENCHMARK ABORTED: {name}: highdicom {n_floor} voxels, cnsvol {n_ours}")
                return 2
            rows.append((name, path.stat().st_size, n_ours, floor, ours))
    lines = [
        "# Reading a DICOM SEG: cnsvol against highdicom's volume API",
        "",
        f"Command: `python benchmarks/dicom_seg.py --repeats {args.repeats}`; median of "
        f"{args.repeats} rounds after a warm-up, one process; {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}.",
        "",
        "| file | bytes | segment voxels | highdicom (ms) | cnsvol.read_mask (ms) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {n} | {b:,} | {v:,} | {f * 1e3:.1f} | {o * 1e3:.1f} | {o / f:.2f}x |"
          for n, b, v, f, o in rows),
        "",
        "Target: within 1.5x of highdicom (DESIGN.md). Both read every segment; the voxel counts "
        "(summed over segments) agree on every file, or the benchmark aborts.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        (ROOT / "benchmarks" / "DICOM_SEG.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
