"""The default's cheap screen: tensors proven right by segment-wise complex-step directions cost
3/16 of the per-element evaluations; any disagreement (or a coarse screen) falls back to the
per-element check, so detection and localisation stay those of the elementwise path."""
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.check.api import SCREEN_RESOLUTION

sys.path.insert(0, str(Path(__file__).parent))
from planted import lstm as P  # noqa: E402


def _big(seed=0):
    p, w = P.make(seed, T=8, H=8, D=4)
    return P.loss_fn(w), p, P.backward(p, w)


def test_right_gradients_are_screened_cheaply():
    fn, p, g = _big()
    r = lc.check_gradients(fn, p, g)
    n = sum(a.size for a in p.values())
    screened = [t for t in r.tensors if t["method"] == "screen(complex)"]
    assert r.passed and {t["name"] for t in screened} == {"Wx", "Wh", "x"}
    assert all(t["resolution"] <= SCREEN_RESOLUTION for t in screened)
    assert r.details["evaluations"] < n / 2
    full = lc.check_gradients(fn, p, g, method="complex")
    assert full.details["evaluations"] >= n


@pytest.mark.parametrize("rel", [1e-6, 1e-9])
def test_one_element_in_a_screened_tensor_is_still_located(rel):
    fn, p, g = _big()
    j = (13, 5)
    g["Wh"][j] *= 1 + rel
    r = lc.check_gradients(fn, p, g)
    assert not r.passed and r.failing() == ["Wh"]
    assert [w["index"] for w in r.worst if not w["passed"]] == [list(j)]
    assert r.details["screened"]["Wh"]["agreed"] is False
    row = next(t for t in r.tensors if t["name"] == "Wh")
    assert row["method"] == "complex"                  # the per-element check took over


@pytest.mark.parametrize("bug", P.BUGS)
def test_screen_keeps_every_planted_detection(bug):
    p, w = P.make(1, T=8, H=8, D=4)
    g = P.backward(p, w, bug)
    auto = lc.check_gradients(P.loss_fn(w), p, g)
    full = lc.check_gradients(P.loss_fn(w), p, g, method="complex")
    assert not auto.passed and auto.failing() == full.failing()
    assert auto.summary == full.summary.replace("complex derivatives", "auto(complex) derivatives")


def test_gradcheck_screens_too():
    m = lc.GRU(8, 16)
    x = np.random.default_rng(0).standard_normal((10, 2, 8))
    r = lc.gradcheck(m, m.init_params(seed=0), x)
    assert r.passed and any(t["method"] == "screen(complex)" for t in r.tensors)
