"""Plain-text, CSV and JSON rendering of library results for the command line."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any


def to_json(obj: Any) -> str:
    """JSON with NaN/inf refused (they must never reach a table) and stable key order."""
    return json.dumps(obj, indent=2, allow_nan=False, default=_default)


def _default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"refusing to write a non-finite number ({value}) to a table")
    return value


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], indent: str = "  ") -> str:
    """A right-aligned text table."""
    cells = [[str(h) for h in header]] + [[fmt(v) for v in r] for r in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(header))]
    lines = [indent + "  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    return str(value)


def pct(value: float | None) -> str:
    return "n/a (baseline total is 0)" if value is None else f"{value:+.1f}%"


def days(value: float | None) -> str:
    return "n/a" if value is None else f"day {value:g}"
