"""check_gradients / gradcheck contract: bad input, complex-step applicability, float32, the
report, and the nicodjimenez/lstm seed cell."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import DTypeError, NonFiniteError, OptionError, ParameterError, ShapeError

sys.path.insert(0, str(Path(__file__).parent))
from planted import lstm as P  # noqa: E402


def quad():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    p = {"w": rng.standard_normal(4), "b": rng.standard_normal(3)}
    fn = lambda q: q["w"] @ A @ q["w"] + np.sum(np.sin(q["b"]))  # noqa: E731
    g = {"w": (A + A.T) @ p["w"], "b": np.cos(p["b"])}
    return fn, p, g


# ------------------------------------------------------------------ bad input
def test_bad_input_raises_one_clear_sentence():
    fn, p, g = quad()
    with pytest.raises(ParameterError, match="no entry for b"):
        lc.check_gradients(fn, p, {"w": g["w"]})
    with pytest.raises(ParameterError, match="params lacks"):
        lc.check_gradients(fn, p, {**g, "z": g["b"]})
    with pytest.raises(ShapeError, match=r"grads\['w'\] has shape \(3,\)"):
        lc.check_gradients(fn, p, {**g, "w": g["w"][:3]})
    with pytest.raises(ShapeError, match="scalar loss"):
        lc.check_gradients(lambda q: q["w"], p, g)
    with pytest.raises(NonFiniteError, match="nan"):
        lc.check_gradients(lambda q: np.nan * fn(q), p, g)
    with pytest.raises(DTypeError, match="floating-point"):
        lc.check_gradients(fn, {**p, "w": np.arange(4)}, g)
    with pytest.raises(OptionError, match="unknown method"):
        lc.check_gradients(fn, p, g, method="forward")
    with pytest.raises(OptionError, match="elements"):
        lc.check_gradients(fn, p, g, elements=0)


def test_nan_near_the_point_is_a_failed_check_that_says_so():
    p = {"w": np.array([1e-12, 1.0])}
    g = {"w": 0.5 / np.sqrt(p["w"])}
    with np.errstate(invalid="ignore"):
        r = lc.check_gradients(lambda q: np.sum(np.sqrt(q["w"])), p, g, method="central")
    assert not r.passed and "not finite" in r.summary


# ------------------------------------------------------------------ complex step applicability
def _abs_cubed():
    p = {"w": np.array([0.3, -1.2, 0.7])}
    fn = lambda q: np.sum(np.abs(q["w"]) ** 3 + q["w"] ** 2)  # noqa: E731  abs on part of the path
    return fn, p, {"w": 3 * p["w"] * np.abs(p["w"]) + 2 * p["w"]}


def _float_buffer():
    p = {"w": np.array([0.3, -1.2, 0.7])}

    def fn(q):
        buf = np.empty(3)
        buf[:] = q["w"]                 # drops the imaginary part (ComplexWarning)
        return np.sum(np.tanh(buf))
    return fn, p, {"w": 1 - np.tanh(p["w"]) ** 2}


def _float_call():
    p = {"w": np.array([0.3, -1.2])}
    return (lambda q: float(np.sum(q["w"] ** 2))), p, {"w": 2 * p["w"]}


@pytest.mark.parametrize("case,why", [(_abs_cubed, "disagrees"), (_float_buffer, "imaginary"),
                                      (_float_call, "complex")])
def test_complex_step_inapplicable_is_detected_and_auto_falls_back(case, why):
    fn, p, g = case()
    r = lc.check_gradients(fn, p, g)
    assert r.passed and r.method == "auto(richardson)"
    assert any("complex step does not apply" in n and why in n for n in r.notes)
    r = lc.check_gradients(fn, p, g, method="complex")
    assert r.passed and r.method == "complex(richardson)"
    bad = {"w": g["w"] * 1.001}
    assert not lc.check_gradients(fn, p, bad).passed


def test_complex_step_used_where_it_applies():
    fn, p, g = quad()
    r = lc.check_gradients(fn, p, g)
    assert r.passed and r.method == "auto(complex)" and not r.notes


def test_rtol_atol_override_the_derived_tolerance():
    fn, p, g = quad()
    off = {"w": g["w"] * (1 + 1e-5), "b": g["b"]}
    assert not lc.check_gradients(fn, p, off).passed
    r = lc.check_gradients(fn, p, off, rtol=1e-4, atol=0)
    assert r.passed and r.tensors[0]["tolerance"] == pytest.approx(1e-4 * np.abs(off["w"]).max())


# ------------------------------------------------------------------ float32
@pytest.mark.parametrize("method", ["auto", "central", "richardson", "taylor", "directional"])
def test_float32_correct_not_flagged_and_bug_caught(method):
    for seed in range(3):
        p, w = P.make(seed, T=20, scale=2.0, dtype=np.float32)
        r = lc.check_gradients(P.loss_fn(w), p, P.backward(p, w), method=method, seed=seed,
                               elements=8)
        assert r.passed and r.dtype == "float32", r.summary
    bad = P.backward(p, w, "no_bias_grad")
    assert not lc.check_gradients(P.loss_fn(w), p, bad, method=method).passed


def test_gradcheck_float32_model_against_float64_oracle():
    m = lc.LSTM(4, 5, num_layers=2, dtype="float32")
    p = m.init_params(seed=1, scale=2.0)
    x = np.random.default_rng(1).standard_normal((30, 2, 4)).astype(np.float32)
    r = lc.gradcheck(m, p, x)
    assert r.passed and r.dtype == "float32", r.summary
    assert any(t["method"] == "float32 vs float64 oracle" for t in r.tensors)


# ------------------------------------------------------------------ report
def test_report_dict_and_text():
    m = lc.GRU(3, 4)
    r = lc.gradcheck(m, m.init_params(seed=0), np.random.default_rng(0).standard_normal((4, 2, 3)))
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert {t["name"] for t in d["tensors"]} == set(m.param_names) | {"x", "h0"}
    for t in d["tensors"]:
        assert {"name", "shape", "method", "max_abs_err", "max_rel_err", "normwise_rel_err",
                "cosine", "tolerance", "passed", "n_checked"} <= set(t)
    assert {"tensor", "index", "location", "analytic", "numeric", "error_bar"} <= set(d["worst"][0])
    text = str(r)
    assert text.startswith("PASSED") and "weight_hh_l0" in text and "tolerance" in text


def test_failed_report_text_points_at_the_element():
    p, w = P.make(0)
    r = lc.check_gradients(P.loss_fn(w), p, P.backward(p, w, "one_element"),
                           locate=P.make_locate(3))
    text = r.to_text()
    assert text.startswith("FAILED") and "FAIL" in text and "Wh[4, 2] (gate=f, row=1, column=2)" in text


def test_elements_samples_per_tensor():
    m = lc.LSTM(6, 8)
    r = lc.gradcheck(m, m.init_params(seed=0), np.ones((3, 2, 6)), elements=7, method="central")
    assert r.passed and all(t["n_checked"] == 7 for t in r.tensors)


# ------------------------------------------------------------------ nicodjimenez/lstm seed cell
def test_nicodjimenez_seed_cell_reproduced():
    """nicodjimenez/lstm: separate g, i, f, o weights on xc = [x, h_prev], s = g*i + s_prev*f,
    h = s*o, loss sum_t (h_t[0] - y_t)^2: our 'no_output_tanh' LSTM with W = [W_ih | W_hh]."""
    x_dim, H, y_list = 50, 100, [-0.5, 0.2, 0.1, -0.5]
    rng = np.random.default_rng(0)
    W = {k: rng.uniform(-0.1, 0.1, (H, x_dim + H)) for k in "gifo"}
    b = {k: rng.uniform(-0.1, 0.1, H) for k in "gifo"}
    xs = rng.uniform(-1, 1, (len(y_list), x_dim))

    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h, s, loss = np.zeros(H), np.zeros(H), 0.0
    for x, y in zip(xs, y_list):          # their LstmNode.bottom_data_is, then ToyLossLayer
        xc = np.hstack((x, h))
        g = np.tanh(W["g"] @ xc + b["g"])
        i, f, o = (sig(W[k] @ xc + b[k]) for k in "ifo")
        s = g * i + s * f
        h = s * o
        loss += (h[0] - y) ** 2

    m = lc.LSTM(x_dim, H, variant="no_output_tanh")
    Wall = np.vstack([W[k] for k in "ifgo"])
    p = {"weight_ih_l0": Wall[:, :x_dim], "weight_hh_l0": Wall[:, x_dim:],
         "bias_ih_l0": np.concatenate([b[k] for k in "ifgo"]), "bias_hh_l0": np.zeros(4 * H)}
    X = xs[:, None, :]
    target = np.array(y_list)

    def L(q):
        y, _, _ = m.forward({n: q[n] for n in m.param_names}, q["x"])
        return np.sum((y[:, 0, 0] - target) ** 2)

    y, _, tape = m.forward(p, X)
    assert L({**p, "x": X}) == pytest.approx(loss, rel=1e-13)
    dy = np.zeros_like(y)
    dy[:, 0, 0] = 2 * (y[:, 0, 0] - target)
    g = m.backward(tape, dy)
    grads = {n: g[n] for n in m.param_names} | {"x": g["x"]}
    r = lc.check_gradients(L, {**p, "x": X}, grads, locate=m.locate)
    assert r.passed, r.summary
    grads["weight_hh_l0"][250, 3] *= 1 + 1e-6       # f gate, unit 50, from h_prev[3]
    r = lc.check_gradients(L, {**p, "x": X}, grads, locate=m.locate)
    assert not r.passed
    assert r.worst[0]["location"] == {"tensor": "weight_hh_l0", "layer": 0, "direction": "forward",
                                      "gate": "g", "row": 50, "column": 3}
