"""The CSV format of cnsvol's files: RFC 4180, UTF-8, ``\n`` line ends; missing values are
empty cells, never ``NaN`` or ``inf``; a text cell that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return, and not a number) is prefixed
with ``'``, and :func:`unguard` removes that prefix when the file is read back."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

__all__ = [
    "FORMULA_START", "csv_rows", "format_row", "plain_value", "safe_cell", "unguard", "write_csv",
]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell: ``None``/NaN-free, and never executable as a spreadsheet formula."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write a non-finite number ({value}) to a table")
        return repr(value)
    if isinstance(value, str) and (
        (value.startswith(FORMULA_START) and not _is_number(value))
        or (value.startswith("'") and value.lstrip("'").startswith(FORMULA_START))
    ):  # a text already starting with quotes before a formula character gets one more, so
        # that reading removes exactly one
        return "'" + value
    return value

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _is_number(text: str) -> bool:
    """A plain decimal number (ASCII digits, optional sign, point and exponent), which a
    spreadsheet reads as a number. ``float`` alone is too lenient here: it accepts
    ``1_000``, other scripts' digits and surrounding spaces."""
    return _NUMBER.fullmatch(text) is not None


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write rows (dicts; missing keys are empty cells) as CSV, atomically."""
    atomic_write_text(path, csv_rows(rows, columns, header=True))


def csv_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], *, header: bool = False) -> str:
    """Rows as CSV text (``header=True``: the column names first). Pieces rendered separately
    concatenate into the same bytes as one rendering of all rows."""
    lines = [format_row(columns)] if header else []
    lines += [format_row([safe_cell(plain_value(row.get(c))) for c in columns]) for row in rows]
    return "".join(lines)


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def format_row(cells: Sequence[Any]) -> str:
    """One CSV line (RFC 4180): a cell holding a comma, a quote, a carriage return or a line
    feed is quoted, its quotes doubled; a row of one empty cell is ``""`` (not a blank line).
    The same text as the standard library's writer with ``\\n`` line ends, except that a lone
    carriage return is quoted too (the standard writer leaves it bare, and readers then split
    the row there)."""
    out = []
    search = _NEEDS_QUOTES.search
    for cell in cells:
        text = cell if isinstance(cell, str) else "" if cell is None else str(cell)
        if text and search(text):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    if len(out) == 1 and out[0] == "":
        out[0] = '""'
    return ",".join(out) + "\n"


def plain_value(value: Any) -> Any:
    """A cell value as plain Python: numpy scalars unwrapped, NaN as None (an empty cell)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def unguard(text: str) -> str:
    """A cell as it was before :func:`safe_cell` guarded it against formula execution."""
    if len(text) > 1 and text[0] == "'" and text.lstrip("'").startswith(FORMULA_START):
        return text[1:]
    return text
