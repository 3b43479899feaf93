"""Cohort runs: a manifest in, one results folder out (see docs/outputs.md for every file).

Each subject is evaluated on its own (tracking + series); subjects run in parallel in local
processes (``jobs``, default the number of cores; ``jobs=1`` runs in this process). A subject
that fails is kept, with ``status = failed`` and its error, and the others go on. Every file is
written atomically, and rows are sorted, so the folder does not depend on ``jobs`` or on the
order of manifest rows. The clock is read only for the timestamps in ``provenance.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .._version import __version__
from ..cohort.pfs import PfsTable, join_ids
from ..response.criteria import Criteria
from ..errors import CnsvolError
from ..lesions.lesion import LESION_COLUMNS
from ..cohort.manifest import SubjectPlan
from ..pipeline import MeasureOptions, evaluate_series
from .executors import Executor, make_executor
from ..report.html import safe_filename
from .store import STORE_DIR, FileHasher, ResultStore, dumps, json_value, subject_key
from ..cohort.tabular import atomic_write_text, atomic_writer, csv_rows, plain_value, write_csv

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
LESION_TABLE_COLUMNS = ["subject_id", "timepoint", *(c.name for c in LESION_COLUMNS)]


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
    n_from_earlier_run: int = 0


def evaluate_subject(plan: SubjectPlan, config: RunConfig, qc_dir: Path | None) -> SubjectOutcome:
    """Evaluate one subject; data errors become a failed outcome, never an exception."""
    start = time.perf_counter()
    base = {"subject_id": plan.subject_id, "n_timepoints": len(plan.scans)}
    try:
        if plan.error:
            raise _PlanError(plan.error)
        if len(plan.scans) < 2:
            raise _PlanError(
                f"only {len(plan.scans)} scan(s) in the manifest: a response needs a baseline "
                "and a follow-up. Fix: add the follow-up scan's row, or leave the subject out"
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
        message = str(exc) if isinstance(exc, _PlanError) else f"{kind}{type(exc).__name__}: {exc}"
        subject = {**base, "status": "failed", "error": message}
        return SubjectOutcome(plan.subject_id, "failed", message, subject, _EMPTY_TABLES,
                              time.perf_counter() - start)
    qc_error = ""
    if config.qc and qc_dir is not None:
        from ..report.figures import qc_picture
        from ..report.html import safe_filename

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


class _PlanError(CnsvolError):
    """A subject the manifest already says cannot be run (message shown verbatim)."""


@dataclass(frozen=True)
class SubjectDone:
    """What a progress callback is told as each subject's result becomes known."""

    subject_id: str
    status: str
    error: str
    seconds: float | None  # None: the result was already stored (resumed run)


def run_cohort(
    plans: Sequence[SubjectPlan],
    out_dir: str | Path,
    config: RunConfig,
    *,
    pfs: PfsTable | None = None,
    landmark_days: float | None = None,
    jobs: int | None = None,
    executor: Executor | None = None,
    force: bool = False,
    inputs: Sequence[Path] = (),
    parameters: dict[str, Any] | None = None,
    progress: Callable[[SubjectDone, int, int], None] | None = None,
) -> RunSummary:
    """Evaluate every subject and write the results folder.

    Subjects run on ``executor`` (default: ``jobs`` local processes, see
    :func:`cnsvol.executors.make_executor`). Each subject's result is stored in the folder as
    soon as it is known (:mod:`cnsvol.store`); a re-run of the same command computes only the
    subjects whose inputs or parameters changed or that have no stored result (``force``:
    all of them). ``inputs`` are extra files to hash into provenance (manifest, PFS table,
    criteria file); ``parameters`` are recorded verbatim; ``progress(done, n_done, total)``
    is called as each subject's result becomes known. ``run.log`` in the folder gets one line
    per subject.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_partial_writes(out)
    qc_dir = out / "figures" / "qc" if config.qc else None
    started = _dt.datetime.now(_dt.timezone.utc)
    hasher = FileHasher()
    fingerprint = dumps({"version": __version__, "criteria": config.criteria.to_dict(),
                         "options": _options_dict(config.options), "qc": config.qc})
    keys = {plan.subject_id: subject_key(plan, fingerprint, hasher) for plan in plans}
    store = ResultStore(out)
    own_executor = executor is None
    executor = executor if executor is not None else make_executor(jobs)
    log = _RunLog(out / "run.log")
    try:
        results, seconds = _evaluate_all(plans, config, qc_dir, executor, store, keys, force,
                                         log, progress)
        return _finish(out, plans, config, pfs, landmark_days, inputs, parameters, started,
                       hasher, keys, store, executor, results, seconds)
    finally:
        if own_executor:
            executor.close()
        log.close()


def _finish(out, plans, config, pfs, landmark_days, inputs, parameters, started, hasher, keys,
            store, executor, results, seconds) -> RunSummary:
    """Tables, statistics, provenance, figures (drawn on the executor's workers) and report."""

    pfs_by_id = {}
    if pfs is not None:
        pfs_by_id = {r["subject_id"]: r for r in pfs.frame.to_dict("records")}  # type: ignore[attr-defined]
    ids = sorted(results)
    subjects = []
    for sid in ids:
        row = dict(results[sid]["subject"])
        rec = pfs_by_id.get(sid)
        row["has_pfs"] = rec is not None
        if rec is not None:
            row.update(pfs_days=rec["pfs_days"], pfs_event=rec["pfs_event"], arm=rec["arm"])
        subjects.append(row)
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
    _write_tables(files, store, [keys[sid] for sid in ids])
    store.prune(set(keys.values()))

    import pandas as pd

    from ..cohort.stats import cohort_statistics

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
    pfs_record = None if pfs is None else {
        "path": str(pfs.path), "notes": list(pfs.notes),
        "set_aside": dict(pfs.set_aside),
    }
    atomic_write_text(files["cohort"], _json(cohort))

    failed = {sid: results[sid]["error"] for sid in ids if results[sid]["status"] != "ok"}
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
        "pfs_table": pfs_record,
        "executor": executor.describe(),
        "inputs": {str(p): hasher(p) for p in hashed},
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "subject_errors": failed,
        "subject_seconds": {sid: round(seconds[sid], 3) for sid in sorted(seconds)},
        "subjects_from_earlier_run": sorted(set(ids) - set(seconds)),
    }
    atomic_write_text(files["provenance"], _json(provenance))

    from ..report.html import build_report, cohort_figure_tasks

    for _, _, exc in executor.run(_call, cohort_figure_tasks(out).values()):
        if exc is not None:
            raise exc
    files["report"] = build_report(out)
    return RunSummary(out, len(ids), len(failed), failed, without_pfs, without_masks, files,
                      len(ids) - len(seconds))


def _evaluate_all(plans, config, qc_dir, executor, store, keys, force, log, progress):
    """Stored results where their key matches, the rest computed on ``executor``; every
    result stored as it arrives. Returns ({id: record}, {id: seconds of those computed})."""
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    total = len(plans)
    todo = []
    for plan in plans:
        rec = None if force else store.load(keys[plan.subject_id])
        if rec is not None and rec.get("retry"):
            rec = None  # its worker died: worth another try
        if rec is not None and qc_dir is not None and rec["status"] == "ok":
            if not (qc_dir / (safe_filename(plan.subject_id) + ".png")).is_file():
                rec = None  # its QC picture is missing: draw it again
        if rec is None:
            todo.append(plan)
            continue
        results[plan.subject_id] = _slim(rec)
        log.subject(rec, None)
        if progress:
            progress(SubjectDone(plan.subject_id, rec["status"], rec["error"], None),
                     len(results), total)
    log.note(f"{total} subject(s): {total - len(todo)} from earlier runs, {len(todo)} to "
             f"compute on {executor.describe()}")

    def accept(rec: dict[str, Any], took: float) -> None:
        results[rec["subject_id"]] = rec
        seconds[rec["subject_id"]] = took
        log.subject(rec, took)
        if progress:
            progress(SubjectDone(rec["subject_id"], rec["status"], rec["error"], took),
                     len(results), total)

    # workers store each result themselves, as soon as it is computed, and send back only
    # its subjects.csv part
    fn = partial(_evaluate_chunk, config=config, qc_dir=qc_dir, out_dir=store.out_dir)
    items = [(plan, keys[plan.subject_id]) for plan in todo]
    size = max(1, min(8, len(items) // (executor.workers * 16))) if executor.workers > 1 else 1
    chunks = [tuple(items[i:i + size]) for i in range(0, len(items), size)]
    warm = threading.Thread(target=_warm_up, name="cnsvol-warm-up", daemon=True)
    on_started = warm.start if executor.workers > 1 else None
    for attempt in (1, 2):
        retry = []
        for chunk, done, exc in executor.run(fn, chunks, on_started=on_started,
                                             isolate=attempt == 2):
            if exc is None:
                for rec, took in done:
                    accept(rec, took)
            elif attempt == 1:  # a worker died: try each of its subjects again, on its own
                retry += [(item,) for item in chunk]
            else:
                for plan, key in chunk:
                    accept(_store_outcome(store, key, _worker_failure(plan, exc), retry=True), 0.0)
        chunks, on_started = retry, None
        if not chunks:
            break
    if warm.is_alive():
        warm.join()
    return results, seconds


def _worker_failure(plan: SubjectPlan, exc: BaseException) -> SubjectOutcome:
    msg = (f"worker failed: {type(exc).__name__}: {exc}. The process evaluating this subject "
           "died twice (out of memory, or a crash in a library); check its files and the "
           "memory available per worker (fewer --jobs)")
    return SubjectOutcome(plan.subject_id, "failed", msg,
                          {"subject_id": plan.subject_id, "n_timepoints": len(plan.scans),
                           "status": "failed", "error": msg}, _EMPTY_TABLES, 0.0)


def _slim(record: dict[str, Any]) -> dict[str, Any]:
    """What the run keeps in memory per subject (the table rows stay on disk)."""
    return {k: record[k] for k in ("subject_id", "status", "error", "subject")}


def _write_tables(files: dict[str, Path], store: ResultStore, keys: list[str]) -> None:
    """timepoints/tracks/lesions.csv from the stored results, streamed in subject order."""
    names = {"timepoints": TIMEPOINT_COLUMNS, "tracks": TRACK_COLUMNS,
             "lesions": LESION_TABLE_COLUMNS}
    with ExitStack() as stack:
        writers = {n: stack.enter_context(atomic_writer(files[n])) for n in names}
        for n, columns in names.items():
            writers[n].write(csv_rows([], columns, header=True))
        for key in keys:
            rec = store.load(key)
            if rec is None:
                raise CnsvolError(f"stored result {store.path(key)} vanished during the run")
            for n in names:
                writers[n].write(rec["tables"][n])


def _remove_partial_writes(out: Path) -> None:
    """Temporary files of atomic writes that a killed run left behind."""
    for folder in (out, out / STORE_DIR, out / "figures", out / "figures" / "qc"):
        if folder.is_dir():
            for entry in folder.glob(".*.tmp"):
                entry.unlink(missing_ok=True)


class _RunLog:
    """``run.log``: a line per subject (status, seconds or 'stored'), appended as results
    arrive; earlier runs' lines are kept, so an interrupted and resumed run reads as such."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.note("run started")

    def _write(self, text: str) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._fh.write(f"{stamp}\t{text}\n")
        self._fh.flush()

    def note(self, text: str) -> None:
        self._write(text)

    def subject(self, rec: dict[str, Any], seconds: float | None) -> None:
        took = "stored" if seconds is None else f"{seconds:.3f}s"
        error = rec["error"].replace("\n", " ")
        self._write(f"{rec['subject_id']}\t{rec['status']}\t{took}\t{error}".rstrip())

    def close(self) -> None:
        if not self._fh.closed:
            self.note("run ended")
            self._fh.close()


def _warm_up() -> None:
    """Import the statistics and figure modules and draw one tiny figure (matplotlib's first
    draw loads its fonts), while the workers compute. Best effort: a failure here shows up,
    with its message, where the modules are used."""
    try:
        from ..report import html as _html
        from ..cohort import stats as _stats  # noqa: F401
        from ..report.figures import warm_up

        warm_up()
    except Exception:  # noqa: BLE001
        pass


def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def _evaluate_chunk(items: Sequence[tuple[SubjectPlan, str]], config: RunConfig,
                    qc_dir: Path | None, out_dir: Path) -> list[tuple[dict[str, Any], float]]:
    """Evaluate and store each (plan, key); returns each result's in-memory part and seconds."""
    store = ResultStore(out_dir)
    done = []
    for plan, key in items:
        o = evaluate_subject(plan, config, qc_dir)
        done.append((_store_outcome(store, key, o), o.seconds))
    return done


def _store_outcome(store: ResultStore, key: str, o: SubjectOutcome,
                   retry: bool = False) -> dict[str, Any]:
    """Store a subject's result; returns what the run keeps of it in memory."""
    record = {
        "subject_id": o.subject_id, "status": o.status, "error": o.error,
        "subject": {k: plain_value(v) for k, v in o.subject.items()}, "tables": o.tables,
    }
    if retry:
        record["retry"] = True  # its worker died: the next run tries it again
    return _slim(store.save(key, record))


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
    return json.dumps(obj, indent=2, allow_nan=False, default=json_value) + "\n"
