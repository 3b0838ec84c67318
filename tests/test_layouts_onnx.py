"""ONNX layout against onnxruntime: single nodes built with onnx.helper from the dumped tensors
and attributes, run in float32, compared with the oracle's float64 forward on the same
(float32-rounded) weights. Every option case also checks that the oracle *without* the option
disagrees, so the comparison can fail."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import layouts

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

T, B, D, H = 5, 3, 4, 3
TOL = 2e-5


def f32_params(model, seed, scale=1.0):
    """Weights representable in float32, so ORT and the oracle see the same numbers."""
    p = model.init_params(seed=seed, scale=scale)
    return {n: a.astype(np.float32).astype(np.float64) for n, a in p.items()}


def inputs(model, seed):
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((T, B, model.input_size)).astype(np.float32).astype(np.float64)
    state = tuple(rng.standard_normal(s).astype(np.float32).astype(np.float64)
                  for s in model.state_shapes(B))
    return x, state


def run_node(op, tensors, attrs, x, state):
    """One ONNX node, written here with onnx.helper (not with layouts.onnx.to_onnx)."""
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in tensors.items()]
    ins = ["X", "W", "R", "B" if "B" in tensors else "", "", "initial_h"]
    feeds = {"X": x.astype(np.float32), "initial_h": state[0].astype(np.float32)}
    if op == "LSTM":
        ins += ["initial_c", "P" if "P" in tensors else ""]
        feeds["initial_c"] = state[1].astype(np.float32)
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, ins, outs, **attrs)
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [node], "g", [vi(n, TensorProto.FLOAT, list(a.shape)) for n, a in feeds.items()],
        [vi(n, TensorProto.FLOAT, None) for n in outs], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    res = sess.run(None, feeds)
    y = res[0]                                   # [T, dirs, B, H] -> oracle's (T, B, dirs*H)
    return [y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)] + res[1:]


def oracle(model, params, x, state):
    st = state if len(state) > 1 else state[0]
    y, fin, _ = model.forward(params, x, st)
    return [y] + list(fin if isinstance(fin, tuple) else (fin,))


def err(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


def check(model, params, seed, direction=None, *, differs_from=None):
    tensors = layouts.dump("onnx", model, params, direction=direction)
    attrs = layouts.options("onnx", model, direction=direction)
    x, state = inputs(model, seed)
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[model.kind]
    got = run_node(op, tensors, attrs, x, state)
    assert err(got, oracle(model, params, x, state)) < TOL
    if differs_from is not None:    # the option matters for these inputs
        other, other_params = differs_from
        assert err(got, oracle(other, other_params, x, state)) > 100 * TOL
    # and the tensors read back exactly
    m2, p2 = layouts.load("onnx", tensors, model.kind, **attrs)
    assert all(np.array_equal(p2[n], params[n]) for n in params)
    return got


def drop(params, name):
    return {n: a for n, a in params.items() if not n.startswith(name)}


@pytest.mark.parametrize("seed", [0, 1])
def test_lstm_defaults(seed):
    m = lc.LSTM(D, H)
    check(m, f32_params(m, seed), seed)


def test_lstm_gate_order_matters():
    """Swapping the o and f blocks of W (a planted permutation) is visible to onnxruntime."""
    m = lc.LSTM(D, H)
    p = f32_params(m, 3)
    t = layouts.dump("onnx", m, p)
    W = t["W"].copy()
    W[0, H:2 * H], W[0, 2 * H:3 * H] = t["W"][0, 2 * H:3 * H], t["W"][0, H:2 * H]
    x, state = inputs(m, 3)
    bad = run_node("LSTM", {**t, "W": W}, layouts.options("onnx", m), x, state)
    assert err(bad, oracle(m, p, x, state)) > 1e-3


def test_lstm_peephole():
    m = lc.LSTM(D, H, variant="peephole")
    p = f32_params(m, 2)
    p = {n: (a * 4 if n.startswith("weight_peep") else a) for n, a in p.items()}
    plain = lc.LSTM(D, H)
    check(m, p, 2, differs_from=(plain, drop(p, "weight_peep")))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_reverse(cell):
    m = lc.build(cell, D, H, direction="reverse")
    p = f32_params(m, 4)
    assert layouts.options("onnx", m)["direction"] == "reverse"
    got = check(m, p, 4, direction="reverse")
    x, state = inputs(m, 4)
    fwd = m.replace(direction="forward")
    p_fwd = {n.replace("_reverse", ""): a for n, a in p.items()}
    assert err(got, oracle(fwd, p_fwd, x, state)) > 100 * TOL   # not the forward run


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_bidirectional(cell):
    m = lc.build(cell, D, H, bidirectional=True)
    check(m, f32_params(m, 5), 5)


def test_lstm_input_forget():
    m = lc.LSTM(D, H, variant="cifg")
    p = f32_params(m, 6)
    t = layouts.dump("onnx", m, p)
    assert not t["W"][0, 2 * H:3 * H].any()      # ONNX's f block written as zeros
    vanilla = lc.LSTM(D, H)
    # the same i, g, o weights with a zero forget block: f = sigmoid(0) = 1/2, not 1 - i
    q = {n: np.insert(a, H * np.ones(H, int), 0, axis=0) if not n.startswith("weight_peep") else a
         for n, a in p.items()}
    check(m, p, 6, differs_from=(vanilla, q))


def test_lstm_input_forget_with_peephole():
    m = lc.LSTM(D, H, variant="cifg+peephole")
    p = f32_params(m, 7)
    t = layouts.dump("onnx", m, p)
    assert t["P"].shape == (1, 3 * H) and not t["P"][0, 2 * H:].any()   # P is i, o, f
    check(m, p, 7)


def test_lstm_input_forget_ignores_forget_block():
    """onnxruntime ignores W_f when input_forget=1; load drops it."""
    m = lc.LSTM(D, H, variant="cifg")
    p = f32_params(m, 8)
    t = layouts.dump("onnx", m, p)
    t["W"][0, 2 * H:3 * H] = 7.0
    x, state = inputs(m, 8)
    got = run_node("LSTM", t, layouts.options("onnx", m), x, state)
    m2, p2 = layouts.load("onnx", t, "lstm", input_forget=1)
    assert err(got, oracle(m2, p2, x, state)) < TOL


def test_lstm_clip():
    m = lc.LSTM(D, H, clip=0.75)
    p = f32_params(m, 9, scale=4.0)
    check(m, p, 9, differs_from=(lc.LSTM(D, H), p))


@pytest.mark.parametrize("acts", [
    ("hard_sigmoid(0.25, 0.5)", "leaky_relu(0.25)", "identity"),
    ("sigmoid", "elu(0.5)", "softsign"),
    ("sigmoid", "scaled_tanh(0.5, 2.0)", "thresholded_relu(0.25)"),
    ("sigmoid", "affine(0.5, 0.25)", "softplus"),
])
def test_lstm_activations(acts):
    """alpha/beta lists consumed in order by the functions that take them, as onnxruntime does."""
    m = lc.LSTM(D, H, activations=acts)
    p = f32_params(m, 10, scale=2.0)
    check(m, p, 10, differs_from=(lc.LSTM(D, H), p))


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_linear_before_reset(reset_after):
    m = lc.GRU(D, H, reset_after=reset_after)
    p = f32_params(m, 11, scale=2.0)
    assert layouts.options("onnx", m)["linear_before_reset"] == int(reset_after)
    check(m, p, 11, differs_from=(lc.GRU(D, H, reset_after=not reset_after), p))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_rnn(nonlinearity):
    m = lc.RNN(D, H, nonlinearity=nonlinearity)
    check(m, f32_params(m, 12), 12)


@pytest.mark.parametrize("cell,opts", [("lstm", {"variant": "peephole"}), ("gru", {}),
                                       ("rnn", {"nonlinearity": "relu"})])
def test_to_onnx_stack_matches_oracle(cell, opts):
    """to_onnx chains one node per layer; onnxruntime's output equals the oracle's."""
    m = lc.build(cell, D, H, num_layers=2, bidirectional=True, dtype="float32", **opts)
    p = m.init_params(seed=13)
    proto = layouts.onnx.to_onnx(m, p)
    x, state = inputs(m, 13)
    feeds = {"X": x.astype(np.float32), "initial_h": state[0].astype(np.float32)}
    if cell == "lstm":
        feeds["initial_c"] = state[1].astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)
    m64 = lc.build(cell, D, H, num_layers=2, bidirectional=True, **opts)
    want = oracle(m64, {n: a.astype(np.float64) for n, a in p.items()}, x, state)
    assert err(got, want) < TOL
    m2, p2 = layouts.onnx.from_onnx(proto)
    assert m2.config() == m.config()
    assert all(np.array_equal(p2[n], p[n]) for n in p)


def test_onnx_cannot_express():
    with pytest.raises(lc.errors.ConversionError, match="projection"):
        layouts.dump("onnx", lc.LSTM(D, H, proj_size=2), lc.LSTM(D, H, proj_size=2).init_params(0))
    with pytest.raises(lc.errors.ConversionError, match="cell_clip"):
        m = lc.LSTM(D, H, cell_clip=1.0)
        layouts.dump("onnx", m, m.init_params(0))
    with pytest.raises(lc.errors.ConversionError, match="different ones"):
        m = lc.LSTM(D, H, bidirectional=True)
        layouts.load("onnx", layouts.dump("onnx", m, m.init_params(0)), "lstm",
                     activations=["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Tanh"])
    with pytest.raises(lc.errors.ConversionError, match="GRU"):
        m = lc.GRU(D, H)
        layouts.load("onnx", layouts.dump("onnx", m, m.init_params(0)), "gru",
                     activations=["Relu", "Tanh"])
