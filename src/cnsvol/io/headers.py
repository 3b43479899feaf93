"""The data files a NRRD or MetaImage header points to, found before any reader opens them.

A detached header (``.nhdr``, ``.mhd``, or a ``.nrrd``/``.mha`` whose data is elsewhere) names
its voxel data file(s): one file, a ``LIST`` of files, or a numbered pattern. Each must be a
regular file: a named pipe would block the reader forever and ``/dev/zero`` never ends, so they
are refused with the header and the data file named.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MaskError
from .files import check_file

__all__ = ["check_data_files", "data_files"]

_HEAD_BYTES = 1 << 16  # a header is text at the start of the file; more is voxel data


def data_files(path: Path) -> list[Path]:
    """The data files named by the header of ``path`` (none when the data is in the file)."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    text = head.decode("latin-1")
    if text.startswith("NRRD"):
        return _nrrd(path, text)
    return _metaimage(path, text)


def check_data_files(path: Path) -> None:
    """Refuse a header whose data file is missing or is not a regular file."""
    for data in data_files(path):
        try:
            check_file(data)
        except MaskError as exc:
            raise MaskError(
                data, f"{exc.problem.replace('not a mask file', 'not a regular file')} (the voxel data file named by the header {path})",
                "point the header's data file entry at the file holding the voxels",
            ) from None


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _nrrd(path: Path, text: str) -> list[Path]:
    lines = _lines(text)
    for n, line in enumerate(lines[1:], start=1):
        if not line.strip():  # the blank line ends the header; attached data follows
            return []
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key.strip().lower() in ("data file", "datafile"):
            return _named(path, value.lstrip("=").strip(), lines[n + 1:], blank_ends=False)
    return []


def _metaimage(path: Path, text: str) -> list[Path]:
    lines = _lines(text)
    for n, line in enumerate(lines):
        key, eq, value = line.partition("=")
        if eq and key.strip() == "ElementDataFile":
            value = value.strip()
            if value.upper() == "LOCAL":
                return []
            return _named(path, value, lines[n + 1:], blank_ends=True)
    return []


def _named(path: Path, value: str, after: list[str], blank_ends: bool) -> list[Path]:
    """The files of a data-file entry: a name, ``LIST`` (names on the following lines), or a
    pattern ``format min max step``."""
    folder = path.parent
    words = value.split()
    if not words:
        return []
    if words[0].upper() == "LIST":
        names = []
        for line in after:
            name = line.strip()
            if not name:
                if blank_ends or names:
                    break
                continue
            names.append(name)
        return [folder / n for n in names]
    if len(words) >= 4 and "%" in words[0]:
        try:
            lo, hi, step = int(words[1]), int(words[2]), int(words[3])
        except ValueError:
            return [folder / value]
        if step == 0 or abs(hi - lo) // abs(step) > 100_000:
            raise MaskError(path, f"data file pattern {value!r} names no files or too many",
                            "check the header's data file entry")
        stop = hi + (1 if step > 0 else -1)
        return [folder / (words[0] % i) for i in range(lo, stop, step)]
    return [folder / value]
