"""The CPU thread pool and BLAS thread policy for lstmcheck's NumPy work.

NumPy's ufuncs and matmul release the GIL, so a few Python threads run elementwise work and
independent GEMMs on several cores. Rows are split in fixed blocks: every element is computed by
the same code whatever the split, so results are bit-for-bit those of the plain call.
"""
from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading


from . import backend, workspace
from .errors import OptionError

THREADS_ENV = "LSTMCHECK_THREADS"
MIN_WORK = 16384            # below this many elements a split costs more than it saves


def num_threads() -> int:
    """Threads for lstmcheck's elementwise work on NumPy: $LSTMCHECK_THREADS, else the CPU count
    available to this process (capped at 8: per-step blocks are small)."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise OptionError(f"{THREADS_ENV} must be a positive integer, got {env!r}.") from None
        if n < 1:
            raise OptionError(f"{THREADS_ENV} must be a positive integer, got {env!r}.")
        return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:       # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


class _Pool:
    """n-1 persistent worker threads; the caller runs the first job itself. One caller at a
    time: a concurrent (or nested) caller runs its jobs serially instead of waiting."""

    def __init__(self, n):
        self.n = n
        self.lock = threading.Lock()
        self.done = queue.SimpleQueue()
        self.inbox = [queue.SimpleQueue() for _ in range(n - 1)]
        for q in self.inbox:
            threading.Thread(target=self._serve, args=(q,), daemon=True,
                             name="lstmcheck-worker").start()

    def _serve(self, inbox):
        _LOCAL.in_block = True              # everything a worker runs is a block's job
        while True:
            job = inbox.get()
            if job is None:                 # the pool was replaced
                return
            try:
                job()
            except BaseException as exc:   # handed back to the caller, raised there
                self.done.put(exc)
            else:
                self.done.put(None)

    def run(self, jobs, blas_single=False):
        """Run the jobs, one per thread; the first error (if any) is raised once all finish.
        ``blas_single``: hold NumPy's BLAS at one thread meanwhile (each job's GEMMs are its
        own; BLAS workers spinning beside ours only steal the cores)."""
        if len(jobs) > self.n or not self.lock.acquire(blocking=False):
            with _inside_block():
                for job in jobs:
                    job()
            return
        try:
            with _blas_limit(1 if blas_single else None):
                for q, job in zip(self.inbox, jobs[1:]):
                    q.put(job)
                error = None
                try:
                    # one job alone (parallel_blocks' single block) is no block beside others
                    with _inside_block() if len(jobs) > 1 else contextlib.nullcontext():
                        jobs[0]()
                except BaseException as exc:
                    error = exc
                try:
                    for _ in jobs[1:]:          # always collect every worker before returning
                        exc = self.done.get()
                        if error is None:
                            error = exc
                except BaseException:           # interrupted (Ctrl-C) while workers still run:
                    _POOL[0] = None             # their late results must not reach a later run
                    raise
            if error is not None:
                raise error
        finally:
            self.lock.release()


_POOL: list = [None]


def _pool(n) -> _Pool:
    """The shared pool, with at least n threads (rebuilt when $LSTMCHECK_THREADS grows)."""
    p = _POOL[0]
    if p is None or p.n < n:
        if p is not None:
            for q in p.inbox:
                q.put(None)
        p = _POOL[0] = _Pool(max(n, num_threads()))
    return p


if hasattr(os, "register_at_fork"):     # worker threads do not survive fork: rebuild on use
    os.register_at_fork(after_in_child=lambda: _POOL.__setitem__(0, None))


def parallel_blocks(xp, n, fn, *, work=1, enabled=True, min_work=MIN_WORK, threads=None,
                    gemm=True):
    """``fn(lo, hi)`` over contiguous blocks covering range(n), one block per CPU thread.

    For independent rows (batch rows of a recurrence, replicas of a perturbation): each block
    runs everything for its rows. ``gemm``: the blocks call BLAS, which is then held at one
    thread (several multithreaded GEMMs at once oversubscribe the cores); without threadpoolctl
    to do that, such work is not split. ``work`` is the number of elements one row touches;
    below ``min_work`` elements in all, on CuPy, with one thread or ``enabled=False`` it is the
    plain call ``fn(0, n)``.
    """
    k = min(num_threads() if threads is None else threads, n)
    if not backend.is_host(xp):
        fn(0, n)
        return
    if k <= 1 or not enabled or n * work < min_work or (gemm and not _blas_controllers()):
        # one block; its GEMMs still run on one BLAS thread: the recurrences' small per-step
        # GEMMs gain little from BLAS threads and lose severalfold when other processes load
        # the cores (idle BLAS workers spin)
        _pool(1).run([functools.partial(fn, 0, n)], blas_single=gemm)
        return
    edges = [n * j // k for j in range(k + 1)]
    _pool(k).run([functools.partial(fn, lo, hi) for lo, hi in zip(edges, edges[1:])],
                 blas_single=gemm)


_LOCAL = threading.local()   # per thread: in_block, and sequence_threads (matmul's threads)


def in_block() -> bool:
    """True in a job of parallel_blocks that runs beside others (on the pool's threads or the
    caller's), or nested in one: its GEMMs are its own, on one BLAS thread, beside the other
    blocks' on the other cores. A single block (the work too small to split) is not."""
    return getattr(_LOCAL, "in_block", False)


@contextlib.contextmanager
def _inside_block():
    before = in_block()
    _LOCAL.in_block = True
    try:
        yield
    finally:
        _LOCAL.in_block = before


def _sequence_threads() -> int:
    return getattr(_LOCAL, "sequence_threads", 1)


@contextlib.contextmanager
def sequence_gemms(n):
    """Inside: a model's whole-sequence GEMMs (matmul below) on n threads of our own (None:
    num_threads()), and every other GEMM on NumPy's BLAS at n threads (None: its own count).
    In a block of parallel_blocks it changes nothing: the blocks already occupy the cores, and
    BLAS's own threads beside them (the thread count is process-wide) made the model-forward
    audit of an LSTM 1.9x slower here (17.4 s against 9.0 s)."""
    if in_block():
        yield
        return
    before = _sequence_threads()
    _LOCAL.sequence_threads = num_threads() if n is None else n
    try:
        with blas_threads(n):
            yield
    finally:
        _LOCAL.sequence_threads = before


def matmul(a, b):
    """a @ b for a whole sequence's GEMM (an input projection, a weight gradient): under
    sequence_gemms with more than one thread, row blocks of a on the pool's threads, BLAS at one
    thread in each. Not BLAS's own threads: OpenBLAS's workers spin for a while after every call
    and take the cores from the row-split recurrence that follows (scripts/bench.py blas: 100
    steps of a (32, 128) float64 recurrence on two threads took 1.39x as long right after a
    two-thread BLAS GEMM as after a one-thread one); ours wait asleep. As fast as BLAS's two
    threads here. BLAS may round the rows at a block's edge differently (its kernels handle a
    remainder of rows their own way), as with its own threads: within the bound
    tests/test_kernels.py states; the same blocks, so the same numbers, on every run with the
    same thread count."""
    xp = backend.array_module(a)
    k = _sequence_threads()
    if k <= 1 or not backend.is_host(xp) or type(a) is not xp.ndarray \
            or type(b) is not xp.ndarray or a.ndim != 2 or b.ndim != 2:
        return a @ b
    out = workspace.empty(xp, (a.shape[0], b.shape[1]), xp.result_type(a, b))
    parallel_blocks(xp, a.shape[0], lambda lo, hi: xp.matmul(a[lo:hi], b, out=out[lo:hi]),
                    work=a.shape[1] + b.shape[1], threads=k)
    return out


def parallel_rows(fn, out, *args, threads=None, min_size=MIN_WORK):
    """``fn(*args, out=out)`` with the rows (first axis) of ``out`` split across CPU threads.

    An argument with the same first-axis length as ``out`` (and ndim >= 1) is split alongside;
    anything else (scalars, vectors broadcast along rows) is passed whole. Rows are independent,
    so the result equals the plain call bit for bit. Returns ``out``.
    """
    rows = out.shape[0] if out.ndim else 1

    def block(lo, hi):
        if out.ndim == 0:
            fn(*args, out=out)
            return
        part = [a[lo:hi] if getattr(a, "ndim", 0) >= 1 and a.shape[0] == rows else a for a in args]
        fn(*part, out=out[lo:hi])
    parallel_blocks(backend.array_module(out), rows, block, work=out.size // max(rows, 1),
                    min_work=min_size, threads=threads, gemm=False)
    return out


@functools.lru_cache(maxsize=None)
def _blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries NumPy loaded (empty without it)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    libs = tuple(c for c in ThreadpoolController().lib_controllers if c.user_api == "blas")
    _BLAS_DEFAULTS[:] = [c.num_threads for c in libs]   # before lstmcheck can change them
    return libs


_BLAS_DEFAULTS: list = []


def _blas_defaults():
    """Each BLAS library's own thread count, as it was when lstmcheck first looked (a later
    read could happen inside a block that holds BLAS at one thread)."""
    _blas_controllers()
    return tuple(_BLAS_DEFAULTS)


@contextlib.contextmanager
def blas_threads(n):
    """NumPy's BLAS at ``n`` threads inside the block; None: at its own default count (what it
    started with), whatever an enclosing block set. Restored on exit."""
    libs = _blas_controllers()
    target = [n] * len(libs) if n is not None else list(_blas_defaults())
    before = [c.num_threads for c in libs]
    for c, b, t in zip(libs, before, target):
        if b != t:
            c.set_num_threads(t)
    try:
        yield
    finally:
        for c, b, t in zip(libs, before, target):
            if b != t:
                c.set_num_threads(b)


@contextlib.contextmanager
def _blas_limit(n):
    """NumPy's BLAS limited to ``n`` threads inside the block (None: unchanged). Only the pool's
    lock holder calls this, so two callers never race on the process-wide setting."""
    libs = _blas_controllers() if n is not None else ()
    before = [c.num_threads for c in libs]
    for c, b in zip(libs, before):
        if b != n:
            c.set_num_threads(n)
    try:
        yield
    finally:
        for c, b in zip(libs, before):
            if b != n:
                c.set_num_threads(b)
