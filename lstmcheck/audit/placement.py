"""Placing a gradient error in time.

A backward error enters at one step and then travels back with BPTT: dL/dx agrees at the steps
the wrong gradient has not reached and disagrees from the step where it enters down to t = 0
(up to T - 1 for a reverse direction). A weight gradient is a sum over steps, so its first
wrong contribution is found by auditing growing prefixes of the sequence: the prefix of k steps
agrees while the wrong step is not in it."""
from __future__ import annotations

import numpy as np

from .oracle import oracle_run
from .tolerances import compare


def bad_steps(got, want, tol) -> np.ndarray:
    """(T,) bool: at which steps a time-major gradient disagrees (the tensor's tolerance)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = float(np.max(np.abs(want))) or 1.0
    bound = tol["rtol"] * np.abs(want) + tol["atol"] * scale
    bad = ~(np.abs(got - want) <= bound)          # NaN counts as bad
    return bad.reshape(want.shape[0], -1).any(axis=1)


def place_dx(model, got, want, tol) -> str | None:
    """The sentence that places a dL/dx error, or None when dL/dx agrees or the pattern is not
    one error travelling back (a bidirectional layer runs both ways, so it is not placed)."""
    if model.bidirectional:
        return None
    bad = bad_steps(got, want, tol)
    if not bad.any():
        return None
    T = len(bad)
    rev = model.direction == "reverse"
    order = np.arange(T)[::-1] if not rev else np.arange(T)     # the order BPTT visits steps
    seen = bad[order]
    k = int(np.argmax(seen))                                     # first visited bad step
    if seen[k:].all():
        t = int(order[k])
        if k == 0:
            return (f"dL/dx disagrees already at the step BPTT starts from (t = {t}): the error "
                    f"is in the backward of a single step, not in what is carried back.")
        prev = int(order[k - 1])
        return (f"dL/dx agrees for t {'>=' if not rev else '<='} {prev} and disagrees from "
                f"t = {t} {'down' if not rev else 'up'}: the error enters between steps {prev} "
                f"and {t}.")
    steps = ", ".join(str(int(t)) for t in np.flatnonzero(bad)[:8])
    return f"dL/dx disagrees at steps t = {steps} only, not as one error carried back."


def place_weights(tgt, model, params, gmap, x, state, dy, dstate, tol) -> str | None:
    """The first step whose contribution to the weight gradients is wrong, by auditing prefixes
    x[:k] for k = 1, 2, ... (forward direction only); None when no prefix disagrees."""
    if model.direction != "forward":
        return None
    T = x.shape[0]
    names = [n for n in gmap.names]
    for k in range(1, T + 1):
        _, _, g_o = oracle_run(model, params, x[:k], state, dy[:k], dstate)
        want = gmap.pullback(g_o)
        got = tgt.vjp(tgt.tensors, x[:k], state, dy[:k], dstate)
        wrong = [n for n in names if n in got and got[n] is not None
                 and not compare(got[n], want[n], **tol)["passed"]]
        if wrong:
            if k == 1:
                return (f"the weight gradients ({', '.join(wrong)}) are wrong on the first step "
                        f"alone (prefix of 1 step): the error is in one step's backward.")
            return (f"the weight gradients agree on prefixes of up to {k - 1} steps and "
                    f"{', '.join(wrong)} disagree from {k} steps on: the error comes in with step "
                    f"t = {k - 1}.")
    return None
