"""Per-subject results kept in the output folder, so that a run can be resumed.

Each subject's result is stored, as soon as it is known, in
``<out>/.cnsvol/subjects/<key>.json``, written atomically (its QC picture beside it, as
``<key>.png``). The key is a SHA-256 over
everything that determines the result: the cnsvol version, the run's configuration (criteria,
measurement options, QC), the subject's manifest rows (ids, timepoints, days, clinical
values, paths) and the *content* (SHA-256) of every input file. A re-run finds the results
whose key still matches and computes only the rest; results no longer wanted are removed at
the end, so the folder holds what an uninterrupted run would hold. A stored result is the
versioned JSON form of its :class:`~cnsvol.response.SubjectResult` (sorted keys, nothing
time-dependent: the same bytes however it was computed); a result of another version is
computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..cohort.manifest import SubjectPlan
from ..response.subject import SubjectResult

__all__ = ["STORE_DIR", "FileHasher", "ResultStore", "Stored", "json_value", "subject_key"]

STORE_DIR = Path(".cnsvol") / "subjects"


class FileHasher:
    """SHA-256 of file contents, each file read once per run (keyed by path, size, mtime)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int, int], str | None] = {}

    def __call__(self, path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):  # a DICOM folder: every file in it, by relative name
            return self._folder(Path(path))
        if not stat.S_ISREG(st.st_mode):  # a named pipe (opening one would block)...
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._seen:
            h = hashlib.sha256()
            try:
                with open(path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                self._seen[key] = h.hexdigest()
            except OSError:  # unreadable: the subject fails on its own
                self._seen[key] = None
        return self._seen[key]

    def _folder(self, folder: Path) -> str | None:
        h = hashlib.sha256()
        try:
            files = sorted(p for p in folder.rglob("*") if p.is_file())
        except OSError:
            return None
        for p in files:
            h.update(f"{p.relative_to(folder).as_posix()}\0{self(p)}\n".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Stored:
    """A stored result; ``retry``: its worker died, so the next run tries it again."""

    result: SubjectResult
    retry: bool = False


class ResultStore:
    """The stored :class:`~cnsvol.response.SubjectResult` of each subject, by key."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.dir = self.out_dir / STORE_DIR

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def picture(self, key: str) -> Path:
        """Where the QC picture of the result stored under ``key`` is kept (it reaches
        ``figures/qc`` with the run's other outputs, so a picture there always belongs to
        the results beside it)."""
        return self.dir / f"{key}.png"

    def load(self, key: str) -> Stored | None:
        """The stored result, or None: absent, unreadable, of another format version, or not
        the key's (then it is computed again)."""
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("store_key") != key:
                return None
            return Stored(SubjectResult.from_dict(record), bool(record.get("retry")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, key: str, result: SubjectResult, *, retry: bool = False) -> None:
        """Store ``result`` under ``key`` (its JSON form, with ``store_key`` and, for a subject
        whose worker died, ``retry``)."""
        record: dict[str, Any] = {**result.to_dict(), "store_key": key}
        if retry:
            record["retry"] = True
        text = json.dumps(record, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
        # no fsync per subject (thousands of them): a record a power cut left empty fails
        # to load and is computed again
        atomic_write_text(self.path(key), text, durable=False)

    def prune(self, keep: set[str]) -> None:
        """Remove stored results (and QC pictures) not in ``keep`` and leftovers of
        interrupted writes."""
        if not self.dir.is_dir():
            return
        for entry in self.dir.iterdir():
            stem, dot, suffix = entry.name.rpartition(".")
            if not dot or suffix not in ("json", "png") or stem not in keep:
                entry.unlink(missing_ok=True)


def json_value(value: Any) -> Any:
    """``json.dumps`` default: numpy scalars as Python numbers, paths as text."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def subject_key(plan: SubjectPlan, fingerprint: str, hasher: FileHasher) -> str:
    """The key of one subject's result (see the module docstring)."""
    scans = [
        {
            "timepoint": s.timepoint,
            "days": s.days_from_baseline,
            "clinical": [s.clinical.steroid_dose_mg, s.clinical.neuro_status,
                         s.clinical.extracns_progression],
            "mask": s.mask,
            "mask_sha256": hasher(s.mask_path),
            "image": s.image,
            "image_sha256": hasher(s.image_path),
        }
        for s in plan.scans
    ]
    text = json.dumps({"config": fingerprint, "subject_id": plan.subject_id,
                       "error": plan.error, "scans": scans,
                       "radiotherapy_end_days": plan.radiotherapy_end_days},
                      sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
