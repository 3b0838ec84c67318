"""K perturbed replicas of a one-layer vanilla LSTM, loss only: the per-element audit's forward.

A central difference needs f(theta + h e_j) for every weight element j: tens of thousands of
forwards that differ from the unperturbed one in a single number and need no tape. This runs K
of them as one batch of K*B rows and returns only each replica's loss

    f_k = sum_t w_y[t] . h_t  +  w_h . h_T  +  w_c . c_T          (replica k's h, c)

with the LSTM step of lstm.py (gates i, f, g, o; sigma(z) = (tanh(z/2) + 1)/2, exactly the
fused path's tanh route) rearranged for the shape of this work:

- u_t = W_ih x_t + b is the same in every replica: it is computed once for the B sequences and
  rides the recurrent GEMM as B extra columns [h_{t-1} | onehot(b)] @ [W_hh^T ; U_t], so the
  K*B-row GEMM adds it for free and no (T, K*B, 4H) input projection exists;
- replica k's own perturbation d of W_ih[j, m], W_hh[j, m], b_ih[j] or b_hh[j] changes only
  column j of its pre-activations, by d x_t[m], d h_{t-1}[m] or d: a K*B-element update a step;
- the sigmoid gates' rows are halved in the weights (z/2 comes out of the GEMM) and the
  recurrence carries h' = 2h (W_hh halved again, w_y and w_h halved): powers of two, exact, so
  f is the same number as without the scalings and one elementwise pass a step goes away.

The tests hold f_k to the readable path's loss of the perturbed model for every tensor
(tests/test_replica_lstm.py). ``applies`` says when this path is the model's forward.
"""
from __future__ import annotations

import numpy as np

PERTURBABLE = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def applies(model) -> bool:
    """True for a one-layer, forward, vanilla LSTM without projection on NumPy (real dtype)."""
    from .lstm import LSTMCell, LSTMFlags
    cell = model.cell
    return (isinstance(cell, LSTMCell) and cell.flags == LSTMFlags() and not cell.proj_size
            and model.num_layers == 1 and model.direction == "forward")


def replica_losses(theta, w, name, j, m, d):
    """f_k for K replicas; replica k adds d[k] to element (j[k], m[k]) of ``name`` (m ignored
    for a bias). theta: weight_ih_l0 ... bias_hh_l0, x (T, B, D), h0, c0 (1, B, H); w: the
    loss weights y (T, B, H), h0, c0 (1, B, H). Real float arrays on the host."""
    W_ih, W_hh = theta["weight_ih_l0"], theta["weight_hh_l0"]
    x, h0, c0 = theta["x"], theta["h0"][0], theta["c0"][0]
    T, B, D = x.shape
    H = W_hh.shape[1]
    G = 4 * H
    K = len(d)
    R = K * B
    dt = np.result_type(W_ih, x, d)
    s = np.ones(G, dt)                       # 1/2 on the sigmoid gates' rows (i, f, o)
    s[:2 * H] = 0.5
    s[3 * H:] = 0.5
    # h' = 2h in the recurrence: the recurrent weights take another 1/2
    Waug = np.empty((H + B, G), dt)
    Waug[:H] = (W_hh * (0.5 * s)[:, None]).T
    U = (x.reshape(T * B, D) @ (W_ih * s[:, None]).T).reshape(T, B, G)
    U += (theta["bias_ih_l0"] + theta["bias_hh_l0"]) * s
    hs = np.empty((T + 1, K, B, H + B), dt)  # [h'_t | onehot(b)] for every step
    hs[..., H:] = np.eye(B, dtype=dt)
    hs[0, :, :, :H] = 2 * h0
    c = np.empty((K, B, H), dt)
    c[...] = c0
    z = np.empty((R, G), dt)
    z3 = z.reshape(K, B, G)
    tc = np.empty((K, B, H), dt)
    k = np.arange(K)
    j = np.asarray(j)
    sd = s[j] * d                           # the perturbation, scaled as its row is
    if name == "weight_hh_l0":
        sd = sd * 0.5                       # it multiplies h' = 2h
    col = None if name.startswith("bias") else np.asarray(m)
    if name == "weight_ih_l0":
        dx = sd[None, :, None] * x[:, :, col].transpose(0, 2, 1)   # (T, K, B)
    for t in range(T):
        Waug[H:] = U[t]
        np.matmul(hs[t].reshape(R, H + B), Waug, out=z)
        if name == "weight_hh_l0":
            z3[k, :, j] += sd[:, None] * hs[t, k, :, col]
        elif name == "weight_ih_l0":
            z3[k, :, j] += dx[t]
        else:
            z3[k, :, j] += sd[:, None]
        np.tanh(z, out=z)                   # i, f, o as tanh(z/2); g as tanh(z)
        zi, zf, zg, zo = (z3[..., q * H:(q + 1) * H] for q in range(4))
        zif = z3[..., :2 * H]
        zif += 1.0                          # 2i, 2f
        zi *= zg                            # 2 i g
        c *= zf
        c += zi
        c *= 0.5                            # c = f c_prev + i g
        np.tanh(c, out=tc)
        zo += 1.0                           # 2o
        np.multiply(zo, tc, out=hs[t + 1, :, :, :H])   # h' = 2 o tanh(c)
    f = np.einsum("tkbh,tbh->k", hs[1:, :, :, :H], 0.5 * w["y"])
    f += np.einsum("kbh,bh->k", hs[T, :, :, :H], 0.5 * w["h0"][0])
    f += np.einsum("kbh,bh->k", c, w["c0"][0])
    return f
