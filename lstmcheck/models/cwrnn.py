"""Clockwork RNN (Koutnik, Greff, Gomez & Schmidhuber 2014).

The H hidden units form g modules, numbered fastest first, with periods T_0 < T_1 < ... <
T_(g-1) (default g = 4: 1, 2, 4, 8); the units are split as evenly as possible, the faster
modules taking the spare ones (with the default g and hidden_size < 4 the slowest modules are
empty; a g asked for needs hidden_size >= g). With t the step counter (0 at the first step processed):

    a_t = u_t + (M * W_hh) h_(t-1)              u_t = W_ih x_t + b_ih + b_hh
    h_t = tanh(a_t)     on the units of the modules with  t mod T_i == 0   (active)
    h_t = h_(t-1)       on the others                                      (carried)

M is the block-upper-triangular structure of the paper (its W_H with the modules sorted by
increasing period): row block i (module i) receives from the column blocks j >= i only, i.e.
from modules as slow as itself or slower, never from a faster one. The entries of weight_hh
where M = 0 are *structural zeros*: init writes 0 there, the forward multiplies them by 0, so
they reach nothing and their gradient is exactly 0 (a mask in the forward, not a projection of
the gradient: finite differences and the complex step see the same 0).

The counter t is a hidden state part ``clock`` (width 1, starts at 0, +1 per step processed).
Carrying it in the state rather than passing t to the step is what makes every feature work
unchanged: a padded step (lengths) leaves it alone, so each sequence counts its own real steps
and a reverse direction starts counting at its step lengths[b] - 1; probes that run a sequence
in segments or stack steps of different times on the batch axis get each row's own count. The
clock is an integer, not a differentiable quantity: its rows and columns of the step Jacobian
are 0.
"""
from __future__ import annotations

import numpy as np

from .cell import Cell, Outer
from .recurrent import positive_int
from ..errors import OptionError


class CWRNNCell(Cell):
    name = "cwrnn"
    gates = ("h",)
    hidden_states = ("clock",)
    batchable = False       # M * W_hh is not one of the products the checker's replicas allow

    def __init__(self, modules=None, periods=None):
        given = periods is not None
        if periods is None:
            g = positive_int("modules", 4 if modules is None else modules)
            periods = tuple(2 ** i for i in range(g))
        else:
            if isinstance(periods, (str, bytes)) or not hasattr(periods, "__len__") or not periods:
                raise OptionError(f"periods must be a list of positive integers, got {periods!r}.")
            periods = tuple(positive_int("each period", p) for p in periods)
            if any(b <= a for a, b in zip(periods, periods[1:])):
                raise OptionError(f"periods must increase strictly (fastest module first, as "
                                  f"the block-triangular W_hh assumes), got {list(periods)}.")
            if modules is not None and modules != len(periods):
                raise OptionError(f"modules={modules} contradicts the {len(periods)} periods "
                                  f"{list(periods)}.")
        self.periods = periods
        self.explicit = modules is not None or given      # asked for, rather than the default

    # ---- structure
    @property
    def modules(self) -> int:
        return len(self.periods)

    def config(self):
        return {"periods": list(self.periods)}

    def describe(self):
        default = tuple(2 ** i for i in range(self.modules))
        return "" if self.periods == default else f", periods={list(self.periods)}"

    def module_of(self, H) -> np.ndarray:
        """(H,) the module of each hidden unit (0 = fastest)."""
        if H < self.modules and self.explicit:
            raise OptionError(f"the clockwork RNN's {self.modules} modules need hidden_size >= "
                              f"{self.modules}, got {H}.")
        # with the default modules and fewer units than modules, the slowest ones are empty
        sizes = [len(a) for a in np.array_split(np.arange(H), self.modules)]
        return np.repeat(np.arange(self.modules), sizes)

    def state_sizes(self, H):
        self.module_of(H)       # refuse hidden_size < the modules asked for, at build time
        return (H, 1)

    def structural_zeros(self, base, H):
        """(shape) bool array, True where ``base`` is structurally zero, or None: weight_hh's
        entries from a faster module into a slower one (row module > column module)."""
        if base != "weight_hh":
            return None
        m = self.module_of(H)
        return m[:, None] > m[None, :]

    def locate(self, base, idx, H):
        loc = super().locate(base, idx, H)
        m = self.module_of(H)
        if base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            loc["module"] = int(m[idx[0]])
            loc["period"] = self.periods[m[idx[0]]]
        if base == "weight_hh" and len(idx) > 1:
            loc["from_module"] = int(m[idx[1]])
            loc["structural_zero"] = bool(m[idx[0]] > m[idx[1]])
        return loc

    def _layout(self, xp, H, dtype):
        """On the backend: the period of each unit (H,), M (H, H) and, per module i, its row
        block and the columns it reads (modules >= i) as a 0/1 mask (H,). Cached per H, dtype
        and backend: a memo of constants, so that a step does not rebuild them."""
        key = (H, str(dtype), xp.__name__)
        cached = getattr(self, "_memo", None)
        if cached is None or cached[0] != key:
            m = self.module_of(H)
            per = np.asarray(self.periods, float)[m]
            keep = (m[:, None] <= m[None, :]).astype(float)
            real = np.empty(0, dtype=dtype).real.dtype
            blocks = [(slice(int(np.nonzero(m == i)[0][0]), int(np.nonzero(m == i)[0][-1]) + 1),
                       xp.asarray((m >= i).astype(float), dtype=real))
                      for i in range(self.modules) if np.any(m == i)]
            self._memo = (key, xp.asarray(per), xp.asarray(keep, dtype=dtype), blocks)
        return self._memo[1:]

    # ---- one step
    def step(self, xp, p, u, state):
        h_prev, clock = state[0], state[1]
        H = h_prev.shape[-1]
        per, keep, _ = self._layout(xp, H, p["weight_hh"].dtype)
        W = p["weight_hh"] * keep                                   # M * W_hh
        # the count t is the clock rounded: a probe's tiny perturbation of the whole state vector
        # (Lyapunov's perturbed copy) neither stops the clock nor survives the step, so the
        # clock's derivative is 0 in fact, as the step Jacobian says
        t = xp.rint(clock.real)
        active = (t % per) == 0                                     # (B, H): t mod T_i == 0
        cand = xp.tanh(u + h_prev @ W.T)
        h = xp.where(active, cand, h_prev)
        return (h, (t + 1).astype(clock.dtype)), (h_prev, cand, active, W)

    def step_backward(self, xp, p, cache, dstate):
        h_prev, cand, active, W = cache
        dh = dstate[0]
        H = h_prev.shape[-1]
        da = xp.where(active, dh * (1 - cand * cand), 0)            # dL/da_t, 0 on carried units
        dh_prev = xp.where(active, 0, dh) + da @ W                  # carried units: identity
        # dL/dW_hh = M * (da^T h_prev), one Outer per module row block with the columns of the
        # faster modules zeroed, so the structural zeros get exactly 0
        blocks = self._layout(xp, H, W.dtype)[2]
        terms = [Outer(da[:, rows], h_prev * cols, rows) for rows, cols in blocks]
        return da, (dh_prev, xp.zeros_like(dstate[1])), {"weight_hh": terms}

    def gate_values(self, cache):
        return {"h": cache[1]}
