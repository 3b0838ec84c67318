"""from_torch on live torch.nn modules (RNN/LSTM/GRU and the *Cell classes) matches the oracle,
and the torch layout's dump loads back into torch modules."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import layouts
from lstmcheck.errors import ConversionError, DTypeError, OptionError

torch = pytest.importorskip("torch")
nn = torch.nn

T, B, D, H = 5, 3, 4, 6
TOL = {torch.float64: 1e-12, torch.float32: 2e-5}


def torch_run(module, x, state, batch_first=False):
    xt = torch.tensor(x.transpose(1, 0, 2) if batch_first else x)
    st = tuple(torch.tensor(a) for a in state)
    with torch.no_grad():
        y, fin = module(xt, st if len(st) > 1 else st[0])
    y = y.numpy().transpose(1, 0, 2) if batch_first else y.numpy()
    fin = fin if isinstance(fin, tuple) else (fin,)
    return [y] + [a.numpy() for a in fin]


def oracle_run(model, params, x, state):
    xin = x.transpose(1, 0, 2) if model.batch_first else x
    y, fin, _ = model.forward(params, xin, state if len(state) > 1 else state[0])
    y = y.transpose(1, 0, 2) if model.batch_first else y
    return [y] + list(fin if isinstance(fin, tuple) else (fin,))


def data(model, seed, np_dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, model.input_size)).astype(np_dtype)
    state = tuple(rng.standard_normal(s).astype(np_dtype) for s in model.state_shapes(B))
    return x, state


def max_err(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


MODULES = [
    lambda: nn.LSTM(D, H),
    lambda: nn.LSTM(D, H, num_layers=2, bidirectional=True),
    lambda: nn.LSTM(D, H, num_layers=2, proj_size=3),
    lambda: nn.LSTM(D, H, bidirectional=True, proj_size=2, batch_first=True),
    lambda: nn.GRU(D, H, num_layers=2, bidirectional=True),
    lambda: nn.GRU(D, H, batch_first=True),
    lambda: nn.RNN(D, H, nonlinearity="relu", num_layers=2),
    lambda: nn.RNN(D, H, bidirectional=True),
    lambda: nn.LSTM(D, H, bias=False),
]


@pytest.mark.parametrize("tdtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("make", MODULES, ids=range(len(MODULES)))
def test_from_torch_matches_module(make, tdtype):
    torch.manual_seed(0)
    module = make().to(tdtype)
    model, params = layouts.from_torch(module)
    np_dtype = np.float64 if tdtype == torch.float64 else np.float32
    assert model.dtype == np_dtype and model.batch_first == module.batch_first
    assert model.num_layers == module.num_layers and model.bidirectional == module.bidirectional
    x, state = data(model, 1, np_dtype)
    want = torch_run(module, x, state, module.batch_first)
    assert max_err(oracle_run(model, params, x, state), want) < TOL[tdtype]
    # a float32 module against the float64 oracle on the same numbers
    if tdtype == torch.float32:
        cfg = {**model.config(), "dtype": "float64"}
        m64 = lc.build(cfg.pop("cell"), cfg.pop("input_size"), cfg.pop("hidden_size"), **cfg)
        p64 = {n: a.astype(np.float64) for n, a in params.items()}
        s64 = tuple(a.astype(np.float64) for a in state)
        assert max_err(oracle_run(m64, p64, x.astype(np.float64), s64), want) < TOL[tdtype]


def test_from_torch_gradients_match_autograd():
    torch.manual_seed(1)
    module = nn.LSTM(D, H, num_layers=2, bidirectional=True, proj_size=2).double()
    model, params = layouts.from_torch(module)
    x, (h0, c0) = data(model, 2, np.float64)
    y, _, tape = model.forward(params, x, (h0, c0))
    dy = np.random.default_rng(3).standard_normal(y.shape)
    grads = model.backward(tape, dy)
    yt, _ = module(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    (yt * torch.tensor(dy)).sum().backward()
    for n, p in module.named_parameters():
        np.testing.assert_allclose(grads[n], p.grad.numpy(), rtol=1e-11, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("make,cell", [(lambda: nn.LSTMCell(D, H), "lstm"),
                                       (lambda: nn.GRUCell(D, H), "gru"),
                                       (lambda: nn.RNNCell(D, H, nonlinearity="relu"), "rnn"),
                                       (lambda: nn.GRUCell(D, H, bias=False), "gru")])
def test_from_torch_cells(make, cell):
    torch.manual_seed(2)
    module = make().double()
    model, params = layouts.from_torch(module)
    assert model.kind == cell and model.num_layers == 1
    x, state = data(model, 4, np.float64)
    s = tuple(torch.tensor(a[0]) for a in state)
    ys = []
    with torch.no_grad():
        for t in range(T):
            s = module(torch.tensor(x[t]), s if len(s) > 1 else s[0])
            s = s if isinstance(s, tuple) else (s,)
            ys.append(s[0].numpy())
    got = oracle_run(model, params, x, state)
    assert max_err([got[0]] + [a[0] for a in got[1:]], [np.stack(ys)] + [a.numpy() for a in s]) < 1e-12
    # and the unsuffixed names load back into a fresh cell
    fresh = make().double()
    fresh.load_state_dict({n: torch.tensor(a) for n, a in
                           layouts.dump("torch", model, params, as_cell=True).items()
                           if n in fresh.state_dict()}, strict=True)


def test_dump_loads_into_torch_module():
    model = lc.LSTM(D, H, num_layers=2, bidirectional=True, proj_size=3)
    params = model.init_params(seed=5)
    module = nn.LSTM(D, H, num_layers=2, bidirectional=True, proj_size=3).double()
    module.load_state_dict({n: torch.tensor(a) for n, a in layouts.dump("torch", model, params).items()})
    x, state = data(model, 6, np.float64)
    assert max_err(oracle_run(model, params, x, state), torch_run(module, x, state)) < 1e-12


def test_from_torch_refusals():
    with pytest.raises(OptionError, match="Linear"):
        layouts.from_torch(nn.Linear(3, 3))
    module = nn.LSTM(D, H, num_layers=2, dropout=0.5)
    with pytest.raises(ConversionError, match="eval"):
        layouts.from_torch(module)
    layouts.from_torch(module.eval())
    with pytest.raises(DTypeError, match="float16"):
        layouts.from_torch(nn.GRU(D, H).half())
