"""``run.log``: one line per event of a run, appended across runs, so that an interrupted and
resumed run reads as such. With ``provenance.json`` the only place a clock is read."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..response.subject import SubjectResult

__all__ = ["RunLog"]


class RunLog:
    """``run.log``: a line per subject (status, seconds or 'stored'), appended as results
    arrive; earlier runs' lines are kept, so an interrupted and resumed run reads as such."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.note("run started")

    def _write(self, text: str) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._fh.write(f"{stamp}\t{text}\n")
        self._fh.flush()

    def note(self, text: str) -> None:
        self._write(text)

    def subject(self, result: SubjectResult, seconds: float | None) -> None:
        took = "stored" if seconds is None else f"{seconds:.3f}s"
        error = result.subject_row()["error"].replace("\n", " ")
        self._write(f"{result.subject_id}\t{result.status}\t{took}\t{error}".rstrip())

    def close(self) -> None:
        if not self._fh.closed:
            self.note("run ended")
            self._fh.close()
