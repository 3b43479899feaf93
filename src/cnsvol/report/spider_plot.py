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

Points = dict[str, list[tuple[float, float, str, bool]]]
"""subject -> (day, % change, category, within measurement error) per scan"""


def spider(
    timepoints: pd.DataFrame,
    subjects: pd.DataFrame,
    criteria: Criteria,
    stem: str | Path,
) -> list[Path]:
    """% change of the target sum vs baseline over days from baseline, one line per subject.

    Lines are coloured by the subject's ``best_response`` (from ``subjects``; subjects whose
    status is not ``ok`` are left out). A cross marks each subject's first scan scored PD; a
    hollow dot a scan whose change is inside the measurement band. Above +100% the axis is
    logarithmic (symlog), so large increases stay apart and visible. Reference lines as in
    :func:`~.waterfall_plot.waterfall`.

    Writes ``<stem>.png`` and ``<stem>.svg``; returns both paths.
    """
    lines, best = _lines(timepoints, subjects)
    with style():
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        fig, ax = figure(9.5, 5.0, layout="constrained")
        all_pct = [p for pts in lines.values() for _, p, _, _ in pts]
        top = max([criteria.progression_increase_pct, *all_pct, 0.0])
        used, any_pd, any_error = _draw(ax, lines, best)
        ax.axhline(0, color="black", lw=0.8, zorder=2)
        handles: list[Any] = [
            Patch(color=CATEGORY_COLOURS[c], label=f"best {CATEGORY_NAMES[c]}, n={used[c]}")
            for c in CATEGORY_COLOURS if c in used
        ]
        if any_pd:
            handles.append(Line2D([], [], ls="", marker="x", color="black", ms=5,
                                  label="first scan scored PD"))
        if any_error:
            handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="#555555", ms=5,
                                  label="within measurement error (half-voxel band)"))
        handles += threshold_lines(ax, criteria)
        if top > CLAMP_PCT:  # large increases on a log scale above +100%: lines stay apart
            ax.set_yscale("symlog", linthresh=CLAMP_PCT, linscale=2.0)
            ticks = [t for t in (-100, -50, 0, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
                     if t <= top * 1.3]
            ax.set_yticks(ticks, [f"{t:+d}%" if t else "0" for t in ticks])
            handles.append(Line2D([], [], ls="", label=f"above +{CLAMP_PCT:g}%: log scale"))
            ax.set_ylim(-108.0, top * 1.3)
        else:
            ax.set_ylim(-108.0, top + 12.0)
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
        lines.setdefault(sid, []).append((day, pct, text(rec.get("category")),
                                          rec.get("within_measurement_error") is True))
    return lines, best


def _draw(ax: Axes, lines: Points, best: dict[str, str]) -> tuple[dict[str, int], bool, bool]:
    """The lines, dots (hollow inside the measurement band) and a cross at each subject's first
    PD; returns (subjects per best response, whether a cross was drawn, whether a hollow dot
    was). One collection per kind of mark (not one artist per subject): a cohort of thousands
    draws in well under a second."""
    from matplotlib.collections import LineCollection

    used: dict[str, int] = {}
    paths, path_colours, dots, dot_colours, hollow, hollow_colours, pd_pts = (
        [], [], [], [], [], [], [])
    for sid in sorted(lines):
        pts = sorted(lines[sid])
        cat = best.get(sid, "NE")
        used[cat] = used.get(cat, 0) + 1
        colour = CATEGORY_COLOURS[cat]
        paths.append([(d, p) for d, p, _, _ in pts])
        path_colours.append(colour)
        for d, p, _, err in pts:
            (hollow if err else dots).append((d, p))
            (hollow_colours if err else dot_colours).append(colour)
        first = next(((d, p) for d, p, c, _ in pts if c == "PD"), None)
        if first is not None:
            pd_pts.append(first)
    if paths:
        ax.add_collection(LineCollection(paths, colors=path_colours, linewidths=1.2,
                                         alpha=0.9, zorder=3))
        if dots:
            ax.scatter(*zip(*dots), s=14, c=dot_colours, alpha=0.95, zorder=4, linewidths=0)
        if hollow:
            ax.scatter(*zip(*hollow), s=18, facecolor="white", edgecolors=hollow_colours,
                       linewidths=1.0, zorder=4)
        ax.autoscale_view()
    if pd_pts:
        ax.scatter(*zip(*pd_pts), marker="x", s=36, color="black", lw=1.2, zorder=5)
    return used, bool(pd_pts), bool(hollow)
