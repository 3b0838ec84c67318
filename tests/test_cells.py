"""The cell protocol: readable steps against the fused LSTM, directions and sequence lengths by
complex step on every element, the stack runner against PyTorch packed sequences, the cell
registry, and a user's cell (the minimal gated unit of docs/cells.md) through every feature."""
import re
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import OptionError, ShapeError
from lstmcheck.models import LSTM_VARIANTS, registry, runner

from numeric import complex_step_elementwise

ROOT = Path(__file__).resolve().parents[1]
DIRECTIONS = ("forward", "reverse", "bidirectional")


def _doc_code(path):
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), re.S)


def _mgu():
    ns = {"__name__": "mgu_doc"}
    exec(compile(_doc_code("docs/cells.md")[0], "docs/cells.md", "exec"), ns)
    return ns["MGU"]


def _case(model, seed, T=7, B=3, lengths=None, scale=1.0):
    rng = np.random.default_rng(seed)
    params = model.init_params(seed=seed, scale=scale)
    x = rng.standard_normal((T, B, model.input_size))
    state = tuple(0.5 * rng.standard_normal(s) for s in model.state_shapes(B))
    st = state if len(state) > 1 else state[0]
    y, fin, tape = model.forward(params, x, st, lengths=lengths)
    fin = fin if isinstance(fin, tuple) else (fin,)
    dy = rng.standard_normal(y.shape)
    ds = tuple(rng.standard_normal(a.shape) for a in fin)
    grads = model.backward(tape, dy, ds if len(ds) > 1 else ds[0])
    names = model._state_names()
    inputs = {**params, "x": x, **dict(zip(names, state))}

    def L(inp):
        s = tuple(inp[n] for n in names)
        yy, ff, _ = model.forward({n: inp[n] for n in model.param_names}, inp["x"],
                                  s if len(s) > 1 else s[0], lengths=lengths)
        ff = ff if isinstance(ff, tuple) else (ff,)
        return (yy * dy).sum() + sum((a * b).sum() for a, b in zip(ff, ds))
    return inputs, grads, L, y


def _assert_complex_step(model, seed, lengths=None, scale=1.0, T=7, B=3):
    inputs, grads, L, _ = _case(model, seed, T=T, B=B, lengths=lengths, scale=scale)
    cs = complex_step_elementwise(L, inputs)
    for n, g in cs.items():
        np.testing.assert_allclose(grads[n], g, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(g).max()),
                                   err_msg=f"{model.describe()} {n} lengths={lengths}")


# ----------------------------------------------------------------------------- directions, lengths
CELL_CASES = [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("gru", {}),
              ("gru", {"reset_after": False}), ("lstm", {}), ("lstm", {"variant": "peephole+cifg"}),
              ("lstm", {"variant": "fgr", "proj_size": 2}), ("lstm", {"clip": 0.7, "cell_clip": 0.5})]


@pytest.mark.parametrize("cell,opts", CELL_CASES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("lengths", [None, [7, 2, 5]])
def test_directions_and_lengths_agree_with_the_complex_step(cell, opts, direction, lengths):
    model = lc.build(cell, 3, 4, num_layers=2, direction=direction, **opts)
    _assert_complex_step(model, seed=len(opts) + DIRECTIONS.index(direction),
                         lengths=None if lengths is None else np.array(lengths))


@pytest.mark.parametrize("seed", [0, 1])
def test_saturated_long_sequences_with_lengths(seed):
    """Weight scale 4 saturates the gates; T = 50 with ragged lengths, reverse direction."""
    model = lc.LSTM(2, 3, direction="reverse", variant="peephole")
    _assert_complex_step(model, seed, lengths=np.array([50, 1, 33]), scale=4.0, T=50)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_padding_semantics(cell):
    """y = 0 and dL/dx = 0 at padded steps; the final state is the state after step len - 1 (forward)
    or after step 0 (reverse); a reverse direction starts at step len - 1 from the initial state."""
    rng = np.random.default_rng(3)
    lengths = np.array([6, 3])
    for direction in ("forward", "reverse"):
        m = lc.build(cell, 2, 3, direction=direction)
        p = m.init_params(seed=1)
        x = rng.standard_normal((6, 2, 2))
        y, fin, tape = m.forward(p, x, lengths=lengths)
        assert np.all(y[3:, 1] == 0)
        g = m.backward(tape, np.ones_like(y))
        assert np.all(g["x"][3:, 1] == 0)
        y_short, fin_short, _ = m.forward(p, x[:3, 1:2].copy())     # the short sequence alone
        np.testing.assert_allclose(y[:3, 1:2], y_short, rtol=1e-14, atol=1e-15)
        fin = fin if isinstance(fin, tuple) else (fin,)
        fin_short = fin_short if isinstance(fin_short, tuple) else (fin_short,)
        for a, b in zip(fin, fin_short):
            np.testing.assert_allclose(a[:, 1:2], b, rtol=1e-14, atol=1e-15)


def test_reverse_is_forward_on_the_flipped_sequence():
    rng = np.random.default_rng(0)
    fwd, rev = lc.LSTM(3, 4), lc.LSTM(3, 4, direction="reverse")
    p = fwd.init_params(seed=2)
    prev = {n + "_reverse": a for n, a in p.items()}
    x = rng.standard_normal((9, 2, 3))
    y_r, (h_r, c_r), _ = rev.forward(prev, x)
    y_f, (h_f, c_f), _ = fwd.forward(p, x[::-1].copy())
    np.testing.assert_allclose(y_r, y_f[::-1], rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(h_r, h_f, rtol=1e-15, atol=1e-15)
    assert rev.param_names == [n + "_reverse" for n in fwd.param_names]


def test_lengths_and_direction_are_validated():
    m = lc.LSTM(2, 3)
    p, x = m.init_params(seed=0), np.zeros((4, 2, 2))
    for bad, match in (([0, 4], "lie in 1..4"), ([5, 1], "lie in 1..4"), ([1.5, 2], "integers"),
                       ([1, 2, 3], "2 integers"), ("ab", "integers")):
        with pytest.raises(ShapeError, match=match):
            m.forward(p, x, lengths=bad)
    with pytest.raises(OptionError, match="direction must be one of"):
        lc.LSTM(2, 3, direction="backward")
    with pytest.raises(OptionError, match="contradicts"):
        lc.LSTM(2, 3, direction="reverse", bidirectional=True)
    assert lc.LSTM(2, 3, bidirectional=True).direction == "bidirectional"


# ----------------------------------------------------------------------------- fused vs readable
FUSED_VARIANTS = [v for v in LSTM_VARIANTS if v != "noaf"] + ["peephole+cifg", "peephole+fgr"]


@pytest.mark.parametrize("variant", FUSED_VARIANTS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_fused_lstm_equals_the_readable_step(variant, dtype, direction, monkeypatch):
    """The fast execution computes what lstm.py's step says: outputs, states, every gradient."""
    monkeypatch.setenv("LSTMCHECK_FUSED", "fused")    # the selector may prefer the step here
    m = lc.LSTM(3, 5, variant=variant, dtype=dtype, direction=direction, num_layers=2,
                proj_size=3 if variant == "vanilla" else 0, clip=2.0 if variant == "nog" else None)
    rng = np.random.default_rng(1)
    p = m.init_params(seed=4, scale=2.0)
    x = rng.standard_normal((8, 3, 3)).astype(dtype)
    s0 = tuple((0.5 * rng.standard_normal(s)).astype(dtype) for s in m.state_shapes(3))
    tol = 1e-13 if dtype == "float64" else 2e-5
    outs = []
    for fused in (True, False):
        y, fin, tape = m.run_forward(p, x, s0, fused=fused)
        dy = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
        grads, dx, ds0, _ = runner.stack_backward(m, tape, dy, tuple(np.ones_like(a) for a in fin))
        outs.append((y, fin, grads, dx, ds0))
        assert all(lt.fused is not None for lt in tape.layers) == fused
    (y1, f1, g1, dx1, d1), (y2, f2, g2, dx2, d2) = outs
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1, np.abs(b).max()))  # noqa: E731
    close(y1, y2)
    for a, b in zip(f1 + d1, f2 + d2):
        close(a, b)
    close(dx1, dx2)
    for n in g1:
        close(g1[n], g2[n])


def test_the_gate_route_is_measured_and_can_be_forced(monkeypatch, tmp_path):
    from lstmcheck.models import kernels
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LSTMCHECK_CACHE_DIR", raising=False)
    monkeypatch.setattr(kernels, "_cache", {})
    route = kernels.gate_route(np, np.float64)
    assert route in kernels.GATE_ROUTES
    assert (tmp_path / "lstmcheck" / "kernels.json").is_file()     # later processes reuse it
    monkeypatch.setenv("LSTMCHECK_GATE_ROUTE", "tanh")
    assert kernels.gate_route(np, np.float64) == "tanh"
    monkeypatch.setenv("LSTMCHECK_GATE_ROUTE", "fast")
    with pytest.raises(OptionError, match="LSTMCHECK_GATE_ROUTE"):
        kernels.gate_route(np, np.float64)


@pytest.mark.parametrize("route", ["tanh", "logistic", "exp"])
def test_every_gate_route_gives_the_readable_result(route, monkeypatch):
    monkeypatch.setenv("LSTMCHECK_GATE_ROUTE", route)
    monkeypatch.setenv("LSTMCHECK_FUSED", "fused")
    m = lc.LSTM(3, 4)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    s0 = tuple(np.zeros(s) for s in m.state_shapes(2))
    y1 = m.run_forward(p, x, s0, fused=True)[0]
    y2 = m.run_forward(p, x, s0, fused=False)[0]
    np.testing.assert_allclose(y1, y2, rtol=1e-14, atol=1e-15)


# ----------------------------------------------------------------------------- registry, config
@pytest.mark.parametrize("model", [
    lc.LSTM(3, 4, activations=("hard_sigmoid", "tanh", "softsign"), num_layers=2),
    lc.LSTM(3, 4, variant="no_output_tanh+peephole", proj_size=2, direction="reverse", clip=3.0),
    lc.GRU(3, 4, reset_after=False, direction="bidirectional"), lc.RNN(3, 4, nonlinearity="relu"),
    lc.LSTM(3, 4, activations=("sigmoid", "leaky_relu(0.1)", "tanh")),
])
def test_config_rebuilds_the_model(model):
    again = lc.build(**model.config())
    assert again.config() == model.config()
    assert again.param_shapes() == model.param_shapes()
    p = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    np.testing.assert_array_equal(model.forward(p, x)[0], again.forward(p, x)[0])


def test_the_registry_is_the_one_list_of_cells():
    assert registry.names()[:3] == ("rnn", "lstm", "gru") and "cwrnn" in registry.names()
    with pytest.raises(OptionError, match="unknown cell 'mgu'"):
        lc.build("mgu", 2, 3)
    with pytest.raises(OptionError, match="cannot load the cell"):
        lc.build("no_such_module:Cell", 2, 3)
    with pytest.raises(OptionError, match="not a subclass of lc.Cell"):
        lc.build("numpy:ndarray", 2, 3)
    with pytest.raises(OptionError, match="cell must be an lstmcheck Cell"):
        lc.Recurrent("lstm", 2, 3)


# ----------------------------------------------------------------------------- bring your own cell
def test_cells_md_example_runs_as_written(capsys):
    ns = {"__name__": "cells_doc"}
    exec(compile(_doc_code("docs/cells.md")[0], "docs/cells.md", "exec"), ns)
    out = capsys.readouterr().out.split("\n")
    assert out[0] == "passed"
    assert out[2] == "(20, 4, 16) (4, 4, 8)"


def test_readme_bring_your_own_cell_runs_as_written(capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Bring your own cell"):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_doc"})
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_mgu_with_layers_directions_and_lengths_agrees_with_the_complex_step(direction):
    MGU = _mgu()
    model = lc.Recurrent(MGU(), 3, 4, num_layers=2, direction=direction)
    for seed in (0, 1):
        _assert_complex_step(model, seed, lengths=np.array([7, 3, 1]))
    _assert_complex_step(model, 2, scale=4.0, T=30)            # saturated, longer


def test_mgu_gets_every_check_and_probe():
    MGU = _mgu()
    model = lc.Recurrent(MGU(), 2, 5, num_layers=2, direction="bidirectional")
    p = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((12, 3, 2))
    assert lc.gradcheck(model, p, x).verdict == "passed"
    assert lc.gradcheck(model, p, x, method="complex", elements="all").verdict == "passed"
    for direction in ("forward", "reverse"):
        g = lc.probes.gradient_norms(model, p, x, layer=1, direction=direction)
        assert g.h_norm.shape == (12,) and np.all(np.isfinite(g.h_norm))
        s = lc.probes.jacobian_spectrum(model, p, x, layer=1, direction=direction)
        assert s.singular_values.shape == (12, 5)
        ly = lc.probes.lyapunov_spectrum(model, p, x, layer=0, direction=direction)
        assert ly.exponents.shape == (5,)
        gs = lc.probes.gate_statistics(model, p, x, layer=1, direction=direction)
        assert gs.gates == ("f", "n")
    assert model.config()["cell"].endswith(":MGU")


def test_a_broken_user_cell_is_caught():
    """The checker holds a user's step_backward to its step: a planted bug fails."""
    MGU = _mgu()

    class Broken(MGU):
        def step_backward(self, xp, p, cache, dstate):
            du, dprev, grads = super().step_backward(xp, p, cache, dstate)
            return du, (dprev[0] * 1.01,), grads
    model = lc.Recurrent(Broken(), 2, 3)
    p = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((6, 2, 2))
    assert lc.gradcheck(model, p, x).verdict == "failed"


# ----------------------------------------------------------------------------- probes of any layer
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_probe_of_an_upper_reverse_layer_is_that_layer_alone(cell):
    """gradient_norms(layer=1, direction='reverse') of a 2-layer bidirectional model equals the probe
    of a one-layer reverse model fed with the lower layer's outputs."""
    deep = lc.build(cell, 2, 3, num_layers=2, direction="bidirectional")
    p = deep.init_params(seed=5)
    x = np.random.default_rng(5).standard_normal((10, 2, 2))
    y0 = lc.build(cell, 2, 3, direction="bidirectional").forward(
        {n: a for n, a in p.items() if "_l0" in n}, x)[0]
    top = lc.build(cell, 6, 3, direction="reverse")
    ptop = {n.replace("_l1", "_l0"): a for n, a in p.items() if "_l1_reverse" in n}
    a = lc.probes.gradient_norms(deep, p, x, layer=1, direction="reverse")
    b = lc.probes.gradient_norms(top, ptop, y0)
    np.testing.assert_allclose(a.h_norm, b.h_norm, rtol=1e-12)
    sa = lc.probes.jacobian_spectrum(deep, p, x, layer=1, direction="reverse")
    sb = lc.probes.jacobian_spectrum(top, ptop, y0)
    np.testing.assert_allclose(sa.singular_values, sb.singular_values, rtol=1e-10)


# ----------------------------------------------------------------------------- PyTorch
torch = pytest.importorskip("torch")


def _torch_packed(model, tmod, lengths, seed):
    """Ours with lengths= against torch on a packed sequence: outputs, final states, gradients."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    rng = np.random.default_rng(seed)
    T, B = 7, len(lengths)
    params = model.init_params(seed=seed)
    tmod = tmod.double()
    tmod.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    x = rng.standard_normal((T, B, model.input_size))
    state = tuple(rng.standard_normal(s) for s in model.state_shapes(B))
    y, st, tape = model.forward(params, x, state if len(state) > 1 else state[0],
                                lengths=np.array(lengths))
    st = st if isinstance(st, tuple) else (st,)
    dy = rng.standard_normal(y.shape)
    ds = tuple(rng.standard_normal(a.shape) for a in st)
    grads = model.backward(tape, dy, ds if len(ds) > 1 else ds[0])

    xt = torch.tensor(x, requires_grad=True)
    stt = tuple(torch.tensor(a, requires_grad=True) for a in state)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out, st_t = tmod(packed, stt if len(stt) > 1 else stt[0])
    yt, _ = pad_packed_sequence(out, total_length=T)
    st_t = st_t if isinstance(st_t, tuple) else (st_t,)
    loss = (yt * torch.tensor(dy)).sum() + sum((a * torch.tensor(b)).sum() for a, b in zip(st_t, ds))
    loss.backward()
    rel = lambda a, b: np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)   # noqa: E731
    errs = {"y": rel(y, yt.detach().numpy()), "x": rel(grads["x"], xt.grad.numpy())}
    errs.update({f"state{j}": rel(a, b.detach().numpy()) for j, (a, b) in enumerate(zip(st, st_t))})
    errs.update({n: rel(grads[n], q.grad.numpy()) for n, q in tmod.named_parameters()})
    errs.update({n: rel(grads[n], s.grad.numpy()) for n, s in zip(model._state_names(), stt)})
    return errs


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bi", [False, True])
def test_lengths_match_torch_packed_sequences(cell, layers, bi):
    model = lc.build(cell, 3, 4, num_layers=layers, bidirectional=bi)
    tmod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        3, 4, num_layers=layers, bidirectional=bi)
    errs = _torch_packed(model, tmod, [7, 2, 5, 1], seed=layers + 2 * bi)
    assert max(errs.values()) < 1e-12, errs


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reverse_matches_torch_on_the_flipped_sequence(cell):
    rng = np.random.default_rng(4)
    rev = lc.build(cell, 3, 4, direction="reverse", num_layers=2)
    p = rev.init_params(seed=4)
    tmod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        3, 4, num_layers=2).double()
    tmod.load_state_dict({k.replace("_reverse", ""): torch.tensor(v) for k, v in p.items()})
    x = rng.standard_normal((8, 2, 3))
    y, st, tape = rev.forward(p, x)
    dy = rng.standard_normal(y.shape)
    g = rev.backward(tape, dy)
    xt = torch.tensor(x[::-1].copy(), requires_grad=True)
    yt, _ = tmod(xt)
    (yt * torch.tensor(dy[::-1].copy())).sum().backward()
    assert np.linalg.norm(y - yt.detach().numpy()[::-1]) <= 1e-12 * np.linalg.norm(y)
    assert np.linalg.norm(g["x"] - xt.grad.numpy()[::-1]) <= 1e-12 * np.linalg.norm(g["x"])
    for n, q in tmod.named_parameters():
        gn = g[n.replace("_l0", "_l0_reverse").replace("_l1", "_l1_reverse")]
        assert np.linalg.norm(gn - q.grad.numpy()) <= 1e-12 * np.linalg.norm(gn), n
