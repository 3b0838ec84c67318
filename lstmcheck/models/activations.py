"""Activation functions, each with its derivative written in terms of its output y.

Storing only activations on the tape is enough for backward: every function here has dy/dz
expressible through y. All are complex-safe for the complex-step check: smooth ones use
complex-analytic formulas, piecewise ones take their branch from the real part, so the
imaginary part carries exactly the one-sided derivative.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import kernels
from ..errors import OptionError


def sigmoid(xp, z, out=None):
    if z.dtype.kind == "c":  # expit has no complex loop; tanh is stable for large |Re z|
        return xp.multiply(xp.tanh(z * 0.5), 0.5, out=out).__iadd__(0.5)
    f = kernels.logistic(xp, z.dtype)     # expit or 1/(1 + exp(-z)), as measured fastest here
    return f(z, out=out) if out is not None else f(z)


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
        return _keras_forward(xp, n, z, a)

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
        return _keras_grad(xp, n, y, a)


# name -> (alpha, beta) defaults, as in the ONNX operator spec
_DEFAULTS = {
    "sigmoid": (None, None), "tanh": (None, None), "identity": (None, None), "relu": (None, None),
    "softsign": (None, None), "softplus": (None, None), "affine": (1.0, 0.0),
    "scaled_tanh": (1.0, 1.0), "leaky_relu": (0.01, None), "thresholded_relu": (1.0, None),
    "elu": (1.0, None), "hard_sigmoid": (0.2, 0.5),
    # Keras 3's elementwise activations whose derivative is a function of their output
    # (keras/src/backend/numpy/nn.py); alpha is celu's alpha, the shrinks' threshold, squareplus' b
    "relu6": (None, None), "selu": (None, None), "celu": (1.0, None), "exponential": (None, None),
    "log_sigmoid": (None, None), "hard_tanh": (None, None), "soft_shrink": (0.5, None),
    "hard_shrink": (0.5, None), "sparse_plus": (None, None), "sparse_sigmoid": (None, None),
    "squareplus": (4.0, None),
}
# SELU's constants (Klambauer et al. 2017), as Keras writes them
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _keras_forward(xp, n, z, a):
    """Keras 3's piecewise and exponential activations; branches on Re z (complex step)."""
    x = z.real
    zero = 0 * z
    if n == "relu6":
        return xp.where(x <= 0, zero, xp.where(x >= 6, zero + 6, z))
    if n == "hard_tanh":
        return xp.where(x <= -1, zero - 1, xp.where(x >= 1, zero + 1, z))
    if n in ("selu", "celu"):
        alpha, scale = (SELU_ALPHA, SELU_SCALE) if n == "selu" else (1.0, 1.0)
        neg = xp.where(x > 0, zero, z)          # the unused branch cannot overflow
        if n == "celu":
            return xp.where(x > 0, z, a * xp.expm1(neg / a))
        return scale * xp.where(x > 0, z, alpha * xp.expm1(neg))
    if n == "exponential":
        return xp.exp(z)
    if n == "log_sigmoid":                  # -softplus(-z) = min(z, 0) - log1p(e^-|z|)
        pos = x > 0
        return xp.where(pos, zero, z) - xp.log1p(xp.exp(xp.where(pos, -z, z)))
    if n == "soft_shrink":
        return xp.where(x > a, z - a, xp.where(x < -a, z + a, zero))
    if n == "hard_shrink":
        return xp.where(abs(x) > a, z, zero)
    if n == "sparse_plus":
        return xp.where(x <= -1, zero, xp.where(x < 1, (z + 1) ** 2 / 4, z))
    if n == "sparse_sigmoid":
        return xp.where(x <= -1, zero, xp.where(x >= 1, zero + 1, (z + 1) / 2))
    if n == "squareplus":
        return (z + xp.sqrt(z * z + a)) / 2
    raise AssertionError(n)


def _keras_grad(xp, n, y, a):
    """dy/dz of the activations above, from the output y alone."""
    one = xp.ones_like(y)
    if n == "relu6":
        return ((y > 0) & (y < 6)).astype(y.dtype)
    if n == "hard_tanh":
        return (abs(y) < 1).astype(y.dtype)
    if n == "selu":                         # scale (z > 0); y + scale alpha (z <= 0)
        return xp.where(y > 0, SELU_SCALE * one, y + SELU_SCALE * SELU_ALPHA)
    if n == "celu":                         # 1 (z > 0); e^(z/alpha) = y/alpha + 1
        return xp.where(y > 0, one, y / a + 1)
    if n == "exponential":
        return y
    if n == "log_sigmoid":                  # 1 - sigmoid(z) = 1 - e^y
        return -xp.expm1(y)
    if n in ("soft_shrink", "hard_shrink"):
        return (y != 0).astype(y.dtype)
    if n == "sparse_plus":                  # (z + 1)/2 = sqrt(y) inside, 1 above
        return xp.where(y >= 1, one, xp.sqrt(xp.maximum(y, 0)))
    if n == "sparse_sigmoid":
        return (0.5 * ((y > 0) & (y < 1))).astype(y.dtype)
    if n == "squareplus":                   # z = y - b/(4y):  dy/dz = 4y^2 / (4y^2 + b)
        return 4 * y * y / (4 * y * y + a)
    raise AssertionError(n)
NAMES = tuple(_DEFAULTS)
_SPEC = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:\(\s*([^)]*)\))?\s*$")


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
