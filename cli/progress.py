"""Progress of a cohort run on the terminal: a bar with counts, rate and ETA on an interactive
terminal; plain lines at intervals otherwise (CI, cluster logs). Failed subjects are printed
as they happen in both cases."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


ETA_AFTER = 5
"""Subjects computed before an ETA is given."""


class Progress:
    """Callable as ``progress(done, n_done, total)`` (see :func:`cnsvol.batch.run_cohort`)."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 interval: float | None = None, clock=time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.clock = clock
        self.start = clock()
        self.last = -float("inf")
        self.computed = 0
        self.failed = 0
        self.drawn = False

    def line(self, n_done: int, total: int, now: float) -> str:
        elapsed = now - self.start
        rate = self.computed / elapsed if elapsed > 0 and self.computed else 0.0
        # no estimate from the first few subjects (start-up, imports, the first file reads)
        settled = self.computed >= ETA_AFTER and elapsed >= 1.0
        eta = _duration((total - n_done) / rate) if rate > 0 and settled else "?"
        if n_done == total:
            eta = "done"
        text = (f"{n_done}/{total} subjects, {self.failed} failed, "
                f"{rate:.1f} subjects/s, ETA {eta}")
        if not self.tty:
            return f"progress: {text}"
        filled = int(BAR_WIDTH * n_done / total) if total else BAR_WIDTH
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text}"

    def __call__(self, done: Any, n_done: int, total: int) -> None:
        if done.seconds is not None:
            self.computed += 1
        if done.status != "ok":
            self.failed += 1
            self._clear()
            print(f"FAILED {done.subject_id}: {done.error}", file=self.stream, flush=True)
        now = self.clock()
        if n_done == total or now - self.last >= self.interval:
            self.last = now
            if self.tty:
                self.stream.write("\r\x1b[2K" + self.line(n_done, total, now))
                self.drawn = True
                if n_done == total:
                    self.stream.write("\n")
                    self.drawn = False
            else:
                self.stream.write(self.line(n_done, total, now) + "\n")
            self.stream.flush()

    def _clear(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\r\x1b[2K")
            self.drawn = False
