"""Depth-gated LSTM (Yao, Cohn, Vylomova, Duh & Dyer 2015): a depth gate d links the memory
cell of layer L to that of layer L+1 at the same step. In layer L+1 (x_t its input, h^L_t):

    i = sigma(z_i),  f = sigma(z_f),  g = tanh(z_g),  o = sigma(z_o)   z = u_t + W_hh h_(t-1)
    d = sigma(W_xd x_t + b_d + w_cd * c_(t-1) + w_ld * c^L_t)           (depth gate)
    c_t = f * c_(t-1) + i * g + d * c^L_t
    h_t = o * tanh(c_t)

with u_t = W_ih x_t + b_ih + b_hh in PyTorch's gate order i, f, g, o followed by the depth
gate's block d (so W_xd, b_d are the d rows of weight_ih, bias_ih + bias_hh). The depth gate
has no term in h_(t-1): the d rows of weight_hh are structural zeros (init writes 0, the step
never reads them, their gradient is exactly 0). ``weight_depth`` (2, H) holds the two
elementwise weights, row 0 w_cd (from this layer's c_(t-1)) and row 1 w_ld (from c^L_t).

Layer 0 has no layer below: no depth term, and its d parameters are inert (gradient 0). The
runner hands layer L+1 the cell state of layer L in the same direction (``below = "c"``).
"""
from __future__ import annotations

import numpy as np

from .activations import sigmoid
from .cell import Cell, Outer


class DGLSTMCell(Cell):
    name = "dglstm"
    gates = ("i", "f", "g", "o", "d")
    state_names = ("h", "c")
    below = "c"
    memory_gate = "f"
    unit_gates = ("i", "f", "o", "d")
    batchable = False

    def extra_params(self, H):
        return {"weight_depth": (2, H)}

    def structural_zeros(self, base, H):
        if base != "weight_hh":
            return None
        rows = np.zeros((5 * H, H), bool)
        rows[4 * H:] = True                  # d has no h_(t-1) term
        return rows

    def locate(self, base, idx, H):
        if base == "weight_depth":
            return {"gate": "d", "from": ("c_prev", "c_below")[idx[0]], "row": int(idx[1])}
        loc = super().locate(base, idx, H)
        if base == "weight_hh" and idx[0] >= 4 * H:
            loc["structural_zero"] = True
        return loc

    # ---- one step
    def step(self, xp, p, u, state, below=None):
        h_prev, c_prev = state
        H = c_prev.shape[-1]
        z = u[:, :4 * H] + h_prev @ p["weight_hh"][:4 * H].T
        i = sigmoid(xp, z[:, :H])
        f = sigmoid(xp, z[:, H:2 * H])
        g = xp.tanh(z[:, 2 * H:3 * H])
        o = sigmoid(xp, z[:, 3 * H:])
        c = f * c_prev + i * g
        d = None
        if below is not None:                              # the depth gate, from layer L's c_t
            w_cd, w_ld = p["weight_depth"][0], p["weight_depth"][1]
            d = sigmoid(xp, u[:, 4 * H:] + w_cd * c_prev + w_ld * below)
            c = c + d * below
        tc = xp.tanh(c)
        h = o * tc
        return (h, c), dict(i=i, f=f, g=g, o=o, d=d, tc=tc, h_prev=h_prev, c_prev=c_prev,
                            below=below)

    def _dc(self, k, dh, dc):
        """dL/dc_t in full: carried (and from the layer above) plus through h_t = o tanh(c_t)."""
        return dc + dh * k["o"] * (1 - k["tc"] * k["tc"])

    def step_backward(self, xp, p, k, dstate):
        dh, dc = dstate
        i, f, g, o, d = k["i"], k["f"], k["g"], k["o"], k["d"]
        dc = self._dc(k, dh, dc)
        dzo = dh * k["tc"] * o * (1 - o)
        dzi = dc * g * i * (1 - i)
        dzf = dc * k["c_prev"] * f * (1 - f)
        dzg = dc * i * (1 - g * g)
        dc_prev = dc * f
        if d is None:                                      # layer 0: no depth term
            dzd = xp.zeros_like(dc)
            dbelow = None
            dw = xp.zeros((2, dc.shape[-1]), dc.dtype)
        else:
            w_cd, w_ld = p["weight_depth"][0], p["weight_depth"][1]
            dzd = dc * k["below"] * d * (1 - d)
            dbelow = dc * d + dzd * w_ld
            dc_prev = dc_prev + dzd * w_cd
            dw = xp.stack([(dzd * k["c_prev"]).sum(axis=0), (dzd * k["below"]).sum(axis=0)])
        H = dc.shape[-1]
        dz4 = xp.concatenate([dzi, dzf, dzg, dzo], axis=1)
        du = xp.concatenate([dz4, dzd], axis=1)
        dh_prev = dz4 @ p["weight_hh"][:4 * H]
        grads = {"weight_hh": Outer(dz4, k["h_prev"], slice(0, 4 * H)), "weight_depth": dw}
        return du, (dh_prev, dc_prev), grads, dbelow

    def state_gradient(self, xp, p, k, dstate):
        """The probes' dL/dc_t includes the path through this step's own h_t."""
        return (dstate[0], self._dc(k, dstate[0], dstate[1]))

    def gate_values(self, k):
        values = {n: k[n] for n in "ifgo"}
        if k["d"] is not None:
            values["d"] = k["d"]
        return values
