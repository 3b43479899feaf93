"""``provenance.json``: what a run was (version, platform, libraries, the call and every
parameter, the criteria, the SHA-256 of every input file, the executor, when, per-subject
errors and seconds). Recorded by :func:`cnsvol.run_cohort` itself, from Python or from the
command line alike."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..cohort.pfs_table import PfsTable
from .config import RunConfig
from .store import FileHasher

__all__ = ["LIBRARIES", "RunRecord", "library_versions", "provenance", "utc_now"]

LIBRARIES = ("numpy", "scipy", "nibabel", "SimpleITK", "pandas", "statsmodels", "matplotlib",
             "openpyxl", "zlib-ng", "threadpoolctl", "filelock", "pyarrow", "dask", "distributed",
             "connected-components-3d", "scikit-image")


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(frozen=True)
class RunRecord:
    """What is known of a run when it is over, for its provenance."""

    command: list[str]
    parameters: dict[str, Any]
    config: RunConfig
    landmark_days: float | None
    pfs: PfsTable | None
    executor: str
    started: _dt.datetime
    subject_errors: dict[str, str]
    subject_seconds: dict[str, float]
    from_earlier_run: list[str]


def provenance(record: RunRecord, inputs: Iterable[str], hasher: FileHasher) -> dict[str, Any]:
    """The content of ``provenance.json`` (see ``docs/outputs.md``); ``inputs``: the paths of
    every input file (listed in path order)."""
    pfs = record.pfs
    return {
        "cnsvol_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": library_versions(),
        "command": record.command,
        "parameters": record.parameters,
        "criteria": record.config.criteria.to_dict(),
        "measure_options": record.config.options.to_dict(),
        "landmark_days": record.landmark_days,
        "pfs_table": None if pfs is None else {
            "path": str(pfs.path), "notes": list(pfs.notes), "set_aside": dict(pfs.set_aside),
        },
        "executor": record.executor,
        "inputs": {p: hasher(Path(p)) for p in sorted(set(inputs))},
        "started_at": record.started.isoformat(timespec="seconds"),
        "finished_at": utc_now().isoformat(timespec="seconds"),
        "subject_errors": record.subject_errors,
        "subject_seconds": {sid: round(s, 3) for sid, s in sorted(record.subject_seconds.items())},
        "subjects_from_earlier_run": record.from_earlier_run,
        # the last key, and true only in the file moved into place after every other output
        # (see cnsvol.batch.outputs.commit_outputs); a folder whose provenance.json says
        # false was interrupted while its outputs were being replaced
        "complete": True,
    }
