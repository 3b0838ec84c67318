"""A CS231n-style NumPy LSTM (lstm_step_forward / lstm_step_backward over a loop), written here
independently of lstmcheck.models, as a callable target in the keras layout: kernel (D, 4H),
recurrent_kernel (H, 4H), bias (4H,), gate blocks i, f, c, o; time-major x (T, B, D), state
(h0, c0) of shape (1, B, H).

Planted bugs for the audit's placement tests (``bug=``):
    "bptt_half"    the gradient dL/dh passing from step 3 back to step 2 is halved
                   (the error enters between steps 3 and 2)
    "c0"           the forward ignores c0 (starts from c = 0)
    "float32"      computes in float32 and returns float64 (its float64 is not float64)
    "no_tanh"      h = o * c (the nicodjimenez/lstm variant) where vanilla is declared
"""
from __future__ import annotations

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def make(bug=None, enters=3):
    def step_forward(x, h, c, p):
        H = h.shape[-1]
        a = x @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
        i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 3 * H:])
        g = np.tanh(a[:, 2 * H:3 * H])
        c_next = f * c + i * g
        h_next = o * (c_next if bug == "no_tanh" else np.tanh(c_next))
        return h_next, c_next, (x, h, c, i, f, o, g, c_next)

    def step_backward(dh, dc, cache, p):
        x, h, c, i, f, o, g, c_next = cache
        tc = np.tanh(c_next)
        do = dh * tc
        dc = dc + dh * o * (1 - tc ** 2)
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f),
                             dc * i * (1 - g ** 2), do * o * (1 - o)], axis=1)
        return (da @ p["kernel"].T, da @ p["recurrent_kernel"].T, dc * f,
                x.T @ da, h.T @ da, da.sum(0))

    def run(params, x, state):
        p = params
        if bug == "float32":
            p = {k: np.asarray(v, np.float32) for k, v in params.items()}
            x = np.asarray(x, np.float32)
        h, c = (np.asarray(s[0], x.dtype) for s in state)
        if bug == "c0":
            c = np.zeros_like(c)
        ys, caches = [], []
        for t in range(x.shape[0]):
            h, c, cache = step_forward(x[t], h, c, p)
            ys.append(h), caches.append(cache)
        return np.stack(ys), h, c, caches, p

    def forward(params, x, state):
        y, h, c, _, _ = run(params, x, state)
        return y.astype(np.float64), (h[None].astype(np.float64), c[None].astype(np.float64))

    def vjp(params, x, state, dy, dstate):
        _, _, _, caches, p = run(params, x, state)
        dh_next, dc_next = dstate[0][0].copy(), dstate[1][0].copy()
        g = {k: np.zeros_like(v) for k, v in params.items()}
        dx = np.zeros_like(x)
        for t in reversed(range(x.shape[0])):
            dxt, dh_next, dc_next, dk, drk, db = step_backward(dy[t] + dh_next, dc_next,
                                                               caches[t], p)
            if bug == "bptt_half" and t == enters:
                dh_next = 0.5 * dh_next        # planted: halved on its way from step 3 to 2
            dx[t] = dxt
            g["kernel"] += dk
            g["recurrent_kernel"] += drk
            g["bias"] += db
        g["x"], g["h0"], g["c0"] = dx, dh_next[None], dc_next[None]
        return g

    forward.vjp = vjp
    return forward
