"""One subject of a cohort run: its manifest plan in, its :class:`SubjectResult` out (with its
QC picture drawn when asked). A subject that cannot be evaluated is a failed result with the
error, never an exception: one bad subject must never stop the cohort."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..cohort.manifest import SubjectPlan
from ..errors import CnsvolError, ManifestError
from ..io.read import read_mask
from ..pipeline import evaluate_series
from ..report.names import safe_filename
from ..response.evaluation import SeriesResult
from ..response.subject import SubjectResult
from .config import RunConfig
from .limits import SubjectTimeout, time_limit

__all__ = [
    "TIMED_OUT", "check_labels_in_cohort", "check_segments_in_cohort", "evaluate_subject",
    "timed_evaluation", "worth_retrying",
]

TIMED_OUT = "timed out: "  # how the error of a subject stopped by the time limit begins


class _PlanError(CnsvolError):
    """A subject the manifest already says cannot be run (message shown verbatim)."""


def evaluate_subject(plan: SubjectPlan, config: RunConfig | None = None,
                     qc_dir: Path | None = None) -> SubjectResult:
    """Evaluate one subject; data errors become a failed result, never an exception.

    With ``qc_dir`` (and ``config.qc``), its QC picture is drawn there, named after the
    subject; a picture that cannot be drawn is a note on the result, never a lost result.
    """
    stem = None if qc_dir is None else Path(qc_dir) / safe_filename(plan.subject_id)
    return _evaluate(plan, config, stem)


def _evaluate(plan: SubjectPlan, config: RunConfig | None,
              qc_stem: Path | None) -> SubjectResult:
    """:func:`evaluate_subject`, its QC picture drawn to ``<qc_stem>.png``."""
    config = config if config is not None else RunConfig()
    options = config.options
    if config.limits.memory_bytes is not None and config.limits.memory_bytes < options.max_bytes:
        options = replace(options, max_bytes=config.limits.memory_bytes)
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
            options=options,
            radiotherapy_end_days=plan.radiotherapy_end_days,
            images=[s.image_path for s in plan.scans],
        )
        _check_labels_found(series, config)
    except SubjectTimeout:
        raise  # reported by timed_evaluation, the one place the limit is set
    except Exception as exc:  # noqa: BLE001 - one bad subject must never stop the cohort
        kind = "" if isinstance(exc, (CnsvolError, OSError, ValueError)) else "unexpected "
        message = str(exc) if isinstance(exc, _PlanError) else f"{kind}{type(exc).__name__}: {exc}"
        return SubjectResult.failed(plan.subject_id, len(plan.scans), message)
    notes: tuple[str, ...] = ()
    if config.qc and qc_stem is not None:
        note = _draw_qc(plan, series, qc_stem, options.max_bytes)
        notes = (note,) if note else ()
    return SubjectResult.from_series(plan.subject_id, series, notes)


def _check_labels_found(series: SeriesResult, config: RunConfig) -> None:
    """A subject none of whose masks holds a label asked for fails, naming the labels found (a
    label gone at a follow-up is a response, and fine)."""
    found = [ls.mask.labels_found for ls in series.lesion_sets]
    if config.options.labels is None or any(f is None for f in found):
        return
    present = sorted({v for f in found for v in (f or ())})
    raise _PlanError(
        f"none of its {len(found)} masks holds the labels {config.options.labels} (labels "
        f"found: {', '.join(map(str, present)) or 'none'}). Fix: check --labels against the "
        "masks' label convention"
    )


def check_labels_in_cohort(plans: Sequence[SubjectPlan], config: RunConfig) -> None:
    """Refuse, before any work, a run whose ``--labels`` no mask holds: masks are read one by
    one until one holds a label asked for (the first, in a right run); masks that cannot be
    read are left to their subject's evaluation."""
    labels = config.options.labels
    if labels is None or config.options.compartments is not None:
        return
    present: set[int] = set()
    checked = 0
    for plan in plans:
        if plan.error:
            continue
        for scan in plan.scans:
            try:
                mask = read_mask(scan.mask, labels=labels, threshold=config.options.threshold,
                                 max_bytes=config.options.max_bytes,
                                 mask_kind=config.options.mask_kind,
                                 allow_large_lesions=config.options.allow_large_lesions,
                                 segments=config.options.segments, reference=scan.image_path,
                                 rasterisation=config.options.rasterisation)
            except (CnsvolError, OSError, ValueError):
                continue
            checked += 1
            if mask.labels_found is None:
                return
            present.update(mask.labels_found)
    if checked:
        raise ManifestError(
            f"--labels {labels}: none of the {checked} masks of the manifest holds these labels "
            f"(labels found: {', '.join(map(str, sorted(present))) or 'none'}). Fix: give the "
            "labels of the masks' convention (e.g. --labels brats-mets-et for BraTS-METS "
            "enhancing tumour), or leave --labels out to measure every label"
        )


def check_segments_in_cohort(plans: Sequence[SubjectPlan], config: RunConfig) -> None:
    """Refuse, before any work, a run whose ``--segments``/``--roi`` no mask can answer: a
    manifest without a DICOM SEG or RTSTRUCT mask, or whose DICOM masks (their headers, read
    until one matches) hold no segment the selection names."""
    from ..io.dicom import segment_listing
    from ..io.segments import listing, parse_segments, selected

    segments = parse_segments(config.options.segments)
    if segments is None:
        return
    masks = [Path(s.mask) for p in plans if not p.error for s in p.scans]
    names: dict[tuple[int, str, str], None] = {}
    dicom = 0
    for path in masks:
        try:
            found = segment_listing(path) if path.exists() else None
        except (CnsvolError, OSError, ValueError):
            continue  # left to its subject's evaluation
        if found is None:
            continue
        dicom += 1
        if selected(found, None, segments):
            return
        names.update(dict.fromkeys(found))
    which = ",".join(segments)
    if not dicom:
        raise ManifestError(
            f"--segments/--roi {which}: none of the {len(masks)} masks of the manifest is a "
            "DICOM SEG or RTSTRUCT (segments are chosen by name in those only). Fix: choose "
            "the labels of NIfTI/NRRD/MHA masks with --labels, or leave --segments out"
        )
    raise ManifestError(
        f"--segments/--roi {which}: no segment of the {dicom} DICOM masks of the manifest "
        f"matches (segments found: {listing(list(names)[:20])}"
        f"{' ...' if len(names) > 20 else ''}). Fix: give segment numbers or name patterns "
        "of these masks (patterns match without case, e.g. 'GTV*')"
    )


def _draw_qc(plan: SubjectPlan, series: SeriesResult, stem: Path, max_bytes: int) -> str:
    """Draw the subject's QC picture (its images read under ``max_bytes``, like its masks);
    returns a note when it could not be drawn, or shows a mask where an image was given."""
    from ..report.qc import qc_picture

    shown: list[str] = []
    try:
        qc_picture(series, [s.image_path for s in plan.scans],
                   stem, title=plan.subject_id,
                   max_bytes=max_bytes, notes=shown)
    except SubjectTimeout:
        raise  # the subject's time is up: it fails (timed_evaluation), picture or not
    except Exception as exc:  # noqa: BLE001 - a picture must not discard the subject's numbers
        return f"QC picture not drawn: {type(exc).__name__}: {exc}"
    return ("QC picture: " + "; ".join(shown)) if shown else ""


def worth_retrying(result: SubjectResult, config: RunConfig) -> bool:
    """Whether a failed result may succeed in another run with the same inputs: stopped by
    the time limit, or refused by a memory limit this run lowered for its number of workers
    (store it for the record, but compute it again next time)."""
    if result.ok:
        return False
    lowered = config.limits.memory_bytes is not None and \
        config.limits.memory_bytes < config.options.max_bytes
    return result.error.startswith(TIMED_OUT) or (lowered and "MaskTooLargeError" in result.error)


def timed_evaluation(plan: SubjectPlan, config: RunConfig,
                     qc_stem: Path | None) -> tuple[SubjectResult, float]:
    """:func:`evaluate_subject` within the run's per-subject time limit
    (``config.limits.subject_seconds``), its QC picture drawn to ``<qc_stem>.png``, and the
    seconds it took; a subject that runs out of time is a failed result saying so."""
    start = time.perf_counter()
    try:
        with time_limit(config.limits.subject_seconds):
            result = _evaluate(plan, config, qc_stem)
    except SubjectTimeout as exc:
        result = SubjectResult.failed(plan.subject_id, len(plan.scans), f"{TIMED_OUT}{exc}")
    return result, time.perf_counter() - start
