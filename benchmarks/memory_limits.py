"""Does `--max-gib` bound real memory? The peak resident memory of `cnsvol volumes FILE` (one
fresh process per file, measured with `os.wait4`) against cnsvol's estimate for large real
masks, and against what the file claims for memory bombs, in one run of this script.

    python benchmarks/memory_limits.py            # writes benchmarks/MEMORY.md
    python benchmarks/memory_limits.py --no-write

Masks: the 1024x1024x300 pair of `benchmarks/qc_cost.py` (three lesions) stored as uint8,
int16 and float32 NIfTI and as uint8 NRRD. Bombs (the hostile corpus's, `fixtures/make_hostile.py`):
a .nii.gz of 1600^3 uint8 zeros (3.8 GiB decoded, under the 4 GiB default), one of 1000^3
float32 zeros (3.7 GiB), and one with a 1.5 GB header extension. Each measurement is the median
of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import os
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
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "fixtures"))


def measure(args: list[str]) -> tuple[float, int, str]:
    """(peak RSS in MiB, exit code, last stderr line) of ``cnsvol ARGS`` in a fresh process,
    reaped by ``os.wait4`` (its resource usage is that child's alone)."""
    proc = subprocess.Popen([sys.executable, "-m", "cnsvol_cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return usage.ru_maxrss / 1024, proc.returncode, lines[-1] if lines else ""


def masks(folder: Path) -> dict[str, Path]:
    import SimpleITK as sitk
    from qc_cost import huge_pair

    huge_pair(folder)
    base = folder / "huge_0.nii.gz"
    img = nib.load(str(base))
    data = np.asarray(img.dataobj)
    out = {"1024x1024x300 uint8 .nii.gz": base}
    for dtype, name in ((np.int16, "int16"), (np.float32, "float32")):
        path = folder / f"huge_{name}.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(dtype), img.affine), str(path))
        out[f"1024x1024x300 {name} .nii.gz"] = path
    nrrd = folder / "huge.nrrd"
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    image.SetSpacing([float(v) for v in img.header.get_zooms()])
    sitk.WriteImage(image, str(nrrd), True)
    out["1024x1024x300 uint8 .nrrd"] = nrrd
    return out


def bombs(folder: Path) -> dict[str, tuple[Path, float]]:
    """name -> (file, GiB it claims)."""
    from make_hostile import _bomb, _extension_bomb

    made = {}
    for name, shape, dtype in (("1600^3 uint8 zeros", (1600,) * 3, np.uint8),
                               ("1000^3 float32 zeros", (1000,) * 3, np.float32)):
        path = folder / f"bomb_{np.dtype(dtype).name}.nii.gz"
        path.write_bytes(_bomb(shape, dtype))
        made[name] = (path, float(np.prod(shape)) * np.dtype(dtype).itemsize / 1024**3)
    path = folder / "bomb_extension.nii.gz"
    path.write_bytes(_extension_bomb(np.zeros((20, 20, 20), np.uint8)))
    made["1.5 GB header extension"] = (path, 1.5e9 / 1024**3)
    return made


def estimate_mib(path: Path) -> float:
    """cnsvol's estimate for ``path``, read from the refusal it gives under a limit of the
    file's own size (a compressed file passes the check of its compressed size, not the
    estimate)."""
    import re

    limit = f"{path.stat().st_size / 1024**3:.12f}"
    _, _, line = measure(["volumes", str(path), "--max-gib", limit])
    found = re.search(r"needs an estimated ([0-9,]+) bytes", line)
    if not found:
        raise SystemExit(f"no estimate for {path}: {line}")
    return int(found.group(1).replace(",", "")) / 1024**2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--make", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.make:  # in a child process: see below
        for name, path in masks(Path(args.make)).items():
            print(f"{name}\t{path}")
        return
    rows, bomb_rows = [], []
    with tempfile.TemporaryDirectory(prefix="cnsvol-mem-") as tmp:
        work = Path(tmp)
        # made in another process: a child's peak RSS counts its parent's memory at the fork
        made = subprocess.run([sys.executable, __file__, "--make", str(work)], check=True,
                              capture_output=True, text=True).stdout
        files = dict(line.split("\t") for line in made.strip().splitlines())
        for name, path in ((n, Path(p)) for n, p in files.items()):
            runs = [measure(["volumes", str(path)]) for _ in range(args.repeats)]
            assert all(code == 0 for _, code, _ in runs), runs
            peak = statistics.median(r[0] for r in runs)
            est = estimate_mib(path)
            rows.append(f"| {name} | {path.stat().st_size / 1024**2:.1f} MiB | {peak:.0f} MiB | "
                        f"{est:.0f} MiB | {peak / est:.2f} |")
            print(rows[-1], flush=True)
        for name, (path, claim) in bombs(work).items():
            runs = [measure(["volumes", str(path)]) for _ in range(args.repeats)]
            peak = statistics.median(r[0] for r in runs)
            code, line = runs[0][1], runs[0][2]
            problem = line.split(f"{path}: ", 1)[-1].split(". Fix:")[0]
            problem = problem if len(problem) <= 120 else "\u2026" + problem[-119:]
            bomb_rows.append(f"| {name} | {path.stat().st_size / 1024**2:.1f} MiB | "
                             f"{claim:.2f} GiB | {peak:.0f} MiB | {code} | {problem} |")
            print(bomb_rows[-1], flush=True)
    text = "\n".join([
        "# cnsvol: what `--max-gib` bounds", "",
        "Reproduce (from the repository root):", "", "```bash",
        f"python benchmarks/memory_limits.py --repeats {args.repeats}", "```", "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}. Peak resident memory of `cnsvol volumes FILE` in a "
        f"fresh process (`os.wait4`), median of {args.repeats} runs; the interpreter and "
        "libraries alone take ~45 MiB.", "",
        "Real masks: the estimate checked against `--max-gib` before any voxel is read, and the "
        "peak it bounds (peak / estimate <= 1: the estimate is an upper bound):", "",
        "| mask | file | peak RSS | estimate | peak / estimate |",
        "|---|---:|---:|---:|---:|", *rows, "",
        "Memory bombs under the default `--max-gib 4` (their decoded bytes are under 4 GiB; the "
        "voxels are really in the file):", "",
        "| file | size | claims | peak RSS | exit | message |",
        "|---|---:|---:|---:|---:|---|", *bomb_rows, ""])
    if not args.no_write:
        (ROOT / "benchmarks" / "MEMORY.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
