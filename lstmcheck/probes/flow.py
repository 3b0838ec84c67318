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
from . import regimes as R
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
    steps_in_past   1 + the largest lag at which h_norm_rel is still >= ``tol`` (Pascanu et al.
                    2013: how far in the past the temporal contributions still matter).
                    c_steps_in_past: the same for c_norm_rel (None for RNN/GRU). Never the
                    larger of the two: a sentence about h must be about h.
    grad_norm       global norm of all parameter gradients before clipping.
    clipped         whether clip_norm rescaled them; clip_scale the factor (1.0 when not).
    meta            model description, T, B, loss, truncate, clip_norm, segment, tol.
    underflow_lag   the first lag at which h_norm falls below the smallest normal number of the
                    dtype (subnormal or exactly 0), or None: from there on the stored norms carry
                    no relative precision and plots/fits must stop (never log(0)).
                    c_underflow_lag: the same for c_norm (None for RNN/GRU or no underflow).
    overflow_lag    the lag at which dL/dh_t or dL/dc_t overflowed to Inf/NaN (the gradient
                    exploded past the dtype's range; the first sequence to do so), or None:
                    norms from there on are NaN, grad_norm is inf and nothing is clipped.
    h_rel_seq       (T, B) ||dL/dh_t|| / ||dL/dh_T|| of every sequence, by lag (what the
                    median and IQR summarise, and what the regimes are fitted to).
                    c_rel_seq: the same for c (None for RNN/GRU).
    truncated_lag   with ``truncate``: the first lag from which no gradient flows back (exactly 0
                    in every sequence: the chunk boundary), else None; fits stop there and it is
                    not an underflow.
    regimes         {"first": Regime, "tail": Regime} of h (lstmcheck.probes.regimes): the
                    decay rate of the first FIRST_LAGS lags and of the rest, fitted per
                    sequence, with IQR, n and a verdict. c_regimes: the same for c.
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
    overflow_lag: int | None = None
    h_rel_seq: np.ndarray | None = None
    c_rel_seq: np.ndarray | None = None
    regimes: dict | None = None
    c_regimes: dict | None = None
    c_steps_in_past: int | None = None
    truncated_lag: int | None = None


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
    overflow_lag = None
    dstate = tuple(xp.zeros_like(s) for s in state0)
    for (a, b, inside), s_a in zip(reversed(bounds), reversed(checkpoints)):
        if truncate is not None and b % truncate == 0 and b < T:
            dstate = tuple(xp.zeros_like(d) for d in dstate)      # chunk boundary at t = b
        _, _, lt = view.run(x[a:b], s_a)
        with np.errstate(over="ignore", invalid="ignore"):   # overflow is recorded below
            du, dstate, dp, steps, terms = runner.layer_backward(
                xp, cell, lp, lt, dy_of(a, b), dstate, truncate=inside, trace=True,
                per_step=True)
            dH, dC = steps[0], (steps[1] if has_c else None)
            h_norm[a:b] = backend.to_host(C.row_norms(xp, dH))
            if has_c:
                c_norm[a:b] = backend.to_host(C.row_norms(xp, dC))
            contrib[a:b] = [_frobenius(xp, t.get("weight_hh")) for t in terms]
        t_bad = _last_nonfinite_step(xp, dH, dC)
        if t_bad is not None:
            # The gradient overflowed (exploded) at step a + t_bad + 1: backward runs from the
            # end, so the last bad step is where it first appeared; every earlier step is
            # undefined. Recorded, like underflow, instead of raised: it is a measurement.
            overflow_lag = T - (a + t_bad + 1)
            h_norm[:a + t_bad + 1] = np.nan
            if has_c:
                c_norm[:a + t_bad + 1] = np.nan
            contrib[:a + t_bad + 1] = np.nan
            break
        _accumulate(cell, grads, du, lt.xin, dp)

    if overflow_lag is None:
        grad_norm = runner.grad_norm(xp, grads)
        scale = min(1.0, clip_norm / grad_norm) if clip_norm is not None and grad_norm > 0 \
            else 1.0
    else:                  # the parameter gradient is infinite: there is nothing to clip to
        grad_norm, scale = float("inf"), 1.0
    contrib = contrib * scale
    return _summarise(model, h_norm, c_norm, contrib, shares, tol, grad_norm, scale, x.dtype, dict(
        model=view.describe(), T=T, B=B, loss=loss if isinstance(loss, str) else "array",
        truncate=truncate, clip_norm=clip_norm, segment=segment, tol=tol, seed=seed),
        overflow_lag)


def _last_nonfinite_step(xp, dH, dC):
    """The index (in time order within the segment) of the last step whose dL/dh_t or dL/dc_t
    holds NaN/Inf, or None."""
    ok = xp.isfinite(dH.reshape(dH.shape[0], -1)).all(axis=1)
    if dC is not None:
        ok = ok & xp.isfinite(dC.reshape(dC.shape[0], -1)).all(axis=1)
    ok = backend.to_host(ok)
    return None if ok.all() else int(np.nonzero(~ok)[0].max())


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


def relative_norms(norms):
    """(T, B) norms relative, per sequence, to its latest nonzero one: the last step's for every
    cell whose output is its h, one step earlier for a cell whose output y_T is computed from
    h_(T-1) (the Grid LSTM's depth output), where dL/dh_T is exactly 0."""
    T, B = norms.shape
    nonzero = norms > 0
    ref = norms[T - 1 - np.argmax(nonzero[::-1], axis=0), np.arange(B)]
    ok = nonzero.any(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, norms / np.where(ok, ref, 1.0), np.nan)


def _underflow(med, tiny):
    """The first lag whose median norm is below ``tiny``, from the first lag where the gradient
    has entered (exact zeros before it are no underflow)."""
    start = int(np.argmax(med > 0)) if np.any(med > 0) else 0
    return C.first_lag_below(med[start:], tiny, first_lag=start)


def fit_decay(rel, stop=None):
    """Least-squares slope of -log(rel) against the lag, over lags with finite positive rel
    (before ``stop``, the lag where the norms underflow)."""
    lags = np.arange(rel.size)
    ok = np.isfinite(rel) & (rel > 0) & (lags < (rel.size if stop is None else stop))
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(lags[ok], np.log(rel[ok]), 1)[0]
    return float(-slope)


def _summarise(model, h, c, contrib, shares, tol, grad_norm, scale, dtype, meta,
               overflow_lag=None):
    T = h.shape[0]
    lagged = lambda a: a[::-1]                               # noqa: E731  index t -> lag T - t
    tiny = np.finfo(np.dtype(dtype)).tiny          # below it the norm is subnormal or 0
    # truncated BPTT: from the first lag where every sequence's gradient is exactly 0 on,
    # nothing flows back (the chunk boundary), which is neither decay nor underflow
    cut = None
    if meta.get("truncate") is not None:
        zero = np.nonzero((lagged(h) == 0).all(axis=1))[0]
        cut = int(zero[0]) if zero.size else None

    def one(norms):
        """Median/IQR of the norms and of the per-sequence relative norms, their underflow lag,
        the lag where fits stop, and the per-sequence relative norms (T, B) by lag."""
        med, iqr = _median_iqr(lagged(norms))
        seq = lagged(relative_norms(norms))
        rel, rel_iqr = _median_iqr(seq)
        under = _underflow(med, tiny)
        if cut is not None and under is not None and under >= cut:
            under = None                # exact zeros from the truncation, not an underflow
        stops = [k for k in (under, overflow_lag, cut) if k is not None]
        return med, iqr, rel, rel_iqr, under, (min(stops) if stops else None), seq

    h_med, h_iqr, h_rel, h_rel_iqr, h_under, h_stop, h_seq = one(h)
    c_fields = (None,) * 4
    c_rate = c_under = c_seq = c_reg = None
    c_reach = None
    if c is not None:
        c_med, c_iqr, c_rel, c_rel_iqr, c_under, c_stop, c_seq = one(c)
        c_fields = (c_med, c_iqr, c_rel, c_rel_iqr)
        c_rate = fit_decay(c_rel, c_stop)
        c_reg = R.regimes(c_seq, c_stop, overflow_lag)
        c_reach = _steps_in_past(c_rel, tol)
    contrib = lagged(contrib)
    contrib = np.where(np.isfinite(contrib), contrib, np.nan)   # lags past an overflow
    total = np.nansum(contrib)
    share = np.nancumsum(contrib) / total if total > 0 else np.zeros(T)
    horizon = {s: (int(np.searchsorted(share, s - 1e-12)) if total > 0 else None) for s in shares}
    rate = fit_decay(h_rel, h_stop)
    return GradientNorms(
        lags=np.arange(T), h_norm=h_med, h_iqr=h_iqr, h_norm_rel=h_rel, h_iqr_rel=h_rel_iqr,
        c_norm=c_fields[0], c_iqr=c_fields[1], c_norm_rel=c_fields[2], c_iqr_rel=c_fields[3],
        contribution=contrib, contribution_share=share, horizon=horizon, decay_rate=rate,
        c_decay_rate=c_rate, decay_factor=float(np.exp(-rate)),
        half_life=float(np.log(2) / rate) if rate > 0 else float("inf"),
        steps_in_past=_steps_in_past(h_rel, tol), grad_norm=grad_norm,
        clipped=scale < 1.0, clip_scale=scale, meta=meta, underflow_lag=h_under,
        c_underflow_lag=c_under, overflow_lag=overflow_lag, h_rel_seq=h_seq, c_rel_seq=c_seq,
        regimes=R.regimes(h_seq, h_stop, overflow_lag), c_regimes=c_reg, c_steps_in_past=c_reach,
        truncated_lag=cut)


def _steps_in_past(rel, tol):
    """1 + the largest lag whose relative norm is still >= tol (0 when none is)."""
    above = np.nonzero(np.nan_to_num(rel) >= tol)[0]
    return int(above.max() + 1) if above.size else 0
