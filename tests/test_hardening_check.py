"""The checker under abuse: the planted-bug suite at every dtype, method and backend; bad input of
every kind (hypothesis); saturated gates and denormal numbers.

The invariant: a wrong gradient is never reported "passed" unless the report's own stated
resolution says the error is too small for it to see. Documented limits (each asserted below):
- float32, every method: one element wrong by 1e-6 relative (8 float32 round-offs) lies inside the
  float32 rounding floor of the analytic gradient itself; the report passes it and states a
  resolution of ~1e-3, coarser than the error.
- "taylor" (any dtype) tests one random direction per tensor: a single wrong element is diluted by
  the others, so its per-element resolution is coarse (~1e-2 in float64, > 1 in float32, where the
  verdict reads "inconclusive").
- derivatives near 1e-310 (denormal inputs): finite differences of an O(1) loss cannot resolve
  them and the complex step underflows; the verdict is "inconclusive" for that tensor.
"""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import lstmcheck as lc
from lstmcheck.errors import LstmcheckError

sys.path.insert(0, str(Path(__file__).parent))
from planted import lstm as P  # noqa: E402

METHODS = ("auto", "central", "richardson", "complex", "directional", "taylor")
EXPECT = {"gate_derivative": {"Wx", "Wh", "b"}, "no_cec": {"Wx", "Wh", "b", "c0"},
          "swapped_gates": {"Wh"}, "off_by_one": {"Wh"}, "no_bias_grad": {"b"},
          "one_element": {"Wh"}, "nan": {"Wx"}}
PLANTED_REL = 1e-6            # the size of the "one_element" bug
HYP = settings(derandomize=True, deadline=None, max_examples=25,
               suppress_health_check=[HealthCheck.too_slow])


def _check(bug, method, dtype=np.float64, scale=1.0, seed=0, **kw):
    p, w = P.make(seed, T=4, scale=scale, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no stray warnings either ...
        if scale > 1:                           # ... but the planted sigmoid overflows exp()
            warnings.filterwarnings("ignore", "overflow", RuntimeWarning)
        return lc.check_gradients(P.loss_fn(w), p, P.backward(p, w, bug), method=method,
                                  seed=seed, locate=P.make_locate(3), **kw)


def _row(r, name):
    return next(t for t in r.tensors if t["name"] == name)


# ------------------------------------------------------------------ planted bugs, every dtype
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("method", METHODS)
def test_planted_bugs_never_pass_silently(method, dtype):
    r = _check(None, method, dtype)
    assert r.passed and r.dtype == np.dtype(dtype).name, r.summary      # no false alarm
    for bug in P.BUGS:
        r = _check(bug, method, dtype)
        if bug != "one_element":
            assert not r.passed and r.verdict == "failed", (bug, r.summary)
            assert EXPECT[bug] <= set(r.failing()), (bug, r.failing())
            continue
        if r.passed:
            # a pass is allowed only where the report says it cannot resolve the error
            res = _row(r, "Wh")["resolution"]
            assert res is not None and res > PLANTED_REL, (method, r.summary)
            assert "Resolution" in r.summary or "Inconclusive" in r.summary
            assert (method, np.dtype(dtype).name) in {(m, "float32") for m in METHODS} | {
                ("taylor", "float64")}, "a documented limit only"
        else:
            assert r.failing() == ["Wh"]


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["auto", "central", "complex", "directional"])
def test_planted_bugs_cupy_float32_and_float64(method):
    cp = pytest.importorskip("cupy")
    for dtype in (np.float64, np.float32):
        p, w = P.make(0, T=6, dtype=dtype)
        fn = P.loss_fn(w)
        pg = {k: cp.asarray(v) for k, v in p.items()}
        host = lambda q: fn({k: cp.asnumpy(v) for k, v in q.items()})  # noqa: E731
        for bug in (None, "no_bias_grad", "swapped_gates"):
            g = {k: cp.asarray(v) for k, v in P.backward(p, w, bug).items()}
            r = lc.check_gradients(host, pg, g, method=method)
            assert r.passed == (bug is None), (bug, r.summary)


def test_float32_limit_is_stated_in_the_report():
    r = _check("one_element", "auto", np.float32)
    assert r.passed and r.verdict == "passed"
    assert r.resolution > PLANTED_REL and f"{r.resolution:.2g}" in r.summary
    assert "resolution" in r.to_text() and r.to_dict()["resolution"] == r.resolution
    r = _check(None, "taylor", np.float32)       # a direction cannot resolve one float32 element
    assert r.passed and r.verdict == "inconclusive" and "Inconclusive" in r.summary
    assert r.to_text().startswith("INCONCLUSIVE")


@pytest.mark.parametrize("dtype,rel", [(np.float64, 1.0), (np.float32, 1.0)])
def test_stated_resolution_is_true(dtype, rel):
    """One significant element wrong by 3x the stated resolution fails: the claim holds."""
    p, w = P.make(2, T=6, dtype=dtype)
    g = P.backward(p, w)
    for method in ("auto", "central", "richardson"):
        r = lc.check_gradients(P.loss_fn(w), p, g, method=method)
        for name in ("Wh", "x"):
            res = _row(r, name)["resolution"]
            bad = {k: v.copy() for k, v in g.items()}
            flat = bad[name].reshape(-1)
            j = int(np.argmax(np.abs(flat)))
            flat[j] *= 1 + 3 * res * rel
            r_bad = lc.check_gradients(P.loss_fn(w), p, bad, method=method)
            assert not r_bad.passed, (method, name)


# ------------------------------------------------------------------ bad input, never a crash
def _quad():
    rng = np.random.default_rng(0)
    p = {"w": rng.standard_normal(3), "b": rng.standard_normal((2, 2))}
    return (lambda q: np.sum(q["w"] ** 2) + np.sum(np.sin(q["b"]))), p, \
        {"w": 2 * p["w"], "b": np.cos(p["b"])}


def _outcome(call):
    """'ok' (a verified report), 'failed' (a failed check that says why) or the error class;
    anything but an LstmcheckError is a crash and fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = call()
    except LstmcheckError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and msg.endswith("."), msg
        return type(exc).__name__
    assert isinstance(r.to_dict(), dict) and r.summary
    return "ok" if r.passed else "failed"


def _bad_fn(kind):
    fn, p, _ = _quad()
    return {"none": lambda q: None, "array": lambda q: q["w"], "nan": lambda q: np.nan,
            "inf": lambda q: -np.inf, "complex": lambda q: fn(q) + 0.5j,
            "raise": lambda q: {}["missing"], "string": lambda q: "loss",
            "list": lambda q: [fn(q)], "raise_perturbed":
                lambda q: fn(q) if np.all(q["w"] == p["w"]) else 1 / 0}[kind]


@HYP
@given(kind=st.sampled_from(["none", "array", "nan", "inf", "complex", "raise", "string", "list",
                             "raise_perturbed"]),
       method=st.sampled_from(METHODS))
def test_fn_misbehaving_is_one_sentence(kind, method):
    _, p, g = _quad()
    out = _outcome(lambda: lc.check_gradients(_bad_fn(kind), p, g, method=method))
    assert out not in ("ok",), (kind, method)


@HYP
@given(mutation=st.sampled_from(["missing", "extra", "shape", "int", "str", "object", "complex",
                                 "list", "nan", "scalar", "bool"]),
       method=st.sampled_from(METHODS))
def test_bad_grads_are_refused_or_fail(mutation, method):
    fn, p, g = _quad()
    g = dict(g)
    if mutation == "missing":
        del g["b"]
    elif mutation == "extra":
        g["z"] = np.zeros(2)
    elif mutation == "shape":
        g["w"] = g["w"][:2]
    elif mutation == "int":
        g["w"] = np.round(g["w"]).astype(np.int64) + 7       # integers: allowed but wrong
    elif mutation == "str":
        g["w"] = np.array(["a", "b", "c"])
    elif mutation == "object":
        g["w"] = np.array([None, 1, 2], dtype=object)
    elif mutation == "complex":
        g["w"] = g["w"] + 1j
    elif mutation == "list":
        g["w"] = list(g["w"])
    elif mutation == "nan":
        g["b"] = g["b"] * np.nan
    elif mutation == "scalar":
        g["w"] = 1.0
    elif mutation == "bool":
        g["w"] = g["w"] > 0
    assert _outcome(lambda: lc.check_gradients(fn, p, g, method=method)) != "ok", mutation


@HYP
@given(dtype=st.sampled_from(["int64", "int8", "uint8", "bool", "float16", "complex128", "str",
                              "object"]))
def test_non_float_params_are_refused(dtype):
    fn, p, g = _quad()
    bad = {**p, "w": np.array([1, 0, 1]).astype(dtype)}
    out = _outcome(lambda: lc.check_gradients(fn, bad, g))
    assert out in ("DTypeError", "ParameterError"), out


def test_float16_is_refused_with_the_reason():
    """float16 is refused, not upcast: fn itself rounds at 1e-3, so no finite difference of it
    means anything, and upcasting the parameters would check a different function."""
    fn, p, g = _quad()
    with pytest.raises(lc.errors.DTypeError, match=r"params\['w'\] has dtype float16.*round-off"):
        lc.check_gradients(fn, {**p, "w": p["w"].astype(np.float16)}, g)
    with pytest.raises(LstmcheckError, match="float16"):
        lc.gradcheck(lc.LSTM(2, 3, dtype="float16"), {}, np.zeros((2, 1, 2)))


@HYP
@given(elements=st.one_of(st.integers(-3, 0), st.floats(allow_nan=True),
                          st.text(max_size=3).filter(lambda s: s != "all"),
                          st.just(True), st.just(None), st.lists(st.integers(), max_size=2)),
       method=st.one_of(st.text(max_size=8), st.none(), st.integers()))
def test_bad_options_are_option_errors(elements, method):
    fn, p, g = _quad()
    assert _outcome(lambda: lc.check_gradients(fn, p, g, elements=elements)) == "OptionError"
    if method not in METHODS:
        assert _outcome(lambda: lc.check_gradients(fn, p, g, method=method)) == "OptionError"


@pytest.mark.parametrize("kw", [{"seed": "x"}, {"seed": -1}, {"seed": 1.5}, {"rtol": -1},
                                {"atol": "a"}, {"rtol": np.nan}])
def test_bad_seed_and_tolerances(kw):
    fn, p, g = _quad()
    assert _outcome(lambda: lc.check_gradients(fn, p, g, **kw)) == "OptionError"
    m = lc.RNN(2, 2)
    assert _outcome(lambda: lc.gradcheck(m, m.init_params(seed=0), np.ones((2, 1, 2)),
                                         **kw)) == "OptionError"


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_zero_size(method):
    fn, p, g = _quad()
    assert _outcome(lambda: lc.check_gradients(fn, {}, {}, method=method)) == "ParameterError"
    z = np.zeros((0, 3))
    r = lc.check_gradients(lambda q: fn(q) + np.sum(q["z"]), {**p, "z": z}, {**g, "z": z},
                           method=method)
    assert r.passed and any("z is empty" in n for n in r.notes)
    assert _outcome(lambda: lc.check_gradients(lambda q: 0.0, {"z": z}, {"z": z},
                                               method=method)) == "ParameterError"


@HYP
@given(shape=st.lists(st.integers(1, 3), min_size=0, max_size=3),
       dtype=st.sampled_from([np.float64, np.float32]), method=st.sampled_from(METHODS),
       wrong=st.booleans(), seed=st.integers(0, 2**16))
def test_random_shapes_give_the_right_verdict(shape, dtype, method, wrong, seed):
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.5, 1.5, shape).astype(dtype)
    p = {"w": rng.uniform(-1, 1, shape).astype(dtype), "c": np.asarray(0.3, dtype)}
    fn = lambda q: np.sum(A * np.tanh(q["w"])) * q["c"] + q["c"] ** 2  # noqa: E731
    g = {"w": (A * (1 - np.tanh(p["w"]) ** 2) * p["c"]).astype(dtype),
         "c": np.asarray(np.sum(A * np.tanh(p["w"])) + 2 * p["c"], dtype)}
    if wrong:
        g["w"] = g["w"] + 0.05 * np.sign(g["w"])        # 5% or more in every element
    r = lc.check_gradients(fn, p, g, method=method, seed=seed)
    assert r.passed != wrong, r.summary


# ------------------------------------------------------------------ gradcheck inputs
@HYP
@given(cell=st.sampled_from(["LSTM", "GRU", "RNN"]), T=st.integers(0, 3), B=st.integers(0, 2),
       layers=st.integers(1, 2), bidir=st.booleans(),
       dtype=st.sampled_from(["float64", "float32"]),
       poison=st.sampled_from([None, "nan_x", "inf_param", "nan_h0"]))
def test_gradcheck_shapes_and_poison(cell, T, B, layers, bidir, dtype, poison):
    m = getattr(lc, cell)(2, 2, num_layers=layers, bidirectional=bidir, dtype=dtype)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, 2)).astype(dtype)
    state = None
    if poison == "nan_x" and x.size:
        x[-1, 0, 1] = np.nan
    elif poison == "inf_param":
        p[m.param_names[0]][0, 0] = np.inf
    elif poison == "nan_h0" and B:
        h0 = np.zeros((layers * (1 + bidir), B, 2), dtype)
        h0[0, 0, 0] = np.nan
        state = (h0, h0.copy()) if cell == "LSTM" else h0
    out = _outcome(lambda: lc.gradcheck(m, p, x, state, method="auto", elements=3))
    if T and B and (poison is None or (poison == "nan_x" and not x.size)):
        assert out == "ok", out
    else:
        assert out not in ("ok", "failed"), out       # refused, one sentence


# ------------------------------------------------------------------ numerical abuse
@pytest.mark.parametrize("method", ["auto", "central", "complex", "directional"])
def test_saturated_gates_scale_100(method):
    """Weights x100: every gate saturated. No false alarm; structural bugs still caught; the one
    planted element sits in a saturated gate (derivative < 1% of its tensor's largest), outside
    the stated resolution's claim, so a pass there is honest."""
    p, w = P.make(1, T=4, scale=100.0)
    assert _check(None, method, scale=100.0, seed=1).passed
    for bug in ("gate_derivative", "no_cec", "swapped_gates", "off_by_one", "no_bias_grad",
                "nan"):
        r = _check(bug, method, scale=100.0, seed=1)
        assert not r.passed and EXPECT[bug] <= set(r.failing()) | {"c0"}, (bug, r.failing())
    r = _check("one_element", method, scale=100.0, seed=1)
    g = np.abs(P.backward(p, w)["Wh"])
    assert not r.passed or g[4, 2] < 1e-2 * g.max()


@pytest.mark.parametrize("method", ["auto", "central", "directional", "taylor"])
def test_model_scale_100_no_false_alarm_and_bug_caught(method):
    m = lc.LSTM(3, 4)
    p = m.init_params(seed=0, scale=100.0)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    r = lc.gradcheck(m, p, x, method=method)
    assert r.passed and np.all(np.isfinite([t["tolerance"] for t in r.tensors])), r.summary
    # the same saturated model, its gradient wrong through a user's fn
    fn = lambda q: float(np.sum(m.forward(q, x)[0] * wy))  # noqa: E731
    wy = np.random.default_rng(1).standard_normal((6, 2, 4))
    y, _, tape = m.forward(p, x)
    g = {n: v for n, v in m.backward(tape, wy).items() if n in p}
    g["bias_hh_l0"] = g["bias_hh_l0"] * 0                       # dropped bias gradient
    nonzero = np.abs(g["bias_ih_l0"]).max() > 0
    r = lc.check_gradients(fn, p, g, method=method)
    assert r.passed != nonzero and (not nonzero or "bias_hh_l0" in r.failing()), r.summary


def test_denormal_parameters_and_inputs():
    m = lc.LSTM(3, 4)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    tiny = {k: v * 1e-310 for k, v in m.init_params(seed=0).items()}
    for method in ("auto", "complex", "central"):
        r = lc.gradcheck(m, tiny, x, method=method)
        # no false alarm; tensors whose derivatives are ~1e-310 next to O(1) ones sit below the
        # absolute round-off floor of the backward pass and are named as inconclusive
        assert r.passed, (method, r.summary)
        assert r.verdict == "passed" or "Inconclusive for" in r.summary
    r = lc.gradcheck(m, tiny, x, method="auto")
    assert r.method == "auto(richardson)" and any("underflows" in n for n in r.notes)
    # denormal inputs: d/dW_ih ~ x ~ 1e-310 is below what any method resolves -> inconclusive
    r = lc.gradcheck(m, m.init_params(seed=0), x * 1e-310)
    assert r.passed and r.verdict == "inconclusive" and "weight_ih_l0" in r.summary
    # a generic fn with denormal parameters: the verdict is right both ways
    fn = lambda q: float(np.sum(q["w"] * np.array([1.0, 2.0, 3.0])))  # noqa: E731
    p = {"w": np.full(3, 1e-310)}
    assert lc.check_gradients(fn, p, {"w": np.array([1.0, 2.0, 3.0])}).passed
    assert not lc.check_gradients(fn, p, {"w": np.array([1.0, 2.0, 3.001])}).passed
    # denormal derivatives that Richardson can still see (f itself is denormal)
    fn = lambda q: float(np.sum(q["w"] * np.array([1e-310, 2e-310, 3e-310])))  # noqa: E731
    good = {"w": np.array([1e-310, 2e-310, 3e-310])}
    r = lc.check_gradients(fn, {"w": np.ones(3)}, good)
    assert r.passed and any("underflows" in n for n in r.notes)
    assert not lc.check_gradients(fn, {"w": np.ones(3)}, {"w": good["w"] * [1, 1, 1.1]}).passed


def test_mixed_precision_params_no_false_alarm():
    """A float64 tensor next to a float32 one: f rounds in float32, so the bands must too."""
    rng = np.random.default_rng(0)
    p = {"w": rng.standard_normal(4), "v": rng.standard_normal(4).astype(np.float32)}
    fn = lambda q: np.sum(q["w"] ** 2) + np.sum(q["v"] ** 2)  # noqa: E731
    g = {"w": 2 * p["w"], "v": 2 * p["v"]}
    for method in METHODS:
        assert lc.check_gradients(fn, p, g, method=method).passed, method
        bad = {**g, "w": g["w"] * 1.01}
        r = lc.check_gradients(fn, p, bad, method=method)
        # Taylor in float32 arithmetic cannot see 1%, and says so through its resolution
        assert not r.passed or (method == "taylor" and _row(r, "w")["resolution"] > 0.01), method
