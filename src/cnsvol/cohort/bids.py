"""A cohort manifest from a BIDS derivatives tree.

:func:`bids_manifest` finds one lesion mask per subject x session and returns manifest rows;
:func:`write_manifest` writes them as a CSV that :func:`cnsvol.manifest.read_manifest` loads.

* **Masks**: ``sub-<label>/ses-<label>/anat/*_mask.nii[.gz]`` and ``*_dseg.nii[.gz]``; a subject
  without ``ses-*`` folders is read from ``sub-<label>/anat/`` (one timepoint). BIDS entities
  (``sub``, ``ses``, ``desc``, ``label``, ``space``, ...) are parsed from the file names and
  select among several masks of a session; a session left with more than one candidate is an
  error that lists every such session and the option that resolves it (never a guess).
* **Dates**: ``acq_time`` of ``sub-<label>/sub-<label>_sessions.tsv`` (looked up in the
  derivatives tree, then in the raw tree); ``scan_date`` is written when every session of the
  subject has one. A subject with several sessions and a missing date is an error unless
  ``allow_undated=True``: its sessions are then ordered by label (natural order: ``ses-2``
  before ``ses-10``) and their date cells left empty, to be filled in by hand.
* **Images** (optional): with ``raw``, the raw scan of the same subject/session
  (``sub-<label>[/ses-<label>]/anat/*_T1w.nii[.gz]``, then ``_FLAIR``, ``_T2w``) becomes
  ``image_path``.

Every problem found (ambiguous sessions, unreadable sessions tables, malformed or missing dates)
is reported at once, in one :class:`BidsError`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CnsvolError
from .tabular import read_table, write_csv

__all__ = [
    "MANIFEST_COLUMNS",
    "MASK_SUFFIXES",
    "BidsError",
    "BidsWarning",
    "bids_manifest",
    "natural_key",
    "parse_bids_name",
    "write_manifest",
]

MASK_SUFFIXES = ("mask", "dseg")
IMAGE_SUFFIXES = ("T1w", "FLAIR", "T2w")
MANIFEST_COLUMNS = (
    "subject_id", "timepoint", "scan_date", "days_from_baseline", "mask_path", "image_path",
)
SINGLE_TIMEPOINT = "baseline"  # timepoint label of a subject without ses-* folders
_EXTENSIONS = (".nii.gz", ".nii")
_MISSING = ("", "n/a", "na", "nan")
_PATTERNS = (
    "sub-*/ses-*/anat/*_{mask,dseg}.nii[.gz]",
    "sub-*/anat/*_{mask,dseg}.nii[.gz] (subjects without ses-* folders)",
)


class BidsError(CnsvolError, ValueError):
    """A BIDS tree cannot be turned into a manifest; the message lists every problem found."""


class BidsWarning(UserWarning):
    """Something the manifest can be written with but a user should know about."""


@dataclass(frozen=True)
class _Mask:
    path: Path
    subject: str
    session: str | None  # None: no ses-* level
    entities: dict[str, str]
    suffix: str

    def describe(self, root: Path) -> str:
        return _rel_display(self.path, root)


@dataclass
class _Subject:
    label: str
    folder: Path
    sessions: dict[str | None, list[_Mask]] = field(default_factory=dict)


def natural_key(text: str) -> tuple:
    """Sort key where digit runs compare as numbers: ``2 < 10``, ``ses-2 < ses-10``."""
    parts = re.split(r"(\d+)", text)
    return (tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), text)


def parse_bids_name(name: str) -> tuple[dict[str, str], str, str] | None:
    """``(entities, suffix, extension)`` of a BIDS file name, or ``None`` if it is not one.

    ``sub-01_ses-02_desc-tumor_mask.nii.gz`` -> ``({"sub": "01", "ses": "02", "desc":
    "tumor"}, "mask", ".nii.gz")``.
    """
    ext = next((e for e in _EXTENSIONS if name.lower().endswith(e)), None)
    if ext is None:
        return None
    parts = name[: -len(ext)].split("_")
    if len(parts) < 2 or not parts[-1]:
        return None
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        key, sep, value = part.partition("-")
        if not sep or not key or not value or key in entities:
            return None
        entities[key] = value
    if "sub" not in entities:
        return None
    return entities, parts[-1], ext


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
    root = _existing_dir(root, "BIDS derivatives folder", "give the folder that holds sub-*/")
    raw_root = None
    if raw is not None:
        raw_root = _existing_dir(raw, "raw BIDS folder (--raw)", "give the raw BIDS dataset")
    select = _selection(desc=desc, label=label, space=space, entities=entities)
    if suffix is not None and suffix not in MASK_SUFFIXES:
        raise BidsError(f"suffix {suffix!r} is not one of {', '.join(MASK_SUFFIXES)}")

    subjects, misnamed, ignored = _scan(root)
    if misnamed:
        warn(
            f"{len(misnamed)} file(s) ending in _mask/_dseg are not BIDS-named for their folder "
            f"and were skipped: {_listing(misnamed)}"
        )
    if ignored:
        warn(
            f"{len(ignored)} mask(s) under sub-*/anat/ of subjects that have ses-* folders were "
            f"skipped (only the session folders are read): {_listing(ignored)}"
        )
    if not any(subjects[s].sessions for s in subjects):
        raise BidsError(_nothing_found(root, subjects))

    problems: list[str] = []
    ambiguous: list[tuple[str, str | None, list[_Mask]]] = []
    filtered_out: list[str] = []
    chosen: dict[str, dict[str | None, _Mask]] = {}
    for sub in sorted(subjects, key=natural_key):
        for ses, masks in subjects[sub].sessions.items():
            keep = [m for m in masks if _matches(m, select, suffix)]
            if len(keep) == 1:
                chosen.setdefault(sub, {})[ses] = keep[0]
            elif len(keep) > 1:
                ambiguous.append((sub, ses, keep))
            else:
                filtered_out.append(
                    f"{_where(sub, ses)} ({', '.join(sorted(m.path.name for m in masks))})"
                )
    if not chosen and not ambiguous:
        found = sorted(
            m.describe(root) for s in subjects.values() for ms in s.sessions.values() for m in ms
        )
        raise BidsError(
            f"{root}: no mask matches {_selection_text(select, suffix)}; masks found: "
            f"{_listing(found)}. Fix: change the selection options"
        )
    if filtered_out:
        warn(
            f"{len(filtered_out)} session(s) have masks but none matching "
            f"{_selection_text(select, suffix)}, and are left out: {'; '.join(filtered_out)}"
        )
    if ambiguous:
        problems.append(_ambiguity_message(root, ambiguous))

    rows: list[dict[str, Any]] = []
    single: list[str] = []
    undated: list[str] = []
    kept_undated: list[str] = []
    for sub in sorted(chosen, key=natural_key):
        sessions = chosen[sub]
        if None in sessions:  # no ses-* level: one timepoint
            single.append(f"{sub} (sub-{sub}/anat)")
            rows.append(_row(sub, SINGLE_TIMEPOINT, "", 0, sessions[None], raw_root, image_suffixes))
            continue
        labels = sorted(sessions, key=natural_key)  # type: ignore[arg-type]
        dates, note = _session_dates(root, raw_root, sub, labels, problems)
        if dates is None:
            continue  # unreadable or malformed sessions table: already a problem
        missing = [s for s in labels if dates.get(s) is None]
        if len(labels) == 1:
            single.append(f"{sub} (ses-{labels[0]})")
            date = dates.get(labels[0])
            days: int | str = "" if date else 0
            rows.append(_row(sub, labels[0], _iso(date), days, sessions[labels[0]], raw_root,
                             image_suffixes))
            continue
        if missing:
            text = (f"subject {sub}: no acq_time for session(s) "
                    f"{', '.join('ses-' + s for s in missing)} ({note})")
            (kept_undated if allow_undated else undated).append(text)
        else:
            by_date: dict[_dt.date, list[str]] = {}
            for s in labels:
                by_date.setdefault(dates[s], []).append(s)  # type: ignore[arg-type]
            same = {d: ss for d, ss in by_date.items() if len(ss) > 1}
            for d, ss in sorted(same.items()):
                problems.append(
                    f"subject {sub}: sessions {', '.join('ses-' + s for s in ss)} have the same "
                    f"date {d.isoformat()} ({note}), and cnsvol counts time in whole days. "
                    "Fix: correct acq_time, or move the extra session's mask out of the tree"
                )
            labels.sort(key=lambda s: (dates[s], natural_key(s)))
        for s in labels:
            rows.append(_row(sub, s, _iso(dates.get(s)), "", sessions[s], raw_root,
                             image_suffixes))
    if undated:
        problems.append(
            f"{len(undated)} subject(s) have sessions without a date, so days from baseline "
            "cannot be derived:\n  " + "\n  ".join(undated) + "\n"
            "Fix: add the ISO date (YYYY-MM-DD) in the acq_time column of "
            "sub-<label>/sub-<label>_sessions.tsv for every session_id, or rerun with "
            "--allow-undated (allow_undated=True) and fill scan_date or days_from_baseline in "
            "the manifest by hand"
        )
    if problems:
        raise BidsError("\n".join(problems))
    if kept_undated:
        warn(
            f"{len(kept_undated)} subject(s) kept with undated sessions, in session-label order, "
            "missing dates left empty; fill scan_date or days_from_baseline before cnsvol run: "
            + "; ".join(kept_undated)
        )
    if single:
        warn(
            f"{len(single)} subject(s) have a single timepoint, and a response needs a baseline "
            f"and a follow-up (cnsvol run will report them as failed): {', '.join(single)}"
        )
    if raw_root is not None:
        no_image = [f"{r['subject_id']}/{r['timepoint']}" for r in rows if r["image_path"] is None]
        if no_image:
            warn(
                f"no raw image (*_{', *_'.join(image_suffixes)}) in {raw_root} for "
                f"{len(no_image)} scan(s), image_path left empty: {_listing(no_image)}"
            )
    return rows


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


# -- finding masks ---------------------------------------------------------------------------


def _scan(root: Path) -> tuple[dict[str, _Subject], list[str], list[str]]:
    subjects: dict[str, _Subject] = {}
    misnamed: list[str] = []
    ignored: list[str] = []
    for sub_dir in sorted(_dirs(root, "sub-"), key=lambda p: natural_key(p.name)):
        sub = sub_dir.name[4:]
        subject = subjects[sub] = _Subject(sub, sub_dir)
        ses_dirs = sorted(_dirs(sub_dir, "ses-"), key=lambda p: natural_key(p.name))
        if ses_dirs:
            for ses_dir in ses_dirs:
                ses = ses_dir.name[4:]
                masks = _masks_in(ses_dir / "anat", sub, ses, root, misnamed)
                if masks:
                    subject.sessions[ses] = masks
            flat = _masks_in(sub_dir / "anat", sub, None, root, [])
            ignored.extend(m.describe(root) for m in flat)
        else:
            masks = _masks_in(sub_dir / "anat", sub, None, root, misnamed)
            if masks:
                subject.sessions[None] = masks
    return subjects, misnamed, ignored


def _dirs(folder: Path, prefix: str) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.name.startswith(prefix) and len(p.name) > len(prefix)
            and p.is_dir()]


def _masks_in(anat: Path, sub: str, ses: str | None, root: Path,
              misnamed: list[str]) -> list[_Mask]:
    if not anat.is_dir():
        return []
    found: list[_Mask] = []
    for path in sorted(anat.iterdir()):
        name = path.name
        if name.startswith(".") or not path.is_file():
            continue
        parsed = parse_bids_name(name)
        if parsed is None:
            stem = _stem(name)
            if stem is not None and stem.endswith(tuple("_" + s for s in MASK_SUFFIXES)):
                misnamed.append(_rel_display(path, root))
            continue
        entities, suffix, _ = parsed
        if suffix not in MASK_SUFFIXES:
            continue
        if entities["sub"] != sub or (ses is not None and entities.get("ses", ses) != ses) or (
            ses is None and "ses" in entities
        ):
            misnamed.append(_rel_display(path, root))
            continue
        found.append(_Mask(path, sub, ses, entities, suffix))
    return found


def _stem(name: str) -> str | None:
    ext = next((e for e in _EXTENSIONS if name.lower().endswith(e)), None)
    return None if ext is None else name[: -len(ext)]


def _nothing_found(root: Path, subjects: Mapping[str, _Subject]) -> str:
    lines = [f"{root}: no masks found. Searched: {'; '.join(_PATTERNS)}."]
    if not subjects:
        lines.append("There is no sub-* folder here.")
        nested = sorted(
            p for p in _safe_iterdir(root) if p.is_dir() and not p.name.startswith(".")
            and _dirs(p, "sub-")
        )
        if root.name.startswith(("sub-", "ses-")) or root.name == "anat":
            lines.append(
                "Fix: give the dataset folder that holds the sub-*/ folders (this looks like a "
                "folder inside one)"
            )
        elif nested:
            lines.append(
                "Fix: give the pipeline folder that holds sub-*/, e.g. "
                + ", ".join(str(p) for p in nested[:5])
            )
        else:
            lines.append("Fix: give the BIDS derivatives folder that holds sub-*/ folders")
        return " ".join(lines)
    others: dict[str, int] = {}
    for sub in subjects.values():
        for anat in [sub.folder / "anat", *(d / "anat" for d in _dirs(sub.folder, "ses-"))]:
            for p in _safe_iterdir(anat):
                parsed = parse_bids_name(p.name)
                if parsed is not None:
                    others[parsed[1]] = others.get(parsed[1], 0) + 1
    lines.append(f"{len(subjects)} sub-* folder(s) found")
    if others:
        lines[-1] += ", holding NIfTI files with suffix(es) " + ", ".join(
            f"_{k} ({n})" for k, n in sorted(others.items())
        )
    lines[-1] += "."
    lines.append(
        "Fix: point --bids at the derivatives holding the segmentations, named "
        "sub-<label>[_ses-<label>][_desc-<label>]_mask.nii.gz (or _dseg)"
    )
    return " ".join(lines)


def _safe_iterdir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


# -- selection and ambiguity -----------------------------------------------------------------


def _selection(**given: Any) -> dict[str, str]:
    extra = dict(given.pop("entities") or {})
    select: dict[str, str] = {}
    for key, value in [*given.items(), *extra.items()]:
        if value is None:
            continue
        value = str(value)
        if value.startswith(f"{key}-"):
            value = value[len(key) + 1:]
        if not value or not re.fullmatch(r"[A-Za-z0-9]+", key):
            raise BidsError(f"invalid entity selection {key}={value!r}: give KEY=VALUE")
        if key in ("sub", "ses"):
            raise BidsError(f"cannot select masks by {key!r}: every subject and session is read")
        select[key] = value
    return select


def _matches(mask: _Mask, select: Mapping[str, str], suffix: str | None) -> bool:
    if suffix is not None and mask.suffix != suffix:
        return False
    return all(mask.entities.get(k) == v for k, v in select.items())


def _selection_text(select: Mapping[str, str], suffix: str | None) -> str:
    parts = [f"{k}-{v}" for k, v in select.items()] + ([f"_{suffix}"] if suffix else [])
    return " and ".join(parts) if parts else "the search"


_OPTION = {"desc": "--desc", "label": "--label", "space": "--space"}


def _ambiguity_message(root: Path, ambiguous: list[tuple[str, str | None, list[_Mask]]]) -> str:
    lines = [
        (f"{len(ambiguous)} session(s) have more than one candidate mask, and cnsvol does not "
         "guess which one holds the lesions:")
    ]
    differing: dict[str, set[str]] = {}
    same_entities = False
    for sub, ses, masks in ambiguous:
        lines.append(
            f"  subject {sub}, {'session ' + ses if ses else 'no session'}: "
            + ", ".join(m.describe(root) for m in masks)
        )
        keys = set().union(*(m.entities for m in masks)) - {"sub", "ses"}
        found_difference = False
        for key in sorted(keys):
            values = {m.entities.get(key) for m in masks}
            if len(values) > 1:
                differing.setdefault(key, set()).update(v for v in values if v)
                found_difference = True
        if len({m.suffix for m in masks}) > 1:
            differing.setdefault("suffix", set()).update(m.suffix for m in masks)
            found_difference = True
        if not found_difference:
            same_entities = True
    fixes = []
    for key in sorted(differing, key=lambda k: (k not in _OPTION, k != "suffix", k)):
        values = ", ".join(sorted(differing[key], key=natural_key))
        if key in _OPTION:
            fixes.append(f"{_OPTION[key]} VALUE (values found: {values})")
        elif key == "suffix":
            fixes.append("--suffix mask|dseg (both found)")
        else:
            fixes.append(f"--entity {key}=VALUE (values found: {values})")
    if fixes:
        lines.append("Fix: choose one mask per session with " + ", or ".join(fixes))
    if same_entities:
        lines.append(
            "Some candidates carry the same entities (e.g. the same mask as .nii and .nii.gz): "
            "remove the extra copy"
        )
    return "\n".join(lines)


# -- dates -----------------------------------------------------------------------------------


def _session_dates(
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


def _iso(date: _dt.date | None) -> str:
    return "" if date is None else date.isoformat()


# -- rows and paths --------------------------------------------------------------------------


def _row(sub: str, timepoint: str, scan_date: str, days: int | str, mask: _Mask,
         raw_root: Path | None, image_suffixes: Sequence[str]) -> dict[str, Any]:
    image = None
    if raw_root is not None:
        image = _find_image(raw_root, sub, mask.session, image_suffixes)
    return {
        "subject_id": sub,
        "timepoint": timepoint,
        "scan_date": scan_date,
        "days_from_baseline": days,
        "mask_path": Path(os.path.abspath(mask.path)),
        "image_path": None if image is None else Path(os.path.abspath(image)),
        "entities": {**mask.entities, "suffix": mask.suffix},
    }


def _find_image(raw_root: Path, sub: str, ses: str | None,
                suffixes: Sequence[str]) -> Path | None:
    anat = raw_root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat"
    best: tuple[int, str, Path] | None = None
    for path in _safe_iterdir(anat):
        parsed = parse_bids_name(path.name)
        if parsed is None or path.name.startswith(".") or not path.is_file():
            continue
        entities, suffix, _ = parsed
        if suffix not in suffixes or entities["sub"] != sub or entities.get("ses") != ses:
            continue
        key = (list(suffixes).index(suffix), path.name, path)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else best[2]


def _relative(path: Path, base: Path) -> str:
    path = Path(os.path.abspath(path))
    target = path.parent.resolve() / path.name  # the file itself may be a symlink (annex)
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # another drive
        return str(target)


def _existing_dir(path: str | Path, what: str, fix: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise BidsError(f"{path}: {what} not found. Fix: check the path, or {fix}")
    if not path.is_dir():
        raise BidsError(f"{path}: {what} is not a folder. Fix: {fix}")
    return path


def _where(sub: str, ses: str | None) -> str:
    return f"sub-{sub}/ses-{ses}" if ses else f"sub-{sub}"


def _rel_display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _listing(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
