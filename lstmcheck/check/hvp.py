"""check_hvp: a Hessian-vector product checked against derivatives of the gradient.

For a direction v (a dict shaped like params), H v is the directional derivative of the gradient:

    H v = d/de grad f(theta + e v) |_(e=0)

so one evaluation of grad_fn per direction (complex step: Im grad_fn(theta + i h v) / h) or six
(Richardson: central differences at e, e/2, e/4, extrapolated) give every element of H v with an
error bar. Directions:

- small problems (at most UNIT_MAX numbers): every unit direction e_j, i.e. every column of H, so
  a single wrong Hessian entry is found with its row and its column;
- larger ones: RANDOM_DIRS dense Gaussian directions screen everything; when one fails, one
  direction per parameter tensor finds the failing column blocks, and the unit directions of the
  small failing blocks name the entries.

Rows, verdicts and resolution are those of check_gradients (api._Rows): one row per output tensor
of H v, every direction's elements stacked in it.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..errors import FunctionError, LstmcheckError, OptionError
from . import tolerance as tol
from .api import (_AT_PARAMS, _call_user, _check_number, _check_seed, _finite_max, _Rows,
                  _validate)
from .report import GradcheckReport

HVP_METHODS = ("auto", "complex", "richardson")
UNIT_MAX = 256      # numbers in params up to which every column of H is checked
BLOCK_MAX = 256     # a failing column block up to this size is checked column by column
RANDOM_DIRS = 3


class _GradCalls:
    """grad_fn and hvp_fn at perturbed parameters, their outputs validated into host arrays."""

    def __init__(self, grad_fn, hvp_fn, params, theta, dtype):
        self.grad_fn, self.hvp_fn, self.params = grad_fn, hvp_fn, params
        self.theta, self.dtype, self.calls = theta, dtype, 0

    def _point(self, v, s):
        """theta + s v as arrays of the caller's kind; complex when s is."""
        p = {}
        for n, a in self.params.items():
            xp = backend.array_module(a)
            base = a.astype(backend.complex_of(self.dtype)) if np.iscomplexobj(s) else a
            if n in v:
                base = (base + backend.asarray(v[n], xp) * s).astype(base.dtype)
            p[n] = base
        return p

    def grad(self, v=None, s=0.0):
        self.calls += 1
        cplx = np.iscomplexobj(s)
        p = self._point(v or {}, s)
        out = _call_user(self.grad_fn, p, name="grad_fn", passthrough=cplx,
                         then=_AT_PARAMS + "check_hvp needs grad_fn(params) to return the "
                                           "gradient there.")
        if not isinstance(out, dict):
            raise FunctionError(f"grad_fn must return a dict of arrays like params, got "
                                f"{type(out).__name__}.")
        if cplx:
            return {n: np.asarray(backend.to_host(out[n])) for n in self.theta}
        _, g, _ = _validate(self.params, out, what="grad_fn(params)")
        return g

    def hvp(self, v):
        p = self.params
        v = {n: backend.asarray(a, backend.array_module(p[n]), p[n].dtype) for n, a in v.items()}
        out = _call_user(self.hvp_fn, self.params, v, name="hvp_fn",
                         then="; check_hvp needs hvp_fn(params, v) to return H v for a direction "
                              "v like params.")
        _, hv, _ = _validate(self.params, out, what="hvp_fn(params, v)")
        return hv


def _full(theta, v):
    """A direction over every tensor (zeros where v has none)."""
    return {n: np.asarray(v[n], float) if n in v else np.zeros(np.shape(t))
            for n, t in theta.items()}


class _HvpCheck(_Rows):
    def __init__(self, calls, theta, g0, dtype, seed, rtol, atol, locate, method):
        super().__init__(theta, g0, dtype, seed, rtol, atol, locate, gates=None)
        self.calls, self.method = calls, method
        g1 = calls.grad()
        self.g_nondet = {n: np.abs(g0[n] - g1[n]) for n in theta}
        # rounding in a backward pass is absolute, at the scale of the adjoints it carries
        self.g_scale = max(_finite_max(np.abs(g)) for g in g0.values())
        self.theta_inf = max(_finite_max(np.abs(t)) for t in theta.values())
        self.details = {"gradient_scale": self.g_scale}
        self.mode = None

    # ---- numeric H v for one direction, per tensor, with its error bar
    def numeric(self, v, mode):
        u = tol.unit_roundoff(self.dtype)
        vmax = max(_finite_max(np.abs(a)) for a in v.values())
        if mode == "complex":
            h = tol.complex_step(0.0, self.dtype) / max(vmax, 1e-300)
            g = self.calls.grad(v, 1j * h)
            val = {n: np.imag(g[n]).astype(float) / h for n in self.theta}
            bar = {n: 4 * u * np.abs(val[n]) + _tiny(self.dtype) / h for n in self.theta}
            return val, bar
        e0 = tol.richardson_step(self.theta_inf, self.dtype) / max(vmax, 1e-300)
        D = []
        for k in (1, 2, 4):
            e = e0 / k
            gp, gm = self.calls.grad(v, e), self.calls.grad(v, -e)
            D.append({n: (gp[n] - gm[n]) / (2 * e) for n in self.theta})
        val, bar = {}, {}
        for n in self.theta:
            r1 = D[1][n] + (D[1][n] - D[0][n]) / 3            # removes e^2
            r2 = D[2][n] + (D[2][n] - D[1][n]) / 3
            r = r2 + (r2 - r1) / 15                            # removes e^4
            # the gradient's own rounding (u x its scale, amplified by 1/e) and the rounding of
            # theta + e v (relative u |theta| / (e |v|) of the difference)
            rounding = (tol.ANALYTIC_ROUNDING * u * self.g_scale + 2 * self.g_nondet[n]) \
                / (e0 / 4) * 3
            pert = u * max(1.0, self.theta_inf) / (e0 / 4 * vmax) * np.abs(r)
            val[n], bar[n] = r, np.abs(r - r2) + rounding + pert
        return val, bar

    def complex_applies(self):
        """Complex step when grad_fn carries an imaginary part faithfully (checked against real
        differences along one random direction), else Richardson, with the reason in notes."""
        if self.method == "richardson":
            return False
        v = {n: self.rng.standard_normal(np.shape(t)) for n, t in self.theta.items()}
        try:
            c, cb = self.numeric(v, "complex")
        except LstmcheckError:
            raise
        except Exception as exc:
            why = f"grad_fn fails on complex parameters ({type(exc).__name__}: {exc})"
        else:
            r, rb = self.numeric(v, "richardson")
            if not all(np.all(np.isfinite(c[n])) for n in c):
                why = "grad_fn gives a non-finite imaginary part on complex parameters"
            elif all(np.all(np.abs(c[n] - r[n]) <= tol.SAFETY * (cb[n] + rb[n])) for n in c):
                return True
            else:
                why = ("the complex step disagrees with real differences of grad_fn along a "
                       "random direction (abs, max, conj or a real buffer drops the imaginary "
                       "part)")
        self.notes.append(f"complex step does not apply: {why}; Richardson differences of "
                          f"grad_fn instead.")
        return False

    # ---- a set of directions -> one row per output tensor
    def check(self, dirs, label, columns=None):
        """dirs: full directions; columns: per direction (tensor, flat index) of a unit one."""
        per = {n: ([], [], [], [], [], []) for n in self.theta}
        for k, v in enumerate(dirs):
            val, bar = self.numeric(v, self.mode)
            hv = self.calls.hvp(v)
            scale = max(_finite_max(np.abs(a)) for a in val.values())
            for n in self.theta:
                a, d, e, idx, band, extra = per[n]
                a.append(hv[n].ravel()), d.append(val[n].ravel()), e.append(bar[n].ravel())
                idx.append(np.arange(np.size(self.theta[n])))
                band.append(np.broadcast_to(tol.element_tolerance(
                    bar[n].ravel(), hv[n].ravel(), scale, self.dtype, self.hvp_nondet.get(n, 0.0),
                    self.rtol, self.atol), (np.size(self.theta[n]),)))
                extra += [self._column(columns[k] if columns else None, k)] * np.size(self.theta[n])
        for n, (a, d, e, idx, band, extra) in per.items():
            self._row(n, label, np.concatenate(idx), np.concatenate(a), np.concatenate(d),
                      np.concatenate(e), np.concatenate(band), extra=extra)
        return [r["passed"] for r in self.rows[-len(self.theta):]]

    def _column(self, col, k):
        if col is None:
            return {"direction": k}
        name, j = col
        index = [int(i) for i in np.unravel_index(j, np.shape(self.theta[name]))]
        out = {"column": {"tensor": name, "index": index}}
        where = self._where(name, index)
        if where:
            out["column"]["location"] = where
        return out

    def units(self, names):
        dirs, cols = [], []
        for n in names:
            for j in range(np.size(self.theta[n])):
                v = np.zeros(np.size(self.theta[n]))
                v[j] = 1.0
                dirs.append(_full(self.theta, {n: v.reshape(np.shape(self.theta[n]))}))
                cols.append((n, j))
        return dirs, cols

    def random(self, k, names=None):
        names = names or list(self.theta)
        return [_full(self.theta, {n: self.rng.standard_normal(np.shape(self.theta[n]))
                                   for n in names}) for _ in range(k)]


def _tiny(dtype):
    return tol.ANALYTIC_ROUNDING * float(np.finfo(np.dtype(dtype)).smallest_subnormal)


def check_hvp(grad_fn, params, hvp_fn, *, method="auto", seed=0, rtol=None, atol=None,
              locate=None) -> GradcheckReport:
    """Verify ``hvp_fn(params, v) -> {name: (H v)[name]}`` against derivatives of
    ``grad_fn(params) -> {name: gradient}`` along unit and random directions (module docstring).
    ``method``: "auto" (complex step when grad_fn is complex-safe, else Richardson), "complex" or
    "richardson"; ``locate(name, index) -> dict`` labels elements as in check_gradients."""
    if not isinstance(method, str) or method not in HVP_METHODS:
        raise OptionError(f"unknown method {method!r}; choose one of {', '.join(HVP_METHODS)}.")
    seed, rtol, atol = _check_seed(seed), _check_number("rtol", rtol), _check_number("atol", atol)
    for what, f in (("grad_fn", grad_fn), ("hvp_fn", hvp_fn)):
        if not callable(f):
            raise OptionError(f"{what} must be callable, got {type(f).__name__}.")
    if locate is not None and not callable(locate):
        raise OptionError(f"locate must be callable or None, got {type(locate).__name__}.")
    theta, _, dtype = _validate(params, {n: a for n, a in params.items()}
                                if isinstance(params, dict) else params, what="params")
    calls = _GradCalls(grad_fn, hvp_fn, params, theta, dtype)
    g0 = calls.grad()
    chk = _HvpCheck(calls, theta, g0, dtype, seed, rtol, atol, locate, method)
    probe = {n: chk.rng.standard_normal(np.shape(t)) for n, t in theta.items()}
    h1, h2 = calls.hvp(probe), calls.hvp(probe)            # hvp_fn's run-to-run spread
    chk.hvp_nondet = {n: np.abs(h1[n] - h2[n]).ravel() for n in theta}
    cplx = chk.complex_applies()
    if method == "complex" and not cplx:
        chk.notes.append("method='complex' was asked for; Richardson differences were used.")
    chk.mode = "complex" if cplx else "richardson"
    total = sum(np.size(t) for t in theta.values())
    label = f"hvp({chk.mode})"
    if total <= UNIT_MAX:
        dirs, cols = chk.units(list(theta))
        chk.check(dirs, f"{label}, every column of H", cols)
        chk.check(chk.random(2), f"{label}, random directions")
        chk.details["directions"] = {"unit": len(dirs), "random": 2}
    else:
        ok = chk.check(chk.random(RANDOM_DIRS), f"{label}, random directions")
        chk.details["directions"] = {"random": RANDOM_DIRS}
        if not all(ok):
            _localize(chk, label)
    chk.details["grad_fn_calls"] = calls.calls
    report = chk.report(label)
    report.details["evaluations"] = calls.calls
    _name_entries(report)
    return report


def _localize(chk, label):
    """A random direction failed: find the failing column blocks (one direction supported on
    each tensor), then the entries of the small ones (their unit directions)."""
    rows_before = len(chk.rows)
    blocks = []
    for n in chk.theta:
        ok = chk.check(chk.random(1, [n]), f"{label}, direction on {n} only")
        if not all(ok):
            blocks.append(n)
    # the per-block screening rows only served to find columns; the first rows hold the verdict
    chk.details["failing_column_blocks"] = blocks
    del chk.rows[rows_before:]
    small = [n for n in blocks if np.size(chk.theta[n]) <= BLOCK_MAX]
    if small:
        dirs, cols = chk.units(small)
        chk.check(dirs, f"{label}, columns of {', '.join(small)}", cols)
    if blocks:
        chk.notes.append(f"H v is wrong for directions in {', '.join(blocks)}"
                         + (f"; every column of {', '.join(small)} was checked" if small else ""))


def _name_entries(report):
    """Wrong entries d2f / d(row) d(column), from the unit directions, named in the summary."""
    bad = [w for w in report.worst if not w["passed"] and "column" in w]
    if not bad:
        return
    parts = [f"H[{w['tensor']}{w['index']}, {w['column']['tensor']}{w['column']['index']}] "
             f"(analytic {w['analytic']:.10g} vs numeric {w['numeric']:.10g})" for w in bad[:3]]
    report.summary += " Wrong Hessian entries: " + "; ".join(parts) + (
        " and more." if len(bad) > 3 else ".")
