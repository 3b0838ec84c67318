"""ONNX direction="reverse" and sequence_lens against onnxruntime: the graphs layouts.onnx.to_onnx
writes (and one node built here with onnx.helper), run in float32, agree with the float64 oracle
run with direction= and lengths= within 1e-5; load reads a reverse node as a reverse model; the
audit feeds or reads sequence_lens and fails for a planted mistake.

ONNX semantics confirmed here on onnxruntime (the operator spec says only "Y_h: the last output
value of the hidden" and "sequence_lens: lengths of the sequences in a batch"): Y is zero at
padded steps t >= sequence_lens[b]; Y_h of a forward direction is Y[sequence_lens[b] - 1], of a
reverse direction Y[0] (the state after its last processed step, step 0, having started at step
sequence_lens[b] - 1). These are the oracle's lengths= semantics (PyTorch packed sequences)."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import layouts
from lstmcheck.errors import OptionError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

T, B, D, H = 6, 4, 3, 5
LENS = np.array([T, 3, 1, 5])
TOL = 1e-5
OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def f32(a):
    return np.asarray(a, np.float32).astype(np.float64)


def setup(cell, direction, layers, seed=0):
    """A float32 model, its weights, and float32-representable inputs (so ORT and the oracle see
    the same numbers)."""
    m = lc.build(cell, D, H, direction=direction, num_layers=layers, dtype="float32")
    p = m.init_params(seed=seed)
    rng = np.random.default_rng(seed + 50)
    x = f32(rng.standard_normal((T, B, D)))
    state = tuple(f32(0.5 * rng.standard_normal(s)) for s in m.state_shapes(B))
    return m, p, x, state


def oracle(m, p, x, state, lengths):
    m64 = m.replace(dtype="float64")
    y, fin, _ = m64.forward({n: f32(a) for n, a in p.items()}, x,
                            state if len(state) > 1 else state[0], lengths=lengths)
    return [y] + list(fin if isinstance(fin, tuple) else (fin,))


def run(proto, x, state, lengths=None):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = {"X": x.astype(np.float32), "initial_h": state[0].astype(np.float32)}
    if len(state) > 1:
        feed["initial_c"] = state[1].astype(np.float32)
    if "sequence_lens" in names:
        feed["sequence_lens"] = np.asarray(lengths, np.int32)
    return sess.run(None, feed)


def err(a, b):
    return max(float(np.max(np.abs(np.asarray(u, np.float64) - v))) for u, v in zip(a, b))


# ------------------------------------------------------------------ onnxruntime vs the oracle
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lens", [None, "initializer", "input"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_onnxruntime_matches_oracle(cell, direction, lens, layers):
    m, p, x, state = setup(cell, direction, layers, seed=layers)
    seq = {None: None, "initializer": LENS, "input": "input"}[lens]
    proto = layouts.onnx.to_onnx(m, p, sequence_lens=seq)
    lengths = None if lens is None else LENS
    got = run(proto, x, state, lengths)
    assert len(got) == (3 if cell == "lstm" else 2)
    assert err(got, oracle(m, p, x, state, lengths)) < TOL
    if lengths is not None:
        # the lengths matter: the full-length oracle disagrees, and Y is zero at padded steps
        assert err(got, oracle(m, p, x, state, None)) > 1e-3
        pad = np.arange(T)[:, None] >= LENS[None, :]
        assert not got[0][pad].any()
    # and the graph reads back as the same model
    m2, p2 = layouts.onnx.from_onnx(proto)
    assert m2.config() == m.config() and m2.direction == direction
    assert list(p2) == list(p) and all(np.array_equal(p2[n], p[n]) for n in p)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_hand_built_reverse_node_with_sequence_lens(cell):
    """One node written with onnx.helper (not to_onnx), raw Y [T, 1, B, H]: the spec's semantics
    read off onnxruntime directly, then the oracle's reverse model with lengths agrees."""
    m, p, x, state = setup(cell, "reverse", 1, seed=7)
    t = layouts.dump("onnx", m, p)
    attrs = layouts.options("onnx", m)
    assert attrs["direction"] == "reverse"
    inits = [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in t.items()]
    inits.append(numpy_helper.from_array(LENS.astype(np.int32), "lens"))
    ins = ["X", "W", "R", "B", "lens", "initial_h"] + (["initial_c"] if cell == "lstm" else [])
    outs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node(OPS[cell], ins, outs, **attrs)], "g",
        [vi("X", TensorProto.FLOAT, [T, B, D])] + [vi(n, TensorProto.FLOAT, [1, B, H]) for n in ins[5:]],
        [vi(n, TensorProto.FLOAT, None) for n in outs], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    got = run(proto, x, state)
    Y = got[0]
    assert Y.shape == (T, 1, B, H)
    for b, n in enumerate(LENS):
        assert not Y[n:, 0, b].any()                       # zero-filled padding
        np.testing.assert_array_equal(got[1][0, b], Y[0, 0, b])   # Y_h: state after step 0
    m2, p2 = layouts.onnx.from_onnx(proto)
    assert m2.direction == "reverse" and all(n.endswith("_reverse") for n in p2)
    y, *fin = oracle(m2, p2, x, state, LENS)
    assert err([Y[:, 0], *got[1:]], [y, *fin]) < TOL
    # the same weights as a forward model (the old reading of a reverse node) disagree
    fwd = m2.replace(direction="forward")
    p_fwd = {n.replace("_reverse", ""): a for n, a in p2.items()}
    assert err([Y[:, 0], *got[1:]], oracle(fwd, p_fwd, x, state, LENS)) > 1e-3
    # and the audit reads the initializer as lengths
    rep = lc.audit(proto, seed=2)
    assert rep.passed, rep.to_text()
    assert rep.config["lengths"] == LENS.tolist() and rep.config["batch"] == B


# ------------------------------------------------------------------ load and dump
def test_reverse_node_loads_as_reverse_model():
    m = lc.GRU(D, H, direction="reverse", reset_after=False)
    p = m.init_params(seed=3)
    t = layouts.dump("onnx", m, p)
    assert t["W"].shape == (1, 3 * H, D)
    m2, p2 = layouts.load("onnx", t, "gru", direction="reverse", linear_before_reset=0)
    assert m2.direction == "reverse" and list(p2) == list(p)
    assert all(np.array_equal(p2[n], p[n]) for n in p)
    # a forward model is not silently written as a reverse node
    with pytest.raises(lc.errors.ConversionError, match="direction='reverse'"):
        layouts.dump("onnx", lc.GRU(D, H), lc.GRU(D, H).init_params(0), direction="reverse")


def test_to_onnx_refuses_bad_sequence_lens():
    m = lc.LSTM(D, H, dtype="float32")
    with pytest.raises(OptionError):
        layouts.onnx.to_onnx(m, m.init_params(0), sequence_lens="graph")
    with pytest.raises(lc.errors.ShapeError):
        layouts.onnx.to_onnx(m, m.init_params(0), sequence_lens=[0, 2])


# ------------------------------------------------------------------ the audit
@pytest.mark.parametrize("cell,direction", [("lstm", "reverse"), ("gru", "bidirectional"),
                                            ("rnn", "reverse")])
def test_audit_feeds_ragged_lengths_to_a_sequence_lens_input(cell, direction):
    m, p, _, _ = setup(cell, direction, 2, seed=4)
    proto = layouts.onnx.to_onnx(m, p, sequence_lens="input")
    rep = lc.audit(proto, seed=5, seq_len=6, batch=3)
    assert rep.passed, rep.to_text()
    lengths = rep.config["lengths"]
    assert lengths[:2] == [6, 3] and len(lengths) == 3 and min(lengths) >= 1
    # lengths= is what the graph is fed (and the oracle gets)
    rep = lc.audit(proto, seed=5, seq_len=6, batch=3, lengths=[2, 6, 1])
    assert rep.passed and rep.config["lengths"] == [2, 6, 1]


def test_audit_lengths_refused_where_they_cannot_go():
    m, p, _, _ = setup("lstm", "forward", 1)
    with pytest.raises(OptionError, match="cannot take lengths"):
        lc.audit(layouts.onnx.to_onnx(m, p), lengths=[5, 2])
    with pytest.raises(OptionError, match="fixes its sequence lengths"):
        lc.audit(layouts.onnx.to_onnx(m, p, sequence_lens=[4, 4]), lengths=[5, 2])


def test_audit_fails_a_reverse_node_held_to_a_forward_model():
    """The planted mistake of a reverse node read as forward (what load did before)."""
    m, p, _, _ = setup("lstm", "reverse", 1, seed=6)
    proto = layouts.onnx.to_onnx(m, p, sequence_lens="input")
    fwd = m.replace(direction="forward")
    p_fwd = {n.replace("_reverse", ""): a for n, a in p.items()}
    rep = lc.audit(proto, model=fwd, params=p_fwd, seed=1)
    assert not rep.passed
    assert "backwards in time" in " ".join(rep.diagnosis)


def _session_target(proto, ignore_lengths):
    """A callable in the onnx layout that runs the graph in onnxruntime, passing its lengths to
    sequence_lens, or (the planted mistake) running every sequence at full length."""
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])

    def target(params, x, state, lengths=None):
        Tx, Bx = x.shape[:2]
        st = state if isinstance(state, tuple) else (state,)
        feed = {"X": x.astype(np.float32), "initial_h": st[0].astype(np.float32),
                "sequence_lens": np.full(Bx, Tx, np.int32) if ignore_lengths or lengths is None
                else np.asarray(lengths, np.int32)}
        if len(st) > 1:
            feed["initial_c"] = st[1].astype(np.float32)
        y, *fin = sess.run(None, feed)
        return y, tuple(fin) if len(fin) > 1 else fin[0]
    return target


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_audit_fails_a_target_that_ignores_sequence_lens(cell):
    m, p, _, _ = setup(cell, "bidirectional", 1, seed=8)
    proto = layouts.onnx.to_onnx(m, p, sequence_lens="input")
    good = lc.audit(_session_target(proto, False), layout="onnx", model=m, params=p,
                    lengths=[5, 2], seed=3)
    assert good.passed, good.to_text()
    bad = lc.audit(_session_target(proto, True), layout="onnx", model=m, params=p,
                   lengths=[5, 2], seed=3)
    assert not bad.passed
    assert "ignores lengths" in " ".join(bad.diagnosis)
    # full length, the two agree: the lengths are what made the difference
    assert lc.audit(_session_target(proto, True), layout="onnx", model=m, params=p, seed=3).passed


def test_cli_audit_onnx_file_reverse_with_sequence_lens(tmp_path):
    from click.testing import CliRunner
    from lstmcheck.cli import cli
    m, p, _, _ = setup("lstm", "reverse", 2, seed=9)
    path = tmp_path / "rev.onnx"
    onnx.save(layouts.onnx.to_onnx(m, p, sequence_lens="input"), str(path))
    res = CliRunner().invoke(cli, ["audit", str(path), "--seq-len", "6", "--batch", "3"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["audit", str(path), "--seq-len", "6", "--batch", "3",
                                   "--lengths", "6,1,4", "--json", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    import json
    assert json.load(open(tmp_path / "a.json"))["config"]["lengths"] == [6, 1, 4]
    for bad_lengths in ("6,x", "6,0,1"):
        res = CliRunner().invoke(cli, ["audit", str(path), "--batch", "3", "--lengths", bad_lengths])
        assert res.exit_code == 2, res.output
    # a planted mistake: Y left in processing order (the exporter reverses each sequence's real
    # steps once more after the reverse node), audited from the file alone
    proto = onnx.load(str(path))
    g = proto.graph
    last = next(n for n in g.node if n.output and n.output[0] == "Y")
    last.output[0] = "Y_processing_order"
    g.node.extend([helper.make_node("Cast", ["sequence_lens"], ["lens64"], to=TensorProto.INT64),
                   helper.make_node("ReverseSequence", ["Y_processing_order", "lens64"], ["Y"],
                                    time_axis=0, batch_axis=1)])
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    res = CliRunner().invoke(cli, ["audit", str(bad), "--seq-len", "6", "--batch", "3"])
    assert res.exit_code == 1, res.output


def test_npz_dump_with_lengths(tmp_path):
    """A dump's ``lengths`` array is the lengths its y was computed with."""
    m = lc.GRU(D, H, bidirectional=True)
    p = m.init_params(seed=11)
    rng = np.random.default_rng(11)
    x, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((2, B, H))
    y, hn, _ = m.forward(p, x, h0, lengths=LENS)
    arrays = {"x": x, "h0": h0, "y": y, "hn": hn,
              **{f"param/{n}": a for n, a in layouts.dump("torch", m, p).items()}}
    np.savez(tmp_path / "good.npz", lengths=LENS, **arrays)
    np.savez(tmp_path / "no_lengths.npz", **arrays)
    assert lc.audit(str(tmp_path / "good.npz"), cell="gru").passed
    assert not lc.audit(str(tmp_path / "no_lengths.npz"), cell="gru").passed
