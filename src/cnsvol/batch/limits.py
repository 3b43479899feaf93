"""Time limits of a run: how long one subject may take, and how long a Dask run waits without
any live worker. Neither changes a result computed within it, so neither is part of a
subject's store key.

The per-subject limit is enforced where the subject runs. In a process's main thread (the
local worker processes, a ``--jobs 1`` run) a real-time timer signal interrupts even a blocked
system call; elsewhere (a Dask worker thread) a watchdog thread raises the timeout in the
subject's thread at its next Python instruction.
"""

from __future__ import annotations

import ctypes
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import CnsvolError

__all__ = ["RunLimits", "SubjectTimeout", "available_memory", "time_limit", "worker_memory"]

DEFAULT_SUBJECT_SECONDS = 600.0
DEFAULT_NO_WORKER_SECONDS = 300.0


@dataclass(frozen=True)
class RunLimits:
    """``subject_seconds``: a subject still running after this many seconds fails with that
    reason and the run goes on (``None``: no limit). ``no_worker_seconds``: a Dask run with no
    live worker for this long stops with an error instead of waiting."""

    subject_seconds: float | None = DEFAULT_SUBJECT_SECONDS
    no_worker_seconds: float = DEFAULT_NO_WORKER_SECONDS
    memory_bytes: int | None = None
    """The memory one worker may use, when lower than ``--max-gib`` (set by the run from the
    memory available to its local workers): each file's estimate is checked against the lower
    of the two."""

    def __post_init__(self) -> None:
        if self.memory_bytes is not None and not (isinstance(self.memory_bytes, int)
                                                  and self.memory_bytes > 0):
            raise ValueError(f"memory_bytes must be a positive int, got {self.memory_bytes!r}")
        for name in ("subject_seconds", "no_worker_seconds"):
            value = getattr(self, name)
            if value is None and name == "subject_seconds":
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def to_dict(self) -> dict[str, float | None]:
        return {"subject_seconds": self.subject_seconds,
                "no_worker_seconds": self.no_worker_seconds,
                "memory_bytes": self.memory_bytes}


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux ``MemAvailable``); ``None`` where it
    cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def worker_memory(max_bytes: int, workers: int, available: int | None) -> int | None:
    """The memory limit of each of ``workers`` local workers when they could not all use
    ``max_bytes`` at once (``available`` shared, 10% kept for the run process and the
    system); ``None`` when ``max_bytes`` fits."""
    if available is None or workers < 1:
        return None
    share = int(available * 0.9) // workers
    return share if share < max_bytes else None


class SubjectTimeout(CnsvolError):
    """A subject took longer than the run's per-subject time limit."""

    limit: float = 0.0

    def __init__(self, seconds: float | None = None) -> None:
        seconds = self.limit if seconds is None else seconds
        super().__init__(
            f"stopped after the per-subject time limit of {seconds:g} s (a file that never "
            "ends, a blocked network share, or a very large scan). Fix: check this subject's "
            "files; raise the limit with --subject-timeout SECONDS if it is just large")
        self.seconds = seconds


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`SubjectTimeout` (or a subclass) in this thread when the block runs longer
    than ``seconds`` (``None``: no limit). The caller catches it: it may arrive as the block
    ends."""
    if seconds is None:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(seconds):
            yield
    else:
        with _watchdog(seconds):
            yield


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def expired(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SubjectTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    # raised asynchronously, so instantiated without arguments: the limit is a class attribute
    expired_type = type("SubjectTimeout", (SubjectTimeout,), {"limit": float(seconds)})
    done = threading.Event()
    lock = threading.Lock()  # the timeout is never raised once the block has left

    def expire() -> None:
        if done.wait(seconds):
            return
        with lock:
            if not done.is_set():
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(expired_type))

    watcher = threading.Thread(target=expire, name="cnsvol-time-limit", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with lock:
            done.set()
        watcher.join()
