"""check_gradients (any fn) and gradcheck (the project's models): validation, method choice,
per-tensor verdicts, and the report."""
from __future__ import annotations

import copy

import numpy as np

from .. import backend
from .. import validate as V
from ..errors import (DTypeError, FunctionError, LstmcheckError, NonFiniteError, OptionError,
                      ParameterError, ShapeError)
from . import methods, tolerance as tol
from .evaluate import FunctionEvaluator
from .labels import torch_labels
from .localize import localize
from .report import GradcheckReport
from .summary import summarize

METHODS = ("auto", "central", "richardson", "complex", "directional", "taylor")
AUTO_ELEMENTWISE_MAX = 2048   # above this many checked numbers, "auto" screens by directions
# "auto" below that size: a tensor of at least SCREEN_MIN elements is first screened by complex-
# step directional derivatives, SCREEN_DRAWS Gaussian directions on each run of SCREEN_SEGMENT
# consecutive elements (3/16 of the per-element cost). The screen stands for the tensor only when
# every direction agrees and its stated per-element resolution is SCREEN_RESOLUTION or finer;
# otherwise (any disagreement included) the tensor is checked element by element as before.
SCREEN_MIN, SCREEN_SEGMENT, SCREEN_DRAWS, SCREEN_RESOLUTION = 48, 16, 3, 1e-9
N_WORST = 10


# ------------------------------------------------------------------ validation
def _validate(params, grads, what="grads"):
    if not isinstance(params, dict) or not params:
        raise ParameterError("params must be a non-empty dict of arrays.")
    if not isinstance(grads, dict):
        raise ParameterError(f"{what} must be a dict of arrays, got {type(grads).__name__}.")
    missing = [n for n in params if n not in grads]
    extra = [n for n in grads if n not in params]
    if missing:
        raise ParameterError(f"{what} has no entry for {', '.join(map(str, missing[:6]))}; give an "
                             f"analytic gradient for every key of params.")
    if extra:
        raise ParameterError(f"{what} has {', '.join(map(str, extra[:6]))}, which params lacks.")
    theta, g = {}, {}
    for n, a in params.items():
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise ParameterError(f"params[{n!r}] is a {type(a).__name__}, not an array.")
        if np.dtype(a.dtype).kind != "f":
            raise DTypeError(f"params[{n!r}] has dtype {np.dtype(a.dtype).name}; only floating-"
                             f"point parameters can be perturbed (cast to float64).")
        if np.dtype(a.dtype).itemsize < 4:
            # refused, not upcast: fn itself computes in float16, so its round-off (1e-3) swamps
            # any finite difference; upcasting the perturbation would check a different function
            raise DTypeError(f"params[{n!r}] has dtype {np.dtype(a.dtype).name}, too coarse for "
                             f"gradient checking (finite differences drown in its 3-digit "
                             f"round-off); cast the parameters to float32 or float64.")
        if not bool(np.all(np.isfinite(backend.to_host(a)))):
            raise NonFiniteError(f"params[{n!r}] contains NaN or Inf; the check needs finite "
                                 f"parameters.")
        gn = grads[n]
        if not hasattr(gn, "shape") or tuple(gn.shape) != tuple(a.shape):
            got = tuple(gn.shape) if hasattr(gn, "shape") else type(gn).__name__
            raise ShapeError(f"{what}[{n!r}] has shape {got}, but params[{n!r}] has shape "
                             f"{tuple(a.shape)}.")
        theta[n] = np.asarray(backend.to_host(a))
        g[n] = _analytic(n, gn, what)
    # tolerances follow the least precise tensor
    dtype = min((t.dtype for t in theta.values()), key=lambda d: np.finfo(d).bits)
    return theta, g, np.dtype(dtype)


def _analytic(n, gn, what="grads"):
    """grads[n] as a real float host array; non-numeric or truly complex gradients are refused."""
    kind = np.dtype(gn.dtype).kind if hasattr(gn, "dtype") else "O"
    if kind not in "biufc":
        raise DTypeError(f"{what}[{n!r}] has dtype {np.dtype(gn.dtype).name}; analytic gradients "
                         f"must be numeric arrays.")
    a = np.asarray(backend.to_host(gn))
    if kind == "c":
        if np.any(a.imag != 0):
            raise DTypeError(f"{what}[{n!r}] is complex with a nonzero imaginary part; the "
                             f"gradient of a real loss is real.")
        a = a.real
    return a.astype(np.result_type(a.dtype, float))


def _check_number(name, v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not np.isfinite(v) or v < 0:
        raise OptionError(f"{name} must be a non-negative number or None, got {v!r}.")
    return float(v)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _check_options(method, elements):
    if not isinstance(method, str) or method not in METHODS:
        raise OptionError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if not (elements == "all" or (isinstance(elements, (int, np.integer))
                                  and not isinstance(elements, bool) and elements > 0)):
        raise OptionError(f"elements must be 'all' or a positive int (sampled elements per "
                          f"tensor), got {elements!r}.")


def _select(theta, elements, rng):
    """Flat indices to check per tensor: all, or a seeded sample of ``elements`` per tensor."""
    sel = {}
    for n, t in theta.items():
        if elements == "all" or elements >= t.size:
            sel[n] = np.arange(t.size)
        else:
            sel[n] = np.sort(rng.choice(t.size, size=int(elements), replace=False))
    return sel


# ------------------------------------------------------------------ the checking engine
class _Rows:
    """What every check reports: per-tensor rows, per-element records, the report. Shared by
    check_gradients/gradcheck (_Check below) and check_hvp (hvp.py)."""

    def __init__(self, theta, grads, dtype, seed, rtol, atol, locate, gates):
        self.theta, self.grads, self.dtype = theta, grads, dtype
        self.rng = np.random.default_rng(seed)
        self.rtol, self.atol = rtol, atol
        self.locate, self.gates = locate, gates or {}
        self.rows, self.records, self.notes, self.details = [], [], [], {}

    def _row(self, name, method, idx, g, d, err, band, n_total=None, extra=None):
        diff = np.abs(g - d)
        ok = np.isfinite(g) & np.isfinite(d) & (diff <= band)
        fin = np.isfinite(g) & np.isfinite(d)
        with np.errstate(over="ignore"):      # a wrong element next to a zero derivative: inf
            rel = diff / np.maximum(np.abs(d), np.finfo(float).tiny)
        gn, dn = np.linalg.norm(g[fin]), np.linalg.norm(d[fin])
        row = {"name": name, "shape": list(np.shape(self.theta[name])), "method": method,
               "max_abs_err": _finite_max(np.where(fin, diff, np.nan), nan_if_any=~fin),
               "max_rel_err": _finite_max(np.where(fin, rel, np.nan), nan_if_any=~fin),
               "normwise_rel_err": float(np.linalg.norm((g - d)[fin]) / dn) if dn > 0 else
               (0.0 if gn == 0 else float("inf")),
               "cosine": float(g[fin] @ d[fin] / (gn * dn)) if gn > 0 and dn > 0 else None,
               "tolerance": _finite_max(band), "passed": bool(ok.all()),
               "n_checked": int(n_total if n_total is not None else len(idx)),
               "n_failed": int((~ok).sum()),
               "nan_analytic": int((~np.isfinite(g)).sum()),
               "nan_numeric": int((~np.isfinite(d)).sum()),
               "resolution": tol.resolution(band, np.fmax(np.abs(g), np.abs(d)))}
        low = getattr(self, "low", None)
        if low is not None and self.rtol is None and self.atol is None and dn > 0 \
                and len(idx) == np.size(self.theta[name]):
            # a whole tensor off by a small factor hides inside every element's band, not in the
            # norm: float32 rounding averages out over the tensor, a scale error does not
            bound = low.norm_bound(dn) + float(np.linalg.norm(band[fin]))
            row["normwise_tolerance"] = bound / dn
            if np.linalg.norm((g - d)[fin]) > bound:
                row["passed"], row["normwise_failed"] = False, True
        self._gate_pattern(row, name, idx, g, d, ok, band)
        self.rows.append(row)
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = np.where(ok, diff / np.maximum(band, np.finfo(float).tiny), np.inf)
        for k in range(len(idx)):
            self.records.append((float(ratio[k]) if ok[k] else float("inf"), -float(diff[k])
                                 if np.isfinite(diff[k]) else -np.inf, name, int(idx[k]),
                                 float(g[k]), float(d[k]), float(err[k]), float(band[k]),
                                 bool(ok[k]), extra[k] if extra is not None else None))

    def _gate_pattern(self, row, name, idx, g, d, ok, band):
        """Which gate blocks the failures sit in; when the whole tensor was checked, whether the
        analytic blocks are the right ones in another order (a swap or a permutation)."""
        G = self.gates.get(name, 1)
        shape = np.shape(self.theta[name])
        if G <= 1 or ok.all() or shape[0] % G:
            return
        per_gate = int(np.prod(shape)) // G
        letters = [(self._where(name, np.unravel_index(k * per_gate, shape)) or {}).get("gate", str(k))
                   for k in range(G)]
        bad = sorted(set((idx[~ok] // per_gate).tolist()))
        row["failing_gates"] = [letters[k] for k in bad]
        row["n_gates"] = G
        if len(idx) == int(np.prod(shape)) and np.array_equal(idx, np.arange(len(idx))):
            perm = _block_permutation(g, d, band, G)
            if perm is None:
                return
            moved = [k for k in range(G) if perm[k] != k]
            if len(moved) == 2:
                row["swapped_gates"] = [letters[moved[0]], letters[moved[1]]]
            else:                   # block k of the analytic gradient holds block perm[k]'s
                row["permuted_gates"] = [letters[perm[k]] for k in range(G)]
                row["gate_order"] = letters

    # ---- the report
    def report(self, method):
        self.records.sort(key=lambda r: (-r[0], r[1]))
        worst = []
        for ratio, _, name, j, g, d, err, band, ok, extra in self.records[:N_WORST]:
            index = [int(i) for i in np.unravel_index(j, np.shape(self.theta[name]))]
            worst.append({"tensor": name, "index": index, "location": self._where(name, index),
                          "analytic": g, "numeric": d, "error_bar": err, "tolerance": band,
                          "passed": ok, **(extra or {})})
        passed = all(r["passed"] for r in self.rows)
        self.details["evaluations"] = int(getattr(getattr(self, "ev", None), "calls", 0))
        return GradcheckReport(passed=passed, method=method, tensors=self.rows, worst=worst,
                               summary=summarize(self.rows, worst, method), dtype=self.dtype.name,
                               notes=self.notes, details=self.details)

    def _where(self, name, index):
        if self.locate is None:
            return None
        try:
            return self.locate(name, tuple(index))
        except Exception:            # a user's locate must never break the report
            return None


class _Check(_Rows):
    """Shared state of one check: evaluator, gradients, floors, locations, results."""

    def __init__(self, ev, theta, grads, dtype, seed, rtol, atol, locate, gates, F=None,
                 grad_nondet=None):
        super().__init__(theta, grads, dtype, seed, rtol, atol, locate, gates)
        self.ev = ev
        self.f0 = ev.value()
        f1 = ev.value()                            # nondeterminism floor: f twice
        self.nondet = abs(f1 - self.f0)
        self.F = max(abs(self.f0), F or 0.0, np.finfo(float).tiny)
        self.grad_nondet = grad_nondet or {}
        self.g_scale = max((_finite_max(np.abs(g)) for g in grads.values()), default=0.0)
        self.details = {"f": self.f0, "f_abs_scale": self.F, "f_nondeterminism": self.nondet}
        self.low = None          # float32.Rounding when low-precision grads meet float64 derivatives

    def _low_band(self, name, g):
        """The rounding a float32 gradient carries, as measured on fn (float32.py); 0 else."""
        if self.low is None or self.rtol is not None or self.atol is not None:
            return 0.0
        return self.low.element_band(g, self.low.scale[name])

    def _low_dir_band(self, dirs):
        """The same rounding seen through g . v: sum over elements of |v_j| x its band."""
        if self.low is None or self.rtol is not None or self.atol is not None:
            return None
        return np.array([sum(float(np.abs(vn).ravel() @ self.low.element_band(
            np.abs(self.grads[n]), self.low.scale[n]).ravel()) for n, vn in v.items())
            for v in dirs])

    # ---- complex step: does it apply?
    def complex_ok(self, trusted=False):
        # Im f(t + ih)/h needs h * dL/dθ above the underflow threshold: derivatives near 1e-310
        # (denormal inputs or parameters) come back as 0, so real differences must take over
        h = tol.complex_step(0.0, self.dtype)
        tiny = [n for n, g in self.grads.items()
                if 0 < _finite_max(np.abs(g)) < 1e3 * np.finfo(self.dtype).tiny / h]
        if tiny:
            self.notes.append(f"complex step does not apply: the imaginary part underflows for "
                              f"{', '.join(tiny[:4])} (derivatives near "
                              f"{_finite_max(np.abs(self.grads[tiny[0]])):.2g} times the step "
                              f"{h:.0e} fall below the smallest normal {self.dtype.name}).")
            return False
        if trusted:
            return True
        ok, why = methods.complex_probe(self.ev, self.grads, self.theta, self.dtype, self.f0,
                                        self.F, self.rng, self.nondet)
        if not ok:
            self.notes.append(f"complex step does not apply: {why}.")
        return ok

    # ---- per element
    def elementwise(self, name, idx, method, label=None, n_total=None):
        theta = self.theta[name].ravel()[idx]
        dt = self.dtype          # f rounds at the precision of its coarsest input
        num = methods.element_derivatives(self.ev, name, idx, theta, method, dt, self.f0, self.F,
                                          self.nondet)
        g = self.grads[name].ravel()[idx]
        # rounding in a backward pass is absolute, at the scale of the adjoints it carries: a
        # tensor whose derivatives are all small (saturated paths, 1 - tanh^2 cancelling) still
        # carries errors of u x the largest derivative of any tensor
        scale = max(_finite_max(np.abs(num.value)) if len(idx) else 0.0, self.g_scale)
        gnd = self.grad_nondet.get(name)
        nd = gnd.ravel()[idx] if gnd is not None else 0.0
        band = tol.element_tolerance(num.err, g, scale, dt, nd, self.rtol, self.atol) \
            + self._low_band(name, g)
        value, err = num.value, num.err
        bad = ~(np.abs(g - value) <= band)
        if method in ("central", "richardson") and bad.any() and self.rtol is None \
                and self.atol is None:
            # A finite-difference error bar is itself an estimate (the third derivative is
            # guessed from the second, which can vanish where the third does not). Before calling
            # an element wrong, re-measure it by Richardson from two other base steps: their mean
            # is the value, their spread joins their error bars. Costs evaluations only on
            # failures; a wrong gradient still fails, since both estimates agree with each other.
            a, b = (methods.element_derivatives(self.ev, name, idx[bad], theta[bad], "richardson",
                                                dt, self.f0, self.F, self.nondet, step_scale=k)
                    for k in (0.37, 0.61))
            value, err = value.copy(), err.copy()
            value[bad] = (a.value + b.value) / 2
            err[bad] = np.maximum(a.err, b.err) + np.abs(a.value - b.value)
            band = tol.element_tolerance(err, g, scale, dt, nd) + self._low_band(name, g)
            self.details.setdefault("second_opinions", {})[name] = int(bad.sum())
            value, err, band = self._past_kinks(name, idx, theta, g, value, err, band, scale, nd)
        self._row(name, label or method, idx, g, value, err, band, n_total)

    def _past_kinks(self, name, idx, theta, g, value, err, band, scale, nd):
        """Elements still failing, re-measured by central differences at steps 10, 100 and 1000
        times smaller. A step that straddles a kink of f (relu, clip, a mask) can miss the
        derivative by a share of the jump: in float32 the base step is 5e-3 of the value, and
        about one random Keras SimpleRNN(relu) in 30 failed so. A smaller step's estimate is
        taken where it agrees with half that step (no kink between them) and its band is under
        half the disagreement it re-measures: a wrong gradient, whose disagreement is the same
        at every step, still fails, and by no less than before."""
        dt = self.dtype
        for k in (0.1, 0.01, 0.001):
            bad = ~(np.abs(g - value) <= band)
            if not bad.any():
                break
            a, b = (methods.element_derivatives(self.ev, name, idx[bad], theta[bad], "central",
                                                dt, self.f0, self.F, self.nondet, step_scale=s)
                    for s in (k, k / 2))
            e = b.err + np.abs(a.value - b.value)
            smooth = np.abs(a.value - b.value) <= a.err + b.err
            gb = g[bad]
            band_k = tol.element_tolerance(e, gb, scale, dt, nd[bad] if np.ndim(nd) else nd) \
                + self._low_band(name, gb)
            take = smooth & (band_k < np.abs(gb - value[bad]) / 2)
            if take.any():
                where = np.flatnonzero(bad)[take]
                value, err = value.copy(), err.copy()
                band = np.broadcast_to(band, value.shape).astype(float)
                value[where], err[where], band[where] = b.value[take], e[take], band_k[take]
                counts = self.details.setdefault("kink_opinions", {})
                counts[name] = counts.get(name, 0) + int(take.sum())
        return value, err, band

    # ---- directional screen + localisation
    def directional(self, names, mode, n_dirs=2, elements_method=None):
        dirs, owner = [], []
        for n in names:
            for _ in range(n_dirs):
                dirs.append({n: self.rng.standard_normal(np.shape(self.theta[n]))})
                owner.append(n)
        r = methods.directional(self.ev, self.grads, self.theta, dirs, mode, self.dtype,
                                self.f0, self.F, self.nondet)
        ok, diff, band = methods.directional_passes(r, self.dtype, self.nondet, self.rtol,
                                                    self.atol, extra=self._low_dir_band(dirs))
        owner = np.array(owner)
        label = f"directional({mode})"
        for n in names:
            m = owner == n
            if ok[m].all():
                self._direction_row(n, label, r, diff, band, m, dirs, ok)
                continue
            loc = localize(self.ev, self.grads, self.theta, n, mode, self.dtype, self.f0,
                           self.F, self.rng, gates=self.gates.get(n, 1), nondet=self.nondet,
                           rtol=self.rtol, atol=self.atol, extra=self._low_dir_band)
            self.details.setdefault("localization", {})[n] = {
                "levels": [list(p) for p in loc.path], "evaluations": loc.evals,
                "single_elements": len(loc.leaves), "spread_segments": len(loc.spread)}
            idx = list(loc.leaves)
            for a, b in loc.spread:          # spread error: a sample of each failing region
                k = min(16, b - a)
                idx += list(a + self.rng.choice(b - a, size=k, replace=False))
            idx = np.unique(np.array(idx, dtype=np.int64))
            if len(idx) == 0:                # the direction failed but no segment does: keep it
                self._direction_row(n, label, r, diff, band, m, dirs, ok)
                continue
            self.elementwise(n, idx, elements_method or mode, label=f"{label}+elements")
            # what was compared one by one is the sample: say so (the directions covered the
            # whole tensor, but only as projections)
            size = int(np.size(self.theta[n]))
            if len(idx) < size:
                self.rows[-1].update(n_elements_in_tensor=size,
                                     normwise_scope=f"the {len(idx)} elements checked")
            if self.rows[-1]["passed"]:      # elements agree although the projection did not
                self.rows[-1].update(passed=False, n_failed=0)
                self.notes.append(f"{n}: directional derivatives disagree but no single element "
                                  f"could be isolated; the error is spread thinly.")

    def _direction_row(self, name, label, r, diff, band, m, dirs, ok):
        d = r.numeric[m]
        # one element j wrong by a relative delta moves g.v_k by delta g_j v_kj: the best of the
        # directions resolves delta > band_k / |g_j v_kj|
        g = np.abs(self.grads[name])
        per_dir = [band[k] / np.maximum(g * np.abs(dirs[k][name]), 1e-300)
                   for k in np.flatnonzero(m)]
        res = tol.resolution(np.min(per_dir, axis=0) * g, g)
        self.rows.append({
            "name": name, "shape": list(np.shape(self.theta[name])), "method": label,
            "max_abs_err": _finite_max(diff[m]),
            "max_rel_err": _finite_max(diff[m] / np.maximum(np.abs(d), 1e-300)),
            "normwise_rel_err": float(np.linalg.norm(diff[m]) / max(np.linalg.norm(d), 1e-300)),
            "cosine": None, "tolerance": _finite_max(band[m]), "passed": bool(ok[m].all()),
            "n_checked": int(np.size(self.theta[name])), "n_failed": 0, "nan_analytic": 0,
            "nan_numeric": 0, "resolution": res, "n_directions": int(m.sum()),
            "n_directions_failed": int((~ok[m]).sum()),
            "normwise_scope": f"{int(m.sum())} directional derivatives"})

    # ---- cheap screen before per-element checks
    def screen(self, name, mode):
        """True when segment-wise directional derivatives prove the tensor right to at least
        SCREEN_RESOLUTION per element (a row is added); False leaves it to elementwise."""
        shape, size = np.shape(self.theta[name]), int(np.size(self.theta[name]))
        if mode != "complex" or self.low is not None or self.rtol is not None \
                or self.atol is not None or size < SCREEN_MIN:
            return False
        dirs = []
        for _ in range(SCREEN_DRAWS):
            for a in range(0, size, SCREEN_SEGMENT):
                v = np.zeros(size)
                v[a:a + SCREEN_SEGMENT] = self.rng.standard_normal(len(v[a:a + SCREEN_SEGMENT]))
                dirs.append({name: v.reshape(shape)})
        r = methods.directional(self.ev, self.grads, self.theta, dirs, mode, self.dtype,
                                self.f0, self.F, self.nondet)
        ok, diff, band = methods.directional_passes(r, self.dtype, self.nondet)
        self.details.setdefault("screened", {})[name] = {"directions": len(dirs),
                                                         "agreed": bool(ok.all())}
        if not ok.all():
            return False
        # element j wrong by a relative delta moves direction k by delta |g_j v_kj|: the best
        # direction through j resolves delta > band_k / |g_j v_kj|
        g = np.abs(self.grads[name]).ravel()
        best = np.full(size, np.inf)
        for k, v in enumerate(dirs):
            vj = np.abs(v[name]).ravel()
            m = (vj > 0) & (g > 0)
            best[m] = np.minimum(best[m], band[k] / (g[m] * vj[m]))
        with np.errstate(invalid="ignore"):      # inf x 0 where a derivative is exactly zero
            res = tol.resolution(np.where(np.isfinite(best), best * g, np.inf), g)
        self.details["screened"][name]["resolution"] = res
        if res is None or res > SCREEN_RESOLUTION:
            return False
        d = r.numeric
        self.rows.append({
            "name": name, "shape": list(shape), "method": f"screen({mode})",
            "max_abs_err": _finite_max(diff),
            "max_rel_err": _finite_max(diff / np.maximum(np.abs(d), 1e-300)),
            "normwise_rel_err": float(np.linalg.norm(diff) / max(np.linalg.norm(d), 1e-300)),
            "cosine": None, "tolerance": _finite_max(band), "passed": True,
            "n_checked": size, "n_failed": 0, "nan_analytic": 0, "nan_numeric": 0,
            "resolution": res, "n_directions": len(dirs), "n_directions_failed": 0,
            "normwise_scope": f"{len(dirs)} directional derivatives"})
        return True

    # ---- Taylor remainder per tensor
    def taylor(self, names):
        for n in names:
            v = {n: self.rng.standard_normal(np.shape(self.theta[n]))}
            t = methods.taylor(self.ev, self.grads, self.theta, v, self.dtype, self.f0, self.F,
                               self.nondet)
            # a linear term E e stays hidden while it is below the quadratic remainder at the
            # smallest step of the window, r/e; one element wrong by delta adds delta g_j v_j to E
            g = np.abs(self.grads[n])
            last = (int(np.searchsorted(-t.steps, -t.window[1])) if t.window else 2)
            hidden = 4 * max(float(t.remainders[last]), 10 * 16 * tol.unit_roundoff(self.dtype)
                             * self.F) / t.steps[last]
            res = tol.resolution(hidden / np.maximum(np.abs(v[n]), 1e-300), g)
            self.rows.append({
                "name": n, "shape": list(np.shape(self.theta[n])), "method": "taylor",
                "max_abs_err": None, "max_rel_err": None, "normwise_rel_err": None,
                "cosine": None, "tolerance": 1.8, "passed": t.passed,
                "n_checked": int(np.size(self.theta[n])), "n_failed": 0 if t.passed else 1,
                "nan_analytic": int((~np.isfinite(self.grads[n])).sum()), "nan_numeric": 0,
                "slope": t.slope, "window": list(t.window) if t.window else None,
                "reason": t.reason, "resolution": res})

def _block_permutation(g, d, band, G, max_gates=5):
    """The permutation p with analytic block k equal to numeric block p[k] (within the bands),
    fewest moved blocks first; None when no reordering explains the disagreement."""
    import itertools
    if G > max_gates:
        return None
    gb, db, bb = (np.asarray(a, float).reshape(G, -1) for a in (g, d, band))
    scale = max(_finite_max(np.abs(d)), np.finfo(float).tiny)
    fits = np.array([[bool(np.all(np.abs(gb[k] - db[j]) <= np.maximum(bb[j], 1e-6 * scale)))
                      for j in range(G)] for k in range(G)])
    perms = sorted((p for p in itertools.permutations(range(G)) if p != tuple(range(G))),
                   key=lambda p: sum(i != j for i, j in enumerate(p)))
    for p in perms:
        if all(fits[k, p[k]] for k in range(G)):
            return list(p)
    return None


def _finite_max(a, nan_if_any=None):
    a = np.asarray(a, dtype=float)
    if nan_if_any is not None and np.any(nan_if_any):
        return float("nan")
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def run_check(chk: _Check, method, elements, complex_trusted=False):
    """Dispatch a method over every tensor of the check; returns the report."""
    names = list(chk.theta)
    sel = _select(chk.theta, elements, chk.rng)
    n_sel = sum(len(i) for i in sel.values())
    if method in ("central", "richardson"):
        for n in names:
            chk.elementwise(n, sel[n], method)
        return chk.report(method)
    if method == "taylor":
        chk.taylor(names)
        return chk.report(method)
    cplx = chk.complex_ok(complex_trusted)
    mode = "complex" if cplx else "richardson"
    if method == "complex" and not cplx:
        chk.notes.append("method='complex' was asked for; the elements were checked with "
                         "Richardson differences instead.")
    if method in ("complex",) or (method == "auto" and (elements != "all"
                                                        or n_sel <= AUTO_ELEMENTWISE_MAX)):
        for n in names:
            if not (method == "auto" and elements == "all" and chk.screen(n, mode)):
                chk.elementwise(n, sel[n], mode)
        return chk.report(method if method == "complex" and cplx else f"{method}({mode})")
    chk.directional(names, mode)
    return chk.report(f"{method}({mode})" if method == "auto" else f"directional({mode})")


@V.keywords
def check_gradients(fn, params, grads, *, method="auto", elements="all", seed=0, rtol=None,
                    atol=None, locate=None) -> GradcheckReport:
    """Verify analytic ``grads`` of a scalar ``fn(params)`` numerically (see issue/DESIGN)."""
    _check_options(method, elements)
    seed, rtol, atol = _check_seed(seed), _check_number("rtol", rtol), _check_number("atol", atol)
    if not callable(fn):
        raise OptionError(f"fn must be callable, got {type(fn).__name__}.")
    theta, g, dtype = _validate(params, grads)
    empty = [n for n, t in theta.items() if t.size == 0]
    if len(empty) == len(theta):
        raise ParameterError(f"every tensor of params is empty ({', '.join(empty[:6])}); there is "
                             f"nothing to check.")
    theta = {n: t for n, t in theta.items() if t.size}      # empty tensors: nothing to perturb
    g = {n: a for n, a in g.items() if n in theta}
    gates, labels = _gates_from(locate, theta), None
    if locate is None:                 # PyTorch names and shapes label themselves
        locate, gates, labels = torch_labels(theta)
    low_note = None
    if dtype.itemsize < 8 and method != "taylor":
        report, low_note = _low_precision(fn, params, theta, g, dtype, method, elements, seed,
                                          rtol, atol, locate, empty, gates)
        if report is not None:
            return _labelled(report, labels)
    ev = FunctionEvaluator(_guarded(fn), params, dtype)
    chk = _Check(ev, theta, g, dtype, seed, rtol, atol, locate, gates=gates)
    for n in empty:
        chk.notes.append(f"{n} is empty (shape {tuple(params[n].shape)}): nothing to check.")
    if low_note:
        chk.notes.append(low_note)
    return _labelled(run_check(chk, method, elements), labels)


def _labelled(report, labels):
    if labels:
        report.details["labels"] = labels
    return report


def _low_precision(fn, params, theta, g, dtype, method, elements, seed, rtol, atol, locate,
                   empty, gates):
    """float32 gradients against float64 derivatives of the same fn, when fn runs in float64:
    (report, None); else (None, the sentence that says why the check stays in float32)."""
    from .float32 import K_ELEMENT, K_NORM, PROBES, float64_twin, measure_rounding
    guarded = _guarded(fn)
    p64, why = float64_twin(guarded, params, dtype, g)
    if p64 is None:
        return None, (f"fn cannot run in float64 ({why}): the {dtype.name} gradients were checked "
                      f"by differences of fn in {dtype.name}, whose round-off limits the "
                      f"resolution to the figure stated.")
    low = measure_rounding(guarded, params, dtype, g, seed)
    ev = FunctionEvaluator(guarded, p64, np.float64)
    theta64 = {n: t.astype(np.float64) for n, t in theta.items()}
    chk = _Check(ev, theta64, g, np.dtype("float64"), seed, rtol, atol, locate, gates=gates)
    chk.low = low
    for n in empty:
        chk.notes.append(f"{n} is empty (shape {tuple(params[n].shape)}): nothing to check.")
    chk.notes.append(f"fn runs in float64: the {dtype.name} gradients were checked against "
                     f"float64 derivatives of the same fn, within its {dtype.name} rounding "
                     f"measured at {PROBES} points (fn({dtype.name}) vs fn(float64): "
                     f"{low.kappa:.3g} round-offs), times {K_ELEMENT} per element of the "
                     f"tensor's scale and {K_NORM} normwise.")
    chk.details["low_precision"] = {"dtype": dtype.name, "measured_roundoffs": low.kappa,
                                    "k_element": K_ELEMENT, "k_norm": K_NORM}
    report = run_check(chk, method, elements)
    report.dtype = dtype.name
    return report, None


def _call_user(fn, *args, name, then, passthrough=False):
    """fn(*args), a failure of the user's code turned into one FunctionError sentence: "{name}
    raised X (...){then}". LstmcheckErrors pass as they are, and so does everything when
    ``passthrough`` (on complex parameters the complex-step probe reads a failure as "does not
    apply")."""
    try:
        return fn(*args)
    except LstmcheckError:
        raise
    except Exception as exc:
        if passthrough:
            raise
        raise FunctionError(f"{name} raised {type(exc).__name__} ({exc}){then}") from exc


_AT_PARAMS = " at the parameters or a small perturbation of them; "


def _guarded(fn):
    """fn with its failures on real parameters turned into one clear sentence. On complex
    parameters exceptions pass through: the complex-step probe reads them as "does not apply"."""
    def call(p):
        cplx = any(np.iscomplexobj(a) for a in p.values())
        out = _call_user(fn, p, name="fn", passthrough=cplx,
                         then=_AT_PARAMS + "check_gradients needs fn(params) to return the loss "
                                           "there.")
        if not cplx and np.iscomplexobj(out):
            if np.any(np.imag(out) != 0):
                raise DTypeError(f"fn returned the complex number {complex(np.ravel(out)[0])!r} "
                                 f"for real parameters; the loss must be real.")
            out = np.real(out)
        return out
    return call


def _gates_from(locate, theta):
    """Gate blocks per tensor, read off a user's locate (rows labelled with a 'gate')."""
    if locate is None:
        return None
    gates = {}
    for n, t in theta.items():
        if t.ndim == 0:
            continue
        try:
            labels = [locate(n, (r,) + (0,) * (t.ndim - 1)).get("gate") for r in range(t.shape[0])]
        except Exception:
            continue
        if labels and all(labels):
            runs = 1 + sum(a != b for a, b in zip(labels, labels[1:]))
            if runs > 1 and t.shape[0] % runs == 0:
                gates[n] = runs
    return gates


# ------------------------------------------------------------------ the project's models
def projection_weights(model, y_shape, state_shapes, seed, dtype):
    """Seeded Gaussian weights of the loss sum w_y*y + sum w_h*h_T (+ sum w_c*c_T)."""
    rng = backend.rng(seed)
    w = {"y": rng.standard_normal(y_shape).astype(dtype)}
    for n, s in zip(("h0", "c0"), state_shapes):
        w[n] = rng.standard_normal(s).astype(dtype)
    return w


@V.keywords
def gradcheck(model, params, x, state=None, *, method="auto", elements="all", seed=0, rtol=None,
              atol=None) -> GradcheckReport:
    """Check model.backward against numeric derivatives of a random projection of every output
    and the final state, for every parameter and x, h0 (c0). float32 models are checked in
    float64 on upcast inputs, and their float32 gradients compared with the float64 oracle's."""
    from .batched import ModelEvaluator
    from .float32 import float32_rows

    from ..models.recurrent import require_model
    require_model(model)
    _check_options(method, elements)
    seed, rtol, atol = _check_seed(seed), _check_number("rtol", rtol), _check_number("atol", atol)
    _refuse_complex(params, x, state)
    y, final, tape = model.forward(params, x, state)          # validates everything
    xp = backend.array_module(x, *params.values())
    if model.batch_first:
        x = x.transpose(1, 0, 2)
    B = x.shape[1]
    state0 = model._split_state(state, B, xp, x.dtype)
    names = ("h0", "c0")[:len(state0)]
    host = {n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()}
    host["x"] = np.asarray(backend.to_host(x), np.float64)
    for n, a in zip(names, state0):
        host[n] = np.asarray(backend.to_host(a), np.float64)
    work = copy.copy(model)                  # same cell; float64, host, time-major
    work.dtype, work.backend, work.xp, work.batch_first = np.dtype("float64"), "numpy", np, False
    yT = (x.shape[0], B, y.shape[-1])
    w = projection_weights(work, yT, [a.shape for a in state0], seed, np.float64)
    grads, nondet = _model_grads(work, host, names, w)
    ev = ModelEvaluator(work, host, w)
    gates = {n: model.num_gates for n in model.param_names
             if n.partition("_l")[0] in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    chk = _Check(ev, host, grads, np.dtype("float64"), seed, rtol, atol, _model_locate(model),
                 gates, F=ev.abs_scale(), grad_nondet=nondet)
    chk.details["loss"] = "seeded Gaussian projection of every output and the final state"
    report = run_check(chk, method, elements, complex_trusted=True)
    if model.dtype != np.float64:
        float32_rows(report, model, params, x, state0, names, w, grads)
    return report


def _refuse_complex(params, x, state):
    """model.forward takes complex arrays (the complex step's path), but gradcheck checks the
    real model: its float64 copies would drop the imaginary parts, so complex input is refused."""
    parts = (state if isinstance(state, (tuple, list)) else (state,)) if state is not None else ()
    named = [*((f"params[{n!r}]", a) for n, a in (params.items() if isinstance(params, dict)
                                                  else ())),
             ("x", x), *zip(("h0", "c0"), parts)]
    for n, a in named:
        try:
            dt = np.dtype(a.dtype)
        except (AttributeError, TypeError):   # not an array: forward says what it needs
            continue
        if dt.kind == "c":
            raise DTypeError(f"{n} is complex ({dt.name}); gradcheck checks a real "
                             f"model (its method='complex' makes its own complex step on real "
                             f"inputs).")


def _model_grads(model, host, names, w):
    """Analytic gradients of the projection loss, computed twice (their spread is a floor)."""
    out = []
    for _ in range(2):
        p = {n: host[n] for n in model.param_names}
        _, _, tape = model.forward(p, host["x"], tuple(host[n] for n in names) if len(names) > 1
                                   else host["h0"])
        dstate = tuple(w[n] for n in names) if len(names) > 1 else w["h0"]
        out.append(model.backward(tape, w["y"], dstate))
    nondet = {n: np.abs(out[0][n] - out[1][n]) for n in out[0]}
    return out[0], nondet


def _model_locate(model):
    def where(name, index):
        if name == "x":
            return {"tensor": "x", "time": index[0], "batch": index[1], "feature": index[2]}
        if name in ("h0", "c0"):
            dirs = model.num_directions
            return {"tensor": name, "layer": index[0] // dirs,
                    "direction": "reverse" if index[0] % dirs else "forward",
                    "batch": index[1], "unit": index[2]}
        return model.locate(name, tuple(index))
    return where
