"""Confirmation of responses and the subject's best overall response.
Definitions: :mod:`cnsvol.response.series`."""

from __future__ import annotations

from .categories import Category, ReasonCode
from .change import reached_decrease
from .criteria import Criteria
from .results import SubjectSummary, TimepointResult
from .rules import Work

__all__ = ["after_progression", "confirm", "radiotherapy_window", "summarise"]


def confirm(work: list[Work], days: list[float | None], c: Criteria) -> None:
    """Mark each PR/CR confirmed or not, when the criteria ask for confirmation: a later scan
    at least ``confirmation_min_days`` after it, every scan up to it PR or CR; the confirmed
    level is the worst of them."""
    if c.confirmation_min_days is None:
        return
    n = len(work)
    for t in range(1, n):
        w = work[t]
        if not w.category.is_response:
            continue
        w.confirmed = False
        day = days[t]
        if day is None:
            w.notes.append("unconfirmed: scan days unknown")
            continue
        worst = w.category
        for u in range(t + 1, n):
            if not work[u].category.is_response:
                break
            worst = Category.PR if Category.PR in (worst, work[u].category) else Category.CR
            du = days[u]
            if du is not None and du - day >= c.confirmation_min_days:
                w.confirmed = True
                w.confirmed_category = worst
                if worst != w.category:
                    w.notes.append(f"confirmed as {worst}")
                break
        if not w.confirmed:
            w.notes.append(
                f"unconfirmed: needs a response sustained >= {c.confirmation_min_days} days")


def _counted(r: TimepointResult) -> Category:
    """A timepoint's category as the best overall response counts it: an unconfirmed PR/CR is
    SD, a confirmed one its confirmed level."""
    cat = r.category
    assert cat is not None  # follow-ups always have one
    if cat.is_response and r.confirmed is False:
        return Category.SD
    if cat.is_response and r.confirmed_category is not None:
        return r.confirmed_category
    return cat


def summarise(results: list[TimepointResult], c: Criteria) -> SubjectSummary:
    """Best overall response, best % change, the responder flag and the times to response and
    progression, over the follow-ups up to and including the first PD (the responder flag
    leaves the PD scan out)."""
    follow = results[1:]
    if not follow:
        return SubjectSummary(Category.NE, None, None, False, None, None, "no follow-up timepoint")
    upto: list[TimepointResult] = []
    for r in follow:
        upto.append(r)
        if r.category == Category.PD:
            break
    counted = [_counted(r) for r in upto]
    best = max(counted, key=lambda cat: cat.rank)
    pcts = [r.percent_change_vs_baseline for r in upto if r.percent_change_vs_baseline is not None]
    best_tp = min((r for r in upto if r.percent_change_vs_baseline is not None),
                  key=lambda r: r.percent_change_vs_baseline, default=None)
    first_pd = next((r for r in follow if r.category == Category.PD), None)
    resp = next((r for r, cat in zip(upto, counted) if cat.is_response), None)
    # the >=20% flag: a reduction on a scan that is not progression (a PD scan whose targets
    # shrank, e.g. PD by a new lesion, is not a response of any kind)
    reducing = [r for r in upto if r.category != Category.PD
                and r.percent_change_vs_baseline is not None
                and reached_decrease(r.percent_change_vs_baseline, c.responder_reduction_pct)]
    return SubjectSummary(
        best_response=best,
        best_percent_change=min(pcts) if pcts else None,
        responder_20pct=bool(reducing) if pcts else None,
        objective_response=best.is_response,
        time_to_response_days=resp.days_from_baseline if resp else None,
        progression_days=first_pd.days_from_baseline if first_pd else None,
        reason=next((r.reason for r, cat in zip(upto, counted) if cat == best), ""),
        time_to_responder_20pct_days=reducing[0].days_from_baseline if reducing else None,
        first_followup_days=follow[0].days_from_baseline,
        progression_reason=_pd_reason(first_pd.reason) if first_pd else "",
        best_change_within_measurement_error=(None if best_tp is None
                                              else best_tp.within_measurement_error),
    )


def _pd_reason(reason: str) -> str:
    """A PD timepoint's findings, without its trailing notes and the volumetric-only remark."""
    for tail in (" (volumetric-only", " ["):
        if tail in reason:
            reason = reason[:reason.index(tail)]
    return reason


def radiotherapy_window(work: list[Work], labels: list[str], days: list[float | None],
                       c: Criteria, end: float | None) -> None:
    """A PD within ``radiotherapy_confirmation_days`` after the end of radiotherapy (day
    ``end``) stands only when the next scan is PD too (then dated back); otherwise the scan is
    SD, unconfirmed."""
    window = c.radiotherapy_confirmation_days
    if window is None or end is None:
        return
    n = len(work)
    for t in range(1, n):
        w, day = work[t], days[t]
        if w.category == Category.PD and day is None:
            w.notes.append("radiotherapy confirmation rule not applied: the scan's day is "
                           "unknown")
            continue
        if w.category != Category.PD or day is None or not day - end <= window:
            continue
        since = (f"{day - end:g} days after the end of radiotherapy (<= {window} days)"
                 if day >= end else f"during radiotherapy ({end - day:g} days before its end)")
        if t + 1 < n and work[t + 1].category == Category.PD:
            w.notes.append(f"{since}: confirmed by the next scan ({labels[t + 1]})")
            continue
        pending = "pending the next scan" if t + 1 == n else (
            f"not confirmed by the next scan ({labels[t + 1]}): possible pseudoprogression")
        w.reason = f"progression ({w.reason}) {since}, {pending}"
        w.category, w.code = Category.SD, ReasonCode.PROGRESSION_UNCONFIRMED
        w.pd_unconfirmed = True


def after_progression(work: list[Work], labels: list[str]) -> None:
    """Every timepoint after the first PD is PD, post-progression (the reason keeps what the
    scan alone shows)."""
    first = next((t for t in range(1, len(work)) if work[t].category == Category.PD), None)
    if first is None:
        return
    for t in range(first + 1, len(work)):
        w = work[t]
        alone = f"{w.category}: {w.reason}" if w.reason else str(w.category)
        w.reason = f"after progression at {labels[first]}; this scan alone: {alone}"
        w.category, w.code = Category.PD, ReasonCode.POST_PROGRESSION
        w.post_progression = True
        w.confirmed, w.confirmed_category = None, None
