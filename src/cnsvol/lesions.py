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
from itertools import product
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

_CORNERS_3D = np.array(list(product((-0.5, 0.5), repeat=3)))
_CORNERS_2D = np.array(list(product((-0.5, 0.5), repeat=2)))


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
    """The lesions of one mask, with the label image that locates them.

    ``label_image`` has the mask's shape; voxel value = ``lesion_id`` (0 = background or a
    component dropped by ``min_volume_mm3``).
    """

    mask: Mask
    label_image: np.ndarray
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
    if instance_labels:
        raw_labels = data
        connectivity_used = 0
    else:
        raw_labels, _ = label_components(data > 0, connectivity, backend)
        connectivity_used = connectivity

    ii, jj, kk = np.nonzero(raw_labels)
    lab = raw_labels[ii, jj, kk].astype(np.int64)
    nmax = int(lab.max()) + 1 if lab.size else 1
    counts = np.bincount(lab, minlength=nmax)
    present = np.flatnonzero(counts[1:]) + 1
    vv = mask.voxel_volume_mm3
    keep = present[counts[present] * vv >= min_volume_mm3]
    dropped = int(len(present) - len(keep))

    sums = np.stack([np.bincount(lab, weights=a, minlength=nmax) for a in (ii, jj, kk)], axis=1)
    cent_vox = sums[keep] / counts[keep, None]
    cent_world = voxel_to_world(mask.affine, cent_vox) if len(keep) else np.zeros((0, 3))

    if instance_labels:
        order = np.argsort(keep, kind="stable")
        new_ids = keep[order]
    else:
        # descending voxel count, then ascending RAS x, y, z (rounded so that float noise from
        # a flipped storage order cannot reorder exact ties)
        rounded = np.round(cent_world, 6)
        order = np.lexsort((rounded[:, 2], rounded[:, 1], rounded[:, 0], -counts[keep]))
        new_ids = np.arange(1, len(keep) + 1)

    lut = np.zeros(nmax, dtype=np.int64)
    lut[keep[order]] = new_ids
    top = int(new_ids.max()) if len(new_ids) else 0
    out_dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    label_image = np.zeros(data.shape, dtype=out_dtype)
    new_lab = lut[lab]
    label_image[ii, jj, kk] = new_lab

    bboxes = _bboxes(new_lab, ii, jj, kk, top)
    ax = axial_axis(mask.affine)
    lesions = []
    for rank, src in enumerate(order):
        old = keep[src]
        lid = int(new_ids[rank])
        bbox = bboxes[lid]
        crop = label_image[tuple(slice(a, b) for a, b in bbox)] == lid
        ld_axial, ld_3d = _diameters(crop, mask.affine, ax)
        count = int(counts[old])
        faces = _exposed_faces(crop)
        lesions.append(
            Lesion(
                lesion_id=lid,
                voxel_count=count,
                volume_mm3=float(count * vv),
                centroid_ras_mm=tuple(float(v) for v in cent_world[src]),  # type: ignore[arg-type]
                bbox_voxel=bbox,
                longest_diameter_mm=ld_axial,
                max_diameter_3d_mm=ld_3d,
                measurable=bool(ld_axial >= measurable_min_diameter_mm),
                min_detectable_change_mm3=float(faces * vv / 2.0),
            )
        )
    notes: list[str] = []
    if dropped:
        notes.append(f"{dropped} component(s) smaller than {min_volume_mm3:g} mm3 dropped")
    return LesionSet(
        mask=mask,
        label_image=label_image,
        lesions=tuple(lesions),
        connectivity=connectivity_used,
        min_volume_mm3=float(min_volume_mm3),
        measurable_min_diameter_mm=float(measurable_min_diameter_mm),
        instance_labels=instance_labels,
        dropped_below_min_volume=dropped,
        notes=tuple(notes),
    )


def _bboxes(
    lab: np.ndarray, ii: np.ndarray, jj: np.ndarray, kk: np.ndarray, top: int
) -> dict[int, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """Per label ``(start, stop)`` along each voxel axis, for labels ``1..top`` present."""
    sel = lab > 0
    lab, coords = lab[sel], [ii[sel], jj[sel], kk[sel]]
    if not lab.size:
        return {}
    order = np.argsort(lab, kind="stable")
    lab = lab[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    out_lo = [np.minimum.reduceat(c[order], starts) for c in coords]
    out_hi = [np.maximum.reduceat(c[order], starts) for c in coords]
    return {
        int(lab[s]): tuple(  # type: ignore[misc]
            (int(out_lo[a][n]), int(out_hi[a][n]) + 1) for a in range(3)
        )
        for n, s in enumerate(starts)
    }


def _exposed_faces(crop: np.ndarray) -> int:
    """Number of voxel faces of ``crop`` that touch the outside (its boundary surface)."""
    padded = np.pad(crop, 1)
    return int(sum(np.count_nonzero(np.diff(padded, axis=a)) for a in range(3)))


def _boundary(crop: np.ndarray) -> np.ndarray:
    """Voxels of ``crop`` with at least one face neighbour outside it (any dimensionality)."""
    padded = np.pad(crop, 1)
    interior = crop.copy()
    for axis in range(crop.ndim):
        for shift in (0, 2):
            idx = [slice(1, -1)] * crop.ndim
            idx[axis] = slice(shift, shift + crop.shape[axis])
            interior &= padded[tuple(idx)]
    return crop & ~interior


def _diameters(crop: np.ndarray, affine: np.ndarray, slice_axis: int) -> tuple[float, float]:
    """(axial in-plane longest diameter, 3D longest diameter) in mm, voxel-corner Feret."""
    linear = affine[:3, :3]
    edge = np.argwhere(_boundary(crop)).astype(np.float64)
    pts3 = (edge[:, None, :] + _CORNERS_3D[None, :, :]).reshape(-1, 3)
    d3 = feret_diameter_mm(pts3, linear)

    inplane = [a for a in range(3) if a != slice_axis]
    lin2 = linear[:, inplane]
    best = 0.0
    moved = np.moveaxis(crop, slice_axis, 0)
    for sl in moved:
        if not sl.any():
            continue
        rows = np.flatnonzero(sl.any(axis=1))
        cols = np.flatnonzero(sl.any(axis=0))
        span = np.array([rows[-1] - rows[0] + 1.0, cols[-1] - cols[0] + 1.0])
        # the slice's diameter cannot exceed the longer diagonal of its bounding parallelogram
        bound = max(
            np.linalg.norm(lin2 @ span), np.linalg.norm(lin2 @ (span * np.array([1.0, -1.0])))
        )
        if bound <= best:
            continue
        e2 = np.argwhere(_boundary(sl)).astype(np.float64)
        pts2 = (e2[:, None, :] + _CORNERS_2D[None, :, :]).reshape(-1, 2)
        best = max(best, feret_diameter_mm(pts2, lin2))
    return best, d3
