"""Clinical / progression-free-survival records: reading, validation, and the join to masks.

A PFS table has one row per subject. Column names are parameters (defaults ``subject_id``,
``pfs_days``, ``pfs_event``, ``arm``). Times are converted to days: weeks x 7, months x 30.4375
(365.25 / 12). Event codes (case-insensitive):

* event (progressed or died): ``1``, ``true``, ``yes``, ``y``, ``event``, ``progressed``,
  ``progression``, ``pd``, ``died``, ``dead``, ``death``;
* censored: ``0``, ``false``, ``no``, ``n``, ``censored``, ``censor``, ``alive``,
  ``no event``, ``progression-free``.

Every problem (missing columns, duplicate ids, missing or negative or non-numeric times, unknown
event codes) is collected and reported at once, with the ids concerned. The join never drops
anybody silently: ids in the manifest without PFS data and ids in the PFS table without masks
are returned so they can be reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ClinicalError
from .tables import read_table

__all__ = [
    "EVENT_WORDS",
    "TIME_UNITS_DAYS",
    "PfsTable",
    "join_ids",
    "parse_event",
    "read_pfs",
]

TIME_UNITS_DAYS = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12.0}
EVENT_WORDS = {
    True: ("1", "true", "yes", "y", "event", "progressed", "progression", "pd", "died", "dead",
           "death"),
    False: ("0", "false", "no", "n", "censored", "censor", "alive", "no event",
            "progression-free"),
}
_EVENT_LOOKUP = {w: flag for flag, words in EVENT_WORDS.items() for w in words}


def parse_event(value: str) -> bool | None:
    """``True`` (event), ``False`` (censored) or ``None`` when the code is not recognised."""
    text = str(value).strip().lower()
    if text in ("1.0", "0.0"):
        text = text[0]
    return _EVENT_LOOKUP.get(text)


@dataclass(frozen=True)
class PfsTable:
    """Validated PFS records: ``frame`` has columns subject_id, pfs_days, pfs_event, arm."""

    frame: object  # pandas.DataFrame
    path: Path
    time_unit: str
    notes: tuple[str, ...] = ()

    @property
    def ids(self) -> list[str]:
        return list(self.frame["subject_id"])  # type: ignore[index]


def read_pfs(
    path: str | Path,
    *,
    id_col: str = "subject_id",
    time_col: str = "pfs_days",
    event_col: str = "pfs_event",
    arm_col: str | None = "arm",
    time_unit: str = "days",
) -> PfsTable:
    """Read and validate a PFS table (CSV, TSV, .xlsx or Parquet); see the module docstring."""
    import pandas as pd

    path = Path(path)
    if time_unit not in TIME_UNITS_DAYS:
        raise ClinicalError(
            f"{path}: unknown time unit {time_unit!r}. Fix: use one of {', '.join(TIME_UNITS_DAYS)}"
        )
    raw = read_table(path, "PFS table", ClinicalError)
    missing = [c for c in (id_col, time_col, event_col) if c not in raw.columns]
    if missing:
        raise ClinicalError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(raw.columns)}). "
            "Fix: rename them, or name yours with --id-col / --pfs-time-col / --pfs-event-col"
        )
    notes = []
    has_arm = arm_col is not None and arm_col in raw.columns
    if arm_col is not None and not has_arm:
        notes.append(f"no {arm_col!r} column: arms are not compared")
    problems: list[str] = []
    ids = raw[id_col]
    empty_ids = [i + 2 for i, v in enumerate(ids) if v == ""]
    if empty_ids:
        problems.append(f"empty subject id on row(s) {_short(empty_ids)}")
    dup = sorted(set(ids[ids.duplicated(keep=False) & (ids != "")]))
    if dup:
        problems.append(f"duplicate subject id(s) {_short(dup)}")
    times = pd.to_numeric(raw[time_col].replace("", None), errors="coerce")
    no_time = [i for i, t, r in zip(ids, times, raw[time_col]) if pd.isna(t) and r == ""]
    bad_time = [f"{i}={r!r}" for i, t, r in zip(ids, times, raw[time_col]) if pd.isna(t) and r != ""]
    neg = [f"{i}={t:g}" for i, t in zip(ids, times) if not pd.isna(t) and t < 0]
    if no_time:
        problems.append(f"missing {time_col} for {_short(no_time)}")
    if bad_time:
        problems.append(f"non-numeric {time_col}: {_short(bad_time)}")
    if neg:
        problems.append(f"negative {time_col}: {_short(neg)}")
    events = [parse_event(v) for v in raw[event_col]]
    bad_event = sorted({repr(v) for v, e in zip(raw[event_col], events) if e is None})
    if bad_event:
        words = "; ".join(
            f"{'event' if k else 'censored'}: {', '.join(w)}" for k, w in EVENT_WORDS.items()
        )
        problems.append(f"unknown {event_col} code(s) {', '.join(bad_event)} (accepted: {words})")
    if problems:
        raise ClinicalError(f"{path}: " + "; ".join(problems) + ". Fix these rows and rerun")
    frame = pd.DataFrame({
        "subject_id": ids.astype(str),
        "pfs_days": times.astype(float) * TIME_UNITS_DAYS[time_unit],
        "pfs_event": events,
        "arm": raw[arm_col].replace("", None) if has_arm else None,
    })
    frame = frame.sort_values("subject_id", kind="stable").reset_index(drop=True)
    return PfsTable(frame=frame, path=path, time_unit=time_unit, notes=tuple(notes))


def join_ids(manifest_ids: Iterable[str], pfs_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(ids with masks but no PFS row, ids with a PFS row but no masks), both sorted."""
    m, p = set(manifest_ids), set(pfs_ids)
    return sorted(m - p), sorted(p - m)


def _short(items: list, limit: int = 20) -> str:
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f" ... ({len(items)} in all)" if len(items) > limit else "")
