"""The files of a results folder once every subject is known: the four tables streamed from the
stored results in subject order, the cohort statistics computed from the subjects table read
back, provenance, the cohort figures (drawn on the run's executor) and the report."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from ..atomic import atomic_writer
from ..cohort.join import join_ids
from ..cohort.pfs_table import PfsTable
from ..cohort.stats.cohort import cohort_statistics
from ..cohort.stats.reconcile import DEFAULT_TOLERANCE_DAYS, RECONCILIATION_COLUMNS
from ..csvformat import write_csv
from ..cohort.stats.types import CohortSummary
from ..errors import CnsvolError
from ..results.csvtable import read_table, render_rows, table_writer
from ..results.folder import read_results
from ..results.frames import subject_rows
from ..results.schema import SCHEMAS, SUBJECTS
from .executors import Executor
from .store import ResultStore, json_value

__all__ = [
    "draw_figures_and_report", "rebuild_report", "write_cohort_json", "write_json", "write_tables",
]


def write_tables(out: Path, store: ResultStore, subjects: Sequence[tuple[str, str]],
                 pfs: PfsTable | None, executor: Executor | None = None) -> dict[str, Path]:
    """subjects/timepoints/tracks/lesions.csv from the stored results of ``subjects`` ((id,
    store key) pairs in subject order), joined with ``pfs``. The rows of a few subjects at a
    time are rendered on ``executor``'s workers (this process by default) and written in
    subject order as they come back: a bounded number of subjects in memory at once."""
    files = {name: out / table.filename for name, table in SCHEMAS.items()}
    records = None if pfs is None else pfs.records()
    chunks = []
    for i in range(0, len(subjects), _CHUNK):
        part = tuple(subjects[i:i + _CHUNK])
        mine = None if records is None else {s: records[s] for s, _ in part if s in records}
        chunks.append((len(chunks), part, mine))
    render = partial(_render_chunk, store_dir=store.out_dir)
    ready: dict[int, dict[str, str]] = {}
    done = 0
    with ExitStack() as stack:
        writers = {name: stack.enter_context(table_writer(files[name], table))
                   for name, table in SCHEMAS.items()}
        for chunk, texts, exc in (executor or Executor()).run(render, chunks):
            if exc is not None:  # a worker that died: the chunk is rendered here instead
                texts = render(chunk)
            ready[chunk[0]] = texts
            while done in ready:  # in subject order
                for name, text in ready.pop(done).items():
                    writers[name].write(text)
                done += 1
    return files


_CHUNK = 25  # subjects rendered per task


def _render_chunk(chunk: tuple[int, Sequence[tuple[str, str]], dict[str, Any] | None],
                  store_dir: Path) -> dict[str, str]:
    """The table rows of a chunk of subjects, as CSV text per table (see
    :func:`write_tables`)."""
    _, subjects, records = chunk
    store = ResultStore(store_dir)
    parts: dict[str, list[str]] = {name: [] for name in SCHEMAS}
    for _, key in subjects:
        stored = store.load(key)
        if stored is None:
            raise CnsvolError(f"stored result {store.path(key)} vanished during the run")
        for name, rows in subject_rows(stored.result, records).items():
            parts[name].append(render_rows(SCHEMAS[name], rows))
    return {name: "".join(text) for name, text in parts.items()}


def write_cohort_json(out: Path, criteria_name: str, landmark_days: float | None,
                      pfs: PfsTable | None) -> CohortSummary:
    """The cohort statistics of the subjects table written in ``out`` -> ``cohort.json``, and
    with PFS data the reconciliation of imaging with it -> ``pfs_reconciliation.csv``."""
    subjects = read_table(out / SUBJECTS.filename, SUBJECTS)
    ids = subjects["subject_id"].tolist()
    without_pfs, without_masks = join_ids(ids, pfs) if pfs is not None else ([], [])
    summary = cohort_statistics(
        subjects, criteria_name=criteria_name, landmark_days=landmark_days,
        ids_without_pfs=without_pfs, ids_without_masks=without_masks,
        pfs_table=None if pfs is None else {"path": str(pfs.path), "notes": list(pfs.notes)},
        pfs_tolerance_days=DEFAULT_TOLERANCE_DAYS if pfs is None else pfs.tolerance_days,
    )
    write_json(out / "cohort.json", summary.to_dict())
    reconciliation = out / RECONCILIATION_FILE
    if summary.pfs_imaging_discrepancies is not None:
        write_csv(reconciliation, summary.pfs_imaging_discrepancies, RECONCILIATION_COLUMNS)
    else:
        reconciliation.unlink(missing_ok=True)  # a run without PFS data leaves none behind
    return summary


RECONCILIATION_FILE = "pfs_reconciliation.csv"


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (no NaN), written atomically and in pieces."""
    with atomic_writer(path) as fh:
        json.dump(obj, fh, indent=2, allow_nan=False, default=json_value)
        fh.write("\n")


def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def draw_figures_and_report(out: Path, executor: Executor | None) -> Path:
    """The cohort figures (on ``executor``'s workers when given) and ``report.html``, from the
    folder read back with :func:`cnsvol.read_results`; returns the report's path."""
    from ..report.figures import cohort_figure_tasks
    from ..report.page import write_report

    results = read_results(out)
    tasks = cohort_figure_tasks(results).values()
    if executor is None:
        for draw in tasks:
            draw()
    else:
        for _, _, exc in executor.run(_call, tasks):
            if exc is not None:
                raise exc
    return write_report(results)


def rebuild_report(out_dir: str | Path) -> Path:
    """Redraw the cohort figures and ``report.html`` of the results folder ``out_dir`` from
    its tables (``cnsvol report``), holding the folder's lock; returns the report's path."""
    from .lock import FolderLock

    read_results(out_dir)  # a folder that is not a results folder is refused before any write
    with FolderLock(out_dir, "cnsvol report"):
        return draw_figures_and_report(Path(out_dir), None)
