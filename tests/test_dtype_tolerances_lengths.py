"""Tolerances from the implementation's dtype (golden vectors' verify and oracle_case.check: a
correct float32 implementation passes, a float32 one off by 1e-3 fails); lengths in golden
vectors, the .npz dump format, oracle_case and assert_matches_oracle; assert_matches_oracle's
state= and dstate=."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import vectors as V
from lstmcheck.pytest_plugin import assert_matches_oracle, make_case
from planted import cs231n_lstm as cs


def run_layout(config, params, x, state, dtype, lengths=None):
    """A correct implementation in ``dtype``: the oracle model rebuilt in that precision."""
    model, p = lc.layouts.load(config["layout"], params, config["cell"], **config["layout_options"])
    m = model.replace(dtype=dtype)
    cast = (lambda a: np.asarray(a, dtype))
    st = tuple(map(cast, state)) if isinstance(state, tuple) else cast(state)
    y, fin, _ = m.forward({n: cast(a) for n, a in p.items()}, cast(x), st, lengths=lengths)
    return y, fin


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vec32") / "suite"
    return folder, V.export(folder, seed=1)


def test_a_float32_implementation_passes_the_golden_vectors(suite):
    folder, _ = suite
    rep = V.verify(folder, lambda c, p, x, s, lengths=None: run_layout(c, p, x, s, "float32", lengths))
    assert rep.passed, rep.to_text()
    assert not any(c["skipped"] for c in rep.cases)


def test_a_float32_implementation_off_by_1e_3_fails(suite):
    folder, _ = suite

    def off(c, p, x, s, lengths=None):
        y, fin = run_layout(c, p, x, s, "float32", lengths)
        return y * np.float32(1.001), fin
    rep = V.verify(folder, off, cases=["lstm_l1_uni", "gru_l2_bi"])
    assert not rep.passed and all(not c["passed"] for c in rep.cases)


def test_lengths_cases_are_fed_skipped_or_failed(suite):
    folder, manifest = suite
    named = {c["name"]: c for c in manifest["cases"]}
    for name in ("lstm_lengths", "gru_lengths_bi", "onnx_lstm_reverse_lengths"):
        assert named[name]["lengths"]
        d = lc.audit(folder / named[name]["file"])        # the dump format carries them
        assert d.passed and d.config["lengths"] == named[name]["lengths"], d.to_text()
    cases = list(named)
    no_lengths = V.verify(folder, lambda c, p, x, s: run_layout(c, p, x, s, "float64"), cases=cases)
    skipped = {c["name"] for c in no_lengths.cases if c["skipped"]}
    assert skipped == {"lstm_lengths", "gru_lengths_bi", "onnx_lstm_reverse_lengths"}
    assert all("lengths" in c["reason"] for c in no_lengths.cases if c["skipped"])
    ignores = V.verify(folder, lambda c, p, x, s, lengths=None: run_layout(c, p, x, s, "float64"),
                       cases=sorted(skipped))
    assert not any(c["passed"] for c in ignores.cases)


@pytest.mark.parametrize("cell, layout", [("lstm", "torch"), ("gru", "keras"), ("rnn", "onnx")])
def test_oracle_case_check_takes_float32_at_float32_tolerances(cell, layout):
    case = make_case(cell, layout, seed=2)
    cfg = {"layout": layout, "cell": cell, "layout_options": case.options}
    y, fin = run_layout(cfg, case.params, case.x, case.state, "float32")
    case.check(y, fin)
    with pytest.raises(AssertionError, match="off by"):
        case.check(y * np.float32(1.001), fin)


def test_oracle_case_with_lengths():
    case = make_case("lstm", "torch", seed=1, batch=3, lengths=[5, 2, 4])
    assert case.lengths.tolist() == [5, 2, 4] and not case.y[2:, 1].any()
    cfg = {"layout": "torch", "cell": "lstm", "layout_options": case.options}
    y, fin = run_layout(cfg, case.params, case.x, case.state, "float64", lengths=case.lengths)
    case.check(y, fin)
    y_full, fin_full = run_layout(cfg, case.params, case.x, case.state, "float64")
    with pytest.raises(AssertionError):
        case.check(y_full, fin_full)


def test_assert_matches_oracle_state_for_a_target_that_starts_from_zero_c0():
    target = cs.make("c0")
    M = lc.LSTM(3, 4)
    with pytest.raises(AssertionError, match="ignores c0"):
        assert_matches_oracle(target, "lstm", "keras", model=M, fd=False)
    h0 = 0.5 * np.random.default_rng(0).standard_normal((1, 2, 4))
    # fd=False: its vjp still reports a dc0 that its forward ignores (no use to check it here)
    rep = assert_matches_oracle(target, "lstm", "keras", model=M, state=(h0, np.zeros_like(h0)),
                                dstate=(np.ones_like(h0), np.zeros_like(h0)), fd=False)
    assert rep.passed


def test_assert_matches_oracle_lengths_reach_a_callable():
    seen = []

    def impl(params, x, state, lengths=None):
        seen.append(None if lengths is None else list(lengths))
        m, p = lc.layouts.load("torch", params, "gru")
        y, fin, _ = m.forward(p, x, state[0] if isinstance(state, tuple) else state,
                              lengths=lengths)
        return y, fin
    rep = assert_matches_oracle(impl, "gru", "torch", batch=3, lengths=[5, 1, 3], fd=False)
    assert rep.config["lengths"] == [5, 1, 3] and seen[0] == [5, 1, 3]
