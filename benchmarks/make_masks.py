"""Generate the benchmark masks: realistic, seeded, byte-for-byte reproducible.

    python benchmarks/make_masks.py [OUT_DIR]        # default: /tmp/cnsvol-bench-masks

The masks are generated data: never commit them. ``run_benchmarks.py`` calls :func:`ensure`,
which (re)generates them when the folder is missing or was written by another version of this
file (``masks.json`` records a SHA-256 of this source).

Lesions are brain-metastasis-like blobs defined in world space (RAS+ mm) and rendered onto any
voxel grid by testing each voxel centre, so that the same lesion can be drawn on the baseline
grid and on a different follow-up grid:

* a rotated ellipsoid whose surface radius carries a low-frequency perturbation
  ``1 + sum_k a_k cos(f_k (d . u_k) + phi_k)`` (``d`` the direction from the centre in the
  ellipsoid's own normalised axes, ``f_k`` of 1-3 cycles, total amplitude <= 0.3), so the
  lesion is irregular but star-shaped (one connected piece);
* with 0-2 overlapping satellite lobes (smaller ellipsoids centred inside the main body).

Radii are log-uniform (2.5-13 mm): a few large lesions, many small ones. Lesions are placed
inside a brain-sized ellipsoid, with room to grow between them. The follow-up scales every
lesion about its centre by a volume factor of 0.35-1.6 (shrinking and growing), drops one small
lesion (resolved) and adds one new small lesion far from the others.

Written files (NIfTI-1, gzip level 6, gzip mtime 0, so the bytes are reproducible):

    pair240/{baseline,followup}_uint8.nii.gz     240x240x155 at 1 mm, 12 lesions, binary 0/1
    pair240/{baseline,followup}_int16.nii.gz     the same voxels stored as int16
    pair240/{baseline,followup}_float32.nii.gz   the same voxels as a float32 probability map:
                                                  lesion voxels 0.55-1.0, a soft shell 0-0.45
                                                  outside, so ``>= 0.5`` gives the same mask
    pair240/followup_crossgrid_uint8.nii.gz      the follow-up lesions on another grid:
                                                  266x266x130 at 0.9x0.9x1.2 mm, origin shifted
    pair512/{baseline,followup}_uint8.nii.gz     512x512x300 at 0.47x0.47x0.6 mm, 15 lesions
    cohort/pair{1,2,3}/{baseline,followup}.nii.gz  three more 240 pairs (5, 9 and 20 lesions)
    masks.json                                    what was written, with SHA-256 of each file
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from make_fixtures import rotation, save_nifti  # noqa: E402  (one renderer of record)

DEFAULT_OUT = Path("/tmp/cnsvol-bench-masks")
SEED = 20240505
GZIP_LEVEL = 9  # the level of fixtures/make_fixtures.save_nifti, recorded in meta
SOURCE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

# Brain-sized region (RAS+ mm) where lesion centres are drawn: an ellipsoid about the origin.
BRAIN_SEMI_AXES_MM = (62.0, 78.0, 52.0)
MAX_GROWTH_LINEAR = 1.6 ** (1 / 3)  # the largest follow-up volume factor, as a radius factor
SHELL_WIDTH = 0.15  # soft edge of the float32 map, in units of the normalised radius


@dataclass(frozen=True)
class Lobe:
    """A satellite ellipsoid in the lesion's normalised frame (main body = unit sphere)."""

    offset: tuple[float, float, float]
    radii: tuple[float, float, float]


@dataclass(frozen=True)
class Harmonic:
    """One low-frequency term of the radial perturbation."""

    direction: tuple[float, float, float]  # unit vector
    cycles: float
    phase: float
    amplitude: float


@dataclass(frozen=True)
class Lesion:
    centre_ras_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    angles_deg: tuple[float, float, float]
    harmonics: tuple[Harmonic, ...]
    lobes: tuple[Lobe, ...]

    def scaled(self, factor: float) -> Lesion:
        """The same shape, every radius times ``factor`` (about the same centre)."""
        return replace(self, radii_mm=tuple(r * factor for r in self.radii_mm))  # type: ignore

    @property
    def reach_mm(self) -> float:
        """A radius (mm) about the centre that contains the whole lesion."""
        body = 1.0 + sum(h.amplitude for h in self.harmonics)
        lobes = max((np.linalg.norm(lb.offset) + max(lb.radii) for lb in self.lobes), default=0)
        return max(self.radii_mm) * max(body, float(lobes)) * (1.0 + SHELL_WIDTH) + 1.0


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def affine(self) -> np.ndarray:
        """Axis-aligned RAS+ affine of a grid centred on the origin, then shifted."""
        affine = np.diag([*self.spacing_mm, 1.0])
        half = (np.array(self.shape) - 1) / 2.0 * np.array(self.spacing_mm)
        affine[:3, 3] = -half + np.array(self.origin_shift_mm)
        return affine


GRID_240 = Grid((240, 240, 155), (1.0, 1.0, 1.0))
GRID_240_CROSS = Grid((266, 266, 130), (0.9, 0.9, 1.2), (1.3, -2.05, 0.7))
GRID_512 = Grid((512, 512, 300), (0.47, 0.47, 0.6))




def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def random_lesion(rng: np.random.Generator, centre: np.ndarray, radius_mm: float) -> Lesion:
    radii = radius_mm * rng.uniform(0.75, 1.25, size=3)
    n_harm = int(rng.integers(2, 5))
    amps = rng.uniform(0.3, 1.0, size=n_harm)
    amps *= rng.uniform(0.12, 0.3) / amps.sum()
    harmonics = tuple(
        Harmonic(tuple(float(x) for x in _unit(rng)), float(rng.integers(1, 4)),  # type: ignore
                 float(rng.uniform(0, 2 * np.pi)), float(a))
        for a in amps
    )
    lobes = tuple(
        Lobe(tuple(float(x) for x in _unit(rng) * rng.uniform(0.55, 0.85)),  # type: ignore
             tuple(float(x) for x in rng.uniform(0.35, 0.6, size=3)))  # type: ignore
        for _ in range(int(rng.integers(0, 3)))
    )
    return Lesion(tuple(float(x) for x in centre), tuple(float(r) for r in radii),  # type: ignore
                  tuple(float(a) for a in rng.uniform(0, 180, size=3)), harmonics, lobes)


def _fits(centre: np.ndarray, reach: float, others: list[Lesion], margin_mm: float) -> bool:
    return all(
        np.linalg.norm(centre - np.array(o.centre_ras_mm)) > reach + o.reach_mm * MAX_GROWTH_LINEAR
        + margin_mm for o in others
    )


def _random_centre(rng: np.random.Generator) -> np.ndarray:
    while True:
        u = rng.uniform(-1, 1, size=3)
        if (u ** 2).sum() <= 1.0:
            return u * np.array(BRAIN_SEMI_AXES_MM)


def place_lesions(rng: np.random.Generator, n: int) -> list[Lesion]:
    """``n`` lesions, largest first, that stay apart even after the follow-up growth."""
    radii = np.sort(np.exp(rng.uniform(np.log(2.5), np.log(13.0), size=n)))[::-1]
    out: list[Lesion] = []
    for r in radii:
        for _ in range(10_000):
            les = random_lesion(rng, _random_centre(rng), float(r))
            if _fits(np.array(les.centre_ras_mm), les.reach_mm * MAX_GROWTH_LINEAR, out, 4.0):
                out.append(les)
                break
        else:
            raise RuntimeError("no room for another lesion; lower n")
    return out


def follow_up(rng: np.random.Generator, baseline: list[Lesion]) -> list[Lesion]:
    """Every lesion scaled (volume x 0.35-1.6), the smallest one resolved, one new lesion."""
    factors = rng.uniform(0.35, 1.6, size=len(baseline)) ** (1 / 3)
    kept = [les.scaled(float(f)) for les, f in zip(baseline[:-1], factors[:-1])]
    for _ in range(10_000):
        new = random_lesion(rng, _random_centre(rng), float(rng.uniform(3.0, 5.0)))
        if _fits(np.array(new.centre_ras_mm), new.reach_mm, baseline, 10.0):
            return kept + [new]
    raise RuntimeError("no room for a new lesion")


def _field(les: Lesion, local: np.ndarray) -> np.ndarray:
    """Signed margin in the normalised frame: >= 0 inside the lesion, < 0 outside."""
    q = local / np.array(les.radii_mm)
    rho = np.sqrt((q ** 2).sum(axis=1))
    d = q / np.maximum(rho, 1e-12)[:, None]
    surface = np.ones_like(rho)
    for h in les.harmonics:
        surface += h.amplitude * np.cos(h.cycles * np.pi * (d @ np.array(h.direction)) + h.phase)
    margin = surface - rho
    for lb in les.lobes:
        ql = (q - np.array(lb.offset)) / np.array(lb.radii)
        margin = np.maximum(margin, (1.0 - np.sqrt((ql ** 2).sum(axis=1))) * min(lb.radii))
    return margin


def render(lesions: list[Lesion], grid: Grid, dtype: str) -> np.ndarray:
    """The mask on ``grid`` (array ``[i, j, k]``, Fortran order): 0/1 for integer dtypes, a
    probability map for float32 (lesion voxels >= 0.55, a soft shell < 0.45 around them)."""
    shape = np.array(grid.shape)
    affine = grid.affine
    inv = np.linalg.inv(affine)
    data = np.zeros(grid.shape, dtype=dtype, order="F")
    for les in lesions:
        c = np.array(les.centre_ras_mm)
        reach = les.reach_mm
        corners = np.array([[c[0] + sx * reach, c[1] + sy * reach, c[2] + sz * reach, 1.0]
                            for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        idx = (inv @ corners.T)[:3].T
        lo = np.clip(np.floor(idx.min(axis=0)).astype(int), 0, shape)
        hi = np.clip(np.ceil(idx.max(axis=0)).astype(int) + 1, 0, shape)
        if np.any(hi <= lo):
            continue
        ii, jj, kk = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij")
        ijk = np.stack([ii, jj, kk], axis=-1).reshape(-1, 3).astype(float)
        world = ijk @ affine[:3, :3].T + affine[:3, 3]
        margin = _field(les, (world - c) @ rotation(les.angles_deg))
        box = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if np.dtype(dtype).kind == "f":
            s = margin / SHELL_WIDTH
            p = np.where(s >= 0, 0.55 + 0.45 * np.minimum(s, 1.0), 0.45 * np.maximum(1.0 + s, 0.0))
            box[...] = np.maximum(box, p.reshape(box.shape).astype(dtype))
        else:
            box[(margin >= 0).reshape(box.shape)] = 1
    return data




def generate(out: Path, *, verbose: bool = True) -> dict:
    """Write every benchmark mask into ``out``; return the description stored in masks.json."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    files: dict[str, dict] = {}

    def write(rel: str, lesions: list[Lesion], grid: Grid, dtype: str) -> None:
        t0 = time.perf_counter()
        save_nifti(out / rel, render(lesions, grid, dtype), grid.affine)
        files[rel] = {"shape": list(grid.shape), "spacing_mm": list(grid.spacing_mm),
                      "origin_shift_mm": list(grid.origin_shift_mm), "dtype": dtype,
                      "lesions_drawn": len(lesions),
                      "sha256": hashlib.sha256((out / rel).read_bytes()).hexdigest()}
        if verbose:
            print(f"  {rel}  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    base = place_lesions(rng, 12)
    fu = follow_up(rng, base)
    for dtype in ("uint8", "int16", "float32"):
        write(f"pair240/baseline_{dtype}.nii.gz", base, GRID_240, dtype)
        write(f"pair240/followup_{dtype}.nii.gz", fu, GRID_240, dtype)
    write("pair240/followup_crossgrid_uint8.nii.gz", fu, GRID_240_CROSS, "uint8")

    base = place_lesions(rng, 15)
    fu = follow_up(rng, base)
    write("pair512/baseline_uint8.nii.gz", base, GRID_512, "uint8")
    write("pair512/followup_uint8.nii.gz", fu, GRID_512, "uint8")

    for k, n in enumerate((5, 9, 20), start=1):
        base = place_lesions(rng, n)
        fu = follow_up(rng, base)
        write(f"cohort/pair{k}/baseline.nii.gz", base, GRID_240, "uint8")
        write(f"cohort/pair{k}/followup.nii.gz", fu, GRID_240, "uint8")

    meta = {"generator_sha256": SOURCE_SHA256, "seed": SEED, "gzip_level": GZIP_LEVEL,
            "files": files}
    (out / "masks.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def ensure(out: Path, *, verbose: bool = True) -> dict:
    """The masks in ``out``, generated first unless this version of the generator wrote them."""
    stamp = out / "masks.json"
    if stamp.is_file():
        meta = json.loads(stamp.read_text())
        if meta.get("generator_sha256") == SOURCE_SHA256 and all(
            (out / rel).is_file() for rel in meta["files"]
        ):
            return meta
    if verbose:
        print(f"generating benchmark masks in {out} ...", file=sys.stderr)
    return generate(out, verbose=verbose)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    meta = generate(args.out)
    print(f"wrote {len(meta['files'])} masks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
