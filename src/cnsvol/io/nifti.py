"""Reading NIfTI-1/2 files with nibabel, and the fast path for ``.nii.gz``.

A ``.nii.gz`` is inflated in memory (zlib-ng when installed, else the standard library's zlib:
same API, same bytes), its header parsed from the inflated bytes with nibabel's header classes,
and only the voxel bytes the header declares are inflated, straight into a Fortran-ordered
array (the NIfTI storage order). Anything unusual (scaled data, a header nibabel must repair, an
extension block over 1 MiB) goes through ``nibabel.load``. nibabel affines are already RAS+.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError, MaskTooLargeError
from .files import check_size, spatial_shape

__all__ = ["read_nifti"]

_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001, "unknown": 1.0}
_HEADER_MAX = 1 << 20  # a NIfTI header with extensions larger than this goes through nibabel


def read_nifti(path: Path, max_bytes: int) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
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
    _check_extension_size(path, gz)
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
    shape3 = spatial_shape(path, hdr.get_data_shape())
    if int(hdr["sform_code"]) == 0:  # the affine comes from qform/pixdim: check the stored pixdim
        _check_stored_pixdim(path, type(hdr), len(hdr.get_data_shape()))
    slope, inter = hdr.get_slope_inter()
    scaled = (slope is not None and slope != 1.0) or (inter is not None and inter != 0.0)
    stored = np.dtype(hdr.get_data_dtype())
    itemsize = 8 if scaled else stored.itemsize
    offset = inflated.offset if inflated is not None else int(img.dataobj.offset)
    # held while reading: a .gz file whole (in memory), the header and its extensions
    check_size(path, shape3, itemsize, max_bytes,
               held_bytes=offset + (path.stat().st_size if gz else 0))

    affine, notes = _affine_mm(path, hdr)
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


def _affine_mm(path: Path, hdr: Any) -> tuple[np.ndarray, list[str]]:
    """The header's RAS+ affine in millimetres, and the notes on how it was obtained."""
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
    if len(hdr.get_data_shape()) < 3 and int(hdr["sform_code"]) == 0:
        # nibabel builds a 2D image's third axis as 1 mm; the slice thickness is pixdim[3]
        # (checked non-zero above)
        column = affine[:3, 2]
        affine[:3, 2] = column / np.linalg.norm(column) * float(hdr["pixdim"][3])
    if int(hdr["sform_code"]) > 0 and int(hdr["qform_code"]) > 0:
        note = _qform_sform_note(hdr, affine)
        if note:
            notes.append(note)
    affine[:3, :] *= to_mm
    return affine, notes


def _qform_sform_note(hdr, sform: np.ndarray) -> str:
    """A note when the qform and the sform (used, as nibabel does) describe different grids:
    other readers (SimpleITK, ITK-SNAP) use the qform and measure other volumes."""
    qform = np.asarray(hdr.get_qform(), dtype=np.float64)
    if np.allclose(qform, sform, atol=1e-3):
        return ""
    vq, vs = (abs(float(np.linalg.det(a[:3, :3]))) for a in (qform, sform))
    return (f"qform and sform disagree (voxel volume {vq:g} vs {vs:g} mm3, before unit "
            "conversion): the sform is used, as nibabel does; SimpleITK and ITK-based tools use "
            "the qform and would measure other volumes")


def _check_stored_pixdim(path: Path, header_class: type, ndim: int) -> None:
    """Refuse a zero voxel size. nibabel's header check silently turns a zero pixdim into 1 on
    load, so the value is read again from the file without that fix."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as fh:
        stored = header_class.from_fileobj(fh, check=False)  # type: ignore[attr-defined]
    zooms = [float(z) for z in stored["pixdim"][1 : 1 + min(ndim, 3)]]
    if ndim < 3 and float(stored["pixdim"][3]) == 0:  # a 2D image: no slice thickness stored
        raise MaskError(
            path, f"a {ndim}D image without a slice thickness (pixdim[3] = 0, no sform): its "
            "voxel volume is unknown",
            "set the slice thickness in the header (pixdim[3]) or save the mask as 3D; cnsvol "
            "never assumes 1 mm",
        )
    if any(z == 0 for z in zooms):
        raise MaskError(
            path, f"voxel spacing is zero (pixdim {zooms}, no sform)",
            "set the voxel size in the header (pixdim / spacing); cnsvol never assumes 1 mm",
        )


def zlib_module():
    """zlib-ng when installed (several times faster), else the standard library's zlib: same
    API, same inflated bytes."""
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
    zmod = zlib_module()
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


MAX_EXTENSION_BYTES = 64 << 20
"""A NIfTI header whose extensions (the bytes between the header and ``vox_offset``) exceed
this (64 MiB) is refused before they are read: nothing in them is used, and a lesion mask's
extensions (a DICOM header, an AFNI or CIFTI XML) are far smaller."""


def _check_extension_size(path: Path, gz: bool) -> None:
    """Refuse a header whose ``vox_offset`` puts more than :data:`MAX_EXTENSION_BYTES` of
    extensions before the voxels (they would be read into memory by nibabel)."""
    import gzip
    import struct

    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            head = fh.read(540)
    except (OSError, EOFError):
        return  # unreadable: the readers below say why
    if len(head) < 4:
        return
    for end in "<>":
        size = struct.unpack_from(end + "i", head, 0)[0]
        if size == 348 and len(head) >= 112:
            offset, hsize = float(struct.unpack_from(end + "f", head, 108)[0]), 348
        elif size == 540 and len(head) >= 176:
            offset, hsize = float(struct.unpack_from(end + "q", head, 168)[0]), 540
        else:
            continue
        extensions = offset - hsize - 4
        if extensions > MAX_EXTENSION_BYTES:
            raise MaskError(
                path, f"its header extensions take {extensions / 1024**2:,.0f} MiB (vox_offset "
                f"{offset:,.0f}), above the {MAX_EXTENSION_BYTES >> 20} MiB a mask's extensions "
                "may take: not a plausible lesion mask header",
                "save the mask without header extensions (nibabel: img.header.extensions."
                "clear(), then nibabel.save)",
            )
        return


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
