"""Where subjects are evaluated: in this process, in local worker processes, or on a Dask
cluster. Every executor runs the same task function on the same tasks; only the place
differs, so the results (and the tables built from them) are identical.

An executor keeps a bounded number of tasks in flight (a few per worker), so memory does not
grow with the cohort, and yields each task with its result, or with the exception that ended
it (a worker killed for memory, say), as soon as it is done, in completion order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["DaskNotInstalled", "Executor", "make_executor"]

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

        return ProcessPoolExecutor(max_workers=self.workers, initializer=one_thread)

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
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> str:
        return f"{self.workers} local worker process(es)"


class DaskExecutor(Executor):
    """Tasks submitted to a Dask cluster: an existing scheduler (``address``) or a local
    cluster started for the run (``local_workers``). Masks and the output folder (where workers
    store results and QC pictures) must be reachable from the workers under the same paths."""

    name = "dask"

    def __init__(self, address: str | None = None, local_workers: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise DaskNotInstalled() from None
        import logging

        self._cluster = None
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
        from distributed import as_completed

        queue = iter(tasks)
        limit = 1 if isolate else self.workers * _IN_FLIGHT_PER_WORKER
        futures: dict[Any, Any] = {}
        for task in queue:
            fut = self.client.submit(fn, task, pure=False)
            futures[fut] = task
            if len(futures) >= limit:
                break
        if on_started:
            on_started()
        stream = as_completed(list(futures))
        for fut in stream:
            task = futures.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - a killed worker, a lost task
                yield task, None, exc
            else:
                yield task, result, None
            fut.release()
            for task in queue:
                nxt = self.client.submit(fn, task, pure=False)
                futures[nxt] = task
                stream.add(nxt)
                break

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def describe(self) -> str:
        return f"Dask ({self.where}, {self.workers} worker thread(s))"


def one_thread() -> None:
    """Worker set-up: one BLAS/OpenMP thread per process. Subjects are the parallel unit;
    nested thread pools on top of the processes oversubscribe the cores (measured: 2 workers
    were no faster than 1 with OpenBLAS's default threads)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def make_executor(jobs: int | None = None, scheduler: str | None = None,
                  dask_local: int | None = None) -> Executor:
    """``scheduler`` (a Dask address) or ``dask_local`` (workers of a local Dask cluster) pick
    Dask; otherwise ``jobs`` local processes (default: the number of cores; 1 = this process).
    """
    import os

    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs (--jobs) must be >= 1, got {jobs}")
    if dask_local is not None and dask_local < 1:
        raise ValueError(f"dask_local (--dask-local) must be >= 1, got {dask_local}")
    if scheduler and dask_local:
        raise ValueError("give either --scheduler or --dask-local, not both")
    if scheduler or dask_local:
        return DaskExecutor(scheduler, dask_local)
    jobs = jobs or os.cpu_count() or 1
    return Executor() if jobs == 1 else ProcessExecutor(jobs)
