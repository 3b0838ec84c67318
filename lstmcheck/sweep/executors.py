"""Executors for sweeps: run one function over many grid points and hand back results as they
finish, so the caller can append each to the results file at once.

Every executor is a context manager with ``imap(fn, items)`` yielding ``(index, result)`` in
completion order. Three of them:

- :class:`InProcess` — a plain loop (the default; nothing to serialise, easiest to debug);
- :class:`ProcessPool` — ``workers`` local processes; a worker that dies takes its points with it,
  so the pool is restarted and every unfinished point is submitted again;
- :class:`DaskExecutor` — a Dask distributed cluster, either an existing scheduler or a
  LocalCluster started (and closed) here. Dask itself reschedules the tasks of a dead worker.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import BackendError, OptionError, require

EXECUTORS = ("inprocess", "process", "dask")
# Thread-count variables of the BLAS/OpenMP libraries NumPy may use. A sweep parallelises over
# points; a multi-threaded BLAS inside each worker only oversubscribes the cores (and on the
# small GEMMs of one time step it is slower even alone), so workers get one thread each, as
# Dask's nanny does for its workers. Values the user set are kept.
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class InProcess:
    """Run every point in this process, one after another."""

    name = "inprocess"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, items):
        for i, item in enumerate(items):
            yield i, fn(item)


class ProcessPool:
    """A pool of ``workers`` spawned processes.

    Spawned (not forked) so that workers start from a clean interpreter on every platform and
    no thread state of the parent (BLAS pools, a Dask client) is copied half-way. When a worker
    dies the standard pool is broken for good: we start a new one and resubmit what is left.
    ``max_restarts`` restarts in a row that finish no point at all mean a point kills every
    worker it touches; then we stop with a clear error instead of looping forever.
    """

    name = "process"

    def __init__(self, workers: int, max_restarts: int = 3):
        self.workers = workers
        self.max_restarts = max_restarts
        self.restarts = 0             # how many times a dead worker forced a new pool

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, items):
        pending = dict(enumerate(items))
        if pending:
            _check_picklable(fn, pending[0])
        fruitless = 0
        while pending:
            finished_any = False
            broken = False
            pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            try:
                with _single_threaded_children():   # workers start during the submits
                    futures = {pool.submit(fn, item): i for i, item in pending.items()}
                todo = set(futures)
                while todo:
                    done, todo = wait(todo, return_when=FIRST_COMPLETED)
                    for f in done:
                        exc = f.exception()
                        if isinstance(exc, BrokenProcessPool):
                            broken = True
                            continue
                        if exc is not None:
                            raise exc
                        i = futures[f]
                        del pending[i]
                        finished_any = True
                        yield i, f.result()
            finally:
                # Do not wait for running points of an abandoned sweep (error, Ctrl-C).
                pool.shutdown(wait=not pending, cancel_futures=True)
            if broken:
                self.restarts += 1
                fruitless = 0 if finished_any else fruitless + 1
                if fruitless >= self.max_restarts:
                    raise BackendError(
                        f"sweep workers died {fruitless} times in a row without finishing a "
                        f"point ({len(pending)} left undone): a point crashes the interpreter "
                        f"(out of memory?), or a script started the sweep without an "
                        f"`if __name__ == '__main__':` guard (spawned workers import the main "
                        f"module).")


def _check_picklable(fn, item):
    """Worker processes get the work by pickle: say so clearly when it cannot travel."""
    import pickle
    try:
        pickle.dumps((fn, item))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise OptionError(f"the work cannot be sent to worker processes ({exc}); a measure must "
                          f"be a module-level function, not a lambda or a local function.") from None


@contextlib.contextmanager
def _single_threaded_children():
    """Processes started inside inherit one BLAS thread (see BLAS_THREAD_VARS)."""
    added = [v for v in BLAS_THREAD_VARS if v not in os.environ]
    for v in added:
        os.environ[v] = "1"
    try:
        yield
    finally:
        for v in added:
            os.environ.pop(v, None)


class DaskExecutor:
    """A Dask distributed cluster: ``scheduler='tcp://host:port'`` or a LocalCluster of
    ``workers`` single-threaded processes started here.

    ``connect_timeout`` bounds how long an unreachable scheduler can stall us (seconds).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 connect_timeout: float = 5.0):
        self.scheduler = scheduler
        self.workers = workers
        self.connect_timeout = connect_timeout
        self.client = None
        self.cluster = None

    def __enter__(self):
        distributed = require("dask.distributed", "distributed", "sweeps on a Dask cluster")
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str) or "://" not in self.scheduler:
                raise OptionError(f"scheduler must be an address like 'tcp://HOST:PORT', "
                                  f"got {self.scheduler!r}.")
            _probe(self.scheduler, self.connect_timeout)
            try:
                self.client = distributed.Client(self.scheduler, timeout=self.connect_timeout,
                                                 set_as_default=False)
            except Exception as exc:   # a timeout, or something that is not a Dask scheduler
                raise BackendError(
                    f"could not connect to a Dask scheduler at {self.scheduler} within "
                    f"{self.connect_timeout:g} s ({exc.__class__.__name__}); is the address "
                    f"that of a running scheduler?") from None
        else:
            n = self.workers or os.cpu_count() or 1
            self.cluster = distributed.LocalCluster(   # loopback only: nothing is exposed
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                host="127.0.0.1")
            self.client = distributed.Client(self.cluster, set_as_default=False)
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def imap(self, fn, items):
        distributed = require("dask.distributed", "distributed", "sweeps on a Dask cluster")
        items = list(items)
        # pure=False: each point is its own task even if two points happen to be equal.
        futures = self.client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for f in distributed.as_completed(futures, loop=self.client.loop):
                yield index[f.key], f.result()
        except distributed.KilledWorker as exc:
            raise BackendError(
                f"Dask gave up on a sweep point after the workers running it died repeatedly "
                f"({exc}); it probably crashes the interpreter (out of memory?).") from None
        finally:
            self.client.cancel(futures)


def _probe(address: str, timeout: float) -> None:
    """Fail fast, with a plain sentence, when nothing listens at a tcp:// address."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(address)
    if u.scheme not in ("tcp", "tls"):
        return                     # other Dask transports (inproc, ucx) are left to Dask
    try:
        host, port = u.hostname, u.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise OptionError(f"scheduler address {address!r} lacks a host or port; use 'tcp://HOST:PORT'.")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise BackendError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           f"({exc.strerror or exc.__class__.__name__}); is it running and is "
                           f"the address right?") from None


def make_executor(executor: str | None = None, *, workers: int | None = None,
                  scheduler: str | None = None, connect_timeout: float = 5.0):
    """The executor a sweep asked for. Without a name: Dask when a scheduler is given, a process
    pool when ``workers > 1``, else in-process."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise OptionError(f"workers must be a positive integer, got {workers!r}.")
    if executor is None:
        executor = "dask" if scheduler is not None else ("process" if (workers or 1) > 1 else "inprocess")
    if executor not in EXECUTORS:
        raise OptionError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
    if scheduler is not None and executor != "dask":
        raise OptionError(f"a scheduler address needs executor='dask', not {executor!r}.")
    if executor == "inprocess":
        return InProcess()
    if executor == "process":
        return ProcessPool(workers or os.cpu_count() or 1)
    return DaskExecutor(scheduler, workers, connect_timeout)
