"""One subject's evaluation from its measured lesion sets: tracking, categories per timepoint,
tracks with their change, and the best overall response (rules in
:mod:`cnsvol.response.series`). :func:`cnsvol.evaluate_series` and :func:`cnsvol.compare` read
and measure the masks first (:mod:`cnsvol.pipeline`).

Categories are ``CR``, ``PR``, ``SD``, ``PD`` and ``NE`` (not evaluable), each with a
human-readable ``reason`` and a machine-readable ``reason_code``. Edge cases are explicit codes:
``no_baseline_disease`` (baseline total 0 mm3: ``NE``; the percent change is ``None``, never a
division error or inf), ``new_disease`` (lesions appear where the baseline had none: ``PD``, or
``NE`` while they are equivocal), ``no_measurable_disease`` (no target lesion at baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..columns import frame
from ..lesions.lesion import LesionSet
from ..tracking.matching import Matching, match
from ..tracking.registration import rotation_angle_deg
from .registered import misalignment_hints, registration_cells, unregistered, used_frame
from ..tracking.status import TrackStatus
from ..tracking.tracks import TrackState, build_tracks
from .categories import Category, ReasonCode
from .change import percent_change
from .clinical import ClinicalStatus
from .criteria import Criteria, get_criteria
from .results import TIMEPOINT_COLUMNS, TRACK_COLUMNS, SubjectSummary, TimepointResult, TrackRow
from .series import assess

__all__ = ["CompareResult", "SeriesResult", "evaluate", "series_inputs"]


@dataclass(frozen=True)
class SeriesResult:
    """The evaluation of one subject's series (see :func:`evaluate`)."""

    criteria: Criteria
    timepoints: tuple[TimepointResult, ...]
    tracks: tuple[TrackRow, ...]
    subject: SubjectSummary
    lesion_sets: tuple[LesionSet, ...]
    matchings: tuple[Matching, ...]
    registrations: tuple[Any, ...] = ()  # per timepoint: Registration or None

    def __repr__(self) -> str:
        cats = ", ".join(f"{t.timepoint} {t.category}" for t in self.timepoints[1:])
        return (f"SeriesResult({len(self.timepoints)} timepoints, {self.criteria.name}: {cats}; "
                f"best {self.subject.best_response})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "criteria": self.criteria.name,
            "timepoints": [t.to_dict() for t in self.timepoints],
            "tracks": [r.to_dict() for r in self.tracks],
            "lesions": [{"timepoint": tp.timepoint, **les}
                        for tp, ls in zip(self.timepoints, self.lesion_sets)
                        for les in ls.to_dict()["lesions"]],
            "subject": self.subject.to_dict(),
            "registrations": [None if r is None else r.to_dict()
                              for r in (self.registrations or (None,) * len(self.timepoints))],
        }

    def timepoints_frame(self):  # -> pandas.DataFrame
        """One row per timepoint, the columns of ``timepoints.csv`` (without subject_id)."""
        return frame((t.to_row() for t in self.timepoints), TIMEPOINT_COLUMNS)

    def tracks_frame(self):  # -> pandas.DataFrame
        """One row per track x timepoint, the columns of ``tracks.csv`` (without subject_id)."""
        return frame((r.to_row() for r in self.tracks), TRACK_COLUMNS)

    def lesions_frame(self):  # -> pandas.DataFrame
        """One row per lesion x timepoint, with its ``timepoint``."""
        import pandas as pd

        frames = []
        for tp, ls in zip(self.timepoints, self.lesion_sets):
            f = ls.to_frame()
            f.insert(0, "timepoint", pd.array([tp.timepoint] * len(f), dtype="string"))
            frames.append(f)
        return pd.concat(frames, ignore_index=True)


def evaluate(
    sets: Sequence[LesionSet],
    days: Sequence[float | None] | None = None,
    *,
    timepoints: Sequence[str] | None = None,
    clinical: Sequence[ClinicalStatus | dict[str, Any] | None] | None = None,
    criteria: str | Path | Criteria = "lin2009",
    max_centroid_distance_mm: float | None = None,
    centroid_fallback: bool = True,
    radiotherapy_end_days: float | None = None,
    registrations: Sequence[Any] | None = None,
) -> SeriesResult:
    """Evaluate one subject's measured series: baseline first, then follow-ups in time order.

    Args:
        sets: the lesion set of each timepoint, baseline first.
        days: days from baseline per timepoint (the baseline's is normally 0); needed for
            confirmation and times to response/progression. Must increase.
        timepoints: labels per timepoint (default ``T0``, ``T1``, ...).
        clinical: optional clinical modifiers per timepoint (:class:`ClinicalStatus` or a dict
            with ``steroid_dose_mg``, ``neuro_status``, ``extracns_progression``).
        criteria: a preset name, a TOML file or a :class:`Criteria`.
        max_centroid_distance_mm, centroid_fallback: see :func:`cnsvol.tracking.match`.
        radiotherapy_end_days: the day (on the axis of ``days``) radiotherapy ended, for
            criteria that confirm progression soon after it (``rano2-vol``).
        registrations: per timepoint, a :class:`~cnsvol.tracking.registration.Registration`
            or ``None`` (:func:`cnsvol.tracking.align.align_series`): lesions are matched in
            the baseline's world through them; where one failed, the correspondence is
            unregistered (:mod:`cnsvol.response.series`).
    """
    from ..tracking.align import frames, in_frame, unreliable

    day_list, labels, clin = series_inputs(len(sets), days, timepoints, clinical)
    crit = get_criteria(criteria)
    sets = list(sets)
    regs = list(registrations) if registrations is not None else [None] * len(sets)
    if len(regs) != len(sets):
        raise ValueError(f"{len(regs)} registrations for {len(sets)} timepoints")
    views = [in_frame(ls, f) for ls, f in zip(sets, frames(regs))]
    matchings = [
        match(a, b, max_centroid_distance_mm=max_centroid_distance_mm,
              centroid_fallback=centroid_fallback)
        for a, b in zip(views, views[1:])
    ]
    broken = unreliable(regs, labels)
    matchings = [unregistered(m) if t in broken else m for t, m in enumerate(matchings, 1)]
    tracks = build_tracks(sets, matchings)
    hints = misalignment_hints(matchings, sets, regs)
    results, subject, targets = assess(labels, day_list, sets, matchings, tracks, clin, crit,
                                       radiotherapy_end_days, broken, hints)
    results = [replace(r, **registration_cells(reg, t in broken)) if t else r
               for t, (r, reg) in enumerate(zip(results, regs))]
    rows = [row for states in tracks
            for row in _track_rows(states, labels, day_list, targets, regs)]
    return SeriesResult(crit, tuple(results), tuple(rows), subject, tuple(sets), tuple(matchings),
                        tuple(regs))


def series_inputs(
    n: int,
    days: Sequence[float | None] | None,
    timepoints: Sequence[str] | None,
    clinical: Sequence[ClinicalStatus | dict[str, Any] | None] | None,
) -> tuple[list[float | None], list[str], list[ClinicalStatus]]:
    """Check and complete the per-timepoint inputs of a series of ``n`` scans: (days, labels,
    clinical status), one of each per timepoint; ``ValueError`` saying what does not fit."""
    if n < 2:
        raise ValueError(f"a series needs at least 2 timepoints (baseline + follow-up), got {n}")
    day_list: list[float | None] = list(days) if days is not None else [None] * n
    labels = list(timepoints) if timepoints is not None else [f"T{i}" for i in range(n)]
    clin = [_clinical(c) for c in (clinical if clinical is not None else [None] * n)]
    if not len(day_list) == len(labels) == len(clin) == n:
        raise ValueError(
            f"got {n} masks but {len(day_list)} days, {len(labels)} labels and "
            f"{len(clin)} clinical records: give one per timepoint"
        )
    known = [d for d in day_list if d is not None]
    if any(b <= a for a, b in zip(known, known[1:])):
        raise ValueError(f"days from baseline must increase, got {day_list}")
    if len(set(labels)) != n:
        raise ValueError(f"timepoint labels must be unique, got {labels}")
    return day_list, labels, clin


def _track_rows(states: list[TrackState], labels: list[str], days: list[float | None],
                targets: set[int], regs: list[Any]) -> list[TrackRow]:
    """A track's rows: its volume at each timepoint and the change vs its baseline volume (not
    evaluated where the correspondence is unregistered)."""
    first = states[0]
    base = first if first.timepoint_index == 0 else None
    rows = []
    for s in states:
        t = s.timepoint_index
        known = base is not None and s.status != TrackStatus.UNREGISTERED
        pct = percent_change(s.volume_mm3, base.volume_mm3) if known and base else None
        err = (
            abs(s.volume_mm3 - base.volume_mm3)
            < max(s.min_detectable_change_mm3, base.min_detectable_change_mm3)
            if known and base and t > 0 else None
        )
        frame = used_frame(regs[t])
        rows.append(TrackRow(
            track_id=s.track_id, timepoint=labels[t], days_from_baseline=days[t],
            lesion_ids=s.lesion_ids, status=s.status, volume_mm3=s.volume_mm3,
            percent_change_vs_baseline=pct, within_measurement_error=err,
            is_target=s.track_id in targets,
            registration_rotation_deg=None if frame is None else rotation_angle_deg(frame),
            registration_translation_mm=None if frame is None else tuple(
                float(v) for v in frame[:3, 3]),
        ))
    return rows


def _clinical(value: ClinicalStatus | dict[str, Any] | None) -> ClinicalStatus:
    if value is None:
        return ClinicalStatus()
    if isinstance(value, ClinicalStatus):
        return value
    return ClinicalStatus(**value)


@dataclass(frozen=True)
class CompareResult:
    """A follow-up compared with its baseline (a two-timepoint :class:`SeriesResult`)."""

    series: SeriesResult

    def __repr__(self) -> str:
        pct = "n/a" if self.percent_change is None else f"{self.percent_change:+.1f}%"
        return (f"CompareResult({self.criteria.name}: {self.category} ({self.reason_code}), "
                f"target sum {pct}, {self.baseline.lesion_count} -> "
                f"{self.followup.lesion_count} lesion(s))")

    @property
    def baseline(self) -> LesionSet:
        return self.series.lesion_sets[0]

    @property
    def followup(self) -> LesionSet:
        return self.series.lesion_sets[1]

    @property
    def criteria(self) -> Criteria:
        return self.series.criteria

    @property
    def _tp(self) -> TimepointResult:
        return self.series.timepoints[1]

    @property
    def absolute_change_mm3(self) -> float:
        """Change of the target sum (the volume the criteria evaluate), mm3; of the total
        volume when the follow-up's lesion correspondence is unregistered."""
        if self._tp.target_volume_mm3 is None:
            return self._tp.total_volume_mm3 - self.series.timepoints[0].total_volume_mm3
        return self._tp.target_volume_mm3 - self.series.timepoints[0].target_volume_mm3

    @property
    def percent_change(self) -> float | None:
        """Percent change of the target sum vs baseline (``None`` when it was 0)."""
        return self._tp.percent_change_vs_baseline

    @property
    def total_percent_change(self) -> float | None:
        """Percent change of the volume of all lesions vs baseline."""
        return percent_change(self.followup.total_volume_mm3, self.baseline.total_volume_mm3)

    @property
    def responder_20pct(self) -> bool | None:
        return self.series.subject.responder_20pct

    @property
    def category(self) -> Category:
        assert self._tp.category is not None
        return self._tp.category

    @property
    def reason(self) -> str:
        return self._tp.reason

    @property
    def reason_code(self) -> ReasonCode:
        return self._tp.reason_code

    @property
    def tracks(self) -> tuple[TrackRow, ...]:
        """Every track at the follow-up (resolved ones included), by track id."""
        label = self.series.timepoints[1].timepoint
        return tuple(r for r in self.series.tracks if r.timepoint == label)

    @property
    def same_grid(self) -> bool:
        """Whether the two masks are on one voxel grid (matched through a registration or
        not)."""
        a, b = self.baseline.mask, self.followup.mask
        return a.shape == b.shape and bool(np.allclose(a.affine, b.affine, rtol=0, atol=1e-3))

    def track_pairs(self) -> list[dict[str, Any]]:
        """Per track: ids, volumes and change between baseline and follow-up."""
        by_track: dict[int, dict[str, TrackRow]] = {}
        for row in self.series.tracks:
            by_track.setdefault(row.track_id, {})[row.timepoint] = row
        b_label, f_label = (t.timepoint for t in self.series.timepoints)
        unregistered = self._tp.registration in ("failed", "unregistered")
        out = []
        for tid, rows in sorted(by_track.items()):
            b, f = rows.get(b_label), rows.get(f_label)
            bv, fv = (b.volume_mm3 if b else 0.0), (f.volume_mm3 if f else 0.0)
            out.append({
                "track_id": tid,
                "status": (f.status if f else TrackStatus.UNREGISTERED if unregistered
                           else TrackStatus.RESOLVED),
                "baseline_lesion_ids": list(b.lesion_ids) if b else [],
                "followup_lesion_ids": list(f.lesion_ids) if f else [],
                "baseline_volume_mm3": bv,
                "followup_volume_mm3": fv,
                "percent_change": None if unregistered else percent_change(fv, bv),
                "within_measurement_error": f.within_measurement_error if f else None,
                "is_target": (b or f).is_target,  # type: ignore[union-attr]
            })
        return out

    def to_dict(self) -> dict[str, Any]:
        def side(t: int) -> dict[str, Any]:
            ls, tp = self.series.lesion_sets[t], self.series.timepoints[t]
            return {
                "path": ls.mask.name,
                "total_volume_mm3": ls.total_volume_mm3,
                "target_volume_mm3": tp.target_volume_mm3,
                "lesion_count": ls.lesion_count,
                "measurable_lesion_count": sum(les.measurable for les in ls.lesions),
                **({"compartment_volumes_mm3": dict(ls.compartment_volumes_mm3)}
                   if ls.compartments else {}),
                **({"segments": ls.to_dict()["segments"],
                    "planar_volume_mm3": tp.planar_volume_mm3} if ls.mask.segments else {}),
                "notes": list(ls.mask.notes),
                "lesions": ls.to_dict()["lesions"],
            }

        return {
            "baseline": side(0),
            "followup": side(1),
            "absolute_change_mm3": self.absolute_change_mm3,
            "percent_change": self.percent_change,
            "total_percent_change": self.total_percent_change,
            "responder_20pct": self.responder_20pct,
            "category": self.category,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "registration": (None if len(self.series.registrations) < 2
                             or self.series.registrations[1] is None
                             else self.series.registrations[1].to_dict()),
            "within_measurement_error": self._tp.within_measurement_error,
            "new_lesions": self._tp.new_lesions,
            "equivocal_new_lesions": self._tp.equivocal_new_lesions,
            "nontarget_progression": self._tp.nontarget_progression,
            "criteria": self.criteria.name,
            "same_grid": self.same_grid,
            "tracks": self.track_pairs(),
        }

    def to_frame(self):  # -> pandas.DataFrame
        """One row per timepoint (baseline, follow-up): :meth:`SeriesResult.timepoints_frame`."""
        return self.series.timepoints_frame()
