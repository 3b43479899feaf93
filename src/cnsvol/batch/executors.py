"""Where subjects are evaluated: in this process, in local worker processes, or on a Dask
cluster. Every executor runs the same task function on the same tasks; only the place
differs, so the results (and the tables built from them) are identical.

An executor keeps a bounded number of tasks in flight (a few per worker), so memory does not
grow with the cohort, and yields each task with its result, or with the exception that ended
it (a worker killed for memory, say), as soon as it is done, in completion order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import CnsvolError
from .signals import deferred

__all__ = [
    "DaskNotInstalled", "Executor", "NoWorkers", "make_executor", "worker_died",
]

_IN_FLIGHT_PER_WORKER = 4
_END = object()
DASK_INSTALL = "pip install 'cnsvol[dask]'"


class DaskNotInstalled(ImportError):
    """A Dask executor was asked for, but dask.distributed is not installed."""

    def __init__(self) -> None:
        super().__init__(f"Dask is not installed; install it with: {DASK_INSTALL}")


class Executor:
    """Runs ``fn(task)`` for each task; see the module docstring."""

    name = "serial"
    workers = 1

    def run(self, fn: Callable[[Any], Any], tasks: Iterable[Any],
            on_started: Callable[[], None] | None = None,
            isolate: bool = False) -> Iterator[tuple[Any, Any, BaseException | None]]:
        """Yield ``(task, result, None)`` or ``(task, None, exception)`` per task.

        ``isolate``: one task at a time, so that a task that kills its worker takes no other
        task down with it (used to retry the tasks of a worker that died).
        """
        from threadpoolctl import threadpool_limits

        if on_started:
            on_started()
        with threadpool_limits(limits=1):
            for task in tasks:
                try:
                    result = fn(task)
                except Exception as exc:  # noqa: BLE001 - reported per task, like the others
                    yield task, None, exc
                else:
                    yield task, result, None

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "serial (this process)"


class ProcessExecutor(Executor):
    """Local worker processes (``concurrent.futures``), one BLAS thread each. A pool broken by
    a dying worker is replaced; the tasks that were in flight come back with the exception."""

    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))

    def _pool(self):
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers, initializer=_worker_setup,
                                   initargs=(os.getpid(),))

    def run(self, fn, tasks, on_started=None, isolate=False):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        queue = iter(tasks)
        limit = 1 if isolate else self.workers * _IN_FLIGHT_PER_WORKER
        pool = self._pool()
        started = False
        in_flight: dict[Any, Any] = {}
        retry_task: Any = _END  # a task refused by a pool found broken while submitting
        try:
            while True:
                broken = False
                while len(in_flight) < limit:
                    if retry_task is not _END:
                        task, retry_task = retry_task, _END
                    else:
                        task = next(queue, _END)
                        if task is _END:
                            break
                    try:
                        with deferred():  # submit forks the workers
                            in_flight[pool.submit(fn, task)] = task
                    except BrokenProcessPool:
                        retry_task, broken = task, True
                        break
                    if not started:
                        started = True
                        if on_started:  # the workers exist now (forked at the first submit)
                            on_started()
                if not in_flight and not broken:
                    break
                if in_flight:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        task = in_flight.pop(fut)
                        exc = fut.exception()
                        broken |= isinstance(exc, BrokenProcessPool)
                        yield (task, None, exc) if exc is not None else (task, fut.result(), None)
                if broken:  # every other task in flight fails too; a fresh pool goes on
                    for fut, task in list(in_flight.items()):
                        yield task, None, fut.exception()
                    in_flight.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = self._pool()
        except BaseException:  # interrupted, or the caller stopped early: stop the workers now
            _terminate(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> str:
        return f"{self.workers} local worker process(es)"


class DaskExecutor(Executor):
    """Tasks submitted to a Dask cluster: an existing scheduler (``address``) or a local
    cluster started for the run (``local_workers``). Masks and the output folder (where workers
    store results and QC pictures) must be reachable from the workers under the same paths."""

    name = "dask"

    def __init__(self, address: str | None = None, local_workers: int | None = None,
                 no_worker_seconds: float = 300.0) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise DaskNotInstalled() from None
        import logging

        self._cluster = None
        self.no_worker_seconds = float(no_worker_seconds)
        if address:
            self.client = Client(address)
            self.where = address
        else:
            n = max(1, int(local_workers or 1))
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self._cluster)
            self.where = f"local Dask cluster of {n} worker(s)"
        info = self.client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        self.client.run(one_thread)

    def run(self, fn, tasks, on_started=None, isolate=False):
        queue = iter(tasks)
        limit = 1 if isolate else self.workers * _IN_FLIGHT_PER_WORKER
        futures: dict[Any, Any] = {}
        for task in queue:
            futures[self.client.submit(fn, task, pure=False)] = task
            if len(futures) >= limit:
                break
        if on_started:
            on_started()
        watch = _WorkerWatch(self)
        try:
            yield from self._results(fn, queue, futures, watch)
        except BaseException:  # interrupted, or the caller stopped early: cancel what is left
            self.client.cancel(list(futures), force=True)
            raise

    def _results(self, fn, queue, futures, watch):
        from distributed import wait

        while futures:
            try:
                done, _ = wait(list(futures), timeout=_POLL_SECONDS,
                               return_when="FIRST_COMPLETED")
            except TimeoutError:
                watch.check()
                continue
            watch.alive()
            for fut in sorted(done, key=lambda f: f.key):
                task = futures.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001 - a killed worker, a lost task
                    yield task, None, exc
                else:
                    yield task, result, None
                fut.release()
                for task in queue:
                    futures[self.client.submit(fn, task, pure=False)] = task
                    break

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def describe(self) -> str:
        return f"Dask ({self.where}, {self.workers} worker thread(s))"


_POLL_SECONDS = 2.0  # how often a Dask run waiting for results checks for live workers


class NoWorkers(CnsvolError, RuntimeError):
    """A Dask run had no live worker for longer than its limit."""


class _WorkerWatch:
    """Times how long a Dask run has waited with no live worker on the scheduler."""

    def __init__(self, executor: DaskExecutor) -> None:
        import time

        self._executor, self._clock = executor, time.monotonic
        self._since: float | None = self._clock()  # no result yet: waiting from now

    def alive(self) -> None:
        self._since = None

    def check(self) -> None:
        try:
            n = len(self._executor.client.scheduler_info().get("workers", {}))
        except Exception:  # noqa: BLE001 - an unreachable scheduler has no live worker either
            n = 0
        if n:
            self._since = None
            return
        now = self._clock()
        self._since = now if self._since is None else self._since
        if now - self._since >= self._executor.no_worker_seconds:
            raise NoWorkers(
                f"no live Dask worker on {self._executor.where} for "
                f"{now - self._since:.0f} s (limit {self._executor.no_worker_seconds:g} s); "
                "the results computed so far are kept in the folder. Fix: start workers for "
                "this scheduler (or check they can reach it), then run the same command again "
                "to compute the rest; --dask-worker-timeout SECONDS waits longer")


def worker_died(exc: BaseException) -> bool:
    """Whether ``exc`` says the worker process running a task died (not that the task
    failed): a broken local pool, or a Dask worker lost with the task."""
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(exc, BrokenProcessPool) or type(exc).__name__ == "KilledWorker"


def _terminate(pool: Any) -> None:
    """Stop a process pool's workers at once (SIGTERM, then SIGKILL for any still alive after
    5 s), without waiting for their tasks."""
    processes = list(getattr(pool, "_processes", None) or {})
    procs = [pool._processes[p] for p in processes if p in pool._processes]
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _worker_setup(parent_pid: int) -> None:
    from .signals import worker_signals

    worker_signals(parent_pid)
    one_thread()


def one_thread() -> None:
    """Worker set-up: one BLAS/OpenMP thread per process. Subjects are the parallel unit;
    nested thread pools on top of the processes oversubscribe the cores (measured: 2 workers
    were no faster than 1 with OpenBLAS's default threads)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def make_executor(jobs: int | None = None, scheduler: str | None = None,
                  dask_local: int | None = None, *,
                  no_worker_seconds: float = 300.0) -> Executor:
    """``scheduler`` (a Dask address) or ``dask_local`` (workers of a local Dask cluster) pick
    Dask; otherwise ``jobs`` local processes (default: the number of cores; 1 = this process).
    ``no_worker_seconds``: how long a Dask run waits with no live worker before it stops.
    """
    import os

    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs (--jobs) must be >= 1, got {jobs}")
    if dask_local is not None and dask_local < 1:
        raise ValueError(f"dask_local (--dask-local) must be >= 1, got {dask_local}")
    if scheduler and dask_local:
        raise ValueError("give either --scheduler or --dask-local, not both")
    if scheduler or dask_local:
        return DaskExecutor(scheduler, dask_local, no_worker_seconds)
    jobs = jobs or os.cpu_count() or 1
    return Executor() if jobs == 1 else ProcessExecutor(jobs)
