"""The PyTorch and onnxruntime rows of docs/conformance.md, one test per row (the row's id is
the test's name after ``test_row_``); each skips cleanly without its framework. The last test
holds the table and these tests together."""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"


def checks(rep):
    return {r["check"] for r in rep.rows}


def grads_of(rep):
    return {r["tensor"] for r in rep.rows if r["check"] == "gradient"}


def test_row_torch_modules():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for dtype in (torch.float64, torch.float32):
        for m in (torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True),
                  torch.nn.LSTM(3, 5, proj_size=2, batch_first=True),
                  torch.nn.GRU(3, 4, num_layers=2), torch.nn.RNN(3, 4, nonlinearity="relu")):
            rep = lc.audit(m.to(dtype), seed=1)
            assert rep.passed and checks(rep) == {"forward", "gradient", "fd"}, rep.to_text()


def test_row_torch_cells():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for m in (torch.nn.LSTMCell(3, 4), torch.nn.GRUCell(3, 4), torch.nn.RNNCell(3, 4)):
        rep = lc.audit(m.double(), seed=1)
        assert rep.passed and "gradient" in checks(rep), rep.to_text()


def test_row_torch_packed_sequences():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for m in (torch.nn.LSTM(3, 4, bidirectional=True), torch.nn.GRU(3, 4, batch_first=True)):
        for dtype in (torch.float64, torch.float32):
            rep = lc.audit(m.to(dtype), lengths=[5, 2, 4], batch=3, seed=2)
            assert rep.passed and rep.config["lengths"] == [5, 2, 4], rep.to_text()
            assert "dx" in grads_of(rep)


def _export(module, path, state=False):
    torch = pytest.importorskip("torch")
    x = torch.randn((2, 5, 3) if module.batch_first else (5, 2, 3), dtype=next(module.parameters()).dtype)
    args = (x,)
    if state:
        h = torch.randn(module.num_layers * (1 + module.bidirectional), 2, module.hidden_size,
                        dtype=x.dtype)
        args = (x, (h, h.clone()) if isinstance(module, torch.nn.LSTM) else h)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False)
    return str(path)


def test_row_onnxruntime_torch_exports(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    for k, (m, state) in enumerate([(torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True), True),
                                    (torch.nn.LSTM(3, 4, batch_first=True), False),
                                    (torch.nn.GRU(3, 4, bidirectional=True), True),
                                    (torch.nn.RNN(3, 4, nonlinearity="relu"), False)]):
        rep = lc.audit(_export(m, tmp_path / f"{k}.onnx", state), seed=1)
        assert rep.passed and "dx" in grads_of(rep), rep.to_text()
        assert ("dh0" in grads_of(rep)) == state


def test_row_onnxruntime_float64_exports(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    rep = lc.audit(_export(torch.nn.LSTM(3, 4).double(), tmp_path / "l64.onnx"), seed=1)
    assert rep.passed, rep.to_text()
    if rep.dtype == "float32":
        assert any("no float64 LSTM kernel" in n for n in rep.notes)


def _node(cell, direction, sequence_lens):
    m = lc.build(cell, 3, 4, direction=direction, dtype="float32")
    return m, lc.layouts.onnx.to_onnx(m, m.init_params(seed=4), sequence_lens=sequence_lens)


def test_row_onnxruntime_nodes_reverse_with_sequence_lens():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    for cell in ("lstm", "gru", "rnn"):
        m, proto = _node(cell, "reverse", [5, 2, 4])
        rep = lc.audit(proto, seed=1)
        assert rep.passed and rep.config["lengths"] == [5, 2, 4], rep.to_text()
        assert "reverse" in rep.target and "dx" in grads_of(rep)


def test_row_onnxruntime_nodes_bidirectional_sequence_lens_input():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    for cell in ("lstm", "gru"):
        m, proto = _node(cell, "bidirectional", "input")
        rep = lc.audit(proto, seed=1, batch=3)
        assert rep.passed and "sequence_lens fed" in rep.target, rep.to_text()
        assert len(set(rep.config["lengths"])) > 1            # ragged, not silently full length


def test_the_table_lists_these_rows():
    text = DOC.read_text()
    block = text.split("<!-- rows: PyTorch and onnxruntime -->")[1].split("<!-- end rows -->")[0]
    ids = re.findall(r"`test_row_(\w+)`", block)
    here = sorted(n[len("test_row_"):] for n in globals() if n.startswith("test_row_"))
    assert sorted(ids) == here
