"""GRU, gates r, z, n (PyTorch order):

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)
    z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))       reset_after=True  (PyTorch, cuDNN)
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)       reset_after=False (Cho et al. 2014)
    h' = (1 - z) * n + z * h
"""
from __future__ import annotations

from .base import RecurrentModel, _flag
from .activations import sigmoid


class GRUCell:
    gates = ("r", "z", "n")
    has_cell_state = False
    fold_bias_hh = False   # b_hn sits inside r * (...) when resetting after the product

    def __init__(self, reset_after: bool):
        self.reset_after = reset_after

    def extra_params(self, H, Ho):
        return {}

    def config(self):
        return {"reset_after": self.reset_after}

    def describe(self):
        return "" if self.reset_after else ", reset_after=False"

    def locate(self, base, idx, H):
        return {"gate": self.gates[idx[0] // H], "row": int(idx[0] % H),
                **({"column": int(idx[1])} if len(idx) > 1 else {})}

    def forward(self, xp, p, u, state0):
        (h0,) = state0
        T, B, GH = u.shape
        H = GH // 3
        dt = u.dtype
        rz, n_ = slice(0, 2 * H), slice(2 * H, 3 * H)
        act = u                                       # becomes (r, z, n) in place
        hs = xp.empty((T + 1, B, H), dt)
        hs[0] = h0
        W, b = p["weight_hh"], p["bias_hh"]
        # reset_after keeps W_hn h + b_hn; reset-before keeps r * h (the input of W_hn)
        keep = xp.empty((T, B, H), dt)
        for t in range(T):
            a, h = act[t], hs[t]
            if self.reset_after:
                hp = h @ W.T + b
                a[:, rz] += hp[:, rz]
                a[:, rz] = sigmoid(xp, a[:, rz], out=a[:, rz])
                keep[t] = hp[:, n_]
                a[:, n_] += a[:, :H] * keep[t]
            else:
                a[:, rz] += h @ W[rz].T + b[rz]
                a[:, rz] = sigmoid(xp, a[:, rz], out=a[:, rz])
                xp.multiply(a[:, :H], h, out=keep[t])
                a[:, n_] += keep[t] @ W[n_].T + b[n_]
            n = a[:, n_]
            xp.tanh(n, out=n)
            z = a[:, H:2 * H]
            hs[t + 1] = n + z * (h - n)
        return hs[1:], (hs[T],), {"act": act, "hs": hs, "keep": keep}

    def backward(self, xp, p, tape, dy, dfinal, *, truncate=None, trace=False):
        act, hs, keep = tape["act"], tape["hs"], tape["keep"]
        T, B, GH = act.shape
        H = GH // 3
        rz, n_ = slice(0, 2 * H), slice(2 * H, 3 * H)
        W = p["weight_hh"]
        du_all = xp.empty((T, B, GH), act.dtype)     # dL/d(input pre-activations)
        dhp_all = xp.empty((T, B, GH), act.dtype)    # dL/d(recurrent pre-activations)
        dH = xp.empty((T, B, H), act.dtype) if trace else None
        dh_next = dfinal[0]
        for t in reversed(range(T)):
            a, h = act[t], hs[t]
            r, z, n = a[:, :H], a[:, H:2 * H], a[:, n_]
            du, dhp = du_all[t], dhp_all[t]
            dh = dy[t] + dh_next
            if dH is not None:
                dH[t] = dh
            du[:, H:2 * H] = dh * (h - n) * z * (1 - z)
            dzn = du[:, n_]
            xp.multiply(dh * (1 - z), 1 - n * n, out=dzn)
            dh_prev = dh * z
            if self.reset_after:
                du[:, :H] = dzn * keep[t] * r * (1 - r)
                dhp[:, rz] = du[:, rz]
                dhp[:, n_] = dzn * r
                dh_prev += dhp @ W
            else:
                drh = dzn @ W[n_]
                du[:, :H] = drh * h * r * (1 - r)
                dhp[:, rz] = du[:, rz]
                dhp[:, n_] = dzn
                dh_prev += drh * r + dhp[:, rz] @ W[rz]
            dh_next = dh_prev
            if truncate and t % truncate == 0 and t > 0:
                dh_next = xp.zeros_like(dh_next)
        TB = T * B
        dhp2 = dhp_all.reshape(TB, GH)
        if self.reset_after:
            dW = dhp2.T @ hs[:T].reshape(TB, H)
        else:
            dW = xp.concatenate([dhp2[:, rz].T @ hs[:T].reshape(TB, H),
                                 dhp2[:, n_].T @ keep.reshape(TB, H)], axis=0)
        grads = {"weight_hh": dW, "bias_hh": dhp2.sum(axis=0)}
        return du_all, (dh_next,), grads, (dH, None)


class GRU(RecurrentModel):
    kind = "gru"

    def __init__(self, input_size, hidden_size, *, num_layers=1, bidirectional=False,
                 reset_after=True, backend="numpy", dtype="float64", batch_first=False):
        super().__init__(input_size, hidden_size, num_layers=num_layers,
                         bidirectional=bidirectional, backend=backend, dtype=dtype,
                         batch_first=batch_first)
        self.reset_after = _flag("reset_after", reset_after)
        self.cell = GRUCell(self.reset_after)
