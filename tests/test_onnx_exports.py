"""Whole-graph audits of what torch.onnx.export writes (the legacy TorchScript exporter,
``dynamo=False``: torch 2.13's dynamo exporter needs onnxscript): one node per layer with the
Slice/Squeeze/Transpose/Reshape/Concat torch puts around it, run as a black box in onnxruntime.
Forward against the oracle; gradients are central differences of the onnxruntime forward,
checked against the oracle's exact ones. A planted mistake in the exported file fails."""
import warnings

import numpy as np
import pytest

import lstmcheck as lc

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

EXPORTS = {
    "lstm": lambda: torch.nn.LSTM(3, 4),
    "lstm_2_layers": lambda: torch.nn.LSTM(3, 4, num_layers=2),
    "lstm_bidirectional": lambda: torch.nn.LSTM(3, 4, bidirectional=True),
    "lstm_batch_first": lambda: torch.nn.LSTM(3, 4, batch_first=True),
    "lstm_2_layers_bidirectional": lambda: torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True),
    "gru": lambda: torch.nn.GRU(3, 4),
    "gru_bidirectional": lambda: torch.nn.GRU(3, 4, bidirectional=True),
    "rnn_relu": lambda: torch.nn.RNN(3, 4, nonlinearity="relu"),
}


def export(module, path, with_state=False, names=None, dtype=torch.float32):
    torch.manual_seed(0)
    module = module.to(dtype)
    bf = getattr(module, "batch_first", False)
    x = torch.randn((2, 5, 3) if bf else (5, 2, 3), dtype=dtype)
    args = (x,)
    if with_state:
        dirs = 2 if module.bidirectional else 1
        h = torch.randn(module.num_layers * dirs, 2, module.hidden_size, dtype=dtype)
        args = (x, (h, torch.randn_like(h)) if isinstance(module, torch.nn.LSTM) else h)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, input_names=names)
    return str(path)


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_torch_export_audits_as_a_whole_graph(kind, tmp_path):
    module = EXPORTS[kind]()
    path = export(module, tmp_path / f"{kind}.onnx")
    rep = lc.audit(path, seed=1)
    assert rep.passed, rep.to_text()
    grads = {r["tensor"] for r in rep.rows if r["check"] == "gradient"}
    assert "dx" in grads and any(n.endswith("W") for n in grads), grads
    assert rep.dtype == "float32"
    # the file holds the module's weights: the oracle read them from it
    m, p = lc.layouts.from_torch(module)
    assert m.describe() in rep.model
    if "batch_first" in kind:
        assert "batch_first" in rep.target


@pytest.mark.parametrize("kind", ["lstm_2_layers", "gru_bidirectional"])
def test_initial_states_under_any_input_name(kind, tmp_path):
    module = EXPORTS[kind]()
    names = ["seq", "hidden", "cell"] if "lstm" in kind else ["seq", "hidden"]
    path = export(module, tmp_path / "s.onnx", with_state=True, names=names)
    rep = lc.audit(path, seed=2)
    assert rep.passed, rep.to_text()
    grads = {r["tensor"] for r in rep.rows if r["check"] == "gradient"}
    assert "dh0" in grads and ("dc0" in grads) == ("lstm" in kind)


def _swap_gate_blocks(path, out, G, H):
    """The planted mistake: the first node's W with its first two gate blocks swapped."""
    proto = onnx.load(path)
    node = next(n for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN"))
    for i, t in enumerate(proto.graph.initializer):
        if t.name == node.input[1]:
            a = numpy_helper.to_array(t).copy()
            a[:, :H], a[:, H:2 * H] = a[:, H:2 * H].copy(), a[:, :H].copy()
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))
    onnx.save(proto, out)
    return out


def test_a_planted_mistake_in_the_export_fails_forward_and_gradients(tmp_path):
    module = EXPORTS["lstm_2_layers"]()
    path = export(module, tmp_path / "good.onnx")
    bad = _swap_gate_blocks(path, str(tmp_path / "bad.onnx"), 4, 4)
    m, p = lc.layouts.from_torch(module)
    rep = lc.audit(bad, model=m, params=p, seed=1)     # held to the module it came from
    assert not rep.passed
    failed = {r["tensor"] for r in rep.rows if not r["passed"]}
    assert "y" in failed and "dx" in failed, rep.to_text()
    assert lc.audit(path, model=m, params=p, seed=1).passed


def test_float64_graph_is_run_in_float32_and_says_so(tmp_path):
    """onnxruntime (1.32 here) has no float64 LSTM/GRU/RNN kernel: the graph is run in float32
    and the report says so; the audit never ends in an internal error."""
    path = export(torch.nn.GRU(3, 4), tmp_path / "g64.onnx", dtype=torch.float64)
    rep = lc.audit(path, seed=1)
    assert rep.passed, rep.to_text()
    ort_float64 = any("no float64" in n for n in rep.notes)
    assert rep.dtype == ("float32" if ort_float64 else "float64")


def test_cli_audits_a_torch_export(tmp_path):
    from click.testing import CliRunner
    from lstmcheck.cli import cli
    path = export(EXPORTS["lstm_bidirectional"](), tmp_path / "bi.onnx")
    res = CliRunner().invoke(cli, ["audit", path])
    assert res.exit_code == 0, res.output
    assert "PASSED" in res.output
