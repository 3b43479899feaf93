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

from .diameters import LineEnds, feret_3d, feret_in_slices
from .geometry import axial_axis, voxel_to_world
from ..io.read import Mask
from .runs import Runs, face_overlaps, find_runs, run_components

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

Backend = Literal["auto", "runs", "cc3d", "skimage"]



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
    flat = data.reshape(-1, order=order)
    index = np.flatnonzero(flat > 0)
    values = flat[index] if instance_labels else None
    runs = find_runs(index, data.shape, order, values)
    if instance_labels:
        comp = np.asarray(values)[runs.first].astype(np.int64)
        connectivity_used = 0
    elif backend in ("auto", "runs"):
        if connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
        comp = run_components(runs, connectivity)[0] + 1
        connectivity_used = connectivity
    else:  # a dense labelling; every run lies inside one of its components
        labels, _ = label_components(data > 0, connectivity, backend)
        comp = labels.reshape(-1, order=order)[index[runs.first]].astype(np.int64)
        del labels
        connectivity_used = connectivity
    length = runs.length
    nmax = int(comp.max()) + 1 if comp.size else 1
    counts = np.bincount(comp, weights=length, minlength=nmax).astype(np.int64)
    present = np.flatnonzero(counts[1:]) + 1
    vv = mask.voxel_volume_mm3
    keep = present[counts[present] * vv >= min_volume_mm3]
    dropped = int(len(present) - len(keep))

    ax_fast, ax_mid, ax_slow = runs.axes
    run_mid, run_slow = runs.mid, runs.slow
    sums = np.zeros((nmax, 3))
    sums[:, ax_fast] = np.bincount(comp, weights=length * (runs.start + runs.end) / 2.0,
                                   minlength=nmax)
    sums[:, ax_mid] = np.bincount(comp, weights=length * run_mid, minlength=nmax)
    sums[:, ax_slow] = np.bincount(comp, weights=length * run_slow, minlength=nmax)
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
    run_id = lut[comp]
    ids = np.repeat(run_id, length)
    if dropped:
        sel = ids > 0
        index, ids = index[sel], ids[sel]

    # per lesion, from its runs grouped by lesion (stable: rows stay in storage order)
    kept = np.flatnonzero(run_id > 0)
    by = kept[np.argsort(run_id[kept], kind="stable")]
    r_id, r_start, r_end = run_id[by], runs.start[by], runs.end[by]
    r_mid, r_slow = run_mid[by], run_slow[by]
    seg = np.flatnonzero(np.r_[True, r_id[1:] != r_id[:-1]]) if by.size else by
    bbox = np.zeros((len(seg), 3, 2), dtype=np.int64)
    if by.size:
        for axis, lo_v, hi_v in ((ax_fast, r_start, r_end), (ax_mid, r_mid, r_mid),
                                 (ax_slow, r_slow, r_slow)):
            bbox[:, axis, 0] = np.minimum.reduceat(lo_v, seg)
            bbox[:, axis, 1] = np.maximum.reduceat(hi_v, seg) + 1
    n_les = len(seg)
    r_grp = np.cumsum(np.r_[True, r_id[1:] != r_id[:-1]]) - 1 if by.size else by
    run_grp = np.full(len(runs), -1, dtype=np.int64)
    run_grp[by] = r_grp
    faces = _exposed_faces(runs, run_grp, n_les)
    ends = _line_ends(r_grp, r_start, r_end, r_mid, r_slow, runs.axes)
    d3 = feret_3d(ends, mask.affine[:3, :3], n_les)
    d2 = _axial_diameters(ends, (r_grp, r_start, r_end, r_mid, r_slow), mask.affine[:3, :3],
                          axial_axis(mask.affine), n_les)
    seg_ids = r_id[seg]
    lesions = []
    for r in range(len(new_ids)):
        lid = int(new_ids[r])
        src = order_keep[r]
        count = int(counts[keep[src]])
        g = int(np.searchsorted(seg_ids, lid))
        lesions.append(
            Lesion(
                lesion_id=lid,
                voxel_count=count,
                volume_mm3=float(count * vv),
                centroid_ras_mm=tuple(float(v) for v in cent_world[src]),  # type: ignore[arg-type]
                bbox_voxel=tuple((int(a), int(b)) for a, b in bbox[g]),  # type: ignore[arg-type]
                longest_diameter_mm=float(d2[g]),
                max_diameter_3d_mm=float(d3[g]),
                measurable=bool(d2[g] >= measurable_min_diameter_mm),
                min_detectable_change_mm3=float(faces[g] * vv / 2.0),
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


def _exposed_faces(runs: Runs, run_grp: np.ndarray, n: int) -> np.ndarray:
    """Voxel faces of each lesion that touch anything else (its boundary surface).

    Along a run both end faces are exposed; across runs each voxel has four faces, less the
    ones shared with a voxel of the same lesion in a face-sharing row.
    """
    valid = run_grp >= 0
    length = runs.length
    out = 2.0 * np.bincount(run_grp[valid], minlength=n)
    out += 4.0 * np.bincount(run_grp[valid], weights=length[valid], minlength=n)
    a, b, shared = face_overlaps(runs)
    same = (run_grp[a] == run_grp[b]) & (run_grp[a] >= 0)
    out -= 2.0 * np.bincount(run_grp[a][same], weights=shared[same], minlength=n)
    return out


def _line_ends(grp, start, end, mid, slow, axes) -> LineEnds:
    """First and last voxel of each lesion's lines along the fast axis (runs grouped by lesion,
    rows ascending)."""
    if not len(grp):
        e = np.zeros(0, dtype=np.int64)
        return LineEnds(e, axes[0], (axes[1], axes[2]), (e, e), e, e)
    row_change = (grp[1:] != grp[:-1]) | (mid[1:] != mid[:-1]) | (slow[1:] != slow[:-1])
    s = np.flatnonzero(np.r_[True, row_change])
    e = np.r_[s[1:], len(grp)] - 1
    return LineEnds(grp[s], axes[0], (axes[1], axes[2]), (mid[s], slow[s]), start[s], end[e])


def _axial_diameters(ends: LineEnds, grouped_runs: tuple[np.ndarray, ...], linear: np.ndarray,
                     slice_axis: int, n: int) -> np.ndarray:
    """Largest in-plane diameter on any slice perpendicular to ``slice_axis``, per lesion.

    ``grouped_runs`` = (lesion group, start, end, mid, slow) of the runs grouped by lesion.
    """
    if not len(ends.group):
        return np.zeros(n)
    fast = ends.along
    mid_axis, slow_axis = ends.cross_axes
    mid, slow = ends.cross
    if slice_axis == slow_axis:  # lines along fast lie in the slices, already in slice order
        return feret_in_slices(ends, linear, slow, n)
    if slice_axis == mid_axis:
        o = np.lexsort((slow, mid, ends.group))
        inplane = LineEnds(ends.group[o], fast, (slow_axis, mid_axis), (slow[o], mid[o]),
                           ends.first[o], ends.last[o])
        return feret_in_slices(inplane, linear, mid[o], n)
    # slices across the fast axis: lines along mid, from the voxels themselves
    grp, start, end, r_mid, r_slow = grouped_runs
    count = end - start + 1
    f = np.repeat(start - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
    g, m, sl = (np.repeat(v, count) for v in (grp, r_mid, r_slow))
    o = np.lexsort((m, sl, f, g))
    g, m, sl, f = g[o], m[o], sl[o], f[o]
    brk = np.r_[True, (g[1:] != g[:-1]) | (f[1:] != f[:-1]) | (sl[1:] != sl[:-1])]
    s = np.flatnonzero(brk)
    e = np.r_[s[1:], len(g)] - 1
    inplane = LineEnds(g[s], mid_axis, (slow_axis, fast), (sl[s], f[s]), m[s], m[e])
    return feret_in_slices(inplane, linear, f[s], n)
