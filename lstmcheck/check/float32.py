"""float32 gradients against float64 derivatives.

gradcheck's float32 models: their gradients against the float64 oracle on upcast inputs.
check_gradients' float32 fn that also runs in float64 (float64_twin): its float32 gradients
against float64 derivatives of the same fn, within the float32 rounding measured on fn.

The derivative code itself is verified in float64 (finite differences cannot resolve float32
gradients well). What is left for float32 is rounding: each float32 gradient element must stay
within a band of K_ROUNDING float32 round-offs of the tensor's scale, grown with the length of the
recurrence (rounding errors of T steps and L layers accumulate like a random walk).
"""
from __future__ import annotations

import copy

import numpy as np

from .. import backend
from . import tolerance as tol
from .summary import summarize

K_ROUNDING = 64


def float32_rows(report, model, params, x, state0, names, w, grads64):
    xp = backend.array_module(x, *params.values())
    m = copy.copy(model)
    m.batch_first = False
    dt = model.dtype
    state = tuple(state0) if len(state0) > 1 else state0[0]
    _, _, tape = m.forward(params, x, state)
    dstate = tuple(backend.asarray(w[n], xp, dt) for n in names)
    g32 = m.backward(tape, backend.asarray(w["y"], xp, dt),
                     dstate if len(dstate) > 1 else dstate[0])
    u = float(np.finfo(dt).eps)
    growth = np.sqrt(x.shape[0] * model.num_layers)
    for n, g64 in grads64.items():
        g = np.asarray(backend.to_host(g32[n]), np.float64)
        diff = np.abs(g - g64)
        scale = float(np.abs(g64).max()) if g64.size else 0.0
        band = K_ROUNDING * u * growth * (np.abs(g64) + scale)
        ok = np.isfinite(g) & (diff <= band)
        report.tensors.append({
            "name": n, "shape": list(g64.shape), "method": f"{dt.name} vs float64 oracle",
            "max_abs_err": float(np.nanmax(diff)) if diff.size else 0.0,
            "max_rel_err": float(np.nanmax(diff / np.maximum(np.abs(g64), 1e-300))),
            "normwise_rel_err": float(np.linalg.norm(g - g64) / max(np.linalg.norm(g64), 1e-300)),
            "cosine": None, "tolerance": float(band.max()) if band.size else 0.0,
            "passed": bool(ok.all()), "n_checked": int(g.size), "n_failed": int((~ok).sum()),
            "nan_analytic": int((~np.isfinite(g)).sum()), "nan_numeric": 0,
            "resolution": tol.resolution(band, np.abs(g64))})
    report.passed = all(r["passed"] for r in report.tensors)
    report.summary = summarize(report.tensors, report.worst, report.method)
    report.notes.append(f"the derivative code was checked in float64 on upcast inputs; {dt.name} "
                        f"gradients are held to {K_ROUNDING} round-offs x sqrt(T*layers) of the "
                        f"float64 oracle's.")
    report.dtype = dt.name


# ------------------------------------------------------------------ any fn: float64 twin
K_ELEMENT = 64   # multiples of the measured rounding an honest float32 gradient element stays in
K_NORM = 64      # ... and the whole tensor, normwise (calibrated: scripts/float32_resolution.py)
PROBES = 4       # points where fn(float32) is compared with fn(float64)


class Rounding:
    """The float32 rounding measured on fn: ``kappa`` = max |fn32 - fn64| / (u32 x the scale of
    fn's terms) over a few points, at least 1. A float32 backward of fn carries errors of about kappa u32 per
    element, at the scale of the tensor's largest derivative (rounding in a backward sum is
    relative to its terms, not to its result)."""

    def __init__(self, dtype, kappa, scale):
        self.u = float(np.finfo(dtype).eps)
        self.kappa = max(1.0, float(kappa))
        self.scale = scale                    # per tensor: its largest |gradient|

    def element_band(self, g, scale):
        return K_ELEMENT * self.kappa * self.u * (np.abs(g) + scale)

    def norm_bound(self, norm):
        return K_NORM * self.kappa * self.u * norm


def float64_twin(fn, params, dtype, grads):
    """(params in float64, None) when fn computes in float64 on them, else (None, why)."""
    p64 = {n: a.astype(np.float64) for n, a in params.items()}
    try:
        out = fn(p64)
    except Exception as exc:          # noqa: BLE001 -- any failure means "cannot"
        return None, f"fn raised {type(exc).__name__} on float64 parameters ({exc})"
    odt = getattr(out, "dtype", None)
    if odt is not None and np.dtype(odt).kind == "f" and np.dtype(odt).itemsize < 8:
        return None, f"fn returns {np.dtype(odt).name} for float64 parameters"
    try:
        f = float(np.real(backend.to_host(out)))
    except (TypeError, ValueError):
        return None, "fn does not return one real number for float64 parameters"
    if not np.isfinite(f):
        return None, f"fn returns {f} for float64 parameters"
    # fn must really compute in float64 on every tensor: along a random direction on each one,
    # differences at steps 1e-8 and 1e-6 (relative) agree to ~1e-6 in float64 arithmetic; if fn
    # rounds that tensor to float32 inside (a float32 framework, a cast on the way), the smaller
    # step drowns in float32 round-off and the two disagree at order one
    rng = np.random.default_rng(0)
    for n, a in p64.items():
        if a.size == 0:
            continue
        xp = backend.array_module(a)
        v = rng.standard_normal(a.shape)
        big = max(1.0, float(np.max(np.abs(backend.to_host(a)))))
        D = []
        try:
            for rel in (1e-8, 1e-6):
                e = rel * big / float(np.max(np.abs(v)))
                fp = float(np.real(backend.to_host(fn({**p64, n: a + e * backend.asarray(v, xp)}))))
                fm = float(np.real(backend.to_host(fn({**p64, n: a - e * backend.asarray(v, xp)}))))
                D.append((fp - fm) / (2 * e))
        except Exception as exc:      # noqa: BLE001
            return None, f"fn raised {type(exc).__name__} on float64 parameters ({exc})"
        scale = abs(D[1]) + float(np.abs(backend.to_host(grads[n])).ravel() @ np.abs(v).ravel()) \
            if n in grads else abs(D[1])
        if not abs(D[0] - D[1]) <= 1e-3 * scale:
            return None, (f"along {n}, differences at steps far below {np.dtype(dtype).name}'s "
                          f"resolution disagree with larger ones, so fn computes in "
                          f"{np.dtype(dtype).name} inside")
    return p64, None


def measure_rounding(fn, params, dtype, grads, seed=0):
    """Rounding of fn in ``dtype`` against float64 at the given point and PROBES - 1 random
    nearby points of the same precision (so both evaluate exactly the same inputs)."""
    rng = np.random.default_rng(seed)
    u = float(np.finfo(dtype).eps)
    # the scale of fn's terms, not of its value (a sum that cancels rounds at the size of its
    # terms): |f| or sum_j |theta_j dL/dtheta_j|, what each parameter contributes to first order
    terms = sum(float(np.abs(np.asarray(backend.to_host(params[n]), float)).ravel()
                      @ np.abs(g).ravel()) for n, g in grads.items())
    kappa = 0.0
    for k in range(PROBES):
        if k == 0:
            q = params
        else:
            q = {n: (a * (1 + 1e-3 * backend.asarray(rng.standard_normal(a.shape),
                                                     backend.array_module(a)))).astype(a.dtype)
                 for n, a in params.items()}
        f_lo = float(np.real(backend.to_host(fn(q))))
        f_hi = float(np.real(backend.to_host(fn({n: a.astype(np.float64) for n, a in q.items()}))))
        kappa = max(kappa, abs(f_lo - f_hi) / (u * max(abs(f_hi), terms, np.finfo(float).tiny)))
    scale = {n: float(np.max(np.abs(g))) if g.size else 0.0 for n, g in grads.items()}
    return Rounding(dtype, kappa, scale)
