"""Evaluators: f at perturbed parameters, one replica per perturbation.

An evaluator answers two questions, whatever computes f:
  ``elements(name, idx, deltas)``  f(theta + delta_k e_{idx_k}) for each k (one element each);
  ``directions(dirs, scales)``     f(theta + s_k v_k) for dense directions v_k (dicts of arrays).
Deltas/scales may be complex (complex step). :class:`FunctionEvaluator` calls any ``fn`` once per
replica; batched.py has the batched evaluator for the project's models.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import backend
from ..errors import NonFiniteError, ShapeError

try:
    from numpy.exceptions import ComplexWarning
except ImportError:  # NumPy < 1.25
    from numpy import ComplexWarning


class ComplexStepUnsupported(Exception):
    """Raised inside a complex evaluation when the imaginary part cannot survive fn."""


def scalar_of(out, what="fn"):
    """fn's output as a Python complex/float; a clear ShapeError for anything but one number."""
    out = backend.to_host(out)
    if hasattr(out, "item") and hasattr(out, "size"):
        if out.size != 1:
            raise ShapeError(f"{what} must return a scalar loss, got an array of shape "
                             f"{tuple(np.shape(out))}.")
        out = out.item()
    if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, float, complex, np.number)):
        raise ShapeError(f"{what} must return a scalar loss, got {type(out).__name__}.")
    return out


class FunctionEvaluator:
    """Any fn(params) -> scalar. One call per replica; params copied, never mutated."""

    batched = False

    def __init__(self, fn, params, dtype):
        self.fn = fn
        self.params = params
        self.dtype = np.dtype(dtype)
        self.calls = 0

    def _call(self, p, complex_mode):
        self.calls += 1
        if not complex_mode:
            return scalar_of(self.fn(p))
        with warnings.catch_warnings():
            warnings.simplefilter("error", ComplexWarning)
            try:
                out = scalar_of(self.fn(p))
            except ComplexWarning as exc:
                raise ComplexStepUnsupported(f"fn discards imaginary parts ({exc})") from None
        if not isinstance(out, complex) and not np.iscomplexobj(out):
            raise ComplexStepUnsupported("fn returns a real number for complex parameters")
        return out

    def _complex_params(self):
        cdt = backend.complex_of(self.dtype)
        return {k: v.astype(cdt) for k, v in self.params.items()}

    def value(self):
        f = self._call(dict(self.params), False)
        if not np.isfinite(f):
            raise NonFiniteError(f"fn returned {f} at the given parameters; the loss must be finite "
                                 f"to be differentiated.")
        return float(np.real(f))

    def elements(self, name, idx, deltas):
        deltas = np.asarray(deltas)
        cplx = np.iscomplexobj(deltas)
        base = self._complex_params() if cplx else self.params
        out = np.empty(len(idx), complex if cplx else float)
        for k, (j, d) in enumerate(zip(idx, deltas)):
            p = dict(base)
            a = base[name].copy()
            flat = a.reshape(-1)
            flat[int(j)] = flat[int(j)] + d
            p[name] = a
            out[k] = self._call(p, cplx)
        return out

    def directions(self, dirs, scales):
        scales = np.asarray(scales)
        cplx = np.iscomplexobj(scales)
        base = self._complex_params() if cplx else self.params
        out = np.empty(len(dirs), complex if cplx else float)
        for k, (v, s) in enumerate(zip(dirs, scales)):
            p = dict(base)
            for name, vn in v.items():
                xp = backend.array_module(base[name])
                p[name] = (base[name] + backend.asarray(vn, xp) * s).astype(base[name].dtype)
            out[k] = self._call(p, cplx)
        return out
