"""jacobian_spectrum against theory (orthogonal, normal and Jordan-block linear RNNs, Pascanu's
bound) and against finite differences of the state map for every cell; bad input."""
import numpy as np
import pytest
from scipy.stats import ortho_group

import lstmcheck as lc
from lstmcheck.errors import NonFiniteError, OptionError
from lstmcheck.probes import _common as C
from lstmcheck.probes import jacobian_spectrum


def linear_rnn(W, seed=0, D=2):
    model = lc.RNN(D, W.shape[0], nonlinearity="identity")
    params = model.init_params(seed)
    params["weight_hh_l0"] = W
    return model, params


@pytest.mark.parametrize("H,alpha,seed", [(3, 0.9, 0), (8, 1.1, 1), (12, 0.3, 2)])
def test_orthogonal_times_alpha_has_every_singular_value_alpha_to_the_lag(H, alpha, seed):
    model, params = linear_rnn(alpha * ortho_group.rvs(H, random_state=seed), seed)
    x = lc.tasks.noise(200, 2, 2, seed=seed).x          # 0.3^200: far below float64's range
    r = jacobian_spectrum(model, params, x, sample=1)
    np.testing.assert_allclose(r.log_singular_values, np.log(alpha) * r.lags[:, None] * np.ones(H),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.condition_number, 1.0, rtol=1e-9)
    np.testing.assert_allclose(r.frobenius_norm, np.sqrt(H) * alpha ** r.lags, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_normal_matrix_spectral_norm_is_rho_to_the_lag(seed):
    rng = np.random.default_rng(seed)
    radii = np.array([0.95, 0.7, 0.4])
    blocks = []
    for r in radii:                                     # rotation-scaling blocks: complex eigs
        th = rng.uniform(0, np.pi)
        blocks.append(r * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]))
    D = np.zeros((6, 6))
    for i, b in enumerate(blocks):
        D[2 * i:2 * i + 2, 2 * i:2 * i + 2] = b
    Q = ortho_group.rvs(6, random_state=seed)
    model, params = linear_rnn(Q @ D @ Q.T, seed)
    r = jacobian_spectrum(model, params, lc.tasks.noise(40, 1, 2, seed=seed).x, k=6)
    np.testing.assert_allclose(r.spectral_norm, 0.95 ** r.lags, rtol=1e-10)
    # SVD resolves small singular values to eps * the largest, not relative to themselves
    np.testing.assert_allclose(r.singular_values[:, -1], 0.4 ** r.lags, rtol=1e-9,
                               atol=1e-14 * r.spectral_norm[-1])


def test_jordan_block_grows_transiently_although_rho_is_below_one():
    n, rho = 5, 0.8
    W = rho * np.eye(n) + np.eye(n, k=1)
    model, params = linear_rnn(W)
    r = jacobian_spectrum(model, params, lc.tasks.noise(150, 1, 2).x)
    expect = [np.linalg.norm(np.linalg.matrix_power(W, k), 2) for k in r.lags]
    np.testing.assert_allclose(r.spectral_norm, expect, rtol=1e-10)
    assert r.spectral_norm.max() > 10 and r.spectral_norm[-1] < 1e-2
    assert np.argmax(r.spectral_norm) > 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tanh_rnn_obeys_pascanus_bound_at_every_lag(seed):
    model = lc.RNN(3, 10)
    params = model.init_params(seed, scheme="gaussian", gain=1.5)
    x = lc.tasks.noise(60, 1, 3, seed=seed).x
    r = jacobian_spectrum(model, params, x)
    y, _, _ = model.forward(params, x)
    gamma = (1 - y[:, 0] ** 2).max(axis=1)[::-1]         # max_i (1 - h_t^2) for t = T, T-1, ...
    bound = np.cumprod(gamma) * np.linalg.norm(params["weight_hh_l0"], 2) ** r.lags
    assert (r.spectral_norm <= bound * (1 + 1e-12)).all()
    assert (r.spectral_norm < bound).any()


def fd_product(model, params, x, lag, h=1e-6):
    """ds_T/ds_{T-lag} by central differences of the state map."""
    view, xx, s0 = C.prepare(model, params, x)
    S = C.trajectory(view, xx, s0)[:, 0]
    T, n = x.shape[0], S.shape[1]

    def run(s):
        st = view.split(s[None])
        for t in range(T - lag, T):
            st = view.step(xx[t], st)
        return view.join(st)[0]
    J = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        J[:, j] = (run(S[T - lag] + e) - run(S[T - lag] - e)) / (2 * h)
    return J


@pytest.mark.parametrize("cell,opts", [("rnn", {}), ("lstm", {}), ("lstm", {"variant": "peephole"}),
                                       ("lstm", {"proj_size": 2}), ("gru", {}),
                                       ("gru", {"reset_after": False}), ("lstm", {"batch_first": True})])
def test_singular_values_agree_with_finite_differences(cell, opts):
    model = lc.build(cell, 2, 4, **opts)
    params = model.init_params(5)
    x = lc.tasks.noise(12, 1, 2, seed=6).x
    r = jacobian_spectrum(model, params, x.transpose(1, 0, 2) if model.batch_first else x, chunk=5)
    for lag in (1, 4, 12):
        J = fd_product(lc.build(cell, 2, 4, **{k: v for k, v in opts.items() if k != "batch_first"}),
                       params, x, lag)
        sv = np.linalg.svd(J, compute_uv=False)
        np.testing.assert_allclose(r.singular_values[lag - 1], sv, rtol=1e-6, atol=1e-9)
        assert r.frobenius_norm[lag - 1] == pytest.approx(np.linalg.norm(J), rel=1e-6, abs=1e-8)
    assert r.state == ("h,c" if cell == "lstm" else "h")
    assert r.singular_values.shape == (12, C.prepare(model, params, x)[0].state_size)


def test_bad_input_is_refused_clearly():
    model = lc.LSTM(2, 3)
    params = model.init_params(0)
    x = lc.tasks.noise(10, 2, 2).x
    with pytest.raises(OptionError, match="max_lag=11 needs at least 11 time steps"):
        jacobian_spectrum(model, params, x, max_lag=11)
    with pytest.raises(OptionError, match="k=7 is larger than the state size"):
        jacobian_spectrum(model, params, x, k=7)
    with pytest.raises(OptionError, match="sample"):
        jacobian_spectrum(model, params, x, sample=2)
    relu = lc.RNN(2, 3, nonlinearity="relu")
    p = relu.init_params(0)
    p["weight_hh_l0"] = np.eye(3) * 1e100
    p["bias_ih_l0"][:] = 1.0
    with pytest.raises(NonFiniteError, match=r"t=5 "):      # h_t ~ 1e100^(t-1): Inf at t = 5
        jacobian_spectrum(relu, p, x)


@pytest.mark.parametrize("cell,opts", [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}),
                                       ("gru", {}), ("gru", {"reset_after": False})])
def test_analytic_jacobians_equal_the_vjp_route(cell, opts):
    """The closed-form per-step Jacobians agree with the model's backward (itself checked
    against finite differences above), in both time directions and across chunk edges."""
    from lstmcheck.probes.jacobians import iter_jacobians
    model = lc.build(cell, 2, 5, **opts)
    params = model.init_params(3)
    x = lc.tasks.noise(17, 1, 2, seed=1).x
    view, xx, s0 = C.prepare(model, params, x)
    S = C.trajectory(view, xx, s0)[:, 0]
    for order in (range(1, 18), range(17, 0, -1)):
        A = dict(iter_jacobians(view, xx[:, 0], S, order, chunk=6, method="analytic"))
        V = dict(iter_jacobians(view, xx[:, 0], S, order, chunk=6, method="vjp"))
        assert list(A) == list(order)
        for t in A:
            np.testing.assert_allclose(A[t], V[t], rtol=1e-12, atol=1e-14)
    with pytest.raises(OptionError, match="no analytic Jacobian"):
        peep = lc.LSTM(2, 3, variant="peephole")
        pv = C.prepare(peep, peep.init_params(0), x)[0]
        list(iter_jacobians(pv, xx[:, 0], np.zeros((18, 6)), [1], method="analytic"))
