"""Every sentence a report states, held to the numbers of the same run (issue 16): gradient
overflow is a measurement (exploding, at its lag), regimes are fitted separately, sweeps never
average opposite phases, banners never say "passed" without a check."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import ortho_group

import lstmcheck as lc
from lstmcheck.probes import gradient_norms
from lstmcheck.probes import regimes as R
from lstmcheck.report import Report
from lstmcheck.report import sweep as rs

NO_INF_NAN = re.compile(r"\b(inf|nan)\b", re.I)


def linear_rnn(H, alpha, seed=0, D=3):
    """h_t = W h_{t-1} + U x_t with W = alpha * orthogonal: ||dL/dh_{T-k}|| = alpha^k exactly."""
    model = lc.RNN(D, H, nonlinearity="identity")
    params = model.init_params(seed)
    params["weight_hh_l0"] = alpha * ortho_group.rvs(H, random_state=seed)
    return model, params


# ----------------------------------------------------------------------------- overflow
def test_gradient_overflow_is_recorded_as_exploding_at_its_lag():
    """alpha = 1.5 for T = 2000: alpha^k passes the float64 range near k = 1750. The probe no
    longer raises; it records the lag, and the norms before it are still alpha^k."""
    alpha, H = 1.5, 4
    model, params = linear_rnn(H, alpha)
    params["bias_ih_l0"][:] = params["bias_hh_l0"][:] = 0.0
    x = np.zeros((2000, 2, 3))          # h stays 0 (no forward overflow); the backward is linear
    r = gradient_norms(model, params, x)
    big = np.finfo(np.float64).max
    # some element passes MAX only once the norm does (element <= norm), and surely once the
    # norm passes sqrt(H) * MAX (element >= norm / sqrt(H)); the loss vector has norm 1
    lo, hi = np.log(big) / np.log(alpha), (np.log(big) + 0.5 * np.log(H)) / np.log(alpha)
    assert r.overflow_lag is not None and lo - 1 <= r.overflow_lag <= hi + 1
    k = r.overflow_lag
    np.testing.assert_allclose(r.h_norm_rel[:k], alpha ** np.arange(k), rtol=1e-8)
    assert np.isnan(r.h_norm[k:]).all() and r.grad_norm == np.inf and not r.clipped
    assert r.regimes["tail"].verdict == "exploding" and r.regimes["tail"].overflow_lag == k
    assert r.regimes["first"].rate == pytest.approx(-np.log(alpha), rel=1e-9)
    assert r.regimes["tail"].rate == pytest.approx(-np.log(alpha), rel=1e-9)
    assert np.isfinite(r.contribution_share[:k]).all()


def test_regimes_are_fitted_separately_and_say_undetermined_when_sequences_disagree():
    lags = np.arange(40)[:, None]
    # a 50x drop over the first step, then x0.9 per step, in three sequences
    steady = np.exp(-np.log(50) * (lags > 0) - 0.1 * np.maximum(lags - 1, 0)) * np.ones((1, 3))
    reg = R.regimes(steady)
    assert reg["tail"].rate == pytest.approx(0.1) and reg["tail"].verdict == "vanishing"
    assert reg["first"].rate > 0.5 and reg["tail"].n == 3 and reg["tail"].lags == (5, 39)
    # two sequences vanish, two explode: the IQR straddles 0
    mixed = np.exp(np.concatenate([-0.05 * lags, -0.05 * lags, 0.05 * lags, 0.05 * lags], 1))
    assert R.regimes(mixed)["tail"].verdict == "undetermined"
    flat = np.ones((40, 2)) * np.exp(1e-5 * lags)
    assert R.regimes(flat)["tail"].verdict == "neutral"
    assert R.regimes(np.ones((1, 2)))["first"].verdict == "undetermined"   # one lag: no fit
    assert R.classify(0.2, 0.3) == "vanishing" and R.classify(-0.3, -0.2) == "exploding"


# ----------------------------------------------------------------------------- the sweep
@pytest.fixture(scope="module")
def overflow_sweep():
    """The issue's sweep scaled down (seq_len 8000 instead of 20000, RNN only): at radius 2 two
    of three seeds overflow."""
    return lc.sweep({"cell": "rnn", "spectral_radius": [1.5, 2.0], "seq_len": 8000,
                     "seed": [0, 1, 2]}, "gradient_flow")


def test_sweep_records_overflow_as_exploding_and_drops_no_point(overflow_sweep):
    recs = overflow_sweep
    assert len(recs) == 6 and not any(r["error"] for r in recs)
    over = [r for r in recs if r["overflow_lag"] is not None]
    assert over and all(r["regime"] == "exploding" for r in over)
    assert all(0 < r["overflow_lag"] < 8000 for r in over)
    rep = rs.sweep_report(recs, x="cell", y="spectral_radius")
    row = next(r for r in rep.rows if r.check == "gradient overflow (exploding)")
    assert row.result.startswith(f"{len(over)} of 6 points")
    assert f"lag {min(r['overflow_lag'] for r in over)}" in row.result


def test_sweep_never_averages_opposite_phases(overflow_sweep):
    recs = overflow_sweep
    fig = rs.phase_diagram(recs, "cell", "spectral_radius")
    texts = [t.get_text() for t in fig.axes[0].texts]
    _, ys, Z = rs.table(recs, "cell", "spectral_radius", "decay_rate")
    for j, rho in enumerate(ys):
        at = [r for r in recs if r["spectral_radius"] == rho]
        phases = [rs.regime(r, "decay_rate") for r in at]
        if len(set(phases)) > 1:                     # mixed: no mean, the split instead
            assert np.isnan(Z[j, 0])
            split = " ".join(f"{rs.LETTERS[p]}{phases.count(p)}" for p in rs.LETTERS
                             if phases.count(p))
            assert f"mixed\n{split}" in texts[j]
        else:
            assert Z[j, 0] == pytest.approx(np.mean([r["decay_rate"] for r in at]))
            assert texts[j].endswith(f"n={len(at)}") or "overflowed" in texts[j]
    fixed = fig.texts[-1].get_text() if fig.texts else fig._supxlabel.get_text()
    assert "seq_len 8000" in fixed and "hidden_size 32" in fixed


# ----------------------------------------------------------------------------- banners
def test_reports_without_checks_do_not_say_passed():
    rep = Report("probe", kind="gradient-flow report")
    rep.add_row("gradient flow: RNN", "vanishing")
    assert rep.verdict == "no checks" and rep.headline == "gradient-flow report, no checks run"
    rep.warnings.append("2 of 6 points FAILED")
    assert "passed" not in rep.headline and rep.headline.endswith("2 of 6 points FAILED")
    rep.add_row("gradcheck", "ok", "pass")
    assert rep.headline.startswith("All checks passed")


def test_a_sweep_with_failed_points_says_so():
    recs = [{"cell": "rnn", "seed": s, "spectral_radius": 1.0, "hidden_size": 8,
             "error": "boom" if s else None, "decay_rate": 0.1} for s in range(3)]
    rep = rs.sweep_report(recs)
    assert rep.verdict == "no checks"
    assert rep.headline == "sweep report, no checks run; 2 of 3 points FAILED (left out of the " \
                           "figures, counted in their cells)"
