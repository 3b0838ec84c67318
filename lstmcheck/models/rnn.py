"""Elman RNN (PyTorch nn.RNN):  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
from __future__ import annotations

from . import activations as A
from .base import RecurrentModel
from ..errors import OptionError

NONLINEARITIES = ("tanh", "relu", "identity")


class RNNCell:
    gates = ("h",)
    has_cell_state = False
    fold_bias_hh = True

    def __init__(self, nonlinearity):
        self.nonlinearity = nonlinearity
        self.act = A.get(nonlinearity)

    def extra_params(self, H, Ho):
        return {}

    def config(self):
        return {"nonlinearity": self.nonlinearity}

    def describe(self):
        return f", nonlinearity={self.nonlinearity!r}"

    def locate(self, base, idx, H):
        return {"row": int(idx[0]), **({"column": int(idx[1])} if len(idx) > 1 else {})}

    def forward(self, xp, p, u, state0):
        (h0,) = state0
        T = u.shape[0]
        hs = xp.empty((T + 1,) + h0.shape, u.dtype)   # h_{t-1} for every step, h0 first
        hs[0] = h0
        W_hh_T = p["weight_hh"].T
        for t in range(T):
            z = u[t]
            z += hs[t] @ W_hh_T
            hs[t + 1] = self.act(xp, z, out=hs[t + 1])
        return hs[1:], (hs[T],), {"hs": hs}

    def backward(self, xp, p, tape, dy, dfinal, *, truncate=None, trace=False):
        hs = tape["hs"]
        T = dy.shape[0]
        dz_all = xp.empty(dy.shape, dy.dtype)
        dH = xp.empty(dy.shape, dy.dtype) if trace else None
        dh_next = dfinal[0]
        W_hh = p["weight_hh"]
        for t in reversed(range(T)):
            dh = dy[t] + dh_next
            if dH is not None:
                dH[t] = dh
            dz = dz_all[t]
            xp.multiply(dh, self.act.grad(xp, hs[t + 1]), out=dz)
            dh_next = dz @ W_hh
            if truncate and t % truncate == 0 and t > 0:
                dh_next = xp.zeros_like(dh_next)
        TB = dy.shape[0] * dy.shape[1]
        grads = {"weight_hh": dz_all.reshape(TB, -1).T @ hs[:T].reshape(TB, -1)}
        return dz_all, (dh_next,), grads, (dH, None)


class RNN(RecurrentModel):
    kind = "rnn"

    def __init__(self, input_size, hidden_size, *, num_layers=1, bidirectional=False,
                 nonlinearity="tanh", backend="numpy", dtype="float64", batch_first=False):
        super().__init__(input_size, hidden_size, num_layers=num_layers,
                         bidirectional=bidirectional, backend=backend, dtype=dtype,
                         batch_first=batch_first)
        if nonlinearity not in NONLINEARITIES:
            raise OptionError(f"unknown nonlinearity {nonlinearity!r}; choose one of "
                              f"{', '.join(NONLINEARITIES)}.")
        self.nonlinearity = nonlinearity
        self.cell = RNNCell(nonlinearity)
