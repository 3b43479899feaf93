"""The :class:`Mask` type, and how stored voxel values become integer labels.

* integer storage without scaling: labels are kept as their stored integers;
* float storage, or integer storage with ``scl_slope``/``scl_inter`` (e.g. a binary mask stored
  so that 1 reads back as 0.99999997): if every value lies within ``INTEGRAL_TOLERANCE`` of an
  integer, the values are rounded to integer labels (``storage = "float-integral"``); otherwise
  the map is fractional (probability or partial-volume) and foreground is ``value >= threshold``
  (default 0.5, ``storage = "float-thresholded"``), giving a binary mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .labelsets import parse_labels

__all__ = [
    "DEFAULT_THRESHOLD",
    "INTEGRAL_TOLERANCE",
    "MASK_KINDS",
    "Mask",
    "Segment",
    "Storage",
    "check_affine",
    "check_lesion_extent",
    "check_not_all_foreground",
    "mask_from_array",
    "parse_labels_for",
    "select_labels",
    "to_labels",
]

DEFAULT_THRESHOLD = 0.5
"""Foreground threshold for fractional float masks: a voxel is lesion when ``value >= 0.5``."""

INTEGRAL_TOLERANCE = 1e-3
"""Float values within this distance of an integer are read as that integer label."""


class Storage(StrEnum):
    """How a mask's voxel values were stored, and so how they became labels (module doc)."""

    INTEGER = "integer"
    FLOAT_INTEGRAL = "float-integral"
    FLOAT_THRESHOLDED = "float-thresholded"


@dataclass(frozen=True)
class Segment:
    """One segment of a DICOM SEG (or ROI of an RTSTRUCT), measured on its own voxels.

    Attributes:
        number: SegmentNumber (ROINumber): the segment's label value in :attr:`Mask.data`.
        name: SegmentLabel (ROIName).
        voxel_count: voxels in the segment (a voxel two segments share counts in both).
        volume_mm3: ``voxel_count`` x voxel volume.
        centroid_ras_mm: mean voxel centre, RAS+ mm; ``None`` when the segment is empty.
        property: the coded segmented property (SEG) or RT ROI interpreted type (RTSTRUCT).
        planar_volume_mm3: RTSTRUCT only: the sum of the ROI's polygon areas times the slice
            spacing, with no rasterisation (``None`` for a SEG).
    """

    number: int
    name: str
    voxel_count: int
    volume_mm3: float
    centroid_ras_mm: tuple[float, float, float] | None
    property: str = ""
    planar_volume_mm3: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, "property": self.property,
                "voxel_count": self.voxel_count, "volume_mm3": self.volume_mm3,
                "planar_volume_mm3": self.planar_volume_mm3,
                "centroid_ras_mm": None if self.centroid_ras_mm is None
                else list(self.centroid_ras_mm)}


@dataclass(frozen=True, eq=False)
class Mask:
    """A 3D lesion mask in world space.

    Attributes:
        data: integer label array indexed ``[i, j, k]``; 0 is background. Labels not selected
            are already set to 0.
        affine: 4x4 float64, voxel ``(i, j, k)`` -> RAS+ millimetres.
        path: the source file, or ``None`` for an in-memory mask.
        source_format: ``"nifti1"``, ``"nifti2"``, ``"nrrd"``, ``"metaimage"``, ``"dicom-seg"``,
            ``"dicom-rtstruct"`` or ``"array"``.
        storage: a :class:`Storage` (see the module docstring).
        labels: the label values selected, or ``None`` for every non-zero label.
        threshold: the threshold used for a fractional float mask, else ``None``.
        notes: human-readable remarks about assumptions made while reading (e.g. units assumed
            to be millimetres because the header says "unknown").
        labels_found: when ``labels`` selected nothing, the labels the file holds (empty when it
            holds none); ``None`` otherwise.
        segments: a DICOM SEG's selected segments (an RTSTRUCT's ROIs), each measured on its
            own voxels; empty for other formats.
        overlap_voxels: voxels lying in more than one of ``segments`` (labelled with the lower
            segment number in ``data``).
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    source_format: str = "array"
    storage: Storage = Storage.INTEGER
    labels: tuple[int, ...] | None = None
    threshold: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    labels_found: tuple[int, ...] | None = None
    segments: tuple[Segment, ...] = ()
    overlap_voxels: int = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Distance in mm between neighbouring voxel centres along i, j and k."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm3 (float64), ``|det(affine[:3, :3])|``."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def name(self) -> str:
        return "<array>" if self.path is None else str(self.path)

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.shape))
        spacing = ", ".join(f"{s:g}" for s in self.spacing_mm)
        labels = "all" if self.labels is None else ",".join(map(str, self.labels))
        return (f"Mask({self.name!r}, {shape} voxels of ({spacing}) mm, {self.storage} storage, "
                f"labels {labels})")

    def same_grid(self, other: Mask, atol_mm: float = 1e-3) -> bool:
        """True when both masks have the same shape and, element-wise, the same affine."""
        return self.shape == other.shape and bool(
            np.all(np.abs(self.affine - other.affine) <= atol_mm)
        )


def mask_from_array(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    labels: str | tuple[int, ...] | list[int] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Mask:
    """Build a :class:`Mask` from an in-memory ``[i, j, k]`` array and a RAS+ mm affine."""
    arr = np.asanyarray(data)
    if arr.ndim != 3:
        raise MaskError(None, f"array has {arr.ndim} dimensions {arr.shape}", "pass a 3D array")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise MaskError(None, f"affine has shape {affine.shape}", "pass a 4x4 affine")
    check_affine(affine, None)
    selection = parse_labels_for(None, labels)
    out, storage, used = to_labels(arr, None, threshold, selection)
    return Mask(data=out, affine=affine, storage=storage, labels=selection, threshold=used)


def parse_labels_for(path: Path | None, labels: object) -> tuple[int, ...] | None:
    try:
        return parse_labels(labels)  # type: ignore[arg-type]
    except ValueError as exc:
        raise MaskError(path, str(exc), "use e.g. --labels 1,3 or --labels brats-wt") from None


MASK_KINDS = ("auto", "labels", "probability")
"""What a mask's stored values are (:func:`to_labels`)."""


def select_labels(data: np.ndarray, selection: tuple[int, ...]) -> np.ndarray:
    """``data`` with every label outside ``selection`` set to 0 (same dtype)."""
    return np.where(np.isin(data, selection), data, 0).astype(data.dtype, copy=False)


MAX_DISTINCT_LABELS = 256
"""A label mask with more distinct non-zero values than this is refused unless
``mask_kind="labels"`` (an image stored as integers has thousands)."""


def to_labels(
    raw: np.ndarray,
    path: Path | None,
    threshold: float,
    selection: tuple[int, ...] | None,
    mask_kind: str = "auto",
) -> tuple[np.ndarray, Storage, float | None]:
    """Turn stored voxel values into a non-negative integer label array (see module doc).

    ``mask_kind``: ``"auto"`` (integer labels, or a fractional map in [0, 1]; more than
    :data:`MAX_DISTINCT_LABELS` distinct labels is refused as an image), ``"labels"`` (as many
    labels as stored) or ``"probability"`` (a map in [0, 1], thresholded)."""
    check_mask_kind(mask_kind)
    if raw.dtype == np.bool_:
        raw = raw.view(np.uint8)
    if mask_kind == "probability":
        return _probability(raw, path, threshold, selection)
    if mask_kind == "auto" and raw.dtype.kind in "iu":  # an image first, before its values
        _check_distinct(raw, path)
    if raw.dtype.kind == "f":
        data, storage, used = _float_to_labels(raw, path, threshold, selection)
    elif raw.dtype.kind in "iu":
        data, storage, used = raw, Storage.INTEGER, None
        if raw.dtype.kind == "i" and raw.size:
            lo = int(raw.min())
            if lo < 0:
                raise MaskError(path, *_negative(lo))
    else:
        raise MaskError(path, f"unsupported voxel type {raw.dtype}", "save integer or float labels")
    if mask_kind == "auto" and storage != Storage.INTEGER:  # integers were checked as stored
        _check_distinct(data, path)
    if selection is not None:
        data = select_labels(data, selection)
    return data, storage, used


def check_mask_kind(mask_kind: str) -> None:
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {', '.join(map(repr, MASK_KINDS))}, got "
                         f"{mask_kind!r}")


def _negative(lo: int) -> tuple[str, str]:
    """The problem and fix of a mask holding negative values: lesion labels are >= 0, and an
    intensity image is the likely mistake."""
    return (f"negative label value {lo} found: lesion labels are >= 0, so this is not a "
            "plausible lesion mask (an intensity image?)",
            "give the segmentation, not the image (check mask_path and image_path in the "
            "manifest), or re-save the mask with non-negative labels")


def _check_distinct(data: np.ndarray, path: Path | None) -> None:
    """Refuse integer data with more distinct non-zero values than a label mask has (checked
    only when the largest value allows it, so a normal mask costs a max())."""
    if not data.size or data.dtype.itemsize == 1:  # at most 256 values: a label mask's range
        return
    if int(data.max()) - min(int(data.min()), 0) <= MAX_DISTINCT_LABELS:
        return
    values = np.unique(data[data != 0])
    if len(values) > MAX_DISTINCT_LABELS:
        raise MaskError(
            path,
            f"{len(values):,} distinct voxel values ({int(values[0])} to {int(values[-1])}): "
            f"a lesion mask holds a few labels, this looks like an intensity image, not a "
            f"plausible lesion mask",
            "give the segmentation, not the image (check mask_path and image_path in the "
            "manifest); for an instance-labelled mask with that many lesions use --mask-kind "
            "labels (or --instance-labels)",
        )


def _probability(raw: np.ndarray, path: Path | None, threshold: float,
                 selection: tuple[int, ...] | None) -> tuple[np.ndarray, Storage, float | None]:
    """``mask_kind="probability"``: values in [0, 1], lesion where ``value >= threshold``."""
    if selection is not None:
        raise MaskError(path, "a probability map cannot be label-selected",
                        "drop --labels, or drop --mask-kind probability for a label map")
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw)):
        raise MaskError(path, "NaN or infinite voxel values",
                        "replace them with 0 (e.g. numpy.nan_to_num) and save the mask again")
    lo, hi = (float(raw.min()), float(raw.max())) if raw.size else (0.0, 0.0)
    if lo < 0 or hi > 1:
        raise MaskError(path, f"values in [{lo:g}, {hi:g}] with --mask-kind probability",
                        "a probability map lies in [0, 1]: rescale it, or drop --mask-kind")
    return (_by_slab(raw, np.uint8, lambda part: part >= threshold),
            Storage.FLOAT_THRESHOLDED, float(threshold))


def _float_to_labels(
    raw: np.ndarray, path: Path | None, threshold: float, selection: tuple[int, ...] | None
) -> tuple[np.ndarray, Storage, float | None]:
    """Float storage: integral values are labels, a map in [0, 1] is thresholded. Checked and
    converted slab by slab, so the temporaries are a slab's size (a float32 volume of 4 GiB is
    never accompanied by a float copy of itself)."""
    n_nan = n_inf = 0
    integral = True
    for sl in _slabs(raw):
        part = raw[sl]
        finite = np.isfinite(part)
        if not finite.all():
            nan = int(np.isnan(part).sum())
            n_nan, n_inf = n_nan + nan, n_inf + int(part.size - finite.sum() - nan)
        elif integral:
            integral = bool(np.all(np.abs(part - np.rint(part)) <= INTEGRAL_TOLERANCE))
    if n_nan or n_inf:
        raise MaskError(
            path, f"{n_nan} NaN and {n_inf} infinite voxel values",
            "replace them with 0 (e.g. numpy.nan_to_num) and save the mask again",
        )
    lo, hi = (float(raw.min()), float(raw.max())) if raw.size else (0.0, 0.0)
    if integral:
        if np.rint(lo) < 0:
            raise MaskError(path, *_negative(int(np.rint(lo))))
        top = int(np.rint(hi))
        dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
        return _by_slab(raw, dtype, np.rint), Storage.FLOAT_INTEGRAL, None
    if selection is not None:
        raise MaskError(
            path, f"fractional float values in [{lo:g}, {hi:g}] cannot be label-selected",
            "drop --labels (the map is thresholded at --threshold), or save an integer label map",
        )
    if lo < 0 or hi > 1 + INTEGRAL_TOLERANCE:
        raise MaskError(
            path,
            f"fractional values in [{lo:g}, {hi:g}]: neither integer labels nor a probability "
            "map in [0, 1]; this looks like an intensity image, not a plausible lesion mask",
            "give the segmentation, not the image (check mask_path and image_path in the "
            "manifest); save a probability map in [0, 1] or an integer label map",
        )
    return (_by_slab(raw, np.uint8, lambda part: part >= threshold),
            Storage.FLOAT_THRESHOLDED, float(threshold))


_SLAB_VOXELS = 1 << 23  # voxels per slab of the float conversion (8 Mi: 32 MiB of float32)


def _slabs(raw: np.ndarray) -> list[tuple[slice, ...]]:
    """Index tuples cutting ``raw`` into slabs of whole planes along its slowest axis (the
    last of a Fortran-ordered array, the first of a C-ordered one), each of at most
    :data:`_SLAB_VOXELS` voxels (at least one plane)."""
    if raw.ndim == 0 or raw.size == 0:
        return [tuple(slice(None) for _ in range(raw.ndim))]
    axis = 0 if raw.flags.c_contiguous and not raw.flags.f_contiguous else raw.ndim - 1
    plane = max(1, raw.size // raw.shape[axis])
    step = max(1, _SLAB_VOXELS // plane)
    cuts = []
    for k in range(0, raw.shape[axis], step):
        index = [slice(None)] * raw.ndim
        index[axis] = slice(k, k + step)
        cuts.append(tuple(index))
    return cuts


def _by_slab(raw: np.ndarray, dtype: Any, fn: Any) -> np.ndarray:
    """``fn(raw)`` cast to ``dtype``, computed slab by slab into one output array (of the
    input's memory order)."""
    out = np.empty(raw.shape, dtype=dtype, order="F" if raw.flags.f_contiguous else "C")
    for sl in _slabs(raw):
        out[sl] = fn(raw[sl])
    return out


MAX_LESION_VOLUME_MM3 = 1.5e6
"""Total lesion volume above which a mask is refused unless ``allow_large_lesions`` (1.5 L:
more than a whole brain's worth of lesion is an image or a head mask, not lesions)."""
MAX_FIELD_OF_VIEW_FRACTION = 0.25
"""Fraction of the field of view above which a mask is refused unless ``allow_large_lesions``,
when the field of view is head-sized (at least :data:`HEAD_FIELD_OF_VIEW_MM3`): a mask cropped
around its lesion, or a phantom, fills its small field of view legitimately."""
HEAD_FIELD_OF_VIEW_MM3 = 1.0e6


def check_lesion_extent(data: np.ndarray, voxel_volume_mm3: float, path: Path | None) -> None:
    """Refuse a mask whose foreground is not plausibly lesion tissue: more than 1.5 L, or more
    than a quarter of a head-sized field of view (``allow_large_lesions`` skips this check)."""
    n = int(np.count_nonzero(data))
    volume, fraction = n * voxel_volume_mm3, n / max(data.size, 1)
    head_sized = data.size * voxel_volume_mm3 >= HEAD_FIELD_OF_VIEW_MM3
    if volume > MAX_LESION_VOLUME_MM3 or (head_sized and fraction > MAX_FIELD_OF_VIEW_FRACTION):
        raise MaskError(
            path,
            f"its foreground is {volume / 1e6:.2f} L ({n:,} voxels, {fraction:.0%} of the field "
            f"of view): lesions are a small part of the head, so this is not a plausible lesion "
            f"mask (limits: {MAX_LESION_VOLUME_MM3 / 1e6:g} L, and "
            f"{MAX_FIELD_OF_VIEW_FRACTION:.0%} of a field of view of 1 L or more)",
            "give the segmentation, not the image or a brain mask (check mask_path and "
            "image_path in the manifest); for a real lesion this large use --allow-large-lesions",
        )


def check_not_all_foreground(data: np.ndarray, path: Path) -> None:
    """Refuse a file in which every voxel is lesion: no background at all is not a lesion
    segmentation of a scan (an inverted or constant export, a head mask), and a lesion that
    fills the field of view cannot be measured (it extends beyond it). The corner voxel is
    checked first, so a normal mask costs nothing."""
    if data.size > 1 and data.flat[0] != 0 and bool(np.all(data)):
        raise MaskError(
            path, f"every one of its {data.size:,} voxels is lesion (no background)",
            "check the export: a lesion mask has background voxels (0); an inverted mask, a "
            "head/brain mask or a constant image is not a lesion mask",
        )


def check_affine(affine: np.ndarray, path: Path | None) -> None:
    if not np.all(np.isfinite(affine)):
        raise MaskError(path, "affine contains NaN or infinite values", "repair the header geometry")
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(norms <= 0) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise MaskError(
            path, f"voxel spacing is zero or the axes are degenerate (spacing {norms.tolist()})",
            "set the voxel size in the header (pixdim / spacing); cnsvol never assumes 1 mm",
        )
