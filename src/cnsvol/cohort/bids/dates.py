"""Session dates of a BIDS subject: ``acq_time`` of ``sub-<label>/sub-<label>_sessions.tsv``
(looked up in the derivatives tree, then in the raw tree)."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from pathlib import Path

from ...errors import BidsError
from ..tabular import read_table

__all__ = ["iso", "session_dates"]

_MISSING = ("", "n/a", "na", "nan")


def session_dates(
    root: Path, raw_root: Path | None, sub: str, labels: Sequence[str], problems: list[str]
) -> tuple[dict[str, _dt.date | None] | None, str]:
    """``({session: date or None}, where the dates come from)``; ``None`` after a problem."""
    name = f"sub-{sub}_sessions.tsv"
    candidates = [root / f"sub-{sub}" / name]
    if raw_root is not None:
        candidates.append(raw_root / f"sub-{sub}" / name)
    table = next((p for p in candidates if p.exists()), None)
    if table is None:
        return {}, "no " + " or ".join(str(p) for p in candidates)
    try:
        frame = read_table(table, "sessions table", BidsError)
    except BidsError as exc:
        problems.append(
            f"{exc}" if "Fix:" in str(exc) else f"{exc}. Fix: save it as tab-separated UTF-8 text"
        )
        return None, str(table)
    if "session_id" not in frame.columns:
        problems.append(
            f"{table}: no session_id column (columns: {', '.join(frame.columns) or 'none'}). "
            "Fix: add a session_id column with values such as ses-01, as BIDS specifies"
        )
        return None, str(table)
    if "acq_time" not in frame.columns:
        return {}, f"{table} has no acq_time column"
    dates: dict[str, _dt.date | None] = {}
    seen: dict[str, int] = {}
    bad = False
    for n, row in enumerate(frame.to_dict("records"), start=2):
        sid = str(row.get("session_id", "")).strip()
        ses = sid.removeprefix("ses-")
        if not ses:
            continue
        if ses in seen:
            problems.append(
                f"{table}: rows {seen[ses]} and {n} both describe ses-{ses}. Fix: keep one row "
                "per session_id"
            )
            bad = True
            continue
        seen[ses] = n
        text = str(row.get("acq_time", "")).strip()
        if text.lower() in _MISSING:
            dates[ses] = None
            continue
        try:
            dates[ses] = _parse_acq_time(text)
        except ValueError:
            if ses in labels:
                problems.append(
                    f"{table} row {n}: acq_time {text!r} of ses-{ses} is not an ISO date or "
                    "date-time. Fix: write YYYY-MM-DD or YYYY-MM-DDThh:mm:ss (or n/a when unknown)"
                )
                bad = True
            dates[ses] = None
    return (None if bad else dates), str(table)


def _parse_acq_time(text: str) -> _dt.date:
    if not re.match(r"^\d{4}-\d{2}-\d{2}($|[T ])", text):
        raise ValueError(text)
    return _dt.datetime.fromisoformat(text).date()


def iso(date: _dt.date | None) -> str:
    return "" if date is None else date.isoformat()
