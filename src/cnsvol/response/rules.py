"""The category of one timepoint from its findings: clinical modifiers, the edge cases of an
empty or non-measurable baseline, and CR/PR/SD once progression has been ruled out.
Definitions: :mod:`cnsvol.response.series`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lesions.lesion import Lesion, LesionSet
from ..tracking.tracks import TrackState
from .categories import Category, ReasonCode
from .change import reached_decrease
from .clinical import ClinicalStatus, NeuroStatus
from .criteria import Criteria

__all__ = ["Work", "categorise", "clinical_findings", "growth_ok", "no_targets"]


@dataclass
class Work:
    """Mutable scratch state for one timepoint while it is being assessed: progression
    findings (``pd``), remarks (``notes``) and the category so far."""

    pd: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    category: Category = Category.SD
    code: ReasonCode = ReasonCode.STABLE_DISEASE
    reason: str = ""
    confirmed: bool | None = None
    confirmed_category: Category | None = None
    within_error: bool | None = None
    nontarget_progression: bool = False
    post_progression: bool = False
    pd_unconfirmed: bool = False


def clinical_findings(w: Work, base: ClinicalStatus, cur: ClinicalStatus, c: Criteria) -> None:
    """Add the clinical modifiers recorded at a timepoint to its progression findings or, when
    the criteria do not count them as progression, to its notes."""
    if cur.steroid_increase_over(base):
        msg = f"steroid dose increased ({base.steroid_dose_mg:g} -> {cur.steroid_dose_mg:g} mg)"
        (w.pd if c.steroid_increase_is_progression else w.notes).append(msg)
    if cur.neuro_status == NeuroStatus.WORSE:
        (w.pd if c.neuro_worse_is_progression else w.notes).append("neurologic status worse")
    if cur.extracns_progression:
        (w.pd if c.extracns_is_progression else w.notes).append("extra-CNS progression")


def _blockers(cur: ClinicalStatus, base: ClinicalStatus, c: Criteria) -> list[str]:
    """The clinical modifiers that prevent a volumetric CR/PR from counting."""
    out = []
    if c.steroid_increase_blocks_response and cur.steroid_increase_over(base):
        out.append("steroid dose increased")
    if c.neuro_worse_blocks_response and cur.neuro_status == NeuroStatus.WORSE:
        out.append("neurologic status worse")
    if c.extracns_blocks_response and cur.extracns_progression:
        out.append("extra-CNS progression")
    return out


def growth_ok(states_by_t: list[dict[int, TrackState]], targets: set[int], t: int,
              c: Criteria) -> bool | None:
    """RANO-BM's extra PD condition: one target track's sphere-equivalent diameter grew by at
    least ``progression_min_lesion_growth_mm`` over its own smallest earlier value; ``None``
    when the criteria do not have the condition."""
    need = c.progression_min_lesion_growth_mm
    if need is None:
        return None
    for tid in targets:
        states = states_by_t[tid - 1]
        if t not in states:
            continue
        smallest = min(states[u].sphere_equivalent_diameter_mm for u in states if u < t)
        if states[t].sphere_equivalent_diameter_mm - smallest >= need - 1e-9:
            return True
    return False


def no_targets(w: Work, base: LesionSet, n_new: int) -> None:
    """The category when the baseline has no target lesion (empty, or nothing measurable)."""
    base_total = base.total_volume_mm3
    if w.pd:
        w.category = Category.PD
        w.code = ReasonCode.NEW_DISEASE if base_total == 0 else ReasonCode.PROGRESSION
        return
    w.category = Category.NE
    if base_total == 0 and n_new:
        w.code = ReasonCode.NEW_DISEASE
        w.reason = "no disease at baseline; only equivocal new lesion(s) so far"
    elif base_total == 0:
        w.code = ReasonCode.NO_BASELINE_DISEASE
        w.reason = "no evaluable disease at baseline (total 0 mm3)"
        other = {k: v for k, v in base.compartment_volumes_mm3.items() if v > 0}
        if other:  # the measured compartment is empty, others are not
            shown = ", ".join(f"{k} {v:.1f} mm3" for k, v in other.items())
            w.reason += (f"; the mask holds {shown}: for a tumour without this compartment, "
                         "measure another (criteria response_compartments, or --labels)")
    else:
        w.code = ReasonCode.NO_MEASURABLE_DISEASE
        w.reason = f"no target lesion at baseline ({base.lesion_count} non-measurable lesion(s))"


_CODES = {Category.CR: ReasonCode.COMPLETE_RESPONSE, Category.PR: ReasonCode.PARTIAL_RESPONSE,
          Category.SD: ReasonCode.STABLE_DISEASE}


def categorise(w: Work, cur_set: LesionSet, pct_b: float, unequivocal: list[Lesion],
               cur_clin: ClinicalStatus, base_clin: ClinicalStatus, c: Criteria) -> None:
    """PD when there is a progression finding; else CR, PR or SD from the target sum's change
    vs baseline, a volumetric CR/PR becoming SD when a clinical modifier blocks it."""
    if w.pd:
        w.category, w.code = Category.PD, ReasonCode.PROGRESSION
        return
    change = f"target sum {pct_b:+.1f}% vs baseline"
    err = " (within measurement error)" if w.within_error else ""
    blockers = _blockers(cur_clin, base_clin, c)
    if cur_set.total_volume_mm3 == 0 and not unequivocal:
        level, why = Category.CR, "all lesions resolved"
        rest = {k: v for k, v in cur_set.compartment_volumes_mm3.items() if v > 0}
        if rest:  # other compartments remain: say that CR is of the measured one(s)
            why = ("no lesion left in the measured compartment(s); the mask still holds "
                   + ", ".join(f"{k} {v:.1f} mm3" for k, v in rest.items()))
        if c.cr_requires_off_steroids and cur_clin.steroid_dose_mg:
            level = Category.PR
            why = f"all lesions resolved but on steroids ({cur_clin.steroid_dose_mg:g} mg)"
    elif reached_decrease(pct_b, c.response_decrease_pct) and not unequivocal:
        level, why = Category.PR, f"{change}: reduction >= {c.response_decrease_pct:g}%{err}"
    else:
        level, why = Category.SD, f"{change}: neither PR nor PD"
    if level.is_response and blockers:
        w.category, w.code = Category.SD, ReasonCode.RESPONSE_BLOCKED
        w.reason = f"volumetric {level} ({why}) not counted: " + ", ".join(blockers)
        return
    w.category, w.code, w.reason = level, _CODES[level], why
