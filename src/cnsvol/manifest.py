"""The cohort manifest: one row per subject x timepoint.

Columns:

* required: ``subject_id``, ``timepoint`` (a label), ``mask_path``, and ``days_from_baseline``
  or ``scan_date`` (ISO ``YYYY-MM-DD``; days are counted from the subject's earliest scan);
* optional: ``image_path`` (the MRI, for QC pictures), ``steroid_dose_mg``, ``neuro_status``
  (``improved``/``stable``/``worse``), ``extracns_progression`` (true/false, yes/no, 1/0).

Relative paths are relative to the manifest's folder, never to the working directory. The whole
manifest is validated before any work and every problem is reported at once: unknown or missing
columns, empty cells where a value is needed, duplicate subject x timepoint rows, a subject with
no baseline (no row at day 0), a row with neither days nor date or with both disagreeing,
malformed clinical values, and missing mask/image files (all listed). With
``skip_missing=True``, subjects with missing files are kept as failures instead.

Subjects are ordered by ``subject_id`` and scans by day, so results never depend on row order.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError
from .series import NEURO_STATES, ClinicalStatus
from .tables import read_table

__all__ = ["KNOWN_COLUMNS", "Scan", "SubjectPlan", "read_manifest"]

REQUIRED = ("subject_id", "timepoint", "mask_path")
OPTIONAL = (
    "days_from_baseline", "scan_date", "image_path", "steroid_dose_mg", "neuro_status",
    "extracns_progression",
)
KNOWN_COLUMNS = REQUIRED + OPTIONAL
_TRUE = ("true", "yes", "y", "1")
_FALSE = ("false", "no", "n", "0")


@dataclass(frozen=True)
class Scan:
    timepoint: str
    days_from_baseline: float
    mask_path: Path
    image_path: Path | None
    clinical: ClinicalStatus


@dataclass(frozen=True)
class SubjectPlan:
    """One subject's scans in time order; ``error`` is set when it cannot be run."""

    subject_id: str
    scans: tuple[Scan, ...]
    error: str | None = None

    @property
    def inputs(self) -> list[Path]:
        out = [s.mask_path for s in self.scans]
        out += [s.image_path for s in self.scans if s.image_path is not None]
        return out


def read_manifest(path: str | Path, *, skip_missing: bool = False) -> tuple[SubjectPlan, ...]:
    """Read and validate a manifest (CSV or TSV); see the module docstring."""
    path = Path(path).resolve()
    frame = read_table(path, "manifest", ManifestError)
    base = path.parent
    problems: list[str] = []
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

    def cell(row: dict, col: str) -> str:
        return str(row.get(col, "") or "").strip()

    rows = frame.to_dict("records")
    seen: dict[tuple[str, str], int] = {}
    per_subject: dict[str, list[tuple[int, dict]]] = {}
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        for col in REQUIRED:
            if not cell(row, col):
                problems.append(f"row {n}: empty {col}")
        key = (cell(row, "subject_id"), cell(row, "timepoint"))
        if key in seen:
            problems.append(
                f"rows {seen[key]} and {n}: duplicate subject {key[0]!r} timepoint {key[1]!r}"
            )
        else:
            seen[key] = n
        if cell(row, "subject_id"):
            per_subject.setdefault(cell(row, "subject_id"), []).append((n, row))

    plans: list[SubjectPlan] = []
    missing_files: list[str] = []
    for sid in sorted(per_subject):
        scans: list[Scan] = []
        dates = {n: _date(cell(r, "scan_date"), n, problems) for n, r in per_subject[sid]}
        known_dates = [d for d in dates.values() if d is not None]
        first_date = min(known_dates) if known_dates else None
        subject_missing: list[str] = []
        for n, row in per_subject[sid]:
            days = _days(cell(row, "days_from_baseline"), dates[n], first_date, n, problems)
            mask = _resolve(base, cell(row, "mask_path"))
            image = _resolve(base, cell(row, "image_path")) if cell(row, "image_path") else None
            for p in (mask, image):
                if p is not None and not p.exists():
                    subject_missing.append(f"row {n}: {p}")
            clinical = _clinical(row, n, problems)  # a bad value is already a listed problem
            if days is not None and mask is not None:
                scans.append(
                    Scan(cell(row, "timepoint"), days, mask, image, clinical or ClinicalStatus())
                )
        scans.sort(key=lambda s: (s.days_from_baseline, s.timepoint))
        if scans and scans[0].days_from_baseline != 0:
            problems.append(
                f"subject {sid!r} has no baseline (no scan at day 0; earliest is day "
                f"{scans[0].days_from_baseline:g})"
            )
        day_list = [s.days_from_baseline for s in scans]
        if len(set(day_list)) != len(day_list):
            problems.append(f"subject {sid!r} has two scans on the same day")
        error = None
        if subject_missing:
            missing_files.extend(subject_missing)
            error = "missing file(s): " + "; ".join(subject_missing)
        plans.append(SubjectPlan(sid, tuple(scans), error))
    if missing_files and not skip_missing:
        problems.append(
            f"{len(missing_files)} missing file(s): " + "; ".join(missing_files)
            + " (or rerun with --skip-missing to report those subjects as failed)"
        )
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    return tuple(plans)


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
        problems.append(f"row {n}: days_from_baseline {text!r} is not a number")
        return None
    if not days >= 0:
        problems.append(f"row {n}: days_from_baseline {text!r} is negative")
        return None
    if from_date is not None and from_date != days:
        problems.append(
            f"row {n}: days_from_baseline {days:g} disagrees with scan_date (day {from_date:g})"
        )
    return days


def _clinical(row: dict, n: int, problems: list[str]) -> ClinicalStatus | None:
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
            problems.append(f"row {n}: steroid_dose_mg {dose_text!r} is not a number >= 0")
            ok = False
    if neuro is not None and neuro not in NEURO_STATES:
        problems.append(f"row {n}: neuro_status {neuro!r} is not one of {', '.join(NEURO_STATES)}")
        ok = False
    extra = None
    if extra_text:
        if extra_text in _TRUE:
            extra = True
        elif extra_text in _FALSE:
            extra = False
        else:
            problems.append(f"row {n}: extracns_progression {extra_text!r} is not true/false")
            ok = False
    return ClinicalStatus(dose, neuro, extra) if ok else None
