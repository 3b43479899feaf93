"""Clinical / progression-free-survival records: reading, validation, and the join to masks.

A PFS table has one row per subject. Column names are parameters (defaults ``subject_id``,
``pfs_days``, ``pfs_event``, ``arm``). Times are converted to days: weeks x 7, months x 30.4375
(365.25 / 12). Event codes (case-insensitive):

* event (progressed or died): ``1``, ``true``, ``yes``, ``y``, ``event``, ``progressed``,
  ``progression``, ``pd``, ``died``, ``dead``, ``death``;
* censored: ``0``, ``false``, ``no``, ``n``, ``censored``, ``censor``, ``alive``,
  ``no event``, ``progression-free``.

What a problem costs depends on how far it reaches:

* **the whole table** is refused (:class:`~cnsvol.errors.ClinicalError`, every problem listed
  at once) when it cannot be read, is not UTF-8, lacks a required column, has an unknown time
  unit, or has not one usable row;
* **one subject** for a problem confined to its rows: a duplicated id (every row of that id:
  which one is right cannot be known), a missing, non-numeric or negative time, an unknown
  event code. Those ids are *set aside*: left out of the table, so that the subject is analysed
  without PFS (it then shows up among the ids without PFS), and listed with their rows and the
  fix in :attr:`PfsTable.set_aside` and in :attr:`PfsTable.notes`. A row without an id is left
  out the same way. Every other subject, and the PFS statistics over them, are unaffected.

The join never drops anybody silently: ids in the manifest without PFS data and ids in the PFS
table without masks are returned so they can be reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ClinicalError
from .tabular import read_table

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
    set_aside: dict[str, str] = field(default_factory=dict)
    """Ids left out of ``frame`` because of a problem in their rows: id -> the problem(s)."""

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
    ids = raw[id_col].astype(str)
    rows = [i + 2 for i in range(len(raw))]  # file rows: row 1 is the header
    times = pd.to_numeric(raw[time_col].replace("", None), errors="coerce")
    events = [parse_event(v) for v in raw[event_col]]

    problems: list[str] = []  # each names the ids and rows concerned
    bad_rows: set[int] = set()  # positions of rows not used
    why: dict[str, list[str]] = {}  # set-aside id -> its problems

    def flag(kind: str, items: list[tuple[int, str]]) -> None:
        """``items``: (row position, text shown for it); the ids of these rows are set aside."""
        if not items:
            return
        problems.append(kind + _short([text for _, text in items]))
        for pos, text in items:
            bad_rows.add(pos)
            if ids.iloc[pos] != "":
                why.setdefault(ids.iloc[pos], []).append(kind + text)

    empty = [(i, f"row {rows[i]}") for i in range(len(raw)) if ids.iloc[i] == ""]
    if empty:
        problems.append(f"empty subject id on row(s) {_short([rows[i] for i, _ in empty])}")
        bad_rows.update(i for i, _ in empty)
    counts = ids[ids != ""].value_counts()
    dup_ids = sorted(counts[counts > 1].index)
    if dup_ids:
        where = {d: [rows[i] for i in range(len(raw)) if ids.iloc[i] == d] for d in dup_ids}
        problems.append("duplicate subject id(s) " + _short(
            [f"{d} (rows {', '.join(map(str, where[d]))})" for d in dup_ids]))
        for i in range(len(raw)):
            if ids.iloc[i] in where:
                bad_rows.add(i)
        for d in dup_ids:
            why.setdefault(d, []).append(
                f"duplicate subject id on rows {', '.join(map(str, where[d]))}")
    raw_time = list(raw[time_col])
    flag(f"missing {time_col} for ", [
        (i, f"{ids.iloc[i]} (row {rows[i]})") for i in range(len(raw))
        if pd.isna(times.iloc[i]) and raw_time[i] == ""])
    flag(f"non-numeric {time_col}: ", [
        (i, f"{ids.iloc[i]}={raw_time[i]!r} (row {rows[i]})") for i in range(len(raw))
        if pd.isna(times.iloc[i]) and raw_time[i] != ""])
    flag(f"negative {time_col}: ", [
        (i, f"{ids.iloc[i]}={times.iloc[i]:g} (row {rows[i]})") for i in range(len(raw))
        if not pd.isna(times.iloc[i]) and times.iloc[i] < 0])
    unknown = [i for i, e in enumerate(events) if e is None]
    if unknown:
        words = "; ".join(
            f"{'event' if k else 'censored'}: {', '.join(w)}" for k, w in EVENT_WORDS.items()
        )
        codes = sorted({repr(raw[event_col].iloc[i]) for i in unknown})
        problems.append(f"unknown {event_col} code(s) {', '.join(codes)} on row(s) "
                        f"{_short([rows[i] for i in unknown])} (accepted: {words})")
        for i in unknown:
            bad_rows.add(i)
            if ids.iloc[i] != "":
                why.setdefault(ids.iloc[i], []).append(
                    f"unknown {event_col} code {raw[event_col].iloc[i]!r} (row {rows[i]})")
    # every row of a set-aside id goes, so that no subject keeps half of a contradiction
    keep = [i for i in range(len(raw)) if i not in bad_rows and ids.iloc[i] not in why]
    if problems and not keep:
        raise ClinicalError(
            f"{path}: no usable row: " + "; ".join(problems) + ". Fix these rows and rerun"
        )
    set_aside = {sid: "; ".join(why[sid]) for sid in sorted(why)}
    if problems:
        notes.append(
            f"{path}: {len(set_aside)} subject id(s) set aside, analysed without PFS: "
            + "; ".join(problems)
            + f". Fix these rows of {path.name} and rerun"
        )
    frame = pd.DataFrame({
        "subject_id": [ids.iloc[i] for i in keep],
        "pfs_days": pd.Series([float(times.iloc[i]) for i in keep], dtype=float)
        * TIME_UNITS_DAYS[time_unit],
        "pfs_event": [events[i] for i in keep],
        "arm": [(raw[arm_col].iloc[i] or None) for i in keep] if has_arm else None,
    })
    frame = frame.sort_values("subject_id", kind="stable").reset_index(drop=True)
    return PfsTable(frame=frame, path=path, time_unit=time_unit, notes=tuple(notes),
                    set_aside=set_aside)


def join_ids(manifest_ids: Iterable[str], pfs_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(ids with masks but no PFS row, ids with a PFS row but no masks), both sorted."""
    m, p = set(manifest_ids), set(pfs_ids)
    return sorted(m - p), sorted(p - m)


def _short(items: list, limit: int = 20) -> str:
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f" ... ({len(items)} in all)" if len(items) > limit else "")
