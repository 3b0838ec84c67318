"""An ONNX graph with LSTM/GRU/RNN nodes, run as a black box in onnxruntime.

The graph may be a hand-built node or what ``torch.onnx.export`` writes (the Slice, Squeeze,
Transpose, Reshape and Concat around one node per layer); :mod:`.onnx_graph` finds which graph
input is X, h0, c0 or sequence_lens and which output is y, h_n or c_n. The nodes' weight
initializers are turned into graph inputs, so the audit can run the whole graph with other
weights: its gradients are central differences of the onnxruntime forward (onnxruntime has no
backward for these operators)."""
from __future__ import annotations

import os

import numpy as np

from ... import backend
from ...errors import ConversionError, FileFormatError, require
from ..oracle import float64_model
from ..tolerances import fd_tolerances
from .base import Target
from .onnx_graph import input_routes, output_routes, rnn_nodes

_WEIGHT_SLOTS = {1: "W", 2: "R", 3: "B", 7: "P"}
_STATE_ROLES = ("initial_h", "initial_c")


def _onnx_target(source, layout_options):
    """The Target for an ONNX file or ModelProto (see the module docstring). A direction='reverse'
    node is the oracle's direction='reverse' model; ``sequence_lens`` is the oracle's
    ``lengths=``: an initializer (or Constant) fixes them (``Target.lengths``), a graph input is
    fed the lengths the audit chooses (ragged by default, ``Target.default_lengths``). A float64
    graph whose operators onnxruntime cannot run in float64 is run in float32 and says so."""
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
    proto = onnx.ModelProto.FromString(proto.SerializeToString())   # ours to rewrite
    graph = proto.graph
    nodes = rnn_nodes(graph)
    first = nodes[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in first.attribute}
    batch_major = attrs.get("layout", 0) == 1      # the operator's own layout=1: all batch-major
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    feeds = [i for i in graph.input if i.name not in inits]
    consts = dict(inits)
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    fixed_lengths = _fixed_lengths(nodes, consts, feeds, name)
    n_state = len(model.state_shapes(1))
    state_names = _STATE_ROLES[:n_state]
    routes = input_routes(graph, [i.name for i in feeds], name)
    for i in feeds:
        r = routes.get(i.name)
        if r is None or r.role not in ("X", "sequence_lens", *state_names):
            raise FileFormatError(f"{name} takes graph input {i.name!r}, which reaches none of its "
                                  f"{first.op_type} nodes' X, initial_h, initial_c or "
                                  f"sequence_lens; the audit cannot feed it.")
    if "X" not in {r.role for r in routes.values()}:
        raise FileFormatError(f"{name}: the first {first.op_type} node's input X does not come "
                              f"from a graph input, so the audit cannot feed it.")
    for role in state_names:
        if len([r for r in routes.values() if r.role == role]) > 1:
            raise FileFormatError(f"{name} takes {role} from several graph inputs; the audit "
                                  f"feeds one (layers*dirs, B, H) state.")
    x_name = next(k for k, r in routes.items() if r.role == "X")
    x_swapped = routes[x_name].swaps_time_batch
    x_type = next(i for i in feeds if i.name == x_name).type.tensor_type.elem_type
    dtype = backend.resolve_dtype(onnx.helper.tensor_dtype_to_np_dtype(x_type))
    outs = {o: r for o, r in output_routes(graph).items() if r.role != "y" or r.node == len(nodes) - 1}
    if "y" not in {r.role for r in outs.values()}:
        raise FileFormatError(f"{name} has no graph output that is the Y of its last "
                              f"{first.op_type} node (through Squeeze/Transpose/Reshape only).")

    notes = []
    if dtype == np.float64 and not _runs_float64(first.op_type, onnx, ort):
        _to_float32(proto, onnx, numpy_helper)
        dtype = np.dtype(np.float32)
        notes.append(f"onnxruntime {ort.__version__} has no float64 {first.op_type} kernel, so "
                     f"the float64 graph was run in float32 (weights and inputs rounded) and "
                     f"audited at float32 tolerances")
    weight_inputs = _weights_as_inputs(proto, nodes, onnx)   # layout name -> graph input name
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out_names = list(outs)

    def tb(a, swap):   # (B, T, ...) <-> (T, B, ...)
        return a.swapaxes(0, 1) if swap else a

    def forward(tensors, x, state, lengths=None):
        T, B = x.shape[:2]
        feed = {w: np.ascontiguousarray(tensors[n], dtype) for n, w in weight_inputs.items()}
        for n, r in routes.items():
            if r.role == "X":
                feed[n] = np.ascontiguousarray(tb(x, batch_major or x_swapped), dtype)
            elif r.role == "sequence_lens":
                feed[n] = (np.full(B, T, np.int32) if lengths is None
                           else np.asarray(lengths).astype(np.int32))
            else:
                feed[n] = np.ascontiguousarray(tb(state[state_names.index(r.role)], batch_major),
                                               dtype)
        got = dict(zip(out_names, session.run(out_names, feed)))
        y, fin = None, [None] * n_state
        for n, v in got.items():
            r = outs[n]
            if r.role == "y":
                if v.ndim == 4:        # raw operator output [T, dirs, B, H] (layout=1: [B, T, dirs, H])
                    v = tb(v, batch_major).transpose(0, 2, 1, 3).reshape(T, B, -1)
                else:
                    v = tb(v, batch_major or r.swaps_time_batch)
                y = v
            elif "hc".index(r.role) < n_state:
                fin["hc".index(r.role)] = tb(v, batch_major)
        return y, tuple(fin)

    fed_state = {r.role for r in routes.values()}
    rule = tuple(None if k in fed_state else
                 inits.get(first.input[5 + j] if len(first.input) > 5 + j else "", "zeros")
                 for j, k in enumerate(state_names))
    tensors = dict(onnx_layout.dump(model, params))

    def vjp(tens, x, state, dy, dstate, lengths=None):
        return _central_differences(forward, tens, weight_inputs, x, state, dy, dstate, lengths,
                                    fed=[k for k, s in zip(("h0", "c0"), state_names)
                                         if s in fed_state], dtype=dtype)

    fed = "sequence_lens" in {r.role for r in routes.values()}
    desc_notes = ([f"direction={model.direction!r}"] if model.direction != "forward" else []) + \
        (["batch_first"] if x_swapped else []) + (["sequence_lens fed"] if fed else []) + \
        ([f"sequence_lens {fixed_lengths.tolist()}"] if fixed_lengths is not None else [])
    desc = f"onnxruntime {name}" + (f" ({', '.join(desc_notes)})" if desc_notes else "")
    return Target("onnx", desc, "onnx", model.kind, onnx_layout.options(model), tensors, dtype,
                  forward=forward,
                  vjp=vjp, model=float64_model(model), state_rule=rule,
                  params={n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()},
                  lengths=fixed_lengths, takes_lengths=fed,
                  default_lengths="ragged" if fed else None, notes=notes,
                  gradient_method="central differences of the onnxruntime forward",
                  gradient_tolerances=fd_tolerances)


def _fixed_lengths(nodes, consts, feeds, name):
    lens_src = {(n.input[4] if len(n.input) > 4 else "") for n in nodes}
    if len(lens_src) > 1:
        raise ConversionError(f"the {nodes[0].op_type} nodes of {name} take different "
                              f"sequence_lens ({', '.join(repr(v or '(none)') for v in sorted(lens_src))}); "
                              f"the oracle's layers share one set of lengths.")
    src = lens_src.pop()
    if src and src in consts:
        return np.asarray(consts[src]).astype(np.int64).ravel()
    return None


_FLOAT64_RUNS = {}


def _runs_float64(op, onnx, ort) -> bool:
    """Whether this onnxruntime runs ``op`` in float64 (it said no for all three in 1.32): a
    one-node graph answers, once per operator."""
    if op not in _FLOAT64_RUNS:
        from onnx import TensorProto, helper
        G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
        w = helper.make_tensor("W", TensorProto.DOUBLE, [1, G, 1], [0.0] * G)
        r = helper.make_tensor("R", TensorProto.DOUBLE, [1, G, 1], [0.0] * G)
        g = helper.make_graph([helper.make_node(op, ["X", "W", "R"], ["Y"], hidden_size=1)], "probe",
                              [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [1, 1, 1])],
                              [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, None)], [w, r])
        quiet = ort.SessionOptions()
        quiet.log_severity_level = 4      # the refusal is expected; keep it off the user's stderr
        try:
            s = ort.InferenceSession(helper.make_model(g).SerializeToString(), quiet,
                                     providers=["CPUExecutionProvider"])
            s.run(None, {"X": np.zeros((1, 1, 1))})
            _FLOAT64_RUNS[op] = True
        except Exception:   # onnxruntime's NOT_IMPLEMENTED / "does not support double yet"
            _FLOAT64_RUNS[op] = False
    return _FLOAT64_RUNS[op]


def _to_float32(proto, onnx, numpy_helper):
    """Every float64 tensor, value type, Constant and Cast of the graph made float32, in place."""
    D, F = onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT
    g = proto.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == D:
            g.initializer[i].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(t).astype(np.float32), t.name))
    for v in [*g.input, *g.output, *g.value_info]:
        if v.type.tensor_type.elem_type == D:
            v.type.tensor_type.elem_type = F
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Constant" and a.name == "value" and a.t.data_type == D:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32),
                                                     a.t.name))
            if n.op_type == "Cast" and a.name == "to" and a.i == D:
                a.i = F


def _weights_as_inputs(proto, nodes, onnx) -> dict:
    """Move the RNN nodes' weight initializers to graph inputs, in place, so a run can take other
    weights; returns {layout tensor name ("W", "layer1/R", ...): graph input name}. A weight that
    is a Constant node stays baked in (and is left out of the gradients)."""
    g = proto.graph
    by_name = {t.name: t for t in g.initializer}
    moved = {}
    for k, node in enumerate(nodes):
        pre = f"layer{k}/" if len(nodes) > 1 else ""
        for slot, what in _WEIGHT_SLOTS.items():
            src = node.input[slot] if slot < len(node.input) else ""
            if src in by_name and src not in moved.values():
                moved[pre + what] = src
    keep = [t for t in g.initializer if t.name not in moved.values()]
    for src in moved.values():
        t = by_name[src]
        g.input.append(onnx.helper.make_tensor_value_info(src, t.data_type, list(t.dims)))
    del g.initializer[:]
    g.initializer.extend(keep)
    return moved


def _central_differences(forward, tens, weight_inputs, x, state, dy, dstate, lengths, fed, dtype):
    """dL/d(every element) of L = sum(dy*y) + sum(dstate*final state), by central differences of
    the graph's forward in its own dtype, step eps^(1/3) * max(1, |value|) (the step that balances
    truncation and round-off), checked against half that step to catch a kink. L is summed in
    float64 from the graph's outputs."""
    dy64 = np.asarray(dy, np.float64)
    ds64 = [np.asarray(d, np.float64) for d in dstate]
    h_rel = float(np.finfo(dtype).eps) ** (1 / 3)
    theta = {n: np.array(tens[n], dtype) for n in weight_inputs}
    theta["x"] = np.array(x, dtype)
    for k in fed:
        theta[k] = np.array(state[("h0", "c0").index(k)], dtype)

    def loss(th):
        st = tuple(th.get(k, s) for k, s in zip(("h0", "c0"), state))
        y, fin = forward({**tens, **th}, th["x"], st, lengths=lengths)
        return float(np.sum(np.asarray(y, np.float64) * dy64)
                     + sum(np.sum(np.asarray(f, np.float64) * d) for f, d in zip(fin, ds64)
                           if f is not None))

    eps = float(np.finfo(dtype).eps)
    noise = 16 * eps * max(1.0, abs(loss(theta)))   # round-off in one value of L

    def central(flat, i, v, step):
        h = dtype.type(step)
        flat[i] = v + h
        up = loss(theta)
        flat[i] = v - h
        down = loss(theta)
        flat[i] = v
        return (up - down) / (float(v + h) - float(v - h))   # the step as rounded

    grads = {}
    for n, a in theta.items():
        g = np.zeros(a.shape)
        flat = a.reshape(-1)
        for i in range(flat.size):
            v = flat[i]
            step = h_rel * max(1.0, abs(float(v)))
            for _ in range(4):
                # a step that crosses a kink (relu, clip) changes the difference by far more
                # than curvature and round-off can: halving the step tells, then retry 10x smaller
                wide, narrow = central(flat, i, v, step), central(flat, i, v, step / 2)
                g.flat[i] = narrow
                if abs(wide - narrow) <= 4 * noise / step:
                    break
                step /= 10
        grads[n] = g
    return grads
