"""The audit's tolerances and its elementwise comparison of a target's tensor with the oracle's.

See :mod:`lstmcheck.audit` ("Tolerances") for how the defaults are derived."""
from __future__ import annotations

import math

import numpy as np


def tolerances(dtype, seq_len: int, num_layers: int = 1, fan_in: int = 1) -> dict:
    """Per-dtype tolerances for comparing a target in ``dtype`` with the float64 oracle."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    fwd = 64.0 * eps * math.sqrt(max(1, seq_len) * max(1, num_layers) * max(1, fan_in))
    return {"forward": {"rtol": fwd, "atol": fwd}, "gradient": {"rtol": 8 * fwd, "atol": 8 * fwd}}


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
