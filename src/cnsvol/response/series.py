"""One subject's series of timepoints: categories per timepoint, best response per subject.

Definitions (every threshold inclusive, see :mod:`cnsvol.criteria`):

* **Targets.** At baseline, the lesions the criteria sum: measurable ones (``target_lesions =
  "measurable"``: longest axial diameter >= the measurable size) or all, the largest first, at
  most ``max_target_lesions``. Targets are followed forward through each matching (t-1 -> t):
  the lesions a target corresponds to (its split pieces, or the lesion it merged into) are
  targets at t. The *target sum* is their volume, so a target keeps being measured by volume
  when it shrinks below the measurable size. ``total_volume_mm3`` is the volume of every lesion.
* **Percent change** of the target sum vs baseline, and vs the nadir: the smallest target sum of
  the earlier timepoints, baseline included. PD compares with the nadir, or with the baseline
  when the criteria say ``progression_reference = "baseline"``.
* **New lesions** at a timepoint are those the matching with the previous scan calls ``new``
  (even if a later scan shows them merging into an older lesion). One whose longest diameter reaches
  ``new_lesion_min_diameter_mm`` is unequivocal; a smaller one is *equivocal*. An equivocal
  lesion still present on the next scan confirms progression, dated back to the scan that first
  showed it (RANO-BM); one that is gone was not progression.
* **PD** when any of: the target sum increased by ``progression_increase_pct`` vs the nadir
  (and, with ``progression_min_lesion_growth_mm``, one target track's sphere-equivalent diameter
  grew at least that much over its own smallest value); targets reappeared after all were gone;
  an unequivocal or confirmed new lesion; a clinical modifier the criteria count as progression.
* **CR** when every lesion is gone, no new lesion, no blocking clinical modifier (and off
  steroids where required; otherwise PR). **PR** when the target sum decreased by
  ``response_decrease_pct`` vs baseline, no unequivocal new lesion, no blocking modifier.
  A volumetric CR/PR blocked by a clinical modifier is SD, and the reason says why.
* **NE** (not evaluable): no disease at baseline (``no_baseline_disease``; new lesions then
  give PD ``new_disease``), or no target lesion at baseline (``no_measurable_disease``).
* **Confirmation** (``confirmation_min_days``): a PR/CR is confirmed by a later scan at least
  that many days after it, with every scan in between (and that scan) PR or CR. The confirmed
  level (``confirmed_category``) is the worst of them. Unconfirmed responses are reported as such and count as SD for
  the best overall response.
* **Clinical modifiers** (optional per timepoint): ``steroid_dose_mg`` (an increase is a dose
  above the baseline dose), ``neuro_status`` (``improved``/``stable``/``worse``),
  ``extracns_progression`` (true/false). When none is recorded at a timepoint its category is
  volumetric-only and the reason says so.
* **Measurement error.** Each change is compared with the half-voxel-shell band of the two sums
  involved (the larger of the two, each measured on its own grid): the follow-up and baseline
  for ``within_measurement_error``, the follow-up and the PD reference for a PD call. A PR or PD call that rests
  only on a change inside the band says so in its reason.
* **Best overall response**: the best category (CR > PR > SD > PD > NE) over the timepoints up
  to and including the first PD, unconfirmed responses counting as SD. ``best_percent_change``
  and ``responder_20pct`` look at the same timepoints; ``time_to_responder_20pct_days`` is the
  first of them with a >=20% reduction (used by the landmark PFS analysis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .criteria import Criteria
from ..lesions.lesion import Lesion, LesionSet
from ..tracking.matching import Matching
from .change import percent_change, reached_decrease, reached_increase
from ..tracking.tracks import TrackState

__all__ = ["ClinicalStatus", "SubjectSummary", "TimepointResult", "assess"]

_RANK = {"CR": 4, "PR": 3, "SD": 2, "PD": 1, "NE": 0}
NEURO_STATES = ("improved", "stable", "worse")


@dataclass(frozen=True)
class ClinicalStatus:
    """Optional clinical modifiers recorded at one timepoint (``None`` = not recorded)."""

    steroid_dose_mg: float | None = None
    neuro_status: str | None = None
    extracns_progression: bool | None = None

    def __post_init__(self) -> None:
        if self.neuro_status is not None and self.neuro_status not in NEURO_STATES:
            raise ValueError(
                f"neuro_status must be one of {', '.join(NEURO_STATES)}, got {self.neuro_status!r}"
            )
        if self.steroid_dose_mg is not None and not self.steroid_dose_mg >= 0:
            raise ValueError(f"steroid_dose_mg must be >= 0, got {self.steroid_dose_mg!r}")

    @property
    def recorded(self) -> bool:
        return (self.steroid_dose_mg, self.neuro_status, self.extracns_progression) != (
            None, None, None,
        )


@dataclass(frozen=True)
class TimepointResult:
    """The assessment of one timepoint (see the module docstring for definitions)."""

    timepoint: str
    days_from_baseline: float | None
    path: str
    lesion_count: int
    total_volume_mm3: float
    target_volume_mm3: float
    percent_change_vs_baseline: float | None
    percent_change_vs_nadir: float | None
    new_lesions: int
    equivocal_new_lesions: int
    category: str
    reason: str
    reason_code: str
    confirmed: bool | None
    confirmed_category: str | None
    within_measurement_error: bool | None
    min_detectable_change_mm3: float
    volumetric_only: bool
    resampled_for_matching: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SubjectSummary:
    best_response: str
    best_percent_change: float | None
    responder_20pct: bool | None
    objective_response: bool
    time_to_response_days: float | None
    progression_days: float | None
    reason: str = ""
    time_to_responder_20pct_days: float | None = None
    first_followup_days: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Work:
    """Mutable scratch state for one timepoint while it is being assessed."""

    pd: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    category: str = "SD"
    code: str = "stable_disease"
    reason: str = ""
    confirmed: bool | None = None
    confirmed_category: str | None = None
    within_error: bool | None = None


def assess(
    labels: list[str],
    days: list[float | None],
    sets: list[LesionSet],
    matchings: list[Matching],
    tracks: list[list[TrackState]],
    clinical: list[ClinicalStatus],
    criteria: Criteria,
) -> tuple[list[TimepointResult], SubjectSummary, set[int]]:
    """Assess every timepoint; returns (timepoints, subject summary, target track ids)."""
    n = len(sets)
    vol = [{s.timepoint_index: s for s in states} for states in tracks]
    target_lesions = _target_lesion_ids(sets[0], criteria)
    targets = {
        states[0].track_id for states in tracks
        if states[0].timepoint_index == 0 and target_lesions.intersection(states[0].lesion_ids)
    }
    # Target lesions are followed forward through each t-1 -> t matching (split pieces and
    # lesions they merge into stay targets), so a timepoint never depends on later scans.
    ids_at = [target_lesions]
    for m in matchings:
        prev = ids_at[-1]
        ids_at.append({a for c in m.correspondences if prev.intersection(c.before_ids)
                       for a in c.after_ids})
    by_id = [ls.by_id() for ls in sets]
    target_sum = [sum((by_id[t][i].volume_mm3 for i in ids_at[t]), 0.0) for t in range(n)]
    target_mdc = [sum((by_id[t][i].min_detectable_change_mm3 for i in ids_at[t]), 0.0)
                  for t in range(n)]
    # New lesions at t: those the t-1 -> t matching calls new (whatever happens to them later).
    new_at: list[list[Lesion]] = [[]] + [
        [by_id[t][i] for c in matchings[t - 1].correspondences if c.status == "new"
         for i in c.after_ids]
        for t in range(1, n)
    ]
    floor = criteria.new_lesion_min_diameter_mm
    equivocal_confirmed: dict[int, int] = {}  # t first shown -> t confirmed
    for t in range(1, n - 1):
        gone = {i for c in matchings[t].correspondences if c.status == "resolved"
                for i in c.before_ids}
        if any(les.longest_diameter_mm < floor and les.lesion_id not in gone
               for les in new_at[t]):
            equivocal_confirmed[t] = t + 1

    work = [_Work() for _ in range(n)]
    base_total = sets[0].total_volume_mm3
    for t in range(1, n):
        w = work[t]
        unequivocal = [s for s in new_at[t] if s.longest_diameter_mm >= floor]
        equivocal = [s for s in new_at[t] if s.longest_diameter_mm < floor]
        nadir_t = _argmin(target_sum[:t])
        by_nadir = criteria.progression_reference == "nadir"
        ref_t = nadir_t if by_nadir else 0
        ref_name = "nadir" if by_nadir else "baseline"
        nadir = target_sum[ref_t]
        pct_b = percent_change(target_sum[t], target_sum[0])
        pct_n = percent_change(target_sum[t], nadir)
        _clinical(w, clinical[0], clinical[t], criteria)
        if criteria.new_lesion_is_progression and unequivocal:
            biggest = max(s.longest_diameter_mm for s in unequivocal)
            w.pd.append(f"{len(unequivocal)} new lesion(s) (largest {biggest:.1f} mm)")
        if criteria.new_lesion_is_progression and t in equivocal_confirmed:
            w.pd.append(
                f"equivocal new lesion(s) first seen here, confirmed on the next scan "
                f"({labels[equivocal_confirmed[t]]})"
            )
        elif criteria.new_lesion_is_progression and t - 1 in equivocal_confirmed:
            w.pd.append(f"new lesion(s) first seen at {labels[t - 1]} confirmed")
        elif equivocal:
            w.notes.append(
                f"{len(equivocal)} equivocal new lesion(s) below {floor:g} mm"
                + (", to be confirmed on the next scan" if t == n - 1 else ", not confirmed")
            )
        if target_sum[0] == 0:
            _no_targets(w, sets[0], base_total, len(new_at[t]))
            continue
        band = max(target_mdc[t], target_mdc[ref_t])  # the two sums the PD test compares
        if pct_n is None and target_sum[t] > 0:
            w.pd.append("target lesions reappeared after complete disappearance")
        elif pct_n is not None and reached_increase(pct_n, criteria.progression_increase_pct):
            growth = _growth_ok(vol, targets, t, criteria)
            if growth is None or growth:
                small = abs(target_sum[t] - nadir) < band
                w.pd.append(
                    f"target sum {pct_n:+.1f}% vs {ref_name} ({nadir:.1f} -> {target_sum[t]:.1f} mm3)"
                    + (f" (within measurement error, +/-{band:.1f} mm3)" if small else "")
                )
            else:
                w.notes.append(
                    f"target sum {pct_n:+.1f}% vs {ref_name} but no lesion grew by "
                    f">= {criteria.progression_min_lesion_growth_mm:g} mm"
                )
        assert pct_b is not None
        w.within_error = abs(target_sum[t] - target_sum[0]) < max(target_mdc[t], target_mdc[0])
        _categorise(w, sets[t], pct_b, unequivocal, clinical[t], clinical[0], criteria)
    for t in range(1, n):
        if work[t].category == "PD":
            work[t].reason = "; ".join(work[t].pd)
    _confirm(work, days, criteria)
    results = []
    for t in range(n):
        w = work[t]
        if t == 0:
            w.category, w.code = "NE", "baseline"
            w.reason = "baseline"
        notes = "; ".join(w.notes)
        reason = w.reason + (f" [{notes}]" if notes else "")
        if t > 0 and not clinical[t].recorded:
            reason += " (volumetric-only: no clinical status recorded)"
        results.append(
            TimepointResult(
                timepoint=labels[t],
                days_from_baseline=days[t],
                path=sets[t].mask.name,
                lesion_count=sets[t].lesion_count,
                total_volume_mm3=sets[t].total_volume_mm3,
                target_volume_mm3=target_sum[t],
                percent_change_vs_baseline=percent_change(target_sum[t], target_sum[0]),
                percent_change_vs_nadir=(
                    None if t == 0 else percent_change(target_sum[t], min(target_sum[:t]))
                ),
                new_lesions=len(new_at[t]),
                equivocal_new_lesions=sum(s.longest_diameter_mm < floor for s in new_at[t]),
                category=w.category if t > 0 else "",
                reason=reason if t > 0 else "baseline",
                reason_code=w.code if t > 0 else "baseline",
                confirmed=w.confirmed,
                confirmed_category=w.confirmed_category,
                within_measurement_error=w.within_error,
                min_detectable_change_mm3=target_mdc[t],
                volumetric_only=not clinical[t].recorded,
                resampled_for_matching=bool(t > 0 and matchings[t - 1].resampled),
            )
        )
    return results, _summary(results, criteria), targets


def _argmin(values: list[float]) -> int:
    return min(range(len(values)), key=values.__getitem__)


def _target_lesion_ids(base: LesionSet, c: Criteria) -> set[int]:
    """Baseline target lesions: measurable (or all), largest first, at most the maximum."""
    lesions = [les for les in base.lesions if c.target_lesions == "all" or les.measurable]
    lesions = lesions[: c.max_target_lesions] if c.max_target_lesions else lesions
    return {les.lesion_id for les in lesions}


def _growth_ok(
    vol: list[dict[int, TrackState]], targets: set[int], t: int, c: Criteria
) -> bool | None:
    """RANO-BM's extra PD condition; ``None`` when the criteria do not have it."""
    need = c.progression_min_lesion_growth_mm
    if need is None:
        return None
    for tid in targets:
        states = vol[tid - 1]
        if t not in states:
            continue
        smallest = min(states[u].sphere_equivalent_diameter_mm for u in states if u < t)
        if states[t].sphere_equivalent_diameter_mm - smallest >= need - 1e-9:
            return True
    return False


def _clinical(w: _Work, base: ClinicalStatus, cur: ClinicalStatus, c: Criteria) -> None:
    up = (
        cur.steroid_dose_mg is not None
        and base.steroid_dose_mg is not None
        and cur.steroid_dose_mg > base.steroid_dose_mg
    )
    if up:
        msg = f"steroid dose increased ({base.steroid_dose_mg:g} -> {cur.steroid_dose_mg:g} mg)"
        (w.pd if c.steroid_increase_is_progression else w.notes).append(msg)
    if cur.neuro_status == "worse":
        (w.pd if c.neuro_worse_is_progression else w.notes).append("neurologic status worse")
    if cur.extracns_progression:
        (w.pd if c.extracns_is_progression else w.notes).append("extra-CNS progression")


def _blockers(cur: ClinicalStatus, base: ClinicalStatus, c: Criteria) -> list[str]:
    out = []
    if (
        c.steroid_increase_blocks_response
        and cur.steroid_dose_mg is not None
        and base.steroid_dose_mg is not None
        and cur.steroid_dose_mg > base.steroid_dose_mg
    ):
        out.append("steroid dose increased")
    if c.neuro_worse_blocks_response and cur.neuro_status == "worse":
        out.append("neurologic status worse")
    if c.extracns_blocks_response and cur.extracns_progression:
        out.append("extra-CNS progression")
    return out


def _no_targets(w: _Work, base: LesionSet, base_total: float, n_new: int) -> None:
    if w.pd:
        w.category, w.code = "PD", "new_disease" if base_total == 0 else "progression"
        return
    w.category = "NE"
    if base_total == 0 and n_new:
        w.code = "new_disease"
        w.reason = "no disease at baseline; only equivocal new lesion(s) so far"
    elif base_total == 0:
        w.code, w.reason = "no_baseline_disease", "no evaluable disease at baseline (total 0 mm3)"
    else:
        w.code = "no_measurable_disease"
        w.reason = f"no target lesion at baseline ({base.lesion_count} non-measurable lesion(s))"


def _categorise(
    w: _Work,
    cur_set: LesionSet,
    pct_b: float,
    unequivocal: list[Lesion],
    cur_clin: ClinicalStatus,
    base_clin: ClinicalStatus,
    c: Criteria,
) -> None:
    if w.pd:
        w.category, w.code = "PD", "progression"
        return
    change = f"target sum {pct_b:+.1f}% vs baseline"
    err = " (within measurement error)" if w.within_error else ""
    blockers = _blockers(cur_clin, base_clin, c)
    if cur_set.total_volume_mm3 == 0 and not unequivocal:
        level, why = "CR", "all lesions resolved"
        if c.cr_requires_off_steroids and cur_clin.steroid_dose_mg:
            level, why = "PR", f"all lesions resolved but on steroids ({cur_clin.steroid_dose_mg:g} mg)"
    elif reached_decrease(pct_b, c.response_decrease_pct) and not unequivocal:
        level, why = "PR", f"{change}: reduction >= {c.response_decrease_pct:g}%{err}"
    else:
        level, why = "SD", f"{change}: neither PR nor PD"
    if level in ("CR", "PR") and blockers:
        w.category, w.code = "SD", "response_blocked"
        w.reason = f"volumetric {level} ({why}) not counted: " + ", ".join(blockers)
        return
    w.category = level
    w.code = {"CR": "complete_response", "PR": "partial_response", "SD": "stable_disease"}[level]
    w.reason = why


def _confirm(work: list[_Work], days: list[float | None], c: Criteria) -> None:
    if c.confirmation_min_days is None:
        return
    n = len(work)
    for t in range(1, n):
        w = work[t]
        if w.category not in ("CR", "PR"):
            continue
        w.confirmed = False
        if days[t] is None:
            w.notes.append("unconfirmed: scan days unknown")
            continue
        worst = w.category
        for u in range(t + 1, n):
            if work[u].category not in ("CR", "PR"):
                break
            worst = "PR" if "PR" in (worst, work[u].category) else "CR"
            du = days[u]
            if du is not None and du - days[t] >= c.confirmation_min_days:  # type: ignore[operator]
                w.confirmed = True
                w.confirmed_category = worst
                if worst != w.category:
                    w.notes.append(f"confirmed as {worst}")
                break
        if not w.confirmed:
            w.notes.append(f"unconfirmed: needs a response sustained >= {c.confirmation_min_days} days")


def _summary(results: list[TimepointResult], c: Criteria) -> SubjectSummary:
    follow = results[1:]
    if not follow:
        return SubjectSummary("NE", None, None, False, None, None, "no follow-up timepoint")
    upto: list[TimepointResult] = []
    for r in follow:
        upto.append(r)
        if r.category == "PD":
            break
    counted = []
    for r in upto:
        cat = r.category
        if cat in ("CR", "PR") and r.confirmed is False:
            cat = "SD"
        elif cat in ("CR", "PR") and r.confirmed_category is not None:
            cat = r.confirmed_category
        counted.append(cat)
    best = max(counted, key=lambda cat: _RANK[cat])
    pcts = [r.percent_change_vs_baseline for r in upto if r.percent_change_vs_baseline is not None]
    first_pd = next((r for r in follow if r.category == "PD"), None)
    resp = next((r for r, cat in zip(upto, counted) if cat in ("CR", "PR")), None)
    return SubjectSummary(
        best_response=best,
        best_percent_change=min(pcts) if pcts else None,
        responder_20pct=(
            any(reached_decrease(p, c.responder_reduction_pct) for p in pcts) if pcts else None
        ),
        objective_response=best in ("CR", "PR"),
        time_to_response_days=resp.days_from_baseline if resp else None,
        progression_days=first_pd.days_from_baseline if first_pd else None,
        reason=next((r.reason for r, cat in zip(upto, counted) if cat == best), ""),
        time_to_responder_20pct_days=next(
            (
                r.days_from_baseline
                for r in upto
                if r.percent_change_vs_baseline is not None
                and reached_decrease(r.percent_change_vs_baseline, c.responder_reduction_pct)
            ),
            None,
        ),
        first_followup_days=follow[0].days_from_baseline,
    )


