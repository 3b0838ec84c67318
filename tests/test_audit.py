"""lc.audit: real PyTorch modules and onnxruntime graphs audited clean, planted layout bugs named,
gradients checked against the oracle and finite differences, bad input in one sentence."""
import importlib
import json

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import FileFormatError, OptionError, ParameterError, ShapeError

A = importlib.import_module("lstmcheck.audit")   # the package; lc.audit is the function


# ----------------------------------------------------------------- an independent NumPy LSTM
def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_lstm(bug=None):
    """A from-scratch LSTM in the torch layout (with its own VJP), with a switchable planted bug."""

    def blocks(p, s):
        Wi, Wh = p["weight_ih" + s], p["weight_hh" + s]
        b = p["bias_ih" + s] + p["bias_hh" + s]
        H = Wh.shape[1]
        if bug == "swap_if":           # reads i, f in the other order
            Wi, Wh, b = [np.concatenate([a[H:2 * H], a[:H], a[2 * H:]]) for a in (Wi, Wh, b)]
        if bug == "transpose_hh":      # uses each recurrent gate block transposed
            Wh = np.concatenate([blk.T for blk in np.split(Wh, 4)])
        return Wi, Wh, b

    def run(p, x, state):
        h0, c0 = state
        dirs = 2 if "weight_ih_l0_reverse" in p else 1
        outs, hn, cn = [], [], []
        for d in range(dirs):
            Wi, Wh, b = blocks(p, "_l0" + ("_reverse" if d else ""))
            rev = bool(d) != (bug == "unreversed" and d == 1)
            if bug == "time_reversed":
                rev = not rev
            xs = x[::-1] if rev else x
            h, c, ys = h0[d], c0[d], []
            for t in range(len(xs)):
                i, f, g, o = np.split(xs[t] @ Wi.T + h @ Wh.T + b, 4, axis=-1)
                c = _sig(f) * c + _sig(i) * np.tanh(g)
                h = _sig(o) * np.tanh(c)
                ys.append(h)
            ys = np.stack(ys)
            outs.append(ys[::-1] if rev else ys)
            hn.append(h)
            cn.append(c)
        return np.concatenate(outs, -1), (np.stack(hn), np.stack(cn))

    def vjp(p, x, state, dy, dstate):      # one layer, one direction
        Wi, Wh, b = blocks(p, "_l0")
        h, c = state[0][0], state[1][0]
        T, H = len(x), Wh.shape[1]
        tape = []
        for t in range(T):
            z = x[t] @ Wi.T + h @ Wh.T + b
            i, f, g, o = _sig(z[:, :H]), _sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), _sig(z[:, 3 * H:])
            c_new = f * c + i * g
            tape.append((h, c, i, f, g, o, c_new))
            h, c = o * np.tanh(c_new), c_new
        dh, dc = dstate[0][0].copy(), dstate[1][0].copy()
        gr = {k: np.zeros_like(v) for k, v in p.items()}
        dx = np.zeros_like(x)
        for t in reversed(range(T)):
            h_prev, c_prev, i, f, g, o, c_t = tape[t]
            dh = dh + dy[t]
            tc = np.tanh(c_t)
            dc = dc + dh * o * (1 - tc ** 2)
            dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                 dc * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
            if bug == "grad_bias_f" and t == 0:
                dz[:, H:2 * H] *= 2.0      # a backward bug in one gate's bias at one step
            gr["weight_ih_l0"] += dz.T @ x[t]
            gr["weight_hh_l0"] += dz.T @ h_prev
            gr["bias_ih_l0"] += dz.sum(0)
            dx[t] = dz @ Wi
            dh, dc = dz @ Wh, dc * f
        gr["bias_hh_l0"] = gr["bias_ih_l0"].copy()
        return {**gr, "x": dx, "h0": dh[None], "c0": dc[None]}

    run.vjp = vjp
    return run


# ----------------------------------------------------------------- PyTorch modules, clean
def _torch_modules(torch, dtype):
    nn = torch.nn
    # float32 central differences take steps of ~5e-3, which cross ReLU kinks: ReLU is audited
    # in float64, tanh in float32
    act = "relu" if dtype == "float64" else "tanh"
    return [nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2),
            nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True),
            nn.RNN(3, 4, num_layers=2, nonlinearity=act),
            nn.LSTM(3, 4, bidirectional=True)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_modules_audit_clean(dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for k, mod in enumerate(_torch_modules(torch, dtype)):
        mod = mod.to(getattr(torch, dtype))
        rep = lc.audit(mod, seed=k, fd_elements=2)
        assert rep.passed, rep.to_text()
        checks = {r["check"] for r in rep.rows}
        assert checks == {"forward", "gradient", "fd"}
        assert rep.dtype == dtype
        # every parameter's gradient was compared with the oracle's
        grads = {r["tensor"] for r in rep.rows if r["check"] == "gradient"}
        assert {n for n, _ in mod.named_parameters()} | {"dx", "dh0"} <= grads


def test_torch_cells_and_tolerance_scale_with_dtype():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    r64 = lc.audit(torch.nn.LSTMCell(3, 4).double(), fd=False)
    r32 = lc.audit(torch.nn.GRUCell(3, 4), fd=False)
    assert r64.passed and r32.passed, r64.to_text() + r32.to_text()
    assert r32.tolerances["forward"]["rtol"] > 1e6 * r64.tolerances["forward"]["rtol"]
    # float32 really differs from the oracle by more than float64 round-off, yet passes
    assert max(r["max_abs"] for r in r32.rows) > 1e-10


def test_torch_module_against_a_reference_catches_a_wrong_export():
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    mod = torch.nn.LSTM(3, 4).double()
    model, params = lc.layouts.from_torch(mod)
    wrong = dict(params)
    H = 4
    for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        a = params[n]
        wrong[n] = np.concatenate([a[:2 * H], a[3 * H:], a[2 * H:3 * H]])   # g and o exchanged
    rep = lc.audit(mod, model=model, params=wrong, fd=False)
    assert not rep.passed
    assert "g (cell candidate)" in rep.diagnosis[0] and "o (output)" in rep.diagnosis[0]


# ----------------------------------------------------------------- ONNX in onnxruntime
def _onnx_configs():
    return [lc.LSTM(3, 4, dtype="float32"),
            lc.LSTM(3, 4, bidirectional=True, variant="peephole", dtype="float32"),
            lc.LSTM(3, 4, num_layers=2, variant="cifg", clip=1.5, dtype="float32"),
            lc.GRU(3, 4, reset_after=False, dtype="float32"),
            lc.GRU(3, 4, reset_after=True, bidirectional=True, dtype="float32"),
            lc.RNN(3, 4, dtype="float32")]


def test_onnx_graphs_audit_clean(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from lstmcheck.layouts import onnx as onnx_layout
    for k, model in enumerate(_onnx_configs()):
        proto = onnx_layout.to_onnx(model, A.exposing_params(model, seed=k))
        path = tmp_path / f"m{k}.onnx"
        onnx.save(proto, str(path))
        rep = lc.audit(path, seed=k)
        assert rep.passed, rep.to_text()
        assert rep.layout == "onnx" and rep.dtype == "float32"
        assert {r["tensor"] for r in rep.rows} >= {"y", "h_n"}


def _single_node(onnx, op, W, R, B, *, h0=None, P=None, **attrs):
    """A hand-built one-node graph: raw [T, dirs, B, H] output, initial_h an initializer."""
    from onnx import TensorProto, helper, numpy_helper
    dirs, GH, D = W.shape
    H = R.shape[2]
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in
             (("W", W), ("R", R), ("B", B))]
    ins = ["X", "W", "R", "B", ""]
    if h0 is not None:
        inits.append(numpy_helper.from_array(h0.astype(np.float32), "h0"))
        ins.append("h0")
    if P is not None:
        ins += ["", "P"]
        inits.append(numpy_helper.from_array(P.astype(np.float32), "P"))
    node = helper.make_node(op, ins, ["Y", "Y_h"], hidden_size=H, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", 2, D])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def test_onnx_hand_built_nodes_reverse_lbr_input_forget_clip():
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(3)
    H, D = 4, 3
    h0 = rng.standard_normal((1, 2, H))
    for op, G, attrs in (("LSTM", 4, {"direction": "reverse"}),
                         ("GRU", 3, {"linear_before_reset": 1}),
                         ("GRU", 3, {"linear_before_reset": 0}),
                         ("LSTM", 4, {"input_forget": 1, "clip": 1.0})):
        W, R = rng.standard_normal((1, G * H, D)) * 0.5, rng.standard_normal((1, G * H, H)) * 0.5
        B = rng.standard_normal((1, 2 * G * H)) * 0.5
        rep = lc.audit(_single_node(onnx, op, W, R, B, h0=h0, **attrs), seed=3)
        assert rep.passed, rep.to_text()
        if attrs.get("direction") == "reverse":
            assert "reverse" in rep.target


def test_onnx_export_with_swapped_gates_is_named():
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = lc.LSTM(3, 4, dtype="float32")
    params = A.exposing_params(model, seed=4)
    t = lc.layouts.dump("onnx", model, params)
    H = 4
    # an exporter that forgot ONNX's i,o,f,c order and wrote PyTorch's i,f,g,o blocks as they are
    W, R, B = (np.asarray(params[n])[None] for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0"))
    B = np.concatenate([B, np.asarray(params["bias_hh_l0"])[None]], axis=1)
    proto = _single_node(onnx, "LSTM", W, R, B)
    rep = lc.audit(proto, model=model, params=params, seed=4)
    assert not rep.passed
    assert "gate blocks as" in rep.diagnosis[0] or "in the other order" in rep.diagnosis[0], rep.diagnosis
    assert t["W"].shape == W.shape      # same shapes: only the order was wrong


# ----------------------------------------------------------------- planted layout bugs
def test_clean_numpy_callable_with_vjp_passes_fd_and_gradients():
    model = lc.LSTM(3, 4)
    rep = lc.audit(numpy_lstm(), layout="torch", model=model, fd_elements=10)
    assert rep.passed, rep.to_text()
    assert {r["check"] for r in rep.rows} == {"forward", "gradient", "fd"}


@pytest.mark.parametrize("bug, bidirectional, words", [
    ("swap_if", False, ["i (input)", "f (forget)"]),
    ("transpose_hh", True, ["weight_hh", "transposed"]),
    ("unreversed", True, ["reverse direction", "not reversed"]),
    ("time_reversed", False, ["backwards in time"]),
])
def test_planted_layout_bugs_are_named(bug, bidirectional, words):
    model = lc.LSTM(3, 4, bidirectional=bidirectional)
    target = numpy_lstm(bug)
    del target.vjp
    rep = lc.audit(target, layout="torch", model=model, seed=5)
    assert not rep.passed
    assert rep.diagnosis and all(w in rep.diagnosis[0] for w in words), rep.diagnosis
    assert rep.diagnosis[0] in rep.summary and rep.diagnosis[0] in rep.to_text()
    y = next(r for r in rep.rows if r["tensor"] == "y")
    assert y["where"]["first_t"] == 0 and y["max_abs"] > 1e-3


def tf_lstm(forget_bias):
    """A NumPy TF BasicLSTMCell (kernel over [x, h], gates i, c, f, o) adding ``forget_bias``."""

    def run(p, x, state):
        h, c = state[0][0], state[1][0]
        ys = []
        for t in range(len(x)):
            i, j, f, o = np.split(np.concatenate([x[t], h], 1) @ p["kernel"] + p["bias"], 4, axis=1)
            c = _sig(f + forget_bias) * c + _sig(i) * np.tanh(j)
            h = _sig(o) * np.tanh(c)
            ys.append(h)
        return np.stack(ys), (h[None], c[None])
    return run


def test_forgotten_forget_bias_is_named():
    model = lc.LSTM(3, 4)
    assert lc.audit(tf_lstm(1.0), layout="tf", model=model).passed
    rep = lc.audit(tf_lstm(0.0), layout="tf", model=model, seed=6)
    assert not rep.passed
    assert "forget_bias of 1 is missing" in rep.diagnosis[0], rep.diagnosis


def test_keras_layout_callable_and_gradient_map_matches_finite_differences():
    """The oracle's gradients moved into keras tensor names are the derivative of the oracle
    composed with the keras load (central differences through lc.check_gradients)."""
    model = lc.GRU(3, 4, reset_after=True)
    params = A.exposing_params(model, seed=7)
    tensors = lc.layouts.dump("keras", model, params)
    opts = lc.layouts.options("keras", model)
    gmap = A.GradientMap("keras", tensors, "gru", opts)
    x, state = A.random_inputs(model, 4, 2, seed=7)
    dy, dstate = A.random_cotangents(model, 4, 2, seed=7)
    _, _, grads = A.oracle_run(model, params, x, state, dy, dstate)
    g_keras = gmap.pullback(grads)

    def loss(t):
        m, p = lc.layouts.load("keras", t, "gru", **opts)
        y, fin, _ = A.oracle_run(m, p, x, state)
        return float(np.sum(y * dy) + np.sum(fin[0] * dstate[0]))

    rep = lc.check_gradients(loss, tensors, g_keras, method="central", elements=12, seed=7)
    assert rep.passed, rep.to_text()

    def keras_gru(t, x, h):     # callable target in keras names, run through the oracle
        m, p = lc.layouts.load("keras", t, "gru", **opts)
        y, fin, _ = m.forward(p, x, h)
        return y, fin

    assert lc.audit(keras_gru, layout="keras", model=model, params=params).passed


def test_gradient_bug_is_located_by_tensor_gate_and_fd():
    model = lc.LSTM(3, 4)
    rep = lc.audit(numpy_lstm("grad_bias_f"), layout="torch", model=model, seed=8, fd_elements=16)
    assert not rep.passed
    bad = {(r["check"], r["tensor"]) for r in rep.failures}
    assert ("gradient", "bias_ih_l0") in bad and ("fd", "bias_ih_l0") in bad
    row = next(r for r in rep.failures if r["check"] == "gradient" and r["tensor"] == "bias_ih_l0")
    assert row["where"]["gate"] == "f"
    assert all(r["passed"] for r in rep.rows if r["check"] == "forward")


# ----------------------------------------------------------------- .npz dumps
def _write_dump(path, torch, mod, corrupt=None):
    model, params = lc.layouts.from_torch(mod)
    x, state = A.random_inputs(model, 4, 2, seed=9)
    dy, dstate = A.random_cotangents(model, 4, 2, seed=9)
    y, fin, grads = A.oracle_run(model, params, x, state, dy, dstate)
    arrays = {"x": x, "h0": state[0], "c0": state[1], "y": y, "hn": fin[0], "cn": fin[1],
              "dy": dy, "dhn": dstate[0], "dcn": dstate[1]}
    arrays.update({f"param/{n}": np.asarray(a) for n, a in params.items()})
    arrays.update({f"grad/{n}": np.asarray(g) for n, g in grads.items()})
    if corrupt:
        arrays[corrupt] = arrays[corrupt].copy()
        arrays[corrupt].flat[5] += 0.1
    np.savez(path, meta=np.array(json.dumps({"layout": "torch", "cell": "lstm"})), **arrays)


def test_npz_dump_audit(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(9)
    mod = torch.nn.LSTM(3, 4).double()
    _write_dump(tmp_path / "good.npz", torch, mod)
    rep = lc.audit(tmp_path / "good.npz")
    assert rep.passed, rep.to_text()
    assert {r["check"] for r in rep.rows} == {"forward", "gradient"}
    _write_dump(tmp_path / "bad.npz", torch, mod, corrupt="grad/weight_hh_l0")
    rep = lc.audit(tmp_path / "bad.npz")
    assert [r["tensor"] for r in rep.failures] == ["weight_hh_l0"]
    assert rep.failures[0]["where"]["gate"] == "i"       # flat index 5 of (16, 4): row 1, gate i
    json.dumps(rep.to_dict())


# ----------------------------------------------------------------- bad input
def test_bad_input_is_one_clear_sentence(tmp_path):
    model = lc.LSTM(3, 4)
    f = numpy_lstm()

    def one_sentence(exc_type, call, *words):
        with pytest.raises(exc_type) as ei:
            call()
        msg = str(ei.value)
        assert msg.count("\n") == 0 and msg.rstrip().endswith("."), msg
        for w in words:
            assert w in msg, msg

    one_sentence(OptionError, lambda: lc.audit(f, layout="nope", model=model), "unknown layout")
    one_sentence(OptionError, lambda: lc.audit(f, model=model), "layout=")
    one_sentence(OptionError, lambda: lc.audit(f, layout="torch"), "model=")
    params = A.exposing_params(model, 0)
    bad = {**params, "weight_hh_l0": np.zeros((16, 3))}
    one_sentence(ShapeError, lambda: lc.audit(f, layout="torch", params=bad, cell="lstm"), "has shape")
    missing = {n: a for n, a in params.items() if n != "bias_hh_l0"}
    one_sentence(ParameterError, lambda: lc.audit(f, layout="keras", params={"kernel": np.zeros((3, 16))},
                                                  cell="lstm"), "recurrent_kernel")
    one_sentence(ShapeError, lambda: lc.audit(f, layout="torch", model=model, x=np.zeros((4, 2, 5))),
                 "input_size")
    one_sentence(ShapeError, lambda: lc.audit(lambda p, x, s: (x, s), layout="torch", model=model),
                 "the target's y")
    one_sentence(ParameterError, lambda: lc.audit(f, layout="torch", params=missing, cell="lstm"),
                 "bias_hh_l0")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    one_sentence(FileFormatError, lambda: lc.audit(tmp_path / "junk.npz"), "junk.npz")
    np.savez(tmp_path / "weights_only.npz", w=np.zeros(3))
    one_sentence(FileFormatError, lambda: lc.audit(tmp_path / "weights_only.npz"), "lacks")
    one_sentence(FileFormatError, lambda: lc.audit(tmp_path / "model.h5"), "model.h5")
    one_sentence(OptionError, lambda: lc.audit(42), "cannot audit")


def test_onnx_without_rnn_node_and_corrupt_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(g), str(tmp_path / "relu.onnx"))
    with pytest.raises(FileFormatError, match="no LSTM, GRU or RNN node"):
        lc.audit(tmp_path / "relu.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(FileFormatError, match="broken.onnx"):
        lc.audit(tmp_path / "broken.onnx")


# ----------------------------------------------------------------- report and tolerances
def test_report_is_json_ready_and_text_names_rows():
    rep = lc.audit(numpy_lstm("swap_if"), layout="torch", model=lc.LSTM(2, 3), fd=False)
    d = rep.to_dict()
    json.dumps(d)
    assert d["passed"] is False and d["diagnosis"] and d["rows"][0]["tensor"] == "y"
    text = rep.to_text()
    assert text.startswith("FAILED") and "diagnosis:" in text and "first bad step t=0" in text


def test_compare_and_tolerances():
    want = np.linspace(-1, 1, 12).reshape(3, 2, 2)
    assert A.compare(want + 1e-14, want, 1e-12, 1e-12)["passed"]
    c = A.compare(want + np.eye(1, 12, 7).reshape(3, 2, 2), want, 1e-12, 1e-12)
    assert not c["passed"] and c["worst"] == (1, 1, 1) and c["first_t"] == 1
    nan = want.copy()
    nan[0, 0, 0] = np.nan
    assert not A.compare(nan, want, 1.0, 1.0)["passed"]
    t64, t32 = A.tolerances("float64", 5, 2, 7), A.tolerances("float32", 5, 2, 7)
    assert t64["forward"]["rtol"] < 1e-12 < 1e-6 < t32["forward"]["rtol"] < 1e-3
    assert t64["gradient"]["rtol"] > t64["forward"]["rtol"]
