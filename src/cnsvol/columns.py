"""Declared table columns: name, dtype, unit and meaning.

Each pipeline stage declares the columns of the rows it produces next to the types that produce
them (:data:`cnsvol.lesions.LESION_COLUMNS`, the timepoint, track and subject columns of
:mod:`cnsvol.response.results`, the PFS columns of :mod:`cnsvol.cohort.join`);
:mod:`cnsvol.results.schema` assembles them into the four output tables. The same declaration
drives the DataFrames built from results, the CSV writer, the CSV reader and
``docs/outputs.md``.

Dtypes are pandas dtypes: ``"Int64"`` (nullable integer), ``"float64"`` (NaN when missing),
``"boolean"`` (nullable) and ``"string"`` (``<NA>`` when missing; an empty text is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DTYPES", "Column", "frame"]

DTYPES = ("Int64", "float64", "boolean", "string")


@dataclass(frozen=True)
class Column:
    """One column: ``unit`` is ``None`` for dimensionless values (counts, flags, text)."""

    name: str
    dtype: str
    unit: str | None
    description: str

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")


def frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]):  # -> pandas.DataFrame
    """A DataFrame of ``rows`` with exactly ``columns``, in order, each of its declared dtype
    (a key missing from a row is a missing value; so is an empty text)."""
    import pandas as pd

    rows = list(rows)
    data = {}
    for col in columns:
        values = [row.get(col.name) for row in rows]
        if col.dtype == "string":
            values = [None if v is None or v == "" else str(v) for v in values]
        elif col.dtype == "float64":
            values = [float("nan") if v is None else float(v) for v in values]
        data[col.name] = pd.array(values, dtype=col.dtype)
    return pd.DataFrame(data, columns=[c.name for c in columns])
