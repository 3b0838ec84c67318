"""model.hvp (complex step through the oracle's own forward and backward) verified by
lc.check_hvp against Richardson differences of backward, for every cell, every LSTM variant,
reverse and bidirectional directions, projections, two layers and lengths."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import ParameterError, ShapeError
from lstmcheck.models.lstm import VARIANTS


def problem(m, T=3, B=2, seed=0, lengths=None):
    """grad_fn / hvp_fn over params, x and the initial state, for L = <dy, y> + <ds, state_T>."""
    rng = np.random.default_rng(seed)
    p = m.init_params(seed=seed)
    x = rng.standard_normal((T, B, m.input_size))
    names = ("h0", "c0")[:len(m.state_shapes(B))]
    st = {n: 0.5 * rng.standard_normal(s) for n, s in zip(names, m.state_shapes(B))}
    y, _, _ = m.forward(p, x, tuple(st.values()) if len(names) > 1 else st["h0"])
    dy = rng.standard_normal(y.shape)
    ds = tuple(rng.standard_normal(s) for s in m.state_shapes(B))
    ds = ds if len(ds) > 1 else ds[0]

    def split(q):
        s = tuple(q[n] for n in names)
        return {n: q[n] for n in m.param_names}, q["x"], s if len(s) > 1 else s[0]

    def grad_fn(q):
        pp, xx, ss = split(q)
        _, _, tape = m.forward(pp, xx, ss, lengths=lengths)
        g = m.backward(tape, dy, ds)
        return {k: g[k] for k in q}

    def hvp_fn(q, v):
        pp, xx, ss = split(q)
        out = m.hvp(pp, xx, v, ss, dy=dy, dstate=ds, lengths=lengths)
        return {k: out[k] for k in q}

    return grad_fn, {**p, "x": x, **st}, hvp_fn


MODELS = {
    **{f"lstm-{v}": (lambda v=v: lc.LSTM(2, 2, variant=v)) for v in VARIANTS},
    "lstm-peephole+cifg": lambda: lc.LSTM(2, 2, variant="peephole+cifg"),
    "lstm-bidirectional": lambda: lc.LSTM(2, 3, direction="bidirectional"),
    "lstm-reverse-proj-2layers": lambda: lc.LSTM(2, 3, proj_size=2, num_layers=2,
                                                 direction="reverse"),
    "gru": lambda: lc.GRU(2, 3),
    "gru-reset-before-reverse": lambda: lc.GRU(2, 2, reset_after=False, direction="reverse"),
    "gru-bidirectional": lambda: lc.GRU(2, 2, direction="bidirectional"),
    **{f"rnn-{a}": (lambda a=a: lc.RNN(2, 3, nonlinearity=a)) for a in ("tanh", "relu",
                                                                        "identity")},
    "rnn-bidirectional-2layers": lambda: lc.RNN(2, 2, num_layers=2, direction="bidirectional"),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_oracle_hvp_verified(name):
    grad_fn, params, hvp_fn = problem(MODELS[name]())
    r = lc.check_hvp(grad_fn, params, hvp_fn, method="richardson")
    assert r.passed and r.verdict == "passed", r.summary
    assert r.resolution < 1e-4


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_oracle_hvp_with_lengths(direction):
    m = lc.LSTM(2, 2, direction=direction)
    grad_fn, params, hvp_fn = problem(m, T=4, lengths=np.array([4, 2]))
    r = lc.check_hvp(grad_fn, params, hvp_fn, method="richardson")
    assert r.passed, r.summary


def test_a_wrong_hvp_of_the_model_fails():
    """The same check catches a double-backward that is off in one block."""
    grad_fn, params, hvp_fn = problem(lc.GRU(2, 2))

    def bad(q, v):
        out = hvp_fn(q, v)
        out["weight_hh_l0"] = out["weight_hh_l0"] * (1 + 1e-5)
        return out

    r = lc.check_hvp(grad_fn, params, bad, method="richardson")
    assert not r.passed and r.failing() == ["weight_hh_l0"]


def test_hvp_equals_second_difference_along_v():
    """v^T H v from hvp against (L(t + e v) - 2 L(t) + L(t - e v)) / e^2 of the loss itself."""
    m = lc.LSTM(3, 4, variant="peephole")
    p = m.init_params(seed=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2, 3))
    y, _, _ = m.forward(p, x)
    dy = rng.standard_normal(y.shape)
    v = {n: rng.standard_normal(a.shape) for n, a in p.items()}
    hv = m.hvp(p, x, v, dy=dy)
    vhv = sum(float(np.sum(hv[n] * v[n])) for n in p)

    def L(e):
        return float(np.sum(m.forward({n: p[n] + e * v[n] for n in p}, x)[0] * dy))

    e = 1e-3
    fd = (L(e) - 2 * L(0) + L(-e)) / e ** 2
    assert vhv == pytest.approx(fd, rel=1e-4)


def test_hvp_bad_input_is_one_sentence():
    m = lc.RNN(2, 2)
    p = m.init_params(seed=0)
    x = np.zeros((2, 1, 2))
    dy = np.ones((2, 1, 2))
    with pytest.raises(ParameterError, match="v has nope"):
        m.hvp(p, x, {"nope": np.zeros(2)}, dy=dy)
    with pytest.raises(ShapeError, match=r"v\['weight_hh_l0'\] has shape"):
        m.hvp(p, x, {"weight_hh_l0": np.zeros(3)}, dy=dy)
    with pytest.raises(ParameterError, match="non-empty dict"):
        m.hvp(p, x, {}, dy=dy)
