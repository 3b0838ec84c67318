"""The clockwork RNN (models/cwrnn.py): gradients by complex step on every element (seeds,
saturation, T = 50, lengths, directions, layers), the structural zeros of W_hh, and the module
periods in the gradient and in the step Jacobian."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import OptionError

from test_cells import _assert_complex_step


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_saturated_long_sequence_by_complex_step(seed):
    """Weight scale 4 saturates tanh; T = 50 spans several updates of the slowest module."""
    model = lc.build("cwrnn", 2, 4)
    _assert_complex_step(model, seed, scale=4.0, T=50, B=2)


@pytest.mark.parametrize("direction,lengths", [("reverse", [50, 1, 33]),
                                               ("forward", [50, 17, 3])])
def test_lengths_and_directions_by_complex_step(direction, lengths):
    model = lc.build("cwrnn", 2, 4, direction=direction, periods=[1, 3, 5, 7])
    _assert_complex_step(model, 3, lengths=np.array(lengths), T=50)


def test_two_bidirectional_layers_by_complex_step():
    model = lc.build("cwrnn", 3, 5, num_layers=2, direction="bidirectional", modules=3)
    _assert_complex_step(model, 4, lengths=np.array([9, 2, 6]), T=9)


# ----------------------------------------------------------------------------- structural zeros
def test_structural_zeros_are_block_upper_triangular_zero_in_init_and_gradient():
    model = lc.build("cwrnn", 2, 6, modules=3)          # 2 units per module, periods 1, 2, 4
    zeros = model.cell.structural_zeros("weight_hh", 6)
    module = np.repeat([0, 1, 2], 2)
    np.testing.assert_array_equal(zeros, module[:, None] > module[None, :])
    params = model.init_params(seed=0)
    assert np.all(params["weight_hh_l0"][zeros] == 0) and np.all(params["weight_hh_l0"][~zeros] != 0)
    x = np.random.default_rng(0).standard_normal((20, 3, 2))
    y, _, tape = model.forward(params, x)
    grads = model.backward(tape, np.ones_like(y))
    assert np.all(grads["weight_hh_l0"][zeros] == 0) and np.all(grads["weight_hh_l0"][~zeros] != 0)
    # a value written into a structural zero reaches nothing: the forward masks it
    poked = dict(params, weight_hh_l0=params["weight_hh_l0"] + 5.0 * zeros)
    np.testing.assert_array_equal(model.forward(poked, x)[0], y)
    loc = model.locate("weight_hh_l0", (4, 1))
    assert loc["module"] == 2 and loc["from_module"] == 0 and loc["structural_zero"] is True
    assert model.locate("weight_hh_l0", (1, 4))["structural_zero"] is False


# ----------------------------------------------------------------------------- the periods
def _units(model, i):
    return np.nonzero(model.cell.module_of(model.hidden_size) == i)[0]


@pytest.mark.parametrize("periods", [(1, 2, 4, 8), (1, 3, 7)])
def test_a_module_carries_its_gradient_unchanged_between_its_updates(periods):
    """With the loss on module i's final state only, dL/dh_t of module i is carried exactly
    (bit for bit) from step t + 1 back to step t unless module i updates at step t + 1, so it
    changes once every T_i steps; the faster modules receive no gradient at all."""
    model = lc.build("cwrnn", 2, 2 * len(periods), periods=list(periods))
    params = model.init_params(seed=1)
    T = 48
    x = np.random.default_rng(1).standard_normal((T, 2, 2))
    y, h_n, tape = model.forward(params, x)
    for i, Ti in enumerate(periods):
        dstate = np.zeros_like(h_n)
        dstate[..., _units(model, i)] = 1.0
        _, tr = model.backward_trace(tape, np.zeros_like(y), dstate, trace=True)
        g = tr.dh[0][:, :, _units(model, i)]               # (T, B, units): dL/dh_t, t = 0..T-1
        changes = [t for t in range(T - 1) if not np.array_equal(g[t], g[t + 1])]
        assert changes == [t for t in range(T - 1) if (t + 1) % Ti == 0], (Ti, changes)
        faster = np.concatenate([_units(model, j) for j in range(i)] or [np.array([], int)])
        assert np.all(tr.dh[0][:, :, faster] == 0)


def test_step_jacobian_rows_of_a_waiting_module_are_identity_rows():
    """ds_t/ds_(t-1): the rows of a module that does not update at t are rows of the identity
    (its state is carried); the clock's row and column are zero (an integer, not a state the
    gradient flows through)."""
    model = lc.build("cwrnn", 2, 8)
    params = model.init_params(seed=2)
    p = {b: params[b + "_l0"] for b in model.base_names()}
    rng = np.random.default_rng(2)
    N = 16
    u = rng.standard_normal((N, 8))
    h = rng.standard_normal((N, 8))
    clock = np.arange(N, dtype=float)[:, None]          # row r is step t = r
    J = model.cell.step_jacobian(np, p, u, (h, clock))
    assert J.shape == (N, 9, 9)
    assert np.all(J[:, 8, :] == 0) and np.all(J[:, :, 8] == 0)
    eye = np.eye(9)
    for t in range(N):
        for i, Ti in enumerate(model.cell.periods):
            rows = _units(model, i)
            if t % Ti:
                np.testing.assert_array_equal(J[t, rows], eye[rows])
            else:
                assert not np.array_equal(J[t, rows], eye[rows])


def test_every_probe_runs_on_the_clockwork_rnn():
    model = lc.build("cwrnn", 2, 8)
    params = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((40, 3, 2))
    flow = lc.probes.gradient_norms(model, params, x)
    assert flow.h_norm.shape == (40,) and flow.c_norm is None
    spec = lc.probes.jacobian_spectrum(model, params, x, k=4)
    assert spec.singular_values.shape == (40, 4) and spec.state == "h,clock"
    lyap = lc.probes.lyapunov_spectrum(model, params, x, k=3)
    assert np.all(np.isfinite(lyap.exponents))
    # the perturbed copy agrees with the Jacobians: the clock does not carry a perturbation
    long = np.random.default_rng(1).standard_normal((300, 1, 2))
    assert lc.probes.lyapunov_spectrum(model, params, long, k=1).lambda1_gap < 0.02
    gates = lc.probes.gate_statistics(model, params, x)
    assert gates.to_dict()["probe"] == "gate_statistics"


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("opts,match", [
    ({"periods": [1, 4, 2]}, "periods must increase strictly"),
    ({"periods": [1, 0]}, "each period must be a positive integer"),
    ({"periods": "1,2"}, "periods must be a list of positive integers"),
    ({"modules": 3, "periods": [1, 2]}, "modules=3 contradicts the 2 periods"),
    ({"modules": 0}, "modules must be a positive integer"),
])
def test_bad_options_are_one_sentence(opts, match):
    with pytest.raises(OptionError, match=match):
        lc.build("cwrnn", 2, 4, **opts)


def test_hidden_size_below_the_number_of_modules_asked_for_is_refused():
    with pytest.raises(OptionError, match="4 modules need hidden_size >= 4, got 3"):
        lc.build("cwrnn", 2, 3, modules=4).param_shapes()
    with pytest.raises(OptionError, match="3 modules need hidden_size >= 3, got 2"):
        lc.build("cwrnn", 2, 2, periods=[1, 2, 4]).param_shapes()


def test_default_modules_with_fewer_units_leave_the_slowest_empty():
    """hidden_size 3 with the default 4 modules: one unit each for periods 1, 2, 4, none for 8."""
    model = lc.build("cwrnn", 2, 3)
    np.testing.assert_array_equal(model.cell.module_of(3), [0, 1, 2])
    _assert_complex_step(model, 7, T=20)


def test_config_rebuilds_the_clockwork_rnn():
    model = lc.build("cwrnn", 2, 6, periods=[1, 3, 9], direction="reverse")
    again = lc.build(**model.config())
    assert again.config() == model.config() and again.cell.periods == (1, 3, 9)
    assert "periods=[1, 3, 9]" in model.describe()
