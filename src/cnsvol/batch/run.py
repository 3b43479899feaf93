"""Cohort runs: a manifest in, one results folder out (see docs/outputs.md for every file).

Each subject is evaluated on its own (:func:`~cnsvol.batch.evaluate.evaluate_subject`), on an
executor (this process, local worker processes, or Dask), and its typed result is stored as
soon as it is known (:mod:`.store`); a re-run computes only the subjects whose inputs or
parameters changed. A subject that fails is kept, with ``status = failed`` and its error, and
the others go on. Every file is written atomically and rows are sorted, so the folder does not
depend on the executor or on the order of manifest rows. The folder is locked for the run
(:mod:`.lock`). The run process holds no per-subject result beyond its id, key and status: the
tables are streamed from the store, and the statistics read the subjects table back. The final
outputs are staged and moved into place together (:func:`.outputs.commit_outputs`); a subject
runs under the time and memory limits of :mod:`.limits`; SIGTERM/SIGINT stop the workers
(:mod:`.signals`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from ..atomic import remove_partial_writes
from ..errors import ResultsError
from ..cohort.manifest import Manifest, SubjectPlan, read_manifest
from ..cohort.pfs_table import PfsTable, read_pfs
from ..response.criteria import Criteria
from ..response.subject import SubjectResult
from ..results.schema import SCHEMAS
from .config import RunConfig
from .evaluate import (
    check_labels_in_cohort, check_segments_in_cohort, timed_evaluation, worth_retrying,
)
from .executors import Executor, make_executor, worker_died
from .limits import available_memory, worker_memory
from .lock import FolderLock
from .outputs import (
    STAGING_DIR, commit_outputs, draw_figures_and_report, mark_incomplete, stage_qc_pictures,
    write_cohort_json, write_json, write_tables,
)
from .provenance import RunRecord, provenance, utc_now
from .runlog import RunLog
from .signals import RunInterrupted, check_interrupted, interruptible
from .store import STORE_DIR, FileHasher, ResultStore, subject_key

__all__ = ["RunSummary", "SubjectDone", "run_cohort"]

Progress = Callable[["SubjectDone", int, int], None]


@dataclass(frozen=True)
class SubjectDone:
    """What a progress callback is told as each subject's result becomes known."""

    subject_id: str
    status: str
    error: str
    seconds: float | None  # None: the result was already stored (resumed run)


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


def run_cohort(
    manifest: str | Path | Manifest | Sequence[SubjectPlan],
    out_dir: str | Path,
    config: RunConfig | str | Path | Criteria | None = None,
    *,
    pfs: PfsTable | str | Path | None = None,
    landmark_days: float | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    executor: Executor | None = None,
    force: bool = False,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
) -> RunSummary:
    """Evaluate every subject and write the results folder ``out_dir``.

    Args:
        manifest: a manifest file (read with :func:`cnsvol.read_manifest`; read it yourself
            for ``skip_missing=True``), a :class:`Manifest`, or a sequence of
            :class:`SubjectPlan`.
        config: a :class:`RunConfig`, or criteria for a default one (a preset name, a TOML
            file, a :class:`Criteria`); default lin2009.
        pfs: a PFS table (a file read with :func:`cnsvol.read_pfs` defaults, or a
            :class:`PfsTable` read with your column names and time unit).
        landmark_days: landmark of the PFS analysis (default: median first follow-up day).
        jobs, scheduler, dask_local: where subjects run (:func:`~.executors.make_executor`),
            unless ``executor`` is given.
        force: recompute every subject, even those stored by an earlier run.
        progress: called as ``progress(done, n_done, total)`` as each result becomes known.
        command: the command line to record (``cnsvol run`` gives its own); by default the
            call itself is recorded.

    The run records its provenance (every input hashed, the criteria, every parameter, the
    call) and appends to ``run.log``. Raises :class:`~cnsvol.errors.FolderLockedError` when
    another run holds the folder.
    """
    config = config if isinstance(config, RunConfig) else (
        RunConfig() if config is None else RunConfig(criteria=config))
    plans = _manifest(manifest)
    check_segments_in_cohort(plans, config)
    check_labels_in_cohort(plans, config)
    pfs_table = read_pfs(pfs) if isinstance(pfs, (str, Path)) else pfs
    with interruptible():
        own = executor is None
        executor = executor if executor is not None else make_executor(
            jobs, scheduler, dask_local, no_worker_seconds=config.limits.no_worker_seconds)
        try:
            config = _memory_share(config, executor)
            parameters = _parameters(plans, out_dir, config, pfs_table, landmark_days, jobs,
                                     scheduler, dask_local, force)
            return _locked_run(plans, Path(out_dir), config, pfs_table, landmark_days, executor,
                               force, progress, command, parameters)
        finally:
            if own:
                executor.close()


def _locked_run(plans: Manifest, out: Path, config: RunConfig, pfs: PfsTable | None,
                landmark_days: float | None, executor: Executor, force: bool,
                progress: Progress | None, command: Sequence[str] | None,
                parameters: dict[str, Any]) -> RunSummary:
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out}: --out / out_dir is a file, not a folder. Fix: give the "
                           "folder to write the results into (it is created if needed)")
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "cnsvol run"):
        return _run(plans, out, config, pfs, landmark_days, executor, force, progress,
                    list(command) if command is not None else _call(parameters), parameters)


def _memory_share(config: RunConfig, executor: Executor) -> RunConfig:
    """With local workers that could not all use ``--max-gib`` at once, each gets its share of
    the available memory as its limit (a Dask cluster's workers have their own limits)."""
    if executor.name == "dask" or config.limits.memory_bytes is not None:
        return config
    share = worker_memory(config.options.max_bytes, executor.workers, available_memory())
    if share is None:
        return config
    return replace(config, limits=replace(config.limits, memory_bytes=share))


def _manifest(manifest: Any) -> Manifest:
    if isinstance(manifest, Manifest):
        return manifest
    if isinstance(manifest, (str, Path)):
        return read_manifest(manifest)
    return Manifest(None, tuple(manifest))


def _parameters(plans: Manifest, out_dir: str | Path, config: RunConfig, pfs: PfsTable | None,
                landmark_days: float | None, jobs: int | None, scheduler: str | None,
                dask_local: int | None, force: bool) -> dict[str, Any]:
    """Every parameter of the run, as recorded in provenance (the same from Python and from
    the command line)."""
    return {
        "manifest": None if plans.path is None else str(plans.path),
        "out_dir": str(Path(out_dir).resolve()),
        **config.to_dict(),
        "pfs": None if pfs is None else {"path": str(Path(pfs.path).resolve()),
                                         "time_unit": pfs.time_unit, **pfs.columns,
                                         "tolerance_days": pfs.tolerance_days},
        "landmark_days": landmark_days,
        "jobs": jobs, "scheduler": scheduler, "dask_local": dask_local,
        "force": force, "skip_missing": plans.skip_missing,
    }


def _call(parameters: dict[str, Any]) -> list[str]:
    """The library call, as the command of a run started from Python: the function, then each
    parameter given as ``name=value``."""
    given = {k: v for k, v in parameters.items() if v not in (None, False)}
    return ["cnsvol.run_cohort", *(f"{k}={v}" for k, v in given.items())]


@dataclass
class _Tally:
    """What the run keeps per subject while it runs: whether it failed, and how long it took."""

    total: int
    log: RunLog
    progress: Progress | None
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, result: SubjectResult, seconds: float | None) -> None:
        check_interrupted()  # a signal whose exception was swallowed on the way stops here
        self.done += 1
        if not result.ok:
            self.failed[result.subject_id] = result.error
        if seconds is not None:
            self.seconds[result.subject_id] = seconds
        self.log.subject(result, seconds)
        if self.progress:
            done = SubjectDone(result.subject_id, result.status,
                               result.subject_row()["error"], seconds)
            self.progress(done, self.done, self.total)


def _run(plans: Manifest, out: Path, config: RunConfig, pfs: PfsTable | None,
         landmark_days: float | None, executor: Executor, force: bool,
         progress: Progress | None, command: list[str],
         parameters: dict[str, Any]) -> RunSummary:
    for folder in (out, out / STORE_DIR, out / "figures", out / "figures" / "qc"):
        remove_partial_writes(folder)
    stage = out / STAGING_DIR
    shutil.rmtree(stage, ignore_errors=True)  # outputs of a run interrupted before its commit
    started = utc_now()
    hasher = FileHasher()
    fingerprint = config.fingerprint()
    keys = {plan.subject_id: subject_key(plan, fingerprint, hasher) for plan in plans}
    store = ResultStore(out)
    log = RunLog(out / "run.log")
    if config.limits.memory_bytes is not None:
        log.note(f"each of the {executor.workers} worker(s) may use "
                 f"{config.limits.memory_bytes / 1024**3:.2f} GiB (the memory available, shared; "
                 f"--max-gib is {config.options.max_bytes / 1024**3:.2f}): a subject needing "
                 "more fails saying so and is computed again by the next run")
    tally = None
    try:
        if (out / "provenance.json").is_file():  # the earlier outputs are about to change
            mark_incomplete(out, "a cnsvol run was updating this folder (its subject results "
                                 "and QC pictures) and did not finish; run the same command "
                                 "again")
        tally = _Tally(len(plans), log, progress)
        _evaluate_all(plans, keys, config, executor, store, force, tally)
        check_interrupted()
        log.note("writing the tables, statistics, figures and report")
        ids = sorted(keys)
        stage.mkdir()
        if config.qc:
            stage_qc_pictures(stage, store, [(sid, keys[sid]) for sid in ids])
        write_tables(stage, store, [(sid, keys[sid]) for sid in ids], pfs, executor)
        summary = write_cohort_json(stage, config.criteria.name, landmark_days, pfs)
        inputs = [f for plan in plans for s in plan.scans for f in (s.mask, s.image) if f]
        inputs += [str(Path(p).resolve()) for p in (plans.path, pfs.path if pfs else None,
                                                    config.criteria_file) if p]
        if summary.pfs is not None and summary.pfs.landmark is not None:
            landmark_days = summary.pfs.landmark.landmark_days  # the day used, given or not
        record = RunRecord(command, parameters, config, landmark_days, pfs,
                           executor.describe(), started, dict(sorted(tally.failed.items())),
                           tally.seconds, sorted(set(ids) - set(tally.seconds)))
        write_json(stage / "provenance.json", provenance(record, inputs, hasher))
        draw_figures_and_report(stage, executor)
        check_interrupted()
        commit_outputs(stage, out)
        store.prune(set(keys.values()))
    except RunInterrupted as exc:
        remove_partial_writes(out / STORE_DIR)  # files the stopped workers were writing
        shutil.rmtree(stage, ignore_errors=True)
        stored = sum(1 for key in set(keys.values()) if store.path(key).is_file())
        unlisted = stored - (tally.done if tally is not None else 0)
        if unlisted > 0:
            log.note(f"{unlisted} more subject result(s) were stored by the workers as the run "
                     "stopped; the next run lists them as stored")
        exc.kept = _kept(out, stored, len(plans))
        log.stopped(exc)
        raise
    except BaseException as exc:
        log.stopped(exc)
        raise
    finally:
        log.close()
    files = {name: out / table.filename for name, table in SCHEMAS.items()}
    files.update(cohort=out / "cohort.json", provenance=out / "provenance.json",
                 report=out / "report.html")
    return RunSummary(out, len(ids), len(tally.failed), record.subject_errors,
                      summary.ids_without_pfs, summary.ids_without_masks, files,
                      len(record.from_earlier_run))


def _kept(out: Path, stored: int, total: int) -> str:
    """What an interrupted run kept, in one sentence."""
    if stored >= total:
        return (f"all {total} subject result(s) are stored in {out}; run the same command "
                "again to write the tables and report")
    return (f"{stored} of {total} subject result(s) are stored in {out}; run the same command "
            "again to compute the rest and write the tables and report")


def _stored(key: str, store: ResultStore, qc: bool, force: bool) -> SubjectResult | None:
    """The subject's stored result, when it can be used as it is."""
    stored = None if force else store.load(key)
    if stored is None or stored.retry:  # retry: its worker died, worth another try
        return None
    if qc and stored.result.ok:
        picture = store.picture(key)
        if not picture.is_file() or picture.stat().st_size == 0:
            return None  # its QC picture is missing (or a power cut left it empty): draw it
    return stored.result


def _evaluate_all(plans: Manifest, keys: dict[str, str], config: RunConfig,
                  executor: Executor, store: ResultStore, force: bool, tally: _Tally) -> None:
    """Stored results where their key matches, the rest computed on ``executor``; workers
    store each result as soon as it is computed."""
    todo = []
    for plan in plans:
        result = _stored(keys[plan.subject_id], store, config.qc, force)
        if result is None:
            todo.append(plan)
        else:
            tally.add(result, None)
    tally.log.note(f"{len(plans)} subject(s): {len(plans) - len(todo)} from earlier runs, "
                   f"{len(todo)} to compute on {executor.describe()}")
    fn = partial(_evaluate_chunk, config=config, out_dir=store.out_dir)
    items = [(plan, keys[plan.subject_id]) for plan in todo]
    size = max(1, min(8, len(items) // (executor.workers * 16))) if executor.workers > 1 else 1
    chunks = [tuple(items[i:i + size]) for i in range(0, len(items), size)]
    warm = _WarmUp()
    on_started = warm.start if executor.workers > 1 else None
    for attempt in (1, 2):
        retry: list[tuple[tuple[SubjectPlan, str], ...]] = []
        for chunk, done, exc in executor.run(fn, chunks, on_started=on_started,
                                             isolate=attempt == 2):
            if exc is None:
                for result, took in done:
                    tally.add(result, took)
            elif not worker_died(exc):
                raise exc  # not the subject's fault (a full disk, say): the run stops, kept
            elif attempt == 1:  # a worker died: try each of its subjects again, on its own
                retry += [(item,) for item in chunk]
            else:
                for plan, key in chunk:
                    result = _worker_failure(plan, exc)
                    store.save(key, result, retry=True)
                    tally.add(result, 0.0)
        chunks, on_started = retry, None
        if not chunks:
            break
    warm.finish(tally.log)


def _worker_failure(plan: SubjectPlan, exc: BaseException) -> SubjectResult:
    msg = (f"worker failed: {type(exc).__name__}: {exc}. The process evaluating this subject "
           "died twice (out of memory, or a crash in a library); check its files and the "
           "memory available per worker (fewer --jobs)")
    return SubjectResult.failed(plan.subject_id, len(plan.scans), msg)


def _evaluate_chunk(items: Sequence[tuple[SubjectPlan, str]], config: RunConfig,
                    out_dir: Path) -> list[tuple[SubjectResult, float]]:
    """Evaluate and store each (plan, key), its QC picture beside its result; returns each
    result and its seconds."""
    store = ResultStore(out_dir)
    done = []
    for plan, key in items:
        stem = store.picture(key).with_suffix("") if config.qc else None
        result, seconds = timed_evaluation(plan, config, stem)
        # out of time or of this run's memory share: tried again by the next run
        store.save(key, result, retry=worth_retrying(result, config))
        done.append((result, seconds))
    return done


class _WarmUp:
    """While the workers compute, the run process loads the statistics and figure modules and
    draws one tiny figure (matplotlib's first draw loads its fonts). If that fails, the run
    says so in run.log and goes on: the figures load what they need when drawn, and report
    their own errors."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="cnsvol-warm-up", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _work(self) -> None:
        try:
            from ..cohort.stats import cohort  # noqa: F401
            from ..report import page  # noqa: F401
            from ..report.style import warm_up

            warm_up()
        except Exception as exc:  # noqa: BLE001 - recorded, and reported by finish()
            self.error = exc

    def finish(self, log: RunLog) -> None:
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join(timeout=120)  # never wait on it for good: the figures load
            check_interrupted()             # their modules themselves when drawn
        if self.error is not None:
            log.note(f"warm-up failed ({type(self.error).__name__}: {self.error}); the figures "
                     "load their modules when drawn")
