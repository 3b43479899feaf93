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
