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
import io
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ..atomic import atomic_writer
from ..csvformat import safe_cell, unguard
from ..errors import ResultsError
from .schema import TableSchema

__all__ = ["header", "read_table", "render_rows", "table_writer", "write_table"]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        type(value).__name__ == "NAType")


def _cell(value: Any, dtype: str) -> Any:
    if _missing(value):
        return ""
    if dtype == "float64":
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"refusing to write a non-finite number ({x}) to a table")
        return repr(x)
    if dtype == "Int64":
        return str(int(value))
    if dtype == "boolean":
        return "True" if bool(value) else "False"
    return safe_cell(str(value))


def header(table: TableSchema) -> str:
    """The header line of ``table``'s CSV."""
    return render_rows(table, [], header=True)


def render_rows(table: TableSchema, rows: Iterable[Mapping[str, Any]], *,
                header: bool = False) -> str:
    """Rows (mappings; a missing key is a missing value) as CSV text in ``table``'s columns."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(table.names)
    spec = [(c.name, c.dtype) for c in table.columns]
    for row in rows:
        writer.writerow([_cell(row.get(name), dtype) for name, dtype in spec])
    return buf.getvalue()


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


def read_table(path: str | Path, table: TableSchema):  # -> pandas.DataFrame
    """``table``'s CSV at ``path`` as a DataFrame with the declared columns and dtypes."""
    import pandas as pd

    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            head = next(reader, None)
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsError(f"{path}: cannot read the {table.name} table ({exc}). Fix: rerun "
                           "cnsvol run to write it again") from None
    if head != table.names:
        raise ResultsError(
            f"{path}: the columns are not those of the {table.name} table (found "
            f"{', '.join(head or [])}; expected {', '.join(table.names)}). Fix: give a folder "
            "written by this version of cnsvol run, or rerun it")
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
