"""The 2-D Grid LSTM (models/gridlstm.py): its forward against the equations of Kalchbrenner et al.
2015 written out as plain loops over (t, layer), gradients by complex step on every element
(seeds, saturation, T = 50, lengths, directions, layers), and the model's state being the time
dimension's (h, c) while the output is the depth dimension's hidden vector."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import OptionError

from test_cells import _assert_complex_step


def sig(z):
    return 1 / (1 + np.exp(-z))


def lstm(z, m, H):
    i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
    m = f * m + i * g
    return o * np.tanh(m), m


def reference(params, x, num_layers, H, h0, c0):
    """At block (t, L): Hcat = [ht_(t-1); hd from below]; (ht, ct) = LSTM(Hcat, ct_(t-1), W_time),
    (hd, cd) = LSTM(Hcat, cd from below, W_depth); layer 0 takes hd = x_t, cd = 0."""
    T, B, _ = x.shape
    ht = [h0[k].copy() for k in range(num_layers)]
    ct = [c0[k].copy() for k in range(num_layers)]
    ys = []
    for t in range(T):
        hd, cd = x[t], np.zeros((B, H))
        for k in range(num_layers):
            W_t = np.concatenate([params[f"weight_hh_l{k}"][:4 * H], params[f"weight_ih_l{k}"][:4 * H]], 1)
            W_d = np.concatenate([params[f"weight_hh_l{k}"][4 * H:], params[f"weight_ih_l{k}"][4 * H:]], 1)
            b = params[f"bias_ih_l{k}"] + params[f"bias_hh_l{k}"]
            Hcat = np.concatenate([ht[k], hd], 1)
            ht[k], ct[k] = lstm(Hcat @ W_t.T + b[:4 * H], ct[k], H)
            hd, cd = lstm(Hcat @ W_d.T + b[4 * H:], cd, H)
        ys.append(hd)
    return np.stack(ys), np.stack(ht), np.stack(ct)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_forward_is_the_equations(num_layers):
    model = lc.build("gridlstm", 3, 4, num_layers=num_layers)
    params = model.init_params(seed=num_layers)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 2, 3))
    h0, c0 = (rng.standard_normal((num_layers, 2, 4)) for _ in range(2))
    y, (h_n, c_n), _ = model.forward(params, x, (h0, c0))
    want = reference(params, x, num_layers, 4, h0, c0)
    for got, w in zip((y, h_n, c_n), want):
        np.testing.assert_allclose(got, w, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_saturated_long_sequence_by_complex_step(seed):
    model = lc.build("gridlstm", 2, 2, num_layers=2)
    _assert_complex_step(model, seed, scale=4.0, T=50, B=2)


@pytest.mark.parametrize("direction,lengths", [("reverse", [50, 1, 33]),
                                               ("bidirectional", [50, 17, 3])])
def test_lengths_and_directions_by_complex_step(direction, lengths):
    model = lc.build("gridlstm", 2, 2, num_layers=2, direction=direction)
    _assert_complex_step(model, 3, lengths=np.array(lengths), T=50)


def test_padding_gives_zero_output_and_the_time_state_at_the_last_real_step():
    model = lc.build("gridlstm", 2, 3, num_layers=2)
    params = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((8, 2, 2))
    y, (h_n, c_n), _ = model.forward(params, x, lengths=np.array([8, 5]))
    assert np.all(y[5:, 1] == 0)
    y5, (h5, c5), _ = model.forward(params, x[:5, 1:])
    np.testing.assert_allclose(y[:5, 1:], y5, rtol=1e-14)
    np.testing.assert_allclose(h_n[:, 1:], h5, rtol=1e-14)
    np.testing.assert_allclose(c_n[:, 1:], c5, rtol=1e-14)


def test_every_probe_runs_on_layer_0():
    model = lc.build("gridlstm", 2, 4, num_layers=2)
    params = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((30, 2, 2))
    flow = lc.probes.gradient_norms(model, params, x)
    assert flow.h_norm.shape == (30,) and flow.c_norm.shape == (30,)
    # y_T = hd_T reads ht_(T-1): dL/dht_T is exactly 0, and the curve is relative to lag 1
    assert flow.h_norm[0] == 0 and flow.h_norm_rel[1] == 1 and flow.underflow_lag is None
    assert 0 < flow.decay_rate < np.inf
    assert lc.probes.jacobian_spectrum(model, params, x, k=3).state == "h,c,hd,cd"
    assert np.all(np.isfinite(lc.probes.lyapunov_spectrum(model, params, x, k=3).exponents))
    assert lc.probes.gate_statistics(model, params, x).gates[:5] == ("i", "f", "g", "o", "di")
    with pytest.raises(OptionError, match="layer 1 of GRIDLSTM also takes"):
        lc.probes.jacobian_spectrum(model, params, x, layer=1)


# ----------------------------------------------------------------------------- tied weights
def test_tied_layers_share_layer_1s_parameters_and_add_their_gradients():
    tied = lc.build("gridlstm", 3, 4, num_layers=3, tied=True)
    untied = lc.build("gridlstm", 3, 4, num_layers=3)
    assert {n.split("_l")[1] for n in tied.param_names} == {"0", "1"}
    params = tied.init_params(seed=5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 2, 3))
    h0, c0 = (rng.standard_normal((3, 2, 4)) for _ in range(2))
    copied = dict(params, **{n.replace("_l1", "_l2"): a for n, a in params.items() if "_l1" in n})
    y, fin, tape = tied.forward(params, x, (h0, c0))
    y2, fin2, tape2 = untied.forward(copied, x, (h0, c0))
    np.testing.assert_array_equal(y, y2)
    dy = rng.standard_normal(y.shape)
    g, g2 = tied.backward(tape, dy), untied.backward(tape2, dy)
    for n in params:
        want = g2[n] + g2[n.replace("_l1", "_l2")] if "_l1" in n else g2[n]
        np.testing.assert_allclose(g[n], want, rtol=1e-13, atol=1e-15)


def test_tied_gradients_by_complex_step():
    model = lc.build("gridlstm", 2, 2, num_layers=3, direction="bidirectional", tied=True)
    _assert_complex_step(model, 6, lengths=np.array([12, 4, 9]), T=12)


def test_tied_model_has_no_state_dict_form():
    from lstmcheck.errors import ConversionError

    model = lc.build("gridlstm", 2, 3, num_layers=3, tied=True)
    with pytest.raises(ConversionError, match="shares them between layers"):
        lc.layouts.dump("torch", model, model.init_params(seed=0))
    assert "tied=True" in model.describe() and lc.build(**model.config()).cell.tied


def test_tied_must_be_a_flag():
    with pytest.raises(OptionError, match="tied must be True or False"):
        lc.build("gridlstm", 2, 3, tied="yes")
