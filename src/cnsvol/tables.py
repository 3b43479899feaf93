"""Reading tabular inputs and writing tables and files safely.

* :func:`read_table`: CSV, TSV, Excel (.xlsx) or Parquet, every cell as text (so ``007`` stays
  ``007``), UTF-8 with or without a byte-order mark; a file in another encoding is an error that
  says so.
* :func:`write_csv`: RFC 4180 CSV written atomically; a text cell that a spreadsheet would run
  as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return, and not a
  number) is prefixed with ``'``; missing values are empty cells; NaN/inf are refused.
* :func:`atomic_write_bytes` / :func:`atomic_write_text`: write to a temporary file in the same
  folder, flush and fsync, then rename over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "cell_number",
    "cell_text",
    "read_table",
    "safe_cell",
    "write_csv",
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def read_table(path: str | Path, what: str, error: type[Exception]):  # -> pandas.DataFrame
    """Read a table with every cell as a string (empty cells as ``""``).

    ``what`` names the table in messages ("manifest", "PFS table"); ``error`` is the exception
    class raised (with the file name, the problem and the fix).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found (or not a file). Fix: check the path")
    name = path.name.lower()
    try:
        if name.endswith((".xlsx", ".xlsm")):
            frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        elif name.endswith(".parquet"):
            try:
                frame = pd.read_parquet(path)
            except ImportError:
                raise error(
                    f"{path}: reading Parquet needs pyarrow. Fix: pip install pyarrow "
                    "(or save the table as CSV)"
                ) from None
            frame = frame.astype(object).where(frame.notna(), "").astype(str)
        else:
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise error(
                    f"{path}: {what} is not valid UTF-8 (byte {raw[exc.start]:#04x} at offset "
                    f"{exc.start}). Fix: save it as UTF-8 CSV"
                ) from None
            sep = "\t" if name.endswith((".tsv", ".tab")) else _sniff(text)
            frame = pd.read_csv(
                io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, engine="python"
            )
    except error:
        raise
    except Exception as exc:  # pandas/openpyxl raise many parser errors; all mean "unreadable"
        raise error(
            f"{path}: cannot read the {what} ({type(exc).__name__}: {exc}). Fix: save it as CSV, "
            "TSV, .xlsx or Parquet with one header row"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.apply(lambda col: col.str.strip() if col.dtype == object else col)


def _sniff(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return "\t" if first.count("\t") > first.count(",") else ","


def safe_cell(value: Any) -> Any:
    """A CSV cell: ``None``/NaN-free, and never executable as a spreadsheet formula."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write a non-finite number ({value}) to a table")
        return repr(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write rows (dicts; missing keys are empty cells) as CSV, atomically."""
    atomic_write_text(path, csv_rows(rows, columns, header=True))


def csv_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], *, header: bool = False) -> str:
    """Rows as CSV text (``header=True``: the column names first). Pieces rendered separately
    concatenate into the same bytes as one rendering of all rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(_plain(row.get(c))) for c in columns])
    return buf.getvalue()


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, with the permissions a plain ``open`` would give
    (0666 less the umask; ``mkstemp`` alone would leave the file readable by its owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A text file (UTF-8) to write in pieces, which appears at ``path`` whole, or not at all
    (an exception, or a killed process, leaves only a hidden ``.tmp`` file beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def cell_text(value: Any) -> str:
    """A table cell read back as text (``""`` for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def cell_number(value: Any) -> float | None:
    """A table cell read back as a finite float, or ``None`` for empty cells, text and NaN/inf."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
