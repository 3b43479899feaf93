"""``run.log``: one line per event of a run, appended across runs, so that an interrupted and
resumed run reads as such. With ``provenance.json`` the only place a clock is read."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..report.names import one_line
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
        error = one_line(result.subject_row()["error"])
        self._write(f"{one_line(result.subject_id)}\t{result.status}\t{took}\t{error}"
                    .rstrip())

    def stopped(self, exc: BaseException) -> None:
        """The run did not finish: why (a run that stops never logs "run ended")."""
        if not self._fh.closed:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else \
                f"{type(exc).__name__}: {exc}"
            self.note(one_line(f"run stopped before its end ({why})"))
            self._fh.close()

    def close(self) -> None:
        """End of a run that finished: "run ended" (nothing when :meth:`stopped` was told)."""
        if not self._fh.closed:
            self.note("run ended")
            self._fh.close()
