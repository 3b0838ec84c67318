"""The cell protocol: what a recurrent cell defines, and the defaults every cell inherits.

A cell is the maths of one time step of one layer in one direction. The stack runner
(models/runner.py) does everything else: the input projection of all steps as one GEMM
(``u_t = W_ih x_t + b_ih``, plus ``b_hh`` when ``fold_bias_hh``), layers, directions, sequence
lengths, truncation and clipping, and the weight-gradient GEMMs of W_ih.

Parameters follow PyTorch: ``weight_ih`` (G*H, in), ``weight_hh`` (G*H, H_out), ``bias_ih``,
``bias_hh`` (G*H,) with G = len(gates) blocks stacked in ``gates`` order, plus the cell's
``extra_params``. A step sees one layer-direction's parameters by base name (``p["weight_hh"]``).

So that the checker can run perturbed replicas batched, built-in cells (``batchable = True``)
touch parameters only through ``a @ W.T``, ``a @ W[rows].T``, ``b[rows]`` and broadcasting;
a user's cell need not (the checker then evaluates replicas one by one).

See docs/cells.md for a complete example.
"""
from __future__ import annotations


class Outer:
    """A weight-gradient term ``a.T @ b`` (summed over the batch) that the runner may defer and
    do for all time steps in one GEMM. ``rows``: the block of the parameter's rows it fills
    (default: all)."""

    __slots__ = ("a", "b", "rows")

    def __init__(self, a, b, rows=None):
        self.a, self.b, self.rows = a, b, rows

    def value(self):
        return self.a.T @ self.b


class Cell:
    """Base class of every recurrent cell; subclass it to bring your own.

    Class attributes:
      name          registry / CLI name (default: the class name in lower case)
      gates         names of the row blocks of weight_ih / weight_hh, in order
      state_names   names of the state parts; the first is h, the output
      fold_bias_hh  add bias_hh to the projected input (False when it sits inside a product)
      memory_gate   the gate whose activation keeps memory (gate statistics, init's forget_bias)
      batchable     parameters are used only as the checker's replicas allow (see module doc)
      unit_gates    gates whose activation lies in (0, 1); the others are tanh-like
      closed_jacobian  step_jacobian is overridden by a closed form
      output_part   index of the state part that is the layer's output (default 0, h)
      below         name of a state part the step takes from the layer below at the same step:
                    step(xp, p, u, state, below) gets it ((B, .), None at layer 0), and
                    step_backward returns a fourth value, dL/d(below) (None when it was None)
      alternatives  {model option: values} the audit tries on a disagreement (optional)

    Methods to define: ``step`` and ``step_backward``. The others have defaults.
    """

    name: str | None = None
    gates: tuple = ("h",)
    state_names: tuple = ("h",)
    fold_bias_hh: bool = True
    memory_gate: str | None = None
    batchable: bool = False
    unit_gates: tuple = ()          # gates whose activation lies in (0, 1) (sigmoid-like)
    closed_jacobian: bool = False   # step_jacobian is a closed form (else VJPs of step_backward)
    hidden_states: tuple = ()   # trailing state parts the cell carries but nobody sets or reads
    fused = None            # a faster execution of whole sequences (models/fused_*.py), if any
    output_part: int = 0    # the state part that is the layer's output y_t (and next layer's input)
    below: str | None = None   # a state part taken, at the same step, from the layer below
    # model options whose other values the audit tries when a target disagrees ("the target
    # computes variant='no_output_tanh'"): {option: values}, each a build() option of this cell
    alternatives: dict = {}

    # ------------------------------------------------------------------ structure
    @property
    def has_cell_state(self) -> bool:
        """More than one state part (the LSTM's (h, c))."""
        return len(self.state_names) > 1

    def cell_name(self) -> str:
        return self.name or type(self).__name__.lower()

    def extra_params(self, hidden_size: int) -> dict:
        """{base name: shape} of parameters beyond weight_ih/weight_hh/bias_ih/bias_hh."""
        return {}

    def state_sizes(self, hidden_size: int) -> tuple:
        """Width of each state part (hidden ones last); the first is H_out, the width of h."""
        return (hidden_size,) * len(self.state_names + self.hidden_states)

    def structural_zeros(self, base: str, hidden_size: int):
        """A bool array of the shape of parameter ``base``, True where the cell's structure fixes
        it at 0 (init writes 0 there; the cell's step must not read it), or None (default)."""
        return None

    def param_layer(self, layer: int) -> int:
        """The layer whose parameters layer ``layer`` uses: its own (default), or a lower one
        for weights tied across layers (that layer's names then serve both)."""
        return layer

    def config(self) -> dict:
        """The options that rebuild this cell (JSON-ready)."""
        return {}

    def describe(self) -> str:
        """Options worth naming in a model's description, as ', key=value' text."""
        return "".join(f", {k}={v!r}" for k, v in self.config().items())

    def locate(self, base: str, index: tuple, hidden_size: int) -> dict:
        """(gate, row, column) of an element of the parameter ``base`` at ``index``."""
        H = hidden_size
        if base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            loc = {"row": int(index[0] % H)}
            if len(self.gates) > 1:
                loc["gate"] = self.gates[index[0] // H]
        else:
            loc = {"row": int(index[0])}
        if len(index) > 1:
            loc["column"] = int(index[1])
        return loc

    # ------------------------------------------------------------------ maths
    def step(self, xp, p, u, state):
        """One step: ``u`` (B, G*H) is the projected input, ``state`` a tuple of (B, .) arrays.
        Returns (new state tuple, cache for step_backward)."""
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    def step_backward(self, xp, p, cache, dstate):
        """Given dL/d(new state), return (dL/du, dL/d(previous state) tuple, {base name:
        gradient}) for the step whose ``cache`` is given. Gradients may be arrays or
        :class:`Outer` terms (or lists of them); weight_ih and bias_ih come from dL/du."""
        raise NotImplementedError(f"{type(self).__name__} must define step_backward()")

    def gate_values(self, cache) -> dict:
        """{gate: (B, H) activation} of one step, for gate statistics (default: none)."""
        return {}

    def memory(self, values: dict):
        """(label, activation) of what keeps memory from step to step, given gate_values, or
        None (gate statistics' forget-gate rows and time constants)."""
        g = self.memory_gate
        return (g, values[g]) if g in values else None

    def state_gradient(self, xp, p, cache, dstate) -> tuple:
        """dL/d(state_t) as the probes report it, from the gradient ``dstate`` that reaches the
        state as it leaves the step. Cells whose output is computed from another state part in
        the same step (the LSTM's h = o * tanh(c)) add that path here."""
        return dstate

    def step_jacobian(self, xp, p, u, state):
        """J (N, n, n) = d s_t / d s_(t-1) for N independent rows (u (N, G*H), state parts
        (N, .)), with s = all state parts concatenated. Row i is the vector-Jacobian product of
        e_i, computed by one batched step and step_backward (exact for every cell)."""
        N = u.shape[0]
        sizes = [a.shape[-1] for a in state]
        n = sum(sizes)
        rep = lambda a: xp.repeat(a, n, axis=0)                          # noqa: E731
        _, cache = self.step(xp, p, rep(u), tuple(rep(a) for a in state))
        eye = xp.broadcast_to(xp.eye(n, dtype=u.dtype), (N, n, n)).reshape(N * n, n)
        parts, lo = [], 0
        for s in sizes:
            parts.append(xp.ascontiguousarray(eye[:, lo:lo + s]))
            lo += s
        dprev = self.step_backward(xp, p, cache, tuple(parts))[1]   # (a below cell: 4 values)
        return xp.concatenate(dprev, axis=1).reshape(N, n, n)
