"""Every planted bug in the hand-written LSTM is detected and located, by every method that can."""
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc

sys.path.insert(0, str(Path(__file__).parent))
from planted import lstm as P  # noqa: E402

# where each bug must be reported (tensors that must fail)
EXPECT = {"gate_derivative": {"Wx", "Wh", "b"}, "no_cec": {"Wx", "Wh", "b", "c0"},
          "swapped_gates": {"Wh"}, "off_by_one": {"Wh"}, "no_bias_grad": {"b"},
          "one_element": {"Wh"}, "nan": {"Wx"}}


def _check(bug, method, seed=0, **kw):
    p, w = P.make(seed, T=8)
    return lc.check_gradients(P.loss_fn(w), p, P.backward(p, w, bug), method=method, seed=seed,
                              locate=P.make_locate(3), **kw)


@pytest.mark.parametrize("method", ["auto", "central", "richardson", "complex", "directional"])
@pytest.mark.parametrize("bug", P.BUGS)
def test_planted_bug_detected_and_located(bug, method):
    r = _check(bug, method)
    assert not r.passed
    failing = set(r.failing())
    assert EXPECT[bug] <= failing
    if bug in ("swapped_gates", "off_by_one", "no_bias_grad", "one_element", "nan"):
        assert failing == EXPECT[bug]       # and nothing else is blamed


@pytest.mark.parametrize("method", ["auto", "central", "complex", "directional"])
def test_single_element_located_exactly(method):
    r = _check("one_element", method)
    assert [(w["tensor"], w["index"]) for w in r.worst if not w["passed"]] == [("Wh", [4, 2])]
    assert r.worst[0]["location"] == {"tensor": "Wh", "gate": "f", "row": 1, "column": 2}
    assert "one wrong element" in r.summary and "gate f" in r.summary


def test_summaries_name_the_pattern():
    assert "gate blocks i and f swapped" in _check("swapped_gates", "auto").summary
    assert "NaN" in _check("nan", "auto").summary
    assert "Wx[6, 1]" in _check("nan", "auto").summary


@pytest.mark.parametrize("bug", [b for b in P.BUGS if b != "one_element"])
def test_taylor_detects_structural_bugs(bug):
    r = _check(bug, "taylor")
    assert not r.passed and EXPECT[bug] <= set(r.failing())


def test_correct_gradients_pass_every_method():
    for method in ("auto", "central", "richardson", "complex", "directional", "taylor"):
        r = _check(None, method)
        assert r.passed, (method, r.summary)


def test_directional_bisection_is_logarithmic():
    """A big tensor with one wrong element: O(log P) directional tests, not P."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((64, 64))
    p = {"W": rng.standard_normal((64, 64))}
    g = {"W": 2 * A * p["W"] * np.cos(np.sum(A * p["W"] ** 2))}
    g["W"][17, 40] *= 1 + 1e-7
    r = lc.check_gradients(lambda q: np.sin(np.sum(A * q["W"] ** 2)), p, g, method="directional")
    assert not r.passed and r.worst[0]["index"] == [17, 40]
    assert r.details["evaluations"] < 200          # 4096 elements would need 4096
