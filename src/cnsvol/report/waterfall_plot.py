"""The waterfall plot: best % change of the target sum per subject, from a typed subjects table
(``subjects.csv`` as :func:`cnsvol.read_results` gives it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .style import (
    CATEGORY_COLOURS, CATEGORY_NAMES, CLAMP_PCT, arm_colours, category, figure, number, plain,
    save, short, style, text, threshold_lines,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes

    from ..response.criteria import Criteria

__all__ = ["records", "waterfall"]


def records(frame: Any) -> list[dict[str, Any]]:
    """The rows of a table as dicts (``[]`` for ``None``)."""
    return [] if frame is None else list(frame.to_dict("records"))


def waterfall(
    subjects: pd.DataFrame,
    criteria: Criteria,
    stem: str | Path,
    color_by: str = "category",
) -> list[Path]:
    """Best % change of the target sum per subject, sorted from the largest increase down.

    Uses the subjects with ``status == "ok"`` (all rows when there is no status column) and a
    numeric ``best_percent_change``. Bars are coloured by ``best_response`` (``color_by=
    "category"``) or by ``arm`` (``"arm"``). Dashed lines mark the criteria's response
    (-``response_decrease_pct``) and progression (+``progression_increase_pct``, which the
    criteria apply vs the nadir) thresholds, a dash-dot line the exploratory responder threshold
    (-``responder_reduction_pct``); a filled triangle above a bar marks a subject with new
lesions at or above the criteria's new-lesion floor, an open one a subject whose only new
lesions were equivocal (below the floor).
    Bars above +100% are drawn at +100% with their value written on them.

    Writes ``<stem>.png`` and ``<stem>.svg``; returns both paths.
    """
    if color_by not in ("category", "arm"):
        raise ValueError(f"color_by must be 'category' or 'arm', got {color_by!r}")
    rows = _waterfall_rows(subjects)
    with style():
        fig, ax = figure(9.5, 5.0, layout="constrained")
        _draw_waterfall(ax, rows, criteria, color_by)
        ax.set_title(
            f"Best change in target lesion volume from baseline ({plain(criteria.name)})",
            loc="left",
        )
        return save(fig, stem, ("png", "svg"))


def _new_kind(rec: dict[str, Any]) -> str:
    """``"unequivocal"``, ``"equivocal"`` (only new lesions below the floor) or ``""``."""
    new = number(rec.get("new_lesions")) or 0
    equivocal = number(rec.get("equivocal_new_lesions")) or 0
    return "" if new <= 0 else "equivocal" if 0 < new <= equivocal else "unequivocal"


_CLINICAL = ("steroid dose increased", "neurologic status worse", "extra-CNS progression")


def _clinical_pd(reason: str) -> bool:
    """The first PD was a clinical modifier alone (no volumetric finding)."""
    parts = [p.strip() for p in reason.split(";") if p.strip()]
    return bool(parts) and all(p.startswith(_CLINICAL) for p in parts)


def _waterfall_rows(subjects: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for rec in records(subjects):
        if "status" in rec and text(rec.get("status")) not in ("ok", ""):
            continue
        value = number(rec.get("best_percent_change"))
        if value is None:
            continue
        rows.append({
            "id": text(rec.get("subject_id")),
            "value": value,
            "category": category(rec.get("best_response")),
            "arm": text(rec.get("arm")),
            "new": _new_kind(rec),
            "within_error": rec.get("best_change_within_measurement_error") is True,
            "clinical_pd": _clinical_pd(text(rec.get("progression_reason"))),
        })
    # largest increase on the left, deepest reduction on the right; ties by id (stable)
    rows.sort(key=lambda r: (-r["value"], r["id"]))
    return rows


def _draw_waterfall(ax: Axes, rows: list[dict[str, Any]], criteria: Criteria, color_by: str) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = len(rows)
    values = [r["value"] for r in rows]
    top_needed = max([criteria.progression_increase_pct, *values, 0.0])
    clipped = top_needed > CLAMP_PCT
    y_top = min(top_needed, CLAMP_PCT) + (20.0 if clipped else 12.0)
    y_bottom = -108.0
    span = y_top - y_bottom
    x = np.arange(n)
    handles: list[Any] = []
    if color_by == "category":
        colours = [CATEGORY_COLOURS[r["category"]] for r in rows]
        for cat in CATEGORY_COLOURS:
            k = sum(r["category"] == cat for r in rows)
            if k:
                handles.append(Patch(color=CATEGORY_COLOURS[cat],
                                     label=f"{CATEGORY_NAMES[cat]}, n={k}"))
    else:
        arm_colour = arm_colours([r["arm"] for r in rows])
        colours = [arm_colour[r["arm"]] for r in rows]
        for arm, colour in arm_colour.items():
            k = sum(r["arm"] == arm for r in rows)
            label = f"arm {short(arm, 24)}" if arm else "arm unknown"
            handles.append(Patch(color=colour, label=f"{plain(label)}, n={k}"))
    _draw_bars(ax, x, rows, colours, span, handles)
    _draw_new_lesion_marks(ax, x, rows, span, handles)
    clinical = [xi for xi, r in zip(x, rows) if r["clinical_pd"]]
    if clinical:  # below the axis, where no bar reaches
        ax.scatter(clinical, [-104.0] * len(clinical), marker="x", s=30, color="black",
                   linewidths=1.2, zorder=5)
        handles.append(Line2D([], [], ls="", marker="x", color="black", ms=5,
                              label="first PD clinical (steroids, neurologic, extra-CNS)"))
    ax.axhline(0, color="black", lw=0.8, zorder=3)
    handles += threshold_lines(ax, criteria)
    ax.set_ylim(y_bottom, y_top)
    ax.set_xlim(-0.8, max(n, 1) - 0.2)
    ax.set_ylabel("Best change of target volume vs baseline (%)")
    if n == 0:
        ax.text(0.5, 0.5, "no subject with a best % change\n(no evaluable subject)",
                transform=ax.transAxes, ha="center", va="center", color="#555555")
        ax.set_xticks([])
        ax.set_xlabel("Subjects (n = 0)")
    elif n <= 40:
        ax.set_xticks(x, [plain(short(r["id"], 16)) for r in rows], rotation=90, fontsize=7)
        ax.set_xlabel(f"Subjects (n = {n}), sorted by best change")
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"Subjects (n = {n}), sorted by best change")
    if clipped:
        handles.append(Line2D([], [], ls="", label=f"bars above +{CLAMP_PCT:g}% are cut at "
                              f"+{CLAMP_PCT:g}%,\nwith their value written on them"))
    ax.figure.legend(handles=handles, loc="outside right upper", frameon=False)


def _draw_bars(ax: Axes, x: np.ndarray, rows: list[dict[str, Any]], colours: list[Any],
               span: float, handles: list[Any]) -> None:
    """The bars (cut at +100% with their value written on them), hatched where the change is
    inside the measurement band, and a mark for a subject without change."""
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    values = [r["value"] for r in rows]
    heights = [min(v, CLAMP_PCT) for v in values]
    if not rows:
        return

    def boxes(items):
        return [[(xi - 0.4, 0.0), (xi + 0.4, 0.0), (xi + 0.4, h), (xi - 0.4, h)]
                for xi, h in items]

    # one collection of rectangles, not one patch per bar (fast for large cohorts)
    ax.add_collection(PolyCollection(boxes(zip(x, heights)), facecolors=colours,
                                     edgecolors="none", zorder=2))
    shaky = [(xi, h) for xi, h, r in zip(x, heights, rows) if r["within_error"]]
    if shaky:  # hatched over the colour: the change is inside the measurement band
        ax.add_collection(PolyCollection(boxes(shaky), facecolors="none", edgecolors="white",
                                         hatch="////", linewidths=0, zorder=2.5))
        handles.append(Patch(facecolor="#bbbbbb", edgecolor="white", hatch="////",
                             label="within measurement error (half-voxel band)"))
    flat = [xi for xi, r in zip(x, rows) if abs(r["value"]) < 0.5]
    if flat:  # a subject with no change still gets a visible mark
        ax.scatter(flat, [0.0] * len(flat), marker="_", s=120, linewidths=2.5,
                   c=[c for c, r in zip(colours, rows) if abs(r["value"]) < 0.5], zorder=4)
    for xi, v in zip(x, values):
        if v > CLAMP_PCT:  # truncated bar: say its real value on it
            ax.text(xi, CLAMP_PCT - 0.02 * span, f"+{v:.0f}%", rotation=90,
                    ha="center", va="top", fontsize=6.5, zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})


def _draw_new_lesion_marks(ax: Axes, x: np.ndarray, rows: list[dict[str, Any]], span: float,
                           handles: list[Any]) -> None:
    """A filled triangle above a subject with new lesions, an open one when they were all
    equivocal."""
    from matplotlib.lines import Line2D

    for kind, face, label in (
        ("unequivocal", "black", "new lesion(s) on follow-up"),
        ("equivocal", "none", "equivocal new lesion(s) only (below the floor)"),
    ):
        new_x = [xi for xi, r in zip(x, rows) if r["new"] == kind]
        if not new_x:
            continue
        new_y = [max(min(r["value"], CLAMP_PCT), 0.0) + 0.035 * span
                 for r in rows if r["new"] == kind]
        ax.scatter(new_x, new_y, marker="v", s=22, facecolors=face, edgecolors="black",
                   linewidths=0.8, zorder=5)
        handles.append(Line2D([], [], ls="", marker="v", markerfacecolor=face,
                              markeredgecolor="black", color="black", ms=5, label=label))
