"""Initialisation schemes, forward purity, complex safety and the overflow-free sigmoid."""
import warnings

import numpy as np
import pytest

import lstmcheck as lc


def test_seeded_and_deterministic():
    m = lc.LSTM(3, 8, num_layers=2)
    a, b, c = m.init_params(seed=5), m.init_params(seed=5), m.init_params(seed=6)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["weight_hh_l0"], c["weight_hh_l0"])


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.7])
def test_spectral_radius(rho):
    m = lc.RNN(3, 16)
    W = m.init_params(seed=1, spectral_radius=rho)["weight_hh_l0"]
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(rho, rel=1e-12)


def test_orthogonal_blocks():
    m = lc.LSTM(3, 8)
    W = m.init_params(seed=2, scheme="orthogonal")["weight_hh_l0"]
    for g in range(4):
        blk = W[g * 8:(g + 1) * 8]
        np.testing.assert_allclose(blk @ blk.T, np.eye(8), atol=1e-12)


def test_gaussian_gain():
    W = lc.RNN(3, 400).init_params(seed=0, scheme="gaussian", gain=1.5)["weight_hh_l0"]
    assert W.std() == pytest.approx(1.5 / np.sqrt(400), rel=0.02)


def test_forget_bias_and_chrono():
    m = lc.LSTM(3, 8)
    p = m.init_params(seed=0, forget_bias=1.0)
    np.testing.assert_array_equal(p["bias_ih_l0"][8:16], 1.0)
    np.testing.assert_array_equal(p["bias_hh_l0"][8:16], 0.0)
    p = m.init_params(seed=0, chrono=100)
    bf, bi = p["bias_ih_l0"][8:16], p["bias_ih_l0"][0:8]
    assert np.all(bf >= 0) and np.all(bf <= np.log(99)) and np.array_equal(bi, -bf)
    np.testing.assert_array_equal(p["bias_hh_l0"][:16], 0.0)
    g = lc.GRU(3, 8).init_params(seed=0, chrono=50)["bias_ih_l0"][8:16]   # update gate z
    assert np.all(g >= 0) and np.all(g <= np.log(49))


def test_forward_is_pure():
    m = lc.LSTM(3, 4, variant="peephole", num_layers=2)
    p = m.init_params(seed=0)
    snapshot = {n: a.copy() for n, a in p.items()}
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    x0 = x.copy()
    y1, _, _ = m.forward(p, x)
    y2, _, _ = m.forward(p, x)
    assert np.array_equal(y1, y2) and np.array_equal(x, x0)
    assert all(np.array_equal(p[n], snapshot[n]) for n in p)


@pytest.mark.parametrize("model", [lc.LSTM(3, 4, variant="peephole"), lc.GRU(3, 4), lc.RNN(3, 4)],
                         ids=["lstm", "gru", "rnn"])
def test_complex_forward_agrees_with_real(model):
    p = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _, _ = model.forward(p, x)
    yc, _, _ = model.forward({n: a.astype(complex) for n, a in p.items()}, x.astype(complex))
    assert yc.dtype == np.complex128
    np.testing.assert_allclose(yc.real, y, rtol=1e-14, atol=1e-15)
    assert np.all(yc.imag == 0)


def test_sigmoid_overflow_free():
    m = lc.LSTM(3, 4)
    p = m.init_params(seed=0, scale=1e4)            # |z| far beyond 700
    x = np.random.default_rng(0).standard_normal((4, 2, 3)) * 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, _, tape = m.forward(p, x)
        g = m.backward(tape, np.ones_like(y))
    assert np.all(np.isfinite(y)) and all(np.all(np.isfinite(a)) for a in g.values())


def test_float32_close_to_float64():
    m64, m32 = lc.LSTM(3, 8), lc.LSTM(3, 8, dtype="float32")
    p = m64.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((20, 2, 3))
    y64, _, t64 = m64.forward(p, x)
    y32, _, t32 = m32.forward({n: a.astype(np.float32) for n, a in p.items()}, x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, atol=1e-5)
    g64 = m64.backward(t64, np.ones_like(y64))
    g32 = m32.backward(t32, np.ones_like(y32))
    for n in g64:
        assert g32[n].dtype == np.float32
        np.testing.assert_allclose(g32[n], g64[n], atol=1e-4 * max(1, np.abs(g64[n]).max()))
