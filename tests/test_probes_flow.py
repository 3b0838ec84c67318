"""gradient_norms against theory (linear RNN, pinned forget gate) and against the model's own
full-sequence backward (segments, truncated BPTT, clipping); bad input."""
import numpy as np
import pytest
from scipy.stats import ortho_group

import lstmcheck as lc
from lstmcheck.errors import NonFiniteError, OptionError, ShapeError
from lstmcheck.probes import gradient_norms
from lstmcheck.probes import flow


def linear_rnn(H, alpha, seed, D=3):
    model = lc.RNN(D, H, nonlinearity="identity")
    params = model.init_params(seed)
    params["weight_hh_l0"] = alpha * ortho_group.rvs(H, random_state=seed)
    return model, params


@pytest.mark.parametrize("H,alpha,seed", [(4, 0.9, 0), (7, 1.03, 1), (16, 0.5, 2)])
@pytest.mark.parametrize("segment", [None, 6])
def test_linear_rnn_gradient_ratio_is_alpha_to_the_lag(H, alpha, seed, segment):
    model, params = linear_rnn(H, alpha, seed)
    x = lc.tasks.noise(40, 3, 3, seed=seed).x
    r = gradient_norms(model, params, x, segment=segment, seed=seed)
    expect = alpha ** r.lags
    np.testing.assert_allclose(r.h_norm_rel, expect, rtol=1e-10)
    np.testing.assert_allclose(r.h_iqr_rel, np.stack([expect, expect], 1), rtol=1e-10)
    assert r.decay_rate == pytest.approx(-np.log(alpha), rel=1e-9)
    assert r.c_norm is None
    assert r.half_life == (pytest.approx(np.log(2) / -np.log(alpha)) if alpha < 1 else np.inf)


def full_trace(model, params, x, dy, truncate=None):
    _, _, tape = model.forward(params, x)
    grads, tr = model.backward_trace(tape, dy, truncate=truncate, trace=True)
    return grads, tr


@pytest.mark.parametrize("cell,opts", [("rnn", {}), ("lstm", {}), ("lstm", {"variant": "peephole"}),
                                       ("lstm", {"proj_size": 2}), ("gru", {}),
                                       ("gru", {"reset_after": False})])
@pytest.mark.parametrize("truncate,segment", [(None, 7), (5, 7), (4, 3), (None, None)])
def test_matches_the_models_backward(cell, opts, truncate, segment):
    model = lc.build(cell, 3, 5, **opts)
    params = model.init_params(3)
    x = lc.tasks.noise(23, 4, 3, seed=4).x
    dy = np.random.default_rng(5).standard_normal((23, 4, model.output_size))
    r = gradient_norms(model, params, x, loss=dy, truncate=truncate, segment=segment)
    grads, tr = full_trace(model, params, x, dy, truncate)
    h = np.linalg.norm(tr.dh[0], axis=-1)[::-1]
    np.testing.assert_allclose(r.h_norm, np.median(h, axis=1), rtol=1e-12, atol=1e-300)
    if model.kind == "lstm":
        c = np.linalg.norm(tr.dc[0], axis=-1)[::-1]
        np.testing.assert_allclose(r.c_norm, np.median(c, axis=1), rtol=1e-12)
    total = np.sqrt(sum((g ** 2).sum() for n, g in grads.items() if n not in ("x", "h0", "c0")))
    assert r.grad_norm == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("cell,opts", [("rnn", {}), ("lstm", {}), ("gru", {}),
                                       ("gru", {"reset_after": False})])
def test_step_terms_sum_to_the_recurrent_weight_gradient(cell, opts):
    """The per-step (delta, input) pairs behind ``contribution`` add up to dL/dW_hh."""
    model = lc.build(cell, 2, 4, **opts)
    params = model.init_params(8)
    x = lc.tasks.noise(9, 3, 2, seed=9).x
    dy = np.random.default_rng(1).standard_normal((9, 3, model.output_size))
    y, _, tape = model.forward(params, x)
    grads = model.backward(tape, dy)
    from lstmcheck.models import runner
    from lstmcheck.models.cell import Outer
    p = {b: params[b + "_l0"] for b in model.base_names()}
    _, _, lt = runner.layer_forward(np, model.cell, p, x, tuple(np.zeros((3, s)) for s in
                                    model.cell.state_sizes(4)), fused=False)
    zero_state = tuple(np.zeros((3, s[-1])) for s in model.state_shapes(3))
    *_, terms = runner.layer_backward(np, model.cell, p, lt, dy, zero_state, per_step=True)

    def dense(g):            # one step's term of dL/dW_hh as a matrix
        out = np.zeros((model.num_gates * 4, model.output_size))
        for term in (g if isinstance(g, list) else [g]):
            if isinstance(term, Outer):
                out[term.rows or slice(None)] += term.value()
            else:
                out += term
        return out
    W = sum(dense(t["weight_hh"]) for t in terms)
    np.testing.assert_allclose(W, grads["weight_hh_l0"], rtol=1e-12, atol=1e-14)
    norms = [flow._frobenius(np, t["weight_hh"]) for t in terms]
    direct = [np.linalg.norm(dense(t["weight_hh"])) for t in terms]
    np.testing.assert_allclose(norms, direct, rtol=1e-12)


def test_pinned_forget_gate_gives_f_to_the_lag_on_the_cell_path():
    H, b_f = 6, 2.5
    model = lc.LSTM(3, H)
    params = model.init_params(0)
    params["weight_hh_l0"][:] = 0.0                     # only the direct cell path remains
    params["weight_ih_l0"][H:2 * H] = 0.0               # forget gate independent of x
    params["bias_ih_l0"][H:2 * H] = b_f
    params["bias_hh_l0"][H:2 * H] = 0.0
    f = 1.0 / (1.0 + np.exp(-b_f))
    x = lc.tasks.noise(60, 3, 3, seed=1).x
    r = gradient_norms(model, params, x, segment=11)
    np.testing.assert_allclose(r.c_norm_rel, f ** r.lags, rtol=1e-10)
    assert r.c_decay_rate == pytest.approx(-np.log(f), rel=1e-9)


def test_clipping_scales_contributions_and_truncation_cuts_the_horizon():
    model = lc.RNN(3, 8)
    params = model.init_params(1, scheme="orthogonal")
    x = lc.tasks.noise(50, 2, 3, seed=2).x
    free = gradient_norms(model, params, x)
    clipped = gradient_norms(model, params, x, clip_norm=free.grad_norm / 4)
    assert clipped.clipped and not free.clipped
    assert clipped.clip_scale == pytest.approx(0.25)
    np.testing.assert_allclose(clipped.contribution, free.contribution / 4, rtol=1e-12)
    np.testing.assert_allclose(clipped.h_norm, free.h_norm, rtol=0)   # clipping acts on dW, not dh
    assert not gradient_norms(model, params, x, clip_norm=free.grad_norm * 2).clipped
    cut = gradient_norms(model, params, x, truncate=10)                # last chunk is t = 41..50
    assert (cut.h_norm[10:] == 0).all() and (cut.h_norm[:10] > 0).all()
    assert (cut.contribution[10:] == 0).all()
    assert cut.horizon[0.99] <= 9 < free.horizon[0.99]


def test_horizon_and_steps_in_past_follow_the_definitions():
    model, params = linear_rnn(5, 0.8, 3)
    x = lc.tasks.noise(60, 2, 3, seed=0).x
    r = gradient_norms(model, params, x, tol=1e-3, shares=(0.5, 0.9))
    assert r.steps_in_past == int(np.floor(np.log(1e-3) / np.log(0.8))) + 1
    for s, lag in r.horizon.items():
        assert r.contribution_share[lag] >= s and (lag == 0 or r.contribution_share[lag - 1] < s)
    d = r.to_dict()
    assert d["probe"] == "gradient_norms" and isinstance(d["h_norm"], np.ndarray)


def test_bad_input_is_refused_clearly():
    model = lc.LSTM(3, 4)
    params = model.init_params(0)
    x = lc.tasks.noise(20, 2, 3).x
    with pytest.raises(OptionError, match="unknown loss"):
        gradient_norms(model, params, x, loss="mse")
    with pytest.raises(ShapeError, match="dy has shape"):
        gradient_norms(model, params, x, loss=np.zeros((20, 2, 5)))
    with pytest.raises(OptionError, match="truncate"):
        gradient_norms(model, params, x, truncate=0)
    deep = lc.LSTM(3, 4, num_layers=2)
    with pytest.raises(OptionError, match="layer must be one of 0..1"):
        gradient_norms(deep, deep.init_params(0), x, layer=2)
    with pytest.raises(OptionError, match="direction must be one of forward"):
        gradient_norms(deep, deep.init_params(0), x, direction="reverse")
    bad = x.copy()
    bad[7, 1, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"x\[7\] \(time step t=8\)"):
        gradient_norms(model, params, bad)
    relu = lc.RNN(3, 4, nonlinearity="relu")
    p = relu.init_params(0)
    p["weight_hh_l0"] = np.eye(4) * 1e80                  # overflows to Inf after a few steps
    p["bias_ih_l0"][:] = 1.0
    with pytest.raises(NonFiniteError, match=r"t=5 "):
        gradient_norms(relu, p, np.abs(x))
