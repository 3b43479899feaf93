"""The spider plot: % change of the target sum over time, one line per subject, from typed
timepoint and subject tables (as :func:`cnsvol.read_results` gives them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .style import (
    CATEGORY_COLOURS, CATEGORY_NAMES, CLAMP_PCT, category, figure, number, plain, save, style,
    text, threshold_lines,
)
from .waterfall_plot import records

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes

    from ..response.criteria import Criteria

__all__ = ["spider"]

Points = dict[str, list[tuple[float, float, str]]]  # subject -> (day, % change, category)


def spider(
    timepoints: pd.DataFrame,
    subjects: pd.DataFrame,
    criteria: Criteria,
    stem: str | Path,
) -> list[Path]:
    """% change of the target sum vs baseline over days from baseline, one line per subject.

    Lines are coloured by the subject's ``best_response`` (from ``subjects``; subjects whose
    status is not ``ok`` are left out). A cross marks a scan scored PD; points above +100% are
    drawn at +100% as open triangles. Reference lines as in :func:`~.waterfall_plot.waterfall`.

    Writes ``<stem>.png`` and ``<stem>.svg``; returns both paths.
    """
    lines, best = _lines(timepoints, subjects)
    with style():
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        fig, ax = figure(9.5, 5.0, layout="constrained")
        all_pct = [p for pts in lines.values() for _, p, _ in pts]
        top_needed = max([criteria.progression_increase_pct, *all_pct, 0.0])
        clipped = top_needed > CLAMP_PCT
        y_top = min(top_needed, CLAMP_PCT) + 12.0
        used, any_pd = _draw(ax, lines, best)
        ax.axhline(0, color="black", lw=0.8, zorder=2)
        handles: list[Any] = [
            Patch(color=CATEGORY_COLOURS[c], label=f"best {CATEGORY_NAMES[c]}, n={used[c]}")
            for c in CATEGORY_COLOURS if c in used
        ]
        if any_pd:
            handles.append(Line2D([], [], ls="", marker="x", color="black", ms=5,
                                  label="scan scored PD"))
        if clipped:
            handles.append(Line2D([], [], ls="", marker="^", mfc="white", mec="black", ms=6,
                                  label=f"above +{CLAMP_PCT:g}% (drawn at the limit)"))
        handles += threshold_lines(ax, criteria)
        ax.set_ylim(-108.0, y_top)
        ax.set_xlim(left=0)
        if not lines:
            ax.set_xlim(0, 1)
            ax.text(0.5, 0.5, "no evaluable timepoint", transform=ax.transAxes,
                    ha="center", va="center", color="#555555")
        ax.set_xlabel("Days from baseline")
        ax.set_ylabel("Change of target volume vs baseline (%)")
        ax.set_title(
            f"Target lesion volume over time, {len(lines)} subject(s) ({plain(criteria.name)})",
            loc="left",
        )
        fig.legend(handles=handles, loc="outside right upper", frameon=False)
        return save(fig, stem, ("png", "svg"))


def _lines(timepoints: pd.DataFrame, subjects: pd.DataFrame) -> tuple[Points, dict[str, str]]:
    """Each evaluated subject's points, and its best response."""
    best: dict[str, str] = {}
    skip: set[str] = set()
    for rec in records(subjects):
        sid = text(rec.get("subject_id"))
        if "status" in rec and text(rec.get("status")) not in ("ok", ""):
            skip.add(sid)
        else:
            best[sid] = category(rec.get("best_response"))
    lines: Points = {}
    for rec in records(timepoints):
        sid = text(rec.get("subject_id"))
        day = number(rec.get("days_from_baseline"))
        pct = number(rec.get("percent_change_vs_baseline"))
        if sid in skip or day is None or pct is None:
            continue
        lines.setdefault(sid, []).append((day, pct, text(rec.get("category"))))
    return lines, best


def _draw(ax: Axes, lines: Points, best: dict[str, str]) -> tuple[dict[str, int], bool]:
    """The lines, dots, clipped points and PD crosses; returns (subjects per best response,
    whether a PD cross was drawn). One collection per kind of mark (not one artist per
    subject): a cohort of thousands draws in well under a second."""
    from matplotlib.collections import LineCollection

    used: dict[str, int] = {}
    paths, path_colours, dots, dot_colours, over, over_colours, pd_pts = [], [], [], [], [], [], []
    for sid in sorted(lines):
        pts = sorted(lines[sid])
        cat = best.get(sid, "NE")
        used[cat] = used.get(cat, 0) + 1
        colour = CATEGORY_COLOURS[cat]
        xy = [(d, min(p, CLAMP_PCT)) for d, p, _ in pts]
        paths.append(xy)
        path_colours.append(colour)
        dots += xy
        dot_colours += [colour] * len(xy)
        for d, p, _ in pts:
            if p > CLAMP_PCT:
                over.append((d, CLAMP_PCT))
                over_colours.append(colour)
        pd_pts += [(d, min(p, CLAMP_PCT)) for d, p, c in pts if c == "PD"]
    if paths:
        ax.add_collection(LineCollection(paths, colors=path_colours, linewidths=1.2,
                                         alpha=0.9, zorder=3))
        ax.scatter(*zip(*dots), s=9, c=dot_colours, alpha=0.9, zorder=3, linewidths=0)
        ax.autoscale_view()
    if over:
        ax.scatter(*zip(*over), marker="^", s=36, facecolor="white",
                   edgecolors=over_colours, zorder=4)
    if pd_pts:
        ax.scatter(*zip(*pd_pts), marker="x", s=28, color="black", lw=1.0, zorder=5)
    return used, bool(pd_pts)
