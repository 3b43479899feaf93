"""The vocabularies of lesion correspondence: track statuses and how a pair was matched."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MatchedBy", "TrackStatus"]


class TrackStatus(StrEnum):
    """Status of a correspondence between two timepoints, counted as (lesions before, lesions
    after), or of a track at a timepoint (``baseline`` at the first scan)."""

    BASELINE = "baseline"
    MATCHED = "matched"  # 1:1
    SPLIT = "split"  # 1:n
    MERGED = "merged"  # n:1
    COMPLEX = "complex"  # n:m
    NEW = "new"  # 0:1
    RESOLVED = "resolved"  # 1:0
    UNREGISTERED = "unregistered"  # correspondence unreliable: the registration failed

    def swapped(self) -> TrackStatus:
        """The status seen with the two timepoints exchanged."""
        return _SWAP.get(self, self)


_SWAP = {
    TrackStatus.SPLIT: TrackStatus.MERGED, TrackStatus.MERGED: TrackStatus.SPLIT,
    TrackStatus.NEW: TrackStatus.RESOLVED, TrackStatus.RESOLVED: TrackStatus.NEW,
}


class MatchedBy(StrEnum):
    """How two lesions were found to correspond."""

    OVERLAP = "overlap"  # their voxels overlap in world space
    CENTROID = "centroid"  # fallback: no overlap, centroids close enough (see matching)
