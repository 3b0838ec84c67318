"""Every cell and variant's backward against complex-step and central-difference derivatives."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.models.lstm import VARIANTS
from numeric import (central_directional, complex_step_directional, complex_step_elementwise,
                     dot, loss_fn, random_directions, setup_case)

LSTM_VARIANTS = list(VARIANTS) + ["peephole+cifg", "peephole+fgr", "cifg+niaf"]


def models():
    """(id, model) pairs: every cell family, variant and structural option."""
    out = [(f"lstm-{v}", lc.LSTM(3, 4, variant=v)) for v in LSTM_VARIANTS]
    out += [
        ("lstm-proj-2l-bi", lc.LSTM(3, 5, proj_size=2, num_layers=2, bidirectional=True)),
        ("lstm-peephole-proj", lc.LSTM(3, 4, variant="peephole", proj_size=3)),
        ("lstm-clip", lc.LSTM(3, 4, variant="peephole", clip=0.6)),
        ("lstm-cell-clip", lc.LSTM(3, 4, cell_clip=0.4)),
        ("lstm-acts-1", lc.LSTM(3, 4, activations=("hard_sigmoid", "elu", "softsign"))),
        ("lstm-acts-2", lc.LSTM(3, 4, activations=("softplus", "leaky_relu(0.1)", "scaled_tanh(1.5,0.7)"))),
        ("lstm-acts-3", lc.LSTM(3, 4, activations=("sigmoid", "affine(0.5,0.1)", "thresholded_relu(0.05)"))),
        ("gru", lc.GRU(3, 4)),
        ("gru-reset-before", lc.GRU(3, 4, reset_after=False)),
        ("gru-2l-bi", lc.GRU(3, 4, num_layers=2, bidirectional=True)),
        ("gru-before-2l-bi", lc.GRU(3, 4, reset_after=False, num_layers=2, bidirectional=True)),
    ]
    out += [(f"rnn-{nl}", lc.RNN(3, 4, nonlinearity=nl)) for nl in ("tanh", "relu", "identity")]
    out += [("rnn-2l-bi", lc.RNN(3, 4, num_layers=2, bidirectional=True))]
    return out


MODELS = models()


@pytest.mark.parametrize("name,model", MODELS, ids=[m[0] for m in MODELS])
@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 4.0)], ids=["s0", "s1-saturated"])
def test_complex_step_every_element(name, model, seed, scale):
    """Short sequences, every element of every parameter, x, h0 (and c0)."""
    inputs, dy, ds, grads = setup_case(model, seed, T=4, B=2, scale=scale)
    numeric = complex_step_elementwise(loss_fn(model, dy, ds), inputs)
    for n, g in numeric.items():
        scale_n = max(np.abs(g).max(), 1e-12)
        assert np.abs(grads[n] - g).max() <= 1e-12 * scale_n, n


@pytest.mark.parametrize("name,model", MODELS, ids=[m[0] for m in MODELS])
def test_long_sequence_directional(name, model):
    """T = 30 with saturated gates: complex-step and Richardson central differences along random
    directions through every input at once."""
    inputs, dy, ds, grads = setup_case(model, seed=2, T=30, B=2, scale=3.0)
    L = loss_fn(model, dy, ds)
    for v in random_directions(inputs, 3, seed=7):
        analytic = dot(grads, v)
        cs = complex_step_directional(L, inputs, v)
        cd = central_directional(L, inputs, v)
        assert abs(analytic - cs) <= 1e-11 * max(abs(cs), 1.0)
        assert abs(analytic - cd) <= 1e-7 * max(abs(cd), 1.0)


def test_planted_error_is_seen_by_these_tests():
    """The checks above can fail: a gradient off by 1e-9 relative in one element is caught."""
    model = lc.LSTM(3, 4)
    inputs, dy, ds, grads = setup_case(model, 0, T=4, B=2)
    numeric = complex_step_elementwise(loss_fn(model, dy, ds), inputs, names=["weight_hh_l0"])
    g = grads["weight_hh_l0"].copy()
    g[5, 2] *= 1 + 1e-9
    assert np.abs(g - numeric["weight_hh_l0"]).max() > 1e-12 * np.abs(numeric["weight_hh_l0"]).max()


@pytest.mark.parametrize("truncate", [1, 3, 5])
def test_truncated_bptt_matches_chunked_forward(truncate):
    """truncate=k equals running the chunks [0,k), [k,2k), ... with the state carried forward but
    not differentiated through: the sum of per-chunk gradients."""
    model = lc.LSTM(3, 4)
    rng = np.random.default_rng(3)
    params = model.init_params(seed=3)
    T, B = 11, 2
    x = rng.standard_normal((T, B, 3))
    dy = rng.standard_normal((T, B, 4))
    y, _, tape = model.forward(params, x)
    g = model.backward(tape, dy, truncate=truncate)
    total = {n: np.zeros_like(p) for n, p in params.items()}
    state = None
    dx = np.zeros_like(x)
    for s in range(0, T, truncate):
        seg = slice(s, min(s + truncate, T))
        _, state_next, tp = model.forward(params, x[seg], state)
        gs = model.backward(tp, dy[seg])
        for n in total:
            total[n] += gs[n]
        dx[seg] = gs["x"]
        if s == 0:
            dh0 = gs["h0"]
        state = state_next
    for n in total:
        np.testing.assert_allclose(g[n], total[n], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["x"], dx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g["h0"], dh0, rtol=1e-12, atol=1e-14)


def test_clip_norm_scales_to_threshold():
    model = lc.GRU(3, 4)
    inputs, dy, ds, grads = setup_case(model, 0, T=5)
    params = {n: inputs[n] for n in model.param_names}
    _, _, tape = model.forward(params, inputs["x"], inputs["h0"])
    clipped, trace = model.backward_trace(tape, dy, ds[0], clip_norm=1e-3)
    norm = np.sqrt(sum(np.sum(clipped[n] ** 2) for n in model.param_names))
    assert trace.clipped and trace.grad_norm > 1e-3
    assert norm == pytest.approx(1e-3, rel=1e-12)
    for n in model.param_names:
        np.testing.assert_allclose(clipped[n] * trace.grad_norm / 1e-3, grads[n], rtol=1e-12)
    np.testing.assert_array_equal(clipped["x"], grads["x"])   # inputs are not clipped


@pytest.mark.parametrize("model", [lc.LSTM(3, 4, num_layers=2, bidirectional=True), lc.RNN(3, 4), lc.GRU(3, 4)],
                         ids=["lstm", "rnn", "gru"])
def test_trace_is_dL_dh_t(model):
    """Trace.dh[k][t] is the total derivative of L w.r.t. h_t: check it against a perturbation
    of h_t injected by splitting the sequence at t."""
    rng = np.random.default_rng(4)
    params = model.init_params(seed=4)
    T, B, t = 6, 2, 3
    x = rng.standard_normal((T, B, 3))
    y, _, tape = model.forward(params, x)
    dy = rng.standard_normal(y.shape)
    _, trace = model.backward_trace(tape, dy, trace=True)
    if model.num_layers == 1 and not model.bidirectional:
        # L = <y[:t+1], dy[:t+1]> + L_rest(h_t): the second half's backward gives dL/dh_t exactly
        _, st, _ = model.forward(params, x[: t + 1])
        _, _, tp2 = model.forward(params, x[t + 1:], st)
        g2 = model.backward(tp2, dy[t + 1:])
        np.testing.assert_allclose(trace.dh[0][t], g2["h0"][0] + dy[t], rtol=1e-12)
    # the last step's dL/dh_T equals dy[T-1] of the top forward direction
    k = (model.num_layers - 1) * model.num_directions
    np.testing.assert_allclose(trace.dh[k][T - 1], dy[T - 1][:, :model.output_size], rtol=1e-15)
    if model.bidirectional:  # reverse direction: its last processed step is t = 0
        np.testing.assert_allclose(trace.dh[k + 1][0], dy[0][:, model.output_size:], rtol=1e-15)
