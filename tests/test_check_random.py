"""Zero false alarms over random correct configurations (saturated gates, T >= 50), and the
resolution target: one element wrong by 1e-7 relative is caught in float64."""
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc

sys.path.insert(0, str(Path(__file__).parent))
from planted import lstm as P  # noqa: E402

PLANTED = [(s, T, scale) for s, (T, scale) in enumerate(
    [(T, sc) for T in (3, 12, 50, 64) for sc in (0.5, 1.0, 4.0)] * 3)][:30]


@pytest.mark.parametrize("seed,T,scale", PLANTED)
def test_planted_correct_no_false_alarm(seed, T, scale):
    p, w = P.make(seed, T=T, B=2, scale=scale)
    g = P.backward(p, w)
    method = ("auto", "central", "richardson", "directional")[seed % 4]
    r = lc.check_gradients(P.loss_fn(w), p, g, method=method, elements=6, seed=seed)
    assert r.passed, r.summary


MODELS = [
    ("lstm", {}, 50, 4.0), ("lstm", {"variant": "peephole"}, 20, 3.0),
    ("lstm", {"variant": "cifg+peephole"}, 50, 1.0), ("lstm", {"variant": "no_output_tanh"}, 8, 1.0),
    ("lstm", {"proj_size": 2, "num_layers": 2}, 6, 1.0), ("lstm", {"bidirectional": True}, 55, 4.0),
    ("lstm", {"variant": "fgr", "clip": 1.5}, 10, 2.0), ("lstm", {"variant": "nfg+noaf"}, 12, 1.0),
    ("lstm", {"cell_clip": 0.8}, 9, 3.0), ("lstm", {"variant": "nig+nog"}, 7, 1.0),
    ("gru", {}, 50, 4.0), ("gru", {"reset_after": False}, 12, 2.0),
    ("gru", {"bidirectional": True, "num_layers": 2}, 5, 1.0), ("rnn", {}, 60, 2.0),
    ("rnn", {"nonlinearity": "relu", "num_layers": 2}, 8, 1.0),
    ("lstm", {"batch_first": True}, 5, 1.0), ("gru", {"batch_first": True}, 5, 1.0),
    ("lstm", {"variant": "niaf"}, 6, 1.0), ("rnn", {"nonlinearity": "identity"}, 10, 1.0),
    ("lstm", {"num_layers": 3}, 4, 4.0),
]


@pytest.mark.parametrize("k", range(len(MODELS)))
def test_models_correct_no_false_alarm(k):
    cell, opts, T, scale = MODELS[k]
    m = lc.build(cell, 3, 4, **opts)
    p = m.init_params(seed=k, scale=scale)
    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, T, 3) if opts.get("batch_first") else (T, 2, 3)) * scale
    state = tuple(rng.standard_normal(s) for s in m.state_shapes(2))
    method = ("auto", "complex", "central", "directional", "richardson")[k % 5]
    r = lc.gradcheck(m, p, x, state if len(state) > 1 else state[0], method=method,
                     elements=5 if method in ("central", "richardson") else "all", seed=k)
    assert r.passed, r.summary


def _tampered(model, name, index, rel):
    orig = model.backward

    def backward(tape, dy, dstate=None, **kw):
        g = orig(tape, dy, dstate, **kw)
        g[name] = g[name].copy()
        g[name][index] *= 1 + rel
        return g
    model.backward = backward
    return model


@pytest.mark.parametrize("method", ["auto", "complex", "directional"])
def test_resolution_1e7_relative(method):
    m = lc.LSTM(8, 16)
    p = m.init_params(seed=5)
    x = np.random.default_rng(5).standard_normal((12, 3, 8))
    assert lc.gradcheck(m, p, x, method=method).passed          # zero false alarms...
    r = lc.gradcheck(_tampered(m, "weight_hh_l0", (37, 3), 1e-7), p, x, method=method)
    assert not r.passed                                          # ...and the 1e-7 is seen
    assert r.failing() == ["weight_hh_l0"]
    bad = [w for w in r.worst if not w["passed"]]
    assert bad[0]["index"] == [37, 3]
    assert bad[0]["location"]["gate"] == "g" and bad[0]["location"]["row"] == 5


def test_central_default_verdict_large_model_catches_sparse_error():
    """auto on a model above the per-element threshold screens by directions and localises."""
    m = lc.LSTM(16, 32)
    p = m.init_params(seed=2)
    x = np.random.default_rng(2).standard_normal((10, 2, 16))
    r = lc.gradcheck(_tampered(m, "x", (4, 1, 7), 1e-6), p, x)
    assert r.method == "auto(complex)" and not r.passed
    assert r.worst[0]["location"] == {"tensor": "x", "time": 4, "batch": 1, "feature": 7}
