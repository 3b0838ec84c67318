"""A central-difference error bar guesses f''' from f''. At an inflection point (f'' = 0, f''' large)
that guess is far too small; failing elements get a second opinion by Richardson before being
called wrong, so a correct gradient is not flagged, and a wrong one still is."""
import numpy as np
import pytest

import lstmcheck as lc

K = 100.0   # f(t) = sin(K t) at t = 0: f'' = 0, f''' = -K^3, central truncation error ~ 6e-6


def fn(p):
    return float(np.sum(np.sin(K * p["t"])) + 0.5 * np.sum(p["u"] ** 2))


def params():
    return {"t": np.zeros(3), "u": np.array([0.3, -1.2])}


def test_the_first_estimate_alone_would_have_failed():
    """Without the second opinion (fixed bands at the first estimate's derived size), central
    differences call the exact gradient wrong: the case is a real test of the mechanism."""
    p = params()
    exact = {"t": np.full(3, K), "u": p["u"].copy()}
    rep = lc.check_gradients(fn, p, exact, method="central", rtol=0, atol=1e-8)
    assert not rep.passed


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_exact_gradient_passes_with_second_opinion(method):
    p = params()
    exact = {"t": np.full(3, K), "u": p["u"].copy()}
    rep = lc.check_gradients(fn, p, exact, method=method)
    assert rep.passed, rep.to_text()
    if method == "central":
        assert rep.details["second_opinions"]["t"] == 3


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_wrong_element_still_fails(method):
    p = params()
    wrong = {"t": np.full(3, K), "u": p["u"].copy()}
    wrong["t"][1] *= 1 + 1e-7
    rep = lc.check_gradients(fn, p, wrong, method=method)
    assert not rep.passed
    bad = [w for w in rep.worst if not w.get("passed", True)] or rep.worst
    assert bad[0]["tensor"] == "t" and tuple(np.atleast_1d(bad[0]["index"])) in ((1,), 1)
