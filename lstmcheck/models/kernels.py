"""Which elementwise route is faster on this machine, measured rather than assumed.

tanh and the logistic are affine images of each other (tanh(z) = 2 sigma(2z) - 1), so a fused
gate block can run through either. Which is faster depends on the CPU and the dtype (NumPy's
float64 tanh is SIMD on some AVX-512 builds and not on AVX2; scipy's expit the other way round),
so the first use on a machine times both on a block of 64k numbers and remembers the winner in
``$XDG_CACHE_HOME/lstmcheck/kernels.json``; later processes read it back, so a machine always
makes the same choice and results stay bit-identical across runs.
``LSTMCHECK_GATE_ROUTE=tanh|logistic`` overrides the measurement.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from .. import backend
from ..errors import OptionError

ROUTES = ("tanh", "logistic")
_cache: dict = {}


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lstmcheck" / "kernels.json"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _machine_key(xp, dtype) -> str:
    """A machine image can come back on another CPU: the CPU model is part of the key."""
    return f"{platform.machine()}|{_cpu_model()}|{os.cpu_count()}|" \
           f"{backend.backend_name(xp)}|{np.__version__}|{np.dtype(dtype).name}"


def _measure(xp, dtype) -> str:
    z = backend.asarray(np.linspace(-4, 4, 65536), xp, dtype)
    out = xp.empty_like(z)
    best = {}
    for route, fn in (("tanh", xp.tanh), ("logistic", backend.expit(xp))):
        fn(z, out=out)
        times = []
        for _ in range(7):
            backend.synchronize(xp)
            t0 = time.perf_counter()
            fn(z, out=out)
            backend.synchronize(xp)
            times.append(time.perf_counter() - t0)
        best[route] = min(times)
    return min(best, key=best.get)


def gate_route(xp, dtype) -> str:
    """'tanh' or 'logistic': the faster transcendental for a fused gate block."""
    forced = os.environ.get("LSTMCHECK_GATE_ROUTE")
    if forced:
        if forced not in ROUTES:
            raise OptionError(f"LSTMCHECK_GATE_ROUTE must be one of {', '.join(ROUTES)}, got "
                              f"{forced!r}.")
        return forced
    key = _machine_key(xp, dtype)
    if key in _cache:
        return _cache[key]
    path = _cache_file()
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    route = stored.get(key) if isinstance(stored, dict) else None
    if route not in ROUTES:
        route = _measure(xp, dtype)
        stored = stored if isinstance(stored, dict) else {}
        stored[key] = route
        try:                                  # a read-only home only costs a re-measurement
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            pass
    _cache[key] = route
    return route
