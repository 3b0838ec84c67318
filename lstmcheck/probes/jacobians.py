"""Per-step state Jacobians J_t = ds_t / ds_{t-1} of one layer-direction, from its cell.

Each cell gives its step Jacobian (``Cell.step_jacobian``): closed forms where a cell has one
(the RNN), otherwise vector-Jacobian products of its own step_backward, which are exact for
every cell and variant. Many steps go through one call by stacking them on the batch axis, so
the cost is a few large GEMMs per chunk instead of n small ones per step.
"""
from __future__ import annotations

from .. import backend
from ..errors import OptionError
from . import _common as C

ROWS_PER_CALL = 4096       # batch rows per one-step call (n rows per time step)
METHODS = ("auto", "analytic", "vjp")


def step_jacobians(view, x_steps, s_prev, method="auto"):
    """J (Tc, n, n) for inputs x_steps (Tc, D) and previous states s_prev (Tc, n)."""
    xp = backend.array_module(s_prev)
    u = view.project(x_steps[None])[0]
    state = view.split(s_prev)
    if method == "vjp":
        from ..models.cell import Cell
        return Cell.step_jacobian(view.cell, xp, view.p, u, state)
    return view.cell.step_jacobian(xp, view.p, u, state)


def iter_jacobians(view, x, S, steps, chunk=None, method="auto"):
    """Yield (t, J_t) for t in ``steps`` (1-based, consecutive, ascending or descending),
    computing them in chunks. x: (T, D) inputs of one sequence; S: (T+1, n) its states s_0..s_T.
    method: "auto" (the cell's own step Jacobian), "vjp" (always through step_backward) or
    "analytic" (refused unless the cell has a closed form)."""
    if method not in METHODS:
        raise OptionError(f"unknown Jacobian method {method!r}; use 'auto', 'analytic' or 'vjp'.")
    if method == "analytic" and not view.cell.closed_jacobian:
        raise OptionError(f"no analytic Jacobian for {view.describe()}; use method='vjp'.")
    n = S.shape[-1]
    chunk = chunk or max(1, ROWS_PER_CALL // n)
    steps = list(steps)
    xp = backend.array_module(S)
    for i in range(0, len(steps), chunk):
        ts = steps[i:i + chunk]
        idx = backend.asarray([t - 1 for t in ts], xp, None)
        J = step_jacobians(view, x[idx], S[idx], method)
        bad = C.first_nonfinite(J)
        if bad is not None:
            C.raise_nonfinite("the state Jacobian ds_t/ds_(t-1)", ts[bad], x.shape[0])
        for j, t in enumerate(ts):
            yield t, J[j]
