"""`lstmcheck audit module:callable --cell ...` with the model options (--variant, --num-layers,
--bidirectional/--direction, --reset-after/--reset-before, --nonlinearity, --proj-size): correct
code written here, independently of lstmcheck.models (a nicodjimenez/lstm-style h = o * c LSTM,
a Keras GRU with reset_after=False), passes once the model is declared, and an option typed for
another cell is one usage line, exit 2."""
import textwrap

import pytest
from click.testing import CliRunner

from lstmcheck.cli import cli

IMPL = textwrap.dedent('''
    import numpy as np

    def sig(z):
        return 1 / (1 + np.exp(-z))

    def nico_lstm(params, x, state):
        """torch layout, gates i, f, g, o; h = o * c (no output tanh), as nicodjimenez/lstm."""
        h, c = state[0][0], state[1][0]
        H = h.shape[-1]
        ys = []
        for t in range(x.shape[0]):
            z = (x[t] @ params["weight_ih_l0"].T + params["bias_ih_l0"]
                 + h @ params["weight_hh_l0"].T + params["bias_hh_l0"])
            i, f, g, o = sig(z[:, :H]), sig(z[:, H:2*H]), np.tanh(z[:, 2*H:3*H]), sig(z[:, 3*H:])
            c = f * c + i * g
            h = o * c
            ys.append(h)
        return np.stack(ys), (h[None], c[None])

    def keras_gru_cho(params, x, state):
        """keras layout, GRU reset_after=False: bias (3U,), blocks z, r, h;
        h~ = tanh(x W_h + (r * h) U_h + b_h), h' = z * h + (1 - z) * h~."""
        K, U, b = params["kernel"], params["recurrent_kernel"], params["bias"]
        h = (state[0] if isinstance(state, tuple) else state)[0]
        n = h.shape[-1]
        ys = []
        for t in range(x.shape[0]):
            xz, xr, xh = np.split(x[t] @ K + b, 3, axis=1)
            z = sig(xz + h @ U[:, :n])
            r = sig(xr + h @ U[:, n:2*n])
            hh = np.tanh(xh + (r * h) @ U[:, 2*n:])
            h = z * h + (1 - z) * hh
            ys.append(h)
        return np.stack(ys), (h[None],)

    def relu_rnn(params, x, state):
        """torch layout, h' = relu(W x + b_ih + U h + b_hh)."""
        h = state[0][0] if isinstance(state, tuple) else state[0]
        ys = []
        for t in range(x.shape[0]):
            h = np.maximum(0, x[t] @ params["weight_ih_l0"].T + params["bias_ih_l0"]
                           + h @ params["weight_hh_l0"].T + params["bias_hh_l0"])
            ys.append(h)
        return np.stack(ys), (h[None],)

    def via_torch(params, x, state):
        """Any torch-layout model, run by torch.nn (sizes read off the tensor names)."""
        import torch
        names = list(params)
        layers = 1 + max(int(n.split("_l")[1][0]) for n in names)
        bi = any(n.endswith("_reverse") for n in names)
        proj = params["weight_hr_l0"].shape[0] if "weight_hr_l0" in params else 0
        H = params["weight_hh_l0"].shape[1] if not proj else params["weight_hr_l0"].shape[1]
        m = torch.nn.LSTM(x.shape[-1], H, num_layers=layers, bidirectional=bi,
                          proj_size=proj).double()
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(torch.as_tensor(np.asarray(params[n])))
            y, (h, c) = m(torch.as_tensor(x), tuple(torch.as_tensor(s) for s in state))
        return y.numpy(), (h.numpy(), c.numpy())
''')


@pytest.fixture
def impl(tmp_path, monkeypatch):
    (tmp_path / "audit_models_impl.py").write_text(IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return "audit_models_impl"


def run(*args):
    return CliRunner().invoke(cli, ["audit", *map(str, args), "--no-fd"])


def test_variant_makes_a_nicodjimenez_lstm_pass(impl):
    bad = run(f"{impl}:nico_lstm", "--layout", "torch", "--cell", "lstm")
    assert bad.exit_code == 1 and "variant='no_output_tanh'" in bad.output
    good = run(f"{impl}:nico_lstm", "--layout", "torch", "--cell", "lstm",
               "--variant", "no_output_tanh")
    assert good.exit_code == 0, good.output


def test_reset_before_makes_a_keras_cho_gru_pass(impl):
    good = run(f"{impl}:keras_gru_cho", "--layout", "keras", "--cell", "gru", "--reset-before")
    assert good.exit_code == 0, good.output
    bad = run(f"{impl}:keras_gru_cho", "--layout", "keras", "--cell", "gru")
    assert bad.exit_code in (1, 2), bad.output     # the (2, 3U) bias it cannot take


def test_nonlinearity(impl):
    assert run(f"{impl}:relu_rnn", "--layout", "torch", "--cell", "rnn",
               "--nonlinearity", "relu").exit_code == 0
    bad = run(f"{impl}:relu_rnn", "--layout", "torch", "--cell", "rnn")
    assert bad.exit_code == 1 and "nonlinearity='relu'" in bad.output


@pytest.mark.parametrize("opts", [["--num-layers", "2"], ["--bidirectional"],
                                  ["--proj-size", "2"], ["--num-layers", "2", "--bidirectional"]])
def test_structure_options_reach_the_model(impl, opts):
    pytest.importorskip("torch")
    r = run(f"{impl}:via_torch", "--layout", "torch", "--cell", "lstm", *opts)
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0]
    if "--num-layers" in opts:
        assert "num_layers=2" in first
    if "--bidirectional" in opts:
        assert "bidirectional=True" in first


@pytest.mark.parametrize("args, says", [
    (["--cell", "gru", "--variant", "peephole"], "--variant applies to --cell lstm, not gru"),
    (["--cell", "lstm", "--nonlinearity", "relu"], "--nonlinearity applies to --cell rnn"),
    (["--cell", "rnn", "--reset-before"], "--reset-after applies to --cell gru"),
    (["--cell", "lstm", "--proj-size", "-1"], "--proj-size"),
    (["--variant", "no_output_tanh"], "--variant only applies with --cell"),
])
def test_misplaced_model_options_are_one_line(impl, args, says):
    r = run(f"{impl}:nico_lstm", "--layout", "torch", *args)
    assert r.exit_code == 2, r.output
    assert says in r.stderr and "Traceback" not in r.output, r.stderr


def test_model_options_refused_for_a_file_target(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"")
    r = run(path, "--num-layers", "2")
    assert r.exit_code == 2 and "only applies with a module:callable TARGET" in r.stderr
