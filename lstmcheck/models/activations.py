"""Activation functions, each with its derivative written in terms of its output y.

Storing only activations on the tape is enough for backward: every function here has dy/dz
expressible through y. All are complex-safe for the complex-step check: smooth ones use
complex-analytic formulas, piecewise ones take their branch from the real part, so the
imaginary part carries exactly the one-sided derivative.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import backend
from ..errors import OptionError


def sigmoid(xp, z, out=None):
    if z.dtype.kind == "c":  # expit has no complex loop; tanh is stable for large |Re z|
        return xp.multiply(xp.tanh(z * 0.5), 0.5, out=out).__iadd__(0.5)
    return backend.expit(xp)(z, out=out) if out is not None else backend.expit(xp)(z)


@dataclass(frozen=True)
class Activation:
    """A named activation. ``alpha``/``beta`` follow ONNX's parameter names and defaults."""

    name: str
    alpha: float | None = None
    beta: float | None = None
    _k: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, xp, z, out=None):
        n, a, b = self.name, self.alpha, self.beta
        if n == "sigmoid":
            return sigmoid(xp, z, out=out)
        if n == "tanh":
            return xp.tanh(z, out=out) if out is not None else xp.tanh(z)
        if n == "identity":
            if out is not None and out is not z:
                out[...] = z
                return out
            return z
        if n == "affine":
            return a * z + b
        if n == "scaled_tanh":
            return a * xp.tanh(b * z)
        if n == "relu":
            return z * (z.real > 0)
        if n == "leaky_relu":
            return xp.where(z.real > 0, z, a * z)
        if n == "thresholded_relu":
            return z * (z.real > a)
        if n == "elu":
            neg = xp.where(z.real > 0, 0 * z, z)  # clamp so the unused branch cannot overflow
            return xp.where(z.real > 0, z, a * xp.expm1(neg))
        if n == "hard_sigmoid":
            u = a * z + b
            return xp.where(u.real <= 0, 0 * u, xp.where(u.real >= 1, 0 * u + 1, u))
        if n == "softsign":
            return z / (1 + xp.where(z.real >= 0, z, -z))
        if n == "softplus":
            # log(1 + e^z) without overflow: max(z, 0) + log1p(e^-|z|), branch on Re z
            pos = z.real > 0
            s = xp.where(pos, -z, z)
            return xp.where(pos, z, 0 * z) + xp.log1p(xp.exp(s))
        raise AssertionError(n)

    def backprop(self, xp, y, g, out, work):
        """out = g * dy/dz, without temporaries for the common cases (``work`` is scratch
        of y's shape; ``out`` may be ``g``)."""
        if self.name == "sigmoid":      # y (1 - y)
            xp.subtract(1, y, out=work)
            work *= y
        elif self.name == "tanh":       # 1 - y^2
            xp.multiply(y, y, out=work)
            xp.subtract(1, work, out=work)
        elif self.name == "identity":
            if out is not g:
                out[...] = g
            return out
        else:
            work[...] = self.grad(xp, y)
        return xp.multiply(g, work, out=out)

    def grad(self, xp, y):
        """dy/dz as a function of the output y."""
        n, a, b = self.name, self.alpha, self.beta
        if n == "sigmoid":
            return y * (1 - y)
        if n == "tanh":
            return 1 - y * y
        if n == "identity":
            return 1.0
        if n == "affine":
            return a
        if n == "scaled_tanh":
            return a * b * (1 - (y / a) ** 2)
        if n in ("relu", "thresholded_relu"):
            return (y != 0).astype(y.dtype)
        if n == "leaky_relu":
            return xp.where(y > 0, 1.0, a).astype(y.dtype)
        if n == "elu":
            return xp.where(y > 0, 1.0, y + a).astype(y.dtype)
        if n == "hard_sigmoid":
            return (a * ((y > 0) & (y < 1))).astype(y.dtype)
        if n == "softsign":
            return (1 - abs(y)) ** 2
        if n == "softplus":
            return -xp.expm1(-y)
        raise AssertionError(n)


# name -> (alpha, beta) defaults, as in the ONNX operator spec
_DEFAULTS = {
    "sigmoid": (None, None), "tanh": (None, None), "identity": (None, None), "relu": (None, None),
    "softsign": (None, None), "softplus": (None, None), "affine": (1.0, 0.0),
    "scaled_tanh": (1.0, 1.0), "leaky_relu": (0.01, None), "thresholded_relu": (1.0, None),
    "elu": (1.0, None), "hard_sigmoid": (0.2, 0.5),
}
NAMES = tuple(_DEFAULTS)
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([^)]*)\))?\s*$")


def get(spec) -> Activation:
    """'tanh', 'leaky_relu(0.1)', 'hard_sigmoid(0.2, 0.5)' or an Activation -> Activation."""
    if isinstance(spec, Activation):
        return spec
    m = _SPEC.match(str(spec).lower()) if isinstance(spec, str) else None
    if not m or m.group(1) not in _DEFAULTS:
        raise OptionError(f"unknown activation {spec!r}; choose one of {', '.join(NAMES)} "
                          f"(parameters in brackets, e.g. 'leaky_relu(0.1)').")
    name, args = m.group(1), m.group(2)
    alpha, beta = _DEFAULTS[name]
    if args:
        try:
            vals = [float(v) for v in args.split(",")]
        except ValueError:
            raise OptionError(f"activation {spec!r} has non-numeric parameters.") from None
        n_params = sum(v is not None for v in _DEFAULTS[name])
        if len(vals) > n_params:
            raise OptionError(f"activation {name!r} takes {n_params} parameter(s), got {len(vals)}.")
        alpha = vals[0] if len(vals) > 0 else alpha
        beta = vals[1] if len(vals) > 1 else beta
    return Activation(name, alpha, beta)
