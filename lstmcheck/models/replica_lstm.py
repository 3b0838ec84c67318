"""K perturbed replicas of a one-layer vanilla LSTM, loss only: the per-element audit's forward.

A central difference needs f(theta + h e_j) for every weight element j: tens of thousands of
forwards that differ from the unperturbed one in a single number and need no tape. This runs K
of them as one batch of K*B rows and returns only each replica's loss

    f_k = sum_t w_y[t] . h_t  +  w_h . h_T  +  w_c . c_T          (replica k's h, c)

with the LSTM step of lstm.py (gates i, f, g, o) rearranged for the shape of this work:

- u_t = W_ih x_t + b is the same in every replica: it is computed once for the B sequences and
  rides the recurrent GEMM as B extra columns [h_{t-1} | onehot(b)] @ [W_hh^T ; U_t], so the
  K*B-row GEMM adds it for free and no (T, K*B, 4H) input projection exists;
- replica k's own perturbation d of W_ih[j, m], W_hh[j, m], b_ih[j] or b_hh[j] changes only
  column j of its pre-activations, by d x_t[m], d h_{t-1}[m] or d: a K*B-element update a step;
- everything is transposed, a column per row of the batch, so each gate's block and h, c are
  contiguous (passes over a gate's strided column slice ran at a third of the rate here), and
  f's terms of h_t come out of the next step's GEMM as B extra rows;
- one transcendental pass a step covers all four gates, by one of two routes whose rows are
  scaled in the weights by powers of two (exact, so f is the same number without them):
  'tanh':     sigma(z) = (tanh(z/2) + 1)/2; the sigmoid rows are halved and the recurrence
              carries h' = 2h (W_hh halved again, w_y and w_h halved);
  'logistic': tanh(z) = 2 sigma(2z) - 1; the g rows are doubled and tanh(c) is 2 sigma(2c) - 1;
  'exp':      the same with sigma(z) = 1/(1 + exp(-z)), the sign folded into the rows too.
  Which is fastest depends on the build's float64 tanh, expit and exp (NumPy's are SIMD on some
  CPUs and scalar on others): kernels.replica_route measures.

``sequence_losses`` runs perturbations of x, h0 and c0 the same way, a column per replica
running only the sequence it perturbs (its one-hot column picks that sequence's U_t): an x
element's perturbation d changes u_t by d W_ih[:, m] at its step only.

The tests hold f_k to the readable path's loss of the perturbed model for every tensor
(tests/test_replica_lstm.py). ``applies`` says when this path is the model's forward.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from . import kernels

PERTURBABLE = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def applies(model) -> bool:
    """True for a one-layer, forward, vanilla LSTM without projection on NumPy (real dtype)."""
    from .lstm import LSTMCell, LSTMFlags
    cell = model.cell
    return (isinstance(cell, LSTMCell) and cell.flags == LSTMFlags() and not cell.proj_size
            and model.num_layers == 1 and model.direction == "forward")


def prefix(theta, w, steps):
    """theta and w cut to the first ``steps`` steps (to time a route on the real shapes)."""
    return {**theta, "x": theta["x"][:steps]}, {**w, "y": w["y"][:steps]}


def replica_losses(theta, w, name, j, m, d, route="tanh"):
    """f_k for K replicas; replica k adds d[k] to element (j[k], m[k]) of ``name`` (m ignored
    for a bias). theta: weight_ih_l0 ... bias_hh_l0, x (T, B, D), h0, c0 (1, B, H); w: the
    loss weights y (T, B, H), h0, c0 (1, B, H). Real float arrays on the host."""
    x = theta["x"]
    T, B, D = x.shape
    K = len(d)
    j = np.asarray(j)
    col = None if name.startswith("bias") else np.asarray(m)
    k = np.arange(K)
    seq = np.tile(np.arange(B), K)          # column (k, b) runs sequence b

    def perturb(t, z, h, s, hscale):        # replica k's columns, row j[k] of z
        z3, sd = z.reshape(-1, K, B), s[j] * d      # scaled as its row is
        if name == "weight_hh_l0":
            z3[j, k] += (sd / hscale)[:, None] * h.reshape(-1, K, B)[col, k]   # it multiplies h'
        elif name == "weight_ih_l0":
            z3[j, k] += sd[:, None] * x[t][:, col].T
        else:
            z3[j, k] += sd[:, None]
    f = _columns_forward(theta, w, seq, theta["h0"][0][seq].T, theta["c0"][0][seq].T, perturb,
                         route, np.result_type(theta["weight_ih_l0"], x, d))
    return f.reshape(K, B).sum(axis=1)


def sequence_losses(theta, w, name, lead, b, col, d, route="tanh"):
    """Sequence b[k]'s own terms of f for K replicas, one sequence each; replica k adds d[k] to
    element (lead[k], b[k], col[k]) of ``name``, one of x, h0, c0 (lead: the step of x, 0 for a
    state). Sequences never interact, so a replica needs only the sequence it perturbs."""
    x, W_ih = theta["x"], theta["weight_ih_l0"]
    K = len(d)
    lead, b, col, d = (np.asarray(a) for a in (lead, b, col, d))
    dt = np.result_type(W_ih, x, d)
    h0, c0 = theta["h0"][0][b].T.astype(dt), theta["c0"][0][b].T.astype(dt)   # (H, K)
    k = np.arange(K)
    if name == "h0":
        h0[col, k] += d
    elif name == "c0":
        c0[col, k] += d

    def perturb(t, z, h, s, hscale):        # x[t, b, col] + d changes u_t by d W_ih[:, col]
        if name == "x":
            at = np.flatnonzero(lead == t)
            if at.size:
                z[:, at] += (W_ih[:, col[at]] * s[:, None]) * d[at]
    return _columns_forward(theta, w, b, h0, c0, perturb, route, dt)


def _columns_forward(theta, w, seq, h0, c0, perturb, route, dt):
    """The loss terms of R columns: column r runs sequence seq[r] from state (h0, c0)[:, r]
    (H, R), and perturb(t, z, h'_t, s, hscale) adds its perturbation to the step's scaled
    pre-activations z (G, R) in place. Returns (R,): each column's w_y . h_t + w_h . h_T +
    w_c . c_T with its sequence's weights."""
    W_ih, W_hh = theta["weight_ih_l0"], theta["weight_hh_l0"]
    x = theta["x"]
    T, B, D = x.shape
    H = W_hh.shape[1]
    G = 4 * H
    R = len(seq)
    tanh = route == "tanh"
    s = np.ones(G, dt)                       # the rows' scales (see the module docstring)
    if tanh:
        s[:2 * H] = s[3 * H:] = 0.5          # i, f, o: z/2
    else:
        s[2 * H:3 * H] = 2.0                 # g: 2z
        s *= -1.0 if route == "exp" else 1.0     # exp(-z) comes out of one exp pass

    # sigma of the unscaled a: the exp route's sign is in the rows, so it is 1/(1 + e^a) there
    sigmoid = kernels.exp_reciprocal(np) if route == "exp" else backend.expit(np)
    hscale = 2.0 if tanh else 1.0            # the recurrence carries h' = hscale h
    # Transposed: a column per batch row, so that every gate's block z[q H:(q+1) H] and h, c
    # are contiguous. In (rows, G) a gate is a strided column slice, and NumPy's passes over
    # 64-wide slices ran at a third of the contiguous rate here.
    # [W_hh / hscale | U_t^T] (see the docstring), and below it B rows [w_y[t-1] / hscale | 0]:
    # the GEMM of step t also gives f's terms of h_t, while h_t is in cache (a pass over every
    # step's h after the loop cost 12% of the time, an einsum each step 6%)
    WaugT = np.zeros((G + B, H + B), dt)
    WaugT[:G, :H] = W_hh * (s / hscale)[:, None]
    U = (x.reshape(T * B, D) @ (W_ih * s[:, None]).T).reshape(T, B, G)
    U += (theta["bias_ih_l0"] + theta["bias_hh_l0"]) * s
    UT = U.transpose(0, 2, 1)                # (T, G, B)
    hs = np.empty((T + 1, H + B, R), dt)     # [h'_t ; onehot(seq)] for every step, transposed
    hs[:, H:] = np.eye(B, dtype=dt)[:, seq]
    hs[0, :H] = hscale * h0
    c = np.array(c0, dt, order="C")          # (H, R), row-major like z (c0 may be a transpose)
    zw = np.empty((G + B, R), dt)
    z, fw = zw[:G], zw[G:]                   # the gates; f's terms (b', r), used at b' = seq[r]
    cols = np.arange(R)
    tc = np.empty((H, R), dt)
    zi, zf, zg, zo = (z[q * H:(q + 1) * H] for q in range(4))
    wy = w["y"] / hscale                    # f's weights of h'
    f = np.zeros(R, dt)
    for t in range(T):
        WaugT[:G, H:] = UT[t]
        if t:
            WaugT[G:, :H] = wy[t - 1]
        np.matmul(WaugT, hs[t], out=zw)
        if t:
            f += fw[seq, cols]
        perturb(t, z, hs[t, :H], s, hscale)
        h_next = hs[t + 1, :H]
        if tanh:
            np.tanh(z, out=z)               # 2i-1, 2f-1, g, 2o-1
            z[:2 * H] += 1.0                # 2i, 2f
            zi *= zg                        # 2 i g
            c *= zf
            c += zi
            c *= 0.5                        # c = f c_prev + i g
            np.tanh(c, out=tc)
            zo += 1.0                       # 2o
            np.multiply(zo, tc, out=h_next)     # h' = 2 o tanh(c)
        else:
            sigmoid(z, z)                   # i, f, (g + 1)/2, o
            zg *= 2.0
            zg -= 1.0                       # g
            zi *= zg                        # i g
            c *= zf
            c += zi                         # c = f c_prev + i g
            np.multiply(c, s[2 * H], out=tc)   # 2c (logistic) or -2c (exp)
            sigmoid(tc, tc)
            tc *= 2.0
            tc -= 1.0                       # tanh(c)
            np.multiply(zo, tc, out=h_next)     # h = o tanh(c)
    f += np.einsum("hr,rh->r", hs[T, :H], (wy[T - 1] + w["h0"][0] / hscale)[seq])
    f += np.einsum("hr,rh->r", c, w["c0"][0][seq])
    return f
