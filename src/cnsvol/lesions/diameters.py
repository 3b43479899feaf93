"""Exact voxel-corner Feret diameters of many lesions at once, from their line extremes.

The Feret diameter of a voxelised lesion is the largest distance between two outer voxel
corners (edge to edge, as calipers are placed on an image). Three facts make it cheap:

1. The convex hull of a union of voxels has its vertices among the outer corners of the first
   and last voxel of each line of voxels, so only those two voxels per line matter.
2. Those corners are ``E + S``: the line-end points ``E`` (first - 1/2 and last + 1/2 along
   the line, the line's position across it) plus the unit square ``S`` spanned by the two
   cross axes (in a slice: the unit segment along the one cross axis). The largest distance
   in a Minkowski sum is ``max |W (a - b + e)|`` over ``a, b`` in ``E`` and ``e`` a vertex of
   ``S - S``; up to sign (swapping ``a`` and ``b``) those are 2 vectors in 3D and 1 in a
   slice. Because ``|W (a - b + e)|`` is convex in ``(a, b)``, ``a`` and ``b`` can further be
   restricted to the vertices of the convex hull of ``E``.
3. Distances after the affine's linear part ``W`` are Euclidean distances of ``p @ L`` with
   ``L L^T = W^T W`` (Cholesky), so everything is computed in those coordinates.

Slices (in-plane diameters) are pruned first: the widths of every slice along
``_N_DIRECTIONS`` directions give a lower bound ``w`` of its diameter and an upper bound
``w / cos(pi / 2N)``; only slices whose upper bound exceeds the best exact diameter found so
far are computed exactly, largest bound first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LineEnds", "SliceDiameters", "feret_3d", "feret_in_slices"]

_N_DIRECTIONS = 32
_DIRECTIONS = np.stack(
    [np.cos(np.arange(_N_DIRECTIONS) * np.pi / _N_DIRECTIONS),
     np.sin(np.arange(_N_DIRECTIONS) * np.pi / _N_DIRECTIONS)], axis=1
)
_HULL_MIN_POINTS = 400  # below this, all pairs (cdist) are cheaper than qhull


@dataclass(frozen=True)
class LineEnds:
    """First and last voxel of every (group, line): lines run along voxel axis ``along``, sit
    at ``cross[0]``, ``cross[1]`` on ``cross_axes``; rows sorted so each group is contiguous."""

    group: np.ndarray
    along: int
    cross_axes: tuple[int, int]
    cross: tuple[np.ndarray, np.ndarray]
    first: np.ndarray
    last: np.ndarray


def _gram_factor(linear: np.ndarray) -> np.ndarray:
    """``L`` with ``L L^T = W^T W``: index-space vectors ``v @ L`` have world lengths."""
    w = np.asarray(linear, dtype=np.float64)
    return np.linalg.cholesky(w.T @ w)


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return starts, np.r_[starts[1:], len(keys)]


def _max_sq_distance(y: np.ndarray, shifts: list[np.ndarray]) -> float:
    from scipy.spatial.distance import cdist

    return max(float(cdist(y + s, y, "sqeuclidean").max()) for s in shifts)


def _hull(y: np.ndarray) -> np.ndarray:
    if len(y) < _HULL_MIN_POINTS:
        return y
    from scipy.spatial import ConvexHull, QhullError

    try:
        return y[ConvexHull(y).vertices]
    except QhullError:  # coplanar or collinear: every point may matter
        return y


def _convex_chain(key: np.ndarray, pos: np.ndarray, value: np.ndarray,
                  max_passes: int = 64) -> np.ndarray:
    """Indices of the points ``(pos, value)`` left after dropping, chain by chain (rows sorted
    by ``(key, pos)``, one chain per key), every point that lies on or above the segment
    joining its two neighbours: what remains holds every vertex of the chain's lower convex
    hull. Integer arithmetic, so "on the segment" is exact.

    Each dropped point is a convex combination of points that remain; strict hull vertices
    are never dropped, so the convex hull of what remains is the hull of all the points.
    """
    idx = np.arange(len(key))
    for _ in range(max_passes):
        if len(idx) < 3:
            break
        k, p, v = key[idx], pos[idx], value[idx]
        inner = (k[1:-1] == k[:-2]) & (k[1:-1] == k[2:])
        drop = inner & (v[1:-1] * (p[2:] - p[:-2])
                        >= v[:-2] * (p[2:] - p[1:-1]) + v[2:] * (p[1:-1] - p[:-2]))
        if not drop.any():
            break
        keep = np.ones(len(idx), dtype=bool)
        keep[1:-1] = ~drop
        idx = idx[keep]
    return idx


def _hull_candidates(group, cross0, cross1, first, last) -> tuple[np.ndarray, np.ndarray]:
    """Line ends that can be vertices of a group's convex hull in 3D: those on the convex
    chains of both families of planes through the lines (planes of constant ``cross1``, the
    chains running along ``cross0``, and the other way round). Indices into the line ends,
    for the first ends and for the last ends. Rows sorted by (group, cross1, cross0)."""
    span = int(max(cross0.max(), cross1.max())) + 1
    out = []
    for value in (first.astype(np.int64), -last.astype(np.int64)):  # left and right chains
        key1 = group.astype(np.int64) * span + cross1
        idx = _convex_chain(key1, cross0, value)
        o = np.lexsort((cross1[idx], cross0[idx], group[idx]))
        idx = idx[o]
        key2 = group[idx].astype(np.int64) * span + cross0[idx]
        idx = idx[_convex_chain(key2, cross1[idx], value[idx])]
        out.append(np.sort(idx))
    return out[0], out[1]


def feret_3d(ends: LineEnds, linear: np.ndarray, n_groups: int,
             corners: bool = True) -> np.ndarray:
    """3D Feret diameter (mm) of groups ``0..n_groups-1`` (0 for a group without voxels):
    between outer voxel corners, or with ``corners=False`` between voxel centres.

    ``ends`` holds lines of voxels along ``ends.along``, sorted by (group, cross[1], cross[0]).
    """
    out = np.zeros(n_groups)
    if not len(ends.group):
        return out
    lo = _gram_factor(linear)
    c0, c1 = ends.cross
    i_first, i_last = _hull_candidates(ends.group, c0, c1, ends.first, ends.last)
    pts = np.zeros((len(i_first) + len(i_last), 3))
    half = 0.5 if corners else 0.0
    pts[:, ends.along] = np.r_[ends.first[i_first] - half, ends.last[i_last] + half]
    pts[:, ends.cross_axes[0]] = np.r_[c0[i_first], c0[i_last]]
    pts[:, ends.cross_axes[1]] = np.r_[c1[i_first], c1[i_last]]
    group = np.r_[ends.group[i_first], ends.group[i_last]]
    o = np.argsort(group, kind="stable")
    y, group = pts[o] @ lo, group[o]
    e0, e1 = np.zeros(3), np.zeros(3)
    e0[list(ends.cross_axes)] = (1.0, 1.0)
    e1[list(ends.cross_axes)] = (1.0, -1.0)
    shifts = [e0 @ lo, e1 @ lo] if corners else [np.zeros(3)]
    starts, stops = _segments(group)
    for a, b in zip(starts, stops):
        out[group[a]] = np.sqrt(_max_sq_distance(_hull(y[a:b]), shifts))
    return out


@dataclass(frozen=True)
class SliceDiameters:
    """Per group: the largest in-slice Feret diameter (mm), the longest chord perpendicular to
    it on the same slice (mm), and the number of slices the group lies on."""

    longest: np.ndarray
    perpendicular: np.ndarray
    slices: np.ndarray


def feret_in_slices(ends: LineEnds, linear: np.ndarray, slice_of: np.ndarray,
                    n_groups: int, corners: bool = True) -> SliceDiameters:
    """Largest in-slice Feret diameter (mm) of each group over its slices, the perpendicular
    diameter on that slice and the slice count.

    ``ends`` holds lines lying in the slices (``cross_axes[1]`` is the slice axis, ``cross[1]``
    the slice, equal to ``slice_of``); rows are sorted by (group, slice). With ``corners`` the
    points are the outer voxel corners, otherwise the voxel centres. The perpendicular
    diameter is the longest chord of the slice's convex hull perpendicular to the longest
    diameter (as a reader draws the second axis across the lesion); when several slices have
    the longest diameter, the one with the largest cross-section (most voxels) is measured.
    """
    zeros = np.zeros(n_groups)
    if not len(ends.group):
        return SliceDiameters(zeros, zeros.copy(), np.zeros(n_groups, dtype=np.int64))
    lo = _gram_factor(np.asarray(linear)[:, [ends.along, ends.cross_axes[0]]])
    row = ends.cross[0].astype(np.float64)
    half = 0.5 if corners else 0.0
    y_first = np.column_stack([ends.first - half, row]) @ lo
    y_last = np.column_stack([ends.last + half, row]) @ lo
    shift = np.array([0.0, 1.0 if corners else 0.0]) @ lo  # the unit segment across the line
    # one key per (group, slice); every line contributes its two end points, interleaved so
    # that each (group, slice) stays contiguous
    key = ends.group.astype(np.int64) * (int(slice_of.max()) + 1) + slice_of
    starts, stops = _segments(key)
    y = np.stack([y_first, y_last], axis=1).reshape(-1, 2)
    proj = y @ _DIRECTIONS.T
    width = (np.maximum.reduceat(proj, 2 * starts, axis=0)
             - np.minimum.reduceat(proj, 2 * starts, axis=0)
             + np.abs(shift @ _DIRECTIONS.T))
    lower = width.max(axis=1)
    upper = lower / np.cos(np.pi / (2 * _N_DIRECTIONS)) + 1e-9
    group = ends.group[starts]
    # largest upper bound first within each group; stop a group at its first bound not above
    # its best exact diameter
    order = np.lexsort((-upper, group))
    best = np.zeros(n_groups)
    area = np.add.reduceat(ends.last - ends.first + 1, starts)  # voxels per (group, slice)
    at: dict[int, tuple[int, np.ndarray]] = {}  # group -> (area, hull) of its best slice
    for s in order:
        g = group[s]
        if upper[s] <= best[g]:
            continue
        y_s = _hull(y[2 * starts[s]:2 * stops[s]])
        d = _max_sq_distance(y_s, [shift]) ** 0.5
        if d > best[g] + 1e-9 or (d >= best[g] - 1e-9 and area[s] > at[g][0]):
            best[g], at[g] = max(d, best[g]), (int(area[s]), y_s)
    perp = np.zeros(n_groups)
    for g, (_, y_s) in at.items():
        perp[g] = _perpendicular(np.vstack([y_s, y_s + shift]) if corners else y_s)
    return SliceDiameters(best, perp, np.bincount(group, minlength=n_groups))


def _perpendicular(pts: np.ndarray) -> float:
    """The longest chord of the convex hull of 2D ``pts`` perpendicular to their diameter."""
    from scipy.spatial import ConvexHull, QhullError
    from scipy.spatial.distance import cdist

    try:
        hull = pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):  # collinear (the centres of one line): no width
        return 0.0
    dist = cdist(hull, hull)
    a, b = np.unravel_index(int(np.argmax(dist)), dist.shape)
    u = (hull[b] - hull[a]) / dist[a, b]
    t, h = hull @ u, hull @ np.array([-u[1], u[0]])  # along the diameter, across it
    t1, h1 = np.roll(t, -1), np.roll(h, -1)  # each edge i -> i + 1
    # the chord length across the hull is concave along t: its maximum is at a vertex. At each
    # vertex abscissa x (rows), where every edge (columns) crosses the line t = x
    x = t[:, None]
    span = t1 - t
    flat = np.abs(span) <= 1e-12
    frac = (x - t) / np.where(flat, 1.0, span)
    on = ~flat & (frac >= -1e-12) & (frac <= 1 + 1e-12)
    cross = h + np.clip(frac, 0.0, 1.0) * (h1 - h)
    at_vertex = np.abs(x - t) <= 1e-12  # the vertex itself (covers edges across the line)
    hi = np.maximum(np.where(on, cross, -np.inf).max(axis=1),
                    np.where(at_vertex, h, -np.inf).max(axis=1))
    lo = np.minimum(np.where(on, cross, np.inf).min(axis=1),
                    np.where(at_vertex, h, np.inf).min(axis=1))
    return float(np.max(hi - lo))
