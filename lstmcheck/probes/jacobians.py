"""Per-step state Jacobians J_t = ds_t / ds_{t-1} of one layer.

Two routes, verified against each other and against finite differences in the tests:

- analytic (fast): closed forms for the RNN (any nonlinearity), the vanilla LSTM without
  projection and the GRU (both reset modes), built from the gate values of a batch-1 forward;
- vector-Jacobian products (every other variant) through the model's own backward.

Row i of J_t is the vector-Jacobian product e_i^T J_t: a one-step forward from s_{t-1}, then
backward with dy = 0 and dstate = e_i gives it as the 'h0' ('c0') gradient. All n rows of many
steps go through one call by stacking them on the batch axis (s_{t-1} repeated n times per step),
so the cost is a few large GEMMs per chunk instead of n small ones per step, and every cell type
and variant the model supports is covered without a hand-written Jacobian.
"""
from __future__ import annotations

from .. import backend
from ..errors import OptionError
from . import _common as C

ROWS_PER_CALL = 4096       # batch rows per one-step forward/backward (VJP route)
ANALYTIC_STEPS = 64        # time steps per analytic chunk


def step_jacobians(model, params, x_steps, s_prev):
    """J (Tc, n, n) for inputs x_steps (Tc, D) and previous states s_prev (Tc, n)."""
    xp = backend.array_module(s_prev)
    Tc, n = s_prev.shape
    rows = Tc * n
    x1 = xp.repeat(x_steps, n, axis=0)[None]                 # (1, Tc*n, D)
    state = tuple(a[None] for a in C.split_state(model, xp.repeat(s_prev, n, axis=0)))
    y, _, tape = model.run_forward(params, x1, state)
    eye = xp.broadcast_to(xp.eye(n, dtype=s_prev.dtype), (Tc, n, n)).reshape(rows, n)
    dstate = tuple(a[None] for a in C.split_state(model, eye))
    dy = xp.zeros_like(y)
    if model.batch_first:                                   # the tape remembers the layout
        dy = dy.transpose(1, 0, 2)
    grads = model.backward(tape, dy, dstate)
    parts = (grads["h0"][0], grads["c0"][0]) if model.cell.has_cell_state else (grads["h0"][0],)
    return C.join_state(parts).reshape(Tc, n, n)


def analytic_supported(model) -> bool:
    if model.kind in ("rnn", "gru"):
        return True
    from ..models.lstm import LSTMFlags
    return model.flags == LSTMFlags() and not model.proj_size


def analytic_jacobians(model, params, x_steps, s_start):
    """J (Tc, n, n) for consecutive steps driven by x_steps (Tc, D) from state s_start (n,)."""
    xp = backend.array_module(s_start)
    state = tuple(a[None] for a in C.split_state(model, s_start[None]))
    _, _, tape = model.run_forward(params, x_steps[:, None], state)
    ct = tape.layers[0][1]
    W = params["weight_hh" + C.SUFFIX]
    H = model.hidden_size
    rows = lambda a, blk: a[:, :, None] * W[None, blk * H:(blk + 1) * H]   # noqa: E731 diag(a) W_blk
    if model.kind == "rnn":
        h = ct["hs"][1:, 0]
        return rows(model.cell.act.grad(xp, h) * xp.ones_like(h), 0)
    if model.kind == "lstm":
        a, c = ct["act"][:, 0], ct["c"][:, 0]
        i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
        c_prev, c_t = c[:-1], c[1:]
        tc = xp.tanh(c_t)
        dc_dh = rows(c_prev * f * (1 - f), 1) + rows(g * i * (1 - i), 0) + rows(i * (1 - g * g), 2)
        do = o * (1 - tc * tc)                                   # dh/dc_t
        dh_dh = rows(tc * o * (1 - o), 3) + do[:, :, None] * dc_dh
        Tc = a.shape[0]
        J = xp.zeros((Tc, 2 * H, 2 * H), a.dtype)
        J[:, :H, :H] = dh_dh
        J[:, H:, :H] = dc_dh
        idx = xp.arange(H)
        J[:, idx, H + idx] = do * f                              # dh/dc_prev (diagonal)
        J[:, H + idx, H + idx] = f                               # dc/dc_prev (diagonal)
        return J
    a, hs = ct["act"][:, 0], ct["hs"][:, 0]
    r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
    h_prev = hs[:-1]
    dn = 1 - n * n
    dz_dh = rows(z * (1 - z), 1)
    if model.reset_after:            # n = tanh(u_n + r * (W_n h + b_hn)), keep = W_n h + b_hn
        q = ct["keep"][:, 0]
        dn_dh = rows(dn * q * r * (1 - r), 0) + rows(dn * r, 2)
    else:                            # n = tanh(u_n + W_n (r * h) + b_hn)
        inner = rows(h_prev * r * (1 - r), 0)                    # d(r*h)/dh without diag(r)
        idx = xp.arange(H)
        inner[:, idx, idx] += r
        dn_dh = dn[:, :, None] * (W[None, 2 * H:] @ inner)
    J = (h_prev - n)[:, :, None] * dz_dh + (1 - z)[:, :, None] * dn_dh
    idx = xp.arange(H)
    J[:, idx, idx] += z
    return J


def iter_jacobians(model, params, x, S, steps, chunk=None, method="auto"):
    """Yield (t, J_t) for t in ``steps`` (1-based, consecutive, ascending or descending),
    computing them in chunks. x: (T, D) inputs of one sequence; S: (T+1, n) its states s_0..s_T.
    method: "auto" (analytic where supported), "analytic" or "vjp"."""
    if method not in ("auto", "analytic", "vjp"):
        raise OptionError(f"unknown Jacobian method {method!r}; use 'auto', 'analytic' or 'vjp'.")
    analytic = method == "analytic" or (method == "auto" and analytic_supported(model))
    if analytic and not analytic_supported(model):
        raise OptionError(f"no analytic Jacobian for {model.describe()}; use method='vjp'.")
    n = S.shape[-1]
    chunk = chunk or (ANALYTIC_STEPS if analytic else max(1, ROWS_PER_CALL // n))
    steps = list(steps)
    for i in range(0, len(steps), chunk):
        ts = steps[i:i + chunk]
        lo = min(ts)
        if analytic:
            J = analytic_jacobians(model, params, x[lo - 1:lo - 1 + len(ts)], S[lo - 1])
            if ts[0] != lo:
                J = J[::-1]
        else:
            idx = backend.asarray([t - 1 for t in ts], backend.array_module(S), None)
            J = step_jacobians(model, params, x[idx], S[idx])
        bad = C.first_nonfinite(J)
        if bad is not None:
            C.raise_nonfinite("the state Jacobian ds_t/ds_(t-1)", ts[bad], x.shape[0])
        for j, t in enumerate(ts):
            yield t, J[j]
