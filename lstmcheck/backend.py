"""The only module that knows NumPy from CuPy.

Everything else takes ``xp`` from :func:`array_module` (the arrays it is given) or from
:func:`get_xp` (a backend name) and writes code against the NumPy API.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from .errors import BackendError, DTypeError, OptionError

BACKENDS = ("numpy", "cupy", "auto")
REAL_DTYPES = ("float32", "float64")
_COMPLEX_OF = {np.dtype("float32"): np.dtype("complex64"), np.dtype("float64"): np.dtype("complex128")}


@functools.lru_cache(maxsize=None)
def _cupy_or_reason():
    """(cupy module, None) when CuPy is importable and sees a GPU, else (None, reason)."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return None, ("CuPy is not installed; install `lstmcheck[gpu]` (cupy-cuda12x) or "
                      "`lstmcheck[gpu13]` (cupy-cuda13x) to match your CUDA driver")
    except Exception as exc:  # a broken CUDA install raises all sorts
        return None, f"CuPy failed to import ({exc.__class__.__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy is installed but no GPU is visible ({exc.__class__.__name__}: {exc})"
    if n == 0:
        return None, "CuPy is installed but no GPU is visible"
    return cupy, None


def gpu_status() -> dict:
    """What the CLI's `info` prints: is the GPU backend usable, and if not, why not."""
    cp, reason = _cupy_or_reason()
    if cp is None:
        return {"available": False, "reason": reason}
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return {"available": True, "cupy": cp.__version__, "device": name,
            "devices": cp.cuda.runtime.getDeviceCount()}


def available_backends() -> list[str]:
    return ["numpy"] + (["cupy"] if _cupy_or_reason()[0] is not None else [])


def get_xp(backend: str = "numpy"):
    """The array module for a backend name: 'numpy', 'cupy' or 'auto' (CuPy when usable)."""
    if backend not in BACKENDS:
        raise OptionError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend == "numpy":
        return np
    cp, reason = _cupy_or_reason()
    if cp is None:
        if backend == "auto":
            return np
        raise BackendError(f"backend 'cupy' is not usable: {reason}.")
    return cp


def backend_name(xp) -> str:
    return "numpy" if xp is np else "cupy"


def array_module(*arrays):
    """NumPy or CuPy, from the arrays given (the `cupy.get_array_module` idiom)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            return _cupy_or_reason()[0]
    return np


def to_host(a):
    """A NumPy array (or the object itself when it is not an array)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return a


def asarray(a, xp, dtype=None):
    """Move/convert ``a`` to backend ``xp`` (host arrays are copied to the device)."""
    if xp is np:
        return np.asarray(to_host(a), dtype=dtype)
    return xp.asarray(a, dtype=dtype)


def resolve_dtype(dtype) -> np.dtype:
    """float32 / float64 (the checking precision) as a NumPy dtype; anything else is refused."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'.") from None
    if dt.name not in REAL_DTYPES:
        if dt == np.float16:
            raise DTypeError("float16 is too coarse for gradient checking (finite differences "
                             "drown in its 3-digit round-off); use 'float32' or 'float64'.")
        raise DTypeError(f"dtype {dt.name!r} is not supported; use 'float32' or 'float64'.")
    return dt


def complex_of(dtype) -> np.dtype:
    """The complex dtype a real dtype is promoted to for the complex-step check."""
    return _COMPLEX_OF[np.dtype(dtype)]


def real_of(dtype) -> np.dtype:
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.finfo(np.dtype(dtype)).dtype


def rng(seed) -> np.random.Generator:
    """A seeded host generator. Random draws happen on the host, then move to the backend, so the
    same seed gives the same numbers on NumPy and CuPy."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def expit(xp):
    """Overflow-free logistic sigmoid for real arrays (scipy's ufunc or CuPy's twin)."""
    if xp is np:
        from scipy.special import expit as f
    else:
        from cupyx.scipy.special import expit as f
    return f


def synchronize(xp) -> None:
    """Wait for queued device work (for timing); a no-op on NumPy."""
    if xp is not np:
        xp.cuda.Stream.null.synchronize()


@contextlib.contextmanager
def gpu_errors(what: str = "this computation"):
    """Turn a GPU out-of-memory error into one sentence that says how much was asked for."""
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ != "OutOfMemoryError":
            raise
        cp = _cupy_or_reason()[0]
        free, total = cp.cuda.runtime.memGetInfo() if cp is not None else (0, 0)
        raise BackendError(
            f"the GPU ran out of memory during {what} ({exc}); {free / 2**30:.1f} of "
            f"{total / 2**30:.1f} GiB are free: reduce batch, sequence length or hidden size "
            f"so that the tape fits, or use backend='numpy'.") from None


def is_host(xp) -> bool:
    """Whether ``xp`` computes on the CPU (NumPy): only there do lstmcheck's threads help."""
    return xp is np
