"""Automatic labels: params named and shaped as PyTorch's are located by gate, row, column,
layer and direction (x by time step) without a user's locate, and reordered gate blocks are
named as a swap or a permutation. The planted-bug suite, renamed to PyTorch's names."""
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc

sys.path.insert(0, str(Path(__file__).parent))
from planted import lstm as P  # noqa: E402

TORCH = {"Wx": "weight_ih_l0", "Wh": "weight_hh_l0", "b": "bias_ih_l0"}
BACK = {v: k for k, v in TORCH.items()}
EXPECT = {"gate_derivative": {"Wx", "Wh", "b"}, "no_cec": {"Wx", "Wh", "b", "c0"},
          "swapped_gates": {"Wh"}, "off_by_one": {"Wh"}, "no_bias_grad": {"b"},
          "one_element": {"Wh"}, "nan": {"Wx"}}


def renamed(bug=None, seed=0, T=8, grads=None):
    p, w = P.make(seed, T=T)
    g = grads(p, w) if grads else P.backward(p, w, bug)
    fn = P.loss_fn(w)
    return ((lambda q: fn({BACK.get(k, k): v for k, v in q.items()})),
            {TORCH.get(k, k): v for k, v in p.items()}, {TORCH.get(k, k): v for k, v in g.items()})


@pytest.mark.parametrize("method", ["auto", "central", "directional"])
@pytest.mark.parametrize("bug", P.BUGS)
def test_planted_suite_detected_with_torch_names(bug, method):
    fn, p, g = renamed(bug)
    r = lc.check_gradients(fn, p, g, method=method)
    assert not r.passed
    assert {TORCH.get(n, n) for n in EXPECT[bug]} <= set(r.failing())
    assert r.details["labels"].startswith("PyTorch names and shapes of LSTM(2, 3")


def test_one_element_labelled_without_locate():
    fn, p, g = renamed("one_element")
    r = lc.check_gradients(fn, p, g)
    w = r.worst[0]
    assert (w["tensor"], w["index"]) == ("weight_hh_l0", [4, 2])
    assert w["location"] == {"tensor": "weight_hh_l0", "layer": 0, "direction": "forward",
                             "row": 1, "gate": "f", "column": 2}
    assert "one wrong element" in r.summary and "gate f" in r.summary


def test_swap_named_without_locate():
    fn, p, g = renamed("swapped_gates")
    r = lc.check_gradients(fn, p, g)
    assert r.failing() == ["weight_hh_l0"]
    assert "gate blocks i and f swapped" in r.summary
    assert "i (input)" in r.summary and "f (forget)" in r.summary


def test_permutation_named():
    def rotated(p, w):
        g = P.backward(p, w)
        H = 3
        blocks = [g["Wh"][k * H:(k + 1) * H] for k in range(4)]       # i, f, g, o
        g["Wh"] = np.concatenate([blocks[1], blocks[2], blocks[0], blocks[3]])
        return g

    fn, p, g = renamed(grads=rotated)
    r = lc.check_gradients(fn, p, g)
    assert r.failing() == ["weight_hh_l0"]
    assert "permuted: it stacks them as f,g,i,o where the layout stacks them i,f,g,o" in r.summary


def test_x_labelled_by_time_step():
    def wrong_x(p, w):
        g = P.backward(p, w)
        g["x"][5, 1, 0] *= 1 + 1e-6
        return g

    fn, p, g = renamed(grads=wrong_x)
    r = lc.check_gradients(fn, p, g)
    assert r.worst[0]["location"] == {"tensor": "x", "time": 5, "batch": 1, "feature": 0}
    assert "time 5" in r.summary


def _oracle(m, seed=0):
    p = m.init_params(seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 2, m.input_size))
    y, _, tape = m.forward(p, x)
    wy = rng.standard_normal(y.shape)
    g = m.backward(tape, wy)
    fn = lambda q: np.sum(m.forward(q, x)[0] * wy)                    # noqa: E731
    return fn, p, {n: g[n].copy() for n in p}


def test_gru_gate_block_named():
    fn, p, g = _oracle(lc.GRU(2, 3))
    g["bias_hh_l0"][3:6] *= 1.01                  # the z block
    r = lc.check_gradients(fn, p, g)
    assert r.failing() == ["bias_hh_l0"]
    assert "all in gate block z" in r.summary


def test_bidirectional_reverse_element_located():
    fn, p, g = _oracle(lc.LSTM(2, 3, direction="bidirectional"))
    g["weight_hh_l0_reverse"][7, 1] *= 1 + 1e-6
    r = lc.check_gradients(fn, p, g)
    assert r.failing() == ["weight_hh_l0_reverse"]
    assert r.worst[0]["location"] == {"tensor": "weight_hh_l0_reverse", "layer": 0,
                                      "direction": "reverse", "row": 1, "gate": "g", "column": 1}


def test_gru_swap_between_r_and_n_named():
    fn, p, g = _oracle(lc.GRU(2, 3))
    w = g["weight_ih_l0"]
    g["weight_ih_l0"] = np.concatenate([w[6:9], w[3:6], w[0:3]])
    r = lc.check_gradients(fn, p, g)
    assert "weight_ih_l0 has its gate blocks r and n swapped" in r.summary


def test_shapes_that_are_not_pytorch_get_no_labels():
    rng = np.random.default_rng(0)
    p = {"weight_hh_l0": rng.standard_normal((5, 3))}              # 5 rows: not G * 3
    g = {"weight_hh_l0": 2 * p["weight_hh_l0"]}
    g["weight_hh_l0"][1, 1] += 1e-3
    r = lc.check_gradients(lambda q: np.sum(q["weight_hh_l0"] ** 2), p, g)
    assert not r.passed and r.worst[0]["location"] is None and "labels" not in r.details


def test_a_users_locate_wins():
    fn, p, g = renamed("one_element")
    r = lc.check_gradients(fn, p, g, locate=lambda n, i: {"tensor": n, "mine": True})
    assert r.worst[0]["location"] == {"tensor": "weight_hh_l0", "mine": True}
