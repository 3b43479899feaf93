"""Figures of a cohort run: waterfall, spider, Kaplan-Meier and per-subject QC pictures.

Every function takes tables or results and an output *stem* (a path without extension) and
returns the paths it wrote. Drawing never touches matplotlib's global state: figures are
:class:`matplotlib.figure.Figure` objects on the Agg canvas (no pyplot, no backend switch), the
style is fixed inside a ``rc_context`` (so a user's matplotlibrc cannot change the output), and
files are byte-stable: the SVG id salt is fixed and no date is written. Text that comes from
input files (subject ids, arms, timepoint labels) is drawn literally (``$`` cannot start
mathtext).

Colours are fixed: categories CR/PR/SD/PD/NE always have the same colour, and a lesion track has
the same outline colour in every panel of a QC picture (keyed by its track id).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cohort.tabular import atomic_write_bytes
from ..cohort.tabular import cell_number as _number
from ..cohort.tabular import cell_text as _text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..response.criteria import Criteria
    from ..response.evaluate import SeriesResult

__all__ = [
    "CATEGORY_COLOURS",
    "display_slice",
    "km_plot",
    "qc_picture",
    "spider",
    "track_colour",
    "waterfall",
]

CATEGORY_COLOURS = {  # Paul Tol's colour-blind safe scheme
    "CR": "#004488",
    "PR": "#6699CC",
    "SD": "#DDAA33",
    "PD": "#BB5566",
    "NE": "#BBBBBB",
}
CATEGORY_NAMES = {
    "CR": "CR (complete response)",
    "PR": "PR (partial response)",
    "SD": "SD (stable disease)",
    "PD": "PD (progressive disease)",
    "NE": "NE (not evaluable)",
}
ARM_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
UNKNOWN_ARM_COLOUR = "#999999"
KM_COLOURS = {"responder": "#0072B2", "non_responder": "#D55E00"}
# bright on a dark MRI background, told apart by colour-blind readers for the first few
TRACK_COLOURS = ("#FF4040", "#33CCFF", "#FFD700", "#66FF66", "#FF66FF", "#FF9933", "#B0A0FF")
LINE_RESPONSE = "#004488"
LINE_PROGRESSION = "#BB5566"
LINE_RESPONDER = "#228833"

DPI = 150
QC_DPI = 110
CLAMP_PCT = 100.0  # bars / points above +100% are drawn at the limit, value annotated

_RC = {
    "svg.hashsalt": "cnsvol",  # fixed ids in SVG output: byte-stable files
    "svg.fonttype": "path",  # glyphs as paths: no font needed to view the SVG
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs everywhere
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
    "text.usetex": False,
}


def track_colour(track_id: int) -> str:
    """The outline colour of a lesion track (the same in every panel and every picture)."""
    return TRACK_COLOURS[(int(track_id) - 1) % len(TRACK_COLOURS)]


# --------------------------------------------------------------------------------------------
# waterfall


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
    (-``responder_reduction_pct``); a triangle above a bar marks a subject with new lesions.
    Bars above +100% are drawn at +100% with their value written on them.

    Writes ``<stem>.png`` and ``<stem>.svg``; returns both paths.
    """
    if color_by not in ("category", "arm"):
        raise ValueError(f"color_by must be 'category' or 'arm', got {color_by!r}")
    rows = _waterfall_rows(subjects)
    with _style():
        fig, ax = _figure(9.5, 5.0, layout="constrained")
        _draw_waterfall(ax, rows, criteria, color_by)
        ax.set_title(
            f"Best change in target lesion volume from baseline ({_plain(criteria.name)})",
            loc="left",
        )
        return _save(fig, stem, ("png", "svg"))


def _waterfall_rows(subjects: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for rec in _records(subjects):
        if "status" in rec and _text(rec.get("status")) not in ("ok", ""):
            continue
        value = _number(rec.get("best_percent_change"))
        if value is None:
            continue
        rows.append({
            "id": _text(rec.get("subject_id")),
            "value": value,
            "category": _category(rec.get("best_response")),
            "arm": _text(rec.get("arm")),
            "new": (_number(rec.get("new_lesions")) or 0) > 0,
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
        arm_colour = _arm_colours([r["arm"] for r in rows])
        colours = [arm_colour[r["arm"]] for r in rows]
        for arm, colour in arm_colour.items():
            k = sum(r["arm"] == arm for r in rows)
            label = f"arm {_short(arm, 24)}" if arm else "arm unknown"
            handles.append(Patch(color=colour, label=f"{_plain(label)}, n={k}"))
    heights = [min(v, CLAMP_PCT) for v in values]
    if n:  # one collection of rectangles, not one patch per bar (fast for large cohorts)
        from matplotlib.collections import PolyCollection

        ax.add_collection(PolyCollection(
            [[(xi - 0.4, 0.0), (xi + 0.4, 0.0), (xi + 0.4, h), (xi - 0.4, h)]
             for xi, h in zip(x, heights)],
            facecolors=colours, edgecolors="none", zorder=2,
        ))
    for xi, r in zip(x, rows):
        if r["value"] > CLAMP_PCT:  # truncated bar: say its real value on it
            ax.text(xi, CLAMP_PCT - 0.02 * span, f"+{r['value']:.0f}%", rotation=90,
                    ha="center", va="top", fontsize=6.5, zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    new_x = [xi for xi, r in zip(x, rows) if r["new"]]
    if new_x:
        new_y = [max(min(r["value"], CLAMP_PCT), 0.0) + 0.035 * span for r in rows if r["new"]]
        ax.scatter(new_x, new_y, marker="v", s=22, color="black", zorder=5)
        handles.append(Line2D([], [], ls="", marker="v", color="black", ms=5,
                              label="new lesion(s) on follow-up"))
    ax.axhline(0, color="black", lw=0.8, zorder=3)
    handles += _threshold_lines(ax, criteria)
    ax.set_ylim(y_bottom, y_top)
    ax.set_xlim(-0.8, max(n, 1) - 0.2)
    ax.set_ylabel("Best change of target volume vs baseline (%)")
    if n == 0:
        ax.text(0.5, 0.5, "no subject with a best % change\n(no evaluable subject)",
                transform=ax.transAxes, ha="center", va="center", color="#555555")
        ax.set_xticks([])
        ax.set_xlabel("Subjects (n = 0)")
    elif n <= 40:
        ax.set_xticks(x, [_plain(_short(r["id"], 16)) for r in rows], rotation=90, fontsize=7)
        ax.set_xlabel(f"Subjects (n = {n}), sorted by best change")
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"Subjects (n = {n}), sorted by best change")
    if clipped:
        handles.append(Line2D([], [], ls="", label=f"bars above +{CLAMP_PCT:g}% are cut at "
                              f"+{CLAMP_PCT:g}%,\nwith their value written on them"))
    ax.figure.legend(handles=handles, loc="outside right upper", frameon=False)


def _threshold_lines(ax: Axes, criteria: Criteria) -> list[Any]:
    """The criteria's reference lines; returns their legend handles."""
    from matplotlib.lines import Line2D

    spec = [
        (-criteria.response_decrease_pct, LINE_RESPONSE, (0, (5, 3)),
         f"\u2212{criteria.response_decrease_pct:g}%: response threshold (PR)"),
        (criteria.progression_increase_pct, LINE_PROGRESSION, (0, (5, 3)),
         f"+{criteria.progression_increase_pct:g}%: progression threshold "
         f"(vs {criteria.progression_reference})"),
        (-criteria.responder_reduction_pct, LINE_RESPONDER, (0, (6, 2, 1, 2)),
         f"\u2212{criteria.responder_reduction_pct:g}%: responder "
         f"(\u2265{criteria.responder_reduction_pct:g}% reduction)"),
    ]
    handles = []
    for y, colour, style, label in spec:
        ax.axhline(y, color=colour, ls=style, lw=1.1, zorder=3)
        handles.append(Line2D([], [], color=colour, ls=style, lw=1.1, label=label))
    return handles


# --------------------------------------------------------------------------------------------
# spider


def spider(
    timepoints: pd.DataFrame,
    subjects: pd.DataFrame,
    criteria: Criteria,
    stem: str | Path,
) -> list[Path]:
    """% change of the target sum vs baseline over days from baseline, one line per subject.

    Lines are coloured by the subject's ``best_response`` (from ``subjects``; subjects whose
    status is not ``ok`` are left out). A cross marks a scan scored PD; points above +100% are
    drawn at +100% as open triangles. Reference lines as in :func:`waterfall`.

    Writes ``<stem>.png`` and ``<stem>.svg``; returns both paths.
    """
    best: dict[str, str] = {}
    skip: set[str] = set()
    for rec in _records(subjects):
        sid = _text(rec.get("subject_id"))
        if "status" in rec and _text(rec.get("status")) not in ("ok", ""):
            skip.add(sid)
        else:
            best[sid] = _category(rec.get("best_response"))
    lines: dict[str, list[tuple[float, float, str]]] = {}
    for rec in _records(timepoints):
        sid = _text(rec.get("subject_id"))
        day = _number(rec.get("days_from_baseline"))
        pct = _number(rec.get("percent_change_vs_baseline"))
        if sid in skip or day is None or pct is None:
            continue
        lines.setdefault(sid, []).append((day, pct, _text(rec.get("category"))))
    with _style():
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        fig, ax = _figure(9.5, 5.0, layout="constrained")
        all_pct = [p for pts in lines.values() for _, p, _ in pts]
        top_needed = max([criteria.progression_increase_pct, *all_pct, 0.0])
        clipped = top_needed > CLAMP_PCT
        y_top = min(top_needed, CLAMP_PCT) + 12.0
        from matplotlib.collections import LineCollection

        used: dict[str, int] = {}
        # one collection per kind of mark (not one artist per subject): a cohort of thousands
        # draws in well under a second
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
        any_pd = bool(pd_pts)
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
        handles += _threshold_lines(ax, criteria)
        ax.set_ylim(-108.0, y_top)
        ax.set_xlim(left=0)
        if not lines:
            ax.set_xlim(0, 1)
            ax.text(0.5, 0.5, "no evaluable timepoint", transform=ax.transAxes,
                    ha="center", va="center", color="#555555")
        ax.set_xlabel("Days from baseline")
        ax.set_ylabel("Change of target volume vs baseline (%)")
        ax.set_title(
            f"Target lesion volume over time, {len(lines)} subject(s) ({_plain(criteria.name)})",
            loc="left",
        )
        fig.legend(handles=handles, loc="outside right upper", frameon=False)
        return _save(fig, stem, ("png", "svg"))


# --------------------------------------------------------------------------------------------
# Kaplan-Meier


def km_plot(analysis: dict[str, Any], stem: str | Path, title: str) -> list[Path]:
    """Kaplan-Meier curves of one ANALYSIS of ``cohort.json`` (see docs/outputs.md).

    Step curves for ``responder`` and ``non_responder`` with censoring ticks, dashed median
    lines when the median is reached, the log-rank p and the Cox hazard ratio in a box, and the
    numbers at risk under the axis at the x ticks. The time axis is in days from the analysis's
    time origin (baseline, or the landmark).

    Numbers at risk are read from the curve arrays: at time ``T``, ``at_risk`` of the first
    curve time >= T (the arrays list every event and censoring time, each ``at_risk`` counting
    the subjects still followed just before it); after the last curve time, what remains after
    its events and censorings.

    Writes ``<stem>.png`` and ``<stem>.svg``; returns both paths.
    """
    from matplotlib.ticker import MaxNLocator

    groups = analysis.get("groups") or {}
    landmark = analysis.get("time_origin") == "landmark"
    curves = {}
    for key in ("responder", "non_responder"):
        curve = _curve(groups.get(key))
        if curve is not None:
            curves[key] = curve
    t_max = max((float(c["time"][-1]) for c in curves.values()), default=0.0)
    t_max = t_max if t_max > 0 else 1.0
    ticks = [float(t) for t in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=True)
             .tick_values(0, t_max) if 0 <= t <= t_max * 1.0001]
    with _style():
        fig = _figure(7.5, 6.2, axes=False)[0]
        ax = fig.add_axes((0.19, 0.45, 0.77, 0.48))
        risk = fig.add_axes((0.19, 0.03, 0.77, 0.13), sharex=ax)
        names = {"responder": "responders", "non_responder": "non-responders"}
        for key in ("responder", "non_responder"):
            km = groups.get(key) or {}
            c = curves.get(key)
            colour = KM_COLOURS[key]
            if c is None:
                continue
            med = _number(km.get("median_days"))
            label = f"{names[key]} (n={_int_text(km.get('n'))}, events={_int_text(km.get('events'))}); "
            if med is None:
                label += "median not reached"
            else:
                lo, hi = _number(km.get("median_ci_low")), _number(km.get("median_ci_high"))
                ci = f", 95% CI {_days(lo)}\u2013{_days(hi)}" if lo is not None or hi is not None else ""
                label += f"median {med:.0f} d{ci}"
            ax.step(c["time"], c["survival"], where="post", color=colour, lw=1.8, label=label)
            cens = c["censored"] > 0
            if cens.any():
                ax.plot(c["time"][cens], c["survival"][cens], ls="", marker="|", ms=9, mew=1.4,
                        color=colour)
            if med is not None:
                ax.plot([0, med], [0.5, 0.5], color=colour, ls=(0, (3, 2)), lw=0.9)
                ax.plot([med, med], [0, 0.5], color=colour, ls=(0, (3, 2)), lw=0.9)
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlim(0, t_max * 1.03)
        ax.set_xticks(ticks)
        ax.set_ylabel("Progression-free probability")
        origin = "landmark" if landmark else "baseline"
        xlabel = f"Days from {origin}"
        if landmark and _number(analysis.get("landmark_days")) is not None:
            xlabel += f" (landmark = day {_number(analysis.get('landmark_days')):g} from baseline)"
        ax.set_xlabel(xlabel)
        ax.set_title(_plain(title), loc="left")
        if curves:
            ax.plot([], [], ls="", marker="|", ms=9, mew=1.4, color="black", label="censored")
            ax.legend(loc="upper right", frameon=True, framealpha=0.9, fontsize=7.5)
        else:
            ax.text(0.5, 0.5, "no PFS data for this analysis", transform=ax.transAxes,
                    ha="center", va="center", color="#555555")
        # below the x label, never over the curves
        fig.text(0.19, 0.325, _km_stats_text(analysis), fontsize=7.5, va="top", ha="left",
                 bbox={"boxstyle": "round,pad=0.4", "fc": "#f4f4f4", "ec": "#888888"})
        # numbers at risk, one row per group, at the x ticks
        risk.set_ylim(-0.5, 1.6)
        risk.axis("off")
        risk.text(-0.22, 1.45, f"Number at risk (days from {origin})", transform=risk.get_yaxis_transform(),
                  ha="left", fontsize=8, fontweight="bold")
        for row, key in enumerate(("responder", "non_responder")):
            y = 0.8 - row * 0.9
            risk.text(-0.04, y, names[key], transform=risk.get_yaxis_transform(), ha="right",
                      va="center", fontsize=8, color=KM_COLOURS[key])
            c = curves.get(key)
            for t in ticks:
                n = _at_risk(c, t) if c is not None else 0
                risk.text(t, y, str(n), ha="center", va="center", fontsize=8,
                          color=KM_COLOURS[key])
        return _save(fig, stem, ("png", "svg"))


def _curve(km: dict[str, Any] | None) -> dict[str, np.ndarray] | None:
    """The curve arrays of a KM dict as float arrays, or ``None`` when absent or empty."""
    if not km or not km.get("curve"):
        return None
    c = km["curve"]
    try:
        out = {k: np.asarray([_number(v) or 0.0 for v in c[k]], dtype=np.float64)
               for k in ("time", "survival", "at_risk", "events", "censored")}
    except (KeyError, TypeError):
        return None
    n = len(out["time"])
    if n == 0 or any(len(v) != n for v in out.values()):
        return None
    return out


def _at_risk(c: dict[str, np.ndarray], t: float) -> int:
    later = np.flatnonzero(c["time"] >= t - 1e-9)
    if later.size:
        return int(round(c["at_risk"][later[0]]))
    left = c["at_risk"][-1] - c["events"][-1] - c["censored"][-1]
    return max(int(round(left)), 0)


def _km_stats_text(analysis: dict[str, Any]) -> str:
    lines = []
    lr = analysis.get("logrank") or {}
    lines.append(f"Log-rank p = {_p_text(lr.get('p_value'))}" if lr else "Log-rank: not computed")
    cox = analysis.get("cox_responder")
    if cox and _number(cox.get("hr")) is not None:
        lines.append(
            f"Cox HR responder vs non-responder {_number(cox['hr']):.2f} "
            f"(95% CI {_num_text(cox.get('ci_low'))}\u2013{_num_text(cox.get('ci_high'))}), "
            f"p = {_p_text(cox.get('p_value'))}"
        )
    else:
        lines.append("Cox HR (responder): not estimable")
    cox = analysis.get("cox_percent_change")
    if cox and _number(cox.get("hr")) is not None:
        lines.append(
            f"Cox HR per +10 points of best % change {_number(cox['hr']):.2f} "
            f"(95% CI {_num_text(cox.get('ci_low'))}\u2013{_num_text(cox.get('ci_high'))})"
        )
    if analysis.get("time_origin") == "landmark":
        lm = _number(analysis.get("landmark_days"))
        src = _text(analysis.get("landmark_source"))
        excl = analysis.get("n_excluded")
        lines.append(
            f"Landmark day {lm:g}" if lm is not None else "Landmark day unknown"
        )
        if src:
            lines[-1] += f" ({_plain(src)})"
        if excl is not None:
            lines[-1] += f"; {_int_text(excl)} excluded (progressed or censored before it)"
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# QC picture


def qc_picture(
    series: SeriesResult,
    images: Sequence[str | Path | None] | None,
    stem: str | Path,
    max_lesions: int = 3,
    *,
    title: str | None = None,
) -> list[Path]:
    """Slices through the largest lesions at every timepoint, outlines coloured by track.

    Rows are the largest baseline tracks (at most ``max_lesions``; the largest tracks at any
    timepoint when the baseline has no lesion), columns the timepoints. Each panel is the axial
    slice (perpendicular to :func:`cnsvol.geometry.axial_axis` of that scan's grid) through the
    track's centroid; where the track is absent, the slice nearest the world position of its
    last (else next) centroid. The background is the MRI image when one is given on the same
    grid as the mask, else the mask in grey (the panel title says why). Every lesion in the
    panel is outlined in its track's colour (:func:`track_colour`); the row's track is drawn
    thicker and frames the panel.

    Orientation (radiological convention): anterior up, the patient's right on the viewer's
    left; the flips are derived from each scan's affine, so LPS- or RAS-stored grids look alike.

    Writes ``<stem>.png`` only (an SVG of images is heavy) and returns ``[png]``.
    """
    labels = [tp.timepoint for tp in series.timepoints]
    n_t = len(labels)
    imgs = list(images) if images is not None else [None] * n_t
    if len(imgs) != n_t:
        raise ValueError(f"got {len(imgs)} images for {n_t} timepoints: give one (or None) per timepoint")
    index = {lab: t for t, lab in enumerate(labels)}
    states: dict[int, dict[int, Any]] = {}  # track id -> timepoint index -> TrackRow
    for r in series.tracks:
        states.setdefault(r.track_id, {})[index[r.timepoint]] = r
    lesion_track = [dict() for _ in range(n_t)]  # per timepoint: lesion id -> track id
    for tid, per_t in states.items():
        for t, r in per_t.items():
            for lid in r.lesion_ids:
                lesion_track[t][lid] = tid
    chosen = _qc_tracks(states, max_lesions)
    positions = {tid: _track_positions(series, states[tid]) for tid in chosen}
    half_mm = {tid: _half_window_mm(series, states[tid]) for tid in chosen}

    n_rows = max(len(chosen), 1)
    with _style():
        fig = _figure(2.35 * n_t + 0.5, 2.75 * n_rows + 1.0, dpi=QC_DPI, axes=False)[0]
        axes = fig.subplots(n_rows, n_t, squeeze=False)
        fig.subplots_adjust(left=0.5 / (2.35 * n_t + 0.5), right=0.99, wspace=0.06,
                            top=1 - 0.75 / (2.75 * n_rows + 1.0),
                            bottom=0.45 / (2.75 * n_rows + 1.0), hspace=0.42)
        for t in range(n_t):  # one column at a time: one image volume in memory at once
            background, note = _qc_background(series.lesion_sets[t], imgs[t])
            for row in range(n_rows):
                tid = chosen[row] if chosen else None
                _qc_panel(axes[row][t], series, t, tid, states.get(tid, {}) if tid else {},
                          positions.get(tid), half_mm.get(tid, 30.0), lesion_track[t],
                          background, note)
            del background
        for row in range(n_rows):
            tid = chosen[row] if chosen else None
            ax0 = axes[row][0]
            ax0.set_ylabel("no lesion" if tid is None else f"track {tid}", fontsize=9,
                           color="black" if tid is None else _darker(track_colour(tid)),
                           fontweight="bold")
        head = "QC: " + _plain(_short(title, 60)) if title else "QC"
        fig.suptitle(
            f"{head} \u2014 {series.criteria.name}; axial slices, radiological view "
            "(patient's right on the left, anterior up)",
            x=0.01, ha="left", fontsize=9,
        )
        fig.text(0.01, 0.01, "Outline colour = lesion track (same colour at every timepoint); "
                 "thick outline and frame = the row's track; mm\u00b3 = track volume.",
                 fontsize=7, color="#444444")
        return _save(fig, stem, ("png",), dpi=QC_DPI)


def _qc_tracks(states: dict[int, dict[int, Any]], max_lesions: int) -> list[int]:
    """Largest baseline tracks; if the baseline is empty, the largest tracks at any time."""
    base = [(r.volume_mm3, tid) for tid, per_t in states.items()
            for t, r in per_t.items() if t == 0 and r.lesion_ids]
    if not base:
        base = [(max(r.volume_mm3 for r in per_t.values()), tid)
                for tid, per_t in states.items() if any(r.lesion_ids for r in per_t.values())]
    base.sort(key=lambda vt: (-vt[0], vt[1]))
    return [tid for _, tid in base[: max(int(max_lesions), 0)]]


def _track_centroid(series: SeriesResult, t: int, lesion_ids: Sequence[int]) -> np.ndarray | None:
    """Volume-weighted centroid (RAS mm) of a track's lesions at timepoint t."""
    by_id = series.lesion_sets[t].by_id()
    les = [by_id[i] for i in lesion_ids if i in by_id]
    w = np.array([x.volume_mm3 for x in les], dtype=np.float64)
    if not les or w.sum() <= 0:
        return None
    pts = np.array([x.centroid_ras_mm for x in les], dtype=np.float64)
    return (pts * w[:, None]).sum(axis=0) / w.sum()


def _track_positions(series: SeriesResult, per_t: dict[int, Any]) -> list[tuple[np.ndarray, bool]]:
    """Per timepoint: (world position, present). Absent: the last centroid, else the next."""
    n_t = len(series.timepoints)
    own: dict[int, np.ndarray] = {}
    for t, r in per_t.items():
        c = _track_centroid(series, t, r.lesion_ids) if r.lesion_ids else None
        if c is not None:
            own[t] = c
    out = []
    for t in range(n_t):
        if t in own:
            out.append((own[t], True))
            continue
        before = [u for u in own if u < t]
        after = [u for u in own if u > t]
        ref = own[max(before)] if before else own[min(after)] if after else None
        out.append((ref, False))
    return out


def _half_window_mm(series: SeriesResult, per_t: dict[int, Any]) -> float:
    """Half the side of the square shown around a track: 1.3 x its largest 3D diameter, >= 25 mm."""
    biggest = 0.0
    for t, r in per_t.items():
        by_id = series.lesion_sets[t].by_id()
        for lid in r.lesion_ids:
            if lid in by_id:
                biggest = max(biggest, by_id[lid].max_diameter_3d_mm)
    return max(25.0, 1.3 * biggest)


def _qc_background(ls: Any, path: str | Path | None) -> tuple[tuple[str, np.ndarray], str]:
    """("image" | "mask", volume) for one timepoint, and a note for its panel titles."""
    from ..errors import CnsvolError

    mask = ls.mask
    if path is None or str(path) == "":
        return ("mask", mask.data), ""
    try:
        data, affine = _read_image(Path(path))
    except (CnsvolError, OSError) as exc:
        return ("mask", mask.data), f"image unreadable ({type(exc).__name__}): mask shown"
    if data.shape == mask.shape and bool(np.all(np.abs(affine - mask.affine) <= 1e-3)):
        return ("image", data), ""
    # never resample behind the user's back: show the mask and say why
    return ("mask", mask.data), "image grid \u2260 mask grid: mask shown"


def _read_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An MRI volume ``[i, j, k]`` and its RAS+ mm affine, through cnsvol.io's readers (so an
    image and its mask share one convention: NIfTI via nibabel, NRRD/MHA via SimpleITK with the
    LPS->RAS flip done once, in :mod:`cnsvol.io`)."""
    from ..io.read import read_image

    raw, affine = read_image(path)
    return np.asarray(raw), np.asarray(affine, dtype=np.float64)


def display_slice(volume: np.ndarray, affine: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of ``volume`` as a 2D array ready for ``imshow(origin="upper")``.

    Radiological convention, derived from the affine: rows run anterior (top) to posterior,
    columns run from the patient's right (viewer's left) to the patient's left.
    """
    return _orient(np.take(volume, int(k), axis=_layout(affine)[0]), affine)


def _layout(affine: np.ndarray) -> tuple[int, int, int, bool, bool]:
    """(slice axis, vertical voxel axis, horizontal voxel axis, flip rows, flip columns).

    The in-plane voxel axis closest to world x (R-L) is shown horizontally, the other
    vertically. RAS+: +x is the patient's right. Radiological display puts the patient's right
    on the viewer's left, so the column index must run towards -x: flip the columns when the
    horizontal axis points to +x. Anterior up: the top row must be the most anterior, so flip
    the rows when the vertical axis points to +y (anterior).
    """
    from ..lesions.geometry import axial_axis

    ax = axial_axis(affine)
    a, b = (i for i in range(3) if i != ax)
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    h, v = (a, b) if abs(cols[0, a]) >= abs(cols[0, b]) else (b, a)
    return ax, v, h, bool(cols[1, v] > 0), bool(cols[0, h] > 0)


def _orient(sl: np.ndarray, affine: np.ndarray) -> np.ndarray:
    ax, v, h, flip_rows, flip_cols = _layout(affine)
    a, _ = (i for i in range(3) if i != ax)
    out = sl if v == a else sl.T  # rows = vertical axis, columns = horizontal axis
    if flip_rows:
        out = out[::-1, :]
    if flip_cols:
        out = out[:, ::-1]
    return out


def _display_point(ijk: np.ndarray, shape: tuple[int, ...], affine: np.ndarray) -> tuple[float, float]:
    """Where voxel coordinate ``ijk`` (fractional) lands in :func:`display_slice`: (row, col)."""
    _, v, h, flip_rows, flip_cols = _layout(affine)
    row = (shape[v] - 1 - ijk[v]) if flip_rows else ijk[v]
    col = (shape[h] - 1 - ijk[h]) if flip_cols else ijk[h]
    return float(row), float(col)


def _qc_panel(
    ax: Axes,
    series: SeriesResult,
    t: int,
    tid: int | None,
    per_t: dict[int, Any],
    position: list[tuple[np.ndarray | None, bool]] | None,
    half_mm: float,
    lesion_track: dict[int, int],
    background: tuple[str, np.ndarray],
    note: str,
) -> None:
    ls = series.lesion_sets[t]
    tp = series.timepoints[t]
    mask = ls.mask
    affine = mask.affine
    shape = mask.shape
    ax_i, v, h, _, _ = _layout(affine)
    inv = np.linalg.inv(affine)
    world, present = position[t] if position else (None, False)
    outside = False
    if world is not None:
        ijk = (inv @ np.append(world, 1.0))[:3]
        k = int(np.rint(ijk[ax_i]))
        outside = not (0 <= k < shape[ax_i])
        k = int(np.clip(k, 0, shape[ax_i] - 1))
        row_ids = per_t[t].lesion_ids if t in per_t else ()
        if present and row_ids:
            k = _slice_with_track(ls.label_image, ax_i, k, row_ids)
    else:
        ijk = (np.array(shape, dtype=np.float64) - 1) / 2
        k = shape[ax_i] // 2
    ax.set_facecolor("black")  # outside the scan's field of view
    kind, volume = background
    base = display_slice(volume, affine, k)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    aspect = float(spacing[v] / spacing[h])
    if kind == "image":
        finite = base[np.isfinite(base)]
        vals = finite[finite != 0] if np.any(finite != 0) else finite
        lo, hi = (np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0))
        ax.imshow(base, cmap="gray", vmin=float(lo), vmax=float(max(hi, lo + 1e-6)),
                  aspect=aspect, origin="upper")
    else:
        ax.imshow((base > 0).astype(np.float32), cmap="gray", vmin=0.0, vmax=2.2,
                  aspect=aspect, origin="upper")
    labels2d = display_slice(ls.label_image, affine, k)
    row_c, col_c = _display_point(ijk, shape, affine)
    hr, hc = half_mm / spacing[v], half_mm / spacing[h]
    r0, r1 = max(int(np.floor(row_c - hr)) - 1, 0), min(int(np.ceil(row_c + hr)) + 2, labels2d.shape[0])
    c0, c1 = max(int(np.floor(col_c - hc)) - 1, 0), min(int(np.ceil(col_c + hc)) + 2, labels2d.shape[1])
    sub = labels2d[r0:r1, c0:c1]
    for lid_track in sorted({lesion_track.get(int(i)) for i in np.unique(sub) if i} - {None}):
        ids = [lid for lid, tr in lesion_track.items() if tr == lid_track]
        inside = np.isin(sub, ids)
        if inside.any() and min(sub.shape) >= 2:
            ax.contour(np.arange(c0, c1), np.arange(r0, r1), inside.astype(np.float32),
                       levels=[0.5], colors=[track_colour(lid_track)],
                       linewidths=2.0 if lid_track == tid else 1.0)
    ax.set_xlim(col_c - hc, col_c + hc)
    ax.set_ylim(row_c + hr, row_c - hr)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(track_colour(tid) if tid else "#444444")
        spine.set_linewidth(2.0)
    for x, y, s in ((0.03, 0.5, "R"), (0.97, 0.5, "L"), (0.5, 0.97, "A"), (0.5, 0.03, "P")):
        ax.text(x, y, s, transform=ax.transAxes, color="white", fontsize=7, ha="center",
                va="center", alpha=0.8)
    day = "day ?" if tp.days_from_baseline is None else f"day {tp.days_from_baseline:g}"
    lines = [f"{_plain(_short(tp.timepoint, 18))} \u00b7 {day} \u00b7 slice {k}"]
    if tid is None:
        lines.append("no lesion")
    elif t in per_t and per_t[t].lesion_ids:
        lines.append(f"track {tid}: {per_t[t].volume_mm3:.1f} mm\u00b3")
    elif t in per_t:
        lines.append(f"track {tid}: {per_t[t].status} (0 mm\u00b3)")
    else:
        lines.append(f"track {tid}: absent" + (" (outside scan)" if outside else ""))
    if note:
        lines.append(note)
    ax.set_title("\n".join(lines), fontsize=7.5, loc="left")


def _slice_with_track(labels: np.ndarray, axis: int, k: int, ids: Sequence[int]) -> int:
    """``k`` if the track has voxels on that slice, else its slice with the most voxels."""
    sl = np.take(labels, k, axis=axis)
    if np.isin(sl, ids).any():
        return k
    counts = np.isin(labels, ids).sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(counts)) if counts.any() else k


# --------------------------------------------------------------------------------------------
# shared helpers


@contextmanager
def _style() -> Iterator[None]:
    """A fixed style for drawing and saving, restored afterwards (no global state kept)."""
    import matplotlib as mpl
    import matplotlib.style

    with matplotlib.style.context("default"), mpl.rc_context(_RC):
        yield


def _figure(
    width_in: float, height_in: float, dpi: int = DPI, axes: bool = True,
    layout: str | None = None,
) -> tuple[Figure, Axes | None]:
    """A figure on its own Agg canvas (no pyplot, no global figure registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig, (fig.add_subplot() if axes else None)


def _save(fig: Figure, stem: str | Path, formats: Sequence[str], dpi: int = DPI) -> list[Path]:
    """Write ``<stem>.<fmt>`` for each format, atomically; no dates, so files are byte-stable."""
    stem = Path(stem)
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        # SVG records a date by default; PNG (Agg) records none.
        meta = {"Date": None} if fmt == "svg" else {}
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta, facecolor="white")
        path = stem.with_name(f"{stem.name}.{fmt}")  # not with_suffix: ids may contain dots
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def _records(frame: Any) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return list(frame.to_dict("records"))




def _category(value: Any) -> str:
    text = _text(value).strip().upper()
    return text if text in CATEGORY_COLOURS else "NE"


def _arm_colours(arms: Sequence[str]) -> dict[str, str]:
    named = sorted({a for a in arms if a})
    out = {a: ARM_COLOURS[i % len(ARM_COLOURS)] for i, a in enumerate(named)}
    if any(not a for a in arms):
        out[""] = UNKNOWN_ARM_COLOUR
    return out


def _plain(text: Any) -> str:
    """Text drawn literally: a ``$`` from an input file must not switch to mathtext."""
    return _text(text).replace("$", r"\$")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _darker(colour: str) -> str:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return "#{:02x}{:02x}{:02x}".format(*(int(255 * 0.7 * c) for c in (r, g, b)))


def _num_text(value: Any, digits: int = 2) -> str:
    x = _number(value)
    return "n/a" if x is None else f"{x:.{digits}f}"


def _int_text(value: Any) -> str:
    x = _number(value)
    return "?" if x is None else f"{x:.0f}"


def _days(value: float | None) -> str:
    return "NR" if value is None else f"{value:.0f}"


def _p_text(value: Any) -> str:
    p = _number(value)
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def warm_up() -> None:
    """Draw a tiny labelled figure in memory (PNG and SVG), loading matplotlib's fonts and
    renderers, so that the first real figure does not pay for it."""
    import io

    with _style():
        fig, ax = _figure(1.0, 1.0, layout="constrained")
        assert ax is not None
        ax.plot([0, 1], [0, 1])
        ax.set_title("x")
        for fmt in ("png", "svg"):
            fig.savefig(io.BytesIO(), format=fmt)
