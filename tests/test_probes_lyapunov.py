"""lyapunov_spectrum against theory: constant Jacobians (log|eig W|), the determinant identity
sum(lambda) * T = sum_t log|det J_t|, the edge of chaos of random tanh networks, the finite
perturbation cross-check; bad input."""
import numpy as np
import pytest
from scipy.stats import ortho_group

import lstmcheck as lc
from lstmcheck.errors import OptionError
from lstmcheck.probes import _common as C
from lstmcheck.probes import kaplan_yorke, lyapunov_spectrum
from lstmcheck.probes.jacobians import iter_jacobians


def linear_rnn(W, seed=0):
    model = lc.RNN(2, W.shape[0], nonlinearity="identity")
    params = model.init_params(seed)
    params["weight_hh_l0"] = W
    return model, params


@pytest.mark.parametrize("seed,reorth", [(0, 1), (1, 1), (2, 3)])
def test_constant_jacobian_exponents_are_log_abs_eigenvalues(seed, reorth):
    rng = np.random.default_rng(seed)
    lam = np.array([1.2, 0.9, -0.6, 0.3, -0.1])               # real, distinct moduli
    V = ortho_group.rvs(5, random_state=seed) + 0.3 * rng.standard_normal((5, 5))
    W = V @ np.diag(lam) @ np.linalg.inv(V)
    model, params = linear_rnn(W, seed)
    x = lc.tasks.noise(300, 1, 2, seed=seed, scale=1e-3).x
    r = lyapunov_spectrum(model, params, x, warmup=100, reorth=reorth, seed=seed)
    np.testing.assert_allclose(r.exponents, np.log(np.abs(lam)), atol=1e-8)
    assert r.lambda1_perturbation == pytest.approx(np.log(1.2), abs=1e-6)


def test_complex_pair_shares_its_modulus():
    th, rho = 0.7, 0.8
    W = np.zeros((3, 3))
    W[:2, :2] = rho * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    W[2, 2] = 0.5
    Q = ortho_group.rvs(3, random_state=4)
    model, params = linear_rnn(Q @ W @ Q.T)
    r = lyapunov_spectrum(model, params, lc.tasks.noise(400, 1, 2).x)
    np.testing.assert_allclose(r.exponents, np.log([rho, rho, 0.5]), atol=1e-10)  # normal: exact


@pytest.mark.parametrize("cell,opts", [("lstm", {}), ("gru", {}), ("rnn", {})])
def test_exponents_sum_to_the_mean_log_determinant(cell, opts):
    model = lc.build(cell, 2, 3, **opts)
    params = model.init_params(1)
    x = lc.tasks.noise(60, 1, 2, seed=2).x
    r = lyapunov_spectrum(model, params, x, warmup=0)
    view, xx, s0 = C.prepare(model, params, x)
    S = C.trajectory(view, xx, s0)[:, 0]
    logdet = sum(np.linalg.slogdet(J)[1] for _, J in iter_jacobians(view, xx[:, 0], S,
                                                                      range(1, 61)))
    assert r.exponents.sum() == pytest.approx(logdet / 60, rel=1e-10)
    assert r.exponents.shape == (view.state_size,)
    assert (np.diff(r.exponents) <= 0).all()


@pytest.mark.parametrize("g,sign", [(0.5, -1), (3.0, 1)])
def test_edge_of_chaos_of_random_tanh_networks(g, sign):
    N = 48
    model = lc.RNN(1, N)
    params = model.init_params(0, scheme="gaussian", gain=g)
    h0 = np.random.default_rng(0).standard_normal((1, 1, N))
    r = lyapunov_spectrum(model, params, np.zeros((400, 1, 1)), h0, k=2)
    assert np.sign(r.exponents[0]) == sign
    assert abs(r.exponents[0]) > 0.05
    assert r.lambda1_gap < 0.05                               # two independent estimates agree
    assert r.convergence.shape[1] == 2 and r.convergence_steps[-1] == 400


def test_kaplan_yorke_dimension():
    assert kaplan_yorke([-0.1, -0.5]) == 0.0
    assert kaplan_yorke([0.3, -0.1, -0.4]) == pytest.approx(2 + 0.2 / 0.4)
    assert kaplan_yorke([0.3, 0.1]) == 2.0


def test_bad_input_is_refused_clearly():
    model = lc.GRU(2, 3)
    params = model.init_params(0)
    x = lc.tasks.noise(20, 1, 2).x
    with pytest.raises(OptionError, match="k=4 is larger than the state size"):
        lyapunov_spectrum(model, params, x, k=4)
    with pytest.raises(OptionError, match="leaves no steps"):
        lyapunov_spectrum(model, params, x, warmup=20)
    with pytest.raises(OptionError, match="reorth"):
        lyapunov_spectrum(model, params, x, reorth=0)


def test_auto_interval_keeps_the_spectrum_and_vjp_route_agrees():
    model = lc.LSTM(2, 3)
    params = model.init_params(4)
    x = lc.tasks.noise(300, 1, 2, seed=3).x
    exact = lyapunov_spectrum(model, params, x, reorth=1)
    auto = lyapunov_spectrum(model, params, x)                # reorth="auto"
    vjp = lyapunov_spectrum(model, params, x, reorth=1, method="vjp")
    assert auto.meta["reorth"] >= 1
    np.testing.assert_allclose(auto.exponents, exact.exponents, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(vjp.exponents, exact.exponents, rtol=1e-12)
    assert exact.lambda1_gap < 0.01
