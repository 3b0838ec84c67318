"""The depth-gated LSTM (models/dglstm.py): its forward against the equations of Yao et al. 2015
written out as plain loops over (layer, t), gradients by complex step on every element (seeds,
saturation, T = 50, lengths, directions, layers), the lower layer's cell state carried by the
runner, and the structural zeros of the depth gate's recurrent rows."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import OptionError

from test_cells import _assert_complex_step


def sig(z):
    return 1 / (1 + np.exp(-z))


def reference(params, x, num_layers, H):
    """c^(L+1)_t = f c_(t-1) + i g + d c^L_t, d = sigma(W_xd x + b_d + w_cd c_(t-1) + w_ld c^L_t)."""
    T, B, _ = x.shape
    inp, c_below = x, None
    for k in range(num_layers):
        W, U = params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"]
        b = params[f"bias_ih_l{k}"] + params[f"bias_hh_l{k}"]
        w_cd, w_ld = params[f"weight_depth_l{k}"]
        h, c = np.zeros((B, H)), np.zeros((B, H))
        hs, cs = [], []
        for t in range(T):
            z = inp[t] @ W.T + b
            zi, zf, zg, zo, zd = (z[:, j * H:(j + 1) * H] for j in range(5))
            r = h @ U.T
            i, f = sig(zi + r[:, :H]), sig(zf + r[:, H:2 * H])
            g, o = np.tanh(zg + r[:, 2 * H:3 * H]), sig(zo + r[:, 3 * H:4 * H])
            c_new = f * c + i * g
            if c_below is not None:
                d = sig(zd + w_cd * c + w_ld * c_below[t])
                c_new = c_new + d * c_below[t]
            c = c_new
            h = o * np.tanh(c)
            hs.append(h)
            cs.append(c)
        inp, c_below = np.stack(hs), np.stack(cs)
    return inp, c_below


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_forward_is_the_equations(num_layers):
    model = lc.build("dglstm", 3, 4, num_layers=num_layers)
    params = model.init_params(seed=num_layers)
    x = np.random.default_rng(0).standard_normal((11, 2, 3))
    y, (h_n, c_n), _ = model.forward(params, x)
    want_y, want_c = reference(params, x, num_layers, 4)
    np.testing.assert_allclose(y, want_y, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(c_n[-1], want_c[-1], rtol=1e-13, atol=1e-14)


def test_the_depth_term_reaches_the_layer_above():
    """Changing w_ld of layer 1 changes layer 1's output; layer 0's depth parameters are inert."""
    model = lc.build("dglstm", 3, 4, num_layers=2)
    params = model.init_params(seed=0)
    x = np.random.default_rng(1).standard_normal((6, 2, 3))
    y = model.forward(params, x)[0]
    bumped = dict(params, weight_depth_l1=params["weight_depth_l1"] + 0.5)
    assert np.abs(model.forward(bumped, x)[0] - y).max() > 1e-3
    inert = dict(params, weight_depth_l0=params["weight_depth_l0"] + 0.5)
    np.testing.assert_array_equal(model.forward(inert, x)[0], y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_saturated_long_sequence_by_complex_step(seed):
    model = lc.build("dglstm", 2, 3, num_layers=2)
    _assert_complex_step(model, seed, scale=4.0, T=50, B=2)


@pytest.mark.parametrize("direction,lengths", [("reverse", [50, 1, 33]),
                                               ("bidirectional", [50, 17, 3])])
def test_lengths_and_directions_by_complex_step(direction, lengths):
    model = lc.build("dglstm", 2, 2, num_layers=2, direction=direction)
    _assert_complex_step(model, 3, lengths=np.array(lengths), T=50)


def test_structural_zeros_of_the_depth_gate():
    model = lc.build("dglstm", 2, 3, num_layers=2)
    params = model.init_params(seed=0)
    assert np.all(params["weight_hh_l1"][12:] == 0) and np.all(params["weight_hh_l1"][:12] != 0)
    x = np.random.default_rng(0).standard_normal((8, 2, 2))
    y, _, tape = model.forward(params, x)
    grads = model.backward(tape, np.ones_like(y))
    assert np.all(grads["weight_hh_l1"][12:] == 0)
    assert np.all(grads["weight_depth_l0"] == 0) and np.all(grads["weight_depth_l1"] != 0)
    assert model.locate("weight_hh_l1", (13, 0))["structural_zero"] is True
    assert model.locate("weight_depth_l1", (1, 2)) == {
        "tensor": "weight_depth_l1", "layer": 1, "direction": "forward", "gate": "d",
        "from": "c_below", "row": 2}


def test_probes_run_on_layer_0_and_refuse_a_higher_layer_in_one_sentence():
    model = lc.build("dglstm", 2, 4, num_layers=2)
    params = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((30, 2, 2))
    assert lc.probes.gradient_norms(model, params, x).c_norm.shape == (30,)
    assert lc.probes.jacobian_spectrum(model, params, x, k=2).state == "h,c"
    assert np.all(np.isfinite(lc.probes.lyapunov_spectrum(model, params, x, k=2).exponents))
    assert "d" not in lc.probes.gate_statistics(model, params, x).to_dict()["gates"]
    with pytest.raises(OptionError, match="layer 1 of DGLSTM also takes the layer below's c"):
        lc.probes.gradient_norms(model, params, x, layer=1)
