"""Typed inputs of the statistics: columns of a subjects table and arrays of times and events.

The statistics take typed values (``cnsvol.read_results`` gives the tables with their declared
dtypes): flags are booleans (``bool`` or pandas ``boolean``, missing as ``<NA>``), days are
numbers (missing as NaN). A column holding text is refused with the column's name, not parsed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "check_alpha",
    "event_array",
    "finite",
    "flag_column",
    "number_column",
    "ok_mask",
    "plain_number",
    "text_column",
    "time_array",
]

_HINT = "read the tables with cnsvol.read_results, which gives each column its declared dtype"


def finite(value: Any) -> float | None:
    """A Python float, or None for None/NaN/inf/pd.NA."""
    if value is None or value is pd.NA:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def plain_number(value: Any) -> int | float:
    """A day as given, as a Python int (integral input type) or float (JSON-serialisable)."""
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def flag_column(df: pd.DataFrame, column: str) -> pd.Series:
    """A column as a nullable boolean Series; an absent column is all missing."""
    if column not in df.columns:
        return pd.Series(pd.NA, index=df.index, dtype="boolean")
    col = df[column]
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.astype("boolean")
    values = col.tolist()
    if all(_missing(v) or isinstance(v, (bool, np.bool_)) for v in values):
        return pd.Series(pd.array([None if _missing(v) else bool(v) for v in values],
                                  dtype="boolean"), index=df.index)
    bad = next(v for v in values if not (_missing(v) or isinstance(v, (bool, np.bool_))))
    raise ValueError(f"column {column!r} holds {bad!r} ({col.dtype}): it must be a boolean "
                     f"column (True/False, missing as <NA>); {_HINT}")


def number_column(df: pd.DataFrame, column: str) -> pd.Series:
    """A column as float64 with NaN for missing; an absent column is all missing."""
    if column not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype="float64")
    col = df[column]
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        out = col.astype("float64")  # nullable Int64/Float64: <NA> becomes NaN
    else:
        values = col.tolist()
        bad = [v for v in values if not (_missing(v) or (isinstance(v, (int, float, np.number))
                                                        and not isinstance(v, bool)))]
        if bad:
            raise ValueError(f"column {column!r} holds {bad[0]!r} ({col.dtype}): it must be a "
                             f"numeric column (missing as NaN); {_HINT}")
        out = pd.Series([np.nan if _missing(v) else float(v) for v in values], index=df.index,
                        dtype="float64")
    if np.isinf(out.to_numpy()).any():
        raise ValueError(f"column {column!r} holds an infinite value")
    return out


def text_column(df: pd.DataFrame, column: str) -> pd.Series:
    """A column as text (object dtype) with None for missing; an absent column is all missing."""
    if column not in df.columns:
        return pd.Series([None] * len(df), index=df.index, dtype="object")
    values = [None if _missing(v) or v == "" else str(v) for v in df[column].tolist()]
    return pd.Series(values, index=df.index, dtype="object")


def ok_mask(df: pd.DataFrame) -> pd.Series:
    """Rows of successfully evaluated subjects (``status == "ok"``)."""
    return text_column(df, "status").map(lambda s: s == "ok").astype(bool)


def event_array(event: Iterable[Any]) -> np.ndarray:
    """Events as a bool array: booleans, or the numbers 0 and 1."""
    values = list(event)
    if any(_missing(v) for v in values):
        raise ValueError("event: missing values; drop subjects without an event flag first")
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind in "iuf" and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    raise ValueError(f"event: expected booleans (or 0/1), got {values[:5]!r}")


def time_array(time_days: Iterable[Any], name: str = "time_days") -> np.ndarray:
    times = np.asarray(list(time_days), dtype="float64")
    if times.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name}: missing or infinite values; drop those subjects first")
    if np.any(times < 0):
        raise ValueError(f"{name}: negative times ({times.min()}); times are days from origin")
    return times
