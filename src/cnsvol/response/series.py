"""One subject's series of timepoints: categories per timepoint, best response per subject.

Definitions (every threshold inclusive, see :mod:`cnsvol.response.criteria`):

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
  (even if a later scan shows them merging into an older lesion). One whose longest diameter
  reaches ``new_lesion_min_diameter_mm`` (the new-lesion floor) is unequivocal; a smaller one is
  *equivocal* and is listed, not counted as progression. An equivocal lesion is followed
  forward; it is confirmed by the first later scan on which it reaches the floor or has grown
  by more than its measurement band when first seen (its half-voxel shell: a single voxel must
  grow by more than 3 voxels, so that a boundary voxel more is not growth), and progression is
  then dated back to the scan that first showed it (RANO-BM). One that stays unchanged stays
  equivocal; one that is gone was not progression.
* **Non-target lesions** are the baseline lesions that are not targets (not measurable, or
  beyond ``max_target_lesions``), followed forward like targets. A non-target progresses
  unequivocally when, against its smallest longest diameter so far (baseline included), a
  lesion below ``nontarget_progression_small_below_mm`` reaches
  ``nontarget_progression_small_reach_mm``, or a larger one grows by
  ``nontarget_progression_growth_mm``; that is PD (``nontarget_progression``).
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
* **Radiotherapy** (``radiotherapy_confirmation_days``, with the subject's
  ``radiotherapy_end_days`` on the series' day axis): a PD on a scan at most that many days
  after the end of radiotherapy counts only when the next scan is PD too (it is then dated back);
  until then, or when the next scan is not PD (pseudoprogression), the scan is SD with reason
  code ``progression_unconfirmed``.
* **After progression.** Every timepoint after a subject's first PD is PD with reason code
  ``post_progression`` (``post_progression`` true; the reason also gives what that scan alone
  shows): progression is an event, and a later scan that shrinks is not stable disease.
* **Measurement error.** Each change is compared with the half-voxel-shell band of the two sums
  involved (the larger of the two, each measured on its own grid): the follow-up and baseline
  for ``within_measurement_error``, the follow-up and the PD reference for a PD call. A PR or PD call that rests
  only on a change inside the band says so in its reason.
Modules: this one follows targets, sums and new lesions and assembles the results;
:mod:`~cnsvol.response.rules` categorises one timepoint; :mod:`~cnsvol.response.summary`
confirms responses and gives the best overall response.

* **Best overall response**: the best category (CR > PR > SD > PD > NE) over the timepoints up
  to and including the first PD, unconfirmed responses counting as SD. ``best_percent_change``
  looks at the same timepoints; ``responder_20pct`` at those before the first PD (a PD scan
  whose targets shrank, e.g. PD by a new or non-target lesion, is no response);
  ``time_to_responder_20pct_days`` is the first of them with a >=20% reduction (used by the
  landmark PFS analysis).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..lesions.lesion import Lesion, LesionSet
from ..tracking.matching import Matching
from ..tracking.status import TrackStatus
from ..tracking.tracks import TrackState
from .categories import Category, ReasonCode
from .change import percent_change, reached_increase
from .clinical import ClinicalStatus
from .criteria import Criteria, ProgressionReference, TargetLesions, with_overrides
from .results import SubjectSummary, TimepointResult
from .rules import Work, categorise, clinical_findings, growth_ok, no_targets
from .summary import after_progression, confirm, radiotherapy_window, summarise

__all__ = ["assess"]


@dataclass(frozen=True)
class _Series:
    """What every timepoint's assessment reads: the inputs, and the target sums and new
    lesions over the whole series."""

    labels: list[str]
    days: list[float | None]
    sets: list[LesionSet]
    matchings: list[Matching]
    clinical: list[ClinicalStatus]
    criteria: Criteria
    states: list[dict[int, TrackState]]  # per track (index = id - 1): timepoint -> state
    targets: set[int]  # target track ids
    target_sum: list[float]
    target_mdc: list[float]
    new_at: list[list[Lesion]]
    equivocal_confirmed: dict[int, int]  # timepoint first shown -> timepoint confirming it
    nontargets: list[list[set[int]]]  # per baseline non-target lesion: its lesion ids per t
    by_id: list[dict[int, Lesion]]  # per timepoint: lesion id -> lesion
    radiotherapy_end_days: float | None = None
    broken: dict[int, str] = field(default_factory=dict)  # unregistered timepoint -> why

    @property
    def floor(self) -> float:
        return self.criteria.new_lesion_min_diameter_mm


def assess(
    labels: list[str],
    days: list[float | None],
    sets: list[LesionSet],
    matchings: list[Matching],
    tracks: list[list[TrackState]],
    clinical: list[ClinicalStatus],
    criteria: Criteria,
    radiotherapy_end_days: float | None = None,
    broken: dict[int, str] | None = None,
    hints: dict[int, str] | None = None,
) -> tuple[list[TimepointResult], SubjectSummary, set[int]]:
    """Assess every timepoint; returns (timepoints, subject summary, target track ids).
    ``broken``: timepoints whose lesion correspondence is unregistered (and why): assessed
    from the total volume (:func:`_assess_from_totals`); ``hints``: notes per timepoint."""
    s = _prepare(labels, days, sets, matchings, tracks, clinical, criteria)
    s = replace(s, radiotherapy_end_days=radiotherapy_end_days, broken=dict(broken or {}))
    work = [Work() for _ in sets]
    for t in range(1, len(sets)):
        if t in s.broken:
            _assess_from_totals(s, t, work[t])
        else:
            _assess_timepoint(s, t, work[t])
        if hints and t in hints:
            work[t].notes.append(hints[t])
    for w in work[1:]:
        if w.category == Category.PD:
            w.reason = "; ".join(w.pd)
    radiotherapy_window(work, labels, days, criteria, radiotherapy_end_days)
    confirm(work, days, criteria)
    after_progression(work, labels)
    results = [_result(s, t, work[t]) for t in range(len(sets))]
    return results, summarise(results, criteria), s.targets


def _prepare(labels: list[str], days: list[float | None], sets: list[LesionSet],
             matchings: list[Matching], tracks: list[list[TrackState]],
             clinical: list[ClinicalStatus], criteria: Criteria) -> _Series:
    n = len(sets)
    target_lesions = _target_lesion_ids(sets[0], criteria)
    targets = {
        states[0].track_id for states in tracks
        if states[0].timepoint_index == 0 and target_lesions.intersection(states[0].lesion_ids)
    }
    # Target lesions are followed forward through each t-1 -> t matching (split pieces and
    # lesions they merge into stay targets), so a timepoint never depends on later scans.
    ids_at = _follow(target_lesions, matchings)
    nontargets = [
        [ids - target_ids for ids, target_ids in zip(_follow({les.lesion_id}, matchings), ids_at)]
        for les in sets[0].lesions if les.lesion_id not in target_lesions
    ]
    by_id = [ls.by_id() for ls in sets]
    # New lesions at t: those the t-1 -> t matching calls new (whatever happens to them later).
    new_at: list[list[Lesion]] = [[]] + [
        [by_id[t][i] for c in matchings[t - 1].correspondences if c.status == TrackStatus.NEW
         for i in c.after_ids]
        for t in range(1, n)
    ]
    return _Series(
        labels=labels, days=days, sets=sets, matchings=matchings, clinical=clinical,
        criteria=criteria,
        states=[{st.timepoint_index: st for st in states} for states in tracks],
        targets=targets,
        target_sum=[sum((by_id[t][i].volume_mm3 for i in ids_at[t]), 0.0) for t in range(n)],
        target_mdc=[sum((by_id[t][i].min_detectable_change_mm3 for i in ids_at[t]), 0.0)
                    for t in range(n)],
        new_at=new_at,
        equivocal_confirmed=_equivocal_confirmed(new_at, matchings, by_id,
                                                 criteria.new_lesion_min_diameter_mm),
        nontargets=nontargets,
        by_id=by_id,
    )


def _follow(start: set[int], matchings: list[Matching]) -> list[set[int]]:
    """The lesion ids that ``start`` (baseline ids) corresponds to at each timepoint, through
    each t-1 -> t matching (split pieces and lesions they merge into included)."""
    ids_at = [set(start)]
    for m in matchings:
        prev = ids_at[-1]
        ids_at.append({a for c in m.correspondences if prev.intersection(c.before_ids)
                       for a in c.after_ids})
    return ids_at


def _target_lesion_ids(base: LesionSet, c: Criteria) -> set[int]:
    """Baseline target lesions: measurable (or all), largest first, at most the maximum."""
    lesions = [les for les in base.lesions if c.target_lesions == TargetLesions.ALL
               or les.measurable]
    lesions = lesions[: c.max_target_lesions] if c.max_target_lesions else lesions
    return {les.lesion_id for les in lesions}


def _equivocal_confirmed(new_at: list[list[Lesion]], matchings: list[Matching],
                         by_id: list[dict[int, Lesion]], floor: float) -> dict[int, int]:
    """Timepoints with an equivocal new lesion that a later scan confirms -> that scan: the
    first later scan on which the lesion (what it corresponds to) reaches the floor, or has
    grown by more than its measurement band when first seen (its half-voxel shell)."""
    out: dict[int, int] = {}
    n = len(new_at)
    for t in range(1, n - 1):
        for les in new_at[t]:
            if les.longest_diameter_mm >= floor:
                continue
            ids_at = _follow({les.lesion_id}, matchings[t:])
            for u in range(1, n - t):
                now = [by_id[t + u][i] for i in ids_at[u]]
                if not now:
                    break
                volume = sum(x.volume_mm3 for x in now)
                if (volume - les.volume_mm3 > les.min_detectable_change_mm3
                        or max(x.longest_diameter_mm for x in now) >= floor):
                    out[t] = min(out.get(t, n), t + u)
                    break
    return out


def _assess_timepoint(s: _Series, t: int, w: Work) -> None:
    unequivocal = [les for les in s.new_at[t] if les.longest_diameter_mm >= s.floor]
    clinical_findings(w, s.clinical[0], s.clinical[t], s.criteria)
    _new_lesion_findings(s, t, w, unequivocal)
    _nontarget_findings(s, t, w)
    if s.target_sum[0] == 0:
        no_targets(w, s.sets[0], len(s.new_at[t]))
        return
    _volume_findings(s, t, w)
    pct_b = percent_change(s.target_sum[t], s.target_sum[0])
    assert pct_b is not None
    w.within_error = (abs(s.target_sum[t] - s.target_sum[0])
                      < max(s.target_mdc[t], s.target_mdc[0]))
    categorise(w, s.sets[t], pct_b, unequivocal, s.clinical[t], s.clinical[0], s.criteria)


def _assess_from_totals(s: _Series, t: int, w: Work) -> None:
    """An unregistered timepoint: which lesion is which is unknown, so the target sum, new and
    non-target lesions and per-lesion growth cannot be assessed; the category comes from the
    total volume (every lesion) against the earlier totals, by the same thresholds."""
    totals = [ls.total_volume_mm3 for ls in s.sets]
    bands = [sum(les.min_detectable_change_mm3 for les in ls.lesions) for ls in s.sets]
    by_total = replace(
        s, target_sum=totals, target_mdc=bands, new_at=[[] for _ in s.sets],
        equivocal_confirmed={}, nontargets=[],
        criteria=with_overrides(s.criteria, progression_min_lesion_growth_mm=None))
    _assess_timepoint(by_total, t, w)
    w.reason = w.reason.replace("target sum", "total volume")
    w.pd = [p.replace("target sum", "total volume") for p in w.pd]
    w.notes.insert(0, f"lesion correspondence unreliable ({s.broken[t]}): category from the "
                   "total volume (every lesion); new and non-target lesions and per-lesion "
                   "change not assessed")


def _new_lesion_findings(s: _Series, t: int, w: Work, unequivocal: list[Lesion]) -> None:
    progression = s.criteria.new_lesion_is_progression
    equivocal = [les for les in s.new_at[t] if les.longest_diameter_mm < s.floor]
    if progression and unequivocal:
        biggest = max(les.longest_diameter_mm for les in unequivocal)
        w.pd.append(f"{len(unequivocal)} new lesion(s) (largest {biggest:.1f} mm)")
    if progression and t in s.equivocal_confirmed:
        w.pd.append(
            f"equivocal new lesion(s) first seen here (below {s.floor:g} mm), confirmed by "
            f"growth at {s.labels[s.equivocal_confirmed[t]]}"
        )
    elif progression and t in s.equivocal_confirmed.values():
        first = min(u for u, v in s.equivocal_confirmed.items() if v == t)
        w.pd.append(f"new lesion(s) first seen at {s.labels[first]} confirmed by growth")
    elif equivocal:
        last = t == len(s.sets) - 1
        w.notes.append(
            f"{len(equivocal)} equivocal new lesion(s) below {s.floor:g} mm"
            + (", to be confirmed on a later scan" if last else ", not confirmed by growth")
        )


def _nontarget_findings(s: _Series, t: int, w: Work) -> None:
    """Unequivocal progression of a non-target lesion (see the module docstring)."""
    c = s.criteria
    if c.nontarget_progression_growth_mm is None:
        return
    def diameter(ids: set[int], u: int) -> float:
        return max((s.by_id[u][i].longest_diameter_mm for i in ids), default=0.0)

    grown = []
    for ids_at in s.nontargets:
        if not ids_at[t]:
            continue
        smallest = min(diameter(ids_at[u], u) for u in range(t))
        now = diameter(ids_at[t], t)
        if smallest < c.nontarget_progression_small_below_mm:
            hit = now >= c.nontarget_progression_small_reach_mm - 1e-9
        else:
            hit = now - smallest >= c.nontarget_progression_growth_mm - 1e-9
        if hit:
            grown.append((smallest, now))
    if grown:
        w.nontarget_progression = True
        detail = ", ".join(f"{a:.1f} -> {b:.1f} mm" for a, b in grown)
        w.pd.append(f"non-target progression: {len(grown)} lesion(s) grew ({detail})")


def _volume_findings(s: _Series, t: int, w: Work) -> None:
    """Progression of the target sum vs its reference (the nadir, or the baseline)."""
    c, total = s.criteria, s.target_sum
    by_nadir = c.progression_reference == ProgressionReference.NADIR
    ref_t = min(range(t), key=total.__getitem__) if by_nadir else 0
    ref_name = "nadir" if by_nadir else "baseline"
    ref = total[ref_t]
    pct_n = percent_change(total[t], ref)
    band = max(s.target_mdc[t], s.target_mdc[ref_t])  # the two sums the PD test compares
    if pct_n is None and total[t] > 0:
        w.pd.append("target lesions reappeared after complete disappearance")
    elif pct_n is not None and reached_increase(pct_n, c.progression_increase_pct):
        growth = growth_ok(s.states, s.targets, t, c)
        if growth is None or growth:
            small = abs(total[t] - ref) < band
            w.pd.append(
                f"target sum {pct_n:+.1f}% vs {ref_name} ({ref:.1f} -> {total[t]:.1f} mm3)"
                + (f" (within measurement error, +/-{band:.1f} mm3)" if small else "")
            )
        else:
            w.notes.append(
                f"target sum {pct_n:+.1f}% vs {ref_name} but no lesion grew by "
                f">= {c.progression_min_lesion_growth_mm:g} mm"
            )


def _planar_volume(ls: LesionSet) -> float | None:
    """The selected RTSTRUCT ROIs' planar volumes summed; ``None`` for any other mask."""
    planar = [g.planar_volume_mm3 for g in ls.mask.segments]
    return None if not planar or None in planar else float(sum(planar))  # type: ignore[arg-type]


def _result(s: _Series, t: int, w: Work) -> TimepointResult:
    notes = "; ".join(w.notes)
    reason = w.reason + (f" [{notes}]" if notes else "")
    if t > 0 and not s.clinical[t].recorded:
        reason += " (volumetric-only: no clinical status recorded)"
    ls, total = s.sets[t], s.target_sum
    if t in s.broken:  # unregistered: the change of the total volume, targets unknown
        total = [x.total_volume_mm3 for x in s.sets]
    assessed = t not in s.broken
    return TimepointResult(
        timepoint=s.labels[t],
        days_from_baseline=s.days[t],
        path=ls.mask.name,
        lesion_count=ls.lesion_count,
        total_volume_mm3=ls.total_volume_mm3,
        segments="; ".join(f"{g.number} {g.name} ({g.volume_mm3:.2f} mm3)"
                           for g in ls.mask.segments),
        planar_volume_mm3=_planar_volume(ls),
        mask_notes="; ".join(ls.mask.notes),
        target_volume_mm3=total[t] if assessed else None,
        percent_change_vs_baseline=percent_change(total[t], total[0]),
        percent_change_vs_nadir=None if t == 0 else percent_change(total[t], min(total[:t])),
        new_lesions=len(s.new_at[t]) if assessed else None,
        equivocal_new_lesions=(sum(les.longest_diameter_mm < s.floor for les in s.new_at[t])
                               if assessed else None),
        nontarget_progression=w.nontarget_progression if assessed else None,
        post_progression=w.post_progression,
        category=w.category if t > 0 else None,
        reason=reason if t > 0 else "baseline",
        reason_code=w.code if t > 0 else ReasonCode.BASELINE,
        confirmed=w.confirmed,
        confirmed_category=w.confirmed_category,
        within_measurement_error=w.within_error,
        min_detectable_change_mm3=(s.target_mdc[t] if assessed else
                                   sum(les.min_detectable_change_mm3 for les in ls.lesions)),
        volumetric_only=not s.clinical[t].recorded,
        resampled_for_matching=bool(t > 0 and s.matchings[t - 1].resampled),
        compartment_volumes_mm3=dict(ls.compartment_volumes_mm3),
    )
