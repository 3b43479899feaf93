"""Reading lesion masks and images with correct physical geometry.

Everything that leaves :mod:`cnsvol.io` is in one convention:

* the data array is indexed ``[i, j, k]`` (the file's own voxel axes, fastest first);
* ``affine`` maps ``(i, j, k, 1)`` to RAS+ millimetres, the NIfTI/nibabel world convention:
  x increases towards the patient's Right, y Anterior, z Superior;
* spacing and the voxel volume are float64 millimetres.

NIfTI-1/2 files are read with nibabel (:mod:`cnsvol.io.nifti`), whose affines are already RAS+;
NRRD and MetaImage files with SimpleITK (:mod:`cnsvol.io.itk`), where the LPS to RAS flip and
the axis reversal happen once, and nowhere else; DICOM SEG and RTSTRUCT masks (recognised by
content, or a folder holding one) by :mod:`cnsvol.io.dicom`, DICOM image series (a folder) by
:mod:`cnsvol.io.dicom_series`. How stored values become labels: :mod:`cnsvol.io.mask`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .files import DEFAULT_MAX_BYTES, check_file
from .headers import check_data_files
from .itk import read_sitk
from .mask import (
    DEFAULT_THRESHOLD, Mask, Storage, check_affine, check_lesion_extent, check_not_all_foreground,
    parse_labels_for, to_labels,
)
from .dicom import is_dicom, mask_file_in, read_dicom_mask
from .segments import parse_segments
from .nifti import read_nifti

__all__ = ["mask_format", "read_image", "read_mask"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def mask_format(path: str | Path) -> str:
    """Which reader handles ``path``: ``"dicom"`` (from its content: a DICOM SEG or RTSTRUCT,
    whatever its name; or a folder of DICOM files), else ``"nifti"`` or ``"sitk"`` from its
    name."""
    if Path(path).is_dir() or is_dicom(Path(path)):
        return "dicom"
    name = str(path).lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_SITK_SUFFIXES):
        return "sitk"
    raise MaskError(
        path,
        "unrecognised file type",
        "give a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), DICOM SEG or "
        "RTSTRUCT file",
    )


def read_mask(
    path: str | Path,
    *,
    labels: str | tuple[int, ...] | list[int] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_bytes: int = DEFAULT_MAX_BYTES,
    mask_kind: str = "auto",
    allow_large_lesions: bool = False,
    segments: str | list[str | int] | tuple[str | int, ...] | None = None,
    reference: str | Path | None = None,
    rasterisation: str = "centre",
) -> Mask:
    """Read a lesion mask file into a :class:`Mask` in RAS+ millimetres.

    Args:
        path: a NIfTI-1/2 (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) file;
            or a DICOM SEG or RTSTRUCT file (recognised by content, whatever its name), or a
            folder holding one: its SegmentNumbers (ROINumbers) are the labels.
        labels: which label values form the lesion region: ``None`` (every non-zero label),
            a preset name (see :mod:`cnsvol.labelsets`), ``"1,3"`` or a sequence of ints.
        threshold: foreground threshold for fractional float masks (``value >= threshold``).
        max_bytes: refuse, before reading any voxel, a file whose data would need more memory.
        mask_kind: ``"auto"``, ``"labels"`` or ``"probability"`` (:func:`~cnsvol.io.mask.to_labels`):
            what the stored values are; ``"auto"`` refuses more than 256 distinct labels.
        allow_large_lesions: accept a foreground above 1.5 L or a quarter of the field of view
            (refused by default: an image or a head mask given as a lesion mask).
        segments: DICOM only: which segments (ROIs) form the mask: ``"GTV*,3"`` or a sequence,
            each a number or a case-insensitive shell pattern on the SegmentLabel (ROIName) or
            coded property; ``None`` = all. A selection matching none is refused, listing them.
        reference: RTSTRUCT only: the folder of the image series it was drawn on; ``None``
            looks beside the file (its folder, then the folders next to it) by frame of
            reference.
        rasterisation: RTSTRUCT only: ``"centre"`` (voxel centre inside the polygon, even-odd
            rule; default) or ``"fill"`` (polygon fill on rounded vertices, as OpenCV and
            rt-utils); see :mod:`cnsvol.io.rtstruct`.

    Raises:
        MaskError: the file is missing, unreadable, not a regular file, not 3D, truncated,
            holds NaN/inf or negative labels, is empty, or is lesion in every voxel; the
            message names the file, what was found and the fix.
        MaskTooLargeError: the header's dimensions exceed ``max_bytes``.
    """
    path = Path(path)
    selection = parse_labels_for(path, labels)
    chosen = _segments_for(path, segments)
    if path.is_dir():
        path = mask_file_in(path)
    check_file(path)
    kind = mask_format(path)
    if kind == "dicom":
        dm = read_dicom_mask(path, max_bytes, selection=selection, segments=chosen,
                             reference=None if reference is None else Path(reference),
                             rasterisation=rasterisation, threshold=threshold)
        dm = replace(dm, notes=dm.notes + _unused_rule(rasterisation, dm.source_format))
        return _dicom_mask(path, dm, selection, allow_large_lesions)
    if kind == "nifti":
        raw, affine, fmt, notes = read_nifti(path, max_bytes)
    else:
        check_data_files(path)
        raw, affine, fmt, notes = read_sitk(path, max_bytes)
    notes = (*notes, *_unused_rule(rasterisation, fmt))
    data, storage, used_threshold = to_labels(raw, path, threshold, selection, mask_kind)
    found = None
    if selection is not None and not data.any():  # the labels asked for are not in this file
        full, _, _ = to_labels(raw, path, threshold, None, mask_kind)
        values = np.unique(full)
        found = tuple(int(v) for v in values[values > 0])
    notes = _checked(path, data, affine, selection, found, notes, allow_large_lesions)
    return Mask(
        data=data,
        affine=affine,
        path=path,
        source_format=fmt,
        storage=storage,
        labels=selection,
        threshold=used_threshold,
        notes=notes,
        labels_found=found,
    )


def _checked(path: Path, data: np.ndarray, affine: np.ndarray,
             selection: tuple[int, ...] | None, found: tuple[int, ...] | None,
             notes: Any, allow_large_lesions: bool) -> tuple[str, ...]:
    """The checks every mask gets (not lesion everywhere, a usable affine, a plausible
    extent); returns ``notes``, with the labels present when the selection found none."""
    notes = list(notes)
    if found is not None:
        notes.append(f"none of the labels {', '.join(map(str, selection or ()))} is in this "
                     f"mask; labels present: {', '.join(map(str, found)) or 'none'}")
    check_not_all_foreground(data, path)
    check_affine(affine, path)
    if not allow_large_lesions:
        check_lesion_extent(data, float(abs(np.linalg.det(affine[:3, :3]))), path)
    return tuple(notes)


def _unused_rule(rasterisation: str, fmt: str) -> tuple[str, ...]:
    """A note when a rasterisation rule other than the default was asked for a mask that is
    voxels already (only RTSTRUCT contours are rasterised)."""
    if rasterisation == "centre" or fmt == "dicom-rtstruct":
        return ()
    return (f"rasterisation {rasterisation!r} not used: it applies to RTSTRUCT contours, and "
            f"this {fmt} mask is voxels already",)


def _segments_for(path: Path, segments: Any) -> tuple[str, ...] | None:
    try:
        chosen = parse_segments(segments)
    except ValueError as exc:
        raise MaskError(path, str(exc), "e.g. --segments 'GTV*'") from None
    if chosen is not None and not path.is_dir() and not is_dicom(path):
        raise MaskError(path, "segments are chosen by name in DICOM SEG and RTSTRUCT masks only",
                        "select this mask's labels with --labels")
    return chosen


def _dicom_mask(path: Path, dm: Any, selection: tuple[int, ...] | None,
                allow_large_lesions: bool) -> Mask:
    """A :class:`Mask` from a DICOM SEG/RTSTRUCT read, with the checks every mask gets."""
    found = dm.available if selection is not None and not dm.labels.any() else None
    notes = _checked(path, dm.labels, dm.affine, selection, found, dm.notes, allow_large_lesions)
    storage = Storage.FLOAT_THRESHOLDED if dm.threshold is not None else Storage.INTEGER
    return Mask(data=dm.labels, affine=dm.affine, path=path, source_format=dm.source_format,
                storage=storage, labels=selection, threshold=dm.threshold, notes=notes,
                labels_found=found, segments=dm.segments, overlap_voxels=dm.overlap_voxels)


def read_image(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """Read an image (e.g. the MRI under a mask) as ``(data [i, j, k], RAS+ mm affine)``.

    Same readers, geometry and refusals (missing, 4D, oversized...) as :func:`read_mask`, but the
    voxel values are returned as stored (scaled to float where the header says so), without any
    label logic, for display only. A folder is read as one DICOM image series
    (:mod:`cnsvol.io.dicom_series`: one orientation, equally spaced slices).
    """
    path = Path(path)
    if path.is_dir():
        from .dicom_series import read_dicom_series

        raw, affine, _ = read_dicom_series(path, max_bytes)
        check_affine(affine, path)
        return raw, affine
    check_file(path)
    if mask_format(path) == "nifti":
        raw, affine, _, _ = read_nifti(path, max_bytes)
    else:
        check_data_files(path)
        raw, affine, _, _ = read_sitk(path, max_bytes)
    check_affine(affine, path)
    return raw, affine
