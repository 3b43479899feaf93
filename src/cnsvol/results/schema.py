"""The four output tables of a run, declared once: their columns in order, with dtype, unit and
meaning (:class:`cnsvol.columns.Column`). The CSV writer, the CSV reader, the DataFrames built
from results and ``docs/outputs.md`` all follow these declarations.

Each stage declares the columns of what it produces: the lesions
(:data:`cnsvol.lesions.LESION_COLUMNS`), the response per timepoint, track and subject
(:mod:`cnsvol.response.results`, :mod:`cnsvol.response.subject`) and the PFS join
(:mod:`cnsvol.cohort.join`); here they are put in table order.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cohort.join import ARM_COLUMN, PFS_COLUMNS
from ..columns import Column
from ..lesions.lesion import LESION_COLUMNS
from ..response.results import SUMMARY_COLUMNS, TIMEPOINT_COLUMNS, TRACK_COLUMNS
from ..response.subject import BASELINE_COLUMNS, SUBJECT_COLUMNS

__all__ = ["LESIONS", "SCHEMAS", "SUBJECTS", "TIMEPOINTS", "TRACKS", "TableSchema"]


@dataclass(frozen=True)
class TableSchema:
    """One output table: its name (the file is ``<name>.csv``) and its columns, in order."""

    name: str
    columns: tuple[Column, ...]
    row: str  # what one row is, for the documentation

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.columns}

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"

    def __post_init__(self) -> None:
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")


_SUBJECT_ID, _STATUS, _ERROR, _N_TIMEPOINTS = SUBJECT_COLUMNS
_TIMEPOINT = TIMEPOINT_COLUMNS[0]

SUBJECTS = TableSchema(
    "subjects",
    (_SUBJECT_ID, _STATUS, _ERROR, _N_TIMEPOINTS, ARM_COLUMN, *SUMMARY_COLUMNS,
     *BASELINE_COLUMNS, *PFS_COLUMNS),
    "subject of the manifest",
)
TIMEPOINTS = TableSchema("timepoints", (_SUBJECT_ID, *TIMEPOINT_COLUMNS),
                         "subject x timepoint (successful subjects)")
TRACKS = TableSchema("tracks", (_SUBJECT_ID, *TRACK_COLUMNS), "track x timepoint")
LESIONS = TableSchema("lesions", (_SUBJECT_ID, _TIMEPOINT, *LESION_COLUMNS),
                      "lesion x timepoint")

SCHEMAS: dict[str, TableSchema] = {t.name: t for t in (SUBJECTS, TIMEPOINTS, TRACKS, LESIONS)}
"""The output tables by name, in the order of ``docs/outputs.md``."""
