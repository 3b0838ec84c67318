"""The pytest11 plugin: a downstream conformance test in a few lines, passing and failing."""
import pytest

# pytester's in-process runs drop modules first imported inside them; compiled NumPy/SciPy
# extensions cannot be imported twice, so everything the inner tests use is imported here
import numpy.fft  # noqa: F401
import scipy.special  # noqa: F401

import lstmcheck.audit  # noqa: F401
import lstmcheck.layouts  # noqa: F401
import lstmcheck.vectors  # noqa: F401

pytest_plugins = ["pytester"]

IMPL = '''
import numpy as np

def sig(z):
    return 1 / (1 + np.exp(-z))

def my_lstm(p, x, state, swap=False):
    h, c = state[0][0], state[1][0]
    Wi, Wh = p["weight_ih_l0"], p["weight_hh_l0"]
    b = p["bias_ih_l0"] + p["bias_hh_l0"]
    ys = []
    for t in range(len(x)):
        i, f, g, o = np.split(x[t] @ Wi.T + h @ Wh.T + b, 4, axis=1)
        if swap:
            i, f = f, i
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys), (h[None], c[None])

def buggy(p, x, state):
    return my_lstm(p, x, state, swap=True)
'''


def test_plugin_is_registered(pytester):
    pytester.makepyfile(test_reg="""
def test_reg(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("lstmcheck")
""")
    pytester.runpytest("-q").assert_outcomes(passed=1)


def test_downstream_conformance_tests_pass_and_fail_with_a_diagnosis(pytester):
    pytester.makepyfile(impl=IMPL)
    pytester.makepyfile(test_conformance="""
from impl import my_lstm, buggy

def test_mine(assert_matches_oracle):
    assert_matches_oracle(my_lstm, cell="lstm", layout="torch", hidden_size=5)

def test_buggy(assert_matches_oracle):
    assert_matches_oracle(buggy, cell="lstm", layout="torch")

def test_case(oracle_case):
    case = oracle_case("lstm", "torch", seq_len=4)
    y, fin = my_lstm(case.params, case.x, case.state)
    case.check(y, fin)

def test_case_catches(oracle_case):
    case = oracle_case("lstm", "torch")
    y, fin = buggy(case.params, case.x, case.state)
    case.check(y, fin)
""")
    result = pytester.runpytest("-q", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "disagrees with the lstmcheck oracle" in out
    assert "i (input) and f (forget)" in out          # the audit's diagnosis reaches the user
    assert "does not match the oracle" in out and "y off by" in out


def test_oracle_fixtures_seed_option_and_vectors(pytester):
    pytester.makepyfile(test_fix="""
import numpy as np
import lstmcheck as lc

def test_models(lstm_oracle):
    m = lstm_oracle("gru", 2, 3, bidirectional=True)
    assert m.kind == "gru" and m.num_directions == 2

def test_keras_case_gradients(oracle_case, lstmcheck_seed):
    assert lstmcheck_seed == 7
    case = oracle_case("gru", "keras", reset_after=True)
    assert set(case.params) == {"kernel", "recurrent_kernel", "bias"}
    m, p = lc.layouts.load("keras", case.params, "gru", **case.options)
    y, fin, tape = m.forward(p, case.x, case.state)
    g = m.backward(tape, case.dy, case.dstate)
    case.check(y, fin, {"x": g["x"], "h0": g["h0"]})

def test_seeded(oracle_case):
    a, b = oracle_case("rnn"), oracle_case("rnn", seed=7)
    assert np.array_equal(a.x, b.x)

def test_vectors(lstm_vectors):
    def impl(config, params, x, state):
        raise NotImplementedError
    rep = lc.vectors.verify(lstm_vectors, impl)
    assert all(c["skipped"] for c in rep.cases) and not rep.passed
""")
    pytester.runpytest("-q", "--lstmcheck-seed", "7", "-p", "no:randomly").assert_outcomes(passed=4)


def test_assert_matches_oracle_on_a_torch_module_directly():
    torch = pytest.importorskip("torch")
    from lstmcheck.pytest_plugin import assert_matches_oracle
    torch.manual_seed(0)
    rep = assert_matches_oracle(torch.nn.GRU(3, 4, bidirectional=True).double(), fd=False)
    assert rep.passed and rep.target == "torch.nn.GRU"
