"""jacobian_spectrum: singular values of ds_T/ds_t = J_T J_{T-1} ... J_{t+1} for every lag T - t.

The product is built from the last step backwards, one Jacobian per lag, and kept rescaled (its
log-scale carried separately) so that neither vanishing nor exploding products under/overflow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend
from .. import validate as V
from ..errors import OptionError
from . import _common as C
from .jacobians import iter_jacobians


@dataclass
class JacobianSpectrum(C.Result):
    """Singular values of the state Jacobian ds_T/ds_t of one sequence, per lag.

    lags             (L,) int, 1 .. max_lag (lag = T - t).
    singular_values  (L, k) the k largest singular values, descending (may underflow to 0).
    log_singular_values (L, k) their natural logs (exact even where the values underflow).
    spectral_norm    (L,) largest singular value.
    frobenius_norm   (L,) Frobenius norm (from all n singular values).
    condition_number (L,) largest / smallest of all n singular values (inf when singular).
    state            "h" (RNN, GRU) or "h,c" (LSTM: s = (h, c), n = H_out + H).
    meta             model description, T, sample, k, n.
    underflow_lag    the first lag whose spectral norm is below the dtype's smallest normal number
                     (singular_values are then subnormal or 0; log_singular_values stay exact),
                     or None.
    """

    probe = "jacobian_spectrum"
    lags: np.ndarray
    singular_values: np.ndarray
    log_singular_values: np.ndarray
    spectral_norm: np.ndarray
    frobenius_norm: np.ndarray
    condition_number: np.ndarray
    state: str
    meta: dict = field(default_factory=dict)
    underflow_lag: int | None = None


@V.keywords
def jacobian_spectrum(model, params, x, state=None, *, sample=0, max_lag=None, k=None,
                      method="auto", chunk=None, layer=0, direction=None):
    """Singular values of ds_T/ds_t for lags 1..max_lag (default T) of sequence ``sample``.

    For an LSTM the state is s = (h, c): the Jacobian is of the full state, n = H_out + H.
    k: how many of the largest singular values to keep (default all n).
    method: per-step Jacobians "analytic" (the cells with a closed form: RNN, vanilla LSTM, GRU),
    "vjp" (through the cell's step_backward; every cell) or "auto" (the cell's own choice).
    layer, direction: the recurrence to analyse (default: layer 0, the first direction)."""
    view, x, state0 = C.prepare(model, params, x, state, layer=layer, direction=direction)
    T, B, _ = x.shape
    sample = C.check_sample(sample, B)
    n = view.state_size
    k = C.check_k(k, n)
    chunk = V.integer("chunk", chunk, allow_none=True)
    max_lag = T if max_lag is None else C.positive_int("max_lag", max_lag)
    if max_lag > T:
        raise OptionError(f"max_lag={max_lag} needs at least {max_lag} time steps, but x has T={T}.")
    xs = x[:, sample]
    S = C.trajectory(view, xs[:, None], tuple(a[sample:sample + 1] for a in state0))[:, 0]

    xp = backend.array_module(S)
    M = xp.eye(n, dtype=S.dtype)
    log_scale = 0.0
    log_sv = np.empty((max_lag, n))
    jacobians = iter_jacobians(view, xs, S, range(T, T - max_lag, -1), chunk, method)
    for lag, (t, J) in enumerate(jacobians, 1):
        M = M @ J
        m = float(xp.abs(M).max())
        if m > 0:
            M /= m
            log_scale += np.log(m)
        with np.errstate(divide="ignore"):
            log_sv[lag - 1] = np.log(backend.to_host(xp.linalg.svd(M, compute_uv=False))) + log_scale
        if m == 0:
            log_sv[lag:] = -np.inf                         # the product is exactly zero
            break
    sv = np.exp(log_sv)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cond = np.exp(log_sv[:, 0] - log_sv[:, -1])
        frob = np.exp(log_sv[:, 0]) * np.sqrt(np.sum(np.exp(2 * (log_sv - log_sv[:, :1])), axis=1))
    frob = np.where(np.isfinite(log_sv[:, 0]), frob, 0.0)
    return JacobianSpectrum(
        lags=np.arange(1, max_lag + 1), singular_values=sv[:, :k], log_singular_values=log_sv[:, :k],
        spectral_norm=sv[:, 0], frobenius_norm=frob, condition_number=cond,
        state=",".join(view.cell.state_names + view.cell.hidden_states),
        meta=dict(model=view.describe(), T=T, sample=sample, k=k, n=n),
        underflow_lag=C.first_lag_below(log_sv[:, 0], np.log(np.finfo(S.dtype).tiny),
                                         first_lag=1))
