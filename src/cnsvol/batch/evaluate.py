"""One subject of a cohort run: its manifest plan in, its :class:`SubjectResult` out (with its
QC picture drawn when asked). A subject that cannot be evaluated is a failed result with the
error, never an exception: one bad subject must never stop the cohort."""

from __future__ import annotations

import time
from pathlib import Path

from ..cohort.manifest import SubjectPlan
from ..errors import CnsvolError
from ..pipeline import evaluate_series
from ..report.names import safe_filename
from ..response.evaluation import SeriesResult
from ..response.subject import SubjectResult
from .config import RunConfig

__all__ = ["evaluate_subject", "timed_evaluation"]


class _PlanError(CnsvolError):
    """A subject the manifest already says cannot be run (message shown verbatim)."""


def evaluate_subject(plan: SubjectPlan, config: RunConfig | None = None,
                     qc_dir: Path | None = None) -> SubjectResult:
    """Evaluate one subject; data errors become a failed result, never an exception.

    With ``qc_dir`` (and ``config.qc``), its QC picture is drawn there; a picture that cannot
    be drawn is a note on the result, never a lost result.
    """
    config = config if config is not None else RunConfig()
    try:
        if plan.error:
            raise _PlanError(plan.error)
        if len(plan.scans) < 2:
            raise _PlanError(
                f"only {len(plan.scans)} scan(s) in the manifest: a response needs a baseline "
                "and a follow-up. Fix: add the follow-up scan's row, or leave the subject out"
            )
        series = evaluate_series(
            [s.mask for s in plan.scans],
            [s.days_from_baseline for s in plan.scans],
            timepoints=[s.timepoint for s in plan.scans],
            clinical=[s.clinical for s in plan.scans],
            criteria=config.criteria,
            options=config.options,
            radiotherapy_end_days=plan.radiotherapy_end_days,
        )
    except Exception as exc:  # noqa: BLE001 - one bad subject must never stop the cohort
        kind = "" if isinstance(exc, (CnsvolError, OSError, ValueError)) else "unexpected "
        message = str(exc) if isinstance(exc, _PlanError) else f"{kind}{type(exc).__name__}: {exc}"
        return SubjectResult.failed(plan.subject_id, len(plan.scans), message)
    notes: tuple[str, ...] = ()
    if config.qc and qc_dir is not None:
        note = _draw_qc(plan, series, qc_dir)
        notes = (note,) if note else ()
    return SubjectResult.from_series(plan.subject_id, series, notes)


def _draw_qc(plan: SubjectPlan, series: SeriesResult, qc_dir: Path) -> str:
    """Draw the subject's QC picture; returns a note when it could not be drawn."""
    from ..report.qc import qc_picture

    try:
        qc_picture(series, [s.image_path for s in plan.scans],
                   qc_dir / safe_filename(plan.subject_id), title=plan.subject_id)
    except Exception as exc:  # noqa: BLE001 - a picture must not discard the subject's numbers
        return f"QC picture not drawn: {type(exc).__name__}: {exc}"
    return ""


def timed_evaluation(plan: SubjectPlan, config: RunConfig,
                     qc_dir: Path | None) -> tuple[SubjectResult, float]:
    """:func:`evaluate_subject` and the seconds it took."""
    start = time.perf_counter()
    result = evaluate_subject(plan, config, qc_dir)
    return result, time.perf_counter() - start
