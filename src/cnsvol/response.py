"""Volume change and response categories for one subject.

Two timepoints (:func:`compare`): totals on each native grid, absolute and percent change, the
>=20% reduction flag and a category under a criteria preset, with a human-readable reason.

Categories are ``CR``, ``PR``, ``SD``, ``PD`` and ``NE`` (not evaluable). Edge cases are
explicit, each with a machine-readable ``reason_code``:

* ``no_baseline_disease``: baseline total is 0 mm3 and so is the follow-up: ``NE``; the
  percent change is undefined (``None``), never a division error or inf;
* ``new_disease``: baseline total is 0 mm3 but the follow-up has lesions: ``PD`` when a
  follow-up lesion reaches the criteria's new-lesion size, else ``NE`` (equivocal);
* ``no_measurable_disease``: lesions at baseline, none measurable under the criteria: ``NE``;
* ``complete_response``, ``partial_response``, ``stable_disease``, ``volumetric_progression``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .criteria import Criteria, get_criteria
from .io import Mask, read_mask
from .lesions import DEFAULT_CONNECTIVITY, LesionSet, find_lesions

__all__ = ["CompareResult", "MeasureOptions", "compare", "measure", "percent_change"]


@dataclass(frozen=True)
class MeasureOptions:
    """How masks become lesion sets (shared by every timepoint of a comparison)."""

    labels: str | tuple[int, ...] | None = None
    threshold: float = 0.5
    connectivity: int = DEFAULT_CONNECTIVITY
    min_volume_mm3: float = 0.0
    instance_labels: bool = False
    max_bytes: int = 4 * 1024**3


def measure(
    source: str | Path | Mask | LesionSet,
    options: MeasureOptions | None = None,
    measurable_min_diameter_mm: float = 10.0,
) -> LesionSet:
    """Read (if needed) and measure one mask; a :class:`LesionSet` is returned as is."""
    opts = options or MeasureOptions()
    if isinstance(source, LesionSet):
        return source
    mask = source if isinstance(source, Mask) else read_mask(
        source, labels=opts.labels, threshold=opts.threshold, max_bytes=opts.max_bytes
    )
    return find_lesions(
        mask,
        connectivity=opts.connectivity,
        min_volume_mm3=opts.min_volume_mm3,
        instance_labels=opts.instance_labels,
        measurable_min_diameter_mm=measurable_min_diameter_mm,
    )


_THRESHOLD_TOL = 1e-9
"""Percent-point tolerance for threshold tests, so float rounding of volumes (e.g. -19.999...96%
for an exact -20%) cannot flip a change that lies exactly on an inclusive threshold."""


def reached_decrease(pct: float, threshold_pct: float) -> bool:
    """True when ``pct`` is a decrease of at least ``threshold_pct`` percent (inclusive)."""
    return pct <= -threshold_pct + _THRESHOLD_TOL


def reached_increase(pct: float, threshold_pct: float) -> bool:
    """True when ``pct`` is an increase of at least ``threshold_pct`` percent (inclusive)."""
    return pct >= threshold_pct - _THRESHOLD_TOL


def percent_change(value: float, reference: float) -> float | None:
    """``(value - reference) / reference * 100``; ``None`` when the reference is 0."""
    if reference == 0:
        return None
    return (value - reference) / reference * 100.0


@dataclass(frozen=True)
class CompareResult:
    """The comparison of a baseline and a follow-up mask (see :func:`compare`)."""

    baseline: LesionSet
    followup: LesionSet
    criteria: Criteria
    absolute_change_mm3: float
    percent_change: float | None
    responder_20pct: bool | None
    category: str
    reason: str
    reason_code: str
    same_grid: bool

    def to_dict(self) -> dict[str, Any]:
        def side(ls: LesionSet) -> dict[str, Any]:
            return {
                "path": ls.mask.name,
                "total_volume_mm3": ls.total_volume_mm3,
                "lesion_count": ls.lesion_count,
                "measurable_lesion_count": sum(les.measurable for les in ls.lesions),
            }

        return {
            "baseline": side(self.baseline),
            "followup": side(self.followup),
            "absolute_change_mm3": self.absolute_change_mm3,
            "percent_change": self.percent_change,
            "responder_20pct": self.responder_20pct,
            "category": self.category,
            "reason": self.reason,
            "reason_code": self.reason_code,
            "criteria": self.criteria.name,
            "same_grid": self.same_grid,
        }

    def to_frame(self):  # -> pandas.DataFrame
        """One row per timepoint: path, total volume, lesion count, percent change."""
        import pandas as pd

        rows = []
        for label, ls, pct in (
            ("baseline", self.baseline, 0.0 if self.baseline.total_volume_mm3 else None),
            ("followup", self.followup, self.percent_change),
        ):
            rows.append(
                {
                    "timepoint": label,
                    "path": ls.mask.name,
                    "total_volume_mm3": ls.total_volume_mm3,
                    "lesion_count": ls.lesion_count,
                    "percent_change_vs_baseline": pct,
                    "category": self.category if label == "followup" else None,
                }
            )
        return pd.DataFrame(rows)


def compare(
    baseline: str | Path | Mask | LesionSet,
    followup: str | Path | Mask | LesionSet,
    *,
    criteria: str | Path | Criteria = "lin2009",
    options: MeasureOptions | None = None,
) -> CompareResult:
    """Compare the summed lesion volume of a follow-up mask with its baseline.

    Each mask is measured on its own native grid; masks on different grids are allowed and
    ``same_grid`` says whether they share one. Totals are summed over every lesion.
    """
    crit = get_criteria(criteria)
    base = measure(baseline, options, crit.measurable_min_diameter_mm)
    follow = measure(followup, options, crit.measurable_min_diameter_mm)
    b, f = base.total_volume_mm3, follow.total_volume_mm3
    pct = percent_change(f, b)
    category, code, reason = _categorise_totals(base, follow, pct, crit)
    responder = None if pct is None else reached_decrease(pct, crit.responder_reduction_pct)
    return CompareResult(
        baseline=base,
        followup=follow,
        criteria=crit,
        absolute_change_mm3=f - b,
        percent_change=pct,
        responder_20pct=responder,
        category=category,
        reason=reason,
        reason_code=code,
        same_grid=base.mask.same_grid(follow.mask),
    )


def _categorise_totals(
    base: LesionSet, follow: LesionSet, pct: float | None, crit: Criteria
) -> tuple[str, str, str]:
    b, f = base.total_volume_mm3, follow.total_volume_mm3
    if b == 0:
        if f == 0:
            return "NE", "no_baseline_disease", (
                "no evaluable disease at baseline (total 0 mm3) nor at follow-up; "
                "percent change is undefined"
            )
        biggest = max(les.longest_diameter_mm for les in follow.lesions)
        if crit.new_lesion_is_progression and biggest >= crit.new_lesion_min_diameter_mm:
            return "PD", "new_disease", (
                f"no disease at baseline; {follow.lesion_count} new lesion(s) at follow-up "
                f"(largest {biggest:.1f} mm)"
            )
        return "NE", "new_disease", (
            f"no disease at baseline; new lesion(s) at follow-up below "
            f"{crit.new_lesion_min_diameter_mm:g} mm are equivocal"
        )
    if crit.target_lesions == "measurable" and not any(les.measurable for les in base.lesions):
        return "NE", "no_measurable_disease", (
            f"no measurable lesion at baseline (none with longest diameter >= "
            f"{crit.measurable_min_diameter_mm:g} mm)"
        )
    assert pct is not None
    change = f"{pct:+.1f}% vs baseline ({b:.1f} -> {f:.1f} mm3)"
    if f == 0:
        return "CR", "complete_response", f"all lesions resolved: {change}"
    if reached_decrease(pct, crit.response_decrease_pct):
        return "PR", "partial_response", (
            f"{change}: reduction >= {crit.response_decrease_pct:g}%"
        )
    if reached_increase(pct, crit.progression_increase_pct):
        return "PD", "volumetric_progression", (
            f"{change}: increase >= {crit.progression_increase_pct:g}% "
            f"(the baseline is the nadir with two timepoints)"
        )
    return "SD", "stable_disease", (
        f"{change}: neither >= {crit.response_decrease_pct:g}% reduction "
        f"nor >= {crit.progression_increase_pct:g}% increase"
    )
