"""gradient_norms: how the loss gradient dL/ds_t decays (or grows) with the lag T - t.

Time convention of every probe: s_0 is the initial state, x[t-1] drives the step s_{t-1} -> s_t
(t = 1..T), and the lag of step t is T - t (0 for the last step).

The backward pass is checkpointed: forward runs segment by segment keeping only each segment's
start state; backward recomputes one segment at a time from the end, carrying dL/ds across the
segment boundary, so memory is one segment's tape whatever T is. Only per-step norms are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend
from .. import validate as V
from ..errors import OptionError, ShapeError
from . import _common as C
from ..models import runner

LOSSES = ("last", "sum")


@dataclass
class GradientNorms(C.Result):
    """Per-lag gradient norms of one layer's recurrence. Arrays are indexed by lag = T - t
    (``lags[0] == 0`` is the last step).

    lags            (T,) int, 0 .. T-1.
    h_norm          (T,) median over the batch of ||dL/dh_t|| (total derivative at step t).
    h_iqr           (T, 2) its 25th and 75th percentiles over the batch.
    h_norm_rel      (T,) median over the batch of ||dL/dh_t|| / ||dL/dh_T|| (per sequence).
    h_iqr_rel       (T, 2) percentiles of that ratio.
    c_norm, c_iqr, c_norm_rel, c_iqr_rel
                    the same for the LSTM cell state c_t; None for RNN and GRU.
    contribution    (T,) ||sum_b delta_t h_{t-1}^T||_F, the step-t term of dL/dW_hh (delta_t =
                    dL/d(recurrent pre-activations) at step t; GRU: the reset gate applied as in
                    its W_hn term), after clipping.
    contribution_share (T,) cumulative share of the contributions from lag 0 up to each lag.
    horizon         {share: lag} the smallest lag by which ``share`` of the total contribution
                    has accumulated (None when the total is 0), for each of ``shares``.
    decay_rate      least-squares slope of -log(h_norm_rel) over the lags where it is positive:
                    > 0 vanishing, < 0 exploding (nats per step). c_decay_rate: same for c.
    decay_factor    exp(-decay_rate): the per-step gradient ratio.
    half_life       log(2) / decay_rate (inf when not vanishing).
    steps_in_past   1 + the largest lag at which the relative gradient (h_norm_rel, or for LSTM
                    the larger of h_norm_rel and c_norm_rel) is still >= ``tol`` (Pascanu et al.
                    2013: how far in the past the temporal contributions still matter).
    grad_norm       global norm of all parameter gradients before clipping.
    clipped         whether clip_norm rescaled them; clip_scale the factor (1.0 when not).
    meta            model description, T, B, loss, truncate, clip_norm, segment, tol.
    underflow_lag   the first lag at which h_norm falls below the smallest normal number of the
                    dtype (subnormal or exactly 0), or None: from there on the stored norms carry
                    no relative precision and plots/fits must stop (never log(0)).
                    c_underflow_lag: the same for c_norm (None for RNN/GRU or no underflow).
    """

    probe = "gradient_norms"
    lags: np.ndarray
    h_norm: np.ndarray
    h_iqr: np.ndarray
    h_norm_rel: np.ndarray
    h_iqr_rel: np.ndarray
    c_norm: np.ndarray | None
    c_iqr: np.ndarray | None
    c_norm_rel: np.ndarray | None
    c_iqr_rel: np.ndarray | None
    contribution: np.ndarray
    contribution_share: np.ndarray
    horizon: dict
    decay_rate: float
    c_decay_rate: float | None
    decay_factor: float
    half_life: float
    steps_in_past: int
    grad_norm: float
    clipped: bool
    clip_scale: float
    meta: dict = field(default_factory=dict)
    underflow_lag: int | None = None
    c_underflow_lag: int | None = None


@V.keywords
def gradient_norms(model, params, x, state=None, *, loss="last", truncate=None, clip_norm=None,
                   shares=(0.9, 0.99), tol=1e-2, segment=None, seed=0, layer=0, direction=None):
    """||dL/dh_t|| (and ||dL/dc_t||) for every lag, with decay rate, horizon and Pascanu's
    "steps in the past". See :class:`GradientNorms` for the fields.

    loss: "last" — L = sum_b <v_b, h_T[b]> with seeded random unit vectors v_b (the gradient
          entering at the last step only); "sum" — L = sum_t sum_b <v_b, h_t[b]>; or an array
          dy = dL/dh_t of shape (T, B, H_out).
    truncate: truncated BPTT with chunks of k steps (no gradient crosses t = k, 2k, ...).
    clip_norm: global-norm clipping of the parameter gradient (Pascanu et al. 2013, Alg. 1):
          its effect shows in ``grad_norm``, ``clipped`` and the clipped contributions.
    segment: time steps per checkpointed segment (default: about 128 MiB of tape).
    layer, direction: the recurrence to analyse (default: layer 0, the first direction); dy is
          then dL/d(that layer-direction's h_t), in input order.
    """
    view, x, state0 = C.prepare(model, params, x, state, layer=layer, direction=direction)
    xp = backend.array_module(x)
    T, B, _ = x.shape
    truncate = C.positive_int("truncate", truncate)
    clip_norm = V.real("clip_norm", clip_norm, low=0, low_open=True, allow_none=True)
    shares = _shares(shares)
    tol = V.real("tol", tol, low=0, high=1, low_open=True)
    seed = V.seed(seed)
    segment = C.positive_int("segment", segment) or C.auto_segment(model, B, T)
    dy_of = _loss(model, loss, x, seed, reverse=view.direction == "reverse")

    bounds = C.segment_bounds(T, segment, truncate)
    checkpoints, _ = C.forward_checkpoints(view, x, state0, bounds)

    cell, lp = view.cell, view.p
    has_c = view.has_c
    h_norm = np.empty((T, B))
    c_norm = np.empty((T, B)) if has_c else None
    contrib = np.empty(T)
    grads = {}
    dstate = tuple(xp.zeros_like(s) for s in state0)
    for (a, b, inside), s_a in zip(reversed(bounds), reversed(checkpoints)):
        if truncate is not None and b % truncate == 0 and b < T:
            dstate = tuple(xp.zeros_like(d) for d in dstate)      # chunk boundary at t = b
        _, _, lt = view.run(x[a:b], s_a)
        du, dstate, dp, steps, terms = runner.layer_backward(
            xp, cell, lp, lt, dy_of(a, b), dstate, truncate=inside, trace=True, per_step=True)
        dH, dC = steps[0], (steps[1] if has_c else None)
        bad = C.first_nonfinite(dH)
        if bad is None and dC is not None:
            bad = C.first_nonfinite(dC)
        if bad is not None:
            # backward runs from the end: the last bad step is where it first appeared
            ok = backend.to_host(xp.isfinite(dH.reshape(b - a, -1)).all(axis=1))
            C.raise_nonfinite("the gradient dL/dh_t", a + int(np.nonzero(~ok)[0].max()) + 1, T)
        h_norm[a:b] = backend.to_host(C.row_norms(xp, dH))
        if has_c:
            c_norm[a:b] = backend.to_host(C.row_norms(xp, dC))
        contrib[a:b] = [_frobenius(xp, t.get("weight_hh")) for t in terms]
        _accumulate(cell, grads, du, lt.xin, dp)

    grad_norm = float(sum(float(xp.vdot(g, g).real) for g in grads.values())) ** 0.5
    scale = min(1.0, clip_norm / grad_norm) if clip_norm is not None and grad_norm > 0 else 1.0
    contrib = contrib * scale
    return _summarise(model, h_norm, c_norm, contrib, shares, tol, grad_norm, scale, x.dtype, dict(
        model=view.describe(), T=T, B=B, loss=loss if isinstance(loss, str) else "array",
        truncate=truncate, clip_norm=clip_norm, segment=segment, tol=tol, seed=seed))


def _shares(shares):
    """One share or several, each in (0, 1] (the fraction of the total gradient a horizon holds)."""
    if V.is_real(shares):
        shares = (shares,)
    if not isinstance(shares, (tuple, list)) or not shares or not all(
            V.is_real(s) and 0 < s <= 1 for s in shares):
        raise OptionError(f"shares must be a number or a non-empty tuple of numbers in (0, 1], "
                          f"got {shares!r}.")
    return tuple(float(s) for s in shares)


def _loss(model, loss, x, seed, reverse=False):
    """A function (a, b) -> dy for steps a..b-1 of the processing order (time-major,
    (b - a, B, H_out)); a user's dy is in input order, so a reverse direction flips it."""
    xp = backend.array_module(x)
    T, B, _ = x.shape
    Ho = model.output_size
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise OptionError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)} or pass "
                              f"an array dy of shape (T, B, H_out).")
        v = backend.rng(seed).standard_normal((B, Ho))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v = backend.asarray(v, xp, x.dtype)

        def dy_of(a, b):
            dy = xp.zeros((b - a, B, Ho), x.dtype)
            if loss == "sum":
                dy[...] = v
            elif b == T:
                dy[-1] = v
            return dy
        return dy_of
    if not hasattr(loss, "shape"):
        raise OptionError(f"loss must be 'last', 'sum' or an array dy, got {type(loss).__name__}.")
    dy = loss.transpose(1, 0, 2) if model.batch_first else loss
    if tuple(dy.shape) != (T, B, Ho):
        raise ShapeError(f"dy has shape {tuple(loss.shape)}, expected the shape of y "
                         f"{(B, T, Ho) if model.batch_first else (T, B, Ho)}.")
    dy = backend.asarray(dy, xp, x.dtype)
    if reverse:
        dy = dy[::-1]
    return lambda a, b: dy[a:b]


def _frobenius(xp, g):
    """||g||_F of one step's term of dL/dW_hh: an array, an Outer a^T b (via Gram matrices,
    ||a^T b||^2 = sum((a a^T) * (b b^T)), no (G*H, H) product formed) or Outer terms filling
    disjoint row blocks."""
    from ..models.cell import Outer
    if g is None:
        return 0.0
    sq = 0.0
    for term in (g if isinstance(g, list) else [g]):
        if isinstance(term, Outer):
            sq += float(xp.sum((term.a @ term.a.T) * (term.b @ term.b.T)))
        else:
            sq += float(xp.vdot(term, term).real)
    return max(sq, 0.0) ** 0.5


def _accumulate(cell, grads, du, xin, dp):
    """Add one segment's parameter gradients (the same GEMMs as the model's backward)."""
    T, B, G = du.shape
    du2 = du.reshape(T * B, G)
    parts = {"weight_ih": du2.T @ xin.reshape(T * B, -1), "bias_ih": du2.sum(axis=0), **dp}
    if cell.fold_bias_hh:
        parts["bias_hh"] = parts["bias_ih"]
    for n, g in parts.items():
        grads[n] = grads[n] + g if n in grads else g


def _median_iqr(a):
    """Median and (25th, 75th) percentiles over the batch axis of (T, B) -> (T,), (T, 2)."""
    q = np.percentile(a, [50, 25, 75], axis=1)       # NaN only where a whole row is undefined
    return q[0], q[1:].T.copy()


def _relative(norms):
    last = norms[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(last > 0, norms / np.where(last > 0, last, 1.0), np.nan)


def fit_decay(rel, stop=None):
    """Least-squares slope of -log(rel) against the lag, over lags with finite positive rel
    (before ``stop``, the lag where the norms underflow)."""
    lags = np.arange(rel.size)
    ok = np.isfinite(rel) & (rel > 0) & (lags < (rel.size if stop is None else stop))
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(lags[ok], np.log(rel[ok]), 1)[0]
    return float(-slope)


def _summarise(model, h, c, contrib, shares, tol, grad_norm, scale, dtype, meta):
    T = h.shape[0]
    lagged = lambda a: a[::-1]                               # noqa: E731  index t -> lag T - t
    h_med, h_iqr = _median_iqr(lagged(h))
    h_rel, h_rel_iqr = _median_iqr(lagged(_relative(h)))
    tiny = np.finfo(np.dtype(dtype)).tiny          # below it the norm is subnormal or 0
    h_under = C.first_lag_below(h_med, tiny)
    c_fields = (None,) * 4
    c_rate = c_under = None
    if c is not None:
        c_med, c_iqr = _median_iqr(lagged(c))
        c_rel, c_rel_iqr = _median_iqr(lagged(_relative(c)))
        c_fields = (c_med, c_iqr, c_rel, c_rel_iqr)
        c_under = C.first_lag_below(c_med, tiny)
        c_rate = fit_decay(c_rel, c_under)
    contrib = lagged(contrib)
    total = contrib.sum()
    share = np.cumsum(contrib) / total if total > 0 else np.zeros(T)
    horizon = {s: (int(np.searchsorted(share, s - 1e-12)) if total > 0 else None) for s in shares}
    rate = fit_decay(h_rel, h_under)
    reach = np.nan_to_num(h_rel)
    if c is not None:
        reach = np.fmax(reach, np.nan_to_num(c_fields[2]))
    above = np.nonzero(reach >= tol)[0]
    return GradientNorms(
        lags=np.arange(T), h_norm=h_med, h_iqr=h_iqr, h_norm_rel=h_rel, h_iqr_rel=h_rel_iqr,
        c_norm=c_fields[0], c_iqr=c_fields[1], c_norm_rel=c_fields[2], c_iqr_rel=c_fields[3],
        contribution=contrib, contribution_share=share, horizon=horizon, decay_rate=rate,
        c_decay_rate=c_rate, decay_factor=float(np.exp(-rate)),
        half_life=float(np.log(2) / rate) if rate > 0 else float("inf"),
        steps_in_past=int(above.max() + 1) if above.size else 0, grad_norm=grad_norm,
        clipped=scale < 1.0, clip_scale=scale, meta=meta, underflow_lag=h_under,
        c_underflow_lag=c_under)
