"""Golden vectors: coverage of the suite, verify() with correct, buggy, partial and real PyTorch
implementations, stored gradients against finite differences, files that changed."""
import json
import os

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import vectors as V
from lstmcheck.audit import read_dump
from lstmcheck.errors import FileFormatError, OptionError, ShapeError


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vec") / "suite"
    return folder, V.export(folder, seed=3)


def oracle_impl(config, params, x, state, dy=None, dstate=None):
    """The oracle reached through the layouts: what a correct implementation returns."""
    model, p = lc.layouts.load(config["layout"], params, config["cell"], **config["layout_options"])
    flip = config["time_reversed"]
    y, fin, tape = model.forward(p, x[::-1] if flip else x, state)
    return y[::-1] if flip else y, fin


def test_suite_covers_cells_variants_layers_directions_layouts(suite):
    folder, manifest = suite
    cases = manifest["cases"]
    assert json.load(open(folder / "manifest.json")) == json.loads(json.dumps(manifest))
    assert (folder / "README.md").read_text().startswith("# lstmcheck golden vectors")
    cfgs = [c["config"] for c in cases]
    assert {c["cell"] for c in cases} == set(lc.models.registry.names())
    assert {c["variant"] for c in cfgs if c["cell"] == "lstm"} >= set(lc.models.LSTM_VARIANTS) - {"noaf"}  # noaf is no_output_tanh
    assert {(c["num_layers"], c["bidirectional"]) for c in cfgs} == {(1, False), (1, True), (2, False), (2, True),
                                                                      (3, False), (3, True)}
    assert {c["layout"] for c in cases} == {"torch", "keras", "onnx", "tf", "cudnn"}
    opts = [c["layout_options"] for c in cases]
    assert any(o.get("input_forget") for o in opts) and any(o.get("direction") == "reverse" for o in opts)
    assert {o.get("linear_before_reset") for o in opts} >= {0, 1}
    assert any("clip" in o for o in opts) and any(c.get("cell_clip") for c in cfgs)
    assert any(c.get("proj_size") for c in cfgs) and {c.get("reset_after") for c in cfgs} >= {True, False}
    for c in cases:
        d = read_dump(folder / c["file"])
        assert d["x"].shape[0] >= 3 and d["x"].dtype == np.float64
        assert np.all(d["h0"] != 0) and ("c0" not in d or np.all(d["c0"] != 0))
    # per-gate-distinct weights: no two gate blocks alike
    d = read_dump(folder / "lstm_l1_uni.npz")
    blocks = np.split(d["param/weight_hh_l0"], 4)
    assert all(not np.allclose(a, b) for i, a in enumerate(blocks) for b in blocks[i + 1:])


def test_verify_passes_the_oracle_and_every_case_file_audits_clean(suite):
    folder, manifest = suite
    rep = V.verify(folder, oracle_impl)
    assert rep.passed, rep.to_text()
    assert len(rep.cases) == len(manifest["cases"])
    json.dumps(rep.to_dict())
    for c in manifest["cases"][::4]:
        a = lc.audit(folder / c["file"])
        assert a.passed, a.to_text()


def test_verify_names_failing_cases_and_skips(suite):
    folder, _ = suite

    def swapped(config, params, x, state):
        if config["layout"] != "torch" or config["cell"] != "lstm":
            raise NotImplementedError
        p = dict(params)
        H = config["config"]["hidden_size"]
        for n in ("weight_ih_l0", "weight_hh_l0"):        # i and f blocks exchanged in layer 0
            a = p[n]
            p[n] = np.concatenate([a[H:2 * H], a[:H], a[2 * H:]])
        return oracle_impl(config, p, x, state)

    rep = V.verify(folder, swapped)
    assert not rep.passed
    failed = [c["name"] for c in rep.cases if not c["skipped"] and not c["passed"]]
    assert "lstm_l1_uni" in failed and "lstm_l2_bi" in failed
    assert all(c["name"].startswith("lstm") for c in rep.cases if not c["skipped"])
    assert "lstm_l1_uni" in rep.summary and "FAIL" in rep.to_text()
    only = V.verify(folder, oracle_impl, cases=["gru_l1_uni"])
    assert only.passed and len(only.cases) == 1


def test_real_pytorch_implementation_verifies_with_gradients(suite):
    torch = pytest.importorskip("torch")
    folder, _ = suite
    kinds = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}

    def torch_impl(config, params, x, state, dy=None, dstate=None):
        cfg = config["config"]
        if config["cell"] not in kinds:            # torch.nn has no such module
            raise NotImplementedError
        if config["layout"] != "torch" or cfg.get("variant", "vanilla") != "vanilla" \
                or cfg.get("reset_after") is False or cfg.get("nonlinearity") == "identity" \
                or cfg.get("clip") or cfg.get("cell_clip") or "activations" in cfg:
            raise NotImplementedError
        kw = {"nonlinearity": cfg["nonlinearity"]} if config["cell"] == "rnn" else {}
        if cfg.get("proj_size"):
            kw["proj_size"] = cfg["proj_size"]
        mod = kinds[config["cell"]](cfg["input_size"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                                    bidirectional=cfg["bidirectional"], **kw).double()
        w = {n: torch.tensor(a, requires_grad=True) for n, a in params.items()}
        xs = torch.tensor(x, requires_grad=True)
        st = tuple(torch.tensor(s, requires_grad=True) for s in (state if isinstance(state, tuple) else (state,)))
        y, fin = torch.func.functional_call(mod, w, (xs, st if len(st) == 2 else st[0]))
        fin = fin if isinstance(fin, tuple) else (fin,)
        ds = dstate if isinstance(dstate, tuple) else (dstate,)
        loss = (y * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(fin, ds))
        loss.backward()
        grads = {n: t.grad.numpy() for n, t in w.items()}
        grads.update(x=xs.grad.numpy(), **{k: s.grad.numpy() for k, s in zip(("h0", "c0"), st)})
        return y.detach().numpy(), tuple(f.detach().numpy() for f in fin), grads

    rep = V.verify(folder, torch_impl)
    assert rep.passed, rep.to_text()
    ran = [c for c in rep.cases if not c["skipped"]]
    assert len(ran) >= 12 and all(c["checked"] > 5 for c in ran)


@pytest.mark.parametrize("name", ["keras_gru_reset_before", "tf_block_lstm", "onnx_lstm_reverse",
                                  "cudnn_rnn_l2"])
def test_stored_gradients_match_finite_differences(suite, name):
    """The expected gradients in a case are the derivative of its expected forward (
    central differences of the layout-tensor loss through lc.check_gradients)."""
    folder, manifest = suite
    entry = next(c for c in manifest["cases"] if c["name"] == name)
    d = read_dump(folder / entry["file"])
    n_state = 2 if entry["cell"] == "lstm" else 1
    theta = {k[len("param/"):]: v for k, v in d.items() if k.startswith("param/")}
    theta["x"] = d["x"]
    grads = {n: d[f"grad/{n}"] for n in theta}

    def loss(th):
        tensors = {n: a for n, a in th.items() if n != "x"}
        y, fin = oracle_impl(entry, tensors, th["x"], tuple(d[k] for k in ("h0", "c0")[:n_state])
                             if n_state == 2 else d["h0"])
        fin = fin if isinstance(fin, tuple) else (fin,)
        return float(np.sum(y * d["dy"]) + sum(np.sum(f * d[k]) for f, k in zip(fin, ("dhn", "dcn"))))

    # fixed bands: the derived ones sit within a factor 2 of float64 round-off here
    rep = lc.check_gradients(loss, theta, grads, method="central", elements=4, seed=1, rtol=1e-7,
                             atol=1e-9)
    assert rep.passed, rep.to_text()


def test_files_that_changed_and_bad_arguments(suite, tmp_path):
    folder, manifest = suite
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "rnn_l1_uni.npz").write_bytes(b"tampered")
    with pytest.raises(FileFormatError, match="sha256"):
        V.verify(copy, oracle_impl, cases=["rnn_l1_uni"])
    os.remove(copy / "manifest.json")
    with pytest.raises(FileFormatError, match="no manifest.json"):
        V.verify(copy, oracle_impl)
    with pytest.raises(OptionError, match="no case 'nope'"):
        V.verify(folder, oracle_impl, cases=["nope"])
    with pytest.raises(ShapeError, match="return \\(y, final_state\\)"):
        V.verify(folder, lambda c, p, x, s: None, cases=["rnn_l1_uni"])
    with pytest.raises(OptionError, match="cells must be chosen"):
        V.export(tmp_path / "x", cells=("lstm", "transformer"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match="not a vectors suite"):
        V.export(tmp_path / "busy", cells=("rnn",))


def test_reexport_replaces_the_suite_and_is_deterministic(tmp_path):
    a = V.export(tmp_path / "s", cells=("rnn",), seed=5)
    b = V.export(tmp_path / "s", cells=("rnn",), seed=5)
    assert [c["sha256"] for c in a["cases"]] == [c["sha256"] for c in b["cases"]]
    c = V.export(tmp_path / "s", cells=("gru",), seed=5)
    files = sorted(os.listdir(tmp_path / "s"))
    assert files == sorted([e["file"] for e in c["cases"]] + ["manifest.json", "README.md",
                                                             ".lstmcheck"])
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]
