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
from ..response.subject import SubjectResult
from .executors import Executor, worker_died
from .store import ResultStore, json_value

__all__ = [
    "STAGING_DIR", "commit_outputs", "draw_figures_and_report", "mark_incomplete",
    "stage_qc_pictures", "rebuild_report",
    "write_cohort_json", "write_json", "write_tables",
]

STAGING_DIR = ".staging"
"""Where a run writes its final outputs before they are moved into the folder together."""


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
    render = partial(_render_chunk, store_dir=store.out_dir, transforms=out / TRANSFORMS_DIR)
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


TRANSFORMS_DIR = "transforms"
"""Where a run writes ``<subject>_<timepoint>.tfm``: each registration used for matching."""


def _render_chunk(chunk: tuple[int, Sequence[tuple[str, str]], dict[str, Any] | None],
                  store_dir: Path, transforms: Path | None = None) -> dict[str, str]:
    """The table rows of a chunk of subjects, as CSV text per table (see
    :func:`write_tables`); the subjects' transforms written in ``transforms``."""
    _, subjects, records = chunk
    store = ResultStore(store_dir)
    parts: dict[str, list[str]] = {name: [] for name in SCHEMAS}
    for _, key in subjects:
        stored = store.load(key)
        if stored is None:
            raise CnsvolError(f"stored result {store.path(key)} vanished during the run")
        for name, rows in subject_rows(stored.result, records).items():
            parts[name].append(render_rows(SCHEMAS[name], rows))
        if transforms is not None:
            write_transforms(stored.result, transforms)
    return {name: "".join(text) for name, text in parts.items()}


def write_transforms(result: SubjectResult, folder: Path) -> list[Path]:
    """``<subject>_<timepoint>.tfm`` for each timepoint of ``result`` matched through a
    registration (ITK convention: :mod:`cnsvol.tracking.registration`)."""
    import numpy as np

    from ..report.names import safe_filename
    from ..tracking.registration import write_transform

    written = []
    for tp in result.timepoints:
        if tp.registration_matrix_ras is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{safe_filename(result.subject_id)}_{safe_filename(tp.timepoint)}.tfm"
        write_transform(np.asarray(tp.registration_matrix_ras, dtype=np.float64).reshape(4, 4),
                        path)
        written.append(path)
    return written


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
    folder ``out`` read back with :func:`cnsvol.read_results` (a staging folder holds the QC
    pictures its report links to); returns the report's path. A figure whose worker died is
    drawn again in this process."""
    from ..report.figures import cohort_figure_tasks
    from ..report.page import write_report

    results = read_results(out)
    tasks = list(cohort_figure_tasks(results).values())
    if executor is None:
        for draw in tasks:
            draw()
    else:
        for draw, _, exc in executor.run(_call, tasks):
            if exc is not None:
                if not worker_died(exc):
                    raise exc
                draw()  # its worker died (killed, out of memory): drawn here instead
    return write_report(results)


def stage_qc_pictures(stage: Path, store: ResultStore,
                      subjects: Sequence[tuple[str, str]]) -> int:
    """Link the stored QC picture of each (id, store key) into ``stage/figures/qc`` as
    ``<id>.png`` (copied where the file system has no hard links); returns how many. They
    reach ``figures/qc`` with the other outputs in :func:`commit_outputs`."""
    import os
    import shutil

    from ..report.names import safe_filename

    qc = stage / "figures" / "qc"
    n = 0
    for sid, key in subjects:
        picture = store.picture(key)
        if not picture.is_file() or picture.stat().st_size == 0:
            continue
        qc.mkdir(parents=True, exist_ok=True)
        target = qc / (safe_filename(sid) + ".png")
        try:
            os.link(picture, target)
        except OSError:
            shutil.copyfile(picture, target)
        n += 1
    return n


FINAL_FILES = (*(table.filename for table in SCHEMAS.values()), "cohort.json",
               "pfs_reconciliation.csv", "report.html", "provenance.json")
"""The files of a results folder replaced as a unit by every run, beside ``figures/*.png|svg``
and ``figures/qc/*.png``."""


def commit_outputs(stage: Path, out: Path) -> None:
    """Move the complete outputs written in ``stage`` into ``out``, replacing the earlier
    ones, and remove the earlier outputs that this run did not write (a KM figure of a run
    without PFS data, say). ``provenance.json`` first says the folder is incomplete and is
    replaced, saying ``complete: true``, only after everything else is in place: a folder
    interrupted in between says so, and the next run writes it whole again."""
    import os
    import shutil

    staged = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
    if Path("provenance.json") not in staged:
        raise CnsvolError(f"{stage}: no provenance.json staged; nothing was moved")
    mark_incomplete(out, "a cnsvol run was replacing the outputs of this folder and did not "
                         "finish; run the same command again to write them whole")
    for rel in staged:
        if rel != Path("provenance.json"):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
    wanted = {str(rel) for rel in staged}
    stale = [out / name for name in FINAL_FILES if name not in wanted]
    for rel in ("figures", "figures/qc", TRANSFORMS_DIR):  # of withdrawn subjects too
        folder = out / rel
        if folder.is_dir():
            stale += [f for f in folder.iterdir() if f.suffix in (".png", ".svg", ".tfm")
                      and f.is_file() and f"{rel}/{f.name}" not in wanted]
    for path in stale:
        path.unlink(missing_ok=True)
    _sync_folder(out)
    os.replace(stage / "provenance.json", out / "provenance.json")
    _sync_folder(out)
    shutil.rmtree(stage, ignore_errors=True)


def mark_incomplete(out: Path, note: str) -> None:
    """Make ``out/provenance.json`` say ``complete: false`` (with ``note``) while a run changes
    the folder: its QC pictures during the subject phase, its outputs during the commit. A run
    stopped before its end leaves a folder that says so rather than one that looks finished."""
    write_json(out / "provenance.json", {"complete": False, "note": note})


def _sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the platform allows)."""
    import os

    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def rebuild_report(out_dir: str | Path) -> Path:
    """Redraw the cohort figures and ``report.html`` of the results folder ``out_dir`` from
    its tables (``cnsvol report``), holding the folder's lock; returns the report's path."""
    from .lock import LOCK_DIR, FolderLock

    if not (Path(out_dir) / LOCK_DIR).is_dir():
        read_results(out_dir)  # not a results folder: refused before anything is written
    with FolderLock(out_dir, "cnsvol report"):  # a run still writing it: named, refused
        read_results(out_dir)
        return draw_figures_and_report(Path(out_dir), None)
