"""TensorFlow 1.x LSTM cells: LSTMBlockCell, BasicLSTMCell and LSTMCell (tf.nn.rnn_cell).

All three keep one fused kernel over the concatenation [x, h] and one bias, gates in the order
i, c (BasicLSTMCell calls it j), f, o, and add ``forget_bias`` (default 1.0) to the forget gate's
pre-activation at run time:

    [i, c, f, o] = [x, h] @ kernel + bias          kernel (in + H_out, 4H), bias (4H,)
    c_t = sigma(f + forget_bias + w_f_diag * c) * c + sigma(i + w_i_diag * c) * tanh(c~)
    c_t = clip(c_t, -cell_clip, cell_clip)         (LSTMBlockCell, LSTMCell)
    h_t = sigma(o + w_o_diag * c_t) * tanh(c_t)    (@ projection/kernel (H, P) in LSTMCell)

The oracle keeps two biases, so load puts the kernel's bias in bias_ih and forget_bias in the
forget block of bias_hh (added separately, as TF does); dump writes bias_ih + bias_hh minus
forget_bias, which gives back the TF bias bit for bit.
"""
from __future__ import annotations

import numpy as np

from . import _common as C
from ..errors import OptionError

CELLS = ("lstm",)
OURS, THEIRS = "ifgo", "igfo"
CELL_TYPES = {  # what each TF cell can express
    "LSTMBlockCell": dict(allow=("peephole",), cell_clip=True, proj=False),
    "BasicLSTMCell": dict(allow=(), cell_clip=False, proj=False),
    "LSTMCell": dict(allow=("peephole",), cell_clip=True, proj=True),
}
_PEEP = {"i": "w_i_diag", "f": "w_f_diag", "o": "w_o_diag"}


def guess_cell(tensors: dict) -> str:
    return "lstm"


def _cell_type(cell_type):
    if cell_type is not None and cell_type not in CELL_TYPES:
        raise OptionError(f"unknown TF cell_type {cell_type!r}; choose one of {', '.join(CELL_TYPES)}.")
    return cell_type


def _forget_bias(v):
    """forget_bias as a finite float (a NaN one would reach every forget gate)."""
    if isinstance(v, (bool, np.bool_)):
        raise OptionError(f"tf option forget_bias must be a number, got {v!r}.")
    return C.option_number("forget_bias", v, float, "tf")


def _forget_vector(H, forget_bias, dtype):
    forget_bias = _forget_bias(forget_bias)
    v = np.zeros(4 * H, dtype)
    v[H:2 * H] = forget_bias  # the f block in the oracle's i, f, g, o order
    return v


def load(tensors: dict, cell=None, *, forget_bias=1.0, cell_type=None, dtype=None, strict=True,
         backend="numpy", **model_options):
    _cell_type(cell_type)
    L, bidir = C.structure(tensors, "tf")
    first = ("layer0/" if L > 1 else "") + ("forward/" if bidir else "")
    kernel = C.anchor(tensors, first + "kernel", 2, "tf")
    bias = C.anchor(tensors, first + "bias", 1, "tf")
    H = bias.shape[0] // 4
    proj = C.anchor(tensors, first + "projection/kernel", 2, "tf").shape[1] \
        if first + "projection/kernel" in tensors else 0
    opts = dict(model_options)
    if first + "w_i_diag" in tensors:
        opts["variant"] = "+".join(filter(None, [opts.get("variant"), "peephole"]))
    model = C.make_model("lstm", kernel.shape[0] - (proj or H), H, num_layers=L,
                         bidirectional=bidir, proj_size=proj,
                         dtype=C.tensor_dtype(tensors, dtype), backend=backend, **opts)
    t = C.check_tensors(tensors, dump(model, C.zeros_params(model), forget_bias=forget_bias,
                                      cell_type=cell_type), "tf", model, strict)
    params = {}
    for k, d, s in model.suffixes():
        pre = C.prefix(model, k, d)
        D = model.layer_input_size(k)
        w = C.reorder(t[pre + "kernel"], THEIRS, OURS, axis=1).T
        params["weight_ih" + s], params["weight_hh" + s] = w[:, :D], w[:, D:]
        params["bias_ih" + s] = C.reorder(t[pre + "bias"], THEIRS, OURS)
        params["bias_hh" + s] = _forget_vector(H, forget_bias, model.dtype)
        if model.flags.peephole:
            params["weight_peep" + s] = np.stack([t[pre + _PEEP[g]] for g in model.cell.peep_gates])
        if proj:
            params["weight_hr" + s] = t[pre + "projection/kernel"].T
    return model, C.finish(model, params)


def _check(model, cell_type):
    rules = CELL_TYPES[cell_type] if cell_type else CELL_TYPES["LSTMCell"]
    C.lstm_plain(model, f"tf {cell_type or 'LSTM'}", **rules)


def dump(model, params, *, forget_bias=1.0, cell_type=None, exact=False) -> dict:
    """TF variables for a cell that adds ``forget_bias`` at run time; ``exact`` refuses a
    bias that rounds when fused."""
    _check(model, _cell_type(cell_type))
    p = C.host_params(model, params)
    H = model.hidden_size
    fb = _forget_vector(H, forget_bias, model.dtype)
    out = {}
    for k, d, s, v in C.layer_views(model, p):
        pre = C.prefix(model, k, d)
        w = np.concatenate([v["weight_ih"], v["weight_hh"]], axis=1)     # (4H, in + H_out)
        out[pre + "kernel"] = C.reorder(w, OURS, THEIRS).T.copy()
        b_hh = C.fuse_bias(v["bias_hh"], -fb, "a tf cell with forget_bias", exact)
        out[pre + "bias"] = C.reorder(C.fuse_bias(v["bias_ih"], b_hh, "a tf cell", exact),
                                      OURS, THEIRS)
        if "weight_peep" in v:
            for g, row in zip(model.cell.peep_gates, v["weight_peep"]):
                out[pre + _PEEP[g]] = row.copy()
        if "weight_hr" in v:
            out[pre + "projection/kernel"] = v["weight_hr"].T.copy()
    return out


def options(model, *, forget_bias=1.0, cell_type=None, exact=False) -> dict:
    _check(model, _cell_type(cell_type))
    out = {"forget_bias": _forget_bias(forget_bias)}
    if cell_type:
        out["cell_type"] = cell_type
    if model.flags.cell_clip is not None:
        out["cell_clip"] = model.flags.cell_clip
    if model.batch_first:
        out["batch_first"] = True
    return out
