"""File loading: .npz, .safetensors, PyTorch .pt/.pth and .onnx into (model, params); missing,
corrupt and foreign files raise FileFormatError with one sentence."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import io, layouts
from lstmcheck.errors import FileFormatError, LstmcheckError


def identical(a, b):
    return list(a) == list(b) and all(np.array_equal(a[n], b[n]) and a[n].dtype == b[n].dtype
                                      for n in a)


def one_line(exc):
    msg = str(exc.value)
    return "\n" not in msg and msg.rstrip(")").endswith(".") and len(msg) < 400


@pytest.mark.parametrize("layout,model", [
    ("torch", lc.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)),
    ("keras", lc.GRU(3, 4, bidirectional=True)),
    ("onnx", lc.LSTM(3, 4, variant="peephole", num_layers=2)),
    ("tf", lc.LSTM(3, 4, dtype="float32")),
    ("cudnn", lc.RNN(3, 4, nonlinearity="relu", num_layers=2)),
])
def test_npz_round_trip_with_detected_layout(tmp_path, layout, model):
    params = model.init_params(seed=1)
    if layout == "tf":
        params = {n: (a * 0 + np.where(np.arange(a.size) // 4 == 1, 1.0, 0.0).astype(a.dtype)
                      if n.startswith("bias_hh") else a) for n, a in params.items()}
    path = tmp_path / "w.npz"
    io.save_npz(path, layouts.dump(layout, model, params))
    m2, p2 = io.load_file(path, **layouts.options(layout, model))
    assert m2.config() == model.config() and identical(p2, params)
    assert identical(io.read_tensors(path), layouts.dump(layout, model, params))


def test_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model = lc.LSTM(3, 4, bidirectional=True)
    params = model.init_params(seed=2)
    path = tmp_path / "w.safetensors"
    st.save_file(layouts.dump("torch", model, params), str(path))
    m2, p2 = io.load_file(path)
    assert m2.config() == model.config() and identical(p2, params)


def test_torch_files(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("rnn", torch.nn.GRU(3, 5, num_layers=2))
    net.add_module("head", torch.nn.Linear(5, 2))
    _, want = layouts.from_torch(net.rnn)
    for name, obj in (("sd.pt", net.state_dict()),
                      ("ckpt.pth", {"state_dict": net.state_dict(), "epoch": 3})):
        torch.save(obj, tmp_path / name)
        model, params = io.load_file(tmp_path / name)
        assert model.kind == "gru" and model.num_layers == 2 and identical(params, want)
    torch.save(torch.zeros(3), tmp_path / "t.pt")
    with pytest.raises(FileFormatError, match="not a state_dict") as e:
        io.load_file(tmp_path / "t.pt")
    assert one_line(e)


def test_onnx_files(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = lc.GRU(3, 4, reset_after=False, num_layers=2, bidirectional=True)
    params = model.init_params(seed=3)
    path = tmp_path / "gru.onnx"
    onnx.save(layouts.onnx.to_onnx(model, params), str(path))
    m2, p2 = io.load_file(path)
    assert m2.config() == model.config() and identical(p2, params)
    with pytest.raises(FileFormatError, match="not a LSTM"):
        io.load_file(path, cell="lstm")
    assert set(io.read_tensors(path)) >= {"layer0/W", "layer1/R"}


def test_onnx_without_rnn_node(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "g",
                              [vi("a", TensorProto.FLOAT, [2]), vi("b", TensorProto.FLOAT, [2])],
                              [vi("c", TensorProto.FLOAT, [2])])
    path = tmp_path / "add.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(FileFormatError, match="holds no LSTM, GRU or RNN node .*Add") as e:
        io.load_file(path)
    assert one_line(e)


def test_onnx_weights_not_stored(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    vi = helper.make_tensor_value_info
    node = helper.make_node("RNN", ["X", "W", "R"], ["Y"], hidden_size=2)
    graph = helper.make_graph([node], "g", [vi(n, TensorProto.FLOAT, None) for n in "XWR"],
                              [vi("Y", TensorProto.FLOAT, None)])
    path = tmp_path / "rnn.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(FileFormatError, match="computed value 'W'") as e:
        io.load_file(path)
    assert one_line(e)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pt", ".pth", ".onnx"])
def test_corrupt_files(tmp_path, suffix):
    path = tmp_path / ("bad" + suffix)
    path.write_bytes(bytes(range(256)) * 3)
    try:
        with pytest.raises(FileFormatError, match="not a readable") as e:
            io.load_file(path)
    except lc.errors.MissingDependencyError:
        pytest.skip("optional reader not installed")
    assert one_line(e) and "bad" + suffix in str(e.value)


def test_missing_and_foreign_files(tmp_path):
    for path, words in ((tmp_path / "nope.npz", "not found"), (tmp_path, "a folder"),
                        (tmp_path / "w.h5", "unknown file type '.h5'")):
        if path.suffix == ".h5":
            path.write_bytes(b"x")
        with pytest.raises(FileFormatError, match=words) as e:
            io.read_tensors(path)
        assert one_line(e)


def test_npz_with_foreign_names(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, foo=np.zeros(3))
    with pytest.raises(LstmcheckError, match="cannot tell the layout"):
        io.load_file(path)
    model = lc.LSTM(3, 4)
    io.save_npz(path, {**layouts.dump("keras", model, model.init_params(0)), "x": np.zeros(2)})
    with pytest.raises(LstmcheckError, match="x.npz.*unexpected names x"):
        io.load_file(path)
    assert io.load_file(path, strict=False)[0].kind == "lstm"
