"""Clinical / progression-free-survival records: reading and validation.

A PFS table has one row per subject. Column names are parameters (defaults ``subject_id``,
``pfs_days``, ``pfs_event``, ``arm``). Times are converted to days: weeks x 7, months x 30.4375
(365.25 / 12). Event codes: :mod:`cnsvol.cohort.vocabulary`.

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

The join to the imaging results: :mod:`cnsvol.cohort.join`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ClinicalError
from .tabular import DECIMAL_COMMA_HINT, looks_like_decimal_comma, read_table
from .vocabulary import EVENT_WORDS, parse_event

__all__ = ["TIME_UNITS_DAYS", "PfsTable", "read_pfs"]

TIME_UNITS_DAYS = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12.0}


@dataclass(frozen=True)
class PfsTable:
    """Validated PFS records: ``frame`` has columns subject_id, pfs_days, pfs_event, arm.

    ``columns`` records the names the table was read with (``id_col``, ``time_col``,
    ``event_col``, ``arm_col``), for provenance.
    """

    frame: Any  # pandas.DataFrame
    path: Path
    time_unit: str
    notes: tuple[str, ...] = ()
    set_aside: dict[str, str] = field(default_factory=dict)
    """Ids left out of ``frame`` because of a problem in their rows: id -> the problem(s)."""
    columns: dict[str, str | None] = field(default_factory=dict)
    tolerance_days: float = 14.0
    """Days between an imaging progression and this record's date that are not a discrepancy
    (:mod:`cnsvol.cohort.stats.reconcile`): how precisely the record follows the scans."""

    @property
    def ids(self) -> list[str]:
        return list(self.frame["subject_id"])

    def records(self) -> dict[str, dict[str, Any]]:
        """Id -> ``{"pfs_days", "pfs_event", "arm"}``."""
        return {r["subject_id"]: {"pfs_days": r["pfs_days"], "pfs_event": r["pfs_event"],
                                  "arm": r["arm"]}
                for r in self.frame.to_dict("records")}

    def __repr__(self) -> str:
        return (f"PfsTable({str(self.path)!r}, {len(self.frame)} subject(s), "
                f"{len(self.set_aside)} set aside)")


def read_pfs(
    path: str | Path,
    *,
    id_col: str = "subject_id",
    time_col: str = "pfs_days",
    event_col: str = "pfs_event",
    arm_col: str | None = "arm",
    time_unit: str = "days",
    delimiter: str | None = None,
    decimal: str = ".",
    tolerance_days: float = 14.0,
) -> PfsTable:
    """Read and validate a PFS table (CSV, TSV, .xlsx or Parquet); see the module docstring.

    ``delimiter`` (default: detected) and ``decimal`` (``","`` for ``409,5``) as for
    :func:`~cnsvol.cohort.tabular.read_table`; ``tolerance_days`` the gap between an imaging
    progression and the record that is not a discrepancy (the reconciliation of a run)."""
    import pandas as pd

    path = Path(path)
    if time_unit not in TIME_UNITS_DAYS:
        raise ClinicalError(
            f"{path}: unknown time unit {time_unit!r}. Fix: use one of {', '.join(TIME_UNITS_DAYS)}"
        )
    raw = read_table(path, "PFS table", ClinicalError, delimiter=delimiter, decimal=decimal,
                     numeric=(time_col,))
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
    times = pd.to_numeric(raw[time_col].replace("", None), errors="coerce")
    events = [parse_event(v) for v in raw[event_col]]
    rows = _RowProblems([str(v) for v in raw[id_col]])
    rows.check_ids()
    rows.check_times(time_col, list(raw[time_col]), times)
    rows.check_events(event_col, list(raw[event_col]), events)
    keep = rows.usable()
    if rows.problems and not keep:
        raise ClinicalError(
            f"{path}: no usable row: " + "; ".join(rows.problems) + ". Fix these rows and rerun"
        )
    set_aside = {sid: "; ".join(rows.why[sid]) for sid in sorted(rows.why)}
    if rows.problems:
        notes.append(
            f"{path}: {len(set_aside)} subject id(s) set aside, analysed without PFS: "
            + "; ".join(rows.problems)
            + f". Fix these rows of {path.name} and rerun"
        )
    frame = pd.DataFrame({
        "subject_id": [rows.ids[i] for i in keep],
        "pfs_days": pd.Series([float(times.iloc[i]) for i in keep], dtype=float)
        * TIME_UNITS_DAYS[time_unit],
        "pfs_event": [events[i] for i in keep],
        "arm": [(raw[arm_col].iloc[i] or None) for i in keep] if has_arm else None,
    })
    frame = frame.sort_values("subject_id", kind="stable").reset_index(drop=True)
    if not (isinstance(tolerance_days, (int, float)) and tolerance_days >= 0):
        raise ClinicalError(f"tolerance_days must be a number >= 0, got {tolerance_days!r}")
    return PfsTable(frame=frame, path=path, time_unit=time_unit, notes=tuple(notes),
                    set_aside=set_aside, tolerance_days=float(tolerance_days),
                    columns={"id_col": id_col, "time_col": time_col, "event_col": event_col,
                             "arm_col": arm_col})


class _RowProblems:
    """The problems of a PFS table's rows: each names the ids and rows concerned; the ids of
    problem rows are set aside (``why``: id -> its problems), the other rows are usable."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.rows = [i + 2 for i in range(len(ids))]  # file rows: row 1 is the header
        self.problems: list[str] = []
        self.bad: set[int] = set()  # positions of rows not used
        self.why: dict[str, list[str]] = {}

    def flag(self, kind: str, items: list[tuple[int, str]]) -> None:
        """``items``: (row position, text shown for it); the ids of these rows are set aside."""
        if not items:
            return
        self.problems.append(kind + _short([text for _, text in items]))
        for pos, text in items:
            self.bad.add(pos)
            if self.ids[pos] != "":
                self.why.setdefault(self.ids[pos], []).append(kind + text)

    def check_ids(self) -> None:
        ids, rows = self.ids, self.rows
        empty = [i for i in range(len(ids)) if ids[i] == ""]
        if empty:
            self.problems.append(f"empty subject id on row(s) {_short([rows[i] for i in empty])}")
            self.bad.update(empty)
        counts: dict[str, int] = {}
        for sid in ids:
            if sid != "":
                counts[sid] = counts.get(sid, 0) + 1
        dup_ids = sorted(sid for sid, k in counts.items() if k > 1)
        if not dup_ids:
            return
        where = {d: [rows[i] for i in range(len(ids)) if ids[i] == d] for d in dup_ids}
        self.problems.append("duplicate subject id(s) " + _short(
            [f"{d} (rows {', '.join(map(str, where[d]))})" for d in dup_ids]))
        self.bad.update(i for i in range(len(ids)) if ids[i] in where)
        for d in dup_ids:
            self.why.setdefault(d, []).append(
                f"duplicate subject id on rows {', '.join(map(str, where[d]))}")

    def check_times(self, time_col: str, raw_time: list[str], times) -> None:
        import pandas as pd

        ids, rows, n = self.ids, self.rows, len(self.ids)
        self.flag(f"missing {time_col} for ", [
            (i, f"{ids[i]} (row {rows[i]})") for i in range(n)
            if pd.isna(times.iloc[i]) and raw_time[i] == ""])
        bad = [i for i in range(n) if pd.isna(times.iloc[i]) and raw_time[i] != ""]
        hint = DECIMAL_COMMA_HINT if any(looks_like_decimal_comma(raw_time[i]) for i in bad) else ""
        self.flag(f"non-numeric {time_col}{hint}: ", [
            (i, f"{ids[i]}={raw_time[i]!r} (row {rows[i]})") for i in bad])
        self.flag(f"negative {time_col}: ", [
            (i, f"{ids[i]}={times.iloc[i]:g} (row {rows[i]})") for i in range(n)
            if not pd.isna(times.iloc[i]) and times.iloc[i] < 0])

    def check_events(self, event_col: str, raw_event: list[str],
                     events: list[bool | None]) -> None:
        unknown = [i for i, e in enumerate(events) if e is None]
        if not unknown:
            return
        words = "; ".join(
            f"{'event' if k else 'censored'}: {', '.join(w)}" for k, w in EVENT_WORDS.items()
        )
        codes = sorted({repr(raw_event[i]) for i in unknown})
        self.problems.append(f"unknown {event_col} code(s) {', '.join(codes)} on row(s) "
                             f"{_short([self.rows[i] for i in unknown])} (accepted: {words})")
        for i in unknown:
            self.bad.add(i)
            if self.ids[i] != "":
                self.why.setdefault(self.ids[i], []).append(
                    f"unknown {event_col} code {raw_event[i]!r} (row {self.rows[i]})")

    def usable(self) -> list[int]:
        """Rows to keep: every row of a set-aside id goes, so that no subject keeps half of a
        contradiction."""
        return [i for i in range(len(self.ids)) if i not in self.bad and self.ids[i] not in self.why]


def _short(items: list, limit: int = 20) -> str:
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f" ... ({len(items)} in all)" if len(items) > limit else "")
