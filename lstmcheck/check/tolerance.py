"""Derived tolerances: steps from the unit round-off, pass bands from error estimates.

An element passes when |analytic - numeric| <= SAFETY * (numeric error estimate + rounding floor
of the analytic value + nondeterminism floor), unless the user fixes rtol/atol.
"""
from __future__ import annotations

import numpy as np

SAFETY = 8.0            # multiple of the estimated error an honest gradient stays inside
ANALYTIC_ROUNDING = 64  # backward passes sum many terms: allow this many ulps of the tensor scale


def unit_roundoff(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)


def central_step(theta, dtype):
    """h = eps^(1/3) * max(1, |theta|): balances O(h^2) truncation against eps/h cancellation."""
    return unit_roundoff(dtype) ** (1 / 3) * np.maximum(1.0, np.abs(theta))


def richardson_step(theta, dtype):
    """Larger base step for the h, h/2, h/4 ladder: extrapolation removes h^2 and h^4 terms."""
    return unit_roundoff(dtype) ** (1 / 5) * np.maximum(1.0, np.abs(theta))


def complex_step(theta, dtype):
    """Tiny step: Im f(theta + ih)/h has no cancellation, so h only needs to keep h^2 negligible."""
    tiny = 1e-20 if np.dtype(dtype) == np.float64 else 1e-10
    return tiny * np.maximum(1.0, np.abs(theta))


def actual_step(theta, h, dtype):
    """The step the working precision really takes: fl(theta + h) - theta (exact for small h)."""
    t = np.asarray(theta, dtype)
    return (t + np.asarray(h, dtype)).astype(dtype) - t


def element_tolerance(err, analytic, scale, dtype, nondet=0.0, rtol=None, atol=None):
    """Per-element pass band. err: the numeric method's error estimate; scale: the tensor's
    largest |derivative| (rounding in a backward sum is relative to its terms, not to the result)."""
    if rtol is not None or atol is not None:
        return (atol or 0.0) + (rtol or 0.0) * np.abs(analytic)
    u = unit_roundoff(dtype)
    # below the normal range round-off is absolute: one smallest subnormal per operation
    floor = ANALYTIC_ROUNDING * (u * (np.abs(analytic) + scale)
                                 + np.finfo(np.dtype(dtype)).smallest_subnormal)
    return SAFETY * (np.nan_to_num(err, nan=np.inf) + floor + nondet)


SIGNIFICANT = 1e-2      # elements whose derivative is at least this share of the tensor's largest


def resolution(band, magnitude):
    """The relative error of one element that a check is sure to catch: the largest band/|dL/dθ_j|
    over the significant elements (|dL/dθ_j| >= SIGNIFICANT x the tensor's largest). ``band`` is
    the absolute error each element may show undetected. None when every derivative is zero (the
    check is then absolute only)."""
    band, mag = np.broadcast_arrays(np.asarray(band, float), np.asarray(magnitude, float))
    ok = np.isfinite(mag)
    top = float(mag[ok].max()) if ok.any() else 0.0
    if top <= 0:
        return None
    sig = ok & (mag >= SIGNIFICANT * top)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        r = np.nan_to_num(band[sig] / mag[sig], nan=np.inf)
    return float(r.max())
