"""Keras (tf.keras / Keras 3) LSTM, GRU and SimpleRNN weights.

    kernel (in, G*U) = W_ih^T,  recurrent_kernel (U, G*U) = W_hh^T,  bias
    LSTM  gates i, f, c, o  (PyTorch's order), bias (4U,) = b_ih + b_hh
          PeepholeLSTMCell: input/forget/output_gate_peephole_weights (U,)
    GRU   gates z, r, h; reset_after=True: bias (2, 3U) = [input bias; recurrent bias]
          (h~ = tanh(x W_h + b_h + r * (h U_h + b_rh)), PyTorch's GRU);
          reset_after=False: bias (3U,) (h~ = tanh(x W_h + (r * h) U_h + b_h), Cho et al.)
    SimpleRNN  bias (U,) = b_ih + b_hh

Options: ``activation`` (LSTM cell input and output, SimpleRNN), ``recurrent_activation`` (LSTM
gates), ``reset_after`` (GRU; read from the bias shape), Keras 3 names with Keras 3's definitions
('linear' is identity; 'hard_sigmoid' is relu6(x + 3) / 6, not Keras 2's 0.2 x + 0.5; 'leaky_relu'
has slope 0.2). Live Keras 3 layers: keras_live.from_keras.
"""
from __future__ import annotations

import numpy as np

from . import _common as C
from ..models import activations as A
from ..errors import ConversionError, ShapeError

CELLS = ("lstm", "gru", "rnn")
_ORDER = {"lstm": ("ifgo", "ifgo"), "gru": ("rzn", "zrn"), "rnn": ("h", "h")}  # (ours, keras)
_PEEP = {"i": "input_gate_peephole_weights", "f": "forget_gate_peephole_weights",
         "o": "output_gate_peephole_weights"}


# Keras 3's elementwise activations (keras/src/activations/activations.py, defaults included) as
# the oracle's activation specs
KERAS3_ACTIVATIONS = {
    "sigmoid": "sigmoid", "tanh": "tanh", "linear": "identity", "relu": "relu",
    "relu6": "relu6", "leaky_relu": "leaky_relu(0.2)", "elu": "elu(1.0)", "selu": "selu",
    "celu": "celu(1.0)", "softplus": "softplus", "softsign": "softsign",
    "exponential": "exponential", "hard_sigmoid": f"hard_sigmoid({1 / 6!r}, 0.5)",
    "hard_tanh": "hard_tanh", "log_sigmoid": "log_sigmoid", "soft_shrink": "soft_shrink(0.5)",
    "hard_shrink": "hard_shrink(0.5)", "sparse_plus": "sparse_plus",
    "sparse_sigmoid": "sparse_sigmoid", "squareplus": "squareplus(4.0)",
}
# the rest of Keras 3's activations, and why the oracle cannot run them
_NOT_EXPRESSIBLE = dict.fromkeys(
    ("silu", "swish", "gelu", "mish", "hard_silu", "hard_swish", "tanh_shrink"),
    "its derivative is not a function of its output, which is all the oracle's tape keeps")
_NOT_EXPRESSIBLE.update(dict.fromkeys(("softmax", "log_softmax", "glu", "sparsemax"),
                                      "it is not elementwise"))
_NOT_EXPRESSIBLE["threshold"] = "it needs arguments Keras cannot take from a name"


def _to_ours(name):
    """A Keras 3 activation name -> the oracle's spec (one sentence for the ones it lacks)."""
    key = str(getattr(name, "__name__", name)).lower()
    if key in KERAS3_ACTIVATIONS:
        return KERAS3_ACTIVATIONS[key]
    why = _NOT_EXPRESSIBLE.get(key, "it is not one of Keras 3's activations")
    raise ConversionError(f"keras activation {key!r} cannot be converted: {why}.")


def _to_keras(spec):
    """The oracle's activation spec -> the Keras 3 name computing the same function."""
    act = A.get(spec)
    for name, ours in KERAS3_ACTIVATIONS.items():
        if A.get(ours) == act:
            return name
    raise ConversionError(f"activation {spec!r} has no Keras 3 equivalent (Keras 3's "
                          f"hard_sigmoid is hard_sigmoid({1 / 6!r}, 0.5), its leaky_relu has "
                          f"slope 0.2).")


def guess_cell(tensors: dict) -> str:
    name = next((n for n in tensors if str(n).endswith("recurrent_kernel")), "recurrent_kernel")
    rk = C.anchor(tensors, name, 2, "keras")
    G, rem = divmod(rk.shape[1], max(rk.shape[0], 1))
    if rem or G not in (4, 3, 1):
        raise ShapeError(f"keras recurrent_kernel of shape {rk.shape} is not (U, G*U) for G = "
                         f"4 (LSTM), 3 (GRU) or 1 (SimpleRNN).")
    return {4: "lstm", 3: "gru", 1: "rnn"}[G]


def load(tensors: dict, cell=None, *, activation=None, recurrent_activation=None,
         reset_after=None, dtype=None, strict=True, backend="numpy", **model_options):
    cell = (cell or guess_cell(tensors)).lower()
    L, bidir = C.structure(tensors, "keras")
    first = "layer0/" if L > 1 else ""
    first += "forward/" if bidir else ""
    kernel = C.anchor(tensors, first + "kernel", 2, "keras")
    rk = C.anchor(tensors, first + "recurrent_kernel", 2, "keras")
    opts = dict(model_options)
    if cell == "lstm":
        acts = (_to_ours(recurrent_activation or "sigmoid"), _to_ours(activation or "tanh"),
                _to_ours(activation or "tanh"))
        if acts != ("sigmoid", "tanh", "tanh"):
            opts["activations"] = acts
        if first + _PEEP["i"] in tensors:
            opts["variant"] = "+".join(filter(None, [opts.get("variant"), "peephole"]))
    elif cell == "gru":
        if (activation or "tanh") != "tanh" or (recurrent_activation or "sigmoid") != "sigmoid":
            raise ConversionError("the oracle's GRU uses sigmoid gates and a tanh candidate; "
                                  "other keras activations cannot be converted.")
        bias = tensors.get(first + "bias")
        shape_says = None if bias is None else np.ndim(bias) == 2
        if reset_after is not None and shape_says is not None and bool(reset_after) != shape_says:
            raise ShapeError(f"keras GRU bias of shape {np.shape(bias)} contradicts "
                             f"reset_after={reset_after} (expected {'(2, 3U)' if reset_after else '(3U,)'}).")
        # the bias shape decides; without a bias, the option or keras' default (True)
        opts["reset_after"] = next(v for v in (shape_says, reset_after, True) if v is not None)
    else:
        act = _to_ours(activation or "tanh")
        if act not in ("tanh", "relu", "identity"):
            raise ConversionError(f"the oracle's RNN (PyTorch's) runs tanh, relu or identity, so "
                                  f"a keras SimpleRNN with activation {activation!r} cannot be "
                                  f"converted.")
        opts.setdefault("nonlinearity", act)
    model = C.make_model(cell, kernel.shape[0], rk.shape[0], num_layers=L, bidirectional=bidir,
                         dtype=C.tensor_dtype(tensors, dtype), backend=backend, **opts)
    if not any(str(n).endswith("bias") for n in tensors):   # use_bias=False
        tensors = {**tensors, **{n: np.zeros_like(a) for n, a in _expected(model).items()
                                 if n.endswith("bias")}}
    t = C.check_tensors(tensors, _expected(model), "keras", model, strict)
    ours, theirs = _ORDER[cell]
    params = {}
    for k, d, s in model.suffixes():
        pre = C.prefix(model, k, d)
        params["weight_ih" + s] = C.reorder(t[pre + "kernel"], theirs, ours, axis=1).T
        params["weight_hh" + s] = C.reorder(t[pre + "recurrent_kernel"], theirs, ours, axis=1).T
        b = t[pre + "bias"]
        if b.ndim == 2:
            params["bias_ih" + s] = C.reorder(b[0], theirs, ours)
            params["bias_hh" + s] = C.reorder(b[1], theirs, ours)
        else:
            params["bias_ih" + s] = C.reorder(b, theirs, ours)
            params["bias_hh" + s] = np.zeros_like(b)
        if "weight_peep" + s in model.param_shapes():
            params["weight_peep" + s] = np.stack([t[pre + _PEEP[g]] for g in model.cell.peep_gates])
    return model, C.finish(model, params)


def _expected(model):
    return dump(model, C.zeros_params(model))


def _check(model, reset_after):
    C.lstm_plain(model, "keras", allow=("peephole",), activations=True)
    if C.cell_of(model) == "lstm":
        _to_keras(model.flags.act_f), _to_keras(model.flags.act_g)   # refuse what Keras lacks
    elif C.cell_of(model) == "rnn":
        _to_keras(model.nonlinearity)
    if C.cell_of(model) == "lstm" and A.get(model.flags.act_g) != A.get(model.flags.act_h):
        raise ConversionError(f"keras LSTM applies one `activation` to the cell input and the "
                              f"output, but this model uses {model.flags.act_g} and "
                              f"{model.flags.act_h}.")
    if C.cell_of(model) == "gru" and reset_after is not None and bool(reset_after) != model.reset_after:
        raise ConversionError(f"a GRU with reset_after={model.reset_after} computes a different "
                              f"function from keras GRU(reset_after={bool(reset_after)}); no "
                              f"weights make them equal.")


def dump(model, params, *, reset_after=None, exact=False) -> dict:
    """Keras weights; ``reset_after`` (GRU) must match the model's; ``exact`` refuses a fused
    bias b_ih + b_hh that rounds."""
    _check(model, reset_after)
    p = C.host_params(model, params)
    ours, theirs = _ORDER[C.cell_of(model)]
    out = {}
    for k, d, s, v in C.layer_views(model, p):
        pre = C.prefix(model, k, d)
        out[pre + "kernel"] = C.reorder(v["weight_ih"], ours, theirs).T.copy()
        out[pre + "recurrent_kernel"] = C.reorder(v["weight_hh"], ours, theirs).T.copy()
        if C.cell_of(model) == "gru" and model.reset_after:
            out[pre + "bias"] = np.stack([C.reorder(v["bias_ih"], ours, theirs),
                                          C.reorder(v["bias_hh"], ours, theirs)])
        else:
            fused = C.fuse_bias(v["bias_ih"], v["bias_hh"], "keras " + C.cell_of(model).upper(), exact)
            out[pre + "bias"] = C.reorder(fused, ours, theirs)
        if "weight_peep" in v:
            for g, row in zip(model.cell.peep_gates, v["weight_peep"]):
                out[pre + _PEEP[g]] = row.copy()
    return out


def options(model, *, reset_after=None, exact=False) -> dict:
    _check(model, reset_after)
    out = {}
    if C.cell_of(model) == "lstm":
        f = model.flags
        if A.get(f.act_f) != A.get("sigmoid"):
            out["recurrent_activation"] = _to_keras(f.act_f)
        if A.get(f.act_g) != A.get("tanh"):
            out["activation"] = _to_keras(f.act_g)
    elif C.cell_of(model) == "gru":
        out["reset_after"] = model.reset_after
    else:
        out["activation"] = _to_keras(model.nonlinearity)
    if model.batch_first:
        out["batch_first"] = True
    return out
