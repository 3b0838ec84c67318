"""lyapunov_spectrum: Lyapunov exponents of the driven state dynamics s_t = F(s_{t-1}, x_t) by the
QR (Benettin et al. 1980; Shimada & Nagashima 1979) algorithm.

k orthonormal tangent vectors Q are pushed through the per-step Jacobians, Q <- J_t Q, and
re-orthonormalised every ``reorth`` steps by QR; the logs of |diag R| summed after a warm-up and
divided by the number of steps are the exponents (nats per step). lambda_1 is cross-checked
against a small finite perturbation of the state carried along a second trajectory (renormalised
at the same interval), which does not use Jacobians at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend
from .. import validate as V
from ..errors import OptionError
from . import _common as C
from .jacobians import iter_jacobians

MAX_CONVERGENCE_ROWS = 1000


@dataclass
class LyapunovSpectrum(C.Result):
    """Lyapunov exponents of one sequence's state dynamics (nats per time step).

    exponents        (k,) the k largest exponents, descending.
    convergence      (R, k) running estimates of the exponents after each of R checkpoints
                     (at most 1000, evenly spaced), for convergence plots.
    convergence_steps (R,) the time step t of each checkpoint.
    lambda1_perturbation  lambda_1 from a finite perturbation of size ``perturbation``.
    lambda1_gap      |exponents[0] - lambda1_perturbation|.
    kaplan_yorke     Kaplan-Yorke dimension from the exponents (0 when lambda_1 < 0; k when the
                     sum of all k stays positive).
    meta             model description, T, sample, k, n, warmup, reorth, seed.
    """

    probe = "lyapunov_spectrum"
    exponents: np.ndarray
    convergence: np.ndarray
    convergence_steps: np.ndarray
    lambda1_perturbation: float
    lambda1_gap: float
    kaplan_yorke: float
    meta: dict = field(default_factory=dict)


@V.keywords
def lyapunov_spectrum(model, params, x, state=None, *, sample=0, k=None, warmup=None,
                      reorth="auto", perturbation=1e-7, seed=0, method="auto", chunk=None,
                      layer=0, direction=None):
    """The k largest Lyapunov exponents (default all n) along sequence ``sample`` of x.

    warmup: steps propagated before accumulating (default T // 10) so Q aligns with the
            dominant directions (QR after every warm-up step).
    reorth: QR every this many steps after the warm-up. 1 is exact; larger is faster but the
            smallest exponents lose digits as exp(reorth * (lambda_1 - lambda_k)) grows.
            "auto" picks the largest interval (at most 10) that keeps that factor below 1e8,
            from the spread of the exponents seen during the warm-up (1 without warm-up).
    perturbation: relative size of the finite perturbation for the lambda_1 cross-check.
    method: per-step Jacobians "analytic", "vjp" or "auto" (see jacobian_spectrum).
    layer, direction: the recurrence to analyse (default: layer 0, the first direction).
    """
    view, x, state0 = C.prepare(model, params, x, state, layer=layer, direction=direction)
    T, B, _ = x.shape
    sample = C.check_sample(sample, B)
    n = view.state_size
    k = C.check_k(k, n)
    # a NaN or negative perturbation would surface later as "the network overflowed"
    perturbation = V.real("perturbation", perturbation, low=0, high=1, low_open=True,
                          high_open=True)
    seed = V.seed(seed)
    chunk = V.integer("chunk", chunk, allow_none=True)
    if reorth != "auto":
        reorth = C.positive_int("reorth", reorth, allow_none=False)
    warmup = T // 10 if warmup is None else warmup
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
        raise OptionError(f"warmup must be a non-negative integer, got {warmup!r}.")
    if warmup >= T:
        raise OptionError(f"warmup={warmup} leaves no steps of the T={T} to measure; give a "
                          f"longer sequence or a shorter warmup.")
    xs = x[:, sample]
    xp = backend.array_module(xs)
    rng = backend.rng(seed)

    # reference and perturbed trajectory together (batch of 2)
    s0 = view.join(tuple(a[sample:sample + 1] for a in state0))[0]
    d = rng.standard_normal(n)
    eps = perturbation * max(1.0, float(xp.linalg.norm(s0)))
    pair = xp.stack([s0, s0 + eps * backend.asarray(d / np.linalg.norm(d), xp, s0.dtype)])
    S, growth = _trajectory_pair(view, xs, pair, eps, warmup, perturbation)

    Q = backend.asarray(np.linalg.qr(rng.standard_normal((n, k)))[0], xp, s0.dtype)
    acc = np.zeros(k)
    warm = np.zeros(k)                 # summed logs over the warm-up, for reorth="auto"
    interval = 1 if warmup else _interval(reorth, None)      # every step during the warm-up
    every = max(1, (T - warmup) // MAX_CONVERGENCE_ROWS)
    conv, conv_t = [], []
    last_qr = last_rec = 0
    for t, J in iter_jacobians(view, xs, S, range(1, T + 1), chunk, method):
        Q = J @ Q
        if t - last_qr < interval and t != T and t != warmup:
            continue
        last_qr = t
        Q, R = xp.linalg.qr(Q)
        with np.errstate(divide="ignore"):
            logs = np.log(np.abs(backend.to_host(xp.diagonal(R))))
        if np.isnan(logs).any() or np.isposinf(logs).any():
            C.raise_nonfinite("the tangent vectors J_t ... J_1 Q", t, T)
        if t <= warmup:
            warm += logs
            if t == warmup:
                interval = _interval(reorth, warm / warmup)
            continue
        acc += logs
        if t - last_rec >= every or t == T:
            conv.append(acc / (t - warmup))
            conv_t.append(t)
            last_rec = t
    steps = T - warmup
    exponents = np.sort(acc / steps)[::-1]
    lam1 = growth / steps
    return LyapunovSpectrum(
        exponents=exponents, convergence=np.array(conv).reshape(-1, k),
        convergence_steps=np.array(conv_t), lambda1_perturbation=float(lam1),
        lambda1_gap=_gap(exponents[0], lam1), kaplan_yorke=kaplan_yorke(exponents),
        meta=dict(model=view.describe(), T=T, sample=sample, k=k, n=n, warmup=int(warmup),
                  reorth=interval, reorth_option=reorth, perturbation=perturbation, seed=seed,
                  method=method))


def _gap(a, b):
    """|a - b|, 0 when both are the same infinity (an exactly singular Jacobian gives -inf)."""
    return 0.0 if a == b else float(abs(a - b))


def _interval(reorth, warm_rates):
    """Steps between QRs after the warm-up."""
    if reorth != "auto":
        return reorth
    finite = warm_rates[np.isfinite(warm_rates)] if warm_rates is not None else np.array([])
    if finite.size < 2:
        return 1
    spread = float(finite.max() - finite.min())
    return int(np.clip(np.floor(np.log(1e8) / spread), 1, 10)) if spread > 0 else 10


def _trajectory_pair(view, xs, pair, eps, warmup, perturbation):
    """States s_0..s_T of the reference (row 0), and the summed log-growth (after warmup) of a
    perturbed copy (row 1) renormalised every step back to a distance of ``perturbation``
    relative to the state's size (so round-off never swamps it)."""
    xp = backend.array_module(pair)
    T = xs.shape[0]
    S = xp.empty((T + 1, pair.shape[1]), pair.dtype)
    S[0] = pair[0]
    growth = 0.0
    state = view.split(pair)
    for t in range(1, T + 1):
        with np.errstate(over="ignore", invalid="ignore"):      # overflow is reported below
            state = view.step(xp.stack([xs[t - 1]] * 2), state)
        s = view.join(state)
        if not bool(xp.isfinite(s).all()):
            C.raise_nonfinite("the state", t, T)
        S[t] = s[0]
        dist = float(xp.linalg.norm(s[1] - s[0]))
        if t > warmup:
            growth += np.log(dist / eps) if dist > 0 else -np.inf
        eps = perturbation * max(1.0, float(xp.linalg.norm(s[0])))
        if dist > 0:
            s = xp.stack([s[0], s[0] + (s[1] - s[0]) * (eps / dist)])
        state = view.split(s)
    return S, growth


def kaplan_yorke(exponents):
    """D_KY = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|, j the largest index whose partial
    sum is non-negative (0 when lambda_1 < 0)."""
    lam = np.sort(np.asarray(exponents, float))[::-1]
    csum = np.cumsum(lam)
    nonneg = np.nonzero(csum >= 0)[0]
    if nonneg.size == 0:
        return 0.0
    j = int(nonneg.max()) + 1
    if j == lam.size:
        return float(j)
    return float(j + csum[j - 1] / abs(lam[j]))
