"""Finding and measuring lesions in one mask, on its own native grid.

A lesion is a connected component of the selected foreground (6-, 18- or 26-connectivity;
default 26), or, with ``instance_labels=True``, the set of voxels carrying one label value of a
mask that is already instance-labelled.

Lesion ids are assigned by a fixed rule that does not depend on the order voxels are stored in:
descending voxel count, then ascending centroid x, y, z in RAS+ mm. The largest lesion is 1.
(With ``instance_labels=True`` the id is the stored label value.)

Measurements per lesion:

* ``voxel_count`` and ``volume_mm3`` (voxel count x float64 voxel volume);
* ``centroid_ras_mm``: mean of the voxel centres, mapped through the affine;
* ``bbox_voxel``: per voxel axis ``(start, stop)``, stop exclusive;
* ``longest_diameter_mm``: the largest in-plane diameter on any axial slice (slices
  perpendicular to the voxel axis closest to superior-inferior), as RANO-BM measures it;
* ``max_diameter_3d_mm``: the largest 3D diameter.

  Both diameters are Feret diameters of the voxelised lesion: the largest distance between the
  outer corners of its voxels, i.e. edge to edge as calipers are placed on an image. A row of
  10 voxels of 1 mm spans 10 mm along the row but measures corner to corner
  sqrt(10**2 + 1) = 10.05 mm on its slice (an a x b rectangle: its diagonal);
* ``measurable``: ``longest_diameter_mm >= measurable_min_diameter_mm`` (default 10 mm);
* ``min_detectable_change_mm3``: the volume of a half-voxel shell over the lesion's boundary,
  i.e. exposed voxel faces x (voxel volume / 2) (each face of area ``a`` moved by half the voxel
  depth ``d / 2`` sweeps ``a d / 2``, half a voxel, on any grid). A volume change smaller than
  this cannot be told apart from a boundary shifting by half a voxel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from .geometry import axial_axis, feret_diameter_mm, voxel_to_world
from .io import Mask

__all__ = [
    "DEFAULT_CONNECTIVITY",
    "DEFAULT_MEASURABLE_MM",
    "LESION_COLUMNS",
    "Lesion",
    "LesionSet",
    "find_lesions",
    "label_components",
]

DEFAULT_CONNECTIVITY = 26
DEFAULT_MEASURABLE_MM = 10.0

LESION_COLUMNS = [
    "lesion_id",
    "voxel_count",
    "volume_mm3",
    "centroid_ras_x_mm",
    "centroid_ras_y_mm",
    "centroid_ras_z_mm",
    "longest_diameter_mm",
    "max_diameter_3d_mm",
    "measurable",
    "min_detectable_change_mm3",
    "bbox_i_start",
    "bbox_i_stop",
    "bbox_j_start",
    "bbox_j_stop",
    "bbox_k_start",
    "bbox_k_stop",
]

Backend = Literal["auto", "cc3d", "skimage"]



@dataclass(frozen=True)
class Lesion:
    """One lesion measured on its native grid (see the module docstring for definitions)."""

    lesion_id: int
    voxel_count: int
    volume_mm3: float
    centroid_ras_mm: tuple[float, float, float]
    bbox_voxel: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    longest_diameter_mm: float
    max_diameter_3d_mm: float
    measurable: bool
    min_detectable_change_mm3: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["centroid_ras_mm"] = list(self.centroid_ras_mm)
        d["bbox_voxel"] = [list(b) for b in self.bbox_voxel]
        return d

    def to_row(self) -> dict[str, Any]:
        x, y, z = self.centroid_ras_mm
        (i0, i1), (j0, j1), (k0, k1) = self.bbox_voxel
        return {
            "lesion_id": self.lesion_id,
            "voxel_count": self.voxel_count,
            "volume_mm3": self.volume_mm3,
            "centroid_ras_x_mm": x,
            "centroid_ras_y_mm": y,
            "centroid_ras_z_mm": z,
            "longest_diameter_mm": self.longest_diameter_mm,
            "max_diameter_3d_mm": self.max_diameter_3d_mm,
            "measurable": self.measurable,
            "min_detectable_change_mm3": self.min_detectable_change_mm3,
            "bbox_i_start": i0,
            "bbox_i_stop": i1,
            "bbox_j_start": j0,
            "bbox_j_stop": j1,
            "bbox_k_start": k0,
            "bbox_k_stop": k1,
        }


@dataclass(frozen=True, eq=False)
class LesionSet:
    """The lesions of one mask, and where their voxels are.

    Voxels are kept sparsely: ``voxel_index`` holds the sorted flat indices (in
    ``index_order``, ``"F"`` or ``"C"``, of the mask's shape) of every lesion voxel and
    ``voxel_lesion`` the lesion id of each. :attr:`label_image` builds the dense array (voxel
    value = ``lesion_id``; 0 = background or a component dropped by ``min_volume_mm3``) on
    first use.
    """

    mask: Mask
    voxel_index: np.ndarray
    voxel_lesion: np.ndarray
    index_order: str
    lesions: tuple[Lesion, ...]
    connectivity: int
    min_volume_mm3: float
    measurable_min_diameter_mm: float
    instance_labels: bool
    dropped_below_min_volume: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def lesion_count(self) -> int:
        return len(self.lesions)

    @cached_property
    def label_image(self) -> np.ndarray:
        """Dense label array of the mask's shape: voxel value = lesion id, 0 elsewhere."""
        top = max((les.lesion_id for les in self.lesions), default=0)
        dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
        out = np.zeros(self.mask.shape, dtype=dtype, order=self.index_order)
        out.reshape(-1, order=self.index_order)[self.voxel_index] = self.voxel_lesion
        return out

    def voxel_coords(self) -> np.ndarray:
        """``(n, 3)`` voxel indices ``[i, j, k]`` of every lesion voxel (``voxel_index`` order)."""
        return np.stack(
            np.unravel_index(self.voxel_index, self.mask.shape, order=self.index_order), axis=1
        )

    @property
    def total_volume_mm3(self) -> float:
        return float(sum(les.volume_mm3 for les in self.lesions))

    @property
    def total_min_detectable_change_mm3(self) -> float:
        """Half-voxel shell over every lesion boundary: the measurement band of the total."""
        return float(sum(les.min_detectable_change_mm3 for les in self.lesions))

    @property
    def total_voxel_count(self) -> int:
        return int(sum(les.voxel_count for les in self.lesions))

    def by_id(self) -> dict[int, Lesion]:
        return {les.lesion_id: les for les in self.lesions}

    def to_frame(self):  # -> pandas.DataFrame
        """One row per lesion with the columns of :data:`LESION_COLUMNS`."""
        import pandas as pd

        return pd.DataFrame([les.to_row() for les in self.lesions], columns=LESION_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.mask.name,
            "total_volume_mm3": self.total_volume_mm3,
            "lesion_count": self.lesion_count,
            "voxel_volume_mm3": self.mask.voxel_volume_mm3,
            "spacing_mm": list(self.mask.spacing_mm),
            "shape": list(self.mask.shape),
            "connectivity": self.connectivity,
            "min_volume_mm3": self.min_volume_mm3,
            "dropped_below_min_volume": self.dropped_below_min_volume,
            "notes": list(self.mask.notes) + list(self.notes),
            "lesions": [
                {
                    "lesion_id": les.lesion_id,
                    "voxel_count": les.voxel_count,
                    "volume_mm3": les.volume_mm3,
                    "centroid_ras_mm": list(les.centroid_ras_mm),
                    "longest_diameter_mm": les.longest_diameter_mm,
                    "max_diameter_3d_mm": les.max_diameter_3d_mm,
                    "measurable": les.measurable,
                }
                for les in self.lesions
            ],
        }


def label_components(
    foreground: np.ndarray, connectivity: int = DEFAULT_CONNECTIVITY, backend: Backend = "auto"
) -> tuple[np.ndarray, int]:
    """Label the connected components of a boolean 3D array.

    Returns ``(labels, n)`` with labels ``1..n`` in arbitrary order. ``backend="auto"`` uses
    connected-components-3d when it is installed and scikit-image otherwise; both give the same
    partition of voxels into components (only the label numbers may differ).
    """
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    if backend in ("auto", "cc3d"):
        try:
            import cc3d
        except ImportError:
            if backend == "cc3d":
                raise
        else:
            labels, n = cc3d.connected_components(
                foreground, connectivity=connectivity, return_N=True
            )
            return labels, int(n)
    from skimage.measure import label

    labels, n = label(
        foreground, connectivity={6: 1, 18: 2, 26: 3}[connectivity], return_num=True
    )
    return labels, int(n)


def find_lesions(
    mask: Mask,
    *,
    connectivity: int = DEFAULT_CONNECTIVITY,
    min_volume_mm3: float = 0.0,
    instance_labels: bool = False,
    measurable_min_diameter_mm: float = DEFAULT_MEASURABLE_MM,
    backend: Backend = "auto",
) -> LesionSet:
    """Find and measure every lesion of ``mask`` (see the module docstring).

    Args:
        mask: a mask from :func:`cnsvol.read_mask` or :func:`cnsvol.mask_from_array`.
        connectivity: 6 (faces), 18 (faces + edges) or 26 (faces + edges + corners).
        min_volume_mm3: components smaller than this volume are dropped (and counted).
        instance_labels: treat each stored label value as one lesion (ids = label values)
            instead of computing connected components.
        measurable_min_diameter_mm: a lesion is measurable when its axial longest diameter is
            at least this long.
        backend: connected-components implementation (``"auto"``, ``"cc3d"``, ``"skimage"``).
    """
    if min_volume_mm3 < 0 or not np.isfinite(min_volume_mm3):
        raise ValueError(f"min_volume_mm3 must be a finite number >= 0, got {min_volume_mm3!r}")
    data = mask.data
    order = "F" if data.flags.f_contiguous and not data.flags.c_contiguous else "C"
    foreground = data > 0
    if instance_labels:
        raw_labels = data
        connectivity_used = 0
    else:
        raw_labels, _ = label_components(foreground, connectivity, backend)
        connectivity_used = connectivity
    # lesion voxels found on the boolean foreground (much faster to scan than the labels)
    index = np.flatnonzero(foreground.reshape(-1, order=order))
    lab = raw_labels.reshape(-1, order=order)[index].astype(np.int64)
    del raw_labels, foreground  # the dense label volume is not kept
    nmax = int(lab.max()) + 1 if lab.size else 1
    counts = np.bincount(lab, minlength=nmax)
    present = np.flatnonzero(counts[1:]) + 1
    vv = mask.voxel_volume_mm3
    keep = present[counts[present] * vv >= min_volume_mm3]
    dropped = int(len(present) - len(keep))

    coords = np.unravel_index(index, data.shape, order=order)
    sums = np.stack([np.bincount(lab, weights=a, minlength=nmax) for a in coords], axis=1)
    cent_vox = sums[keep] / counts[keep, None]
    cent_world = voxel_to_world(mask.affine, cent_vox) if len(keep) else np.zeros((0, 3))

    if instance_labels:
        order_keep = np.argsort(keep, kind="stable")
        new_ids = keep[order_keep]
    else:
        # descending voxel count, then ascending RAS x, y, z (rounded so that float noise from
        # a flipped storage order cannot reorder exact ties)
        rounded = np.round(cent_world, 6)
        order_keep = np.lexsort((rounded[:, 2], rounded[:, 1], rounded[:, 0], -counts[keep]))
        new_ids = np.arange(1, len(keep) + 1)
    lut = np.zeros(nmax, dtype=np.int64)
    lut[keep[order_keep]] = new_ids
    top = int(new_ids.max()) if len(new_ids) else 0
    id_dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    ids = lut[lab]
    sel = ids > 0
    index, ids = index[sel], ids[sel]
    coords = tuple(c[sel] for c in coords)

    # group voxels by lesion: one stable sort, then contiguous segments
    by_lesion = np.argsort(ids, kind="stable")
    sorted_ids = ids[by_lesion]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if ids.size else []
    ends = list(starts[1:]) + [len(sorted_ids)] if ids.size else []
    ax = axial_axis(mask.affine)
    rank_of = {int(new_ids[r]): r for r in range(len(new_ids))}
    lesions = []
    for start, end in zip(starts, ends):
        lid = int(sorted_ids[start])
        members = by_lesion[start:end]
        ijk = np.stack([c[members] for c in coords], axis=1)
        lo, hi = ijk.min(axis=0), ijk.max(axis=0) + 1
        crop = np.zeros(tuple(hi - lo), dtype=bool)
        crop[tuple((ijk - lo).T)] = True
        ld_axial, ld_3d = _diameters(crop, mask.affine, ax)
        src = order_keep[rank_of[lid]]
        count = int(counts[keep[src]])
        lesions.append(
            Lesion(
                lesion_id=lid,
                voxel_count=count,
                volume_mm3=float(count * vv),
                centroid_ras_mm=tuple(float(v) for v in cent_world[src]),  # type: ignore[arg-type]
                bbox_voxel=tuple((int(a), int(b)) for a, b in zip(lo, hi)),  # type: ignore[arg-type]
                longest_diameter_mm=ld_axial,
                max_diameter_3d_mm=ld_3d,
                measurable=bool(ld_axial >= measurable_min_diameter_mm),
                min_detectable_change_mm3=float(_exposed_faces(crop) * vv / 2.0),
            )
        )
    lesions.sort(key=lambda les: les.lesion_id)
    notes: list[str] = []
    if dropped:
        notes.append(f"{dropped} component(s) smaller than {min_volume_mm3:g} mm3 dropped")
    return LesionSet(
        mask=mask,
        voxel_index=index,
        voxel_lesion=ids.astype(id_dtype),
        index_order=order,
        lesions=tuple(lesions),
        connectivity=connectivity_used,
        min_volume_mm3=float(min_volume_mm3),
        measurable_min_diameter_mm=float(measurable_min_diameter_mm),
        instance_labels=instance_labels,
        dropped_below_min_volume=dropped,
        notes=tuple(notes),
    )


def _exposed_faces(crop: np.ndarray) -> int:
    """Number of voxel faces of ``crop`` that touch the outside (its boundary surface)."""
    padded = np.pad(crop, 1)
    return int(sum(np.count_nonzero(np.diff(padded, axis=a)) for a in range(3)))


def _hull_vertices(points: np.ndarray) -> np.ndarray:
    """The points that are vertices of their convex hull (all of them when degenerate/few)."""
    if len(points) <= 32:
        return points
    from scipy.spatial import ConvexHull, QhullError

    try:
        return points[ConvexHull(points).vertices]
    except QhullError:  # coplanar or collinear: every point may matter
        return points


_N_DIRECTIONS = 32
_DIRECTIONS = np.stack(
    [np.cos(np.arange(_N_DIRECTIONS) * np.pi / _N_DIRECTIONS),
     np.sin(np.arange(_N_DIRECTIONS) * np.pi / _N_DIRECTIONS)], axis=1
)


def _row_extremes(crop: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every line of ``crop`` along ``axis`` holding a voxel: its position (indices on the
    other axes, shape (n, ndim-1)), and the first and last occupied index along ``axis``."""
    has = crop.any(axis=axis)
    first = np.argmax(crop, axis=axis)
    last = crop.shape[axis] - 1 - np.argmax(np.flip(crop, axis=axis), axis=axis)
    where = np.nonzero(has)
    return np.stack(where, axis=1), first[where], last[where]


def _diameters(crop: np.ndarray, affine: np.ndarray, slice_axis: int) -> tuple[float, float]:
    """(axial in-plane longest diameter, 3D longest diameter) in mm, voxel-corner Feret.

    The convex hull of a union of voxels has its vertices among the outer corners of the first
    and last voxel of each line of voxels, so only those corners are considered.
    """
    linear = affine[:3, :3]
    # 3D: lines along the last axis; corners at +-0.5 on the two others, outside ends on it
    pos, first, last = _row_extremes(crop, 2)
    pos = pos.astype(np.float64)
    # The hull of {end centre + corner offset} is the Minkowski sum of the hull of the end
    # centres and the offset square, so its vertices are hull vertices of the centres plus an
    # offset: reduce each end set to its hull vertices before adding the four corners.
    ends = np.concatenate([
        _hull_vertices(np.column_stack([pos, first - 0.5])),
        _hull_vertices(np.column_stack([pos, last + 0.5])),
    ])
    offsets = np.array([[dx, dy, 0.0] for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)])
    d3 = feret_diameter_mm((ends[:, None, :] + offsets[None]).reshape(-1, 3), linear)

    # axial: per slice, lines along the second in-plane axis
    b_ax, c_ax = [a for a in range(3) if a != slice_axis]
    moved = np.transpose(crop, (slice_axis, b_ax, c_ax))
    lin2 = linear[:, [b_ax, c_ax]]
    pos2, first2, last2 = _row_extremes(moved, 2)  # pos2 = (slice, row)
    if not len(pos2):
        return 0.0, d3
    r = pos2[:, 1].astype(np.float64)
    f2, l2 = first2.astype(np.float64), last2.astype(np.float64)
    pts = np.concatenate([  # the four outer corners of each row's first and last voxel
        np.column_stack([r - 0.5, f2 - 0.5]), np.column_stack([r + 0.5, f2 - 0.5]),
        np.column_stack([r - 0.5, l2 + 0.5]), np.column_stack([r + 0.5, l2 + 0.5]),
    ])
    slice_of = np.tile(pos2[:, 0], 4)
    by_slice = np.argsort(slice_of, kind="stable")
    pts, slice_of = pts[by_slice], slice_of[by_slice]
    starts = np.flatnonzero(np.r_[True, slice_of[1:] != slice_of[:-1]])
    # widths along _N_DIRECTIONS in-plane directions give, per slice, a lower bound L on its
    # diameter and an upper bound L / cos(pi / (2 N)); only slices whose upper bound beats the
    # best lower bound need the exact all-pairs computation
    plane, _ = np.linalg.qr(lin2)  # orthonormal basis of the slice plane (world mm)
    proj = (pts @ lin2.T @ plane) @ _DIRECTIONS.T
    widths = np.maximum.reduceat(proj, starts, axis=0) - np.minimum.reduceat(proj, starts, axis=0)
    lower = widths.max(axis=1)
    upper = lower / np.cos(np.pi / (2 * len(_DIRECTIONS)))
    best = float(lower.max())
    ends = np.r_[starts[1:], len(pts)]
    for s_idx in np.argsort(-upper, kind="stable"):
        if upper[s_idx] <= best:
            break
        best = max(best, feret_diameter_mm(pts[starts[s_idx]:ends[s_idx]], lin2))
    return best, d3
