"""A small hand-written NumPy LSTM for the checker's own tests (independent of lstmcheck.models).

Parameters: Wx (4H, D), Wh (4H, H), b (4H,), gate blocks i, f, g, o; plus x (T, B, D), h0, c0
(B, H). Loss: L = sum wy*h_t + sum wc*c_T with fixed random weights. The forward is complex-safe.
``backward(..., bug=...)`` plants one of the bugs in BUGS.
"""
from __future__ import annotations

import numpy as np

GATES = "ifgo"
BUGS = ("gate_derivative", "no_cec", "swapped_gates", "off_by_one", "no_bias_grad",
        "one_element", "nan")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def make(seed, D=2, H=3, T=6, B=2, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p = {"Wx": rng.uniform(-1, 1, (4 * H, D)) * scale / np.sqrt(H),
         "Wh": rng.uniform(-1, 1, (4 * H, H)) * scale / np.sqrt(H),
         "b": rng.uniform(-1, 1, 4 * H) * scale,
         "x": rng.standard_normal((T, B, D)),
         "h0": 0.5 * rng.standard_normal((B, H)),
         "c0": 0.5 * rng.standard_normal((B, H))}
    w = {"y": rng.standard_normal((T, B, H)), "c": rng.standard_normal((B, H))}
    return {k: v.astype(dtype) for k, v in p.items()}, {k: v.astype(dtype) for k, v in w.items()}


def forward(p):
    x, h, c = p["x"], p["h0"], p["c0"]
    H = h.shape[-1]
    hs, cs, acts = [h], [c], []
    for t in range(x.shape[0]):
        z = x[t] @ p["Wx"].T + h @ p["Wh"].T + p["b"]
        i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 3 * H:])
        g = np.tanh(z[:, 2 * H:3 * H])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h), cs.append(c), acts.append((i, f, g, o))
    return hs, cs, acts


def loss_fn(w):
    def L(p):
        hs, cs, _ = forward(p)
        return np.sum(w["y"] * np.stack(hs[1:])) + np.sum(w["c"] * cs[-1])
    return L


def backward(p, w, bug=None):
    hs, cs, acts = forward(p)
    x = p["x"]
    T, H = x.shape[0], hs[0].shape[-1]
    g_ = {k: np.zeros_like(v) for k, v in p.items()}
    dh_next = np.zeros_like(hs[0])
    dc_next = w["c"].copy()
    for t in reversed(range(T)):
        i, f, g, o = acts[t]
        c_prev, c = cs[t], cs[t + 1]
        dh = w["y"][t] + dh_next
        tc = np.tanh(c)
        do = dh * tc
        dc = dc_next + dh * o * (1 - tc ** 2)
        di, dg = dc * g, dc * i
        df = dc * c_prev
        dzf = df * (f if bug == "gate_derivative" else f * (1 - f))
        dz = np.concatenate([di * i * (1 - i), dzf, dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        h_in = hs[t + 1] if bug == "off_by_one" else hs[t]
        g_["Wx"] += dz.T @ x[t]
        g_["Wh"] += dz.T @ h_in
        g_["b"] += dz.sum(axis=0)
        g_["x"][t] = dz @ p["Wx"]
        dh_next = dz @ p["Wh"]
        dc_next = np.zeros_like(dc) if bug == "no_cec" else dc * f
    g_["h0"], g_["c0"] = dh_next, dc_next
    if bug == "swapped_gates":
        gi = g_["Wh"][:H].copy()
        g_["Wh"][:H] = g_["Wh"][H:2 * H]
        g_["Wh"][H:2 * H] = gi
    if bug == "no_bias_grad":
        g_["b"][:] = 0.0
    if bug == "one_element":
        g_["Wh"][H + 1, 2] *= 1 + 1e-6
    if bug == "nan":
        g_["Wx"][2 * H, 1] = np.nan
    return g_


def make_locate(H):
    """Gate, row (and column) of a Wx/Wh/b element: the report decodes locations with this."""
    def locate(name, index):
        if name not in ("Wx", "Wh", "b"):
            return {"tensor": name}
        loc = {"tensor": name, "gate": GATES[index[0] // H], "row": int(index[0] % H)}
        if len(index) > 1:
            loc["column"] = int(index[1])
        return loc
    return locate
