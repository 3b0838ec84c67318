"""gate_statistics (pinned gates give exact answers) and the horizon study."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import NonFiniteError, OptionError
from lstmcheck.probes import gate_statistics, horizon_study


def pinned_lstm(b_f, H=5, variant="vanilla"):
    model = lc.LSTM(3, H, variant=variant)
    params = model.init_params(0)
    f = model.gates.index("f" if "f" in model.gates else "i")
    rows = slice(f * H, (f + 1) * H)
    params["weight_ih_l0"][rows] = 0.0
    params["weight_hh_l0"][rows] = 0.0
    params["bias_ih_l0"][rows] = b_f
    params["bias_hh_l0"][rows] = 0.0
    return model, params


@pytest.mark.parametrize("b_f,segment", [(2.0, None), (-1.0, 7), (4.0, 3)])
def test_pinned_forget_gate_statistics_are_exact(b_f, segment):
    model, params = pinned_lstm(b_f)
    x = lc.tasks.noise(30, 4, 3, seed=1).x
    r = gate_statistics(model, params, x, segment=segment)
    f = 1.0 / (1.0 + np.exp(-b_f))
    t = np.arange(1, 31)
    np.testing.assert_allclose(r.forget_mean, f, rtol=1e-14)
    np.testing.assert_allclose(r.log_forget_product, t * np.log(f), rtol=1e-12)
    np.testing.assert_allclose(r.time_constant, 1.0 / (1.0 - f), rtol=1e-12)
    np.testing.assert_allclose(r.unit_time_constant, 1.0 / (1.0 - f), rtol=1e-12)
    assert r.gates == ("i", "f", "g", "o") and r.forget_gate == "f"
    np.testing.assert_array_equal(r.high[1], float(f > 0.95))
    np.testing.assert_array_equal(r.low[1], float(f < 0.05))


def test_cifg_forgets_with_one_minus_i_and_saturation_thresholds_apply():
    model, params = pinned_lstm(3.5, variant="cifg")        # pins i; f = 1 - i
    r = gate_statistics(model, params, lc.tasks.noise(10, 2, 3).x, low=0.1, high=0.9)
    i = 1.0 / (1.0 + np.exp(-3.5))
    assert r.forget_gate == "1-i" and r.gates == ("i", "g", "o")
    np.testing.assert_allclose(r.forget_mean, 1 - i, rtol=1e-12)
    np.testing.assert_array_equal(r.high[0], 1.0)            # i = 0.97 > 0.9
    np.testing.assert_array_equal(r.low[0], 0.0)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_gru_and_rnn_layouts(cell):
    model = lc.build(cell, 3, 4)
    params = model.init_params(2, scale=20.0)                # saturates everything
    r = gate_statistics(model, params, lc.tasks.noise(15, 3, 3).x)
    assert r.gates == (("r", "z", "n") if cell == "gru" else ("h",))
    assert r.forget_gate == ("z" if cell == "gru" else None)
    assert (r.low + r.high).mean() > 0.8
    assert r.to_dict()["probe"] == "gate_statistics"


def test_bad_input():
    model = lc.LSTM(3, 4)
    params = model.init_params(0)
    with pytest.raises(OptionError, match="thresholds"):
        gate_statistics(model, params, lc.tasks.noise(5, 1, 3).x, low=0.6, high=0.4)
    x = lc.tasks.noise(5, 1, 3).x
    x[3, 0, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"x\[3\] \(time step t=4\)"):
        gate_statistics(model, params, x)


def test_horizon_study_chrono_lstm_reaches_further_than_default():
    r = horizon_study((30, 120), configs=(("rnn", "default"), ("lstm", "default"),
                                          ("lstm", "chrono")), hidden_size=8, batch=2)
    assert r.horizon.shape == (3, 2) and r.labels[2] == "lstm chrono"
    assert r.horizon[2, 1] > 3 * r.horizon[1, 1]
    assert set(r.curves) == set(r.labels) and set(r.c_curves) == {"lstm default", "lstm chrono"}
    assert r.curves["rnn default"].shape == (120,)
    d = r.to_dict()
    assert isinstance(d["horizon"], np.ndarray) and d["meta"]["hidden_size"] == 8
    with pytest.raises(OptionError, match="unknown init"):
        horizon_study((10,), configs=(("lstm", "xavier"),))
