"""Registration of a follow-up scan to its baseline: time and memory, in one run of this script.

    python benchmarks/registration.py                 # writes benchmarks/REGISTRATION.md
    python benchmarks/registration.py --pairs 3 --no-write

Pairs: a synthetic head (fixtures/make_registration.py: skull, a ventricle, stripes, smooth
texture; 12 lesions) on the 240x240x155 1 mm grid of a BraTS-like subject, and a follow-up that is the same voxels
with its header moved by a seeded rigid transform (3-10 degrees about a random axis, 5-20 mm):
the truth is known, so the accuracy is measured beside the time. For each pair, single-threaded:

* ``compare`` with ``register="none"`` (the masks only: reading, lesions, matching, response);
* ``cnsvol.register`` of the two images alone;
* ``compare`` with ``register="rigid"`` and both images (everything a subject costs).

Reported: the median over pairs of each, their ratio, and the largest error of the registered
lesion centroids against the truth. Memory: a 512x512x300 pair (0.5 x 0.5 x 1 mm) registered in
a fresh process, its peak RSS. Targets (DESIGN.md): a 240x240x155 pair registers in under 3 s,
and a 512x512x300 pair stays under 1.5 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_pair(folder: Path, shape, spacing, seed: int) -> dict:
    """A baseline image and mask, and the follow-up: the same voxels, the header moved."""
    from fixtures.make_registration import head, rigid, write_visit

    img, labels, affine = head(shape, spacing, seed)
    rng = np.random.default_rng(seed + 1000)
    move = rigid(rng.normal(size=3), rng.uniform(3, 10), rng.uniform(5, 20, 3) *
                 rng.choice([-1, 1], 3), rng.uniform(-10, 10, 3))
    base_img, base_mask = write_visit(folder, f"{seed}_base", img, labels, affine)
    fu_img, fu_mask = write_visit(folder, f"{seed}_fu", img, labels, move @ affine)
    return {"base_img": base_img, "base_mask": base_mask, "fu_img": fu_img,
            "fu_mask": fu_mask, "move": move}


def _median_seconds(fn, repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_pairs(n: int, folder: Path) -> dict:
    import SimpleITK as sitk

    import cnsvol

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    rows = []
    for seed in range(n):
        p = write_pair(folder, (240, 240, 155), (1.0, 1.0, 1.0), seed)
        none = _median_seconds(lambda: cnsvol.compare(p["base_mask"], p["fu_mask"],
                                                      register="none"))
        t0 = time.perf_counter()
        reg = cnsvol.register(p["base_img"], p["fu_img"])
        alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = cnsvol.compare(p["base_mask"], p["fu_mask"], baseline_image=p["base_img"],
                             followup_image=p["fu_img"], register="rigid")
        full = time.perf_counter() - t0
        base = np.array([les.centroid_ras_mm for les in res.baseline.lesions])
        moved = base @ p["move"][:3, :3].T + p["move"][:3, 3]
        error = float(np.linalg.norm(reg.map_points(moved) - base, axis=1).max())
        statuses = sorted({str(t.status) for t in res.series.tracks if t.timepoint != "baseline"})
        rows.append({"seed": seed, "compare_none_s": none, "register_s": alone,
                     "compare_registered_s": full, "max_centroid_error_mm": error,
                     "rotation_deg": reg.rotation_deg, "reliable": reg.reliable,
                     "statuses": statuses})
    return {"pairs": rows,
            "median_compare_none_s": statistics.median(r["compare_none_s"] for r in rows),
            "median_register_s": statistics.median(r["register_s"] for r in rows),
            "median_compare_registered_s": statistics.median(r["compare_registered_s"]
                                                            for r in rows)}


_MEMORY_CHILD = """
import sys, json
sys.path.insert(0, {root!r})


def hwm():  # this process's own peak RSS (VmHWM is reset by exec; ru_maxrss is not)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
import SimpleITK as sitk
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
import cnsvol
before = hwm()
reg = cnsvol.register({fixed!r}, {moving!r})
peak = hwm()
print(json.dumps({{"peak_rss_mb": peak, "rss_before_mb": before,
                  "seconds": reg.seconds, "reliable": reg.reliable}}))
"""


def memory(folder: Path) -> dict:
    """Peak RSS of a fresh process (cnsvol imported) registering a 512x512x300 pair written
    beforehand (its VmHWM: the whole process, so an upper bound)."""
    p = write_pair(folder, (512, 512, 300), (0.5, 0.5, 1.0), 99)
    code = _MEMORY_CHILD.format(root=str(ROOT), fixed=str(p["base_img"]),
                                moving=str(p["fu_img"]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(timing: dict, mem: dict) -> str:
    lines = [
        "# Registration benchmark",
        "",
        f"`python benchmarks/registration.py` on {platform.machine()}, Python "
        f"{platform.python_version()}, one thread (SimpleITK's default threads set to 1).",
        "",
        "| pair | compare, no registration (s) | register (s) | compare, registered (s) | "
        "largest centroid error (mm) | rotation (deg) | follow-up statuses |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in timing["pairs"]:
        lines.append(f"| {r['seed']} | {r['compare_none_s']:.2f} | {r['register_s']:.2f} | "
                     f"{r['compare_registered_s']:.2f} | {r['max_centroid_error_mm']:.3f} | "
                     f"{r['rotation_deg']:.2f} | {', '.join(r['statuses'])} |")
    ratio = timing["median_compare_registered_s"] / timing["median_compare_none_s"]
    lines += [
        "",
        f"Medians over {len(timing['pairs'])} pairs (240x240x155, 1 mm): compare without "
        f"registration {timing['median_compare_none_s']:.2f} s; register alone "
        f"{timing['median_register_s']:.2f} s (target < 3 s); compare with registration "
        f"{timing['median_compare_registered_s']:.2f} s, {ratio:.1f}x the compare without.",
        "",
        f"Memory: a 512x512x300 pair (0.5 x 0.5 x 1 mm) registered in a fresh process: peak RSS "
        f"{mem['peak_rss_mb']:.0f} MB ({mem['rss_before_mb']:.0f} MB with cnsvol imported, "
        f"before reading; target < 1.5 GB), {mem['seconds']:.1f} s, reliable "
        f"{mem['reliable']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        timing = time_pairs(args.pairs, Path(tmp))
        mem = memory(Path(tmp))
    text = render(timing, mem)
    print(text)
    if not args.no_write:
        (ROOT / "benchmarks" / "REGISTRATION.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
