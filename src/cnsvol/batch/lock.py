"""One run at a time per results folder.

A run (or ``cnsvol report``) holds an exclusive lock on ``<out>/.cnsvol/lock`` for as long as
it writes the folder (:mod:`filelock`: ``flock`` on POSIX, so the operating system releases it
when the holder dies, even by SIGKILL: a stale lock never blocks the next run). Who holds it
(PID, host, start time) is written beside it in ``lock.json``, so that a second run that finds
the folder locked stops at once and says who has it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from ..atomic import atomic_write_text
from ..errors import FolderLockedError

__all__ = ["LOCK_DIR", "FolderLock"]

LOCK_DIR = Path(".cnsvol")


class FolderLock:
    """``with FolderLock(out_dir, "cnsvol run"):`` holds the folder's lock, or raises
    :class:`~cnsvol.errors.FolderLockedError` naming the folder and the holder."""

    def __init__(self, out_dir: str | Path, what: str = "cnsvol run") -> None:
        from filelock import FileLock

        self.out_dir = Path(out_dir)
        self.what = what
        self.dir = self.out_dir / LOCK_DIR
        self.info = self.dir / "lock.json"
        self._lock = FileLock(str(self.dir / "lock"), timeout=0, thread_local=False)

    def acquire(self) -> None:
        from filelock import Timeout

        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            other = ", or give another --out" if self.what == "cnsvol run" else ""
            raise FolderLockedError(
                f"{self.out_dir}: results folder in use by {self._holder()}. Two runs must not "
                f"write one folder. Fix: wait for that run to finish{other}"
            ) from None
        atomic_write_text(self.info, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
            "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }) + "\n", durable=False)

    def release(self) -> None:
        self.info.unlink(missing_ok=True)
        self._lock.release()

    def _holder(self) -> str:
        try:
            h = json.loads(self.info.read_text(encoding="utf-8"))
            return f"{h['what']} (PID {h['pid']} on host {h['host']}, since {h['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another cnsvol process (its PID and host were not recorded yet)"

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
