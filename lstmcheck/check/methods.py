"""Numeric derivatives with error estimates: per element (central, Richardson, complex step),
along directions (the same three), the Taylor remainder test, and the complex-step probe.

Every function takes an evaluator (evaluate.py / batched.py), so the same arithmetic serves any
``fn`` and the project's batched models. ``F`` is the absolute scale of f (rounding in f is about
u * F); ``nondet`` the measured run-to-run spread of f.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import tolerance as tol
from .evaluate import ComplexStepUnsupported

ELEMENT_METHODS = ("central", "richardson", "complex")


@dataclass
class Numeric:
    value: np.ndarray     # derivative estimates
    err: np.ndarray       # their estimated error (truncation + rounding + nondeterminism)
    evals: int


# ------------------------------------------------------------------ per element
def _central(ev, name, idx, theta, h, dtype, f0, F, nondet):
    hp = tol.actual_step(theta, h, dtype)
    hm = tol.actual_step(theta, -h, dtype)
    n = len(idx)
    f = np.real(ev.elements(name, np.concatenate([idx, idx]), np.concatenate([hp, hm])))
    fp, fm = f[:n], f[n:]
    width = (hp - hm).astype(float)
    d = (fp - fm) / width
    second = np.abs(fp - 2.0 * f0 + fm)              # ~ h^2 f''
    u = tol.unit_roundoff(dtype)
    # truncation h^2 f'''/6, with f''' taken as f''/max(1,|theta|); rounding ~ 2 u F / width
    err = second / np.maximum(1.0, np.abs(theta)) + (4 * u * F + 2 * nondet) / np.abs(width)
    return d, err, 2 * n


def element_derivatives(ev, name, idx, theta, method, dtype, f0, F, nondet=0.0,
                        step_scale=1.0) -> Numeric:
    """Derivatives of f with respect to the flat elements ``idx`` of tensor ``name``
    (``step_scale`` scales the finite-difference base step, for a second opinion)."""
    idx = np.asarray(idx, dtype=np.int64)
    theta = np.asarray(theta, dtype=float)
    u = tol.unit_roundoff(dtype)
    if method == "central":
        h = tol.central_step(theta, dtype) * step_scale
        d, err, n = _central(ev, name, idx, theta, h, dtype, f0, F, nondet)
        return Numeric(d, err, n)
    if method == "richardson":
        h = tol.richardson_step(theta, dtype) * step_scale
        ds, errs, n = [], [], 0
        for k in range(3):                                    # steps h, h/2, h/4
            d, e, m = _central(ev, name, idx, theta, h / 2 ** k, dtype, f0, F, nondet)
            ds.append(d), errs.append(e)
            n += m
        r1 = ds[1] + (ds[1] - ds[0]) / 3                      # removes h^2
        r2 = ds[2] + (ds[2] - ds[1]) / 3
        r = r2 + (r2 - r1) / 15                               # removes h^4
        rounding = (4 * u * F + 2 * nondet) / (h / 2) * 3     # the h/4 differences, amplified
        return Numeric(r, np.abs(r - r2) + rounding, n)
    if method == "complex":
        h = tol.complex_step(theta, dtype)
        f = ev.elements(name, idx, 1j * h)
        d = np.imag(f) / h
        return Numeric(d, 4 * u * np.abs(d) + _underflow(dtype) / h, len(idx))
    raise AssertionError(method)


def _underflow(dtype):
    """Absolute error of Im f(t + ih) where h * dL/dθ leaves the normal range: one smallest
    subnormal per operation (the derivative then comes back as 0, however large h * it was)."""
    return tol.ANALYTIC_ROUNDING * float(np.finfo(np.dtype(dtype)).smallest_subnormal)


# ------------------------------------------------------------------ along directions
def _dot(grads, v):
    """sum g*v and sum |g||v| over the tensors of direction v (host arrays)."""
    a = s = 0.0
    for name, vn in v.items():
        g = grads[name]
        a += float(np.vdot(g.ravel(), vn.ravel()).real)
        s += float(np.abs(g).ravel() @ np.abs(vn).ravel())
    return a, s


def _rounded(theta, v, e, dtype):
    """The perturbation the working precision really applies: fl(theta + e v) - theta."""
    out = {}
    for n, vn in v.items():
        t = np.asarray(theta[n])
        dt = t.dtype if t.dtype.kind == "f" else np.dtype(dtype)
        out[n] = (t + np.asarray(e * vn, dt)).astype(dt) - t
    return out


@dataclass
class Directional:
    analytic: np.ndarray   # g . v
    numeric: np.ndarray    # D_v f
    err: np.ndarray        # error estimate of numeric
    abs_scale: np.ndarray  # sum |g||v|: rounding scale of the analytic dot product
    evals: int


def directional(ev, grads, theta, dirs, mode, dtype, f0, F, nondet=0.0) -> Directional:
    """Directional derivatives D_v f for each direction (dict of host arrays) in ``dirs``."""
    u = tol.unit_roundoff(dtype)
    K = len(dirs)
    dots = [_dot(grads, v) for v in dirs]
    A = np.array([a for a, _ in dots])
    S = np.array([s for _, s in dots])
    if mode == "complex":
        h = tol.complex_step(0.0, dtype)
        f = ev.directions(dirs, np.full(K, 1j * h))
        d = np.imag(f) / h
        return Directional(A, d, 4 * u * np.abs(d) + _underflow(dtype) / h, S, K)
    theta_inf = max(float(np.max(np.abs(theta[n]))) for n in dirs[0]) if dirs else 1.0
    vmax = np.array([max(float(np.max(np.abs(vn))) for vn in v.values()) for v in dirs])
    steps = [1] if mode == "central" else [1, 2, 4]
    e0 = (u ** (1 / 3) if mode == "central" else u ** (1 / 5)) * max(1.0, theta_inf) / vmax
    disc, trunc, rounding = [], [], []
    for k in steps:
        e = e0 / k
        plus = [_rounded(theta, v, ek, dtype) for v, ek in zip(dirs, e)]
        minus = [_rounded(theta, v, -ek, dtype) for v, ek in zip(dirs, e)]
        f = np.real(ev.directions(plus + minus, np.ones(2 * K)))
        width = 2 * e
        # f(+) - f(-) against g . (d+ - d-): compares along the steps really taken
        a = np.array([_dot(grads, {n: p[n] - m[n] for n in p})[0] for p, m in zip(plus, minus)])
        disc.append((f[:K] - f[K:] - a) / width)
        trunc.append(np.abs(f[:K] - 2 * f0 + f[K:]) / max(1.0, theta_inf) / vmax)
        rounding.append((4 * u * F + 2 * nondet) / width)
    if mode == "central":
        E, err = disc[0], trunc[0] + rounding[0]
    else:
        r1 = disc[1] + (disc[1] - disc[0]) / 3
        r2 = disc[2] + (disc[2] - disc[1]) / 3
        E = r2 + (r2 - r1) / 15
        err = np.abs(E - r2) + 3 * rounding[2]
    return Directional(A, A + E, err, S, 2 * K * len(steps))


def directional_passes(r: Directional, dtype, nondet=0.0, rtol=None, atol=None, extra=None):
    """Per-direction verdicts and the band each was held to (``extra``: per direction, the
    rounding of low-precision analytic gradients, added to the band)."""
    band = tol.element_tolerance(r.err, r.analytic, r.abs_scale, dtype, nondet, rtol, atol)
    if extra is not None:
        band = band + extra
    diff = np.abs(r.analytic - r.numeric)
    return np.isfinite(r.analytic) & np.isfinite(r.numeric) & (diff <= band), diff, band


# ------------------------------------------------------------------ Taylor remainder
@dataclass
class Taylor:
    steps: np.ndarray
    remainders: np.ndarray
    slopes: np.ndarray
    window: tuple          # (largest, smallest) step of the usable window, or None
    slope: float           # fitted slope over the small-step half of the window
    passed: bool
    reason: str
    evals: int


def taylor(ev, grads, theta, v, dtype, f0, F, nondet=0.0, levels=14) -> Taylor:
    """|f(t + e v) - f(t) - e g.v| over e = e0 2^-k: O(e^2) when g is right, O(e) when not."""
    u = tol.unit_roundoff(dtype)
    theta_inf = max(float(np.max(np.abs(theta[n]))) for n in v)
    vmax = max(float(np.max(np.abs(vn))) for vn in v.values())
    e = 0.1 * max(1.0, theta_inf) / vmax * 2.0 ** -np.arange(levels)
    deltas = [_rounded(theta, v, ek, dtype) for ek in e]
    f = np.real(ev.directions(deltas, np.ones(levels)))
    lin = np.array([_dot(grads, d)[0] for d in deltas])
    r = np.abs(f - f0 - lin)
    floor = 16 * u * F + 4 * nondet
    slopes = np.log2(np.maximum(r[:-1], 1e-300) / np.maximum(r[1:], 1e-300))
    usable = r > 10 * floor
    if not np.all(np.isfinite(r)):
        return Taylor(e, r, slopes, None, float("nan"), False,
                      "the remainder is not finite (NaN or Inf in f or the gradient)", levels)
    # the window: the longest run of consecutive usable steps starting at the largest step
    n_use = int(np.argmin(usable)) if not usable.all() else levels
    if n_use < 3:
        # a wrong gradient leaves a linear term that outlives the quadratic one: a remainder that
        # reaches the rounding floor within two halvings shows none
        why = (f"the remainder reaches the rounding floor after {n_use} step(s); no linear term "
               f"is visible")
        return Taylor(e, r, slopes, None, float("nan"), True, why, levels)
    lo = max(0, n_use - max(3, n_use // 2))                 # small-step half of the window
    ks = np.arange(lo, n_use)
    fit = np.polyfit(np.log2(e[ks]), np.log2(r[ks]), 1)[0]
    passed = fit >= 1.8
    why = (f"remainder slope {fit:.2f} over steps {e[lo]:.2g}..{e[n_use - 1]:.2g}"
           + ("" if passed else " (1 means the gradient is wrong along this direction)"))
    return Taylor(e, r, slopes, (float(e[0]), float(e[n_use - 1])), float(fit), bool(passed), why,
                  levels)


# ------------------------------------------------------------------ does the complex step apply?
def complex_probe(ev, grads, theta, dtype, f0, F, rng, nondet=0.0):
    """(True, '') when Im f(t + i h v)/h is a faithful derivative, else (False, why).

    Cheap: one complex evaluation and one Richardson directional derivative along a random v."""
    v = {n: rng.standard_normal(np.shape(theta[n])) for n in theta}
    # numeric against numeric: a NaN in the analytic gradient must not be blamed on the step
    grads = {n: np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for n, g in grads.items()}
    try:
        c = directional(ev, grads, theta, [v], "complex", dtype, f0, F, nondet)
    except ComplexStepUnsupported as exc:
        return False, str(exc)
    except Exception as exc:       # whatever fn does with complex numbers, real differences remain
        return False, f"fn fails on complex parameters ({exc.__class__.__name__}: {exc})"
    if not np.all(np.isfinite(c.numeric)):
        return False, "fn gives a non-finite imaginary part on complex parameters"
    r = directional(ev, grads, theta, [v], "richardson", dtype, f0, F, nondet)
    band = tol.SAFETY * (r.err + c.err + tol.ANALYTIC_ROUNDING * tol.unit_roundoff(dtype)
                         * np.abs(r.numeric))
    h = tol.complex_step(0.0, dtype)
    if np.abs(r.numeric[0]) * h < 1e3 * np.finfo(dtype).tiny:
        return False, (f"the imaginary part underflows: a derivative of {r.numeric[0]:.3g} times "
                       f"the step {h:.0e} falls below the smallest normal {np.dtype(dtype).name}")
    if not np.all(np.abs(c.numeric - r.numeric) <= band):
        return False, ("the complex step disagrees with real differences along a random direction "
                       f"({c.numeric[0]:.6g} vs {r.numeric[0]:.6g}): abs, max, where or a real "
                       "buffer on the path drops the imaginary part")
    return True, ""
