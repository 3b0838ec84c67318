"""ONNX LSTM, GRU and RNN operators (opset 7 to 22): weights plus node attributes.

    W [dirs, G*H, in], R [dirs, G*H, H], B [dirs, 2*G*H] = [Wb, Rb], P [dirs, 3H] (i, o, f)
    LSTM gates i, o, f, c;  GRU z, r, h;  RNN one block;  direction 1 forward, 2 = [forward, reverse]

Node attributes are load options in their ONNX spelling: ``direction``, ``hidden_size``,
``clip`` (bounds every gate pre-activation), ``input_forget`` (f = 1 - i; the oracle's 'cifg'
LSTM has no forget block, so load drops it and dump writes zeros there), ``activations``
(ONNX names, 3 per direction for LSTM, 2 for GRU, 1 for RNN) with ``activation_alpha`` /
``activation_beta`` consumed in order by the functions that take them (as onnxruntime does),
``linear_before_reset`` (1 is reset_after=True; ONNX's default 0 is reset_after=False) and
``layout`` (1 is batch_first). ONNX stores these floats in float32.

``direction`` is the model's: 'reverse' (one direction, run from the last step to the first,
outputs in input order) loads as a ``direction='reverse'`` model, whose parameters are
``weight_ih_l0_reverse`` etc.; W/R/B then hold that one direction. Stacks of nodes are layers
('layer{k}/W', ...).

:func:`to_onnx` writes a runnable ModelProto for a model (optionally with ``sequence_lens``, the
oracle's ``lengths=``: right padding, Y zero at padded steps, Y_h/Y_c the state after the last
real step, which for a reverse direction is step 0); :func:`from_onnx` reads one back.
"""
from __future__ import annotations

import numpy as np

from . import _common as C
from ..errors import ConversionError, FileFormatError, OptionError, ShapeError, require
from ..models import activations as A

CELLS = ("lstm", "gru", "rnn")
OPS = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}
_THEIRS = {"lstm": "iofg", "gru": "zrn", "rnn": "h"}      # ONNX block order in our gate letters
_PEEP_THEIRS = "iof"
_N_ACTS = {"lstm": 3, "gru": 2, "rnn": 1}
_DEFAULT_ACTS = {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh"), "rnn": ("tanh",)}
_ONNX_NAMES = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "affine": "Affine",
               "leaky_relu": "LeakyRelu", "thresholded_relu": "ThresholdedRelu",
               "scaled_tanh": "ScaledTanh", "hard_sigmoid": "HardSigmoid", "elu": "Elu",
               "softsign": "Softsign", "softplus": "Softplus"}
_OURS_BY_LOWER = {v.lower(): k for k, v in _ONNX_NAMES.items()}
DIRECTIONS = ("forward", "reverse", "bidirectional")


# ------------------------------------------------------------------ gate blocks
def _to_onnx_blocks(a, ours, theirs, axis=0):
    """Our blocks (a subset of theirs: cifg has no f) in ONNX order, zeros where we have none."""
    blocks = C.split_gates(a, ours, axis=axis)
    zero = np.zeros_like(next(iter(blocks.values())))
    return np.concatenate([blocks.get(g, zero) for g in theirs], axis=axis)


def _from_onnx_blocks(a, ours, theirs, axis=0):
    blocks = C.split_gates(a, theirs, axis=axis)
    return np.concatenate([blocks[g] for g in ours], axis=axis)


# ------------------------------------------------------------------ activations
def _spec(act: A.Activation) -> str:
    """Our spec string for an Activation ('leaky_relu(0.1)'); affine(1, 0) is identity."""
    if act.name == "affine" and act.alpha == 1.0 and act.beta == 0.0:
        return "identity"
    args = [v for v in (act.alpha, act.beta) if v is not None]
    return act.name + (f"({', '.join(repr(float(v)) for v in args)})" if args else "")


def parse_activations(names, alphas=None, betas=None) -> list:
    """ONNX activation names with their alpha/beta lists -> our spec strings."""
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        name = name.decode() if isinstance(name, bytes) else str(name)
        ours = _OURS_BY_LOWER.get(name.lower())
        if ours is None:
            raise ConversionError(f"ONNX activation {name!r} is not one the oracle implements "
                                  f"({', '.join(_ONNX_NAMES.values())}).")
        alpha, beta = A.get(ours).alpha, A.get(ours).beta   # ONNX defaults
        if alpha is not None and alphas:
            alpha = float(alphas.pop(0))
        if beta is not None and betas:
            beta = float(betas.pop(0))
        out.append(_spec(A.Activation(ours, alpha, beta)))
    return out


def format_activations(specs) -> dict:
    """Our spec strings -> {'activations', 'activation_alpha', 'activation_beta'}."""
    names, alphas, betas = [], [], []
    for s in specs:
        a = A.get(s)
        if a.name == "identity":
            a = A.Activation("affine", 1.0, 0.0)
        names.append(_ONNX_NAMES[a.name])
        alphas += [a.alpha] if a.alpha is not None else []
        betas += [a.beta] if a.beta is not None else []
    out = {"activations": names}
    if alphas:
        out["activation_alpha"] = alphas
    if betas:
        out["activation_beta"] = betas
    return out


def _model_activations(model) -> tuple:
    if model.kind == "lstm":
        f = model.flags
        return (f.act_f, f.act_g, f.act_h)
    if model.kind == "rnn":
        return (model.nonlinearity,)
    return _DEFAULT_ACTS["gru"]


# ------------------------------------------------------------------ load
def guess_cell(tensors: dict) -> str:
    name = next((n for n in tensors if str(n).rsplit("/", 1)[-1] == "R"), "R")
    R = C.anchor(tensors, name, 3, "onnx")
    G = R.shape[1] // max(R.shape[2], 1)
    if G not in (4, 3, 1) or R.shape[1] != G * R.shape[2]:
        raise ShapeError(f"onnx R of shape {R.shape} is not [dirs, G*H, H] for G = 4 (LSTM), "
                         f"3 (GRU) or 1 (RNN).")
    return {4: "lstm", 3: "gru", 1: "rnn"}[G]


def _direction(direction, dirs):
    if direction is None:
        return "forward" if dirs == 1 else "bidirectional"
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in DIRECTIONS:
        raise OptionError(f"unknown ONNX direction {direction!r}; choose one of {', '.join(DIRECTIONS)}.")
    if (direction == "bidirectional") != (dirs == 2):
        raise ShapeError(f"ONNX W holds {dirs} direction(s), but direction is {direction!r}.")
    return direction


def load(tensors: dict, cell=None, *, direction=None, hidden_size=None, clip=None,
         input_forget=0, activations=None, activation_alpha=None, activation_beta=None,
         linear_before_reset=0, layout=0, dtype=None, strict=True, backend="numpy",
         **model_options):
    cell = (cell or guess_cell(tensors)).lower()
    L, _ = C.structure(tensors, "onnx")
    first = "layer0/" if L > 1 else ""
    W = C.anchor(tensors, first + "W", 3, "onnx")
    R = C.anchor(tensors, first + "R", 3, "onnx")
    dirs, H = W.shape[0], R.shape[2]
    if dirs not in (1, 2):
        raise ShapeError(f"ONNX W has {dirs} directions in axis 0; expected 1 or 2.")
    direction = _direction(direction, dirs)
    if hidden_size is not None and C.option_number("hidden_size", hidden_size, int, "onnx") != H:
        raise ShapeError(f"ONNX hidden_size attribute is {hidden_size}, but R has shape {R.shape}.")
    n = _N_ACTS[cell]
    acts = parse_activations(activations or [], activation_alpha, activation_beta) if activations \
        else list(_DEFAULT_ACTS[cell]) * dirs
    if len(acts) != n * dirs:
        raise OptionError(f"ONNX {cell.upper()} takes {n} activation(s) per direction, "
                          f"got {len(acts)} for {dirs} direction(s).")
    if dirs == 2 and [A.get(a) for a in acts[:n]] != [A.get(a) for a in acts[n:]]:
        raise ConversionError("the oracle uses one set of activations for both directions, but "
                              "the ONNX node gives the reverse direction different ones.")
    acts = acts[:n]
    opts = dict(model_options)
    if C.option_flag("layout", layout, "onnx"):
        opts["batch_first"] = True
    if cell == "lstm":
        if acts != list(_DEFAULT_ACTS["lstm"]):
            opts["activations"] = tuple(acts)
        parts = [opts.pop("variant", "vanilla")]
        if first + "P" in tensors:
            parts.append("peephole")
        if C.option_flag("input_forget", input_forget, "onnx"):
            parts.append("cifg")
        opts["variant"] = "+".join(parts)
        if clip is not None:
            opts["clip"] = C.option_number("clip", clip, float, "onnx")
    else:
        if clip is not None:
            raise ConversionError(f"the oracle's {cell.upper()} has no pre-activation clip.")
        if cell == "gru":
            if acts != list(_DEFAULT_ACTS["gru"]):
                raise ConversionError(f"the oracle's GRU uses (Sigmoid, Tanh), not "
                                      f"{tuple(acts)}.")
            opts["reset_after"] = C.option_flag("linear_before_reset",
                                                 linear_before_reset, "onnx")
        else:
            opts["nonlinearity"] = acts[0]
    model = C.make_model(cell, W.shape[2], H, num_layers=L, direction=direction,
                         dtype=C.tensor_dtype(tensors, dtype), backend=backend, **opts)
    # B and P are optional in ONNX: absent means zeros
    expected = _dump_tensors(model, C.zeros_params(model))
    tensors = {**{n: a for n, a in expected.items() if n.rsplit("/", 1)[-1] == "B"}, **tensors}
    t = C.check_tensors(tensors, expected, "onnx", model, strict)
    ours, theirs = "".join(model.gates), _THEIRS[cell]
    GH = len(theirs) * H
    params = {}
    for k, d, s in model.suffixes():
        pre = "layer{}/".format(k) if L > 1 else ""
        params["weight_ih" + s] = _from_onnx_blocks(t[pre + "W"][d], ours, theirs)
        params["weight_hh" + s] = _from_onnx_blocks(t[pre + "R"][d], ours, theirs)
        params["bias_ih" + s] = _from_onnx_blocks(t[pre + "B"][d][:GH], ours, theirs)
        params["bias_hh" + s] = _from_onnx_blocks(t[pre + "B"][d][GH:], ours, theirs)
        if cell == "lstm" and model.flags.peephole:
            rows = C.split_gates(t[pre + "P"][d], _PEEP_THEIRS)
            params["weight_peep" + s] = np.stack([rows[g] for g in model.cell.peep_gates])
    return model, C.finish(model, params)


# ------------------------------------------------------------------ dump
def _check(model, direction):
    C.lstm_plain(model, "onnx", allow=("peephole", "cifg"), clip=True, activations=True)
    if direction is not None:
        if direction not in DIRECTIONS:
            raise OptionError(f"unknown ONNX direction {direction!r}; choose one of "
                              f"{', '.join(DIRECTIONS)}.")
        if direction != model.direction:
            hint = (" (build the model with direction='reverse', e.g. model.replace(direction="
                    "'reverse'), whose parameters are named *_reverse)"
                    if direction == "reverse" and model.direction == "forward" else "")
            raise ConversionError(f"direction {direction!r} does not fit {model.describe()}"
                                  f"{hint}.")
    if model.kind == "rnn" and model.nonlinearity not in ("tanh", "relu", "identity"):
        raise ConversionError(f"ONNX RNN has no {model.nonlinearity} activation.")


def _dump_tensors(model, p):
    ours, theirs = "".join(model.gates), _THEIRS[model.kind]
    per_layer = {}
    for k, d, s, v in C.layer_views(model, p):
        pre = f"layer{k}/" if model.num_layers > 1 else ""
        lay = per_layer.setdefault(pre, {"W": [], "R": [], "B": [], "P": []})
        lay["W"].append(_to_onnx_blocks(v["weight_ih"], ours, theirs))
        lay["R"].append(_to_onnx_blocks(v["weight_hh"], ours, theirs))
        lay["B"].append(np.concatenate([_to_onnx_blocks(v["bias_ih"], ours, theirs),
                                        _to_onnx_blocks(v["bias_hh"], ours, theirs)]))
        if "weight_peep" in v:
            rows = dict(zip(model.cell.peep_gates, v["weight_peep"]))
            zero = np.zeros(model.hidden_size, model.dtype)
            lay["P"].append(np.concatenate([rows.get(g, zero) for g in _PEEP_THEIRS]))
    out = {}
    for pre, lay in per_layer.items():
        for name, blocks in lay.items():
            if blocks:
                out[pre + name] = np.stack(blocks)
    return out


def dump(model, params, *, direction=None) -> dict:
    """W, R, B (and P) per layer, ``[dirs, ...]`` with the model's directions (a reverse model's
    one direction in slot 0). ``direction``, when given, must be the model's own."""
    _check(model, direction)
    return _dump_tensors(model, C.host_params(model, params))


def options(model, *, direction=None) -> dict:
    """The node attributes (ONNX spelling) that, with dump's tensors, rebuild ``model``."""
    _check(model, direction)
    attrs = {"hidden_size": model.hidden_size,
             "direction": model.direction}
    acts = _model_activations(model)
    if list(acts) != list(_DEFAULT_ACTS[model.kind]):
        fa = format_activations(list(acts) * model.num_directions)
        attrs.update(fa)
    if model.kind == "lstm":
        if model.flags.clip is not None:
            attrs["clip"] = model.flags.clip
        if model.flags.coupled:
            attrs["input_forget"] = 1
    if model.kind == "gru":
        attrs["linear_before_reset"] = int(model.reset_after)
    if model.batch_first:
        attrs["layout"] = 1
    return attrs


# ------------------------------------------------------------------ ModelProto in and out
def to_onnx(model, params, *, direction=None, opset=17, sequence_lens=None):
    """A runnable ONNX ModelProto: inputs X (T, B, in), initial_h (L*dirs, B, H_out) [,
    initial_c]; outputs Y (T, B, dirs*H_out), Y_h [, Y_c] -- the oracle's shapes (time-major,
    whatever the model's batch_first). Layers are chained nodes; weights are initializers in the
    model's dtype (onnxruntime runs float32 only).

    sequence_lens: None (every sequence runs T steps), ``"input"`` (a graph input
    ``sequence_lens`` of int32 [B], fed at run time) or B integers in 1..T (an int32
    initializer); every node takes it. It is the oracle's ``lengths=``."""
    onnx = require("onnx", "onnx", "writing ONNX models")
    from onnx import helper, numpy_helper
    tensors = dump(model, params, direction=direction)
    attrs = options(model, direction=direction)
    attrs.pop("layout", None)
    op = {v: k for k, v in OPS.items()}[model.kind]
    elem = helper.np_dtype_to_tensor_dtype(model.dtype)
    L, dirs, lstm = model.num_layers, model.num_directions, model.kind == "lstm"
    states = ["initial_h"] + (["initial_c"] if lstm else [])
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    const("axes0", np.array([0], np.int64))
    lens = ""
    if isinstance(sequence_lens, str):
        if sequence_lens != "input":
            raise OptionError(f"sequence_lens must be None, 'input' or B integers, got "
                              f"{sequence_lens!r}.")
        lens = "sequence_lens"
    elif sequence_lens is not None:
        a = np.asarray(sequence_lens)
        if a.ndim != 1 or a.dtype.kind not in "iu" or a.size == 0 or a.min() < 1:
            raise ShapeError(f"sequence_lens must be a 1-d array of integers >= 1, got "
                             f"{sequence_lens!r}.")
        lens = const("sequence_lens", a.astype(np.int32))
    const("flat_dirs", np.array([0, 0, -1], np.int64))
    x, finals = "X", {s: [] for s in states}
    for k in range(L):
        pre = f"layer{k}/" if L > 1 else ""
        ins = [x] + [const(f"{pre}{n}", tensors[pre + n]) for n in ("W", "R", "B")] + [lens]
        for s in states:
            start, end = const(f"{s}_start{k}", [k * dirs]), const(f"{s}_end{k}", [(k + 1) * dirs])
            nodes.append(helper.make_node("Slice", [s, start, end, "axes0"], [f"{s}{k}"]))
            ins.append(f"{s}{k}")
        if pre + "P" in tensors:
            ins.append(const(pre + "P", tensors[pre + "P"]))
        outs = [f"Y{k}", f"Y_h{k}"] + ([f"Y_c{k}"] if lstm else [])
        nodes.append(helper.make_node(op, ins, outs, name=f"{op}_{k}", **attrs))
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        x = "Y" if k == L - 1 else f"X{k + 1}"
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", "flat_dirs"], [x]))
        for s, o in zip(states, outs[1:]):
            finals[s].append(o)
    out_names = ["Y_h"] + (["Y_c"] if lstm else [])
    for s, name in zip(states, out_names):
        nodes.append(helper.make_node("Concat", finals[s], [name], axis=0))
    D, Ho = model.input_size, model.output_size
    vi = helper.make_tensor_value_info
    inputs = [vi("X", elem, ["T", "B", D])] + [vi(s, elem, [L * dirs, "B", H])
                                                for s, H in zip(states, (Ho, model.hidden_size))]
    if isinstance(sequence_lens, str):
        inputs.append(vi("sequence_lens", onnx.TensorProto.INT32, ["B"]))
    outputs = [vi("Y", elem, ["T", "B", dirs * Ho])] + [vi(n, elem, [L * dirs, "B", H])
                                                        for n, H in zip(out_names, (Ho, model.hidden_size))]
    graph = helper.make_graph(nodes, "lstmcheck_" + model.kind, inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="lstmcheck")
    onnx.checker.check_model(proto)
    return proto


def _attribute_values(node) -> dict:
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def from_onnx(proto, *, where="the ONNX model", **options):
    """(model, params) from the LSTM/GRU/RNN nodes of a ModelProto; several nodes are layers in
    graph order. Weights must be initializers or Constant nodes."""
    require("onnx", "onnx", "reading ONNX models")
    from onnx import numpy_helper
    graph = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    nodes = [n for n in graph.node if n.op_type in OPS and n.domain in ("", "ai.onnx")]
    if not nodes:
        ops = sorted({n.op_type for n in graph.node})
        raise FileFormatError(f"{where} holds no LSTM, GRU or RNN node (its operators: "
                              f"{', '.join(ops) or 'none'}).")
    kinds = sorted({n.op_type for n in nodes})
    if len(kinds) > 1:
        raise FileFormatError(f"{where} mixes {', '.join(kinds)} nodes; the oracle stacks layers "
                              f"of one cell type.")
    attrs = [_attribute_values(n) for n in nodes]
    if any(a != attrs[0] for a in attrs[1:]):
        diff = sorted({k for a in attrs[1:] for k in set(a) | set(attrs[0])
                       if a.get(k) != attrs[0].get(k)})
        raise ConversionError(f"the {kinds[0]} nodes of {where} differ in {', '.join(diff)}; the "
                              f"oracle's layers share one configuration.")
    slots = {1: "W", 2: "R", 3: "B", 7: "P"}
    tensors = {}
    for k, node in enumerate(nodes):
        pre = f"layer{k}/" if len(nodes) > 1 else ""
        for i, name in slots.items():
            src = node.input[i] if i < len(node.input) else ""
            if not src:
                continue
            if src not in consts:
                raise FileFormatError(f"{node.op_type} node {node.name or k!r} in {where} takes "
                                      f"{name} from the computed value {src!r}, not a stored "
                                      f"initializer.")
            tensors[pre + name] = consts[src]
    return load(tensors, OPS[kinds[0]], **{**attrs[0], **options})
