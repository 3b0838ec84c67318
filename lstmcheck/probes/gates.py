"""gate_statistics: how saturated the gates are at each time step, and what the forget gate implies
for memory (its running product and time constant 1/(1 - f)).

Gate values come from the cell tape of a segment-wise forward (so any T fits in memory): LSTM and
GRU store their gate activations there in gate order, RNN its hidden activation h.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend
from .. import validate as V
from ..errors import OptionError
from . import _common as C

DERIVATIVE_TOL = 0.01   # saturated: the derivative is below 1% of its maximum



@dataclass
class GateStatistics(C.Result):
    """Per gate and time step t = 1..T (arrays (n_gates, T), rows in ``gates`` order):

    gates            gate letters: LSTM i, f, g, o (those the variant has), GRU r, z, n, RNN h.
    low, high        fraction of units x batch with a < low_threshold / a > high_threshold for
                     sigmoid gates (i, f, o, r, z); for tanh-like ones (g, n, h): |a| <
                     low_threshold ("off") and |a| > high_threshold ("saturated").
    mean             mean activation.
    saturation       fraction of units x batch whose activation's derivative is below
                     ``derivative_tol`` of its maximum: sigmoid gates sigma'(a) = s (1 - s) <
                     tol / 4, tanh-like ones 1 - v^2 < tol. This is saturation as learning sees
                     it (the gate passes almost no gradient to its weights); a forget gate held
                     near 1 on purpose (chrono init, f = 0.99: 4 f (1 - f) = 0.04) is not
                     saturated at the default tol 0.01, only one pinned beyond ~0.9975.
    forget_gate      which gate keeps memory: "f" (LSTM; "1-i" for CIFG), "z" (GRU), None (RNN
                     and LSTM without forget gate, where it is 1).
    forget_mean      (T,) mean of that gate over units and batch.
    log_forget_product (T,) mean over units and batch of sum_{s<=t} log f_s: the log of the
                     direct cell-path factor dc_t/dc_0 = prod f_s.
    time_constant    (T,) 1 / (1 - forget_mean): the memory time scale implied at each step.
    unit_time_constant (H,) 1 / (1 - mean over t and batch of f) for each unit.
    forget_unit      (T, H) the memory gate of each unit at each step, mean over the batch
                     (None without one). input_unit: the same for the input gate i (LSTM
                     variants that have one; None otherwise).
    meta             model description, T, B, thresholds, derivative_tol.
    """

    probe = "gate_statistics"
    gates: tuple
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    forget_gate: str | None
    forget_mean: np.ndarray | None
    log_forget_product: np.ndarray | None
    time_constant: np.ndarray | None
    unit_time_constant: np.ndarray | None
    meta: dict = field(default_factory=dict)
    saturation: np.ndarray | None = None
    forget_unit: np.ndarray | None = None
    input_unit: np.ndarray | None = None


@V.keywords
def gate_statistics(model, params, x, state=None, *, low=0.05, high=0.95, segment=None,
                    layer=0, direction=None, derivative_tol=DERIVATIVE_TOL):
    """Saturation fractions, mean activations and forget-gate memory of every gate over time
    (of one layer-direction: default layer 0, the first direction)."""
    low = V.real("low", low, low=0, high=1)
    high = V.real("high", high, low=0, high=1)
    if not (0 <= low < high <= 1):
        raise OptionError(f"thresholds must satisfy 0 <= low < high <= 1, got low={low}, high={high}.")
    if not (np.isscalar(derivative_tol) and 0 < derivative_tol < 1):
        raise OptionError(f"derivative_tol must lie in (0, 1), got {derivative_tol!r}.")
    view, x, state0 = C.prepare(model, params, x, state, layer=layer, direction=direction)
    xp = backend.array_module(x)
    T, B, _ = x.shape
    segment = C.positive_int("segment", segment) or C.auto_segment(model, B, T)
    gates, keep = _gate_layout(view, x[:1], state0)
    G, H = len(gates), model.hidden_size
    lo, hi, mean, sat = (np.empty((G, T)) for _ in range(4))
    f_mean = np.empty(T) if keep else None
    log_f = np.empty(T) if keep else None
    f_unit = np.zeros(H) if keep else None
    f_time_unit = np.empty((T, H)) if keep else None
    i_time_unit = np.empty((T, H)) if "i" in gates and view.cell.unit_gates else None
    log_acc = xp.zeros((B, H), x.dtype) if keep else None
    state = state0
    for a, b, _ in C.segment_bounds(T, segment):
        y, state, lt = view.run(x[a:b], state)
        bad = C.first_nonfinite(y)
        if bad is not None:
            C.raise_nonfinite("the hidden state h_t", a + bad + 1, T)
        acts = _gate_values(view, lt)
        for j, g in enumerate(gates):
            v = acts[g]
            mag = v if g in view.cell.unit_gates else xp.abs(v)   # tanh-like: |a| near 1
            lo[j, a:b] = backend.to_host((mag < low).mean(axis=(1, 2)))
            hi[j, a:b] = backend.to_host((mag > high).mean(axis=(1, 2)))
            mean[j, a:b] = backend.to_host(v.mean(axis=(1, 2)))
            sat[j, a:b] = backend.to_host(
                (_relative_derivative(v, g in view.cell.unit_gates) < derivative_tol)
                .mean(axis=(1, 2)))
        if i_time_unit is not None:
            i_time_unit[a:b] = backend.to_host(acts["i"].mean(axis=1))
        if keep:
            f = acts[keep]
            f_mean[a:b] = backend.to_host(f.mean(axis=(1, 2)))
            with np.errstate(divide="ignore"):
                logs = xp.cumsum(xp.log(f), axis=0) + log_acc
            log_f[a:b] = backend.to_host(logs.mean(axis=(1, 2)))
            log_acc = logs[-1]
            f_unit += backend.to_host(f.sum(axis=(0, 1)))
            f_time_unit[a:b] = backend.to_host(f.mean(axis=1))
    with np.errstate(divide="ignore"):
        tau = 1.0 / (1.0 - f_mean) if keep else None
        tau_unit = 1.0 / (1.0 - f_unit / (T * B)) if keep else None
    return GateStatistics(
        gates=gates, low=lo, high=hi, mean=mean, forget_gate=keep, forget_mean=f_mean,
        log_forget_product=log_f, time_constant=tau, unit_time_constant=tau_unit,
        meta=dict(model=view.describe(), T=T, B=B, low_threshold=low, high_threshold=high,
                  derivative_tol=derivative_tol), saturation=sat, forget_unit=f_time_unit,
        input_unit=i_time_unit)


def _relative_derivative(v, sigmoid):
    """The activation's derivative over its largest value, from the activation v itself:
    sigma' / sigma'(0) = 4 s (1 - s) for sigmoid gates, tanh' = 1 - v^2 for tanh-like ones."""
    return 4.0 * v * (1.0 - v) if sigmoid else 1.0 - v * v


def _gate_layout(view, x1, state0):
    """(gate names, the label of what keeps memory or None), from one step of the cell."""
    _, _, lt = view.run(x1, state0)
    values = view.cell.gate_values(lt.caches[0])
    mem = view.cell.memory(values)
    return tuple(values), (mem[0] if mem is not None else None)


def _gate_values(view, lt):
    """{gate: (n, B, H) activations} of one segment (plus what keeps memory, by its label)."""
    xp = backend.array_module(lt.xin)
    per_step = [view.cell.gate_values(c) for c in lt.caches]
    out = {g: xp.stack([v[g] for v in per_step]) for g in per_step[0]}
    mem = view.cell.memory(out)
    if mem is not None:
        out[mem[0]] = mem[1]
    return out
