"""The output tables as CSV, both ways, by their declared schema (:mod:`.schema`).

Writing (:func:`render_rows`, :func:`write_table`): cells by the column's dtype: ``float64`` as
the shortest text that reads back as the same float (``repr``), ``Int64`` as an integer,
``boolean`` as ``True``/``False``, ``string`` as text guarded against spreadsheet formulas
(:mod:`cnsvol.csvformat`); a missing value is an empty cell. Rows rendered separately
concatenate into the bytes of one rendering of all rows, so a run can stream them.

Reading (:func:`read_table`): each column back to its dtype, exactly (floats through Python's
``float``, correctly rounded), formula guards removed, empty cells missing. A cell that does
not parse as its column's dtype is an error naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ..atomic import atomic_writer
from ..csvformat import FORMULA_START, format_row, safe_cell, unguard
from ..errors import ResultsError
from .schema import TableSchema

__all__ = ["header", "read_table", "render_rows", "table_writer", "write_table"]


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA (``pd.NA``, ``pd.NaT``)."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return type(value).__name__ in ("NAType", "NaTType")


def _float(value: Any) -> str:
    if _missing(value):
        return ""
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"refusing to write a non-finite number ({x}) to a table")
    return repr(x)


def _int(value: Any) -> str:
    return "" if _missing(value) else str(int(value))


def _bool(value: Any) -> str:
    return "" if _missing(value) else ("True" if value else "False")


def _text(value: Any) -> str:
    return "" if _missing(value) else safe_cell(str(value))


_RENDER: dict[str, Callable[[Any], str]] = {
    "float64": _float, "Int64": _int, "boolean": _bool, "string": _text,
}


def header(table: TableSchema) -> str:
    """The header line of ``table``'s CSV."""
    return render_rows(table, [], header=True)


def render_rows(table: TableSchema, rows: Iterable[Mapping[str, Any]], *,
                header: bool = False) -> str:
    """Rows (mappings; a missing key is a missing value) as CSV text in ``table``'s columns."""
    lines = [format_row(table.names)] if header else []
    spec = [(c.name, _RENDER[c.dtype]) for c in table.columns]
    lines += [format_row([render(row.get(name)) for name, render in spec]) for row in rows]
    return "".join(lines)


@contextmanager
def table_writer(path: str | Path, table: TableSchema) -> Iterator[TextIO]:
    """A file for ``table``'s CSV that appears at ``path`` whole or not at all, its header
    written; write rows into it with :func:`render_rows`."""
    with atomic_writer(path) as fh:
        fh.write(header(table))
        yield fh


def write_table(path: str | Path, table: TableSchema, rows: Any) -> None:
    """Write ``rows`` (mappings, or a DataFrame) as ``table``'s CSV, atomically."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict("records")
    with table_writer(path, table) as fh:
        fh.write(render_rows(table, rows))


_BOOLEAN = {"True": True, "False": False}


def read_table(path: str | Path, table: TableSchema,
               columns: Sequence[str] | None = None):  # -> pandas.DataFrame
    """``table``'s CSV at ``path`` as a DataFrame with the declared columns and dtypes
    (``columns``: only those, in table order).

    Parsed by pandas' C reader, one typed column at a time (floats correctly rounded); a file
    that it cannot parse as the declared dtypes is read again cell by cell, so that the error
    names the row and the column.
    """
    import pandas as pd

    path = Path(path)
    _check_header(path, table)
    names = table.names if columns is None else [n for n in table.names if n in set(columns)]
    unknown = set(columns or ()) - set(table.names)
    if unknown:
        raise ValueError(f"the {table.name} table has no column(s) {', '.join(sorted(unknown))}")
    precision = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    try:
        with pd.read_csv(path, dtype={n: table.dtypes[n] for n in names}, usecols=names,
                         keep_default_na=False, na_values=[""], encoding="utf-8", engine="c",
                         chunksize=_CHUNK_ROWS, **precision) as chunks:
            frame = pd.concat(list(chunks), ignore_index=True)
    except (ValueError, TypeError, OverflowError):
        frame = _read_by_cells(path, table)
    else:
        for col in table.columns:
            if col.dtype == "string" and col.name in frame:
                frame[col.name] = _unguard_column(frame[col.name])
    return frame[names]


_CHUNK_ROWS = 4096  # rows parsed at a time: the parser's buffers stay small for any cohort


def _unguard_column(values):  # pandas Series of dtype "string"
    guarded = (values.str.startswith("'", na=False)
               & values.str.lstrip("'").str[:1].isin(FORMULA_START))
    if guarded.any():
        values = values.copy()
        values[guarded] = values[guarded].str[1:]
    return values


def _check_header(path: Path, table: TableSchema) -> None:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            head = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsError(f"{path}: cannot read the {table.name} table ({exc}). Fix: rerun "
                           "cnsvol run to write it again") from None
    if head != table.names:
        raise ResultsError(
            f"{path}: the columns are not those of the {table.name} table (found "
            f"{', '.join(head or [])}; expected {', '.join(table.names)}). Fix: give a folder "
            "written by this version of cnsvol run, or rerun it")


def _read_by_cells(path: Path, table: TableSchema):  # -> pandas.DataFrame
    import pandas as pd

    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsError(f"{path}: cannot read the {table.name} table ({exc}). Fix: rerun "
                           "cnsvol run to write it again") from None
    data = {}
    for j, col in enumerate(table.columns):
        cells = [r[j] if j < len(r) else "" for r in records]
        data[col.name] = pd.array(_parse_column(cells, col.dtype, path, col.name),
                                  dtype=col.dtype)
    return pd.DataFrame(data, columns=table.names)


def _parse_column(cells: list[str], dtype: str, path: Path, name: str) -> list[Any]:
    out: list[Any] = []
    for i, text in enumerate(cells):
        try:
            out.append(_parse(text, dtype))
        except (ValueError, KeyError):
            raise ResultsError(
                f"{path}: row {i + 2}, column {name}: {text!r} is not a {dtype} value. Fix: "
                "rerun cnsvol run to write the table again") from None
    return out


def _parse(text: str, dtype: str) -> Any:
    if text == "":
        return float("nan") if dtype == "float64" else None
    if dtype == "float64":
        return float(text)
    if dtype == "Int64":
        return int(text)
    if dtype == "boolean":
        return _BOOLEAN[text]
    return unguard(text)
