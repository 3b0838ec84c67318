"""Placing gradient errors in time, and diagnoses by name (an ignored initial state, another
variant / reset_after / nonlinearity than the declared one, computing below float64), on a
CS231n-style NumPy LSTM written independently in tests/planted/cs231n_lstm.py. Its correct
version passes against the oracle and against central differences of its own forward (the
independent check of every derivative here)."""
import numpy as np
import pytest

import lstmcheck as lc
from planted import cs231n_lstm as cs

M = lc.LSTM(3, 4)


def audit(bug=None, **kw):
    return lc.audit(cs.make(bug, **{k: kw.pop(k) for k in ("enters",) if k in kw}),
                    layout="keras", model=M, seq_len=6, seed=0, **kw)


def test_the_correct_cs231n_lstm_passes_oracle_and_finite_differences():
    rep = audit()
    assert rep.passed, rep.to_text()
    assert {r["check"] for r in rep.rows} == {"forward", "gradient", "fd"}
    assert not rep.diagnosis


def test_bptt_error_is_placed_where_it_enters():
    rep = audit("bptt_half")
    assert not rep.passed
    assert rep.diagnosis[0] == ("dL/dx agrees for t >= 3 and disagrees from t = 2 down: the error "
                                "enters between steps 3 and 2.")
    assert ("agree on prefixes of up to 3 steps" in rep.diagnosis[1]
            and "comes in with step t = 3" in rep.diagnosis[1])
    dx = next(r for r in rep.rows if r["tensor"] == "dx" and r["check"] == "gradient")
    assert "first_t" not in dx["where"]        # not "first bad step t=0" any more
    assert "enters between steps 3 and 2" in rep.summary


@pytest.mark.parametrize("enters", [1, 5])
def test_placement_follows_the_planted_step(enters):
    rep = audit("bptt_half", enters=enters)
    assert f"enters between steps {enters} and {enters - 1}" in rep.diagnosis[0]
    assert f"comes in with step t = {enters}" in rep.diagnosis[1]


def test_placement_helpers_on_made_up_patterns():
    from lstmcheck.audit.placement import place_dx
    tol = {"rtol": 1e-8, "atol": 1e-8}
    want = np.ones((5, 2, 3))
    got = want.copy()
    got[:2] += 1.0
    assert "agrees for t >= 2 and disagrees from t = 1 down" in place_dx(M, got, want, tol)
    rev = lc.LSTM(3, 4, direction="reverse")
    got = want.copy()
    got[3:] += 1.0
    assert "agrees for t <= 2 and disagrees from t = 3 up" in place_dx(rev, got, want, tol)
    assert "already at the step BPTT starts from (t = 4)" in place_dx(M, want + 1, want, tol)
    got = want.copy()
    got[2] += 1.0
    assert "t = 2 only" in place_dx(M, got, want, tol)
    assert place_dx(M, want, want, tol) is None


def test_ignored_c0_is_named():
    rep = audit("c0")
    assert rep.diagnosis == ["the target ignores c0: its outputs match the oracle's started from "
                             "c0 = 0."]


def test_float64_that_is_not_float64():
    rep = audit("float32")
    assert not rep.passed
    assert rep.diagnosis[0].startswith("its float64 is not float64")
    # the same implementation declared float32 passes at float32 tolerances
    assert lc.audit(cs.make("float32"), layout="keras", model=M, seq_len=6, seed=0,
                    dtype="float32", fd=False).passed


def test_a_real_bug_is_not_called_low_precision():
    rep = audit("bptt_half")
    assert not any("not float64" in d for d in rep.diagnosis)


def test_another_variant_matches_where_the_declared_one_does_not():
    rep = audit("no_tanh")
    assert "computes variant='no_output_tanh', not the declared variant='vanilla'" in rep.diagnosis[0]
    assert "LSTM(3, 4, num_layers=1, bidirectional=False, variant='no_output_tanh')" in rep.diagnosis[0]


def test_nonlinearity_and_reset_after_are_tried():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 4, nonlinearity="relu").double()
    _, p = lc.layouts.from_torch(rnn)
    rep = lc.audit(rnn, model=lc.RNN(3, 4), params=p, seed=0, fd=False)
    assert "computes nonlinearity='relu', not the declared nonlinearity='tanh'" in rep.diagnosis[0]
    gru = torch.nn.GRU(3, 4).double()
    _, p = lc.layouts.from_torch(gru)
    rep = lc.audit(gru, model=lc.GRU(3, 4, reset_after=False), params=p, seed=0, fd=False)
    assert "computes reset_after=True, not the declared reset_after=False" in rep.diagnosis[0]


def test_one_wrong_gradient_element_is_not_called_low_precision():
    good = cs.make()

    def target(params, x, state):
        return good(params, x, state)

    def vjp(params, x, state, dy, dstate):
        g = good.vjp(params, x, state, dy, dstate)
        g["kernel"][1, 2] *= 1 + 1e-6          # float32-sized, in one element of one tensor
        return g
    target.vjp = vjp
    rep = lc.audit(target, layout="keras", model=M, seq_len=6, seed=0, fd=False)
    assert not rep.passed
    assert not any("not float64" in d for d in rep.diagnosis)
