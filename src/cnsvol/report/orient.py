"""How a scan is shown: axial slices in the radiological convention (anterior up, the patient's
right on the viewer's left), derived from each scan's RAS+ affine, so that LPS- or RAS-stored
grids look alike."""

from __future__ import annotations

import numpy as np

from ..lesions.geometry import axial_axis

__all__ = ["display_point", "display_slice", "layout", "plane"]


def display_slice(volume: np.ndarray, affine: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of ``volume`` as a 2D array ready for ``imshow(origin="upper")``.

    Radiological convention, derived from the affine: rows run anterior (top) to posterior,
    columns run from the patient's right (viewer's left) to the patient's left.
    """
    return orient(plane(volume, int(k), layout(affine)[0]), affine)


def plane(volume: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Slice ``k`` across ``axis``, as a view: ``np.take`` would first copy a column-major
    volume whole into row-major order (a second per call on a 1024 x 1024 x 300 mask)."""
    return volume[tuple(k if a == axis else slice(None) for a in range(volume.ndim))]


def layout(affine: np.ndarray) -> tuple[int, int, int, bool, bool]:
    """(slice axis, vertical voxel axis, horizontal voxel axis, flip rows, flip columns).

    The in-plane voxel axis closest to world x (R-L) is shown horizontally, the other
    vertically. RAS+: +x is the patient's right. Radiological display puts the patient's right
    on the viewer's left, so the column index must run towards -x: flip the columns when the
    horizontal axis points to +x. Anterior up: the top row must be the most anterior, so flip
    the rows when the vertical axis points to +y (anterior).
    """
    ax = axial_axis(affine)
    a, b = (i for i in range(3) if i != ax)
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    h, v = (a, b) if abs(cols[0, a]) >= abs(cols[0, b]) else (b, a)
    return ax, v, h, bool(cols[1, v] > 0), bool(cols[0, h] > 0)


def orient(sl: np.ndarray, affine: np.ndarray) -> np.ndarray:
    ax, v, h, flip_rows, flip_cols = layout(affine)
    a, _ = (i for i in range(3) if i != ax)
    out = sl if v == a else sl.T  # rows = vertical axis, columns = horizontal axis
    if flip_rows:
        out = out[::-1, :]
    if flip_cols:
        out = out[:, ::-1]
    return out


def display_point(ijk: np.ndarray, shape: tuple[int, ...], affine: np.ndarray) -> tuple[float, float]:
    """Where voxel coordinate ``ijk`` (fractional) lands in :func:`display_slice`: (row, col)."""
    _, v, h, flip_rows, flip_cols = layout(affine)
    row = (shape[v] - 1 - ijk[v]) if flip_rows else ijk[v]
    col = (shape[h] - 1 - ijk[h]) if flip_cols else ijk[h]
    return float(row), float(col)
