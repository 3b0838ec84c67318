"""GRU, gates r, z, n (PyTorch order):

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)
    z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))       reset_after=True  (PyTorch, cuDNN)
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)       reset_after=False (Cho et al. 2014)
    h' = (1 - z) * n + z * h
"""
from __future__ import annotations

from .activations import sigmoid
from .cell import Cell, Outer
from .recurrent import Recurrent, flag


class GRUCell(Cell):
    name = "gru"
    gates = ("r", "z", "n")
    fold_bias_hh = False   # b_hn sits inside r * (...) when resetting after the product
    memory_gate = "z"
    unit_gates = ("r", "z")
    batchable = True
    closed_jacobian = True

    alternatives = {"reset_after": (True, False)}

    def __init__(self, reset_after=True):
        self.reset_after = flag("reset_after", reset_after)

    def config(self):
        return {"reset_after": self.reset_after}

    def describe(self):
        return "" if self.reset_after else ", reset_after=False"

    def step(self, xp, p, u, state):
        (h,) = state
        H = h.shape[-1]
        rz, n_ = slice(0, 2 * H), slice(2 * H, 3 * H)
        W, b = p["weight_hh"], p["bias_hh"]
        if self.reset_after:
            hp = h @ W.T + b                       # W_h h + b_h, all three blocks
            r_z = sigmoid(xp, u[:, rz] + hp[:, rz])
            r, z = r_z[:, :H], r_z[:, H:]
            keep = hp[:, n_]                       # W_hn h + b_hn
            n = xp.tanh(u[:, n_] + r * keep)
        else:
            r_z = sigmoid(xp, u[:, rz] + h @ W[rz].T + b[rz])
            r, z = r_z[:, :H], r_z[:, H:]
            keep = r * h                           # the input of W_hn
            n = xp.tanh(u[:, n_] + keep @ W[n_].T + b[n_])
        h_new = (1 - z) * n + z * h
        return (h_new,), (h, r, z, n, keep)

    def step_backward(self, xp, p, cache, dstate):
        h, r, z, n, keep = cache
        (dh,) = dstate
        H = h.shape[-1]
        W = p["weight_hh"]
        dz = dh * (h - n) * z * (1 - z)            # pre-activation gradients
        dn = dh * (1 - z) * (1 - n * n)
        dh_prev = dh * z
        if self.reset_after:
            dr = dn * keep * r * (1 - r)
            dhp = xp.concatenate([dr, dz, dn * r], axis=1)      # dL/d(W_h h + b_h)
            dh_prev = dh_prev + dhp @ W
            du = xp.concatenate([dr, dz, dn], axis=1)
            return du, (dh_prev,), {"weight_hh": Outer(dhp, h), "bias_hh": dhp.sum(axis=0)}
        drh = dn @ W[2 * H:]
        dr = drh * h * r * (1 - r)
        drz = xp.concatenate([dr, dz], axis=1)
        dh_prev = dh_prev + drh * r + drz @ W[:2 * H]
        du = xp.concatenate([drz, dn], axis=1)
        return du, (dh_prev,), {"weight_hh": [Outer(drz, h, slice(0, 2 * H)),
                                              Outer(dn, keep, slice(2 * H, 3 * H))],
                                "bias_hh": du.sum(axis=0)}

    def step_jacobian(self, xp, p, u, state):
        """dh'/dh = diag(z) + diag(h - n) dz/dh + diag(1 - z) dn/dh."""
        _, (h, r, z, n, keep) = self.step(xp, p, u, state)
        H = h.shape[-1]
        W = p["weight_hh"]
        rows = lambda a, blk: a[:, :, None] * W[None, blk * H:(blk + 1) * H]   # noqa: E731
        dn = 1 - n * n
        dz_dh = rows(z * (1 - z), 1)
        if self.reset_after:            # n = tanh(u_n + r * keep), keep = W_hn h + b_hn
            dn_dh = rows(dn * keep * r * (1 - r), 0) + rows(dn * r, 2)
        else:                           # n = tanh(u_n + W_hn (r * h) + b_hn)
            inner = rows(h * r * (1 - r), 0)                  # d(r*h)/dh without diag(r)
            idx = xp.arange(H)
            inner[:, idx, idx] += r
            dn_dh = dn[:, :, None] * (W[None, 2 * H:] @ inner)
        J = (h - n)[:, :, None] * dz_dh + (1 - z)[:, :, None] * dn_dh
        idx = xp.arange(H)
        J[:, idx, idx] += z
        return J

    def gate_values(self, cache):
        _, r, z, n, _ = cache
        return {"r": r, "z": z, "n": n}


class GRU(Recurrent):
    """Gated recurrent unit, PyTorch semantics by default (reset_after=True)."""

    cell_type = GRUCell

    def __init__(self, input_size, hidden_size, *, num_layers=1, direction="forward",
                 bidirectional=None, reset_after=True, backend="numpy", dtype="float64",
                 batch_first=False):
        super().__init__(GRUCell(reset_after), input_size, hidden_size, num_layers=num_layers,
                         direction=direction, bidirectional=bidirectional, backend=backend,
                         dtype=dtype, batch_first=batch_first)

    @property
    def reset_after(self):
        return self.cell.reset_after
