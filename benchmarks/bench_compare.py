"""Time ``cnsvol.compare`` on the bundled fixture pair against a naive script, in one run.

    python benchmarks/bench_compare.py [--repeats 15]

Prints medians and the ratio naive / cnsvol. Both pipelines must find the same voxel counts
before any time is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from skimage.measure import label

import cnsvol

PAIR = Path(__file__).resolve().parents[1] / "fixtures" / "pair"
FILES = [PAIR / "baseline.nii.gz", PAIR / "followup.nii.gz"]


def naive() -> list[list[int]]:
    """What a first script does: get_fdata, skimage label, np.unique."""
    out = []
    for f in FILES:
        data = nib.load(str(f)).get_fdata()
        labels = label(data > 0.5, connectivity=3)
        _, counts = np.unique(labels[labels > 0], return_counts=True)
        out.append(sorted(counts.tolist(), reverse=True))
    return out


def ours() -> list[list[int]]:
    r = cnsvol.compare(*FILES)
    return [[les.voxel_count for les in ls.lesions] for ls in (r.baseline, r.followup)]


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if ours() != naive():
        raise SystemExit("pipelines disagree on voxel counts; refusing to report times")
    t_ours, t_naive = median_ms(ours, args.repeats), median_ms(naive, args.repeats)
    print(f"{'pipeline':<28}{'median ms':>10}")
    print(f"{'cnsvol.compare':<28}{t_ours:>10.1f}")
    print(f"{'naive (get_fdata+label)':<28}{t_naive:>10.1f}")
    print(f"ratio naive / cnsvol: {t_naive / t_ours:.2f}x over {args.repeats} repeats")


if __name__ == "__main__":
    main()
