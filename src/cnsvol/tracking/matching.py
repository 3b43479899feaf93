"""Lesion correspondence between two timepoints, in world space (RAS+ mm).

Overlap:

* same grid (same shape, affines equal element-wise within 1e-3 mm): voxels labelled in both
  label images are counted directly;
* different grids (spacing, origin, orientation or field of view differ): the lesion voxels of
  each mask are mapped through the affines to the nearest voxel of the other grid
  (nearest-neighbour resampling) and the other mask's label is read there. This is done in both
  directions and an edge exists when either direction finds overlap, so matching is symmetric
  and a small lesion on a coarse grid is not missed. Resampling is only used to find
  correspondences; every volume stays measured on its native grid, and the result says that
  resampling was used (``resampled=True``).

Fallback: a lesion that overlaps nothing on the other side is paired with the nearest such
lesion when their centroids are within ``max_centroid_distance_mm``. By default that distance
is scaled to lesion size: the sum of the two lesions' sphere-equivalent radii (the distance at
which equal-volume spheres at those centroids would touch). Such pairs are flagged
``matched_by="centroid"``.

Statuses come from the connected components of the bipartite overlap graph, counted as
(lesions before, lesions after): 1:1 ``matched``, 1:n ``split``, n:1 ``merged``, n:m
``complex``, 0:1 ``new``, 1:0 ``resolved``. Swapping the inputs swaps split/merged and
new/resolved and changes nothing else.

Scans are assumed to be co-registered in scanner space. Masks whose world extents do not
intersect at all raise :class:`~cnsvol.errors.GridError` rather than reporting every lesion as
new and resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from ..errors import GridError
from ..lesions.geometry import sphere_equivalent_diameter_mm
from .graphs import component_roots
from .status import MatchedBy, TrackStatus
from ..lesions.lesion import LesionSet

__all__ = ["STATUSES", "Correspondence", "Matching", "match", "status_of"]

STATUSES = tuple(s for s in TrackStatus
                 if s not in (TrackStatus.BASELINE, TrackStatus.UNREGISTERED))
"""The statuses :func:`match` gives a correspondence between two timepoints (a failed
registration later makes them ``unregistered``: :mod:`cnsvol.response.registered`)."""


@dataclass(frozen=True)
class Correspondence:
    """One connected group of lesions across the two timepoints.

    ``overlap_mm3`` is the overlap volume (mean of the two directions when grids differ);
    ``matched_by`` is ``"overlap"``, ``"centroid"`` (fallback) or ``None`` for new/resolved.
    """

    status: TrackStatus
    before_ids: tuple[int, ...]
    after_ids: tuple[int, ...]
    before_volume_mm3: float
    after_volume_mm3: float
    overlap_mm3: float
    matched_by: MatchedBy | None
    centroid_distance_mm: float | None = None

    def swapped(self) -> Correspondence:
        return Correspondence(
            status=self.status.swapped(),
            before_ids=self.after_ids,
            after_ids=self.before_ids,
            before_volume_mm3=self.after_volume_mm3,
            after_volume_mm3=self.before_volume_mm3,
            overlap_mm3=self.overlap_mm3,
            matched_by=self.matched_by,
            centroid_distance_mm=self.centroid_distance_mm,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "before_ids": list(self.before_ids),
            "after_ids": list(self.after_ids),
            "before_volume_mm3": self.before_volume_mm3,
            "after_volume_mm3": self.after_volume_mm3,
            "overlap_mm3": self.overlap_mm3,
            "matched_by": self.matched_by,
            "centroid_distance_mm": self.centroid_distance_mm,
        }


@dataclass(frozen=True)
class Matching:
    """All correspondences between two lesion sets, ordered by a fixed rule (see :func:`match`)."""

    correspondences: tuple[Correspondence, ...]
    same_grid: bool
    resampled: bool
    overlap_mm3: dict[tuple[int, int], float]

    def counts(self) -> dict[TrackStatus, int]:
        out: dict[TrackStatus, int] = dict.fromkeys(STATUSES, 0)
        for c in self.correspondences:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def to_frame(self):  # -> pandas.DataFrame
        import pandas as pd

        rows = [c.to_dict() for c in self.correspondences]
        for r in rows:
            r["before_ids"] = " ".join(map(str, r["before_ids"]))
            r["after_ids"] = " ".join(map(str, r["after_ids"]))
        return pd.DataFrame(rows, columns=list(Correspondence.__dataclass_fields__))


def status_of(n_before: int, n_after: int) -> TrackStatus:
    """Status of a group with ``n_before`` lesions before and ``n_after`` after."""
    if n_before == 0 and n_after == 0:
        raise ValueError("an empty group has no status")
    if n_before == 0:
        return TrackStatus.NEW
    if n_after == 0:
        return TrackStatus.RESOLVED
    if n_before == 1 and n_after == 1:
        return TrackStatus.MATCHED
    if n_before == 1:
        return TrackStatus.SPLIT
    if n_after == 1:
        return TrackStatus.MERGED
    return TrackStatus.COMPLEX


def match(
    before: LesionSet,
    after: LesionSet,
    *,
    max_centroid_distance_mm: float | None = None,
    centroid_fallback: bool = True,
) -> Matching:
    """Find the correspondences between the lesions of two timepoints (see module docstring).

    Correspondences are ordered by the smallest lesion id before (groups with lesions before
    first), then by the smallest lesion id after.
    """
    _check_extents_overlap(before, after)
    same = before.mask.same_grid(after.mask)
    overlap = _overlap_same_grid(before, after) if same else _overlap_cross_grid(before, after)
    edges: dict[tuple[int, int], MatchedBy] = {pair: MatchedBy.OVERLAP for pair in overlap}
    distances: dict[tuple[int, int], float] = {}
    if centroid_fallback:
        for pair, dist in _centroid_pairs(before, after, overlap, max_centroid_distance_mm):
            edges[pair] = MatchedBy.CENTROID
            distances[pair] = dist
    groups = _components(
        [les.lesion_id for les in before.lesions], [les.lesion_id for les in after.lesions], edges
    )
    bvol = {les.lesion_id: les.volume_mm3 for les in before.lesions}
    avol = {les.lesion_id: les.volume_mm3 for les in after.lesions}
    out = []
    for b_ids, a_ids in groups:
        pairs = [(b, a) for b in b_ids for a in a_ids if (b, a) in edges]
        kinds = {edges[p] for p in pairs}
        out.append(
            Correspondence(
                status=status_of(len(b_ids), len(a_ids)),
                before_ids=b_ids,
                after_ids=a_ids,
                before_volume_mm3=float(sum(bvol[i] for i in b_ids)),
                after_volume_mm3=float(sum(avol[i] for i in a_ids)),
                overlap_mm3=float(sum(overlap.get(p, 0.0) for p in pairs)),
                matched_by=None if not kinds else (MatchedBy.OVERLAP if MatchedBy.OVERLAP in kinds
                                                   else MatchedBy.CENTROID),
                centroid_distance_mm=(
                    min(distances[p] for p in pairs) if kinds == {MatchedBy.CENTROID} else None
                ),
            )
        )
    return Matching(
        correspondences=tuple(out), same_grid=same, resampled=not same, overlap_mm3=overlap
    )


# --------------------------------------------------------------------------------------------


def _world_box(ls: LesionSet) -> tuple[np.ndarray, np.ndarray]:
    shape = np.array(ls.mask.shape, dtype=np.float64)
    corners = np.array(list(product(*[(-0.5, s - 0.5) for s in shape])))
    world = corners @ ls.mask.affine[:3, :3].T + ls.mask.affine[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def _check_extents_overlap(before: LesionSet, after: LesionSet) -> None:
    lo1, hi1 = _world_box(before)
    lo2, hi2 = _world_box(after)
    if np.any(np.minimum(hi1, hi2) <= np.maximum(lo1, lo2)):
        raise GridError(
            f"{before.mask.name} and {after.mask.name} do not overlap in world space "
            f"(extents {np.round(lo1, 1).tolist()}..{np.round(hi1, 1).tolist()} mm vs "
            f"{np.round(lo2, 1).tolist()}..{np.round(hi2, 1).tolist()} mm). cnsvol assumes the "
            "scans are co-registered in scanner space: register them, or check the headers."
        )


def _pair_counts(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], int]:
    """Counts of (a label, b label) over aligned label vectors, both labels > 0."""
    sel = (a > 0) & (b > 0)
    if not sel.any():
        return {}
    a, b = a[sel].astype(np.int64), b[sel].astype(np.int64)
    base = int(b.max()) + 1
    uniq, counts = np.unique(a * base + b, return_counts=True)
    return {(int(k // base), int(k % base)): int(c) for k, c in zip(uniq, counts)}


def _labels_at(dst: LesionSet, flat_index: np.ndarray) -> np.ndarray:
    """dst's lesion id at each flat index (in dst's index order); 0 where no lesion."""
    pos = np.searchsorted(dst.voxel_index, flat_index)
    pos = np.minimum(pos, max(len(dst.voxel_index) - 1, 0))
    out = np.zeros(len(flat_index), dtype=np.int64)
    if len(dst.voxel_index):
        hit = dst.voxel_index[pos] == flat_index
        out[hit] = dst.voxel_lesion[pos[hit]]
    return out


def _overlap_same_grid(before: LesionSet, after: LesionSet) -> dict[tuple[int, int], float]:
    vv = before.mask.voxel_volume_mm3
    index = before.voxel_index
    if after.index_order != before.index_order:
        coords = np.unravel_index(index, before.mask.shape, order=before.index_order)
        index = np.ravel_multi_index(coords, after.mask.shape, order=after.index_order)
    found = _labels_at(after, index)
    counts = _pair_counts(before.voxel_lesion.astype(np.int64), found)
    return {pair: n * vv for pair, n in counts.items()}


def _lookup(src: LesionSet, dst: LesionSet) -> tuple[np.ndarray, np.ndarray]:
    """Labels of src's lesion voxels, and dst's label at the nearest dst voxel (0 outside)."""
    ijk = src.voxel_coords()
    to_dst = np.linalg.inv(dst.mask.affine) @ src.mask.affine
    idx = np.rint(ijk @ to_dst[:3, :3].T + to_dst[:3, 3]).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.array(dst.mask.shape)), axis=1)
    found = np.zeros(len(ijk), dtype=np.int64)
    if inside.any():
        flat = np.ravel_multi_index(tuple(idx[inside].T), dst.mask.shape, order=dst.index_order)
        found[inside] = _labels_at(dst, flat)
    return src.voxel_lesion.astype(np.int64), found


def _overlap_cross_grid(before: LesionSet, after: LesionSet) -> dict[tuple[int, int], float]:
    b_lab, a_found = _lookup(before, after)
    a_lab, b_found = _lookup(after, before)
    fwd = {k: n * before.mask.voxel_volume_mm3 for k, n in _pair_counts(b_lab, a_found).items()}
    bwd = {
        (b, a): n * after.mask.voxel_volume_mm3
        for (a, b), n in _pair_counts(a_lab, b_found).items()
    }
    return {
        pair: (fwd.get(pair, 0.0) + bwd.get(pair, 0.0)) / 2.0 for pair in sorted({*fwd, *bwd})
    }


def _centroid_pairs(
    before: LesionSet,
    after: LesionSet,
    overlap: dict[tuple[int, int], float],
    max_distance_mm: float | None,
) -> list[tuple[tuple[int, int], float]]:
    """Greedy 1:1 pairing of lesions that overlap nothing, nearest centroids first.

    Distances and centroids are compared rounded to 1e-6 mm, so float noise from the storage
    order cannot decide a tie; ties are broken by the unordered pair of centroids, so swapping
    the inputs gives the same pairs.
    """
    from scipy.spatial import cKDTree

    taken_b = {b for b, _ in overlap}
    taken_a = {a for _, a in overlap}
    b_free = [les for les in before.lesions if les.lesion_id not in taken_b]
    a_free = [les for les in after.lesions if les.lesion_id not in taken_a]
    if not b_free or not a_free:
        return []
    cb = np.array([les.centroid_ras_mm for les in b_free])
    ca = np.array([les.centroid_ras_mm for les in a_free])
    rb = np.array([sphere_equivalent_diameter_mm(les.volume_mm3) / 2 for les in b_free])
    ra = np.array([sphere_equivalent_diameter_mm(les.volume_mm3) / 2 for les in a_free])
    reach = max_distance_mm if max_distance_mm is not None else float(rb.max() + ra.max())
    near = cKDTree(cb).sparse_distance_matrix(cKDTree(ca), reach, output_type="ndarray")
    candidates = []
    for i, j, dist in zip(near["i"], near["j"], near["v"]):
        limit = max_distance_mm if max_distance_mm is not None else rb[i] + ra[j]
        if dist <= limit:
            tie = tuple(sorted((tuple(np.round(cb[i], 6)), tuple(np.round(ca[j], 6)))))
            candidates.append(
                (round(float(dist), 6), tie, float(dist), b_free[i].lesion_id, a_free[j].lesion_id)
            )
    used_b: set[int] = set()
    used_a: set[int] = set()
    out = []
    for _, _, dist, b_id, a_id in sorted(candidates):
        if b_id not in used_b and a_id not in used_a:
            used_b.add(b_id)
            used_a.add(a_id)
            out.append(((b_id, a_id), dist))
    return out


def _components(
    before_ids: list[int], after_ids: list[int], edges: dict[tuple[int, int], MatchedBy]
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Connected components of the bipartite graph, ordered as documented in :func:`match`."""
    nodes = [("b", i) for i in before_ids] + [("a", i) for i in after_ids]
    roots = component_roots(nodes, [(("b", b), ("a", a)) for b, a in edges])
    groups: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for (side, lid), root in roots.items():
        g = groups.setdefault(root, ([], []))
        (g[0] if side == "b" else g[1]).append(lid)
    result = [(tuple(sorted(b)), tuple(sorted(a))) for b, a in groups.values()]
    big = 10**12
    result.sort(key=lambda g: (g[0][0] if g[0] else big, g[1][0] if g[1] else big))
    return result
