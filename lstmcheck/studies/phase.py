"""The phase section: vanishing/exploding gradients over the spectral radius of W_hh, per cell,
from a sweep of the study's cells."""
from __future__ import annotations

import importlib

import numpy as np

from ..models.registry import display_name
from ..report import fig_flow

PHASE_RADII = tuple(np.round(np.linspace(0.25, 2.5, 10), 3))
PHASE_SEQ_LEN = 60


def phase_measure(study):
    """Sweep measure: the per-lag relative gradient norm and its decay rate."""
    from ..probes import gradient_norms

    r = gradient_norms(study.model, study.params, study.x, seed=0)
    tail = r.regimes.get("tail", r.regimes["first"])
    return {"norm_rel": r.h_norm_rel, "decay_rate": r.decay_rate,
            "underflow_lag": r.underflow_lag, "overflow_lag": r.overflow_lag,
            "regime": tail.verdict, "tail_rate": tail.rate, "tail_rate_iqr": tail.rate_iqr,
            "tail_lags": tail.lags, "n": tail.n}


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
    from . import statements as S
    from ..probes.regimes import RATE_TOL

    panels, decay = [], []
    for cell in cells:
        rows = [r for r in records if r["cell"] == cell]
        radius = np.array([r["spectral_radius"] for r in rows])
        norm = np.array([r["norm_rel"] for r in rows], dtype=float)
        for i, r in enumerate(rows):       # never colour a subnormal or zero norm
            stop = min(k for k in (r.get("underflow_lag"), r.get("overflow_lag"), norm.shape[1])
                       if k is not None)
            norm[i, stop:] = np.nan
        # growth per step = -(decay rate) of the tail regime, median and IQR over sequences
        rate = -np.array([np.nan if r["tail_rate"] is None else r["tail_rate"] for r in rows])
        band = -np.array([(np.nan, np.nan) if r["tail_rate_iqr"] is None else r["tail_rate_iqr"]
                          for r in rows], dtype=float)[:, ::-1]
        label = display_name(cell)
        panels.append({"label": label, "radius": radius, "lag": np.arange(norm.shape[1]),
                       "norm": norm})
        decay.append({"label": label, "cell": cell, "radius": radius, "rate": rate, "band": band,
                      "tol": RATE_TOL})
        lags = rows[0]["tail_lags"]
        report.add_row(f"phases over ρ(W_hh): {label}",
                       S.phases_text(radius, [r["regime"] for r in rows])
                       + f" (tail lags {lags[0]}–{lags[1]} of ‖∂L/∂h‖, IQR over "
                       f"{rows[0]['n']} sequences; |rate| ≤ {RATE_TOL:g} nats/step is neither)")
    report.results["phase"] = {"grid": grid, "records": records}
    fixed = (f"fixed: hidden size {grid['hidden_size']}, T = {grid['seq_len']}, batch "
             f"{grid['batch']}, orthogonal init, {grid['task']} inputs, seed {grid['seed']}, "
             f"{grid['dtype']}")
    report.add_figure(
        "phase_diagram", "Left panels: log₁₀ of the median relative ‖∂L/∂h_{T−k}‖ over the "
        "spectral radius of W_hh (orthogonal init) and the lag k, on one colour scale symmetric "
        "about 0 (purple: vanished, orange: grown); black: ‖∂L/∂h‖ = its last-step value. "
        "Right: the tail growth rate with its IQR over the sequences; grey: |rate| ≤ "
        f"{RATE_TOL:g} nats/step, neither phase. {fixed}.",
        fig_flow.phase_diagram(panels, decay, note=fixed))
