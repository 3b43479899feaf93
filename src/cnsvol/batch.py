"""Cohort runs: a manifest in, one results folder out (see docs/outputs.md for every file).

Each subject is evaluated on its own (tracking + series); subjects run in parallel in local
processes (``jobs``, default the number of cores; ``jobs=1`` runs in this process). A subject
that fails is kept, with ``status = failed`` and its error, and the others go on. Every file is
written atomically, and rows are sorted, so the folder does not depend on ``jobs`` or on the
order of manifest rows. The clock is read only for the timestamps in ``provenance.json``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .clinical import PfsTable, join_ids
from .criteria import Criteria
from .errors import CnsvolError
from .lesions import LESION_COLUMNS
from .manifest import SubjectPlan
from .response import MeasureOptions, evaluate_series
from .tables import atomic_write_text, csv_rows, write_csv

__all__ = [
    "RunConfig",
    "RunSummary",
    "SUBJECT_COLUMNS",
    "SubjectOutcome",
    "evaluate_subject",
    "run_cohort",
]

SUBJECT_COLUMNS = [
    "subject_id", "status", "error", "n_timepoints", "arm", "best_response",
    "best_percent_change", "responder_20pct", "objective_response", "time_to_response_days",
    "time_to_responder_20pct_days", "progression_days", "first_followup_days",
    "baseline_total_volume_mm3", "baseline_target_volume_mm3", "new_lesions", "has_pfs",
    "pfs_days", "pfs_event",
]
TIMEPOINT_COLUMNS = [
    "subject_id", "timepoint", "days_from_baseline", "path", "lesion_count", "total_volume_mm3",
    "target_volume_mm3", "percent_change_vs_baseline", "percent_change_vs_nadir", "new_lesions",
    "equivocal_new_lesions", "category", "confirmed", "confirmed_category",
    "within_measurement_error", "min_detectable_change_mm3", "volumetric_only",
    "resampled_for_matching", "reason_code", "reason",
]
TRACK_COLUMNS = [
    "subject_id", "track_id", "timepoint", "days_from_baseline", "lesion_ids", "status",
    "volume_mm3", "percent_change_vs_baseline", "within_measurement_error", "is_target",
]
LESION_TABLE_COLUMNS = ["subject_id", "timepoint", *LESION_COLUMNS]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a subject's result (and nothing that does not)."""

    criteria: Criteria
    options: MeasureOptions = field(default_factory=MeasureOptions)
    qc: bool = True


@dataclass(frozen=True)
class SubjectOutcome:
    """One subject's result: its ``subjects.csv`` row (completed with PFS by the run) and its
    rows of the other tables, already rendered as CSV text (so that the work is done where
    the subject is evaluated, and the run only concatenates)."""

    subject_id: str
    status: str
    error: str
    subject: dict[str, Any]
    tables: dict[str, str]  # "timepoints" / "tracks" / "lesions" -> CSV rows, no header
    seconds: float


@dataclass(frozen=True)
class RunSummary:
    out_dir: Path
    n_subjects: int
    n_failed: int
    failed: dict[str, str]
    ids_without_pfs: list[str]
    ids_without_masks: list[str]
    files: dict[str, Path]


def evaluate_subject(plan: SubjectPlan, config: RunConfig, qc_dir: Path | None) -> SubjectOutcome:
    """Evaluate one subject; data errors become a failed outcome, never an exception."""
    start = time.perf_counter()
    base = {"subject_id": plan.subject_id, "n_timepoints": len(plan.scans)}
    try:
        if plan.error:
            raise CnsvolError(plan.error)
        if len(plan.scans) < 2:
            raise CnsvolError(
                f"only {len(plan.scans)} scan(s): a response needs a baseline and a follow-up"
            )
        series = evaluate_series(
            [str(s.mask_path) for s in plan.scans],
            [s.days_from_baseline for s in plan.scans],
            timepoints=[s.timepoint for s in plan.scans],
            clinical=[s.clinical for s in plan.scans],
            criteria=config.criteria,
            options=config.options,
        )
    except Exception as exc:  # one bad subject must never stop the cohort
        kind = "" if isinstance(exc, (CnsvolError, OSError, ValueError)) else "unexpected "
        message = f"{kind}{type(exc).__name__}: {exc}"
        subject = {**base, "status": "failed", "error": message}
        return SubjectOutcome(plan.subject_id, "failed", message, subject, _EMPTY_TABLES,
                              time.perf_counter() - start)
    qc_error = ""
    if config.qc and qc_dir is not None:
        from .figures import qc_picture
        from .report import safe_filename

        try:  # a picture that cannot be drawn must not discard the subject's numbers
            qc_picture(
                series, [s.image_path for s in plan.scans],
                qc_dir / safe_filename(plan.subject_id), title=plan.subject_id,
            )
        except Exception as exc:
            qc_error = f"QC picture not drawn: {type(exc).__name__}: {exc}"
    sid = plan.subject_id
    tps = [{"subject_id": sid, **t.to_dict()} for t in series.timepoints]
    trs = []
    for r in series.tracks:
        row = {"subject_id": sid, **r.to_dict()}
        row["lesion_ids"] = " ".join(map(str, r.lesion_ids))
        trs.append(row)
    les = [
        {"subject_id": sid, "timepoint": tp.timepoint, **lesion.to_row()}
        for tp, ls in zip(series.timepoints, series.lesion_sets)
        for lesion in ls.lesions
    ]
    s = series.subject
    subject = {
        **base,
        "status": "ok",
        "error": qc_error,
        **{k: v for k, v in s.to_dict().items() if k != "reason"},
        "baseline_total_volume_mm3": series.timepoints[0].total_volume_mm3,
        "baseline_target_volume_mm3": series.timepoints[0].target_volume_mm3,
        "new_lesions": sum(t.new_lesions for t in series.timepoints),
    }
    tables = {
        "timepoints": csv_rows(tps, TIMEPOINT_COLUMNS),
        "tracks": csv_rows(trs, TRACK_COLUMNS),
        "lesions": csv_rows(les, LESION_TABLE_COLUMNS),
    }
    return SubjectOutcome(sid, "ok", "", subject, tables, time.perf_counter() - start)


_EMPTY_TABLES = {"timepoints": "", "tracks": "", "lesions": ""}


def run_cohort(
    plans: Sequence[SubjectPlan],
    out_dir: str | Path,
    config: RunConfig,
    *,
    pfs: PfsTable | None = None,
    landmark_days: float | None = None,
    jobs: int | None = None,
    inputs: Sequence[Path] = (),
    parameters: dict[str, Any] | None = None,
    progress: Callable[[SubjectOutcome, int, int], None] | None = None,
) -> RunSummary:
    """Evaluate every subject and write the results folder.

    ``inputs`` are extra files to hash into provenance (manifest, PFS table, criteria file);
    ``parameters`` are recorded verbatim; ``progress(outcome, done, total)`` is called as each
    subject finishes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    qc_dir = out / "figures" / "qc" if config.qc else None
    started = _dt.datetime.now(_dt.timezone.utc)
    outcomes = _run_all(plans, config, qc_dir, jobs, progress)

    pfs_by_id = {}
    if pfs is not None:
        pfs_by_id = {r["subject_id"]: r for r in pfs.frame.to_dict("records")}  # type: ignore[attr-defined]
    subjects = []
    for o in outcomes:
        row = dict(o.subject)
        rec = pfs_by_id.get(o.subject_id)
        row["has_pfs"] = rec is not None
        if rec is not None:
            row.update(pfs_days=rec["pfs_days"], pfs_event=rec["pfs_event"], arm=rec["arm"])
        subjects.append(row)
    ids = [o.subject_id for o in outcomes]
    without_pfs, without_masks = join_ids(ids, pfs_by_id) if pfs is not None else ([], [])

    files = {
        "subjects": out / "subjects.csv",
        "timepoints": out / "timepoints.csv",
        "tracks": out / "tracks.csv",
        "lesions": out / "lesions.csv",
        "cohort": out / "cohort.json",
        "provenance": out / "provenance.json",
    }
    write_csv(files["subjects"], subjects, SUBJECT_COLUMNS)
    for name, columns in (("timepoints", TIMEPOINT_COLUMNS), ("tracks", TRACK_COLUMNS),
                          ("lesions", LESION_TABLE_COLUMNS)):
        atomic_write_text(files[name],
                          csv_rows([], columns, header=True) + "".join(o.tables[name] for o in outcomes))

    import pandas as pd

    from .stats import cohort_statistics

    frame = pd.DataFrame(subjects, columns=SUBJECT_COLUMNS)
    cohort = cohort_statistics(
        frame,
        criteria_name=config.criteria.name,
        landmark_days=landmark_days,
        ids_without_pfs=without_pfs if pfs is not None else (),
        ids_without_masks=without_masks,
    )
    if pfs is None:
        cohort["pfs"] = None
    cohort["pfs_table"] = None if pfs is None else {"path": str(pfs.path), "notes": list(pfs.notes)}
    atomic_write_text(files["cohort"], _json(cohort))

    failed = {o.subject_id: o.error for o in outcomes if o.status != "ok"}
    hashed = sorted({*map(Path, inputs), *(p for plan in plans for p in plan.inputs)})
    provenance = {
        "cnsvol_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": _library_versions(),
        "command": parameters.get("command") if parameters else None,
        "parameters": parameters or {},
        "criteria": config.criteria.to_dict(),
        "measure_options": _options_dict(config.options),
        "landmark_days": landmark_days,
        "inputs": {str(p): _sha256(p) for p in hashed},
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "subject_errors": failed,
        "subject_seconds": {o.subject_id: round(o.seconds, 3) for o in outcomes},
    }
    atomic_write_text(files["provenance"], _json(provenance))

    from .report import build_report, write_cohort_figures

    write_cohort_figures(out)
    files["report"] = build_report(out)
    return RunSummary(out, len(outcomes), len(failed), failed, without_pfs, without_masks, files)


def _run_all(
    plans: Sequence[SubjectPlan],
    config: RunConfig,
    qc_dir: Path | None,
    jobs: int | None,
    progress: Callable[[SubjectOutcome, int, int], None] | None,
) -> list[SubjectOutcome]:
    jobs = jobs or os.cpu_count() or 1
    results: dict[str, SubjectOutcome] = {}
    total = len(plans)
    if jobs == 1 or total <= 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            for plan in plans:
                o = evaluate_subject(plan, config, qc_dir)
                results[plan.subject_id] = o
                if progress:
                    progress(o, len(results), total)
    else:
        workers = min(jobs, total)
        # a few subjects per task: one round trip per subject costs more than a small
        # subject's work; still many tasks per worker so that the load stays balanced
        size = max(1, min(8, total // (workers * 16)))
        chunks = [plans[i:i + size] for i in range(0, total, size)]
        with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
            futures = {pool.submit(_evaluate_chunk, c, config, qc_dir): c for c in chunks}
            # the workers now exist (forked at the first submit); while they compute, this
            # otherwise idle process loads what the end of the run needs
            warm = threading.Thread(target=_warm_up, name="cnsvol-warm-up", daemon=True)
            warm.start()
            for fut in as_completed(futures):
                try:
                    done = fut.result()
                except Exception as exc:  # a worker died (e.g. killed for memory)
                    msg = f"worker failed: {type(exc).__name__}: {exc}"
                    done = [SubjectOutcome(
                        plan.subject_id, "failed", msg,
                        {"subject_id": plan.subject_id, "n_timepoints": len(plan.scans),
                         "status": "failed", "error": msg}, _EMPTY_TABLES, 0.0,
                    ) for plan in futures[fut]]
                for o in done:
                    results[o.subject_id] = o
                    if progress:
                        progress(o, len(results), total)
    return [results[k] for k in sorted(results)]


def _warm_up() -> None:
    """Import the statistics and figure modules and draw one tiny figure (matplotlib's first
    draw loads its fonts). Best effort: a failure here shows up, with its message, where the
    modules are used."""
    try:
        from . import report, stats  # noqa: F401
        from .figures import warm_up

        warm_up()
    except Exception:  # noqa: BLE001
        pass


def _evaluate_chunk(plans: Sequence[SubjectPlan], config: RunConfig,
                    qc_dir: Path | None) -> list[SubjectOutcome]:
    return [evaluate_subject(p, config, qc_dir) for p in plans]


def _one_thread() -> None:
    """Worker set-up: one BLAS/OpenMP thread per process. Subjects are the parallel unit;
    nested thread pools on top of the processes oversubscribe the cores (measured: 2 workers
    were no faster than 1 with OpenBLAS's default threads)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("numpy", "nibabel", "SimpleITK", "scikit-image", "scipy", "pandas",
                 "statsmodels", "matplotlib", "connected-components-3d"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _options_dict(o: MeasureOptions) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in o.__dict__.items()}


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=False, default=_default) + "\n"


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
