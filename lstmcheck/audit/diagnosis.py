"""Diagnoses of a forward disagreement: the layout mistake (gate order, swapped blocks or
directions, a transposed kernel, a bias offset, a direction running the wrong way) whose oracle
outputs reproduce the target's."""
from __future__ import annotations

import itertools

import numpy as np

from ..check.labels import GATE_NAMES, GATED as _GATED, gate_word as _gate  # noqa: F401
from .tolerances import compare


def diagnose_forward(model, params, x, state, y, final, tol, lengths=None) -> list:
    """Sentences naming the layout mistake whose oracle outputs reproduce the target's ``y`` and
    ``final`` state to the forward tolerance; tried in order of cost, the first match wins.
    ``lengths``: the audit's sequence lengths (every hypothesis runs with them, and one is that
    the target ignores them)."""
    y = np.asarray(y, np.float64)
    final = [None if a is None else np.asarray(a, np.float64) for a in final]

    def agrees(out, y_only=False):
        y_h, fin_h = out
        if not compare(y, y_h, **tol)["passed"]:
            return False
        return y_only or all(f is None or compare(f, h, **tol)["passed"] for f, h in zip(final, fin_h))

    for sentence, make, y_only in _hypotheses(model, params, x, state, lengths):
        if agrees(make(), y_only):
            return [sentence]
    for g, j in zip(model.gates, range(len(model.gates))):
        delta = _fit_bias_offset(model, params, x, state, y, final, j, lengths=lengths)
        if delta is not None and agrees(_stacked_forward(model, _offset_bias(model, params, j, delta),
                                                         x, state, lengths=lengths)):
            return [_offset_sentence(model, g, delta)]
    return []


def _hypotheses(model, params, x, state, lengths=None):
    """(sentence, () -> (y, final), compare y only) for every mistake tried, cheapest first."""
    run = (lambda p=params, flip=(): _stacked_forward(model, p, x, state, flip, lengths))
    L, Ho = model.num_layers, model.output_size
    T = np.shape(x)[0]
    if lengths is not None and np.any(np.asarray(lengths) != T):
        yield ("the target ignores lengths: it runs every sequence for all "
               f"{T} steps, as if the sequence lengths were not there.", lambda: _stacked_forward(model, params, x, state), False)
    if model.bidirectional:
        def swapped_halves():
            y_o, fin = run()
            swap = np.arange(2 * L).reshape(L, 2)[:, ::-1].ravel()
            return np.concatenate([y_o[..., Ho:], y_o[..., :Ho]], -1), tuple(a[swap] for a in fin)

        def unflipped_output():
            y_o, fin = run()
            return np.concatenate([y_o[..., :Ho], y_o[::-1, :, Ho:]], -1), fin

        yield ("the target puts the reverse direction's outputs and final states where the forward "
               "direction's belong (the two halves of y are swapped).", swapped_halves, False)
        yield ("the target uses the reverse direction's weights for the forward direction and the "
               "forward direction's for the reverse one.", lambda: run(_swap_directions(model, params)), False)
        yield ("the target's reverse direction runs forward in time: its input is not reversed.",
               lambda: run(flip={(k, 1) for k in range(L)}), False)
        yield ("the target's forward direction runs backwards in time.",
               lambda: run(flip={(k, 0) for k in range(L)}), False)
        if L == 1:
            yield ("the target leaves the reverse direction's output in processing order: y[t] of "
                   "the reverse direction is not flipped back to input time order.",
                   unflipped_output, True)
    else:
        yield ("the target runs the sequence backwards in time: its direction is reversed.",
               lambda: run(flip={(k, 0) for k in range(L)}), False)

    gates = model.gates
    G, H = len(gates), model.hidden_size
    if G > 1:
        scopes = ((_GATED, "every weight and bias"), (("weight_ih",), "weight_ih only"),
                  (("weight_hh",), "weight_hh only"), (("bias_ih", "bias_hh"), "the biases only"))
        for a, b in itertools.combinations(range(G), 2):
            perm = list(range(G))
            perm[a], perm[b] = b, a
            for scope, where in scopes:
                yield (f"the target reads gate blocks {_gate(gates[a])} and {_gate(gates[b])} in the "
                       f"other order: its outputs match the oracle's with those blocks swapped in "
                       f"{where}.", (lambda perm=perm, scope=scope:
                                     run(_permute_gates(model, params, perm, scope))), False)
        for perm in itertools.permutations(range(G)):
            if sum(i != j for i, j in enumerate(perm)) > 2:
                order = ",".join(gates[j] for j in perm)
                yield (f"the target takes its gate blocks as {order} where the layout stacks them "
                       f"{','.join(gates)}: its outputs match the oracle's with the blocks so "
                       f"permuted.", (lambda perm=perm: run(_permute_gates(model, params, perm, _GATED))),
                       False)

    for base, what in (("weight_hh", "recurrent kernel"), ("weight_ih", "input kernel")):
        for sentence, fn in _transposes(model, base, what):
            yield sentence, (lambda fn=fn, base=base: run(_map_tensors(model, params, base, fn))), False

    for base in ("bias_hh", "bias_ih"):
        yield (f"the target ignores {base} (its outputs match the oracle's with {base} set to zero).",
               lambda base=base: run(_map_tensors(model, params, base, np.zeros_like)), False)

    for j, name in enumerate(("h0", "c0")[:len(state)]):
        if np.any(np.asarray(state[j]) != 0):
            zeroed = tuple(np.zeros_like(s) if i == j else s for i, s in enumerate(state))
            yield (f"the target ignores {name}: its outputs match the oracle's started from "
                   f"{name} = 0.", (lambda zeroed=zeroed: _stacked_forward(model, params, x, zeroed,
                                                                           lengths=lengths)), False)

    for option, value, other in _other_declarations(model, params):
        yield (f"the target computes {option}={value!r}, not the declared {option}="
               f"{model.config()[option]!r}: its outputs match the oracle's {other.describe()} "
               f"(declare it with {option}= or --{option.replace('_', '-')}).",
               (lambda other=other: _stacked_forward(other, params, x, state, lengths=lengths)), False)


def _other_declarations(model, params):
    """(option, value, model) for each other value of the cell's ``alternatives`` (variant,
    reset_after, nonlinearity, ...) that runs on the same parameters (a variant that needs other
    tensors, such as peepholes, is skipped)."""
    from ..errors import LstmcheckError
    from ..models.registry import build
    cfg = model.config()
    keep = {k: v for k, v in cfg.items() if k not in ("cell", "input_size", "hidden_size",
                                                     "bidirectional", "backend", "dtype")}
    for option, values in getattr(type(model.cell), "alternatives", {}).items():
        for v in values if option in cfg else ():
            if v == cfg[option]:
                continue
            try:
                other = build(cfg["cell"], cfg["input_size"], cfg["hidden_size"],
                              **{**keep, option: v})
                other._check_params(params, np)
            except (LstmcheckError, TypeError, ValueError):
                continue
            yield option, v, other


def _transposes(model, base, what):
    """(sentence, tensor map) for the transpose mistakes a kernel of this shape allows."""
    H, G = model.hidden_size, len(model.gates)
    shapes = {s for n, s in model.param_shapes().items() if n.startswith(base + "_l")}
    if all(s[1] == H for s in shapes) and G > 1:
        yield (f"the target uses every gate block of the {what} ({base}) transposed.",
               lambda W: np.concatenate([b.T for b in np.split(W, G)]))
    if all(s[0] == s[1] for s in shapes):
        yield f"the target uses the {what} ({base}) transposed.", lambda W: W.T.copy()
    yield (f"the target reads the {what} ({base}) with its axes swapped: its memory is read in the "
           f"transposed shape (a row-major/column-major mix-up).",
           lambda W: np.ascontiguousarray(W.T).reshape(W.shape))
    yield (f"the target reads the {what} ({base}) with its axes swapped: its memory is read in the "
           f"transposed shape and then transposed.", lambda W: W.reshape(W.shape[::-1]).T.copy())


def _map_tensors(model, params, base, fn):
    return {n: (fn(a) if n.startswith(base + "_l") else a) for n, a in params.items()}


def _permute_gates(model, params, perm, scope):
    """Oracle gate j takes the target's block perm[j], in the tensors of ``scope``."""
    out = dict(params)
    for n, a in params.items():
        if n.split("_l")[0] in scope:
            blocks = np.split(a, len(perm))
            out[n] = np.concatenate([blocks[j] for j in perm])
    return out


def _swap_directions(model, params):
    out = {}
    for n, a in params.items():
        other = n[: -len("_reverse")] if n.endswith("_reverse") else n + "_reverse"
        out[other] = a
    return out


def _offset_bias(model, params, j, delta):
    H = model.hidden_size
    out = dict(params)
    for n, a in params.items():
        if n.startswith("bias_ih_l"):
            b = a.copy()
            b[j * H:(j + 1) * H] += delta
            out[n] = b
    return out


def _fit_bias_offset(model, params, x, state, y, final, j, iters=12, lengths=None):
    """Gauss-Newton for the constant offset on gate j's bias that best reproduces the target
    (zero residual when that is the mistake, so it converges fast); None when it goes nowhere."""
    def resid(delta):
        y_h, fin_h = _stacked_forward(model, _offset_bias(model, params, j, delta), x, state,
                                      lengths=lengths)
        parts = [(y_h - y).ravel()] + [(h - f).ravel() for f, h in zip(final, fin_h) if f is not None]
        return np.concatenate(parts)

    delta, r = 0.0, resid(0.0)
    for _ in range(iters):
        h = 1e-6 * max(1.0, abs(delta))
        J = (resid(delta + h) - resid(delta - h)) / (2 * h)
        jj = float(J @ J)
        if not np.isfinite(jj) or jj == 0.0:
            return None
        step = float(J @ r) / jj
        delta -= step
        if not np.isfinite(delta) or abs(delta) > 1e3:
            return None
        r = resid(delta)
        if abs(step) <= 1e-14 * max(1.0, abs(delta)):
            break
    return delta


def _offset_sentence(model, g, delta):
    amount = f"{abs(delta):.6g}"
    if model.kind == "lstm" and g == "f":
        if delta < 0:
            return (f"the target's forget (f) gate bias is {amount} lower than the oracle's: a "
                    f"forget_bias of {amount} is missing (not added to the forget gate).")
        return (f"the target's forget (f) gate bias is {amount} higher than the oracle's: a "
                f"forget_bias of {amount} is added that the weights already hold (added twice).")
    return (f"the target's {_gate(g)} gate bias is offset by {delta:+.6g} from the oracle's "
            f"(a constant added to or left out of that gate's bias).")


def _stacked_forward(model, params, x, state, flip=(), lengths=None):
    """The oracle's forward (y, final state tuple) with the time direction of the layer-directions
    in ``flip`` (set of (layer, direction index)) reversed: the mistake of a direction that runs
    the wrong way."""
    from ..models import runner
    y, final, _ = runner.stack_forward(model, params, np.asarray(x, np.float64),
                                       tuple(np.asarray(s, np.float64) for s in state),
                                       lengths=lengths, flip=flip)
    return y, final
