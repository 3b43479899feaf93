"""Small geometric helpers shared by the lesion measurements (no I/O, no lesion logic)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "axial_axis",
    "feret_diameter_mm",
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


def feret_diameter_mm(points_index: np.ndarray, linear: np.ndarray) -> float:
    """Largest distance in mm between any two points given in voxel-index coordinates.

    ``linear`` is the 3x3 (or 3x2 for in-plane points) part of the affine that maps index
    differences to millimetres. Convexity is preserved by affine maps, so the convex hull is
    taken in index space and only its vertices are compared in world space.
    """
    pts = np.asarray(points_index, dtype=np.float64)
    if len(pts) < 2:
        return 0.0
    if len(pts) > 128:  # below this, all pairs are cheaper than building a hull
        from scipy.spatial import ConvexHull, QhullError

        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # degenerate (collinear/coplanar) set: compare all points
            pass
    world = pts @ np.asarray(linear, dtype=np.float64).T
    best = 0.0
    # chunked all-pairs distance, bounded memory even for large hulls
    for start in range(0, len(world), 512):
        block = world[start : start + 512]
        d2 = ((block[:, None, :] - world[None, :, :]) ** 2).sum(axis=-1)
        best = max(best, float(d2.max()))
    return float(np.sqrt(best))


def sphere_equivalent_diameter_mm(volume_mm3: float) -> float:
    """Diameter of the sphere with the given volume: ``(6 V / pi) ** (1/3)``."""
    return float((6.0 * max(volume_mm3, 0.0) / np.pi) ** (1.0 / 3.0))
