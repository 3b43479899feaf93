"""Reading NRRD and MetaImage files with SimpleITK.

SimpleITK's world is LPS+ and its arrays come back indexed ``[k, j, i]``. Both are converted
here, once, to cnsvol's convention: arrays indexed ``[i, j, k]`` and affines mapping
``(i, j, k, 1)`` to RAS+ millimetres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError
from .files import check_size, first_line, spatial_shape

__all__ = ["read_sitk", "to_sitk"]

# LPS (ITK) <-> RAS (NIfTI): negate the first two world axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def read_sitk(path: Path, max_bytes: int) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        detail = first_line(exc)
        fix = (
            "set a non-zero voxel spacing in the header; cnsvol never assumes 1 mm"
            if "spacing" in str(exc).lower()
            else "check the file is a valid NRRD/MetaImage file"
        )
        raise MaskError(path, f"cannot read the header ({detail})", fix) from None
    size = tuple(int(s) for s in reader.GetSize())  # (i, j, k[, t])
    ncomp = int(reader.GetNumberOfComponents())
    if ncomp != 1:
        raise MaskError(path, f"{ncomp} components per voxel (a vector image)",
                        "give a scalar label mask")
    if len(size) == 2:
        raise MaskError(
            path, "2D image: the header has no slice thickness, so no volume can be computed",
            "save the mask as a 3D image (one slice is fine) with its slice thickness set",
        )
    shape3 = spatial_shape(path, size)
    itemsize = sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], reader.GetPixelID())).itemsize
    check_size(path, shape3, itemsize, max_bytes, reader_copies=2)  # ITK buffer + numpy copy
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        fix = (
            "set a non-zero voxel spacing in the header; cnsvol never assumes 1 mm"
            if "spacing" in str(exc).lower()
            else "the file is truncated or corrupt; re-export or re-copy it"
        )
        raise MaskError(path, f"cannot read the voxel data ({first_line(exc)})", fix) from None
    dim = img.GetDimension()
    # SimpleITK arrays are [k, j, i] (C order, last index fastest = x). Reverse to [i, j, k].
    arr = sitk.GetArrayFromImage(img)
    arr = arr.reshape(tuple(reversed(size))).transpose(tuple(range(arr.ndim - 1, -1, -1)))
    arr = arr.reshape(shape3)
    spacing = np.array(img.GetSpacing(), dtype=np.float64)[:3]
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    origin = np.array(img.GetOrigin(), dtype=np.float64)[:3]
    affine = np.eye(4)
    # ITK: world_LPS = origin + direction @ diag(spacing) @ index. Convert LPS -> RAS once here.
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ origin
    fmt = "nrrd" if str(path).lower().endswith((".nrrd", ".nhdr")) else "metaimage"
    return arr, affine, fmt, ["NRRD/MetaImage units assumed to be millimetres"]


def to_sitk(data: np.ndarray, affine_ras: np.ndarray) -> Any:
    """A float32 SimpleITK image of ``data [i, j, k]`` placed by the RAS+ ``affine_ras`` (the
    inverse of :func:`read_sitk`'s conversion: LPS world, ``[k, j, i]`` array)."""
    import SimpleITK as sitk

    m = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine_ras, dtype=np.float64)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    img = sitk.GetImageFromArray(np.ascontiguousarray(
        np.asarray(data, dtype=np.float32).transpose(2, 1, 0)))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(v) for v in m[:3, 3]))
    img.SetDirection(tuple(float(v) for v in (m[:3, :3] / spacing).ravel()))
    return img
