"""The audit's tolerances and its elementwise comparison of a target's tensor with the oracle's.

See :mod:`lstmcheck.audit` ("Tolerances") for how the defaults are derived."""
from __future__ import annotations

import math

import numbers

import numpy as np

from ..errors import DTypeError, OptionError


def tolerances(dtype, seq_len: int, num_layers: int = 1, fan_in: int = 1) -> dict:
    """Per-dtype tolerances for comparing a target in ``dtype`` with the float64 oracle."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    fwd = 64.0 * eps * math.sqrt(max(1, seq_len) * max(1, num_layers) * max(1, fan_in))
    return {"forward": {"rtol": fwd, "atol": fwd}, "gradient": {"rtol": 8 * fwd, "atol": 8 * fwd}}


def output_dtype(*arrays) -> np.dtype:
    """The precision an implementation's outputs were computed in: the least precise floating
    dtype among ``arrays`` (torch tensors too), float64 when none is floating. A float32
    implementation is held to float32 tolerances, not float64 ones."""
    from .. import backend
    dts = []
    for a in arrays:
        if a is None:
            continue
        dt = getattr(a, "dtype", None)
        if dt is not None and not isinstance(dt, np.dtype):     # torch.float32 -> float32
            dt = np.dtype(str(dt).replace("torch.", ""))
        if dt is None:
            dt = np.asarray(backend.to_host(a)).dtype
        if dt.kind == "f":
            dts.append(dt)
    return max(dts, key=lambda d: np.finfo(d).eps) if dts else np.dtype(np.float64)


def fd_tolerances(dtype, seq_len: int, num_layers: int = 1, fan_in: int = 1) -> dict:
    """Tolerances for gradients that are central differences of a target's forward in ``dtype``
    (an ONNX graph): with the step eps^(1/3), truncation and round-off are both ~eps^(2/3), so
    eps^(2/3) takes the place of eps in the gradient tolerance (~2e-3 in float32, ~4e-9 in
    float64; layout mistakes are off by O(0.1))."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    grad = 16.0 * eps ** (2 / 3) * math.sqrt(max(1, seq_len) * max(1, num_layers) * max(1, fan_in))
    return {**tolerances(dtype, seq_len, num_layers, fan_in),
            "gradient": {"rtol": grad, "atol": grad}}


def check_tolerance(name: str, v):
    """A caller's ``rtol``/``atol``: None (the derived default) or a finite number >= 0. A negative
    one would pass everything and a NaN one fail everything, so both are refused here."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not 0 <= v < np.inf:
        raise OptionError(f"{name} must be a finite number >= 0 or None, got {v!r}.")
    return float(v)


def real_output(name: str, a):
    """``a`` as a host array of real numbers; complex or non-numeric output is refused (comparing
    its real part would drop the imaginary part without a word)."""
    from .. import backend
    a = np.asarray(backend.to_host(a))
    if a.dtype.kind == "c":
        raise DTypeError(f"{name} is complex ({a.dtype.name}); an RNN's outputs and gradients "
                         f"are real arrays.")
    if a.dtype.kind not in "fiub":
        raise DTypeError(f"{name} has dtype {a.dtype.name}; it must be an array of real numbers.")
    return a


def compare(got, want, rtol: float, atol: float) -> dict:
    """Elementwise agreement of ``got`` with ``want`` (both host arrays of one shape).

    Returns passed, max_abs, max_rel, ratio (worst |diff| / allowed; <= 1 passes) and worst (the
    index of the worst element)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.size == 0:
        return {"passed": True, "max_abs": 0.0, "max_rel": 0.0, "ratio": 0.0, "worst": None}
    diff = np.abs(got - want)
    scale = float(np.max(np.abs(want))) or 1.0
    bound = rtol * np.abs(want) + atol * scale
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(diff), diff / bound, np.inf)
    k = int(np.argmax(ratio))
    worst = tuple(int(i) for i in np.unravel_index(k, want.shape))
    rel = diff / np.maximum(np.abs(want), scale * 1e-12)
    finite = bool(np.isfinite(got).all())
    bad_steps = np.flatnonzero((ratio > 1.0).reshape(want.shape[0], -1).any(axis=1)) if want.ndim else []
    return {"first_t": int(bad_steps[0]) if len(bad_steps) else None,"passed": finite and float(ratio.flat[k]) <= 1.0,
            "max_abs": float(np.nanmax(np.where(np.isfinite(diff), diff, np.inf))),
            "max_rel": float(np.nanmax(np.where(np.isfinite(rel), rel, np.inf))),
            "ratio": float(ratio.flat[k]), "worst": worst,
            **({} if finite else {"note": "the target produced NaN or Inf"})}
