"""Large arrays recycled between calls instead of fresh from the operating system.

A fresh large NumPy array is fresh memory (glibc maps it anew and frees it back to the kernel),
and the kernel zeroes every page of it on first touch. A model's forward and backward fill
tens of megabytes of tape and scratch that way each call: a one-layer LSTM at (B, T, D, H) =
(64, 200, 128, 256) took about 10% less time with them recycled (scripts/bench.py models, the
row "with fresh memory each call"). ``empty`` hands out an array that nobody holds any more
instead: no tape, no view of it and no caller refers to it, as its reference count says (as
NumPy's own temporary elision decides). So reuse is invisible to every caller.

Host NumPy only (CuPy has its own memory pool), arrays of at least MIN_BYTES, and at most
``$LSTMCHECK_WORKSPACE_MB`` megabytes held (default 1024; 0 turns recycling off), the oldest
dropped first. What the pool holds stays resident between calls, as in any caching allocator;
``clear()`` lets it go.
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

from . import backend
from .errors import OptionError

MIN_BYTES = 1 << 20
DEFAULT_MB = 1024
ENV = "LSTMCHECK_WORKSPACE_MB"

_pool: list = []            # flat base arrays, oldest first
_lock = threading.Lock()
reused = 0                  # arrays handed out again, for the tests


def _count(pool, i) -> int:
    return sys.getrefcount(pool[i])


def _free_count() -> int:
    """The reference count _count reads for an array that only the pool holds (measured, not
    assumed: it differs between Python versions)."""
    probe = [np.empty(1)]
    return _count(probe, 0)


_FREE = _free_count()


def cap_bytes() -> int:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return DEFAULT_MB << 20
    try:
        mb = float(value)
    except ValueError:
        mb = -1.0
    if not mb >= 0:
        raise OptionError(f"{ENV} must be a number of megabytes >= 0, got {value!r}.")
    return int(mb * (1 << 20))


def empty(xp, shape, dtype):
    """xp.empty(shape, dtype), from a recycled array where one of the same size is free."""
    cap = cap_bytes()                  # read every call: a bad value is an error at once
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if n * dtype.itemsize < MIN_BYTES or cap <= 0 or not backend.is_host(xp):
        return xp.empty(shape, dtype)
    global reused
    with _lock:
        for i in range(len(_pool)):     # no local name for a candidate: it would count
            if _pool[i].dtype == dtype and _pool[i].size == n and _count(_pool, i) == _FREE:
                _pool.append(_pool.pop(i))             # the most recently used last
                reused += 1
                return _pool[-1].reshape(shape)
        base = np.empty(n, dtype)
        _pool.append(base)
        total = sum(a.nbytes for a in _pool)
        while total > cap and _pool:                 # oldest first; a held one lives on with
            total -= _pool.pop(0).nbytes             # its holders, untracked
        return base.reshape(shape)


def clear() -> None:
    """Drop every array the pool holds (held ones live on with their holders)."""
    with _lock:
        _pool.clear()
