"""Independent numerical derivatives for the model tests (deliberately not lstmcheck.check, so the
oracle is verified by code that shares nothing with the checker it underpins)."""
from __future__ import annotations

import numpy as np


def setup_case(model, seed, T=6, B=2, scale=1.0):
    """Random params, input, state, and cotangents dy, dstate for a loss L = <y, dy> + <state, ds>."""
    rng = np.random.default_rng(seed)
    params = model.init_params(seed=seed, scale=scale)
    x = rng.standard_normal((T, B, model.input_size))
    state = tuple(rng.standard_normal(s) for s in model.state_shapes(B))
    y, st, tape = model.forward(params, x, state if len(state) > 1 else state[0])
    dy = rng.standard_normal(y.shape)
    dstate = tuple(rng.standard_normal(a.shape) for a in (st if isinstance(st, tuple) else (st,)))
    grads = model.backward(tape, dy, dstate if len(dstate) > 1 else dstate[0])
    inputs = {**params, "x": x, "h0": state[0]}
    if len(state) > 1:
        inputs["c0"] = state[1]
    return inputs, dy, dstate, grads


def loss_fn(model, dy, dstate):
    """L(inputs) for inputs = params + x, h0 (+ c0); works on complex arrays."""
    names = model.param_names

    def L(inp):
        params = {n: inp[n] for n in names}
        state = (inp["h0"], inp["c0"]) if "c0" in inp else inp["h0"]
        y, st, _ = model.forward(params, inp["x"], state)
        st = st if isinstance(st, tuple) else (st,)
        return (y * dy).sum() + sum((a * b).sum() for a, b in zip(st, dstate))

    return L


def complex_step_elementwise(L, inputs, h=1e-30, names=None):
    """dL/d(every element) by the complex step: Im L(t + ih e_j) / h, no cancellation."""
    base = {n: a.astype(complex) for n, a in inputs.items()}
    out = {}
    for n in names or inputs:
        a = inputs[n]
        g = np.zeros(a.shape)
        for idx in np.ndindex(a.shape):
            base[n][idx] += 1j * h
            g[idx] = L(base).imag / h
            base[n][idx] -= 1j * h
        out[n] = g
    return out


def complex_step_directional(L, inputs, v, h=1e-30):
    """dL/dt . v in one complex evaluation."""
    return L({n: inputs[n] + 1j * h * v[n] for n in inputs}).imag / h


def central_directional(L, inputs, v, eps=1e-5):
    """(L(t + e v) - L(t - e v)) / 2e with one Richardson step: error O(e^4)."""
    def d(e):
        plus = L({n: inputs[n] + e * v[n] for n in inputs})
        minus = L({n: inputs[n] - e * v[n] for n in inputs})
        return (plus - minus) / (2 * e)
    return (4 * d(eps / 2) - d(eps)) / 3


def random_directions(inputs, k, seed):
    rng = np.random.default_rng(seed)
    return [{n: rng.standard_normal(a.shape) for n, a in inputs.items()} for _ in range(k)]


def dot(grads, v):
    return sum(float(np.vdot(grads[n], v[n])) for n in v)
