"""A finite-difference step that straddles a kink (relu, clip, a mask boundary) misses the
derivative by a share of the jump. Elements still failing after the second opinion are
re-measured at steps 10, 100 and 1000 times smaller: a correct gradient beside a kink passes, a
wrong one still fails."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.check import tolerance as tol


def _fn(delta, dtype):
    def fn(p):
        t = np.asarray(p["t"], dtype)
        return float(np.sum(np.maximum(t - dtype(delta), 0) * dtype(1.5))
                     + 0.5 * np.sum(np.asarray(p["u"], np.float64) ** 2))
    return fn


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("share", [0.3, 0.6, 0.9])        # the kink at share x the base step
def test_a_correct_gradient_beside_a_kink_passes(dtype, share):
    h = float(tol.central_step(0.0, dtype))
    delta = share * h
    p = {"t": np.zeros(3, dtype), "u": np.array([0.3, -1.2], dtype)}
    exact = {"t": np.zeros(3, dtype), "u": p["u"].copy()}     # relu'(-delta) = 0
    fn = _fn(delta, dtype)
    # the base step alone calls it wrong: the case really straddles the kink
    assert (fn({**p, "t": p["t"] + dtype(h)}) - fn({**p, "t": p["t"] - dtype(h)})) / (2 * h) > 0.1
    rep = lc.check_gradients(fn, p, exact, method="central")
    assert rep.passed, rep.summary


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("wrong", [1.5, 0.2, -0.7])
def test_a_wrong_gradient_beside_a_kink_still_fails(dtype, wrong):
    h = float(tol.central_step(0.0, dtype))
    p = {"t": np.zeros(3, dtype), "u": np.array([0.3, -1.2], dtype)}
    bad = {"t": np.array([0.0, wrong, 0.0], dtype), "u": p["u"].copy()}
    rep = lc.check_gradients(_fn(0.5 * h, dtype), p, bad, method="central")
    assert not rep.passed
    (row,) = [r for r in rep.tensors if r["name"] == "t"]
    assert row["n_failed"] == 1


def test_a_wrong_gradient_away_from_kinks_fails_as_before():
    """Smooth f, a small planted error: the smaller steps agree with the base step, so the
    disagreement they re-measure is the same and the element still fails."""
    def fn(p):
        return float(np.sum(np.sin(p["w"]) * np.cosh(0.3 * p["w"])))
    w = np.random.default_rng(0).standard_normal(20)
    g = np.cos(w) * np.cosh(0.3 * w) + np.sin(w) * 0.3 * np.sinh(0.3 * w)
    g[7] += 1e-6 * (1 + abs(g[7]))
    rep = lc.check_gradients(fn, {"w": w}, {"w": g}, method="central")
    assert not rep.passed and rep.tensors[0]["n_failed"] == 1
