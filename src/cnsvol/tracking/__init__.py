"""Following lesions across timepoints in world space.

* :mod:`.matching`: correspondences between two timepoints (overlap, centroid fallback) and
  their statuses (matched, split, merged, complex, new, resolved);
* :mod:`.tracks`: tracks, lesion identities that persist over all timepoints of a subject;
* :mod:`.status`: the :class:`TrackStatus` and :class:`MatchedBy` vocabularies;
* :mod:`.graphs`: connected components of small graphs (union-find).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .matching import STATUSES, Correspondence, Matching, match, status_of  # noqa: F401
    from .status import MatchedBy, TrackStatus  # noqa: F401
    from .tracks import TrackState, build_tracks  # noqa: F401

_EXPORTS = {
    "STATUSES": "matching",
    "Correspondence": "matching",
    "MatchedBy": "status",
    "Matching": "matching",
    "TrackState": "tracks",
    "TrackStatus": "status",
    "build_tracks": "tracks",
    "match": "matching",
    "status_of": "matching",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
