"""A cohort manifest from a BIDS derivatives tree.

:func:`bids_manifest` finds one lesion mask per subject x session (:mod:`.tree`) and returns
manifest rows; :func:`write_manifest` writes them as a CSV that
:func:`cnsvol.cohort.manifest.read_manifest` loads.

* **Dates**: ``acq_time`` of ``sub-<label>/sub-<label>_sessions.tsv`` (:mod:`.dates`);
  ``scan_date`` is written when every session of the subject has one. A subject with several
  sessions and a missing date is an error unless ``allow_undated=True``: its sessions are then
  ordered by label (natural order: ``ses-2`` before ``ses-10``) and their date cells left empty,
  to be filled in by hand.
* **Images** (optional): with ``raw``, the raw scan of the same subject/session becomes
  ``image_path``.

Every problem found (ambiguous sessions, unreadable sessions tables, malformed or missing dates)
is reported at once, in one :class:`~cnsvol.errors.BidsError`.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...csvformat import write_csv
from ...errors import BidsError
from .dates import iso, session_dates
from .tree import (
    IMAGE_SUFFIXES, MASK_SUFFIXES, BidsMask, BidsSubject, ambiguity_message, existing_dir,
    find_image, listing, matches, natural_key, nothing_found, scan, selection, selection_text,
    where,
)

__all__ = ["MANIFEST_COLUMNS", "BidsWarning", "bids_manifest", "write_manifest"]

MANIFEST_COLUMNS = (
    "subject_id", "timepoint", "scan_date", "days_from_baseline", "mask_path", "image_path",
)
SINGLE_TIMEPOINT = "baseline"  # timepoint label of a subject without ses-* folders


class BidsWarning(UserWarning):
    """Something the manifest can be written with but a user should know about."""


def bids_manifest(
    root: str | Path,
    *,
    desc: str | None = None,
    label: str | None = None,
    space: str | None = None,
    suffix: str | None = None,
    entities: Mapping[str, str] | None = None,
    raw: str | Path | None = None,
    image_suffixes: Sequence[str] = IMAGE_SUFFIXES,
    allow_undated: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Manifest rows (one per subject x session) from the BIDS derivatives tree ``root``.

    ``desc``, ``label``, ``space`` and ``entities`` (any other ``key: value``) keep only masks
    whose file name carries those entity values; ``suffix`` keeps ``mask`` or ``dseg`` files.
    ``raw`` is the raw BIDS tree, searched for ``image_path`` (first suffix of
    ``image_suffixes`` found) and for ``sessions.tsv`` files missing from ``root``.

    Each row holds ``subject_id`` and ``timepoint`` (the BIDS labels, without ``sub-`` /
    ``ses-``), ``scan_date`` (``YYYY-MM-DD`` or ``""``), ``days_from_baseline`` (``0`` for a
    subject's only timepoint when undated, else ``""``), ``mask_path`` and ``image_path``
    (absolute :class:`~pathlib.Path`, or ``None``), and ``entities`` (the mask's BIDS entities).
    Rows are sorted by subject (natural order), then by date, or by session label when undated.

    Warnings (single-timepoint subjects, sessions whose masks were all filtered out, files not
    named as BIDS, missing raw images, undated subjects kept by ``allow_undated``) go to
    ``on_warning``, or are issued as :class:`BidsWarning`. Raises :class:`BidsError`.
    """
    warn = on_warning or (lambda msg: warnings.warn(msg, BidsWarning, stacklevel=3))
    root = existing_dir(root, "BIDS derivatives folder", "give the folder that holds sub-*/")
    raw_root = None
    if raw is not None:
        raw_root = existing_dir(raw, "raw BIDS folder (--raw)", "give the raw BIDS dataset")
    select = selection(desc=desc, label=label, space=space, entities=entities)
    if suffix is not None and suffix not in MASK_SUFFIXES:
        raise BidsError(f"suffix {suffix!r} is not one of {', '.join(MASK_SUFFIXES)}")
    subjects = _scan_tree(root, warn)
    problems: list[str] = []
    chosen = _choose(root, subjects, select, suffix, warn, problems)
    dated = _Dated(root, raw_root, tuple(image_suffixes), problems)
    for sub in sorted(chosen, key=natural_key):
        dated.add(sub, chosen[sub])
    if dated.undated and not allow_undated:
        problems.append(
            f"{len(dated.undated)} subject(s) have sessions without a date, so days from "
            "baseline cannot be derived:\n  " + "\n  ".join(dated.undated) + "\n"
            "Fix: add the ISO date (YYYY-MM-DD) in the acq_time column of "
            "sub-<label>/sub-<label>_sessions.tsv for every session_id, or rerun with "
            "--allow-undated (allow_undated=True) and fill scan_date or days_from_baseline in "
            "the manifest by hand"
        )
    if problems:
        raise BidsError("\n".join(problems))
    _final_warnings(dated, raw_root, image_suffixes, warn)
    return dated.rows


def _scan_tree(root: Path, warn: Callable[[str], None]) -> dict[str, BidsSubject]:
    subjects, misnamed, ignored = scan(root)
    if misnamed:
        warn(
            f"{len(misnamed)} file(s) ending in _mask/_dseg are not BIDS-named for their folder "
            f"and were skipped: {listing(misnamed)}"
        )
    if ignored:
        warn(
            f"{len(ignored)} mask(s) under sub-*/anat/ of subjects that have ses-* folders were "
            f"skipped (only the session folders are read): {listing(ignored)}"
        )
    if not any(subjects[s].sessions for s in subjects):
        raise BidsError(nothing_found(root, subjects))
    return subjects


def _choose(root: Path, subjects: dict[str, BidsSubject], select: dict[str, str],
            suffix: str | None, warn: Callable[[str], None],
            problems: list[str]) -> dict[str, dict[str | None, BidsMask]]:
    """The one mask of each session that the selection keeps; sessions with several go to
    ``problems``, sessions with none are a warning."""
    ambiguous: list[tuple[str, str | None, list[BidsMask]]] = []
    filtered_out: list[str] = []
    chosen: dict[str, dict[str | None, BidsMask]] = {}
    for sub in sorted(subjects, key=natural_key):
        for ses, masks in subjects[sub].sessions.items():
            keep = [m for m in masks if matches(m, select, suffix)]
            if len(keep) == 1:
                chosen.setdefault(sub, {})[ses] = keep[0]
            elif len(keep) > 1:
                ambiguous.append((sub, ses, keep))
            else:
                filtered_out.append(
                    f"{where(sub, ses)} ({', '.join(sorted(m.path.name for m in masks))})"
                )
    if not chosen and not ambiguous:
        found = sorted(
            m.describe(root) for s in subjects.values() for ms in s.sessions.values() for m in ms
        )
        raise BidsError(
            f"{root}: no mask matches {selection_text(select, suffix)}; masks found: "
            f"{listing(found)}. Fix: change the selection options"
        )
    if filtered_out:
        warn(
            f"{len(filtered_out)} session(s) have masks but none matching "
            f"{selection_text(select, suffix)}, and are left out: {'; '.join(filtered_out)}"
        )
    if ambiguous:
        problems.append(ambiguity_message(root, ambiguous))
    return chosen


class _Dated:
    """Manifest rows in date order, subject by subject; what cannot be dated is collected."""

    def __init__(self, root: Path, raw_root: Path | None, image_suffixes: tuple[str, ...],
                 problems: list[str]) -> None:
        self.root, self.raw_root, self.suffixes = root, raw_root, image_suffixes
        self.problems = problems
        self.rows: list[dict[str, Any]] = []
        self.single: list[str] = []
        self.undated: list[str] = []  # subject: sessions without acq_time

    def _row(self, sub: str, ses: str | None, date: _dt.date | None, days: int | str,
             mask: BidsMask) -> None:
        label = SINGLE_TIMEPOINT if ses is None else ses
        self.rows.append(_row(sub, label, iso(date), days, mask, self.raw_root, self.suffixes))

    def add(self, sub: str, sessions: dict[str | None, BidsMask]) -> None:
        if None in sessions:  # no ses-* level: one timepoint
            self.single.append(f"{sub} (sub-{sub}/anat)")
            self._row(sub, None, None, 0, sessions[None])
            return
        labels = sorted(sessions, key=natural_key)  # type: ignore[arg-type]
        dates, note = session_dates(self.root, self.raw_root, sub, labels, self.problems)
        if dates is None:
            return  # unreadable or malformed sessions table: already a problem
        if len(labels) == 1:
            self.single.append(f"{sub} (ses-{labels[0]})")
            date = dates.get(labels[0])
            self._row(sub, labels[0], date, "" if date else 0, sessions[labels[0]])
            return
        missing = [s for s in labels if dates.get(s) is None]
        if missing:
            self.undated.append(f"subject {sub}: no acq_time for session(s) "
                                f"{', '.join('ses-' + s for s in missing)} ({note})")
        else:
            labels = self._by_date(sub, labels, dates, note)
        for s in labels:
            self._row(sub, s, dates.get(s), "", sessions[s])

    def _by_date(self, sub: str, labels: list[str], dates: dict[str, Any],
                 note: str) -> list[str]:
        by_date: dict[_dt.date, list[str]] = {}
        for s in labels:
            by_date.setdefault(dates[s], []).append(s)
        for d, ss in sorted(by_date.items()):
            if len(ss) > 1:
                self.problems.append(
                    f"subject {sub}: sessions {', '.join('ses-' + s for s in ss)} have the same "
                    f"date {d.isoformat()} ({note}), and cnsvol counts time in whole days. "
                    "Fix: correct acq_time, or move the extra session's mask out of the tree"
                )
        return sorted(labels, key=lambda s: (dates[s], natural_key(s)))


def _final_warnings(dated: _Dated, raw_root: Path | None, image_suffixes: Sequence[str],
                    warn: Callable[[str], None]) -> None:
    if dated.undated:  # kept: allow_undated
        warn(
            f"{len(dated.undated)} subject(s) kept with undated sessions, in session-label "
            "order, missing dates left empty; fill scan_date or days_from_baseline before "
            "cnsvol run: " + "; ".join(dated.undated)
        )
    if dated.single:
        warn(
            f"{len(dated.single)} subject(s) have a single timepoint, and a response needs a "
            "baseline and a follow-up (cnsvol run will report them as failed): "
            f"{', '.join(dated.single)}"
        )
    if raw_root is not None:
        no_image = [f"{r['subject_id']}/{r['timepoint']}" for r in dated.rows
                    if r["image_path"] is None]
        if no_image:
            warn(
                f"no raw image (*_{', *_'.join(image_suffixes)}) in {raw_root} for "
                f"{len(no_image)} scan(s), image_path left empty: {listing(no_image)}"
            )


def write_manifest(
    rows: Iterable[Mapping[str, Any]], path: str | Path, *, overwrite: bool = True
) -> Path:
    """Write manifest rows as CSV, atomically, with paths relative to the manifest's folder.

    Returns the path written. ``overwrite=False`` refuses to replace an existing file.
    """
    path = Path(path)
    if path.suffix.lower() in (".tsv", ".tab", ".xlsx", ".parquet"):
        raise BidsError(f"{path}: the manifest is written as CSV. Fix: give a .csv file name")
    if path.is_dir():
        raise BidsError(f"{path}: is a folder. Fix: give a file name such as {path}/manifest.csv")
    if path.exists() and not overwrite:
        raise BidsError(
            f"{path}: already exists (it may hold hand-edited columns). Fix: choose another "
            "name, or overwrite it with --force"
        )
    base = Path(os.path.abspath(path)).parent.resolve()
    out = []
    for row in rows:
        rec = {c: row.get(c) for c in MANIFEST_COLUMNS}
        for col in ("mask_path", "image_path"):
            if rec[col] is not None and rec[col] != "":
                rec[col] = _relative(Path(rec[col]), base)
        out.append(rec)
    if not out:
        raise BidsError(f"{path}: no rows to write")
    write_csv(path, out, MANIFEST_COLUMNS)
    return path


def _row(sub: str, timepoint: str, scan_date: str, days: int | str, mask: BidsMask,
         raw_root: Path | None, image_suffixes: Sequence[str]) -> dict[str, Any]:
    image = None
    if raw_root is not None:
        image = find_image(raw_root, sub, mask.session, image_suffixes)
    return {
        "subject_id": sub,
        "timepoint": timepoint,
        "scan_date": scan_date,
        "days_from_baseline": days,
        "mask_path": Path(os.path.abspath(mask.path)),
        "image_path": None if image is None else Path(os.path.abspath(image)),
        "entities": {**mask.entities, "suffix": mask.suffix},
    }


def _relative(path: Path, base: Path) -> str:
    path = Path(os.path.abspath(path))
    target = path.parent.resolve() / path.name  # the file itself may be a symlink (annex)
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # another drive
        return str(target)
