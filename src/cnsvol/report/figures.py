"""The cohort figures of a run (waterfall, spider, Kaplan-Meier) from its typed results, as
independent picklable tasks, so that a cohort run can draw them on its workers in parallel."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fmt import responder_words
from .km import km_plot
from .spider_plot import spider
from .style import text
from .waterfall_plot import waterfall

if TYPE_CHECKING:  # pragma: no cover
    from ..results.folder import RunResults

__all__ = ["cohort_figure_tasks", "write_cohort_figures"]

_SUBJECT_COLUMNS = ("subject_id", "status", "arm", "best_response", "best_percent_change",
                    "new_lesions", "equivocal_new_lesions",
                    "best_change_within_measurement_error", "progression_reason")
_TIMEPOINT_COLUMNS = ("subject_id", "days_from_baseline", "percent_change_vs_baseline",
                      "category", "within_measurement_error")


def cohort_figure_tasks(results: RunResults) -> dict[str, Any]:
    """``{name: call}``: each call draws one figure into ``<out_dir>/figures`` and returns the
    paths it wrote. ``waterfall_by_arm`` only when the subjects belong to two arms or more; the
    Kaplan-Meier figures only when the run has a PFS analysis."""
    criteria = results.criteria
    if criteria is None:
        raise ValueError(
            f"{results.out_dir}: no criteria found (provenance.json has no 'criteria' and "
            "cohort.json names no preset). Fix: rerun cnsvol run, which records them"
        )
    figs = Path(results.out_dir) / "figures"
    # each figure gets the columns it draws (the tasks travel to the workers)
    subjects = results.table("subjects", _SUBJECT_COLUMNS)
    timepoints = results.table("timepoints", _TIMEPOINT_COLUMNS)
    tasks: dict[str, Any] = {
        "spider": partial(spider, timepoints, subjects, criteria, figs / "spider"),
        "waterfall": partial(waterfall, subjects, criteria, figs / "waterfall"),
    }
    arms = subjects["arm"][(subjects["status"] == "ok").fillna(False)]
    if len({text(a) for a in arms if text(a)}) >= 2:
        tasks["waterfall_by_arm"] = partial(
            waterfall, subjects, criteria, figs / "waterfall_by_arm", color_by="arm"
        )
    pfs = results.cohort.pfs if results.cohort else None
    if pfs is not None:
        what = responder_words(pfs.responder_col, criteria.responder_reduction_pct)
        titles = {
            "naive": f"PFS by {what}, from baseline (naive analysis: guarantee-time biased)",
            "landmark": f"PFS by {what} reached by the landmark, from the landmark",
        }
        for key, analysis in (("naive", pfs.naive), ("landmark", pfs.landmark)):
            if analysis is not None:
                tasks[f"km_{key}"] = partial(km_plot, analysis, figs / f"km_{key}", titles[key])
    return tasks


def write_cohort_figures(results: RunResults | str | Path) -> dict[str, list[Path]]:
    """Draw the cohort figures of a results folder (a path, read with
    :func:`cnsvol.read_results`, or its :class:`RunResults`); ``{name: paths written}``."""
    if isinstance(results, (str, Path)):
        from ..results.folder import read_results

        results = read_results(results)
    return {name: draw() for name, draw in cohort_figure_tasks(results).items()}
