"""The error hierarchy of cnsvol.

Every error is a subclass of a standard exception, so ``except ValueError`` keeps working for
callers that do not know cnsvol. Messages name the file (when there is one), the value that was
found, and what would fix it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CnsvolError",
    "MaskError",
    "MaskTooLargeError",
    "CriteriaError",
    "GridError",
    "ClinicalError",
    "ManifestError",
    "BidsError",
    "ResultsError",
    "FolderLockedError",
    "describe_os_error",
]


class CnsvolError(Exception):
    """Base class of every error raised on purpose by cnsvol."""


class MaskError(CnsvolError, ValueError):
    """A mask file cannot be read or does not hold a valid 3D lesion mask.

    ``path`` is the offending file (or ``None`` for in-memory arrays), ``problem`` what was
    found, ``fix`` what the user can do about it.
    """

    def __init__(self, path: str | Path | None, problem: str, fix: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.fix = fix
        where = "<array>" if path is None else str(path)
        super().__init__(f"{where}: {problem}. Fix: {fix}")


class MaskTooLargeError(MaskError):
    """The header announces more data than the configured memory limit allows."""


class CriteriaError(CnsvolError, ValueError):
    """A response-criteria preset name or criteria file is invalid."""


class GridError(CnsvolError, ValueError):
    """Two masks cannot be compared in world space (e.g. their extents do not overlap)."""


class ClinicalError(CnsvolError, ValueError):
    """A clinical / PFS table is unreadable or invalid; the message lists every problem."""


class ManifestError(CnsvolError, ValueError):
    """A manifest is unreadable or invalid; the message lists every problem found."""


class BidsError(CnsvolError, ValueError):
    """A BIDS tree cannot be turned into a manifest; the message lists every problem found."""


class ResultsError(CnsvolError, ValueError):
    """A results folder (or one of its files) cannot be read back."""


class FolderLockedError(CnsvolError, RuntimeError):
    """Another run holds the results folder's lock."""


_OS_FIXES = {
    "ENOSPC": "free space on that disk (or give --out on another one), then run the same command "
              "again: what was computed is kept",
    "EDQUOT": "free space within your disk quota (or give --out elsewhere), then run the same "
              "command again: what was computed is kept",
    "EACCES": "make that folder writable for you, or give another --out",
    "EPERM": "make that folder writable for you, or give another --out",
    "EROFS": "the disk is mounted read-only: give --out on a writable disk",
    "ENOTDIR": "a part of that path is a file, not a folder: give another --out",
    "EISDIR": "that path is a folder: give the path of a file",
    "ENAMETOOLONG": "use a shorter path",
    "EIO": "the disk or network share failed: check it, then run the same command again",
}


def describe_os_error(exc: OSError) -> str:
    """An operating-system error as cnsvol words its errors: the path, the problem, the fix."""
    import errno as _errno

    name = _errno.errorcode.get(exc.errno or -1, "")
    where = exc.filename if exc.filename is not None else "(path not reported)"
    problem = exc.strerror or str(exc)
    fix = _OS_FIXES.get(name, "check the path and the disk, then run the command again")
    return f"{where}: {problem}{f' ({name})' if name else ''}. Fix: {fix}"
