"""cuDNN: one matrix and one bias per gate and linear layer, numbered as cuDNN's linLayerID
(cudnnGetRNNWeightParams, CUDNN_RNN_DOUBLE_BIAS):

    LSTM  0-3: W for gates i, f, c, o;  4-7: R for i, f, c, o;  8: recurrent projection (no bias)
    GRU   0-2: W for gates r, z, h;     3-5: R for r, z, h       (h~ = tanh(W x + b_W + r * (R h + b_R)))
    RNN   0: W;  1: R                    (tanh or relu)

Names: ``{prefix}lin{id}/weight`` (H, in) or (H, H_out), ``{prefix}lin{id}/bias`` (H,), with the
'layer{k}/' and 'forward/'/'backward/' prefixes of cuDNN's pseudo-layers.
"""
from __future__ import annotations

import numpy as np

from . import _common as C
from ..errors import ConversionError, ParameterError

CELLS = ("lstm", "gru", "rnn")
_GATES = {"lstm": "ifgo", "gru": "rzn", "rnn": "h"}   # cuDNN's order is PyTorch's
_PROJ_ID = 8


def guess_cell(tensors: dict) -> str:
    ids = {int(str(n).rsplit("lin", 1)[-1].split("/")[0]) for n in tensors
           if "lin" in str(n) and str(n).endswith("/weight")}
    n = len(ids - {_PROJ_ID})
    if n not in (8, 6, 2):
        raise ParameterError(f"cudnn tensors hold {n} linear layers per pseudo-layer; an LSTM has "
                             f"8, a GRU 6, an RNN 2.")
    return {8: "lstm", 6: "gru", 2: "rnn"}[n]


def load(tensors: dict, cell=None, *, dtype=None, strict=True, backend="numpy", **model_options):
    cell = (cell or guess_cell(tensors)).lower()
    G = len(_GATES[cell])
    L, bidir = C.structure(tensors, "cudnn")
    first = ("layer0/" if L > 1 else "") + ("forward/" if bidir else "")
    w0 = C.anchor(tensors, first + "lin0/weight", 2, "cudnn")
    opts = dict(model_options)
    if cell == "lstm":
        proj = first + f"lin{_PROJ_ID}/weight"
        opts["proj_size"] = C.anchor(tensors, proj, 2, "cudnn").shape[0] if proj in tensors else 0
    model = C.make_model(cell, w0.shape[1], w0.shape[0], num_layers=L, bidirectional=bidir,
                         dtype=C.tensor_dtype(tensors, dtype), backend=backend, **opts)
    t = C.check_tensors(tensors, dump(model, C.zeros_params(model)), "cudnn", model, strict)
    params = {}
    for k, d, s in model.suffixes():
        pre = C.prefix(model, k, d)
        for j, (w, b) in enumerate((("weight_ih", "bias_ih"), ("weight_hh", "bias_hh"))):
            ids = range(j * G, (j + 1) * G)
            params[w + s] = np.concatenate([t[f"{pre}lin{i}/weight"] for i in ids])
            params[b + s] = np.concatenate([t[f"{pre}lin{i}/bias"] for i in ids])
        if C.cell_of(model) == "lstm" and model.proj_size:
            params["weight_hr" + s] = t[f"{pre}lin{_PROJ_ID}/weight"]
    return model, C.finish(model, params)


def _check(model):
    C.lstm_plain(model, "cudnn", allow=(), proj=True)
    if C.cell_of(model) == "gru" and not model.reset_after:
        raise ConversionError("cuDNN's GRU applies the reset gate after the recurrent product "
                              "(reset_after=True); a reset_after=False GRU cannot be converted.")
    if C.cell_of(model) == "rnn" and model.nonlinearity not in ("tanh", "relu"):
        raise ConversionError(f"cuDNN's RNN is tanh or relu, not {model.nonlinearity}.")


def dump(model, params) -> dict:
    _check(model)
    p = C.host_params(model, params)
    G = len(_GATES[C.cell_of(model)])
    out = {}
    for k, d, s, v in C.layer_views(model, p):
        pre = C.prefix(model, k, d)
        for j, (w, b) in enumerate((("weight_ih", "bias_ih"), ("weight_hh", "bias_hh"))):
            for g, (wg, bg) in enumerate(zip(np.split(v[w], G), np.split(v[b], G))):
                out[f"{pre}lin{j * G + g}/weight"] = wg.copy()
                out[f"{pre}lin{j * G + g}/bias"] = bg.copy()
        if "weight_hr" in v:
            out[f"{pre}lin{_PROJ_ID}/weight"] = v["weight_hr"].copy()
    return out


def options(model) -> dict:
    _check(model)
    out = {"nonlinearity": model.nonlinearity} if C.cell_of(model) == "rnn" else {}
    if model.batch_first:
        out["batch_first"] = True
    return out
