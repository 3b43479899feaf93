"""Reading lesion masks and images with correct physical geometry.

Everything that leaves :mod:`cnsvol.io` is in one convention:

* the data array is indexed ``[i, j, k]`` (the file's own voxel axes, fastest first);
* ``affine`` maps ``(i, j, k, 1)`` to RAS+ millimetres, the NIfTI/nibabel world convention:
  x increases towards the patient's Right, y Anterior, z Superior;
* spacing and the voxel volume are float64 millimetres.

NIfTI-1/2 files are read with nibabel (:mod:`cnsvol.io.nifti`), whose affines are already RAS+;
NRRD and MetaImage files with SimpleITK (:mod:`cnsvol.io.itk`), where the LPS to RAS flip and
the axis reversal happen once, and nowhere else. How stored values become labels:
:mod:`cnsvol.io.mask`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MaskError
from .files import DEFAULT_MAX_BYTES, check_file
from .headers import check_data_files
from .itk import read_sitk
from .mask import (
    DEFAULT_THRESHOLD, Mask, check_affine, check_lesion_extent, check_not_all_foreground,
    parse_labels_for, to_labels,
)
from .dicom import is_dicom, read_dicom_seg
from .nifti import read_nifti

__all__ = ["mask_format", "read_image", "read_mask"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def mask_format(path: str | Path) -> str:
    """Which reader handles ``path``: ``"dicom"`` (from its content: a DICOM SEG, whatever
    its name), else ``"nifti"`` or ``"sitk"`` from its name."""
    if is_dicom(Path(path)):
        return "dicom"
    name = str(path).lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_SITK_SUFFIXES):
        return "sitk"
    raise MaskError(
        path,
        "unrecognised file type",
        "give a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) or DICOM "
        "SEG file",
    )


def read_mask(
    path: str | Path,
    *,
    labels: str | tuple[int, ...] | list[int] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_bytes: int = DEFAULT_MAX_BYTES,
    mask_kind: str = "auto",
    allow_large_lesions: bool = False,
) -> Mask:
    """Read a lesion mask file into a :class:`Mask` in RAS+ millimetres.

    Args:
        path: a NIfTI-1/2 (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) file,
            or a DICOM SEG (recognised by content; its SegmentNumbers are the labels).
        labels: which label values form the lesion region: ``None`` (every non-zero label),
            a preset name (see :mod:`cnsvol.labelsets`), ``"1,3"`` or a sequence of ints.
        threshold: foreground threshold for fractional float masks (``value >= threshold``).
        max_bytes: refuse, before reading any voxel, a file whose data would need more memory.
        mask_kind: ``"auto"``, ``"labels"`` or ``"probability"`` (:func:`~cnsvol.io.mask.to_labels`):
            what the stored values are; ``"auto"`` refuses more than 256 distinct labels.
        allow_large_lesions: accept a foreground above 1.5 L or a quarter of the field of view
            (refused by default: an image or a head mask given as a lesion mask).

    Raises:
        MaskError: the file is missing, unreadable, not a regular file, not 3D, truncated,
            holds NaN/inf or negative labels, is empty, or is lesion in every voxel; the
            message names the file, what was found and the fix.
        MaskTooLargeError: the header's dimensions exceed ``max_bytes``.
    """
    path = Path(path)
    selection = parse_labels_for(path, labels)
    check_file(path)
    kind = mask_format(path)
    if kind == "dicom":
        raw, affine, fmt, notes = read_dicom_seg(path, max_bytes, selection)
    elif kind == "nifti":
        raw, affine, fmt, notes = read_nifti(path, max_bytes)
    else:
        check_data_files(path)
        raw, affine, fmt, notes = read_sitk(path, max_bytes)
    data, storage, used_threshold = to_labels(raw, path, threshold, selection, mask_kind)
    found, notes = None, list(notes)
    if selection is not None and not data.any():  # the labels asked for are not in this file
        full, _, _ = to_labels(raw, path, threshold, None, mask_kind)
        values = np.unique(full)
        found = tuple(int(v) for v in values[values > 0])
        notes.append(f"none of the labels {', '.join(map(str, selection))} is in this mask; "
                     f"labels present: {', '.join(map(str, found)) or 'none'}")
    check_not_all_foreground(data, path)
    check_affine(affine, path)
    if not allow_large_lesions:
        check_lesion_extent(data, float(abs(np.linalg.det(affine[:3, :3]))), path)
    return Mask(
        data=data,
        affine=affine,
        path=path,
        source_format=fmt,
        storage=storage,
        labels=selection,
        threshold=used_threshold,
        notes=tuple(notes),
        labels_found=found,
    )


def read_image(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """Read an image (e.g. the MRI under a mask) as ``(data [i, j, k], RAS+ mm affine)``.

    Same readers, geometry and refusals (missing, 4D, oversized...) as :func:`read_mask`, but the
    voxel values are returned as stored (scaled to float where the header says so), without any
    label logic, for display only.
    """
    path = Path(path)
    check_file(path)
    if mask_format(path) == "nifti":
        raw, affine, _, _ = read_nifti(path, max_bytes)
    else:
        check_data_files(path)
        raw, affine, _, _ = read_sitk(path, max_bytes)
    check_affine(affine, path)
    return raw, affine
