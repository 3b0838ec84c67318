"""Per-step state Jacobians J_t = ds_t / ds_{t-1} of one layer, from the model's own backward.

Row i of J_t is the vector-Jacobian product e_i^T J_t: a one-step forward from s_{t-1}, then
backward with dy = 0 and dstate = e_i gives it as the 'h0' ('c0') gradient. All n rows of many
steps go through one call by stacking them on the batch axis (s_{t-1} repeated n times per step),
so the cost is a few large GEMMs per chunk instead of n small ones per step, and every cell type
and variant the model supports is covered without a hand-written Jacobian.
"""
from __future__ import annotations

from .. import backend
from . import _common as C

ROWS_PER_CALL = 16384      # batch rows per one-step forward/backward (~100 MiB at H = 128)


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


def iter_jacobians(model, params, x, S, steps, chunk=None):
    """Yield (t, J_t) for t in ``steps`` (1-based, in the order given), computing them in chunks.

    x: (T, D) inputs of one sequence; S: (T+1, n) its states s_0..s_T (see trajectory)."""
    n = S.shape[-1]
    chunk = chunk or max(1, ROWS_PER_CALL // n)
    steps = list(steps)
    for i in range(0, len(steps), chunk):
        ts = steps[i:i + chunk]
        idx = backend.asarray([t - 1 for t in ts], backend.array_module(S), None)
        J = step_jacobians(model, params, x[idx], S[idx])
        bad = C.first_nonfinite(J)
        if bad is not None:
            C.raise_nonfinite("the state Jacobian ds_t/ds_(t-1)", ts[bad], x.shape[0])
        for j, t in enumerate(ts):
            yield t, J[j]
