"""Shared timing helpers: best-of-N wall time and the machine's own GEMM throughput."""
from __future__ import annotations

import time

import numpy as np

from lstmcheck import backend, parallel

_GEMM_CACHE: dict = {}


def timeit(fn, repeat: int = 3, xp=np) -> float:
    """Best wall time of ``repeat`` calls (after one warm-up call), synchronising the device."""
    fn()
    backend.synchronize(xp)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        backend.synchronize(xp)
        best = min(best, time.perf_counter() - t0)
    return best


def timeit_pair(fn_a, fn_b, repeat: int = 3, xp=np) -> tuple:
    """Best wall times of two calls measured alternately (a, b, a, b, ...), so that a load change
    on a shared machine hits both: their ratio is the figure to trust."""
    best = [float("inf"), float("inf")]
    for fn in (fn_a, fn_b):
        fn()
    for _ in range(repeat):
        for j, fn in enumerate((fn_a, fn_b)):
            backend.synchronize(xp)
            t0 = time.perf_counter()
            fn()
            backend.synchronize(xp)
            best[j] = min(best[j], time.perf_counter() - t0)
    return tuple(best)


SETTLE_S = 0.3     # idle BLAS/OpenMP workers spin this long at most before they sleep


def timeit_isolated(*makes, repeat: int = 3) -> dict:
    """Best wall times of several callables, each built and run in a process of its own, taking
    turns, each turn after a pause of SETTLE_S: a library's idle worker threads (OpenBLAS's,
    OpenMP's) spin for a while after each call and would take the cores from the next library's
    call, in one process or across two. Each turn makes two calls in a row, since the first
    after a pause and one right after another differ (a training loop or an audit makes the
    second kind; threads that wait for each other start slowly after an idle spell on some
    virtual machines). ``makes``: (module-level function, args) pairs, each returning the
    callable to time. Returns {"after_pause": (t, ...), "back_to_back": (t, ...)}, the best of
    each, in the order given."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    n = len(makes)
    try:
        for make in makes:                    # one at a time: a process starting up (imports,
            parent, child = ctx.Pipe()          # a first call that measures its kernels) is
            proc = ctx.Process(target=_serve_timing, args=(child, make), daemon=True)
            proc.start()                        # load beside the others'
            pipes.append(parent)
            procs.append(proc)
            parent.send(True)                   # the warm-up calls, not timed
            parent.recv()
        first = [float("inf")] * n
        second = [float("inf")] * n
        for _ in range(repeat):
            for j, conn in enumerate(pipes):
                time.sleep(SETTLE_S)
                conn.send(True)
                t1, t2 = conn.recv()
                first[j], second[j] = min(first[j], t1), min(second[j], t2)
        return {"after_pause": tuple(first), "back_to_back": tuple(second)}
    finally:
        for conn in pipes:
            conn.send(False)
        for proc in procs:
            proc.join(timeout=30)


def _serve_timing(conn, make):
    fn = make[0](*make[1])
    while conn.recv():
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        conn.send(times)


def transcendental_seconds(n: int, dtype="float64", sample: int = 1 << 22) -> float:
    """Best time of ``n`` gate transcendentals for ``dtype`` on lstmcheck's CPU threads, at the
    rate of the fastest of NumPy's tanh, scipy's expit and NumPy's exp (every formulation of a
    gate costs at least one of them per element; which is fastest differs between machines):
    the elementwise floor no NumPy implementation of the cell gets under. Timed on up to
    ``sample`` elements and scaled to ``n``."""
    from scipy.special import expit
    size = min(n, sample)
    rows = max(1, size // 4096)
    z = np.random.default_rng(0).standard_normal((rows, size // rows)).astype(dtype)
    out = np.empty_like(z)
    with np.errstate(over="ignore"):
        best = min(timeit(lambda f=f: parallel.parallel_rows(f, out, z), repeat=5)
                   for f in (np.tanh, expit, np.exp))
    return best * n / z.size


def transcendental_ns(dtype="float64", n: int = 1 << 16) -> dict:
    """Nanoseconds an element of NumPy's tanh, scipy's expit and NumPy's exp for ``dtype``, on
    one thread, over an in-cache block of gate-sized values (which is fastest differs between
    builds and CPUs: the kernels' routes are measured, never assumed)."""
    from scipy.special import expit
    z = (4 * np.random.default_rng(0).standard_normal(n)).astype(dtype)
    out = np.empty_like(z)
    with np.errstate(over="ignore"):
        return {name: timeit(lambda f=f: f(z, out=out), repeat=20) / n * 1e9
                for name, f in (("tanh", np.tanh), ("expit", expit), ("exp", np.exp))}


def gemm_gflops(dtype="float64", n: int = 1024, xp=np) -> float:
    """This machine's square-GEMM throughput in GFLOP/s for ``dtype`` (cached per run)."""
    key = (np.dtype(dtype).name, n, backend.backend_name(xp))
    if key not in _GEMM_CACHE:
        rng = np.random.default_rng(0)
        a = backend.asarray(rng.standard_normal((n, n)), xp, dtype)
        b = backend.asarray(rng.standard_normal((n, n)), xp, dtype)
        t = timeit(lambda: a @ b, repeat=5, xp=xp)
        _GEMM_CACHE[key] = 2 * n ** 3 / t / 1e9
    return _GEMM_CACHE[key]


def row(name: str, seconds: float, ratio: float | None = None, note: str = "", **extra) -> dict:
    """One printed line: what was timed, its time, a ratio measured in the same run, a note."""
    return {"name": name, "seconds": seconds, "ratio": ratio, "note": note, **extra}
