"""The phase section: vanishing/exploding gradients over the spectral radius of W_hh, per cell,
from a sweep of the study's cells."""
from __future__ import annotations

import importlib

import numpy as np

from ..report import fig_flow

PHASE_RADII = tuple(np.round(np.linspace(0.25, 2.5, 10), 3))
PHASE_SEQ_LEN = 60


def phase_measure(study):
    """Sweep measure: the per-lag relative gradient norm and its decay rate."""
    from ..probes import gradient_norms

    r = gradient_norms(study.model, study.params, study.x, seed=0)
    return {"norm_rel": r.h_norm_rel, "decay_rate": r.decay_rate,
            "underflow_lag": r.underflow_lag}


def section_phase(report, ctx):
    """Vanishing/exploding phase diagram over the spectral radius of W_hh, per cell."""
    sweep = importlib.import_module("lstmcheck.sweep")   # the package; lc.sweep is the function

    st = ctx.settings
    cells = list(dict.fromkeys(s.cell for s in ctx.subjects))  # the phase diagram is per cell
    grid = {"cell": cells, "spectral_radius": list(PHASE_RADII), "init": "orthogonal",
            "seq_len": min(PHASE_SEQ_LEN, st["seq_len"]), "hidden_size": st["hidden_size"],
            "batch": st["batch"], "task": st["task"], "seed": st["seed"], "dtype": st["dtype"],
            "backend": st["backend"]}
    records = sweep.sweep(grid, phase_measure)
    bad = [r["error"] for r in records if r.get("error")]
    if bad:
        from ..errors import OptionError
        raise OptionError(f"the spectral-radius sweep failed: {bad[0]}")
    panels, decay = [], []
    for cell in cells:
        rows = [r for r in records if r["cell"] == cell]
        radius = np.array([r["spectral_radius"] for r in rows])
        norm = np.array([r["norm_rel"] for r in rows], dtype=float)
        for i, r in enumerate(rows):       # never colour a subnormal or zero norm
            if r.get("underflow_lag") is not None:
                norm[i, r["underflow_lag"]:] = np.nan
        rate = -np.array([r["decay_rate"] for r in rows], dtype=float)   # growth per step
        panels.append({"label": cell.upper(), "radius": radius, "lag": np.arange(norm.shape[1]),
                       "norm": norm})
        decay.append({"label": cell.upper(), "cell": cell, "radius": radius, "rate": rate})
        crossing = _zero_crossing(radius, rate)
        report.add_row(f"edge of chaos: {cell.upper()}",
                       "gradients explode above ρ(W_hh) ≈ " + f"{crossing:.3g}" if crossing
                       else "no transition between ρ = "
                       f"{radius.min():g} and {radius.max():g}")
    report.results["phase"] = {"grid": grid, "records": records}
    report.add_figure(
        "phase_diagram", "Vanishing (purple) or exploding (orange) gradients over the spectral "
        "radius of W_hh (orthogonal init) and the lag; black: ‖∂L/∂h‖ = 1. Right: growth rate.",
        fig_flow.phase_diagram(panels, decay))


def _zero_crossing(x, y):
    """The first x where y changes sign from negative to positive (linear interpolation)."""
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] < 0 <= y[i + 1]:
            return float(x[i] + (x[i + 1] - x[i]) * (-y[i]) / (y[i + 1] - y[i]))
    return None
