"""An ONNX graph with LSTM/GRU/RNN nodes, run in onnxruntime (forward only)."""
from __future__ import annotations

import os

import numpy as np

from ... import backend
from ...errors import ConversionError, FileFormatError, require
from ..oracle import float64_model
from .base import Target


_ONNX_OPS = ("LSTM", "GRU", "RNN")
_ONNX_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


def _onnx_target(source, layout_options):
    """Run a whole ONNX graph in onnxruntime. Its inputs: X (T, B, in) and, where the graph takes
    them, initial_h / initial_c and sequence_lens; its outputs: Y as the oracle's (T, B, dirs*H)
    or the raw operator's [T, dirs, B, H], and Y_h / Y_c. A direction='reverse' node is the
    oracle's direction='reverse' model. ``sequence_lens`` is the oracle's ``lengths=``: an
    initializer (or Constant) fixes them (``Target.lengths``); a graph input is fed the lengths
    the audit chooses (ragged by default, ``Target.default_lengths``)."""
    onnx = require("onnx", "onnx", "auditing an ONNX model")
    ort = require("onnxruntime", "onnx", "auditing an ONNX model in onnxruntime")
    from onnx import numpy_helper
    from ... import io
    from ...layouts import onnx as onnx_layout
    if isinstance(source, (str, os.PathLike)):
        name = os.path.basename(os.fspath(source))
        model, params = io.load_file(source, **dict(layout_options or {}))
        proto = io._read_onnx_proto(os.fspath(source))
    else:
        name, proto = "ONNX model", source
        model, params = onnx_layout.from_onnx(proto, where="the ONNX model", **dict(layout_options or {}))
    graph = proto.graph
    nodes = [n for n in graph.node if n.op_type in _ONNX_OPS]
    first, last = nodes[0], nodes[-1]
    roles = dict(zip(_ONNX_INPUTS, first.input))
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in first.attribute}
    batch_major = attrs.get("layout", 0) == 1
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    feeds = [i for i in graph.input if i.name not in inits]
    consts = dict(inits)
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    lens_src = {(n.input[4] if len(n.input) > 4 else "") for n in nodes}
    if len(lens_src) > 1:
        raise ConversionError(f"the {first.op_type} nodes of {name} take different sequence_lens "
                              f"({', '.join(repr(v or '(none)') for v in sorted(lens_src))}); the "
                              f"oracle's layers share one set of lengths.")
    lens_src = lens_src.pop()
    fixed_lengths = None
    if lens_src and lens_src in consts:
        fixed_lengths = np.asarray(consts[lens_src]).astype(np.int64).ravel()
    elif lens_src and lens_src not in {i.name for i in feeds}:
        raise FileFormatError(f"{name}: the {first.op_type} node takes sequence_lens from the "
                              f"computed value {lens_src!r}, neither an initializer nor a graph "
                              f"input, so the audit cannot know the lengths.")
    n_state = len(model.state_shapes(1))
    state_names = ("initial_h", "initial_c")[:n_state]
    role_of = {}
    for i in feeds:
        if i.name in (roles["X"], "X"):
            role_of[i.name] = "X"
        elif i.name in state_names or i.name in (roles.get(k) for k in state_names):
            role_of[i.name] = next(k for k in state_names if i.name in (k, roles.get(k)))
        elif i.name == roles.get("sequence_lens"):
            role_of[i.name] = "sequence_lens"
        else:
            raise FileFormatError(f"{name} takes graph input {i.name!r}, which is none of X, "
                                  f"initial_h, initial_c, sequence_lens; the audit cannot feed it.")
    if "X" not in role_of.values():
        raise FileFormatError(f"{name}: the {first.op_type} node's input X is not a graph input, "
                              f"so the audit cannot feed it.")
    x_name = next(k for k, v in role_of.items() if v == "X")
    x_type = next(i for i in feeds if i.name == x_name).type.tensor_type.elem_type
    dtype = backend.resolve_dtype(onnx.helper.tensor_dtype_to_np_dtype(x_type))
    out_role = {}
    for o in graph.output:
        for j, role in enumerate(("y", "h", "c")):
            if o.name == (last.output[j] if j < len(last.output) else None) or o.name == ("Y", "Y_h", "Y_c")[j]:
                out_role[o.name] = role
    if "y" not in out_role.values():
        raise FileFormatError(f"{name} has no graph output Y of its last {last.op_type} node.")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    bm = (lambda a, r=3: a.swapaxes(0, 1) if batch_major and a.ndim == r else a)

    def forward(_tensors, x, state, lengths=None):
        T, B = x.shape[:2]
        feed = {}
        for n, role in role_of.items():
            if role == "X":
                feed[n] = np.ascontiguousarray(bm(x), dtype)
            elif role == "sequence_lens":
                feed[n] = (np.full(B, T, np.int32) if lengths is None
                           else np.asarray(lengths).astype(np.int32))
            else:
                feed[n] = np.ascontiguousarray(bm(state[state_names.index(role)]), dtype)
        got = dict(zip(out_role, session.run(list(out_role), feed)))
        y, fin = None, [None] * n_state
        for n, v in got.items():
            role = out_role[n]
            if role == "y":
                if v.ndim == 4:        # raw operator output [T, dirs, B, H] (layout=1: [B, T, dirs, H])
                    v = v.swapaxes(0, 1) if batch_major else v
                    v = v.transpose(0, 2, 1, 3).reshape(T, B, -1)
                y = v
            elif "hc".index(role) < n_state:
                fin["hc".index(role)] = bm(v)
        return y, tuple(fin)

    rule = tuple(None if k in role_of.values() else inits.get(roles.get(k), "zeros")
                 for k in state_names)
    tensors = dict(onnx_layout.dump(model, params))
    fed = "sequence_lens" in role_of.values()
    notes = ([f"direction={model.direction!r}"] if model.direction != "forward" else []) + \
        (["sequence_lens fed"] if fed else []) + \
        ([f"sequence_lens {fixed_lengths.tolist()}"] if fixed_lengths is not None else [])
    desc = f"onnxruntime {name}" + (f" ({', '.join(notes)})" if notes else "")
    return Target("onnx", desc, "onnx", model.kind, {}, tensors, dtype, forward=forward,
                  model=float64_model(model), state_rule=rule,
                  params={n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()},
                  lengths=fixed_lengths, takes_lengths=fed,
                  default_lengths="ragged" if fed else None)
