"""The join of the imaging results to the PFS records, and the ids only one side has.

A subject's row of ``subjects.csv`` gets ``has_pfs`` (whether the PFS table has it), and from
its PFS record ``pfs_days``, ``pfs_event`` and ``arm``. The join never drops anybody silently:
ids in the manifest without PFS data and ids in the PFS table without masks are returned so
they can be reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..columns import Column
from .pfs_table import PfsTable

__all__ = ["ARM_COLUMN", "PFS_COLUMNS", "join_ids", "pfs_columns"]

ARM_COLUMN = Column("arm", "string", None, "treatment arm (from the PFS table), empty when "
                    "unknown")
PFS_COLUMNS: tuple[Column, ...] = (
    Column("has_pfs", "boolean", None, "True when the subject is in the PFS table"),
    Column("pfs_days", "float64", "days", "progression-free survival time, in days (converted "
           "from --time-unit)"),
    Column("pfs_event", "boolean", None, "True = progressed or died, False = censored"),
)


def pfs_columns(records: dict[str, dict[str, Any]] | None, subject_id: str) -> dict[str, Any]:
    """The PFS columns (and ``arm``) of one subject; ``records`` from
    :meth:`PfsTable.records`, ``None`` when the run has no PFS table (``has_pfs`` False)."""
    rec = None if records is None else records.get(subject_id)
    if rec is None:
        return {"has_pfs": False}
    return {"has_pfs": True, **rec}


def join_ids(manifest_ids: Iterable[str], pfs: PfsTable | Iterable[str]) -> tuple[list[str], list[str]]:
    """(ids with masks but no PFS row, ids with a PFS row but no masks), both sorted."""
    m = set(manifest_ids)
    p = set(pfs.ids) if isinstance(pfs, PfsTable) else set(pfs)
    return sorted(m - p), sorted(p - m)
