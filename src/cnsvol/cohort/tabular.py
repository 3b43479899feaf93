"""Reading tabular inputs (manifests, PFS tables): CSV, TSV, Excel (.xlsx) or Parquet.

:func:`read_table` gives every cell as text (so ``007`` stays ``007``) with surrounding spaces
removed, UTF-8 with or without a byte-order mark; a file in another encoding is an error that
names the first bad byte, its line and the fix. With ``undecodable="mark"`` only the header row
must be UTF-8: a byte that is not UTF-8 in a data cell is kept as a marker character (see
:func:`undecodable_bytes` and :func:`show_undecodable`), so that the caller can set aside the
rows concerned and keep the others.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

__all__ = ["DECIMAL_COMMA_HINT", "looks_like_decimal_comma", "read_table", "show_undecodable",
           "undecodable_bytes"]


def read_table(
    path: str | Path, what: str, error: type[Exception], *, undecodable: str = "error",
    delimiter: str | None = None, decimal: str = ".", numeric: tuple[str, ...] = (),
):  # -> pandas.DataFrame
    """Read a table with every cell as a Python string (object dtype; empty cells as ``""``),
    stripped of surrounding whitespace.

    ``what`` names the table in messages ("manifest", "PFS table"); ``error`` is the exception
    class raised (with the file name, the problem and the fix). ``undecodable``: ``"error"``
    refuses a CSV/TSV that is not UTF-8; ``"mark"`` refuses it only when the header row is not
    UTF-8, and otherwise keeps each non-UTF-8 byte of a data cell as a marker character.

    A CSV's delimiter (comma, semicolon or tab) is detected from its first lines unless
    ``delimiter`` is given; a header holding more than one of them is refused, naming the
    options. With ``decimal=","`` the cells of the ``numeric`` columns written with a decimal
    comma (``409,5``; quoted in a comma-separated file) read as ``409.5``.
    """
    if decimal not in (".", ","):
        raise ValueError(f"decimal must be '.' or ',', not {decimal!r}")
    if undecodable not in ("error", "mark"):
        raise ValueError(f"undecodable must be 'error' or 'mark', not {undecodable!r}")
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found (or not a file). Fix: check the path")
    name = path.name.lower()
    try:
        if name.endswith((".xlsx", ".xlsm")):
            frame = pd.read_excel(path, dtype=object, keep_default_na=False, engine="openpyxl")
        elif name.endswith(".parquet"):
            try:
                frame = pd.read_parquet(path)
            except ImportError:
                raise error(
                    f"{path}: reading Parquet needs pyarrow. Fix: pip install pyarrow "
                    "(or save the table as CSV)"
                ) from None
            frame = frame.astype(object).where(frame.notna(), "")
        else:
            raw = path.read_bytes()
            text = _decode(raw, path, what, error, undecodable)
            sep = delimiter or ("\t" if name.endswith((".tsv", ".tab"))
                                else _sniff(text, path, what, error))
            frame = _csv_frame(text, sep)
            if delimiter and len(frame.columns) == 1:
                others = [d for d in _DELIMITERS if d != sep and d in str(frame.columns[0])]
                if others:
                    raise error(
                        f"{path}: with --delimiter {sep!r} the {what} has one column, "
                        f"{str(frame.columns[0])[:80]!r}, that holds "
                        f"{' and '.join(_DELIMITERS[d] + 's' for d in others)}. Fix: give its "
                        "delimiter, or leave --delimiter out to detect it")
            bad_header = [str(c) for c in frame.columns if undecodable_bytes(str(c))]
            if bad_header:
                start = _first_bad_byte(raw)
                names = ", ".join(repr(show_undecodable(c)) for c in bad_header)
                found = (
                    "it starts with a UTF-16/32 byte-order mark"
                    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or "\x00" in names
                    else f"column name(s) {names[:200]}"
                )
                raise error(
                    f"{path}: the header row of the {what} is not valid UTF-8 (byte "
                    f"{raw[start]:#04x} at {_where(raw, start)}; {found}). "
                    "Fix: save it as UTF-8 CSV"
                )
    except error:
        raise
    except Exception as exc:  # pandas/openpyxl raise many parser errors; all mean "unreadable"
        raise error(
            f"{path}: cannot read the {what} ({type(exc).__name__}: {exc}). Fix: save it as CSV, "
            "TSV, .xlsx or Parquet with one header row"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if name.endswith((".xlsx", ".xlsm", ".parquet")):  # CSV/TSV cells are stripped as read
        frame = frame.apply(lambda col: col.map(lambda v: str(v).strip()).astype(object))
    if decimal == ",":
        for col in numeric:
            if col in frame.columns:
                frame[col] = frame[col].map(_decimal_comma).astype(object)
    return frame


_COMMA_NUMBER = re.compile(r"[+-]?[0-9]*,[0-9]+(?:[eE][+-]?[0-9]+)?")


def _decimal_comma(cell: str) -> str:
    """``409,5`` -> ``409.5``; any other text as it is."""
    return cell.replace(",", ".") if _COMMA_NUMBER.fullmatch(cell) else cell


DECIMAL_COMMA_HINT = " (a decimal comma? give --decimal ,)"


def looks_like_decimal_comma(cell: str) -> bool:
    """A number written with a decimal comma (for the hint of a non-numeric message)."""
    return bool(_COMMA_NUMBER.fullmatch(cell.strip()))


def _csv_frame(text: str, sep: str):  # -> pandas.DataFrame
    """A delimited text table as a DataFrame of stripped Python strings (RFC 4180 quoting; a
    short row is padded with empty cells; a row longer than the header is an error)."""
    import csv

    import pandas as pd

    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        raise ValueError("no header row")
    header, body = rows[0], [r for r in rows[1:] if r]
    width = len(header)
    for n, row in enumerate(body, start=2):
        if len(row) > width:
            raise ValueError(f"row {n} has {len(row)} cells but the header has {width}")
    columns = {}
    for j, name in enumerate(header):
        columns[j] = pd.Series([r[j].strip() if j < len(r) else "" for r in body], dtype=object)
    frame = pd.DataFrame(columns)
    frame.columns = header
    return frame


# Bytes 0x80-0xFF that are not part of valid UTF-8 are kept, in "mark" mode, as the last 128
# code points of the supplementary private use area B (U+10FF80-U+10FFFF): valid characters
# that pandas and pyarrow carry like any other, and that a UTF-8 table decoded normally can only
# hold if written there on purpose (such a file is refused rather than misread).
_MARK_BASE = 0x10FF00
_MARKS = {0xDC00 + b: chr(_MARK_BASE + b) for b in range(0x80, 0x100)}


def _decode(raw: bytes, path: Path, what: str, error: type[Exception], undecodable: str) -> str:
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    body = raw[bom:]
    nul = raw.find(b"\x00")
    if nul >= 0:  # valid UTF-8, but never in a text table: UTF-16/32 or a binary file
        raise error(
            f"{path}: {what} holds a NUL byte at {_where(raw, nul)}: it is not a UTF-8 text "
            "table (a UTF-16 or binary file?). Fix: save it as UTF-8 CSV"
        )
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = bom + exc.start
        message = (
            f"{path}: {what} is not valid UTF-8 (byte {raw[start]:#04x} at "
            f"{_where(raw, start)}). Fix: save it as UTF-8 CSV"
        )
        if undecodable == "error":
            raise error(message) from None
    text = body.decode("utf-8", errors="surrogateescape")
    if any(map(_is_mark, text)):
        raise error(message)  # the file already holds the marker characters: refuse it whole
    return text.translate(_MARKS)


def _first_bad_byte(raw: bytes) -> int:
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        return bom + exc.start
    return 0


def _where(raw: bytes, offset: int) -> str:
    """``offset 37 (line 2)``: where a byte is, for a person looking at the file."""
    line = raw.count(b"\n", 0, offset) + 1
    return f"offset {offset} (line {line})"


def _is_mark(c: str) -> bool:
    return _MARK_BASE + 0x80 <= ord(c) <= _MARK_BASE + 0xFF


def undecodable_bytes(text: str) -> bytes:
    """The non-UTF-8 bytes kept as markers in a cell read with ``undecodable="mark"``."""
    return bytes(ord(c) - _MARK_BASE for c in text if _is_mark(c))


def show_undecodable(text: str) -> str:
    """A marked cell for display and as an identifier: each non-UTF-8 byte written ``\\xNN``."""
    return "".join(f"\\x{ord(c) - _MARK_BASE:02x}" if _is_mark(c) else c for c in text)


_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def _sniff(text: str, path: Path, what: str, error: type[Exception]) -> str:
    """The delimiter of a CSV: the one character among comma, semicolon and tab that the header
    holds (a header of one column: comma). A header holding several is refused."""
    first = text.splitlines()[0] if text else ""
    found = [d for d in _DELIMITERS if d in first]
    if len(found) > 1:
        names = " and ".join(f"{_DELIMITERS[d]}s" for d in found)
        raise error(
            f"{path}: cannot tell the {what}'s delimiter: its header holds {names} "
            f"({first[:120]!r}). Fix: give --delimiter (e.g. --delimiter ';'), and --decimal , "
            "if numbers are written with a decimal comma"
        )
    return found[0] if found else ","


