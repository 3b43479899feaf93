"""Stopping a run on SIGTERM or SIGINT (Ctrl-C): the run process turns the signal into
:class:`RunInterrupted`, its executor stops the workers (local processes are terminated, Dask
tasks cancelled), partial writes are removed, and the command line exits with 128 + the signal
number (130 for SIGINT, 143 for SIGTERM) and one line saying what was kept. Every result stored
before the signal stays, and the next run of the same command goes on from there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RunInterrupted", "check_interrupted", "deferred", "interruptible", "worker_signals"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(BaseException):
    """The run process received SIGTERM or SIGINT. A ``BaseException``, like
    ``KeyboardInterrupt``: no ``except Exception`` on the way out may swallow it. ``kept``
    says what the run kept (set on the way out)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.kept = ""
        super().__init__(f"interrupted by {self.name}")

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    """The run process's signal state: the signal received (0: none) and how deep the
    current :func:`deferred` sections nest."""

    received = 0
    depth = 0


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`RunInterrupted` in the main thread,
    once (a second signal during the clean-up is ignored), and never inside a
    :func:`deferred` section: there the signal waits for the section's end. Outside the main
    thread, where signal handlers cannot be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        if _State.received:
            return  # the run is already stopping
        _State.received = signum
        if _State.depth == 0:
            raise RunInterrupted(signum)

    _State.received, _State.depth = 0, 0
    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _State.received, _State.depth = 0, 0


@contextmanager
def deferred() -> Iterator[None]:
    """A section a signal must not interrupt (forking workers: an exception raised inside
    the interpreter's fork hooks is swallowed and leaves the logging lock held); a signal
    received within it raises :class:`RunInterrupted` at its end."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
    check_interrupted()


def check_interrupted() -> None:
    """Raise :class:`RunInterrupted` if a signal was received and its exception has not been
    raised yet (it waited for a :func:`deferred` section), or was lost: swallowed by code
    that cannot propagate exceptions, such as a finaliser. Called at the run's safe points."""
    if _State.received and _State.depth == 0:
        raise RunInterrupted(_State.received)


def worker_signals(parent_pid: int | None = None) -> None:
    """Worker process set-up: SIGTERM ends the worker (the run process's handler, inherited
    when the worker is forked, must not make it survive), and SIGINT (Ctrl-C reaches the whole
    process group) is left to the run process, which stops the workers itself. With
    ``parent_pid`` (the run process), the worker also ends within a second of that process
    dying without stopping it (``kill -9``, the out-of-memory killer), instead of computing on
    for nobody."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="cnsvol-parent-watch",
                         daemon=True).start()


def _watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    """End this process once its parent is no longer ``parent_pid`` (an orphan is adopted by
    init or a subreaper). Its partial writes are removed by the next run."""
    import os
    import time

    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(143)
