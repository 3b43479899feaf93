"""The output tables built from typed results: rows per subject, and DataFrames.

:func:`subject_rows` gives one subject's rows of every table (its ``subjects`` row joined with
its PFS record); :func:`build_frames` the four tables of a set of subjects as DataFrames with
the declared dtypes, rows in subject order, exactly as a run writes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..cohort.join import pfs_columns
from ..cohort.pfs_table import PfsTable
from ..columns import frame
from ..response.subject import SubjectResult
from .schema import SCHEMAS

__all__ = ["build_frames", "subject_rows"]


def subject_rows(result: SubjectResult,
                 pfs_records: dict[str, dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    """``{table name: rows}`` of one subject; ``pfs_records`` from :meth:`PfsTable.records`
    (``None``: the run has no PFS table)."""
    return {
        "subjects": [{**result.subject_row(), **pfs_columns(pfs_records, result.subject_id)}],
        "timepoints": result.timepoint_rows(),
        "tracks": result.track_rows(),
        "lesions": result.lesion_rows(),
    }


def build_frames(results: Iterable[SubjectResult], pfs: PfsTable | None = None):
    """``{table name: DataFrame}`` of the four output tables of ``results`` (sorted by subject
    id), with the PFS columns joined from ``pfs``."""
    records = None if pfs is None else pfs.records()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SCHEMAS}
    for result in sorted(results, key=lambda r: r.subject_id):
        for name, part in subject_rows(result, records).items():
            rows[name] += part
    return {name: frame(rows[name], table.columns) for name, table in SCHEMAS.items()}
