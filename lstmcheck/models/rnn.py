"""Elman RNN (PyTorch nn.RNN):  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
from __future__ import annotations

from . import activations as A
from .cell import Cell, Outer
from .recurrent import Recurrent
from ..errors import OptionError

NONLINEARITIES = ("tanh", "relu", "identity")


class RNNCell(Cell):
    name = "rnn"
    gates = ("h",)
    batchable = True
    closed_jacobian = True

    alternatives = {"nonlinearity": NONLINEARITIES}

    def __init__(self, nonlinearity="tanh"):
        if nonlinearity not in NONLINEARITIES:
            raise OptionError(f"unknown nonlinearity {nonlinearity!r}; choose one of "
                              f"{', '.join(NONLINEARITIES)}.")
        self.nonlinearity = nonlinearity
        self.act = A.get(nonlinearity)

    def config(self):
        return {"nonlinearity": self.nonlinearity}

    def step(self, xp, p, u, state):
        (h_prev,) = state
        h = self.act(xp, u + h_prev @ p["weight_hh"].T)
        return (h,), (h_prev, h)

    def step_backward(self, xp, p, cache, dstate):
        h_prev, h = cache
        (dh,) = dstate
        dz = dh * self.act.grad(xp, h)
        return dz, (dz @ p["weight_hh"],), {"weight_hh": Outer(dz, h_prev)}

    def gate_values(self, cache):
        return {"h": cache[1]}

    def step_jacobian(self, xp, p, u, state):
        """diag(act'(z)) W_hh."""
        (h,), _ = self.step(xp, p, u, state)
        return (self.act.grad(xp, h) * xp.ones_like(h))[:, :, None] * p["weight_hh"][None]


class RNN(Recurrent):
    """Elman RNN, PyTorch semantics."""

    cell_type = RNNCell

    def __init__(self, input_size, hidden_size, *, num_layers=1, direction="forward",
                 bidirectional=None, nonlinearity="tanh", backend="numpy", dtype="float64",
                 batch_first=False):
        super().__init__(RNNCell(nonlinearity), input_size, hidden_size, num_layers=num_layers,
                         direction=direction, bidirectional=bidirectional, backend=backend,
                         dtype=dtype, batch_first=batch_first)

    @property
    def nonlinearity(self):
        return self.cell.nonlinearity
