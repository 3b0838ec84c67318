"""Shared timing helpers: best-of-N wall time and the machine's own GEMM throughput."""
from __future__ import annotations

import time

import numpy as np

from lstmcheck import backend

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
