"""One subject's result, whole: what a cohort run's workers return and its store keeps.

A :class:`SubjectResult` holds a subject's timepoints, tracks, lesions and summary, or, for a
subject that could not be evaluated, its error. It is a frozen value with a versioned JSON form
(:meth:`SubjectResult.to_json` / :meth:`SubjectResult.from_json`); the output tables are built
from it (:mod:`cnsvol.results`), never from text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ..columns import Column
from ..lesions.lesion import Lesion
from .evaluation import SeriesResult
from .results import SubjectSummary, TimepointResult, TrackRow

__all__ = [
    "BASELINE_COLUMNS",
    "JSON_FORMAT",
    "JSON_VERSION",
    "SUBJECT_COLUMNS",
    "SubjectResult",
    "SubjectStatus",
]

JSON_FORMAT = "cnsvol.SubjectResult"
JSON_VERSION = 1
"""Version of the JSON form; a stored result of another version is computed again."""


class SubjectStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class SubjectResult:
    """One subject's evaluation, or why it failed.

    ``lesions[t]`` are the lesions of ``timepoints[t]``; ``notes`` are remarks on an ``ok``
    subject that do not change its numbers (e.g. a QC picture that could not be drawn).
    """

    subject_id: str
    status: SubjectStatus
    n_timepoints: int
    error: str = ""
    summary: SubjectSummary | None = None
    timepoints: tuple[TimepointResult, ...] = ()
    tracks: tuple[TrackRow, ...] = ()
    lesions: tuple[tuple[Lesion, ...], ...] = ()
    notes: tuple[str, ...] = ()

    @classmethod
    def from_series(cls, subject_id: str, series: SeriesResult,
                    notes: tuple[str, ...] = ()) -> SubjectResult:
        return cls(
            subject_id=subject_id, status=SubjectStatus.OK,
            n_timepoints=len(series.timepoints), summary=series.subject,
            timepoints=series.timepoints, tracks=series.tracks,
            lesions=tuple(ls.lesions for ls in series.lesion_sets), notes=notes,
        )

    @classmethod
    def failed(cls, subject_id: str, n_timepoints: int, error: str) -> SubjectResult:
        return cls(subject_id=subject_id, status=SubjectStatus.FAILED,
                   n_timepoints=n_timepoints, error=error)

    @property
    def ok(self) -> bool:
        return self.status is SubjectStatus.OK

    def with_notes(self, *notes: str) -> SubjectResult:
        return replace(self, notes=self.notes + tuple(notes))

    def __repr__(self) -> str:
        if not self.ok:
            return f"SubjectResult({self.subject_id!r}, failed: {self.error[:80]!r})"
        assert self.summary is not None
        return (f"SubjectResult({self.subject_id!r}, {self.n_timepoints} timepoints, "
                f"best {self.summary.best_response}, "
                f"{sum(len(ls) for ls in self.lesions)} lesion measurement(s))")

    def subject_row(self) -> dict[str, Any]:
        """The subject's row of ``subjects.csv`` without the PFS columns (and ``arm``)."""
        row: dict[str, Any] = {
            "subject_id": self.subject_id, "status": self.status,
            "error": self.error if not self.ok else "; ".join(self.notes),
            "n_timepoints": self.n_timepoints,
        }
        if self.summary is None:
            return row
        row.update({k: v for k, v in self.summary.to_dict().items() if k != "reason"})
        base = self.timepoints[0]
        row.update(baseline_total_volume_mm3=base.total_volume_mm3,
                   baseline_target_volume_mm3=base.target_volume_mm3,
                   new_lesions=sum(t.new_lesions or 0 for t in self.timepoints),
                   equivocal_new_lesions=sum(t.equivocal_new_lesions or 0
                                             for t in self.timepoints))
        return row

    def timepoint_rows(self) -> list[dict[str, Any]]:
        return [{"subject_id": self.subject_id, **t.to_row()} for t in self.timepoints]

    def track_rows(self) -> list[dict[str, Any]]:
        return [{"subject_id": self.subject_id, **r.to_row()} for r in self.tracks]

    def lesion_rows(self) -> list[dict[str, Any]]:
        return [{"subject_id": self.subject_id, "timepoint": tp.timepoint, **les.to_row()}
                for tp, lesions in zip(self.timepoints, self.lesions) for les in lesions]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see :data:`JSON_VERSION`)."""
        return {
            "format": JSON_FORMAT, "version": JSON_VERSION,
            "subject_id": self.subject_id, "status": self.status,
            "n_timepoints": self.n_timepoints, "error": self.error,
            "summary": None if self.summary is None else self.summary.to_dict(),
            "timepoints": [t.to_dict() for t in self.timepoints],
            "tracks": [r.to_dict() for r in self.tracks],
            "lesions": [[les.to_dict() for les in ls] for ls in self.lesions],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubjectResult:
        """The inverse of :meth:`to_dict`; ``ValueError`` for another format or version."""
        if d.get("format") != JSON_FORMAT or d.get("version") != JSON_VERSION:
            raise ValueError(f"not a {JSON_FORMAT} of version {JSON_VERSION} (found format "
                             f"{d.get('format')!r}, version {d.get('version')!r})")
        return cls(
            subject_id=str(d["subject_id"]), status=SubjectStatus(d["status"]),
            n_timepoints=int(d["n_timepoints"]), error=str(d["error"]),
            summary=None if d["summary"] is None else SubjectSummary.from_dict(d["summary"]),
            timepoints=tuple(TimepointResult.from_dict(t) for t in d["timepoints"]),
            tracks=tuple(TrackRow.from_dict(r) for r in d["tracks"]),
            lesions=tuple(tuple(Lesion.from_dict(x) for x in ls) for ls in d["lesions"]),
            notes=tuple(str(n) for n in d["notes"]),
        )

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no NaN): equal results give the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False,
                          ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SubjectResult:
        return cls.from_dict(json.loads(text))


SUBJECT_COLUMNS: tuple[Column, ...] = (
    Column("subject_id", "string", None, "as in the manifest"),
    Column("status", "string", None, "ok or failed"),
    Column("error", "string", None, "the error message when failed (which file, what, the "
           "fix); for an ok subject, a note when its QC picture could not be drawn, or shows "
           "a timepoint's mask instead of its image (and why)"),
    Column("n_timepoints", "Int64", None, "timepoints in the manifest"),
)
"""The subject's own columns of ``subjects.csv``; the summary's are
:data:`cnsvol.response.results.SUMMARY_COLUMNS`."""

BASELINE_COLUMNS: tuple[Column, ...] = (
    Column("baseline_total_volume_mm3", "float64", "mm3", "volume of every lesion at baseline"),
    Column("baseline_target_volume_mm3", "float64", "mm3", "the target sum at baseline"),
    Column("new_lesions", "Int64", None, "new lesions (tracks) over all follow-ups"),
    Column("equivocal_new_lesions", "Int64", None, "of these, the new lesions below the "
           "criteria's new-lesion floor when they appeared (equivocal; progression only where a "
           "later scan confirmed them)"),
)
