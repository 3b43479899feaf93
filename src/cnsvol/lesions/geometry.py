"""Small geometric helpers shared by the lesion measurements (no I/O, no lesion logic)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "axial_axis",
    "sphere_equivalent_diameter_mm",
    "voxel_to_world",
]


def voxel_to_world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """Map voxel coordinates (n x 3, may be fractional) to world coordinates with ``affine``."""
    ijk = np.asarray(ijk, dtype=np.float64)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis (0, 1 or 2) closest to the superior-inferior world axis.

    Slices perpendicular to it are the "axial slices" on which an in-plane longest diameter is
    measured, as RANO-BM does. For an oblique acquisition they are the acquired, slightly
    oblique, slices.
    """
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(np.abs(cols[2])))


def sphere_equivalent_diameter_mm(volume_mm3: float) -> float:
    """Diameter of the sphere with the given volume: ``(6 V / pi) ** (1/3)``."""
    return float((6.0 * max(volume_mm3, 0.0) / np.pi) ** (1.0 / 3.0))
