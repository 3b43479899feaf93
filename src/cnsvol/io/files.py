"""File-level checks shared by the mask and image readers: is it a readable regular file, how
big is its data, is it 3D. Every refusal is a :class:`~cnsvol.errors.MaskError` naming the file,
what was found and the fix."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np

from ..errors import MaskError, MaskTooLargeError

__all__ = [
    "DEFAULT_MAX_BYTES", "WORKING_BYTES_PER_VOXEL", "check_file", "is_dicom", "check_size", "first_line",
    "memory_estimate", "spatial_shape",
]

DEFAULT_MAX_BYTES = 4 * 1024**3
"""Refuse a file whose reading and measuring would need more than this many bytes (4 GiB;
see :func:`memory_estimate`)."""


def check_file(path: Path) -> None:
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


WORKING_BYTES_PER_VOXEL = 3
"""Bytes per voxel that reading and measuring a mask needs beyond its decoded data: the label
array (1) and the measurement's own arrays (2, measured peak: 1-1.5). Part of
:func:`memory_estimate`."""


def memory_estimate(n_voxels: int, itemsize: int, *, reader_copies: int = 1,
                    held_bytes: int = 0) -> int:
    """Peak bytes of reading and measuring a mask of ``n_voxels`` decoded at ``itemsize``
    bytes: the decoded data (``reader_copies`` times: SimpleITK's image and its numpy copy
    coexist), :data:`WORKING_BYTES_PER_VOXEL` per voxel, and ``held_bytes`` (a compressed file
    read whole, a header extension)."""
    return int(n_voxels) * (int(itemsize) * int(reader_copies) + WORKING_BYTES_PER_VOXEL) \
        + int(held_bytes)


def check_size(path: Path, shape: tuple[int, ...], itemsize: int, max_bytes: int, *,
               reader_copies: int = 1, held_bytes: int = 0) -> int:
    """Refuse, before any voxel is read, a file whose :func:`memory_estimate` exceeds
    ``max_bytes``; returns the estimate."""
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
    need = memory_estimate(n, itemsize, reader_copies=reader_copies, held_bytes=held_bytes)
    if need > max_bytes:
        raise MaskTooLargeError(
            path,
            f"header declares {tuple(int(s) for s in shape)} = {n:,} voxels of {itemsize} "
            f"byte(s) ({n * itemsize / 1024**3:.2f} GiB decoded); reading and measuring it needs "
            f"an estimated {need:,} bytes ({_gib(need)} GiB), above the limit of "
            f"{int(max_bytes):,} bytes ({_gib(max_bytes)} GiB)",
            "check the header is not corrupt, or raise the limit (--max-gib / max_bytes) if "
            "this machine has that memory for each worker (fewer --jobs gives each more)",
        )
    return need


def _gib(n: float) -> str:
    """Bytes as GiB with enough decimals to tell small sizes apart (0.00065, not 0.00)."""
    g = n / 1024**3
    return f"{g:.2f}" if g >= 0.1 or g == 0 else f"{g:.2g}"


def spatial_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1].strip() if text else type(exc).__name__


def is_dicom(path: Path) -> bool:
    """Whether ``path`` holds a DICOM Part 10 file (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"
