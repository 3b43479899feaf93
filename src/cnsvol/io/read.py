"""Reading lesion masks with correct physical geometry.

Everything that leaves this module is in one convention:

* the data array is indexed ``[i, j, k]`` (the file's own voxel axes, fastest first);
* ``affine`` maps ``(i, j, k, 1)`` to RAS+ millimetres, the NIfTI/nibabel world convention:
  x increases towards the patient's Right, y Anterior, z Superior;
* spacing and the voxel volume are float64 millimetres.

NIfTI-1/2 files are read with nibabel, whose affines are already RAS+; NRRD and MetaImage files
are read with SimpleITK, whose world is LPS+ and whose arrays come back as ``[k, j, i]``. The LPS
to RAS flip and the axis reversal happen once, in :func:`_read_sitk`, and nowhere else.

Voxel values:

* integer storage without scaling: labels are kept as their stored integers;
* float storage, or integer storage with ``scl_slope``/``scl_inter`` (e.g. a binary mask stored
  so that 1 reads back as 0.99999997): if every value lies within ``INTEGRAL_TOLERANCE`` of an
  integer, the values are rounded to integer labels (``storage = "float-integral"``); otherwise
  the map is fractional (probability or partial-volume) and foreground is ``value >= threshold``
  (default 0.5, ``storage = "float-thresholded"``), giving a binary mask.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError, MaskTooLargeError
from .labelsets import parse_labels

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_THRESHOLD",
    "INTEGRAL_TOLERANCE",
    "Mask",
    "mask_format",
    "mask_from_array",
    "read_image",
    "read_mask",
]

DEFAULT_MAX_BYTES = 4 * 1024**3
"""Refuse a file whose decoded data would need more than this many bytes (4 GiB)."""

DEFAULT_THRESHOLD = 0.5
"""Foreground threshold for fractional float masks: a voxel is lesion when ``value >= 0.5``."""

INTEGRAL_TOLERANCE = 1e-3
"""Float values within this distance of an integer are read as that integer label."""

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001, "unknown": 1.0}
# LPS (ITK) <-> RAS (NIfTI): negate the first two world axes.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Mask:
    """A 3D lesion mask in world space.

    Attributes:
        data: integer label array indexed ``[i, j, k]``; 0 is background. Labels not selected
            are already set to 0.
        affine: 4x4 float64, voxel ``(i, j, k)`` -> RAS+ millimetres.
        path: the source file, or ``None`` for an in-memory mask.
        source_format: ``"nifti1"``, ``"nifti2"``, ``"nrrd"``, ``"metaimage"`` or ``"array"``.
        storage: ``"integer"``, ``"float-integral"`` or ``"float-thresholded"`` (see module doc).
        labels: the label values selected, or ``None`` for every non-zero label.
        threshold: the threshold used for a fractional float mask, else ``None``.
        notes: human-readable remarks about assumptions made while reading (e.g. units assumed
            to be millimetres because the header says "unknown").
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    source_format: str = "array"
    storage: str = "integer"
    labels: tuple[int, ...] | None = None
    threshold: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

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

    def same_grid(self, other: Mask, atol_mm: float = 1e-3) -> bool:
        """True when both masks have the same shape and, element-wise, the same affine."""
        return self.shape == other.shape and bool(
            np.all(np.abs(self.affine - other.affine) <= atol_mm)
        )


def mask_format(path: str | Path) -> str:
    """Which reader handles ``path``: ``"nifti"`` or ``"sitk"``, from its name."""
    name = str(path).lower()
    if name.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(_SITK_SUFFIXES):
        return "sitk"
    raise MaskError(
        path,
        "unrecognised file type",
        "give a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) file",
    )


def read_mask(
    path: str | Path,
    *,
    labels: str | tuple[int, ...] | list[int] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Mask:
    """Read a lesion mask file into a :class:`Mask` in RAS+ millimetres.

    Args:
        path: a NIfTI-1/2 (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) file.
        labels: which label values form the lesion region: ``None`` (every non-zero label),
            a preset name (see :mod:`cnsvol.labelsets`), ``"1,3"`` or a sequence of ints.
        threshold: foreground threshold for fractional float masks (``value >= threshold``).
        max_bytes: refuse, before reading any voxel, a file whose data would need more memory.

    Raises:
        MaskError: the file is missing, unreadable, not a regular file, not 3D, truncated,
            holds NaN/inf or negative labels, is empty, or is lesion in every voxel; the
            message names the file, what was found and the fix.
        MaskTooLargeError: the header's dimensions exceed ``max_bytes``.
    """
    path = Path(path)
    selection = _parse_labels_for(path, labels)
    _check_file(path)
    if mask_format(path) == "nifti":
        raw, affine, fmt, notes = _read_nifti(path, max_bytes)
    else:
        raw, affine, fmt, notes = _read_sitk(path, max_bytes)
    data, storage, used_threshold = _to_labels(raw, path, threshold, selection)
    _check_not_all_foreground(data, path)
    _check_affine(affine, path)
    return Mask(
        data=data,
        affine=affine,
        path=path,
        source_format=fmt,
        storage=storage,
        labels=selection,
        threshold=used_threshold,
        notes=tuple(notes),
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
    _check_file(path)
    if mask_format(path) == "nifti":
        raw, affine, _, _ = _read_nifti(path, max_bytes)
    else:
        raw, affine, _, _ = _read_sitk(path, max_bytes)
    _check_affine(affine, path)
    return raw, affine


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
    _check_affine(affine, None)
    selection = _parse_labels_for(None, labels)
    out, storage, used = _to_labels(arr, None, threshold, selection)
    return Mask(data=out, affine=affine, storage=storage, labels=selection, threshold=used)


# --------------------------------------------------------------------------------------------
# readers


def _parse_labels_for(path: Path | None, labels: object) -> tuple[int, ...] | None:
    try:
        return parse_labels(labels)  # type: ignore[arg-type]
    except ValueError as exc:
        raise MaskError(path, str(exc), "use e.g. --labels 1,3 or --labels brats-wt") from None


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MaskError(path, "symbolic link loop", "point the path at a real file") from None
        if exc.errno == errno.ENOENT:
            raise MaskError(path, "file not found", "check the path (and the manifest folder)") from None
        raise MaskError(path, f"cannot access file ({exc.strerror})", "check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise MaskError(path, "is a directory, not a mask file", "give the path of the mask file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "not a regular file")
        raise MaskError(path, f"is {kind}, not a mask file", "give the path of the mask file")
    if st.st_size == 0:
        raise MaskError(path, "file is empty (0 bytes)", "re-export the mask")
    if not os.access(path, os.R_OK):
        raise MaskError(path, "no permission to read the file", "make it readable (chmod +r)")


def _check_size(path: Path, shape: tuple[int, ...], itemsize: int, max_bytes: int) -> None:
    if any(int(s) < 0 for s in shape):
        raise MaskError(
            path, f"header declares a negative dimension (shape {tuple(int(s) for s in shape)})",
            "the header is corrupt; re-export the mask",
        )
    n = 1
    for s in shape:
        n *= int(s)
    if n == 0:
        raise MaskError(path, f"image has no voxels (shape {tuple(shape)})", "re-export the mask")
    need = n * itemsize
    if need > max_bytes:
        raise MaskTooLargeError(
            path,
            f"header declares {tuple(int(s) for s in shape)} = {n:,} voxels, "
            f"{need / 1024**3:.2f} GiB decoded, above the limit of {max_bytes / 1024**3:.2f} GiB",
            "check the header is not corrupt, or raise the limit (--max-gib / max_bytes)",
        )


def _spatial_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Reduce a header shape to 3D: squeeze trailing singleton axes, pad 2D; refuse real 4D."""
    dims = [int(s) for s in shape]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) > 3:
        raise MaskError(
            path,
            f"{len(dims)}D image of shape {tuple(dims)} ({int(np.prod(dims[3:]))} volumes)",
            "give one 3D mask per timepoint (extract one volume, e.g. nibabel's img.slicer[..., 0])",
        )
    while len(dims) < 3:
        dims.append(1)
    return dims[0], dims[1], dims[2]


def _read_nifti(path: Path, max_bytes: int) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    from nibabel import imageglobals

    # nibabel logs what its header checks repair ("sizeof_hdr should be 348", ...) to stderr,
    # without naming the file; every problem that matters is raised below, with the file
    logger = imageglobals.logger
    was_disabled = logger.disabled
    logger.disabled = True
    try:
        return _read_nifti_quietly(path, max_bytes)
    finally:
        logger.disabled = was_disabled


def _read_nifti_quietly(
    path: Path, max_bytes: int
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    import nibabel as nib

    _check_gzip_magic(path)
    gz = str(path).lower().endswith(".gz")
    if gz:
        _check_compressed_size(path, max_bytes)
    inflated = _inflate_nifti_gz(path) if gz else None
    try:
        if inflated is not None:
            hdr = inflated.header
            img = None
        else:
            img = nib.load(str(path))
            hdr = img.header
    except Exception as exc:  # nibabel raises many types for a bad header; all mean the same
        raise MaskError(
            path, f"cannot read the NIfTI header ({type(exc).__name__}: {exc})",
            "check the file is a valid NIfTI-1/2 image (re-export it)",
        ) from None
    if img is not None and not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise MaskError(path, f"not a NIfTI image ({type(img).__name__})", "save it as NIfTI")
    fmt = "nifti2" if isinstance(hdr, nib.Nifti2Header) else "nifti1"
    shape3 = _spatial_shape(path, hdr.get_data_shape())
    if int(hdr["sform_code"]) == 0:  # the affine comes from qform/pixdim: check the stored pixdim
        _check_stored_pixdim(path, type(hdr), len(hdr.get_data_shape()))
    slope, inter = hdr.get_slope_inter()
    scaled = (slope is not None and slope != 1.0) or (inter is not None and inter != 0.0)
    stored = np.dtype(hdr.get_data_dtype())
    itemsize = 8 if scaled else stored.itemsize
    _check_size(path, shape3, itemsize, max_bytes)

    notes: list[str] = []
    space_unit = hdr.get_xyzt_units()[0]
    to_mm = _UNIT_TO_MM.get(space_unit)
    if to_mm is None:
        raise MaskError(path, f"unsupported spatial unit {space_unit!r}", "set xyzt_units to mm")
    if space_unit == "unknown":
        notes.append("spatial units not set in header (xyzt_units=0); millimetres assumed")
    elif space_unit != "mm":
        notes.append(f"spatial units are {space_unit}; converted to millimetres")
    if int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
        notes.append("no qform or sform: orientation unknown, affine built from pixdim only")
    affine = np.array(hdr.get_best_affine(), dtype=np.float64)
    affine[:3, :] *= to_mm
    offset = inflated.offset if inflated is not None else int(img.dataobj.offset)
    if not gz:  # uncompressed: the file size tells whether every voxel is there
        need = offset + int(np.prod(shape3)) * stored.itemsize
        have = path.stat().st_size
        if have < need:
            raise MaskError(
                path, f"file is truncated: the header declares {need - offset:,} bytes of voxel "
                f"data from byte {offset}, the file holds {max(have - offset, 0):,}",
                "re-export or re-copy the file",
            )
    try:
        if scaled:  # rare: let nibabel apply scl_slope / scl_inter exactly as it defines them
            if img is None:
                img = nib.load(str(path))
            raw = np.asanyarray(img.dataobj).reshape(shape3)
        elif inflated is not None:
            raw = inflated.voxels(offset, stored, shape3)
        else:
            raw = _read_voxels(path, offset, stored, shape3)
    except Exception as exc:  # truncated gzip, short file, bad compression
        raise MaskError(
            path, f"cannot read the voxel data ({type(exc).__name__}: {exc})",
            "the file is truncated or corrupt; re-export or re-copy it",
        ) from None
    if not raw.dtype.isnative:
        raw = raw.astype(raw.dtype.newbyteorder("="))
    return raw, affine, fmt, notes


def _check_stored_pixdim(path: Path, header_class: type, ndim: int) -> None:
    """Refuse a zero voxel size. nibabel's header check silently turns a zero pixdim into 1 on
    load, so the value is read again from the file without that fix."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as fh:
        stored = header_class.from_fileobj(fh, check=False)  # type: ignore[attr-defined]
    zooms = [float(z) for z in stored["pixdim"][1 : 1 + min(ndim, 3)]]
    if any(z == 0 for z in zooms):
        raise MaskError(
            path, f"voxel spacing is zero (pixdim {zooms}, no sform)",
            "set the voxel size in the header (pixdim / spacing); cnsvol never assumes 1 mm",
        )


def _zlib():
    """zlib-ng's inflater when installed (several times faster), else the standard library's:
    same API, same bytes."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # pragma: no cover - exercised by the fallback test via monkeypatch
        import zlib

        return zlib
    return zlib_ng


def _gzip_open(path: Path):  # -> binary file object
    """Open a .gz file for streaming (the uncompressed-size-unknown path)."""
    import gzip

    return gzip.open(path, "rb")


_HEADER_MAX = 1 << 20  # a NIfTI header with extensions larger than this goes through nibabel


class _InflatedNifti:
    """A .nii.gz inflated in memory: the header first, then exactly the voxel bytes needed
    (so a header claiming more voxels than the size check allows never inflates them)."""

    def __init__(self, raw: bytes, header: Any, offset: int) -> None:
        self.raw, self.header, self.offset = raw, header, offset

    def voxels(self, offset: int, dtype: np.dtype, shape: tuple[int, int, int]) -> np.ndarray:
        need = offset + int(np.prod(shape)) * dtype.itemsize
        buf = _inflate(self.raw, need)
        if len(buf) < need:
            raise EOFError(f"voxel data ends after {max(len(buf) - offset, 0)} of "
                           f"{need - offset} bytes")
        return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape)),
                             offset=offset).reshape(shape, order="F")


def _inflate(raw: bytes, need: int) -> bytes:
    """The first ``need`` bytes of a gzip stream (several members are followed)."""
    zmod = _zlib()
    parts: list[bytes] = []
    got = 0
    data = raw
    while got < need and data:
        d = zmod.decompressobj(wbits=31)
        chunk = d.decompress(data, need - got)
        parts.append(chunk)
        got += len(chunk)
        if not d.eof:
            break
        data = d.unused_data
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _inflate_nifti_gz(path: Path) -> _InflatedNifti | None:
    """Parse a .nii.gz header from memory; None (nibabel then reads the file) when the header
    is anything but a plain, readable NIfTI-1/2 one."""
    import io as _io
    import struct

    import nibabel as nib

    raw = path.read_bytes()
    try:
        head = _inflate(raw, 540)
        size_le = struct.unpack_from("<i", head, 0)[0]
        size_be = struct.unpack_from(">i", head, 0)[0]
        if 348 in (size_le, size_be):
            klass, end, hsize = nib.Nifti1Header, ("<" if size_le == 348 else ">"), 348
            vox_offset = struct.unpack_from(end + "f", head, 108)[0]
        elif 540 in (size_le, size_be):
            klass, end, hsize = nib.Nifti2Header, ("<" if size_le == 540 else ">"), 540
            vox_offset = struct.unpack_from(end + "q", head, 168)[0]
        else:
            return None
        if not (hsize + 4 <= vox_offset <= _HEADER_MAX) or vox_offset != int(vox_offset):
            return None
        block = _inflate(raw, int(vox_offset))
        header = klass.from_fileobj(_io.BytesIO(block))
    except Exception:  # noqa: BLE001 - nibabel gives the precise error on the slow path
        return None
    return _InflatedNifti(raw, header, int(vox_offset))


def _read_voxels(
    path: Path, offset: int, dtype: np.dtype, shape: tuple[int, int, int]
) -> np.ndarray:
    """Decode the voxel block of an unscaled NIfTI straight into a Fortran-ordered array (the
    NIfTI storage order), without an intermediate copy."""
    out = np.empty(shape, dtype=dtype, order="F")
    view = memoryview(out.reshape(-1, order="F")).cast("B")
    opener = _gzip_open if str(path).lower().endswith(".gz") else (lambda p: open(p, "rb"))
    with opener(path) as fh:
        fh.seek(offset)
        filled = 0
        while filled < len(view):
            n = fh.readinto(view[filled:])
            if not n:
                raise EOFError(f"voxel data ends after {filled} of {len(view)} bytes")
            filled += n
    if not out.dtype.isnative:
        out = out.byteswap().view(out.dtype.newbyteorder("="))
    return out


def _check_compressed_size(path: Path, max_bytes: int) -> None:
    """Refuse, before reading it into memory, a .gz file too large to inflate to at most
    ``max_bytes`` (deflate never grows data by more than a fraction of a percent)."""
    size = path.stat().st_size
    if size > max_bytes * 1.01 + (1 << 20):
        raise MaskTooLargeError(
            path, f"compressed file of {size / 1024**3:.2f} GiB, so its data exceeds the limit "
            f"of {max_bytes / 1024**3:.2f} GiB",
            "check the file, or raise the limit (--max-gib / max_bytes)",
        )


def _check_gzip_magic(path: Path) -> None:
    if not str(path).lower().endswith(".gz"):
        return
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        raise MaskError(
            path, f"named .gz but not gzip-compressed (first bytes {magic.hex(' ') or 'none'}, "
            "not the gzip signature 1f 8b)",
            "rename it to .nii if it is uncompressed, or re-export it",
        )


def _read_sitk(path: Path, max_bytes: int) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        detail = _first_line(exc)
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
    shape3 = _spatial_shape(path, size)
    itemsize = sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], reader.GetPixelID())).itemsize
    _check_size(path, shape3, itemsize, max_bytes)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        fix = (
            "set a non-zero voxel spacing in the header; cnsvol never assumes 1 mm"
            if "spacing" in str(exc).lower()
            else "the file is truncated or corrupt; re-export or re-copy it"
        )
        raise MaskError(path, f"cannot read the voxel data ({_first_line(exc)})", fix) from None
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1].strip() if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# values -> labels


def _to_labels(
    raw: np.ndarray,
    path: Path | None,
    threshold: float,
    selection: tuple[int, ...] | None,
) -> tuple[np.ndarray, str, float | None]:
    """Turn stored voxel values into a non-negative integer label array (see module doc)."""
    if raw.dtype == np.bool_:
        raw = raw.view(np.uint8)
    if raw.dtype.kind == "f":
        data, storage, used = _float_to_labels(raw, path, threshold, selection)
    elif raw.dtype.kind in "iu":
        data, storage, used = raw, "integer", None
        if raw.dtype.kind == "i" and raw.size:
            lo = int(raw.min())
            if lo < 0:
                raise MaskError(
                    path, f"negative label value {lo} found",
                    "lesion labels must be >= 0; re-save the mask with non-negative labels",
                )
    else:
        raise MaskError(path, f"unsupported voxel type {raw.dtype}", "save integer or float labels")
    if selection is not None:
        data = np.where(np.isin(data, selection), data, 0).astype(data.dtype, copy=False)
    return data, storage, used


def _float_to_labels(
    raw: np.ndarray, path: Path | None, threshold: float, selection: tuple[int, ...] | None
) -> tuple[np.ndarray, str, float | None]:
    finite = np.isfinite(raw)
    if not finite.all():
        n_nan = int(np.isnan(raw).sum())
        n_inf = int(raw.size - finite.sum() - n_nan)
        raise MaskError(
            path, f"{n_nan} NaN and {n_inf} infinite voxel values",
            "replace them with 0 (e.g. numpy.nan_to_num) and save the mask again",
        )
    lo, hi = float(raw.min()), float(raw.max())
    rounded = np.rint(raw)
    integral = bool(np.all(np.abs(raw - rounded) <= INTEGRAL_TOLERANCE))
    if integral:
        if rounded.min() < 0:
            raise MaskError(path, f"negative label value {int(rounded.min())} found",
                            "lesion labels must be >= 0; re-save with non-negative labels")
        top = int(rounded.max())
        dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
        return rounded.astype(dtype), "float-integral", None
    if selection is not None:
        raise MaskError(
            path, f"fractional float values in [{lo:g}, {hi:g}] cannot be label-selected",
            "drop --labels (the map is thresholded at --threshold), or save an integer label map",
        )
    if lo < 0:
        raise MaskError(path, f"negative value {lo:g} in a fractional mask",
                        "save a probability map in [0, 1] or an integer label map")
    return (raw >= threshold).astype(np.uint8), "float-thresholded", float(threshold)


def _check_not_all_foreground(data: np.ndarray, path: Path) -> None:
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


def _check_affine(affine: np.ndarray, path: Path | None) -> None:
    if not np.all(np.isfinite(affine)):
        raise MaskError(path, "affine contains NaN or infinite values", "repair the header geometry")
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(norms <= 0) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise MaskError(
            path, f"voxel spacing is zero or the axes are degenerate (spacing {norms.tolist()})",
            "set the voxel size in the header (pixdim / spacing); cnsvol never assumes 1 mm",
        )

