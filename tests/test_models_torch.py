"""The oracle against torch.nn.RNN / LSTM / GRU in float64: outputs, final states, every gradient."""
import numpy as np
import pytest

import lstmcheck as lc

torch = pytest.importorskip("torch")


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def compare(model, tmod, seed):
    rng = np.random.default_rng(seed)
    T, B = 7, 3
    params = model.init_params(seed=seed)
    tmod = tmod.double()
    tmod.load_state_dict({k: torch.tensor(v) for k, v in params.items()})   # names are torch's
    x = rng.standard_normal((T, B, model.input_size))
    state = tuple(rng.standard_normal(s) for s in model.state_shapes(B))
    y, st, tape = model.forward(params, x, state if len(state) > 1 else state[0])
    st = st if isinstance(st, tuple) else (st,)
    dy = rng.standard_normal(y.shape)
    ds = tuple(rng.standard_normal(a.shape) for a in st)
    grads = model.backward(tape, dy, ds if len(ds) > 1 else ds[0])

    xt = torch.tensor(x, requires_grad=True)
    stt = tuple(torch.tensor(a, requires_grad=True) for a in state)
    yt, st_t = tmod(xt, stt if len(stt) > 1 else stt[0])
    st_t = st_t if isinstance(st_t, tuple) else (st_t,)
    loss = (yt * torch.tensor(dy)).sum() + sum((a * torch.tensor(b)).sum() for a, b in zip(st_t, ds))
    loss.backward()

    errs = {"y": rel(y, yt.detach().numpy())}
    errs.update({f"state{j}": rel(a, b.detach().numpy()) for j, (a, b) in enumerate(zip(st, st_t))})
    errs.update({n: rel(grads[n], p.grad.numpy()) for n, p in tmod.named_parameters()})
    errs["x"] = rel(grads["x"], xt.grad.numpy())
    errs["h0"] = rel(grads["h0"], stt[0].grad.numpy())
    if len(stt) > 1:
        errs["c0"] = rel(grads["c0"], stt[1].grad.numpy())
    assert set(n for n, _ in tmod.named_parameters()) == set(model.param_names)
    return errs


STRUCTURES = [(1, False), (2, False), (1, True), (2, True)]


@pytest.mark.parametrize("layers,bi", STRUCTURES)
@pytest.mark.parametrize("proj", [0, 3])
def test_lstm_matches_torch(layers, bi, proj):
    m = lc.LSTM(5, 6, num_layers=layers, bidirectional=bi, proj_size=proj)
    t = torch.nn.LSTM(5, 6, num_layers=layers, bidirectional=bi, proj_size=proj)
    errs = compare(m, t, seed=layers + 2 * bi + proj)
    assert max(errs.values()) < 1e-12, errs


@pytest.mark.parametrize("layers,bi", STRUCTURES)
def test_gru_matches_torch(layers, bi):
    errs = compare(lc.GRU(5, 6, num_layers=layers, bidirectional=bi),
                   torch.nn.GRU(5, 6, num_layers=layers, bidirectional=bi), seed=10 + layers)
    assert max(errs.values()) < 1e-12, errs


@pytest.mark.parametrize("layers,bi", STRUCTURES)
@pytest.mark.parametrize("nl", ["tanh", "relu"])
def test_rnn_matches_torch(layers, bi, nl):
    errs = compare(lc.RNN(5, 6, num_layers=layers, bidirectional=bi, nonlinearity=nl),
                   torch.nn.RNN(5, 6, num_layers=layers, bidirectional=bi, nonlinearity=nl), seed=20 + layers)
    assert max(errs.values()) < 1e-12, errs


def test_batch_first_matches_torch():
    m = lc.LSTM(4, 5, batch_first=True)
    t = torch.nn.LSTM(4, 5, batch_first=True).double()
    params = m.init_params(seed=1)
    t.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    x = np.random.default_rng(1).standard_normal((3, 7, 4))   # (B, T, D)
    y, (h, c), _ = m.forward(params, x)
    yt, (ht, ct) = t(torch.tensor(x))
    assert rel(y, yt.detach().numpy()) < 1e-14 and rel(c, ct.detach().numpy()) < 1e-14


def test_default_init_matches_torch_distribution():
    """PyTorch's default init is U(-1/sqrt(H), 1/sqrt(H)) for every tensor."""
    H = 64
    p = lc.LSTM(8, H).init_params(seed=0)
    k = 1 / np.sqrt(H)
    for a in p.values():
        assert a.min() >= -k and a.max() <= k
        assert abs(a.std() - k / np.sqrt(3)) < 0.1 * k
