"""Every layout and option: load(dump(x)) and dump(load(t)) are bit-exact; what a layout cannot
express raises ConversionError; bad tensors raise one clear sentence."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import layouts
from lstmcheck.errors import ConversionError, OptionError, ParameterError, ShapeError
from lstmcheck.models import activations as A

D, H = 4, 3

# (layout, cell, model options, dump options)
CASES = [
    *[("torch", "lstm", dict(variant=v), {}) for v in lc.models.LSTM_VARIANTS],
    ("torch", "lstm", dict(variant="peephole+cifg", num_layers=2, bidirectional=True), {}),
    ("torch", "lstm", dict(proj_size=2, num_layers=2, bidirectional=True), {}),
    ("torch", "lstm", dict(clip=0.5, cell_clip=2.0, activations=("hard_sigmoid", "elu(0.5)", "softsign")), {}),
    ("torch", "lstm", {}, dict(as_cell=True)),
    ("torch", "gru", dict(reset_after=False, num_layers=2), {}),
    ("torch", "gru", dict(bidirectional=True), dict(as_cell=False)),
    ("torch", "rnn", dict(nonlinearity="relu", num_layers=3), {}),
    ("torch", "rnn", dict(nonlinearity="identity"), dict(as_cell=True)),
    ("keras", "lstm", {}, {}),
    ("keras", "lstm", dict(num_layers=2, bidirectional=True, variant="peephole"), {}),
    ("keras", "lstm", dict(activations=(f"hard_sigmoid({1 / 6!r}, 0.5)", "relu", "relu"),
                           batch_first=True), {}),
    ("keras", "gru", dict(reset_after=True, num_layers=2), dict(reset_after=True)),
    ("keras", "gru", dict(reset_after=False, bidirectional=True), dict(reset_after=False)),
    ("keras", "rnn", dict(nonlinearity="identity", num_layers=2), {}),
    ("keras", "rnn", dict(nonlinearity="relu"), {}),
    ("onnx", "lstm", {}, {}),
    ("onnx", "lstm", dict(variant="peephole", num_layers=2, bidirectional=True), {}),
    ("onnx", "lstm", dict(variant="cifg+peephole", clip=0.25), {}),
    ("onnx", "lstm", dict(variant="no_output_tanh"), {}),
    ("onnx", "lstm", dict(activations=("hard_sigmoid(0.25, 0.5)", "leaky_relu(0.125)",
                                       "scaled_tanh(0.5, 2.0)"), bidirectional=True), {}),
    ("onnx", "lstm", dict(direction="reverse"), {}),
    ("onnx", "lstm", dict(direction="reverse", variant="peephole", num_layers=2), dict(direction="reverse")),
    ("onnx", "gru", dict(direction="reverse", reset_after=True), {}),
    ("onnx", "gru", dict(reset_after=False, num_layers=2), {}),
    ("onnx", "gru", dict(reset_after=True, bidirectional=True), {}),
    ("onnx", "rnn", dict(nonlinearity="identity", batch_first=True, direction="reverse"), dict(direction="reverse")),
    ("onnx", "rnn", dict(nonlinearity="relu", bidirectional=True), {}),
    ("tf", "lstm", {}, {}),
    ("tf", "lstm", dict(variant="peephole", cell_clip=3.0), dict(cell_type="LSTMBlockCell")),
    ("tf", "lstm", {}, dict(cell_type="BasicLSTMCell", forget_bias=0.0)),
    ("tf", "lstm", dict(proj_size=2, variant="peephole", num_layers=2, bidirectional=True),
     dict(cell_type="LSTMCell", forget_bias=0.5)),
    ("cudnn", "lstm", dict(num_layers=2, bidirectional=True), {}),
    ("cudnn", "lstm", dict(proj_size=2), {}),
    ("cudnn", "gru", dict(bidirectional=True), {}),
    ("cudnn", "rnn", dict(nonlinearity="relu", num_layers=2), {}),
]


def ids(case):
    layout, cell, opts, dopts = case
    return "-".join([layout, cell] + [f"{k}={v}" for k, v in {**opts, **dopts}.items()])


def in_image(layout, model, params, dump_opts):
    """Params a one-bias layout can hold exactly: the layout's own bias split."""
    p = {n: a.copy() for n, a in params.items()}
    one_bias = layout == "tf" or (layout == "keras" and not (model.kind == "gru" and model.reset_after))
    if one_bias:
        for n in p:
            if n.startswith("bias_hh"):
                p[n][:] = 0.0
                if layout == "tf":
                    p[n][H:2 * H] = dump_opts.get("forget_bias", 1.0)
    return p


def normalized(model):
    cfg = model.config()
    for k in ("act_f", "act_g", "act_h"):
        if k in cfg:
            cfg[k] = A.get(cfg[k])
    return cfg


def assert_identical(a: dict, b: dict):
    assert list(a) == list(b)
    for n in a:
        assert a[n].dtype == b[n].dtype and a[n].shape == b[n].shape, n
        assert np.array_equal(a[n], b[n]), n


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_round_trip_bit_exact(case, dtype):
    layout, cell, opts, dump_opts = case
    model = lc.build(cell, D, H, dtype=dtype, **opts)
    params = in_image(layout, model, model.init_params(seed=len(ids(case))), dump_opts)
    tensors = layouts.dump(layout, model, params, **dump_opts)
    assert all(isinstance(a, np.ndarray) and a.dtype == model.dtype for a in tensors.values())
    load_opts = layouts.options(layout, model, **dump_opts)
    model2, params2 = layouts.load(layout, tensors, cell, **load_opts)
    assert normalized(model2) == normalized(model)
    assert_identical(params2, params)                        # load(dump(x)) == x
    assert_identical(layouts.dump(layout, model2, params2, **dump_opts), tensors)  # and back
    # the cell is also read from the shapes alone (a cifg LSTM has a GRU's three blocks)
    if "cifg" not in str(opts.get("variant", "")):
        assert layouts.load(layout, tensors, None, **load_opts)[0].kind == cell


@pytest.mark.parametrize("layout,cell", [("keras", "lstm"), ("keras", "rnn"), ("tf", "lstm"),
                                         ("keras", "gru")])
def test_fused_bias_same_function(layout, cell):
    """Two biases into a one-bias layout: the sum, so the function is the same up to round-off;
    exact=True refuses a sum that rounds."""
    model = lc.build(cell, D, H, **({"reset_after": False} if cell == "gru" else {}))
    rng = np.random.default_rng(3)   # torch-style uniform draws share one grid and add exactly
    params = {n: rng.standard_normal(a.shape) for n, a in model.init_params(seed=3).items()}
    tensors = layouts.dump(layout, model, params)
    model2, params2 = layouts.load(layout, tensors, cell, **layouts.options(layout, model))
    x = np.random.default_rng(0).standard_normal((6, 2, D))
    y1, _, _ = model.forward(params, x)
    y2, _, _ = model2.forward(params2, x)
    np.testing.assert_allclose(y2, y1, rtol=0, atol=1e-14)
    with pytest.raises(ConversionError, match="not exactly representable"):
        layouts.dump(layout, model, params, exact=True)


def lstm(**kw):
    return lc.LSTM(D, H, **kw)


@pytest.mark.parametrize("layout,model,dump_opts,words", [
    ("keras", lc.GRU(D, H, reset_after=True), dict(reset_after=False), "reset_after"),
    ("keras", lc.GRU(D, H, reset_after=False), dict(reset_after=True), "reset_after"),
    ("cudnn", lc.GRU(D, H, reset_after=False), {}, "reset_after"),
    ("keras", lstm(proj_size=2), {}, "projection"),
    ("keras", lstm(variant="cifg"), {}, "cifg"),
    ("keras", lstm(clip=1.0), {}, "clip"),
    ("keras", lstm(activations=("sigmoid", "tanh", "relu")), {}, "one `activation`"),
    ("keras", lstm(activations=("hard_sigmoid", "tanh", "tanh")), {}, "no Keras 3 equivalent"),
    ("tf", lstm(variant="cifg"), {}, "cifg"),
    ("tf", lstm(variant="peephole"), dict(cell_type="BasicLSTMCell"), "peepholes"),
    ("tf", lstm(cell_clip=1.0), dict(cell_type="BasicLSTMCell"), "cell_clip"),
    ("tf", lstm(proj_size=2), dict(cell_type="LSTMBlockCell"), "projection"),
    ("tf", lstm(activations=("hard_sigmoid", "tanh", "tanh")), {}, "activations"),
    ("cudnn", lstm(variant="peephole"), {}, "peepholes"),
    ("cudnn", lstm(cell_clip=1.0), {}, "cell_clip"),
    ("cudnn", lc.RNN(D, H, nonlinearity="identity"), {}, "identity"),
    ("onnx", lstm(variant="nig"), {}, "removed gate"),
    ("onnx", lstm(variant="fgr"), {}, "gate recurrence"),
    ("onnx", lstm(bidirectional=True), dict(direction="reverse"), "reverse"),
    ("onnx", lstm(), dict(direction="reverse"), "direction='reverse'"),
    ("onnx", lstm(direction="reverse"), dict(direction="forward"), "forward"),
    ("torch", lstm(num_layers=2), dict(as_cell=True), "Cell"),
])
def test_inexpressible_conversions(layout, model, dump_opts, words):
    with pytest.raises(ConversionError, match=words) as e:
        layouts.dump(layout, model, model.init_params(seed=0), **dump_opts)
    assert one_sentence(str(e.value))


def one_sentence(msg):
    return msg.endswith(".") and ". " not in msg[:-1].replace("e.g. ", "") and "\n" not in msg


def test_unknown_layout():
    m = lc.LSTM(D, H)
    for call in (lambda: layouts.dump("caffe", m, m.init_params(0)),
                 lambda: layouts.load("caffe", {}, "lstm"), lambda: layouts.options("caffe", m)):
        with pytest.raises(OptionError, match="unknown layout 'caffe'") as e:
            call()
        assert one_sentence(str(e.value))


def test_layout_without_that_cell():
    with pytest.raises(OptionError, match="lstm cells, not 'gru'"):
        layouts.load("tf", {}, "gru")
    with pytest.raises(OptionError, match="not gru"):
        layouts.dump("tf", lc.GRU(D, H), lc.GRU(D, H).init_params(0))


@pytest.mark.parametrize("layout", list(layouts.LAYOUTS))
def test_bad_tensors(layout):
    model = lc.LSTM(D, H, num_layers=2)
    t = layouts.dump(layout, model, model.init_params(seed=1))
    opts = layouts.options(layout, model)
    name = sorted(t)[-1]
    with pytest.raises(ParameterError) as e:                       # a missing name
        layouts.load(layout, {n: a for n, a in t.items() if n != name}, "lstm", **opts)
    assert one_sentence(str(e.value)) and name in str(e.value)
    with pytest.raises(ParameterError, match="unexpected names extra") as e:   # an extra one
        layouts.load(layout, {**t, "extra": np.zeros(3)}, "lstm", **opts)
    assert one_sentence(str(e.value))
    layouts.load(layout, {**t, "extra": np.zeros(3)}, "lstm", strict=False, **opts)
    bad = {**t, name: np.zeros(t[name].shape + (1,))}                # a wrong shape
    with pytest.raises(ShapeError) as e:
        layouts.load(layout, bad, "lstm", **opts)
    assert one_sentence(str(e.value)) and name in str(e.value)
    with pytest.raises(ParameterError) as e:                        # nothing at all
        layouts.load(layout, {}, "lstm", **opts)
    assert one_sentence(str(e.value))
    with pytest.raises(ParameterError, match="dict of arrays"):
        layouts.load(layout, [1, 2], "lstm")


def test_anchor_with_wrong_rank_and_integer_tensors():
    with pytest.raises(ShapeError, match="rank 2"):
        layouts.load("onnx", {"W": np.zeros((12, 4)), "R": np.zeros((1, 12, 3))}, "lstm")
    t = layouts.dump("torch", lc.RNN(D, H), lc.RNN(D, H).init_params(0))
    with pytest.raises(lc.errors.DTypeError, match="floating point"):
        layouts.load("torch", {n: a.astype(int) for n, a in t.items()}, "rnn")


def test_detect():
    for layout in layouts.LAYOUTS:
        m = lc.LSTM(D, H)
        assert layouts.detect(layouts.dump(layout, m, m.init_params(0))) == layout
    with pytest.raises(ParameterError, match="cannot tell the layout"):
        layouts.detect({"foo": np.zeros(3)})


def test_torch_state_dict_prefix():
    m = lc.GRU(D, H)
    t = layouts.dump("torch", m, m.init_params(0))
    big = {**{"encoder.rnn." + n: a for n, a in t.items()}, "head.weight": np.zeros((2, 3))}
    m2, p2 = layouts.load("torch", big, "gru")
    assert_identical(p2, m.init_params(0))
    two = {**big, **{"decoder.rnn." + n: a for n, a in t.items()}}
    with pytest.raises(ParameterError, match="pass prefix="):
        layouts.load("torch", two, "gru")
    assert layouts.load("torch", two, "gru", prefix="decoder.rnn.")[0].kind == "gru"


def test_bias_free_modules_load_with_zero_biases():
    for layout in ("torch", "keras"):
        m = lc.LSTM(D, H)
        t = layouts.dump(layout, m, m.init_params(0))
        t = {n: a for n, a in t.items() if "bias" not in n}
        _, p = layouts.load(layout, t, "lstm")
        assert not p["bias_ih_l0"].any() and not p["bias_hh_l0"].any()


def test_keras_gru_bias_shape_contradicts_option():
    m = lc.GRU(D, H)
    t = layouts.dump("keras", m, m.init_params(0))
    with pytest.raises(ShapeError, match="contradicts reset_after=False"):
        layouts.load("keras", t, "gru", reset_after=False)


@pytest.mark.gpu
def test_round_trip_on_gpu():
    """dump takes device arrays and writes host arrays; load puts params on the asked backend."""
    if "cupy" not in lc.backend.available_backends():
        pytest.skip("CuPy with a visible GPU is needed")
    for layout in ("torch", "onnx", "cudnn"):
        model = lc.LSTM(D, H, num_layers=2, bidirectional=True, backend="cupy")
        params = model.init_params(seed=0)
        tensors = layouts.dump(layout, model, params)
        assert all(isinstance(a, np.ndarray) for a in tensors.values())
        model2, params2 = layouts.load(layout, tensors, "lstm", backend="cupy",
                                       **layouts.options(layout, model))
        assert model2.backend == "cupy"
        assert_identical({n: lc.backend.to_host(a) for n, a in params2.items()},
                         {n: lc.backend.to_host(a) for n, a in params.items()})
