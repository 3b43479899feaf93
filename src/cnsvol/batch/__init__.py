"""Cohort runs: executors (this process, local processes, Dask), the per-subject store that
makes runs resumable, the folder lock, provenance, ``run.log`` and the outputs.

* :mod:`.run`: :func:`run_cohort`, the whole job; :mod:`.config`: :class:`RunConfig`;
* :mod:`.evaluate`: :func:`evaluate_subject`, one subject's :class:`SubjectResult`;
* :mod:`.executors`: where subjects run; :mod:`.store`: stored results, keyed by inputs;
* :mod:`.outputs`: tables, statistics, figures and report; :mod:`.provenance`,
  :mod:`.runlog`: what the run was; :mod:`.lock`: one run at a time per folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .config import RunConfig  # noqa: F401
    from .evaluate import evaluate_subject  # noqa: F401
    from .executors import DaskNotInstalled, Executor, NoWorkers, make_executor  # noqa: F401
    from .limits import RunLimits, SubjectTimeout  # noqa: F401
    from .lock import FolderLock  # noqa: F401
    from .outputs import rebuild_report  # noqa: F401
    from .run import RunSummary, SubjectDone, run_cohort  # noqa: F401

_EXPORTS = {
    "DaskNotInstalled": "executors",
    "Executor": "executors",
    "FolderLock": "lock",
    "NoWorkers": "executors",
    "RunConfig": "config",
    "RunLimits": "limits",
    "SubjectTimeout": "limits",
    "RunSummary": "run",
    "SubjectDone": "run",
    "evaluate_subject": "evaluate",
    "make_executor": "executors",
    "rebuild_report": "outputs",
    "run_cohort": "run",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
