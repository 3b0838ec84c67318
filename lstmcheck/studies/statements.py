"""The sentences of a report, each computed from the arrays its figure plots (and nothing else),
so that tests/test_report_truth.py can hold every sentence to the numbers of the same run.

Rules every sentence follows: it names what it measured (‖∂L/∂h‖ or ‖∂L/∂c‖); a rate comes
with its spread over sequences (IQR) and n; a statement whose uncertainty swamps it says
"undetermined"; no sentence ever contains "inf" or "nan" (``sentence`` refuses one).
"""
from __future__ import annotations

import re

import numpy as np

from ..probes.regimes import RATE_TOL

_BAD = re.compile(r"\b(inf|nan)\b", re.I)


def sentence(text: str) -> str:
    """``text``, refused (a bug in the report, not the user's input) if it says inf or nan."""
    if _BAD.search(text):
        raise AssertionError(f"a report sentence may not say inf or nan: {text!r}")
    return text


def _factor(rate) -> str:
    """The per-step ratio exp(-rate), with digits enough to tell it from 1."""
    return f"×{np.exp(-rate):.3g}" if abs(rate) >= 0.01 else f"×{np.exp(-rate):.5g}"


def rate_text(reg) -> str:
    """One regime (lstmcheck.probes.regimes.Regime) in words: its lags, verdict, per-step
    factor with its IQR over sequences, n, and a half-life or doubling time."""
    lo, hi = reg.lags
    where = f"lags {lo}–{hi}"
    over = (f"; overflows the dtype's range at lag {reg.overflow_lag}"
            if reg.overflow_lag is not None else "")
    if reg.rate is None:
        why = "overflowed before two lags could be fitted" if over else "fewer than two lags to fit"
        return f"{where}: {reg.verdict} ({why}){over}"
    q25, q75 = reg.rate_iqr
    spread = f"IQR {_factor(q75)}..{_factor(q25)}, n = {reg.n}"
    if reg.verdict == "undetermined":
        return f"{where}: undetermined, the sequences disagree ({spread}){over}"
    if reg.verdict == "neutral":
        return (f"{where}: neither vanishing nor exploding, |rate| ≤ {RATE_TOL:g} nats/step "
                f"({spread}){over}")
    if reg.verdict == "vanishing":
        pace = f"half-life {np.log(2) / reg.rate:.3g} steps"
    elif reg.rate < 0:
        pace = f"doubling every {np.log(2) / -reg.rate:.3g} steps"
    else:                   # exploding by overflow although the fitted part decays
        pace = "fitted before the overflow"
    return f"{where}: {reg.verdict} {_factor(reg.rate)} per step ({pace}; {spread}){over}"


def reach_text(rel, tol, quantity, stop=None) -> str:
    """Where the plotted median relative norm ``rel`` (by lag) first falls below ``tol``; lags
    from ``stop`` on (under/overflow) are not plotted and not read."""
    rel = np.asarray(rel, dtype=float)
    n = rel.size if stop is None else min(rel.size, stop)
    below = np.nonzero(~(rel[:n] >= tol))[0]          # NaN counts as below: nothing is left
    if below.size:
        return (f"{quantity} first falls below {tol:.0%} of its last-step value at lag "
                f"{int(below[0])}")
    if n == 1:
        return f"{quantity}: a single lag, nothing to fall from"
    return (f"{quantity} stays ≥ {tol:.0%} of its last-step value at every lag 0–{n - 1}"
            + ("" if stop is None else f" before lag {stop}"))


def flow_text(quantity, rel, regimes, tol, stop=None, notes=()) -> str:
    """The gradient-flow row of one quantity: each regime's rate, then its reach."""
    parts = [rate_text(regimes[k]) for k in ("first", "tail") if k in regimes]
    parts.append(reach_text(rel, tol, quantity, stop))
    return sentence("; ".join([*parts, *notes]))


MIN_LYAPUNOV_STEPS = 20     # fewer steps averaged: no convergence to speak of


def lyapunov_text(exponents, gap, convergence, steps=None) -> str:
    """λ₁ with its uncertainty: the larger of the gap to the finite-perturbation estimate and
    the drift of the running estimate over the second half of the run. A λ₁ within its
    uncertainty of 0 has an undetermined sign; one averaged over fewer than
    MIN_LYAPUNOV_STEPS steps is undetermined altogether."""
    lam = float(exponents[0])
    if steps is not None and steps < MIN_LYAPUNOV_STEPS:
        return sentence(f"λ₁ undetermined: averaged over {steps} step(s), fewer than the "
                        f"{MIN_LYAPUNOV_STEPS} a convergence check needs")
    conv = np.asarray(convergence, dtype=float)
    run = conv[:, 0] if conv.ndim == 2 and conv.shape[0] else np.array([lam])
    half = run[len(run) // 2:]
    drift = float(np.max(half) - np.min(half)) if np.isfinite(half).all() else float("nan")
    if not np.isfinite(lam):
        return sentence("λ₁ undetermined: the Jacobians are exactly singular (every "
                        "perturbation vanishes in one step)")
    unc = max(gap if np.isfinite(gap) else 0.0, drift if np.isfinite(drift) else 0.0)
    detail = (f"finite-perturbation estimate differs by {gap:.2g}, running estimate drifts by "
              f"{drift:.2g} over the second half")
    if unc >= abs(lam):
        return sentence(f"λ₁ = {lam:.3g} ± {unc:.2g} nats/step: sign undetermined ({detail})")
    phase = "chaotic, perturbations grow" if lam > 0 else "contracting, perturbations shrink"
    return sentence(f"λ₁ = {lam:.3g} ± {unc:.2g} nats/step ({phase}; {detail})")


def phases_text(radius, verdicts) -> str:
    """The phases of a spectral-radius sweep, as runs of equal verdicts in radius order:
    'vanishing for ρ 0.25–1.75; exploding for ρ 2–2.5'."""
    radius = np.asarray(radius, dtype=float)
    order = np.argsort(radius)
    runs = []
    for i in order:
        v = verdicts[i]
        if runs and runs[-1][0] == v:
            runs[-1][2] = radius[i]
        else:
            runs.append([v, radius[i], radius[i]])
    words = [f"{v} for ρ {a:g}" + (f"–{b:g}" if b != a else "") for v, a, b in runs]
    return sentence("; ".join(words))


def clip_text(grad_norm, scale, plain_norm, clip_norm, lags, rel, plain_rel) -> str:
    """What truncation and clipping changed: the parameter-gradient norm before and after, and
    the first lag where the (plotted) truncated curve leaves the full-BPTT one."""
    parts = []
    if clip_norm is not None:
        if not np.isfinite(grad_norm):
            parts.append("the gradient overflowed: nothing to clip")
        elif scale < 1.0:
            parts.append(f"‖∇θ L‖ = {grad_norm:.3g} > {clip_norm:g}: scaled by {scale:.3g} to "
                         f"{grad_norm * scale:.3g}")
        else:
            parts.append(f"‖∇θ L‖ = {grad_norm:.3g} ≤ {clip_norm:g}: not clipped")
    rel, plain_rel = np.asarray(rel, float), np.asarray(plain_rel, float)
    same = np.isclose(rel, plain_rel, rtol=1e-9, atol=0) | (np.isnan(rel) & np.isnan(plain_rel))
    differ = np.nonzero(~same)[0]
    if differ.size:
        parts.append(f"‖∂L/∂h‖ departs from full BPTT at lag {int(lags[differ[0]])}")
    else:
        parts.append("‖∂L/∂h‖ is the same as with full BPTT at every lag")
    if np.isfinite(plain_norm) and clip_norm is None:
        parts.append(f"‖∇θ L‖ {grad_norm:.3g} against {plain_norm:.3g} with full BPTT")
    return sentence("; ".join(parts))
