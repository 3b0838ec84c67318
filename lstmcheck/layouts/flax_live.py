"""Flax (linen) recurrent cells and their parameters, read into the oracle.

    model, params = from_flax(module, variables)   # LSTMCell, OptimizedLSTMCell, GRUCell,
                                                   # SimpleCell, or nn.RNN around one

Flax's conventions (flax/linen/recurrent.py):

    LSTMCell / OptimizedLSTMCell  (the same parameter names)
        i = gate(x ii + h hi + b_hi),  f, g = act(x ig + h hg + b_hg), o  likewise
        c' = f c + i g,  h' = o act(c');  carry (c, h);  ii.. have no bias
    GRUCell
        r = gate(x ir + b_ir + h hr),  z = gate(x iz + b_iz + h hz)
        n = act(x in + b_in + r (h hn + b_hn)),  h' = (1 - z) n + z h       (PyTorch's GRU)
    SimpleCell   h' = act(x i + b_i + h h)

Kernels are (in, out) and multiply from the right, so W = kernel^T; the input-side biases the
oracle has and Flax lacks load as zeros. ``nn.RNN(cell, reverse=True)`` is direction="reverse"
(with ``keep_order=False`` Flax returns its outputs in reversed order; the audit target flips
them back). ``seq_lengths`` are the oracle's ``lengths``.
"""
from __future__ import annotations

import numpy as np

from . import _common as C
from ..errors import ConversionError, OptionError, ParameterError

CELLS = {"LSTMCell": "lstm", "OptimizedLSTMCell": "lstm", "GRUCell": "gru", "SimpleCell": "rnn"}
GATES = {"lstm": "ifgo", "gru": "rzn", "rnn": ""}
# jax.nn / jnp function names -> the oracle's activation specs (jax.nn's own defaults)
_ACTS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "relu6": "relu6",
         "hard_sigmoid": f"hard_sigmoid({1 / 6!r}, 0.5)", "soft_sign": "softsign",
         "softplus": "softplus", "elu": "elu(1.0)", "selu": "selu", "celu": "celu(1.0)",
         "log_sigmoid": "log_sigmoid", "hard_tanh": "hard_tanh", "leaky_relu": "leaky_relu(0.01)",
         "sparse_plus": "sparse_plus", "sparse_sigmoid": "sparse_sigmoid",
         "squareplus": "squareplus(4.0)", "identity": "identity"}


def unwrap(module):
    """(cell module, cell kind, reverse, keep_order) of a linen cell or nn.RNN around one."""
    reverse = keep_order = False
    if type(module).__name__ == "RNN" and hasattr(module, "cell"):
        if getattr(module, "time_major", False):
            raise OptionError("pass an nn.RNN with time_major=False (Flax's default); the audit "
                              "feeds it batch-major inputs.")
        reverse, keep_order = bool(module.reverse), bool(module.keep_order)
        module = module.cell
    name = type(module).__name__
    if name not in CELLS or not type(module).__module__.startswith("flax"):
        raise OptionError(f"from_flax reads flax.linen {', '.join(CELLS)} (or nn.RNN around "
                          f"one), not {name}.")
    if name == "SimpleCell" and getattr(module, "residual", False):
        raise ConversionError("a SimpleCell with residual=True adds h to its pre-activation, "
                              "which the oracle's RNN does not.")
    return module, CELLS[name], reverse, keep_order


def activation(fn, what):
    name = getattr(fn, "__name__", repr(fn))
    if name not in _ACTS:
        raise ConversionError(f"the Flax cell's {what} {name!r} has no counterpart in the "
                              f"oracle; use one of {', '.join(_ACTS)}.")
    return _ACTS[name]


def _cell_params(variables):
    p = variables.get("params", variables) if isinstance(variables, dict) else None
    if not isinstance(p, dict):
        raise ParameterError("variables must be the dict module.init returns ({'params': ...}).")
    return p.get("cell", p)        # nn.RNN nests the cell's parameters under 'cell'


def _get(p, name, key):
    try:
        return np.asarray(p[name][key])
    except (KeyError, TypeError):
        raise ParameterError(f"the Flax parameters have no {name}/{key} (found: "
                             f"{', '.join(sorted(p))}).") from None


def from_flax(module, variables, *, dtype=None, backend="numpy"):
    """(model, params) of a flax.linen recurrent cell (or nn.RNN around one) and its variables."""
    from ..models.registry import build
    cell, kind, reverse, _ = unwrap(module)
    p = _cell_params(variables)
    acts = {}
    if kind == "lstm":
        g, a = activation(cell.gate_fn, "gate_fn"), activation(cell.activation_fn, "activation_fn")
        if (g, a) != ("sigmoid", "tanh"):
            acts["activations"] = (g, a, a)
    elif kind == "gru":
        g, a = activation(cell.gate_fn, "gate_fn"), activation(cell.activation_fn, "activation_fn")
        if (g, a) != ("sigmoid", "tanh"):
            raise ConversionError(f"the oracle's GRU uses sigmoid gates and a tanh candidate, not "
                                  f"{g} and {a}.")
    else:
        a = activation(cell.activation_fn, "activation_fn")
        if a not in ("tanh", "relu", "identity"):
            raise ConversionError(f"the oracle's RNN runs tanh, relu or identity, not {a}.")
        acts["nonlinearity"] = a
    if kind == "rnn":
        w_ih, w_hh = _get(p, "i", "kernel").T, _get(p, "h", "kernel").T
        b_ih, b_hh = _get(p, "i", "bias"), np.zeros(w_hh.shape[0], w_hh.dtype)
    else:
        gates = GATES[kind]
        w_ih = np.concatenate([_get(p, "i" + g, "kernel").T for g in gates])
        w_hh = np.concatenate([_get(p, "h" + g, "kernel").T for g in gates])
        H = w_hh.shape[1]
        zero = np.zeros(H, w_hh.dtype)
        if kind == "lstm":          # one bias per gate, on the hidden side
            b_ih = np.zeros(4 * H, w_hh.dtype)
            b_hh = np.concatenate([_get(p, "h" + g, "bias") for g in gates])
        else:                       # input biases for r, z, n; the hidden side only for n
            b_ih = np.concatenate([_get(p, "i" + g, "bias") for g in gates])
            b_hh = np.concatenate([zero, zero, _get(p, "hn", "bias")])
    dt = dtype or np.result_type(w_ih.dtype, w_hh.dtype).name
    model = build(kind, w_ih.shape[1], w_hh.shape[1], direction="reverse" if reverse else "forward",
                  dtype=dt, backend=backend, **acts)
    s = "_l0_reverse" if reverse else "_l0"
    params = {"weight_ih" + s: w_ih, "weight_hh" + s: w_hh, "bias_ih" + s: b_ih,
              "bias_hh" + s: b_hh}
    model._check_params({n: np.asarray(a, dt) for n, a in params.items()}, np)
    return model, C.finish(model, params)


def flax_tree(kind, w_ih, w_hh, b_ih, b_hh, xp):
    """The Flax cell's parameter tree from canonical tensors (any array module, e.g. jax.numpy):
    the inverse of from_flax, with the biases Flax lacks folded into the ones it has."""
    H = w_hh.shape[1]
    if kind == "rnn":
        return {"i": {"kernel": w_ih.T, "bias": b_ih + b_hh}, "h": {"kernel": w_hh.T}}
    tree = {}
    for j, g in enumerate(GATES[kind]):
        blk = slice(j * H, (j + 1) * H)
        tree["i" + g] = {"kernel": w_ih[blk].T}
        tree["h" + g] = {"kernel": w_hh[blk].T}
        if kind == "lstm":
            tree["h" + g]["bias"] = b_ih[blk] + b_hh[blk]
        elif g == "n":
            tree["in"]["bias"], tree["hn"]["bias"] = b_ih[blk], b_hh[blk]
        else:
            tree["i" + g]["bias"] = b_ih[blk] + b_hh[blk]
    return tree
