"""Finding and measuring the lesions of one mask, on its own native grid.

A lesion is a connected component of the selected foreground (6-, 18- or 26-connectivity;
default 26), or, with ``instance_labels=True``, the set of voxels carrying one label value of a
mask that is already instance-labelled. Components are found from the runs of foreground voxels
(:mod:`cnsvol.lesions.runs`); no dense label volume is built.

Lesion ids are assigned by a fixed rule that does not depend on the order voxels are stored in:
descending voxel count, then ascending centroid x, y, z in RAS+ mm. The largest lesion is 1.
(With ``instance_labels=True`` the id is the stored label value.) What is measured:
:mod:`cnsvol.lesions.lesion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..io.mask import Mask
from .diameters import LineEnds, SliceDiameters, feret_3d, feret_in_slices
from .geometry import axial_axis, voxel_to_world
from .lesion import Lesion, LesionSet
from .runs import Runs, face_overlaps, find_runs, run_components

__all__ = [
    "DEFAULT_CONNECTIVITY",
    "DEFAULT_MEASURABLE_MM",
    "find_lesions",
    "label_components",
]

DEFAULT_CONNECTIVITY = 26
DEFAULT_MEASURABLE_MM = 10.0

Backend = Literal["auto", "runs", "cc3d", "skimage", "scipy"]
DiameterConvention = Literal["corners", "centres"]


def find_lesions(
    mask: Mask,
    *,
    connectivity: int = DEFAULT_CONNECTIVITY,
    min_volume_mm3: float = 0.0,
    instance_labels: bool = False,
    measurable_min_diameter_mm: float = DEFAULT_MEASURABLE_MM,
    measurable_min_perpendicular_mm: float = 0.0,
    measurable_min_slices: int = 1,
    diameter_convention: DiameterConvention = "corners",
    backend: Backend = "auto",
) -> LesionSet:
    """Find and measure every lesion of ``mask`` (see the module docstring).

    Args:
        mask: a mask from :func:`cnsvol.read_mask` or :func:`cnsvol.mask_from_array`.
        connectivity: 6 (faces), 18 (faces + edges) or 26 (faces + edges + corners).
        min_volume_mm3: components smaller than this volume are dropped (and counted).
        instance_labels: treat each stored label value as one lesion (ids = label values)
            instead of computing connected components.
        measurable_min_diameter_mm, measurable_min_perpendicular_mm, measurable_min_slices:
            a lesion is measurable when its axial longest diameter is at least
            ``measurable_min_diameter_mm``, the diameter perpendicular to it on that slice
            at least ``measurable_min_perpendicular_mm``, and it lies on at least
            ``measurable_min_slices`` axial slices.
        diameter_convention: ``"corners"`` (Feret diameters between outer voxel corners, edge
            to edge as calipers are placed) or ``"centres"`` (between voxel centres).
        backend: connected-components implementation: ``"auto"``/``"runs"`` (the run graph),
            or a dense labelling (:func:`label_components`: ``"scipy"``, ``"cc3d"``,
            ``"skimage"``), the reference implementations.
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
        comp, connectivity_used = np.asarray(values)[runs.first].astype(np.int64), 0
    else:
        comp = _run_components(data, runs, index, order, connectivity, backend)
        connectivity_used = connectivity
    vv = mask.voxel_volume_mm3
    comps = _Components.of(comp, runs, vv, min_volume_mm3)
    cent_world = comps.centroids(runs, mask.affine)
    order_keep, new_ids = _assign_ids(comps.keep, comps.counts, cent_world, instance_labels)
    lut = np.zeros(comps.nmax, dtype=np.int64)
    lut[comps.keep[order_keep]] = new_ids
    run_id = lut[comp]
    ids = np.repeat(run_id, runs.length)
    if comps.dropped:
        sel = ids > 0
        index, ids = index[sel], ids[sel]
    if diameter_convention not in ("corners", "centres"):
        raise ValueError("diameter_convention must be 'corners' or 'centres', got "
                         f"{diameter_convention!r}")
    m = _measure(runs, run_id, mask.affine, diameter_convention == "corners")
    rule = (measurable_min_diameter_mm, measurable_min_perpendicular_mm, measurable_min_slices)
    lesions = _lesions(comps, m, order_keep, new_ids, cent_world, vv, rule)
    lesions.sort(key=lambda les: les.lesion_id)
    top = int(new_ids.max()) if len(new_ids) else 0
    notes = ([f"{comps.dropped} component(s) smaller than {min_volume_mm3:g} mm3 dropped"]
             if comps.dropped else [])
    return LesionSet(
        mask=mask, voxel_index=index, voxel_lesion=ids.astype(_id_dtype(top)), index_order=order,
        lesions=tuple(lesions), connectivity=connectivity_used,
        min_volume_mm3=float(min_volume_mm3),
        measurable_min_diameter_mm=float(measurable_min_diameter_mm),
        instance_labels=instance_labels, dropped_below_min_volume=comps.dropped,
        notes=tuple(notes),
        measurable_min_perpendicular_mm=float(measurable_min_perpendicular_mm),
        measurable_min_slices=int(measurable_min_slices),
        diameter_convention=diameter_convention,
    )


def _lesions(comps: _Components, m: _Measures, order_keep: np.ndarray, new_ids: np.ndarray,
             cent_world: np.ndarray, vv: float, rule: tuple[float, float, int]) -> list[Lesion]:
    """The :class:`Lesion` of every kept component; ``rule`` = the measurable minimum longest
    and perpendicular diameters (mm) and slice count."""
    longest_min, perpendicular_min, slices_min = rule
    out = []
    for r, lid in enumerate(new_ids.tolist()):
        src = order_keep[r]
        count = int(comps.counts[comps.keep[src]])
        g = int(np.searchsorted(m.ids, lid))
        out.append(Lesion(
            lesion_id=lid,
            voxel_count=count,
            volume_mm3=float(count * vv),
            centroid_ras_mm=tuple(float(v) for v in cent_world[src]),  # type: ignore[arg-type]
            bbox_voxel=tuple((int(a), int(b)) for a, b in m.bbox[g]),  # type: ignore[arg-type]
            longest_diameter_mm=float(m.axial.longest[g]),
            max_diameter_3d_mm=float(m.max_3d[g]),
            measurable=bool(m.axial.longest[g] >= longest_min
                            and m.axial.perpendicular[g] >= perpendicular_min
                            and m.axial.slices[g] >= slices_min),
            min_detectable_change_mm3=float(m.faces[g] * vv / 2.0),
            perpendicular_diameter_mm=float(m.axial.perpendicular[g]),
            axial_slice_count=int(m.axial.slices[g]),
        ))
    return out


def _id_dtype(top: int) -> type:
    return np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32


def _run_components(data: np.ndarray, runs: Runs, index: np.ndarray, order: str,
                    connectivity: int, backend: Backend) -> np.ndarray:
    """Component number (1..n) of every run."""
    if backend in ("auto", "runs"):
        if connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
        return run_components(runs, connectivity)[0] + 1
    # a dense labelling; every run lies inside one of its components
    labels, _ = label_components(data > 0, connectivity, backend)
    return labels.reshape(-1, order=order)[index[runs.first]].astype(np.int64)


@dataclass(frozen=True)
class _Components:
    """Voxel counts per component number, and the components kept (>= the minimum volume)."""

    comp: np.ndarray  # component number of each run
    counts: np.ndarray
    keep: np.ndarray
    dropped: int

    @property
    def nmax(self) -> int:
        return len(self.counts)

    @classmethod
    def of(cls, comp: np.ndarray, runs: Runs, voxel_volume_mm3: float,
           min_volume_mm3: float) -> _Components:
        nmax = int(comp.max()) + 1 if comp.size else 1
        counts = np.bincount(comp, weights=runs.length, minlength=nmax).astype(np.int64)
        present = np.flatnonzero(counts[1:]) + 1
        keep = present[counts[present] * voxel_volume_mm3 >= min_volume_mm3]
        return cls(comp, counts, keep, int(len(present) - len(keep)))

    def centroids(self, runs: Runs, affine: np.ndarray) -> np.ndarray:
        """World (RAS mm) centroid of every kept component, in the order of ``keep``."""
        if not len(self.keep):
            return np.zeros((0, 3))
        ax_fast, ax_mid, ax_slow = runs.axes
        length, comp, nmax = runs.length, self.comp, self.nmax
        sums = np.zeros((nmax, 3))
        sums[:, ax_fast] = np.bincount(comp, weights=length * (runs.start + runs.end) / 2.0,
                                       minlength=nmax)
        sums[:, ax_mid] = np.bincount(comp, weights=length * runs.mid, minlength=nmax)
        sums[:, ax_slow] = np.bincount(comp, weights=length * runs.slow, minlength=nmax)
        return voxel_to_world(affine, sums[self.keep] / self.counts[self.keep, None])


def _assign_ids(keep: np.ndarray, counts: np.ndarray, cent_world: np.ndarray,
                instance_labels: bool) -> tuple[np.ndarray, np.ndarray]:
    """(order of ``keep`` by lesion id, the ids in that order)."""
    if instance_labels:
        order_keep = np.argsort(keep, kind="stable")
        return order_keep, keep[order_keep]
    # descending voxel count, then ascending RAS x, y, z (rounded so that float noise from
    # a flipped storage order cannot reorder exact ties)
    rounded = np.round(cent_world, 6)
    order_keep = np.lexsort((rounded[:, 2], rounded[:, 1], rounded[:, 0], -counts[keep]))
    return order_keep, np.arange(1, len(keep) + 1)


@dataclass(frozen=True)
class _Measures:
    """Per lesion group (sorted by lesion id ``ids``): bounding box, boundary faces, axial and
    3D Feret diameters."""

    ids: np.ndarray
    bbox: np.ndarray
    faces: np.ndarray
    axial: SliceDiameters
    max_3d: np.ndarray


def _measure(runs: Runs, run_id: np.ndarray, affine: np.ndarray, corners: bool) -> _Measures:
    """Measure every lesion from its runs, grouped by lesion id (stable: rows stay in storage
    order)."""
    kept = np.flatnonzero(run_id > 0)
    by = kept[np.argsort(run_id[kept], kind="stable")]
    r_id, r_start, r_end = run_id[by], runs.start[by], runs.end[by]
    r_mid, r_slow = runs.mid[by], runs.slow[by]
    first = np.r_[True, r_id[1:] != r_id[:-1]] if by.size else np.zeros(0, dtype=bool)
    seg = np.flatnonzero(first)
    bbox = np.zeros((len(seg), 3, 2), dtype=np.int64)
    if by.size:
        ax_fast, ax_mid, ax_slow = runs.axes
        for axis, lo_v, hi_v in ((ax_fast, r_start, r_end), (ax_mid, r_mid, r_mid),
                                 (ax_slow, r_slow, r_slow)):
            bbox[:, axis, 0] = np.minimum.reduceat(lo_v, seg)
            bbox[:, axis, 1] = np.maximum.reduceat(hi_v, seg) + 1
    n_les = len(seg)
    r_grp = np.cumsum(first) - 1 if by.size else by
    run_grp = np.full(len(runs), -1, dtype=np.int64)
    run_grp[by] = r_grp
    ends = _line_ends(r_grp, r_start, r_end, r_mid, r_slow, runs.axes)
    linear = affine[:3, :3]
    return _Measures(
        ids=r_id[seg],
        bbox=bbox,
        faces=_exposed_faces(runs, run_grp, n_les),
        axial=_axial_diameters(ends, (r_grp, r_start, r_end, r_mid, r_slow), linear,
                               axial_axis(affine), n_les, corners),
        max_3d=feret_3d(ends, linear, n_les, corners),
    )


def label_components(
    foreground: np.ndarray, connectivity: int = DEFAULT_CONNECTIVITY, backend: Backend = "auto"
) -> tuple[np.ndarray, int]:
    """Label the connected components of a boolean 3D array (a dense labelling, the reference
    that the run-graph labelling of :func:`find_lesions` is tested against).

    Returns ``(labels, n)`` with labels ``1..n`` in arbitrary order. ``backend``: ``"scipy"``
    (``scipy.ndimage.label``), ``"cc3d"`` (connected-components-3d), ``"skimage"``
    (scikit-image; the last two are optional installs) or ``"auto"``: cc3d when installed, else
    scipy. Every backend gives the same partition of voxels (only the label numbers differ).
    """
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    if backend in ("auto", "cc3d"):
        try:
            import cc3d
        except ImportError:
            if backend == "cc3d":
                raise ImportError("backend 'cc3d' needs connected-components-3d: "
                                  "pip install connected-components-3d") from None
        else:
            labels, n = cc3d.connected_components(
                foreground, connectivity=connectivity, return_N=True
            )
            return labels, int(n)
    rank = {6: 1, 18: 2, 26: 3}[connectivity]
    if backend == "skimage":
        try:
            from skimage.measure import label
        except ImportError:
            raise ImportError("backend 'skimage' needs scikit-image: pip install scikit-image"
                              ) from None
        labels, n = label(foreground, connectivity=rank, return_num=True)
        return labels, int(n)
    from scipy import ndimage

    labels, n = ndimage.label(foreground, structure=ndimage.generate_binary_structure(3, rank))
    return labels, int(n)


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
                     slice_axis: int, n: int, corners: bool) -> SliceDiameters:
    """Largest in-plane diameter on any slice perpendicular to ``slice_axis``, per lesion.

    ``grouped_runs`` = (lesion group, start, end, mid, slow) of the runs grouped by lesion.
    """
    if not len(ends.group):
        return feret_in_slices(ends, linear, ends.group, n, corners)
    fast = ends.along
    mid_axis, slow_axis = ends.cross_axes
    mid, slow = ends.cross
    if slice_axis == slow_axis:  # lines along fast lie in the slices, already in slice order
        return feret_in_slices(ends, linear, slow, n, corners)
    if slice_axis == mid_axis:
        o = np.lexsort((slow, mid, ends.group))
        inplane = LineEnds(ends.group[o], fast, (slow_axis, mid_axis), (slow[o], mid[o]),
                           ends.first[o], ends.last[o])
        return feret_in_slices(inplane, linear, mid[o], n, corners)
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
    return feret_in_slices(inplane, linear, f[s], n, corners)
