"""The measured lesions of one mask: :class:`Lesion` and :class:`LesionSet`, and the columns of
their table rows (:data:`LESION_COLUMNS`). How they are found: :mod:`cnsvol.lesions.find`.

Measurements per lesion:

* ``voxel_count`` and ``volume_mm3`` (voxel count x float64 voxel volume);
* ``centroid_ras_mm``: mean of the voxel centres, mapped through the affine;
* ``bbox_voxel``: per voxel axis ``(start, stop)``, stop exclusive;
* ``longest_diameter_mm``: the largest in-plane diameter on any axial slice (slices
  perpendicular to the voxel axis closest to superior-inferior), as RANO-BM measures it;
* ``max_diameter_3d_mm``: the largest 3D diameter;
* ``perpendicular_diameter_mm``: on the slice of the longest diameter, the longest chord of the
  lesion's outline perpendicular to it (the second axis a reader draws across the lesion);
* ``axial_slice_count``: the number of axial slices the lesion lies on.

  Both diameters are Feret diameters of the voxelised lesion: the largest distance between the
  outer corners of its voxels, i.e. edge to edge as calipers are placed on an image. A row of
  10 voxels of 1 mm spans 10 mm along the row but measures corner to corner
  sqrt(10**2 + 1) = 10.05 mm on its slice (an a x b rectangle: its diagonal). With
  ``diameter_convention="centres"`` the distances are between voxel centres instead (the row
  then measures 9 mm);
* ``measurable``: ``longest_diameter_mm >= measurable_min_diameter_mm`` (default 10 mm), and
  ``perpendicular_diameter_mm >= measurable_min_perpendicular_mm`` and ``axial_slice_count >=
  measurable_min_slices`` (by default no condition; RANO-BM: 5 mm and 2 slices);
* ``compartment_volumes_mm3``: with a compartment convention (multi-label glioma masks), the
  volume of each compartment (enhancing, non-enhancing, oedema, cavity) in the lesion
  (:mod:`cnsvol.lesions.compartments`); empty otherwise;
* ``min_detectable_change_mm3``: the volume of a half-voxel shell over the lesion's boundary,
  i.e. exposed voxel faces x (voxel volume / 2) (each face of area ``a`` moved by half the voxel
  depth ``d / 2`` sweeps ``a d / 2``, half a voxel, on any grid). A volume change smaller than
  this cannot be told apart from a boundary shifting by half a voxel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from ..columns import Column, frame
from ..io.mask import Mask
from .compartments import COMPARTMENT_COLUMNS, compartment_cells

__all__ = ["LESION_COLUMNS", "Lesion", "LesionSet", "with_segment_names"]

LESION_COLUMNS: tuple[Column, ...] = (
    Column("lesion_id", "Int64", None, "1 = largest (descending voxel count, then centroid x, "
           "y, z); the stored label value with --instance-labels"),
    Column("voxel_count", "Int64", None, "voxels of the lesion"),
    Column("volume_mm3", "float64", "mm3", "voxel count x voxel volume (float64, from the "
           "header)"),
    Column("centroid_ras_x_mm", "float64", "mm", "mean voxel centre, RAS+ x (patient's right)"),
    Column("centroid_ras_y_mm", "float64", "mm", "mean voxel centre, RAS+ y (anterior)"),
    Column("centroid_ras_z_mm", "float64", "mm", "mean voxel centre, RAS+ z (superior)"),
    Column("longest_diameter_mm", "float64", "mm", "largest in-plane Feret diameter on any "
           "axial slice (voxel corners)"),
    Column("max_diameter_3d_mm", "float64", "mm", "largest 3D Feret diameter (voxel corners)"),
    Column("perpendicular_diameter_mm", "float64", "mm", "on the slice of the longest "
           "diameter, the longest chord perpendicular to it"),
    Column("axial_slice_count", "Int64", None, "axial slices the lesion lies on"),
    Column("measurable", "boolean", None, "longest (and, where the criteria say, perpendicular) "
           "diameter and slice count reach the criteria's measurable size"),
    Column("min_detectable_change_mm3", "float64", "mm3", "half-voxel shell over the lesion's "
           "boundary: exposed faces x voxel volume / 2"),
    *COMPARTMENT_COLUMNS,
    Column("segment", "string", None, "DICOM SEG and RTSTRUCT masks: the segments (ROIs) the "
           "lesion's voxels belong to, as number and name ('; '-separated); empty otherwise"),
    *(Column(f"bbox_{axis}_{end}", "Int64", None, f"bounding box on voxel axis {axis}, "
             + ("first index" if end == "start" else "last index + 1"))
      for axis in "ijk" for end in ("start", "stop")),
)


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
    perpendicular_diameter_mm: float = 0.0
    axial_slice_count: int = 0
    compartment_volumes_mm3: dict[str, float] = field(default_factory=dict, hash=False)
    segment: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["centroid_ras_mm"] = list(self.centroid_ras_mm)
        d["bbox_voxel"] = [list(b) for b in self.bbox_voxel]
        d["compartment_volumes_mm3"] = dict(self.compartment_volumes_mm3)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lesion:
        """The inverse of :meth:`to_dict`."""
        (i0, i1), (j0, j1), (k0, k1) = d["bbox_voxel"]
        x, y, z = d["centroid_ras_mm"]
        return cls(
            lesion_id=int(d["lesion_id"]), voxel_count=int(d["voxel_count"]),
            volume_mm3=float(d["volume_mm3"]), centroid_ras_mm=(float(x), float(y), float(z)),
            bbox_voxel=((int(i0), int(i1)), (int(j0), int(j1)), (int(k0), int(k1))),
            longest_diameter_mm=float(d["longest_diameter_mm"]),
            max_diameter_3d_mm=float(d["max_diameter_3d_mm"]), measurable=bool(d["measurable"]),
            min_detectable_change_mm3=float(d["min_detectable_change_mm3"]),
            perpendicular_diameter_mm=float(d.get("perpendicular_diameter_mm", 0.0)),
            axial_slice_count=int(d.get("axial_slice_count", 0)),
            compartment_volumes_mm3={str(k): float(v) for k, v in
                                     d.get("compartment_volumes_mm3", {}).items()},
            segment=str(d.get("segment", "")),
        )

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
            "perpendicular_diameter_mm": self.perpendicular_diameter_mm,
            "axial_slice_count": self.axial_slice_count,
            "measurable": self.measurable,
            "min_detectable_change_mm3": self.min_detectable_change_mm3,
            **compartment_cells(self.compartment_volumes_mm3),
            "segment": self.segment,
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
    measurable_min_perpendicular_mm: float = 0.0
    measurable_min_slices: int = 1
    diameter_convention: str = "corners"
    compartments: str | None = None
    compartment_volumes_mm3: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"LesionSet({self.mask.name!r}, {self.lesion_count} lesion(s), "
                f"{self.total_volume_mm3:.1f} mm3, connectivity {self.connectivity or 'instance'})")

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
        return frame((les.to_row() for les in self.lesions), LESION_COLUMNS)

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
            "diameter_convention": self.diameter_convention,
            "measurable_rule": {"min_diameter_mm": self.measurable_min_diameter_mm,
                                "min_perpendicular_mm": self.measurable_min_perpendicular_mm,
                                "min_slices": self.measurable_min_slices},
            **({"compartments": self.compartments,
                "compartment_volumes_mm3": dict(self.compartment_volumes_mm3)}
               if self.compartments else {}),
            "notes": list(self.mask.notes) + list(self.notes),
            **({"segments": [seg.to_dict() for seg in self.mask.segments]}
               if self.mask.segments else {}),
            "lesions": [
                {
                    "lesion_id": les.lesion_id,
                    "voxel_count": les.voxel_count,
                    "volume_mm3": les.volume_mm3,
                    "centroid_ras_mm": list(les.centroid_ras_mm),
                    "longest_diameter_mm": les.longest_diameter_mm,
                    "max_diameter_3d_mm": les.max_diameter_3d_mm,
                    "perpendicular_diameter_mm": les.perpendicular_diameter_mm,
                    "axial_slice_count": les.axial_slice_count,
                    "measurable": les.measurable,
                    **({"compartment_volumes_mm3": dict(les.compartment_volumes_mm3)}
                       if self.compartments else {}),
                    **({"segment": les.segment} if self.mask.segments else {}),
                }
                for les in self.lesions
            ],
        }


def with_segment_names(ls: LesionSet) -> LesionSet:
    """``ls`` with each lesion's :attr:`Lesion.segment`: the DICOM segments (ROIs) whose label
    its voxels carry (a voxel two segments share carries the lower number). Masks without
    segments are returned as they are."""
    if not ls.mask.segments or not ls.lesions:
        return ls
    names = {s.number: f"{s.number} {s.name}" for s in ls.mask.segments}
    labels = ls.mask.data.reshape(-1, order=ls.index_order)[ls.voxel_index]
    pairs = np.unique(np.stack([ls.voxel_lesion.astype(np.int64), labels.astype(np.int64)]),
                      axis=1)
    found: dict[int, list[str]] = {}
    for lesion_id, label in pairs.T.tolist():
        found.setdefault(lesion_id, []).append(names.get(label, str(label)))
    lesions = tuple(replace(les, segment="; ".join(found.get(les.lesion_id, [])))
                    for les in ls.lesions)
    return replace(ls, lesions=lesions)
