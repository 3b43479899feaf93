"""A cohort manifest from a BIDS derivatives tree: masks and images found by name
(:mod:`.tree`), sessions dated from ``sessions.tsv`` (:mod:`.dates`), rows assembled and
written (:mod:`.build`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .build import MANIFEST_COLUMNS, BidsWarning, bids_manifest, write_manifest  # noqa: F401
    from .tree import IMAGE_SUFFIXES, MASK_SUFFIXES, natural_key, parse_bids_name  # noqa: F401

_EXPORTS = {
    "BidsWarning": "build",
    "IMAGE_SUFFIXES": "tree",
    "MANIFEST_COLUMNS": "build",
    "MASK_SUFFIXES": "tree",
    "bids_manifest": "build",
    "natural_key": "tree",
    "parse_bids_name": "tree",
    "write_manifest": "build",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
