"""method="directional" says what it compared: the sampled elements are counted as such, the
normwise error is labelled with its scope, and a direction that fails is never a pass."""
import numpy as np

import lstmcheck as lc


def _spread_problem():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((64, 64))
    p = {"W": rng.standard_normal((64, 64))}
    g = {"W": 2 * A * p["W"] * np.cos(np.sum(A * p["W"] ** 2))}
    bad = {"W": g["W"].copy()}
    bad["W"][:32] *= 1.5          # half the tensor wrong: bisection stops at a spread region
    return (lambda q: np.sin(np.sum(A * q["W"] ** 2))), p, g, bad


def test_sampled_elements_are_counted_as_checked():
    fn, p, g, bad = _spread_problem()
    r = lc.check_gradients(fn, p, bad, method="directional")
    row = r.tensors[0]
    assert not r.passed and row["method"].endswith("+elements")
    n_sample = row["n_checked"]
    assert n_sample < 4096 and row["n_elements_in_tensor"] == 4096
    assert row["n_failed"] <= n_sample
    assert row["normwise_scope"] == f"the {n_sample} elements checked"
    assert f"of {n_sample} checked elements wrong" in r.summary
    assert f"over the {n_sample} elements checked" in r.summary


def test_passing_direction_row_states_its_directions():
    fn, p, g, _ = _spread_problem()
    r = lc.check_gradients(fn, p, g, method="directional")
    row = r.tensors[0]
    assert r.passed and row["n_directions"] == 2 and row["n_directions_failed"] == 0
    assert row["normwise_scope"] == "2 directional derivatives"


def test_failed_direction_without_an_isolated_element_fails():
    """A tiny scale error of a float32 tensor: a direction may see it while no bisection segment
    does; the row must fail, not pass."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from planted import lstm as P
    p, w = P.make(1, T=20, scale=3.0, dtype=np.float32)
    g = P.backward(p, w)
    g["b"] = g["b"] * np.float32(1 + 1e-4)
    r = lc.check_gradients(P.loss_fn(w), p, g, method="directional")
    assert not r.passed and r.failing() == ["b"], r.summary
