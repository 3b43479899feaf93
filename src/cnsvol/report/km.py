"""Kaplan-Meier plots of the PFS analyses (:class:`~cnsvol.cohort.stats.PfsAnalysis`), with
censoring ticks, medians, the log-rank p and Cox hazard ratio, and numbers at risk."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .fmt import fmt_days
from .style import KM_COLOURS, figure, plain, save, style

if TYPE_CHECKING:  # pragma: no cover
    from ..cohort.stats.types import Cox, Curve, KaplanMeier, PfsAnalysis

__all__ = ["at_risk", "fit_title", "km_plot"]

_GROUPS = ("responder", "non_responder")
_NAMES = {"responder": "responders", "non_responder": "non-responders"}


def km_plot(analysis: PfsAnalysis, stem: str | Path, title: str) -> list[Path]:
    """Kaplan-Meier curves of one PFS analysis (naive or landmark).

    Step curves for ``responder`` and ``non_responder`` with censoring ticks, dashed median
    lines when the median is reached, the log-rank p and the Cox hazard ratio in a box, and the
    numbers at risk under the axis at the x ticks. The time axis is in days from the analysis's
    time origin (baseline, or the landmark). Medians and their limits are written as
    ``cohort.json`` has them (250.5, not 250). A title too long for the figure is wrapped
    (:func:`fit_title`).

    Numbers at risk are read from the curve arrays: at time ``T``, ``at_risk`` of the first
    curve time >= T (the arrays list every event and censoring time, each ``at_risk`` counting
    the subjects still followed just before it); after the last curve time, what remains after
    its events and censorings.

    Writes ``<stem>.png`` and ``<stem>.svg``; returns both paths.
    """
    from matplotlib.ticker import MaxNLocator

    landmark = analysis.time_origin == "landmark"
    curves = {k: c for k in _GROUPS if k in analysis.groups
              if (c := _arrays(analysis.groups[k].curve)) is not None}
    t_max = max((float(c["time"][-1]) for c in curves.values()), default=0.0)
    t_max = t_max if t_max > 0 else 1.0
    ticks = [float(t) for t in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=True)
             .tick_values(0, t_max) if 0 <= t <= t_max * 1.0001]
    with style():
        fig = figure(7.5, 6.2, axes=False)[0]
        ax = fig.add_axes((0.19, 0.45, 0.77, 0.48))
        risk = fig.add_axes((0.19, 0.03, 0.77, 0.13), sharex=ax)
        for key in _GROUPS:
            if key in curves:
                _draw_group(ax, key, analysis.groups[key], curves[key])
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlim(0, t_max * 1.03)
        ax.set_xticks(ticks)
        ax.set_ylabel("Progression-free probability")
        origin = "landmark" if landmark else "baseline"
        xlabel = f"Days from {origin}"
        if landmark and analysis.landmark_days is not None:
            xlabel += f" (landmark = day {analysis.landmark_days:g} from baseline)"
        ax.set_xlabel(xlabel)
        fit_title(fig, ax, plain(title))
        if curves:
            ax.plot([], [], ls="", marker="|", ms=9, mew=1.4, color="black", label="censored")
            ax.legend(loc="upper right", frameon=True, framealpha=0.9, fontsize=7.5)
        else:
            ax.text(0.5, 0.5, "no PFS data for this analysis", transform=ax.transAxes,
                    ha="center", va="center", color="#555555")
        # below the x label, never over the curves
        fig.text(0.19, 0.325, _stats_text(analysis), fontsize=7.5, va="top", ha="left",
                 bbox={"boxstyle": "round,pad=0.4", "fc": "#f4f4f4", "ec": "#888888"})
        _risk_table(risk, curves, ticks, origin)
        return save(fig, stem, ("png", "svg"))


def _draw_group(ax, key: str, km: KaplanMeier, c: dict[str, np.ndarray]) -> None:
    colour = KM_COLOURS[key]
    med = km.median_days
    label = f"{_NAMES[key]} (n={km.n}, events={km.events}); "
    if med is None:
        label += "median not reached"
    else:
        lo, hi = km.median_ci_low, km.median_ci_high
        ci = f", 95% CI {_days(lo)}\u2013{_days(hi)}" if lo is not None or hi is not None else ""
        label += f"median {fmt_days(med)} d{ci}"
    ax.step(c["time"], c["survival"], where="post", color=colour, lw=1.8, label=label)
    cens = c["censored"] > 0
    if cens.any():
        ax.plot(c["time"][cens], c["survival"][cens], ls="", marker="|", ms=9, mew=1.4,
                color=colour)
    if med is not None:
        ax.plot([0, med], [0.5, 0.5], color=colour, ls=(0, (3, 2)), lw=0.9)
        ax.plot([med, med], [0, 0.5], color=colour, ls=(0, (3, 2)), lw=0.9)


def _risk_table(risk, curves: dict[str, dict[str, np.ndarray]], ticks: list[float],
                origin: str) -> None:
    """Numbers at risk, one row per group, at the x ticks."""
    risk.set_ylim(-0.5, 1.6)
    risk.axis("off")
    risk.text(-0.22, 1.45, f"Number at risk (days from {origin})",
              transform=risk.get_yaxis_transform(), ha="left", fontsize=8, fontweight="bold")
    for row, key in enumerate(_GROUPS):
        y = 0.8 - row * 0.9
        risk.text(-0.04, y, _NAMES[key], transform=risk.get_yaxis_transform(), ha="right",
                  va="center", fontsize=8, color=KM_COLOURS[key])
        c = curves.get(key)
        for t in ticks:
            n = at_risk(c, t) if c is not None else 0
            risk.text(t, y, str(n), ha="center", va="center", fontsize=8,
                      color=KM_COLOURS[key])


def _arrays(curve: Curve) -> dict[str, np.ndarray] | None:
    """The curve as float arrays, or ``None`` when empty."""
    out = {k: np.asarray(getattr(curve, k), dtype=np.float64)
           for k in ("time", "survival", "at_risk", "events", "censored")}
    n = len(out["time"])
    if n == 0 or any(len(v) != n for v in out.values()):
        return None
    return out


def at_risk(c: dict[str, np.ndarray], t: float) -> int:
    """Number at risk at time ``t`` (see :func:`km_plot`)."""
    later = np.flatnonzero(c["time"] >= t - 1e-9)
    if later.size:
        return int(round(c["at_risk"][later[0]]))
    left = c["at_risk"][-1] - c["events"][-1] - c["censored"][-1]
    return max(int(round(left)), 0)


def _hr(cox: Cox) -> str:
    return f"{cox.hr:.2f} (95% CI {cox.ci_low:.2f}\u2013{cox.ci_high:.2f})"


def _stats_text(analysis: PfsAnalysis) -> str:
    lr = analysis.logrank
    lines = [f"Log-rank p = {_p_text(lr.p_value)}" if lr else "Log-rank: not computed"]
    cox = analysis.cox_responder
    if cox is not None:
        lines.append(f"Cox HR responder vs non-responder {_hr(cox)}, p = {_p_text(cox.p_value)}")
    else:
        lines.append("Cox HR (responder): not estimable")
    cox = analysis.cox_percent_change
    if cox is not None:
        lines.append(f"Cox HR per +10 points of best % change {_hr(cox)}")
    if analysis.cox_responder is not None or cox is not None:
        lines.append("Cox model: Efron's method for tied event times; Wald CI and p")
    if analysis.time_origin == "landmark":
        lm = analysis.landmark_days
        lines.append(f"Landmark day {lm:g}" if lm is not None else "Landmark day unknown")
        if analysis.landmark_source:
            lines[-1] += f" ({plain(analysis.landmark_source)})"
        if analysis.n_excluded is not None:
            lines[-1] += (f"; {analysis.n_excluded:.0f} excluded (progressed or censored "
                          "before it)")
    return "\n".join(lines)


def _days(value: float | None) -> str:
    return "NR" if value is None else fmt_days(value)


def fit_title(fig, ax, title: str, margin: float = 0.015) -> None:
    """``title`` left-aligned over ``ax``, wrapped at spaces onto as few lines as make it end
    inside the figure (``margin``: the fraction of the figure width kept free at the right
    edge), the lines as even as that number allows; when it takes more than one line, the
    top of the axes is lowered so that the first line stays inside the figure too."""
    import textwrap

    artist = ax.set_title(title, loc="left")
    renderer = fig.canvas.get_renderer()
    room = fig.bbox.x1 - margin * fig.bbox.width - ax.bbox.x0
    width = artist.get_window_extent(renderer).width
    if width > room:
        def wrap(chars: int) -> list[str]:
            return textwrap.wrap(title, chars, break_long_words=False, break_on_hyphens=False)

        chars = max(int(len(title) * room / width), 20)
        while True:
            artist.set_text("\n".join(wrap(chars)))
            if chars <= 20 or artist.get_window_extent(renderer).width <= room:
                break
            chars -= 1
        lines = len(wrap(chars))  # then as even as the same number of lines allows
        while chars > 20 and len(wrap(chars - 1)) == lines:
            chars -= 1
        artist.set_text("\n".join(wrap(chars)))
    over = artist.get_window_extent(renderer).y1 - (fig.bbox.y1 - margin * fig.bbox.height)
    if over > 0:
        x0, y0, w, h = ax.get_position().bounds
        ax.set_position((x0, y0, w, h - over / fig.bbox.height))


def _p_text(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
