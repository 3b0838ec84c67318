"""Probes under abuse: T = 100,000, saturated (scale-100) weights, underflowing gradients, NaN/Inf
inputs. Underflow is reported through result fields (``underflow_lag``, ``c_underflow_lag``),
never by plotting log(0).

Limit (measured, not asserted): at T = 100,000 with H = 4, lyapunov_spectrum takes ~30 s and
jacobian_spectrum ~10 s on the 2-core machine (a Python loop over every step), so they are tested
here at T = 5,000; gradient_norms runs the full 100,000 steps.
"""
import json
import tracemalloc

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import NonFiniteError

TINY = np.finfo(np.float64).tiny


def test_gradient_norms_t_100000_finite_and_underflow_reported():
    m = lc.RNN(2, 4)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((100_000, 1, 2))
    tracemalloc.start()
    r = lc.probes.gradient_norms(m, p, x, segment=4096)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20                        # checkpointed: not T x state
    assert r.h_norm.shape == (100_000,) and np.all(np.isfinite(r.h_norm))
    k = r.underflow_lag
    assert k is not None and 0 < k < 100_000
    assert np.all(r.h_norm[k:] < TINY) and r.h_norm[k - 1] >= TINY     # from lag k on, subnormal/0
    assert np.isfinite(r.decay_rate) and r.decay_rate > 0
    d = r.to_dict()
    assert d["underflow_lag"] == k and json.dumps({"lag": d["underflow_lag"]})


def test_no_underflow_gives_none():
    m = lc.LSTM(2, 3)
    r = lc.probes.gradient_norms(m, m.init_params(seed=0),
                                 np.random.default_rng(1).standard_normal((30, 2, 2)))
    assert r.underflow_lag is None and r.c_underflow_lag is None
    s = lc.probes.jacobian_spectrum(m, m.init_params(seed=0),
                                    np.random.default_rng(1).standard_normal((30, 1, 2)))
    assert s.underflow_lag is None


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_scale_100_saturated(cell):
    """Every gate saturated: results finite (or -inf exponents where a Jacobian is exactly
    singular), underflow located, no warnings."""
    m = getattr(lc, cell)(2, 3)
    p = m.init_params(seed=0, scale=100.0)
    x = np.random.default_rng(0).standard_normal((400, 1, 2))
    r = lc.probes.gradient_norms(m, p, x)
    assert np.all(np.isfinite(r.h_norm)) and np.isfinite(r.grad_norm)
    if r.underflow_lag is not None:
        assert np.all(r.h_norm[r.underflow_lag:] < TINY)
    if cell == "LSTM":
        assert r.c_underflow_lag is None or np.all(r.c_norm[r.c_underflow_lag:] < TINY)
    s = lc.probes.jacobian_spectrum(m, p, x)
    top = s.log_singular_values[:, 0]
    assert np.all(np.isfinite(top) | (top == -np.inf))
    if s.underflow_lag is not None:
        assert np.all(s.spectral_norm[s.underflow_lag - 1:] < TINY)
        assert np.all(s.log_singular_values[s.underflow_lag - 1:, 0] < np.log(TINY))
    ly = lc.probes.lyapunov_spectrum(m, p, x)
    assert not np.any(np.isnan(ly.exponents)) and not np.any(ly.exponents == np.inf)
    assert ly.exponents[0] < 0                       # saturated: contracting
    g = lc.probes.gate_statistics(m, p, x)
    assert json.dumps(_finite_keys(g.to_dict())) is not None


def _finite_keys(d):
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, type(None)))}


@pytest.mark.parametrize("cell", ["LSTM", "RNN"])
def test_long_lyapunov_and_spectrum_t_5000(cell):
    m = getattr(lc, cell)(2, 3)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((5000, 1, 2))
    ly = lc.probes.lyapunov_spectrum(m, p, x)
    assert np.all(np.isfinite(ly.exponents)) and abs(ly.lambda1_gap) < 0.05
    s = lc.probes.jacobian_spectrum(m, p, x, max_lag=5000)
    assert s.underflow_lag is not None                # e^(-0.4 * 5000) is far below 1e-308
    assert np.all(np.isfinite(s.log_singular_values[:, 0]))          # the logs stay exact
    slope = np.polyfit(s.lags[-1000:], s.log_singular_values[-1000:, 0], 1)[0]
    assert slope == pytest.approx(ly.exponents[0], abs=0.1)   # log sigma_1 ~ lambda_1 k


def test_denormal_inputs_and_states():
    m = lc.LSTM(2, 3)
    p = m.init_params(seed=0)
    x = np.full((50, 1, 2), 1e-310)
    h0 = np.full((1, 1, 3), 1e-310)
    r = lc.probes.gradient_norms(m, p, x, (h0, h0.copy()))
    assert np.all(np.isfinite(r.h_norm)) and r.underflow_lag is None
    ly = lc.probes.lyapunov_spectrum(m, p, x, (h0, h0.copy()))
    assert np.all(np.isfinite(ly.exponents))


@pytest.mark.parametrize("probe", ["gradient_norms", "jacobian_spectrum", "lyapunov_spectrum",
                                   "gate_statistics"])
@pytest.mark.parametrize("poison,name", [("param", "weight_hh_l0"), ("h0", "h0"), ("c0", "c0"),
                                         ("x", r"x\[7\]")])
def test_nan_inf_inputs_name_the_tensor(probe, poison, name):
    m = lc.LSTM(2, 3)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((12, 1, 2))
    h0, c0 = np.zeros((1, 1, 3)), np.zeros((1, 1, 3))
    if poison == "param":
        p["weight_hh_l0"][1, 1] = np.nan
    elif poison == "h0":
        h0[0, 0, 2] = np.inf
    elif poison == "c0":
        c0[0, 0, 0] = -np.inf
    else:
        x[7, 0, 1] = np.nan
    with pytest.raises(NonFiniteError, match=name):
        getattr(lc.probes, probe)(m, p, x, (h0, c0))


def test_norms_below_sqrt_of_underflow_survive():
    """sqrt(sum of squares) is 0 below ~1e-154 in float64; the probes' norms must not be, or
    underflow_lag comes about 100 lags too early."""
    from lstmcheck.probes._common import row_norms
    v = np.random.default_rng(3).standard_normal((5, 7))
    for s in (1e-200, 1e-300, 1.0, 1e200):
        np.testing.assert_allclose(row_norms(np, s * v), s * np.linalg.norm(v, axis=-1), rtol=1e-14)
    assert np.all(row_norms(np, np.zeros((2, 3))) == 0)
    m = lc.RNN(4, 8)
    r = lc.probes.gradient_norms(m, m.init_params(seed=0, spectral_radius=0.05),
                                 np.random.default_rng(0).standard_normal((400, 2, 4)))
    k = r.underflow_lag
    assert k is not None
    between = (r.h_norm[:k] > TINY) & (r.h_norm[:k] < 1e-200)
    assert between.any()                      # norms between 1e-308 and 1e-154 are kept
