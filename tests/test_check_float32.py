"""Honest float32: a float32 gradient of a fn that also runs in float64 is checked against
float64 derivatives of the same fn, within the float32 rounding measured on fn. Planted 1e-3
single-element and 1e-4 whole-tensor errors are caught; honest float32 gradients (saturated
gates, T up to 50) raise no alarm; a fn that cannot run in float64 is said to."""
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc

sys.path.insert(0, str(Path(__file__).parent))
from planted import lstm as P  # noqa: E402

HONEST = [(seed, T, scale) for seed in range(4) for T in (5, 20, 50) for scale in (1.0, 6.0)]


def _planted(seed, T, scale):
    p, w = P.make(seed, T=T, scale=scale, dtype=np.float32)
    return P.loss_fn(w), p, P.backward(p, w)


@pytest.mark.parametrize("seed,T,scale", HONEST)
def test_honest_float32_passes_and_planted_errors_are_caught(seed, T, scale):
    fn, p, g = _planted(seed, T, scale)
    r = lc.check_gradients(fn, p, g, seed=seed)
    assert r.passed and r.verdict == "passed" and r.dtype == "float32", r.summary
    assert r.resolution < 2e-3
    assert any("fn runs in float64" in n for n in r.notes)
    # 1e-3 on the largest element of Wh (a significant one by construction)
    j = np.unravel_index(np.argmax(np.abs(g["Wh"])), g["Wh"].shape)
    one = {k: v.copy() for k, v in g.items()}
    one["Wh"][j] *= np.float32(1 + 1e-3)
    r = lc.check_gradients(fn, p, one, seed=seed)
    assert not r.passed and r.failing() == ["Wh"], r.summary
    assert [w["index"] for w in r.worst if not w["passed"]] == [list(j)]
    # 1e-4 on the whole of Wx
    whole = {k: v.copy() for k, v in g.items()}
    whole["Wx"] = whole["Wx"] * np.float32(1 + 1e-4)
    r = lc.check_gradients(fn, p, whole, seed=seed)
    assert not r.passed and r.failing() == ["Wx"], r.summary


@pytest.mark.parametrize("method", ["central", "richardson", "complex", "directional"])
def test_every_method_uses_the_float64_twin(method):
    fn, p, g = _planted(1, 20, 3.0)
    assert lc.check_gradients(fn, p, g, method=method).passed
    whole = {k: v.copy() for k, v in g.items()}
    whole["b"] = whole["b"] * np.float32(1 + 1e-4)
    r = lc.check_gradients(fn, p, whole, method=method)
    assert not r.passed and r.failing() == ["b"], (method, r.summary)


def test_small_scale_error_alone_is_named_normwise():
    """An error under every element's band but above what rounding explains over the tensor."""
    fn, p, g = _planted(0, 20, 1.0)
    r0 = lc.check_gradients(fn, p, g)
    row = next(t for t in r0.tensors if t["name"] == "Wx")
    rel = 4 * row["normwise_tolerance"]
    whole = {k: v.copy() for k, v in g.items()}
    whole["Wx"] = (whole["Wx"].astype(np.float64) * (1 + rel)).astype(np.float32)
    r = lc.check_gradients(fn, p, whole)
    bad = next(t for t in r.tensors if t["name"] == "Wx")
    assert not r.passed and bad.get("normwise_failed") or bad["n_failed"] > 0
    assert "Wx" in r.summary


def test_oracle_model_fn_in_float32():
    """fn = the project's GRU in whatever precision the parameters come in."""
    m32, m64 = lc.GRU(3, 4, dtype="float32"), lc.GRU(3, 4)
    rng = np.random.default_rng(0)
    p = m32.init_params(seed=0, scale=3.0)
    x = rng.standard_normal((30, 2, 3))
    wy = rng.standard_normal((30, 2, 4))

    def fn(q):
        if next(iter(q.values())).dtype == np.float32:
            return np.sum(m32.forward(q, x.astype(np.float32))[0] * wy)
        m = m64 if next(iter(q.values())).dtype == np.float64 else lc.GRU(3, 4, dtype="complex128")
        return np.sum(m.forward(q, x.astype(next(iter(q.values())).dtype))[0] * wy)

    _, _, tape = m32.forward(p, x.astype(np.float32))
    g = m32.backward(tape, wy.astype(np.float32))
    g = {n: g[n] for n in p}
    assert lc.check_gradients(fn, p, g).passed
    g["weight_hh_l0"] = g["weight_hh_l0"] * np.float32(1 + 1e-4)
    assert lc.check_gradients(fn, p, g).failing() == ["weight_hh_l0"]


def test_fn_that_cannot_run_in_float64_is_said_to():
    fn, p, g = _planted(0, 5, 1.0)
    inside32 = lambda q: fn({k: v.astype(np.float32) for k, v in q.items()})  # noqa: E731
    r = lc.check_gradients(inside32, p, g)
    assert r.passed and any("fn cannot run in float64 (fn returns float32" in n for n in r.notes)
    as_float = lambda q: float(inside32(q))                                   # noqa: E731
    r = lc.check_gradients(as_float, p, g)
    assert r.passed and any("fn cannot run in float64" in n and "float32 inside" in n
                            for n in r.notes), r.notes

    def refuses(q):
        if any(v.dtype != np.float32 for v in q.values()):
            raise TypeError("float32 only")
        return fn(q)

    r = lc.check_gradients(refuses, p, g)
    assert any("fn cannot run in float64 (fn raised" in n for n in r.notes), r.notes
