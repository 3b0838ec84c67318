"""``audit()``: run a target and the float64 oracle on the same weights, inputs and state, and
compare outputs, gradients and finite differences; diagnose a forward disagreement."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import backend
from .. import validate as V
from ..errors import OptionError, ShapeError
from .diagnosis import diagnose_forward
from .gradient_map import GradientMap
from .gradients import _compare_gradients, _fd_rows
from .placement import place_dx, place_weights
from .oracle import float64_model, oracle_run, random_cotangents, random_inputs
from .report import AuditReport, _row, _where_state
from .targets import make_target
from .targets.base import _state_tuple
from .tolerances import check_tolerance, compare, real_output, tolerances


@V.keywords
def audit(target, *, layout=None, cell=None, model=None, params=None, x=None, state=None,
          dtype=None, seed=0, fd=True, options=None, vjp=None, seq_len=5, batch=2, dy=None,
          dstate=None, rtol=None, atol=None, diagnose=True, fd_elements=48,
          lengths=None) -> AuditReport:
    """Compare a foreign implementation with the oracle (see the module docstring for targets).

    x, state: inputs (time-major; default N(0,1) of ``seq_len`` x ``batch`` and a non-zero
    state, seeded); dy, dstate: the cotangents for gradients (default seeded N(0,1));
    model, params: for a module, dump or ONNX target, the reference to hold it to (canonical
    params), instead of the weights read from it; options: the layout's load options; fd: also check the target's gradients by finite
    differences of its own forward (``fd_elements`` elements per tensor); diagnose: on a forward
    disagreement, look for the layout mistake that explains it.

    lengths: (B,) integers in 1..T, right padding (the oracle's ``forward(..., lengths=)``;
    PyTorch packed sequences, ONNX ``sequence_lens``). They reach the oracle and the target: a
    callable that takes a ``lengths`` keyword receives it (its ``vjp`` too, if it takes one); an
    ONNX graph with a ``sequence_lens`` input is fed them, and without ``lengths=`` it is fed
    seeded ragged lengths (T, max(1, T // 2), then draws in 1..T); an ONNX initializer
    ``sequence_lens`` (or a dump's ``lengths`` array) fixes them, and the batch defaults to its
    size. A target that cannot take lengths refuses them."""
    rtol, atol = check_tolerance("rtol", rtol), check_tolerance("atol", atol)
    seq_len, batch = V.integer("seq_len", seq_len), V.integer("batch", batch)
    fd_elements = V.integer("fd_elements", fd_elements)
    options = V.mapping("options", options)
    seed = V.seed(seed)
    tgt = make_target(target, layout, cell, options, model, params, dtype, vjp, seed)
    if tgt.kind != "callable" and model is not None and params is not None:
        # a reference to hold the file or module to (an exporter's output against its source)
        m64 = float64_model(model)
        tgt.model = m64
        tgt.params = {n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()}
        m64._check_params(tgt.params, np)
        if tgt.kind == "onnx":   # the target's tensors are compared as the reference reads them
            from ..layouts import onnx as onnx_layout
            tgt.options = onnx_layout.options(m64)
    m, p, dt = tgt.model, tgt.params, tgt.dtype
    n_state = len(m.state_shapes(1))
    if tgt.lengths is not None and x is None:   # the target fixes the batch and the lengths
        batch = len(tgt.lengths)
        seq_len = max(int(seq_len), int(np.max(tgt.lengths)))

    def q(a):   # what the target sees: its own dtype; the oracle gets exactly these numbers
        return None if a is None else np.asarray(backend.to_host(a)).astype(dt)

    if tgt.kind == "npz":
        x_t = tgt.fixed["x"]
        _check_x(m, x_t)
        T, B = x_t.shape[:2]
        state_t = tuple(np.zeros(s, dt) if a is None else a
                        for a, s in zip(tgt.fixed["state"], m.state_shapes(B)))
    else:
        x0, s0 = random_inputs(m, seq_len, batch, seed)
        x_t = q(x0 if x is None else x)
        _check_x(m, x_t)
        T, B = x_t.shape[:2]
        if state is not None:
            s0 = _state_tuple(state, n_state)
            if len(s0) != n_state:
                raise ShapeError(f"state for {m.kind.upper()} must be "
                                 f"{'the pair (h0, c0)' if n_state == 2 else 'h0 alone'}.")
            s0 = tuple(np.zeros(s) if a is None else a for a, s in zip(s0, m.state_shapes(B)))
        rule = tgt.state_rule or (None,) * n_state
        state_t = tuple(q(np.zeros(s) if isinstance(r, str) else a if r is None else r)
                        for a, r, s in zip(s0, rule, m.state_shapes(B)))
    for n, a, s in zip(("h0", "c0"), state_t, m.state_shapes(B)):
        if tuple(a.shape) != s:
            raise ShapeError(f"{n} has shape {tuple(a.shape)}, expected {s}.")
    lengths_t = _lengths(tgt, m, lengths, T, B, seed)
    if lengths_t is not None and tgt.takes_lengths:
        tgt = _with_lengths(tgt, lengths_t)

    if tgt.kind == "npz" and "dy" in tgt.fixed:
        dy_t = tgt.fixed["dy"]
        dstate_t = tuple(np.zeros(s, dt) if a is None else a
                         for a, s in zip(tgt.fixed["dstate"], m.state_shapes(B)))
    else:
        dy0, ds0 = random_cotangents(m, T, B, seed)
        dy_t = q(dy0 if dy is None else dy)
        dstate_t = tuple(q(a) for a in (ds0 if dstate is None else _state_tuple(dstate, n_state)))

    tol = (tgt.gradient_tolerances or tolerances)(
        dt, T, m.num_layers, max(m.layer_input_size(k) for k in range(m.num_layers)) + m.output_size)
    if rtol is not None or atol is not None:
        fixed_tol = {"rtol": rtol if rtol is not None else 0.0, "atol": atol if atol is not None else 0.0}
        tol = {"forward": fixed_tol, "gradient": dict(fixed_tol)}

    if tgt.kind == "npz":
        y_t, fin_t = tgt.fixed["y"], tgt.fixed["final"]
    else:
        y_t, fin_t = tgt.forward(tgt.tensors, x_t, state_t)
    # a final state the target does not return (an ONNX graph without Y_c) takes no part in L
    if tgt.kind != "npz":   # a dump's gradients were computed with its own dhn/dcn
        dstate_t = tuple(np.zeros_like(d) if j < len(fin_t) and fin_t[j] is None else d
                         for j, d in enumerate(dstate_t))
    y_o, fin_o, g_o = oracle_run(m, p, x_t, state_t, dy_t, dstate_t, lengths=lengths_t)

    report = AuditReport(target=tgt.description, layout=tgt.layout, model=m.describe(),
                         dtype=dt.name, config={**m.config(), "layout": tgt.layout,
                                                "options": tgt.options, "seq_len": T, "batch": B,
                                                **({"lengths": lengths_t.tolist()}
                                                   if lengths_t is not None else {})},
                         tolerances=tol)
    report.notes.extend(tgt.notes)
    f_tol = tol["forward"]
    for name, got, want in [("y", y_t, y_o), *zip(("h_n", "c_n"), fin_t, fin_o)]:
        if got is None:
            continue
        got = real_output(f"the target's {name}", got)
        if got.shape != want.shape:
            raise ShapeError(f"the target's {name} has shape {got.shape}, but the oracle's is "
                             f"{want.shape} for {m.describe()} with T={T}, B={B}.")
        c = compare(got, want, **f_tol)
        report.rows.append(_row("forward", name, c, f_tol, _where_state(m, name, c)))

    grads_t = None
    if tgt.kind == "npz":
        grads_t = tgt.fixed.get("grads")
    elif tgt.vjp is not None:
        grads_t = tgt.vjp(tgt.tensors, x_t, state_t, dy_t, dstate_t)
    gmap = None
    if grads_t:
        gmap = GradientMap(tgt.layout, tgt.tensors, m.kind, tgt.options)
        _compare_gradients(report, m, gmap, grads_t, g_o, tol["gradient"])
    else:
        report.notes.append("the target supplies no gradients, so only the forward was compared.")

    forward_ok = all(r["passed"] for r in report.rows if r["check"] == "forward")
    if grads_t and forward_ok and not all(r["passed"] for r in report.rows):
        report.diagnosis.extend(_placements(tgt, m, p, gmap, grads_t, g_o, x_t, state_t, dy_t,
                                            dstate_t, tol["gradient"], lengths_t))
    if grads_t and tgt.gradient_method:
        report.notes.append(f"the target's gradients are {tgt.gradient_method} (in "
                            f"{dt.name}), compared with the oracle's at tolerances for finite "
                            f"differences.")
    elif fd and grads_t and tgt.forward is not None:
        _fd_rows(report, tgt, m, gmap, grads_t, x_t, state_t, dy_t, dstate_t, fd_elements, seed)
    elif fd and grads_t:
        report.notes.append("a dump cannot be re-run, so its gradients were not checked by finite "
                            "differences of its own forward.")

    below = _below_precision(report, dt, T, m) if diagnose else None
    if below:
        report.diagnosis.insert(0, below)
    elif diagnose and not all(r["passed"] for r in report.rows if r["check"] == "forward"):
        x64 = np.asarray(x_t, np.float64)
        s64 = tuple(np.asarray(a, np.float64) for a in state_t)
        report.diagnosis = diagnose_forward(m, p, x64, s64, y_t, fin_t, f_tol, lengths=lengths_t)
        if not report.diagnosis:
            report.diagnosis = ["no single gate-order, transpose, bias-offset or direction mistake "
                                "reproduces the target's outputs."]
    return report


def _below_precision(report, dt, T, m):
    """A float64 target whose every disagreement is float32-sized computes below its declared
    precision (say, its matmuls run in float32): one sentence, in place of a layout diagnosis."""
    rows = [r for r in report.rows if r["check"] in ("forward", "gradient")]
    # float32 arithmetic perturbs the forward too: a float64-exact forward with a slightly
    # wrong gradient element is a bug in the backward, not low precision
    if dt != np.float64 or all(r["passed"] for r in rows if r["check"] == "forward"):
        return None
    fan = max(m.layer_input_size(k) for k in range(m.num_layers)) + m.output_size
    t64, t32 = (tolerances(d, T, m.num_layers, fan) for d in (np.float64, np.float32))
    scale = {c: t64[k]["rtol"] / t32[k]["rtol"] for c, k in (("forward", "forward"),
                                                             ("gradient", "gradient"))}
    if not all(r["ratio"] * scale[r["check"]] <= 1.0 for r in rows if not r["passed"]):
        return None
    worst = max(r["max_rel"] for r in rows)
    return (f"its float64 is not float64: every disagreement is the size of float32 round-off "
            f"(within float32 tolerances; largest relative difference {worst:.2g}), as if it "
            f"computes in float32 (its matmuls at least) and returns float64.")


def _placements(tgt, m, p, gmap, grads_t, g_o, x_t, state_t, dy_t, dstate_t, tol, lengths):
    """Where in time a gradient error enters (see placement.py): from dL/dx per step, and for the
    weights by auditing growing prefixes (a target that can be re-run, full-length sequences)."""
    out = []
    if grads_t.get("x") is not None:
        s = place_dx(m, grads_t["x"], g_o["x"], tol)
        if s:
            out.append(s)
    weights_bad = any(not compare(grads_t[n], w, **tol)["passed"]
                      for n, w in gmap.pullback(g_o).items() if grads_t.get(n) is not None)
    if weights_bad and tgt.vjp is not None and tgt.kind == "callable" and lengths is None:
        s = place_weights(tgt, m, p, gmap, x_t, state_t, dy_t, dstate_t, tol)
        if s:
            out.append(s)
    return out


def _check_x(model, x):
    if not hasattr(x, "ndim") or x.ndim != 3:
        got = f"rank {x.ndim}" if hasattr(x, "ndim") else type(x).__name__
        raise ShapeError(f"x must be a time-major rank-3 array (T, B, input_size), got {got}.")
    if x.shape[-1] != model.input_size:
        raise ShapeError(f"x has {x.shape[-1]} features, but the model's input_size is "
                         f"{model.input_size}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ShapeError(f"x must have at least one time step and one sequence, got shape {x.shape}.")


def _lengths(tgt, model, lengths, T, B, seed):
    """The (B,) int64 lengths of this audit, or None: the target's fixed ones, the caller's, or
    seeded ragged ones for a target that takes them by default."""
    if tgt.lengths is not None:
        fixed = model._check_lengths(np.asarray(tgt.lengths), T, B, np)
        if lengths is not None and not np.array_equal(np.asarray(lengths).ravel(), fixed):
            raise OptionError(f"the target fixes its sequence lengths to {fixed.tolist()}, but "
                              f"lengths={np.asarray(lengths).tolist()} was asked for.")
        return np.asarray(fixed, np.int64)
    if lengths is None and tgt.default_lengths == "ragged":
        rng = backend.rng(np.random.SeedSequence([seed, 11]).generate_state(1)[0])
        lengths = np.concatenate([[T, max(1, T // 2)], rng.integers(1, T + 1, max(B - 2, 0))])[:B]
    if lengths is None:
        return None
    if not tgt.takes_lengths:
        raise OptionError(f"the {tgt.kind} target {tgt.description} cannot take lengths= "
                          f"(a callable takes a `lengths` keyword, a torch layer module runs them as a "
                          f"PackedSequence, an ONNX graph needs a sequence_lens input).")
    return np.asarray(model._check_lengths(lengths, T, B, np), np.int64)


def _with_lengths(tgt, lengths):
    """The target with ``lengths`` bound into its forward and vjp."""
    fwd, vjp = tgt.forward, tgt.vjp
    return replace(tgt, forward=None if fwd is None else
                   (lambda t, x, s: fwd(t, x, s, lengths=lengths)),
                   vjp=None if vjp is None else
                   (lambda t, x, s, dy, ds: vjp(t, x, s, dy, ds, lengths=lengths)))
