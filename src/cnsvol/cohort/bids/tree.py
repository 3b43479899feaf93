"""Finding lesion masks (and raw images) in a BIDS tree: file names, entities, selection.

* **Masks**: ``sub-<label>/ses-<label>/anat/*_mask.nii[.gz]`` and ``*_dseg.nii[.gz]``; a subject
  without ``ses-*`` folders is read from ``sub-<label>/anat/`` (one timepoint). BIDS entities
  (``sub``, ``ses``, ``desc``, ``label``, ``space``, ...) are parsed from the file names and
  select among several masks of a session; a session left with more than one candidate is an
  error that lists every such session and the option that resolves it (never a guess).
* **Images** (optional): the raw scan of the same subject/session
  (``sub-<label>[/ses-<label>]/anat/*_T1w.nii[.gz]``, then ``_FLAIR``, ``_T2w``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BidsError

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
    "BidsMask",
    "BidsSubject",
    "ambiguity_message",
    "existing_dir",
    "find_image",
    "listing",
    "matches",
    "natural_key",
    "nothing_found",
    "parse_bids_name",
    "scan",
    "selection",
    "selection_text",
    "where",
]

MASK_SUFFIXES = ("mask", "dseg")
IMAGE_SUFFIXES = ("T1w", "FLAIR", "T2w")
_EXTENSIONS = (".nii.gz", ".nii")
_PATTERNS = (
    "sub-*/ses-*/anat/*_{mask,dseg}.nii[.gz]",
    "sub-*/anat/*_{mask,dseg}.nii[.gz] (subjects without ses-* folders)",
)


@dataclass(frozen=True)
class BidsMask:
    path: Path
    subject: str
    session: str | None  # None: no ses-* level
    entities: dict[str, str]
    suffix: str

    def describe(self, root: Path) -> str:
        return rel_display(self.path, root)


@dataclass
class BidsSubject:
    label: str
    folder: Path
    sessions: dict[str | None, list[BidsMask]] = field(default_factory=dict)


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


def scan(root: Path) -> tuple[dict[str, BidsSubject], list[str], list[str]]:
    subjects: dict[str, BidsSubject] = {}
    misnamed: list[str] = []
    ignored: list[str] = []
    for sub_dir in sorted(_dirs(root, "sub-"), key=lambda p: natural_key(p.name)):
        sub = sub_dir.name[4:]
        subject = subjects[sub] = BidsSubject(sub, sub_dir)
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
              misnamed: list[str]) -> list[BidsMask]:
    if not anat.is_dir():
        return []
    found: list[BidsMask] = []
    for path in sorted(anat.iterdir()):
        name = path.name
        if name.startswith(".") or not path.is_file():
            continue
        parsed = parse_bids_name(name)
        if parsed is None:
            stem = _stem(name)
            if stem is not None and stem.endswith(tuple("_" + s for s in MASK_SUFFIXES)):
                misnamed.append(rel_display(path, root))
            continue
        entities, suffix, _ = parsed
        if suffix not in MASK_SUFFIXES:
            continue
        if entities["sub"] != sub or (ses is not None and entities.get("ses", ses) != ses) or (
            ses is None and "ses" in entities
        ):
            misnamed.append(rel_display(path, root))
            continue
        found.append(BidsMask(path, sub, ses, entities, suffix))
    return found


def _stem(name: str) -> str | None:
    ext = next((e for e in _EXTENSIONS if name.lower().endswith(e)), None)
    return None if ext is None else name[: -len(ext)]


def nothing_found(root: Path, subjects: Mapping[str, BidsSubject]) -> str:
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


def selection(**given: Any) -> dict[str, str]:
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


def matches(mask: BidsMask, select: Mapping[str, str], suffix: str | None) -> bool:
    if suffix is not None and mask.suffix != suffix:
        return False
    return all(mask.entities.get(k) == v for k, v in select.items())


def selection_text(select: Mapping[str, str], suffix: str | None) -> str:
    parts = [f"{k}-{v}" for k, v in select.items()] + ([f"_{suffix}"] if suffix else [])
    return " and ".join(parts) if parts else "the search"

_OPTION = {"desc": "--desc", "label": "--label", "space": "--space"}


def ambiguity_message(root: Path, ambiguous: list[tuple[str, str | None, list[BidsMask]]]) -> str:
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


def find_image(raw_root: Path, sub: str, ses: str | None,
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


def existing_dir(path: str | Path, what: str, fix: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise BidsError(f"{path}: {what} not found. Fix: check the path, or {fix}")
    if not path.is_dir():
        raise BidsError(f"{path}: {what} is not a folder. Fix: {fix}")
    return path


def where(sub: str, ses: str | None) -> str:
    return f"sub-{sub}/ses-{ses}" if ses else f"sub-{sub}"


def rel_display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def listing(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
