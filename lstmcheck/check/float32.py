"""float32 models: their gradients against the float64 oracle on upcast inputs.

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
