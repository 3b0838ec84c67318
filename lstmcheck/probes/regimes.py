"""Decay regimes of a gradient-norm curve: one exponential per regime, never one across all lags.

A gradient norm relative to its last-step value, r(k) = ||dL/ds_{T-k}|| / ||dL/ds_T||, often
drops by a large factor over the first few steps (the loss's direction is not yet aligned with
the dynamics) and then decays or grows at a steady rate. Fitting one exponential across both
mixes the two, so the rate is fitted twice per sequence:

    first steps   lags 0 .. FIRST_LAGS        (the transient)
    tail          lags FIRST_LAGS .. the end   (the steady rate; stops at under/overflow)

Each fit is the least-squares slope of -log r(k) for one sequence; the spread over the batch's
sequences (median and interquartile range, n) says whether the regime is determined:

    vanishing     the whole IQR above +tol nats/step
    exploding     the whole IQR below -tol (or the norm overflowed)
    neutral       the whole IQR within +-tol
    undetermined  otherwise (the sequences disagree, or too few lags to fit)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _common as C

FIRST_LAGS = 5          # the transient regime: lags 0..5
RATE_TOL = 1e-3         # nats per step: |rate| below this is neither vanishing nor exploding
VERDICTS = ("vanishing", "exploding", "neutral", "undetermined")


@dataclass
class Regime(C.Result):
    """One regime's per-step decay rate across sequences.

    lags        (first, last) lag of the fitted window (inclusive; it ends before an under- or
                overflow or a truncation).
    rate        median over sequences of the fitted rate (nats per step; > 0 vanishing); None
                when no sequence had two usable lags.
    rate_iqr    (25th, 75th) percentiles of the rate over the sequences, or None.
    n           number of sequences fitted.
    verdict     one of VERDICTS (see the module docstring).
    overflow_lag  the lag at which the norm overflowed (non-finite) inside this window, or None.
    """

    probe = "regime"
    lags: tuple
    rate: float | None
    rate_iqr: tuple | None
    n: int
    verdict: str
    overflow_lag: int | None = None

    @property
    def factor(self):
        """The per-step ratio exp(-rate) of the median rate (None without a fit)."""
        return None if self.rate is None else float(np.exp(-self.rate))


def classify(q25, q75, tol=RATE_TOL) -> str:
    """The verdict of a rate whose spread over sequences is [q25, q75] (nats per step)."""
    if q25 > tol:
        return "vanishing"
    if q75 < -tol:
        return "exploding"
    if -tol <= q25 and q75 <= tol:
        return "neutral"
    return "undetermined"


def _slope(lags, logs):
    """Least-squares slope of -log r against the lag (two or more points)."""
    return float(-np.polyfit(lags, logs, 1)[0])


def fit_window(rel, lo, hi, stop=None, overflow_lag=None, tol=RATE_TOL) -> Regime:
    """The regime of lags lo..hi (inclusive) of per-sequence relative norms ``rel`` (T, B),
    indexed by lag, using only lags before ``stop`` (under/overflow) with finite positive r."""
    T = rel.shape[0]
    hi = min(hi, T - 1)
    end = hi if stop is None else min(hi, stop - 1)
    lags = np.arange(lo, end + 1)
    rates = []
    for b in range(rel.shape[1]):
        r = rel[lo:end + 1, b]
        ok = np.isfinite(r) & (r > 0)
        if ok.sum() >= 2:
            rates.append(_slope(lags[ok], np.log(r[ok])))
    over = overflow_lag if overflow_lag is not None and lo <= overflow_lag <= hi else None
    shown = (int(lo), int(max(lo, end)))        # the lags actually fitted
    if not rates:
        return Regime(shown, None, None, 0,
                      "exploding" if over is not None else "undetermined", over)
    q25, med, q75 = (float(v) for v in np.percentile(rates, [25, 50, 75]))
    verdict = "exploding" if over is not None else classify(q25, q75, tol)
    return Regime(shown, med, (q25, q75), len(rates), verdict, over)


def regimes(rel, stop=None, overflow_lag=None, first=FIRST_LAGS, tol=RATE_TOL) -> dict:
    """{"first": Regime, "tail": Regime} of relative norms ``rel`` (T, B) indexed by lag; only
    "first" when the sequence is no longer than the transient."""
    rel = np.asarray(rel, dtype=float)
    T = rel.shape[0]
    out = {"first": fit_window(rel, 0, first, stop, overflow_lag, tol)}
    if T - 1 > first:
        out["tail"] = fit_window(rel, first, T - 1, stop, overflow_lag, tol)
    return out
