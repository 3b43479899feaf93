"""The cohort manifest: one row per subject x timepoint.

Columns:

* required: ``subject_id``, ``timepoint`` (a label), ``mask_path``, and ``days_from_baseline``
  or ``scan_date`` (ISO ``YYYY-MM-DD``; days are counted from the subject's earliest scan);
* optional: ``image_path`` (the MRI, for QC pictures), ``steroid_dose_mg``, ``neuro_status``
  (``improved``/``stable``/``worse``), ``extracns_progression`` (true/false, yes/no, 1/0), and
  ``radiotherapy_end_days`` (per subject: the day radiotherapy ended, counted from the baseline
  scan like ``days_from_baseline``, negative when it ended before the baseline; given on one or
  every row of the subject, for ``rano2-vol``'s confirmation of early progression).

Relative paths are relative to the manifest's folder, never to the working directory. The whole
manifest is validated before any work. What a problem costs depends on how far it reaches:

* **the whole manifest** is refused (:class:`~cnsvol.errors.ManifestError`, every problem
  listed at once, with the file, the row and the fix) when it cannot be read, is not a UTF-8
  table (a NUL byte, or a header row that is not UTF-8), has unknown or missing columns or no
  rows, has a row without a subject id (it belongs to nobody), names mask/image files that do
  not exist (unless ``skip_missing=True``: those subjects are kept as failures), or when not a
  single subject is left that could be run;
* **one subject** (its :attr:`SubjectPlan.error` is set, the others run) for everything
  confined to its rows: duplicate subject x timepoint rows, an empty timepoint or mask_path,
  no baseline (no row at day 0), two scans on one day, neither days nor date or both
  disagreeing, malformed clinical values, and bytes that are not UTF-8 in one of its cells (an
  id holding such bytes is shown, and reported, with each byte written ``\\xNN``).

A path that exists but is not a readable mask (a directory, a symbolic link loop, a file without
read permission) is not "missing": the subject reaches the mask reader, which fails it with the
precise reason.

Subjects are ordered by ``subject_id`` and scans by day, so results never depend on row order.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from ..response.clinical import NEURO_STATES, NOT_RECORDED, ClinicalStatus
from .tabular import (
    DECIMAL_COMMA_HINT, looks_like_decimal_comma, read_table, show_undecodable, undecodable_bytes,
)
from .vocabulary import parse_yes_no

__all__ = ["KNOWN_COLUMNS", "Manifest", "Scan", "SubjectPlan", "read_manifest"]

REQUIRED = ("subject_id", "timepoint", "mask_path")
OPTIONAL = (
    "days_from_baseline", "scan_date", "image_path", "steroid_dose_mg", "neuro_status",
    "extracns_progression", "radiotherapy_end_days",
)
KNOWN_COLUMNS = REQUIRED + OPTIONAL
_NUMERIC = ("days_from_baseline", "steroid_dose_mg", "radiotherapy_end_days")


@dataclass(frozen=True, slots=True)
class Scan:
    """One row of the manifest: a timepoint's mask (and image) and clinical status. Paths are
    kept as text (a cohort holds tens of thousands of them) and given as :class:`Path`."""

    timepoint: str
    days_from_baseline: float
    mask: str
    image: str | None
    clinical: ClinicalStatus

    @property
    def mask_path(self) -> Path:
        return Path(self.mask)

    @property
    def image_path(self) -> Path | None:
        return None if self.image is None else Path(self.image)


@dataclass(frozen=True, slots=True)
class SubjectPlan:
    """One subject's scans in time order; ``error`` is set when it cannot be run."""

    subject_id: str
    scans: tuple[Scan, ...]
    error: str | None = None
    radiotherapy_end_days: float | None = None

    @property
    def inputs(self) -> list[Path]:
        out = [s.mask_path for s in self.scans]
        out += [s.image_path for s in self.scans if s.image is not None]  # type: ignore[misc]
        return out


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: its subjects' plans, sorted by id (iterable like the plans)."""

    path: Path | None
    plans: tuple[SubjectPlan, ...]
    skip_missing: bool = False  # subjects with missing files kept as failures (read_manifest)

    def __iter__(self) -> Iterator[SubjectPlan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, index: int) -> SubjectPlan:
        return self.plans[index]

    def __repr__(self) -> str:
        scans = sum(len(p.scans) for p in self.plans)
        failing = sum(p.error is not None for p in self.plans)
        return (f"Manifest({str(self.path) if self.path else '<plans>'!r}, {len(self.plans)} "
                f"subject(s), {scans} scan(s), {failing} that cannot be run)")


def read_manifest(path: str | Path, *, skip_missing: bool = False, delimiter: str | None = None,
                  decimal: str = ".") -> Manifest:
    """Read and validate a manifest (CSV or TSV); see the module docstring. ``delimiter``
    (default: detected) and ``decimal`` (``","`` for ``56,5``) as for
    :func:`~cnsvol.cohort.tabular.read_table`."""
    path = Path(path).resolve()
    frame = read_table(path, "manifest", ManifestError, undecodable="mark", delimiter=delimiter,
                       decimal=decimal, numeric=_NUMERIC)
    _check_columns(path, frame)
    per_subject, subject_problems, problems = _group_rows(frame)
    plans: list[SubjectPlan] = []
    missing_files: list[str] = []
    for sid in sorted(per_subject):
        plan, missing = _plan(sid, per_subject[sid], subject_problems[sid], path, skip_missing)
        plans.append(plan)
        missing_files += missing
    if missing_files and not skip_missing:
        problems.append(
            f"{len(missing_files)} missing file(s): " + "; ".join(missing_files)
            + " (or rerun with --skip-missing to report those subjects as failed)"
        )
    if not problems and all(p.error for p in plans):
        problems.append("no subject can be run (every subject has a problem, listed here)")
    if problems:  # the manifest is refused: list every problem, the subjects' ones included
        every = problems + [q for sid in sorted(subject_problems) for q in subject_problems[sid]]
        raise ManifestError(f"{path}: " + "; ".join(every)
                            + ". Fix these rows of the manifest and rerun")
    return Manifest(path, tuple(plans), skip_missing)


def _check_columns(path: Path, frame) -> None:
    problems = []
    unknown = [c for c in frame.columns if c not in KNOWN_COLUMNS]
    if unknown:
        problems.append(
            f"unknown column(s) {', '.join(map(repr, unknown))} (known: {', '.join(KNOWN_COLUMNS)})"
        )
    missing = [c for c in REQUIRED if c not in frame.columns]
    if "days_from_baseline" not in frame.columns and "scan_date" not in frame.columns:
        missing.append("days_from_baseline or scan_date")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems) + ". Fix the header row and rerun")
    if frame.empty:
        raise ManifestError(f"{path}: the manifest has no rows. Fix: add one row per scan")


class _Row:
    """One manifest row: its cells by column name, and the columns holding bytes that are not
    UTF-8 (a cohort's manifest has tens of thousands of rows: a list each, not a dict)."""

    __slots__ = ("index", "undecodable", "values")

    def __init__(self, values: Iterable[Any], index: dict[str, int]) -> None:
        self.values = list(values)
        self.index = index
        self.undecodable: set[str] = set()

    def get(self, col: str, default: Any = "") -> Any:
        i = self.index.get(col)
        return default if i is None else self.values[i]

    def __getitem__(self, col: str) -> Any:
        return self.values[self.index[col]]

    def __setitem__(self, col: str, value: Any) -> None:
        self.values[self.index[col]] = value


def _cell(row: _Row, col: str) -> str:
    return str(row.get(col, "") or "").strip()


def _group_rows(frame) -> tuple[dict[str, list[tuple[int, _Row]]], dict[str, list[str]], list[str]]:
    """Rows per subject (with their file row numbers), each subject's problems, and the
    whole-manifest problems (rows without a subject id)."""
    seen: dict[tuple[str, str], int] = {}
    per_subject: dict[str, list[tuple[int, _Row]]] = {}
    subject_problems: dict[str, list[str]] = {}
    problems: list[str] = []
    index = {str(c): i for i, c in enumerate(frame.columns)}
    rows = (_Row(values, index) for values in frame.itertuples(index=False, name=None))
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        raw_id = _cell(row, "subject_id")
        if not raw_id:
            problems.append(f"row {n}: empty subject_id (the row belongs to no subject; fill it "
                            "in or delete the row)")
            continue
        sid = show_undecodable(raw_id)
        mine = subject_problems.setdefault(sid, [])
        _mark_undecodable(row, frame.columns, n, mine)
        for col in ("timepoint", "mask_path"):
            if not _cell(row, col):
                mine.append(f"row {n}: empty {col}")
        key = (sid, _cell(row, "timepoint"))
        if key in seen:
            mine.append(
                f"rows {seen[key]} and {n}: duplicate subject {key[0]!r} timepoint {key[1]!r} "
                "(fix: keep one row per subject and timepoint)"
            )
        else:
            seen[key] = n
        per_subject.setdefault(sid, []).append((n, row))
    return per_subject, subject_problems, problems


def _mark_undecodable(row: _Row, columns, n: int, problems: list[str]) -> None:
    """Note (in ``row.undecodable``) and report the cells holding bytes that are not
    UTF-8; such a cell is shown with each bad byte as ``\\xNN``."""
    for col in columns:
        value = row[col]
        bad = undecodable_bytes(str(value))
        if bad:
            row.undecodable.add(col)
            problems.append(
                f"row {n}: {col} holds byte(s) that are not UTF-8 "
                f"({', '.join(f'{b:#04x}' for b in bad[:8])}), read as "
                f"<{show_undecodable(str(value).strip())}> (fix: save the manifest as UTF-8)"
            )
            row[col] = show_undecodable(str(value))


def _plan(sid: str, rows: list[tuple[int, _Row]], mine: list[str], path: Path,
          skip_missing: bool) -> tuple[SubjectPlan, list[str]]:
    """One subject's plan (with its error, if any) and its missing files."""
    base = path.parent
    scans: list[Scan] = []
    dates = {n: _date(_cell(r, "scan_date"), n, mine) for n, r in rows}
    known_dates = [d for d in dates.values() if d is not None]
    first_date = min(known_dates) if known_dates else None
    subject_missing: list[str] = []
    for n, row in rows:
        days = _days(_cell(row, "days_from_baseline"), dates[n], first_date, n, mine)
        mask = _resolve(base, _cell(row, "mask_path"))
        image = _resolve(base, _cell(row, "image_path")) if _cell(row, "image_path") else None
        for col, p in (("mask_path", mask), ("image_path", image)):
            if p is not None and col not in row.undecodable and _is_missing(p):
                subject_missing.append(f"row {n}: {p}")
        clinical = _clinical(row, n, mine)  # a bad value is already a listed problem
        if days is not None and mask is not None:
            scans.append(
                Scan(_cell(row, "timepoint"), days, str(mask), None if image is None else str(image),
                     clinical or NOT_RECORDED)
            )
    scans.sort(key=lambda s: (s.days_from_baseline, s.timepoint))
    _check_days(sid, scans, mine)
    radiotherapy = _radiotherapy_end(sid, rows, mine)
    parts = []
    if mine:
        parts.append(f"manifest {path}: " + "; ".join(mine)
                     + ". Fix these rows of the manifest and rerun")
    if subject_missing:
        parts.append("missing file(s): " + "; ".join(subject_missing)
                     + ". Fix: correct the path in the manifest or restore the file")
        if skip_missing:  # listed with the subject's problems if nothing can be run
            mine.append("missing file(s): " + "; ".join(subject_missing))
    return (SubjectPlan(sid, tuple(scans), "; ".join(parts) or None, radiotherapy),
            subject_missing)


def _radiotherapy_end(sid: str, rows: list[tuple[int, _Row]],
                      problems: list[str]) -> float | None:
    """The subject's ``radiotherapy_end_days``: one number, on one or every row."""
    values: dict[float, int] = {}
    for n, row in rows:
        text = _cell(row, "radiotherapy_end_days")
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")):
            problems.append(f"row {n}: radiotherapy_end_days {text!r} is not a number of days"
                            + _comma_hint(text))
            continue
        values.setdefault(value, n)
    if len(values) > 1:
        shown = ", ".join(f"{v:g} (row {n})" for v, n in values.items())
        problems.append(f"subject {sid!r} has different radiotherapy_end_days: {shown} "
                        "(fix: give the one day radiotherapy ended)")
        return None
    return next(iter(values), None)


def _check_days(sid: str, scans: list[Scan], problems: list[str]) -> None:
    if scans and scans[0].days_from_baseline != 0:
        problems.append(
            f"subject {sid!r} has no baseline (no scan at day 0; earliest is day "
            f"{scans[0].days_from_baseline:g})"
        )
    by_label = {s.timepoint: s.days_from_baseline for s in scans}  # duplicates: once
    day_list = list(by_label.values())
    if len(set(day_list)) != len(day_list):
        problems.append(f"subject {sid!r} has two scans on the same day")


def _is_missing(path: Path) -> bool:
    """True when nothing is at ``path`` (a dangling symbolic link included). A symbolic link
    loop, a directory or an unreadable file exists: the mask reader reports it precisely."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ENOTDIR)
    except ValueError:  # an embedded NUL byte: no such file can exist
        return True
    return False


def _resolve(base: Path, text: str) -> Path | None:
    if not text:
        return None
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _date(text: str, n: int, problems: list[str]) -> _dt.date | None:
    if not text:
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        problems.append(f"row {n}: scan_date {text!r} is not an ISO date (YYYY-MM-DD)")
        return None


def _days(
    text: str, date: _dt.date | None, first: _dt.date | None, n: int, problems: list[str]
) -> float | None:
    from_date = None if date is None or first is None else float((date - first).days)
    if not text:
        if from_date is None:
            problems.append(f"row {n}: neither days_from_baseline nor scan_date given")
        return from_date
    try:
        days = float(text)
    except ValueError:
        problems.append(f"row {n}: days_from_baseline {text!r} is not a number"
                        + _comma_hint(text))
        return None
    if not days >= 0:
        problems.append(f"row {n}: days_from_baseline {text!r} is negative")
        return None
    if from_date is not None and from_date != days:
        problems.append(
            f"row {n}: days_from_baseline {days:g} disagrees with scan_date (day {from_date:g})"
        )
    return days


def _clinical(row: _Row, n: int, problems: list[str]) -> ClinicalStatus | None:
    dose_text = str(row.get("steroid_dose_mg", "") or "").strip()
    neuro = str(row.get("neuro_status", "") or "").strip().lower() or None
    extra_text = str(row.get("extracns_progression", "") or "").strip().lower()
    ok = True
    dose = None
    if dose_text:
        try:
            dose = float(dose_text)
            if not dose >= 0:
                raise ValueError
        except ValueError:
            problems.append(f"row {n}: steroid_dose_mg {dose_text!r} is not a number >= 0"
                            + _comma_hint(dose_text))
            ok = False
    if neuro is not None and neuro not in NEURO_STATES:
        problems.append(f"row {n}: neuro_status {neuro!r} is not one of {', '.join(NEURO_STATES)}")
        ok = False
    extra = None
    if extra_text:
        extra = parse_yes_no(extra_text)
        if extra is None:
            problems.append(f"row {n}: extracns_progression {extra_text!r} is not true/false")
            ok = False
    if not ok:
        return None
    return NOT_RECORDED if (dose, neuro, extra) == (None, None, None) else ClinicalStatus(
        dose, neuro, extra)


def _comma_hint(text: str) -> str:
    return DECIMAL_COMMA_HINT if looks_like_decimal_comma(text) else ""
