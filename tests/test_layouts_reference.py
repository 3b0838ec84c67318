"""Keras, TensorFlow and cuDNN layouts against their documented equations.

Neither Keras, TensorFlow nor cuDNN runs here, so each framework's cell is written below as an
independent NumPy step straight from its documentation, fed with tensors drawn directly in that
framework's format (not produced by dump), and compared with the oracle's forward on what load
makes of the same tensors."""
import numpy as np
import pytest
from scipy.special import expit as sigmoid

from lstmcheck import layouts

T, B, D, U = 5, 2, 4, 3
TOL = 1e-12


def draw(rng, shapes: dict) -> dict:
    return {n: rng.standard_normal(s) * 0.6 for n, s in shapes.items()}


def run(step, x, state):
    ys = []
    for t in range(x.shape[0]):
        state = step(x[t], *state)
        ys.append(state[0])
    return np.stack(ys), state


def oracle_stack(model, params, x, state):
    """y and the final state tuple; state holds (L*dirs, B, H) arrays."""
    y, fin, _ = model.forward(params, x, state if len(state) > 1 else state[0])
    return y, (fin if isinstance(fin, tuple) else (fin,))


def oracle(model, params, x, state):
    """One layer: state and final state as (B, H) arrays, like the step functions'."""
    y, fin = oracle_stack(model, params, x, tuple(a[None] for a in state))
    return y, tuple(a[0] for a in fin)


def init(rng, n):
    return tuple(rng.standard_normal((B, U)) for _ in range(n))


def close(a, b):
    """(y, (h, c)) pairs equal to TOL."""
    (ya, sa), (yb, sb) = a, b
    return max(float(np.max(np.abs(u - v))) for u, v in zip((ya, *sa), (yb, *sb))) < TOL


# ------------------------------------------------------------------ Keras
def keras_lstm_step(w, act=np.tanh, rec=sigmoid, peep=False):
    def step(x, h, c):
        z = x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        if peep:   # PeepholeLSTMCell
            zi = zi + w["input_gate_peephole_weights"] * c
            zf = zf + w["forget_gate_peephole_weights"] * c
        i, f = rec(zi), rec(zf)
        c = f * c + i * act(zc)
        if peep:
            zo = zo + w["output_gate_peephole_weights"] * c
        h = rec(zo) * act(c)
        return h, c
    return step


def keras_gru_step(w, reset_after):
    Wz, Wr, Wh = np.split(w["kernel"], 3, axis=-1)
    Uz, Ur, Uh = np.split(w["recurrent_kernel"], 3, axis=-1)

    def step(x, h):
        if reset_after:
            xz, xr, xh = np.split(x @ w["kernel"] + w["bias"][0], 3, axis=-1)
            rz, rr, rh = np.split(h @ w["recurrent_kernel"] + w["bias"][1], 3, axis=-1)
            z, r = sigmoid(xz + rz), sigmoid(xr + rr)
            hh = np.tanh(xh + r * rh)
        else:
            bz, br, bh = np.split(w["bias"], 3)
            z = sigmoid(x @ Wz + bz + h @ Uz)
            r = sigmoid(x @ Wr + br + h @ Ur)
            hh = np.tanh(x @ Wh + bh + (r * h) @ Uh)
        return (z * h + (1 - z) * hh,)
    return step


def keras_rnn_step(w, act):
    return lambda x, h: (act(x @ w["kernel"] + w["bias"] + h @ w["recurrent_kernel"]),)


def keras_shapes(G, D_in, prefix="", bias=None):
    return {prefix + "kernel": (D_in, G * U), prefix + "recurrent_kernel": (U, G * U),
            prefix + "bias": bias or (G * U,)}


@pytest.mark.parametrize("seed", [0, 1])
def test_keras_lstm(seed):
    rng = np.random.default_rng(seed)
    w = draw(rng, keras_shapes(4, D))
    x, state = rng.standard_normal((T, B, D)), init(rng, 2)
    model, params = layouts.load("keras", w, "lstm")
    assert close(oracle(model, params, x, state), run(keras_lstm_step(w), x, state))


def test_keras_peephole_lstm_with_activations():
    rng = np.random.default_rng(2)
    shapes = keras_shapes(4, D)
    shapes.update({n: (U,) for n in ("input_gate_peephole_weights", "forget_gate_peephole_weights",
                                     "output_gate_peephole_weights")})
    w = draw(rng, shapes)
    x, state = rng.standard_normal((T, B, D)), init(rng, 2)
    model, params = layouts.load("keras", w, "lstm", activation="softsign",
                                 recurrent_activation="hard_sigmoid")
    hard_sigmoid = lambda z: np.minimum(np.maximum(z + 3, 0), 6) / 6   # noqa: E731  (Keras 3's relu6(x+3)/6)
    softsign = lambda z: z / (1 + np.abs(z))                 # noqa: E731
    want = run(keras_lstm_step(w, softsign, hard_sigmoid, peep=True), x, state)
    assert close(oracle(model, params, x, state), want)


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru(reset_after):
    rng = np.random.default_rng(3)
    w = draw(rng, keras_shapes(3, D, bias=(2, 3 * U) if reset_after else None))
    x, state = rng.standard_normal((T, B, D)), init(rng, 1)
    model, params = layouts.load("keras", w, "gru")
    assert model.reset_after == reset_after
    assert close(oracle(model, params, x, state), run(keras_gru_step(w, reset_after), x, state))


@pytest.mark.parametrize("activation,fn", [("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0)),
                                           ("linear", lambda z: z)])
def test_keras_simple_rnn(activation, fn):
    rng = np.random.default_rng(4)
    w = draw(rng, keras_shapes(1, D))
    x, state = rng.standard_normal((T, B, D)), init(rng, 1)
    model, params = layouts.load("keras", w, "rnn", activation=activation)
    assert close(oracle(model, params, x, state), run(keras_rnn_step(w, fn), x, state))


def test_keras_stacked_bidirectional_lstm():
    """Bidirectional(merge_mode='concat') layers, stacked: the backward layer reads x reversed
    and its output is reversed back before concatenation."""
    rng = np.random.default_rng(5)
    shapes = {}
    for k, d_in in enumerate((D, 2 * U)):
        for side in ("forward", "backward"):
            shapes.update(keras_shapes(4, d_in, f"layer{k}/{side}/"))
    w = draw(rng, shapes)
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((4, B, U)), rng.standard_normal((4, B, U))
    model, params = layouts.load("keras", w, "lstm")
    assert model.num_layers == 2 and model.bidirectional
    inp, hs, cs = x, [], []
    for k in range(2):
        outs = []
        for d, side in enumerate(("forward", "backward")):
            sub = {n.rsplit("/", 1)[1]: a for n, a in w.items() if n.startswith(f"layer{k}/{side}/")}
            seq = inp[::-1] if d else inp
            y, (h, c) = run(keras_lstm_step(sub), seq, (h0[2 * k + d], c0[2 * k + d]))
            outs.append(y[::-1] if d else y)
            hs.append(h)
            cs.append(c)
        inp = np.concatenate(outs, axis=-1)
    assert close(oracle_stack(model, params, x, (h0, c0)), (inp, (np.stack(hs), np.stack(cs))))


# ------------------------------------------------------------------ TensorFlow
def tf_lstm_step(w, forget_bias=1.0, cell_clip=None, peep=False, proj=False):
    """LSTMBlockCell / LSTMCell: [i, ci, f, o] = [x, h] @ kernel + bias."""
    def step(x, h, c):
        i, ci, f, o = np.split(np.concatenate([x, h], axis=-1) @ w["kernel"] + w["bias"], 4, axis=-1)
        if peep:
            i = i + c * w["w_i_diag"]
            f = f + c * w["w_f_diag"]
        c = sigmoid(i) * np.tanh(ci) + c * sigmoid(f + forget_bias)
        if cell_clip is not None:
            c = np.clip(c, -cell_clip, cell_clip)
        if peep:
            o = o + c * w["w_o_diag"]
        h = sigmoid(o) * np.tanh(c)
        if proj:
            h = h @ w["projection/kernel"]
        return h, c
    return step


def basic_lstm_step(w, forget_bias):
    """BasicLSTMCell, as its documentation writes it: gates i, j, f, o."""
    def step(x, h, c):
        i, j, f, o = np.split(np.concatenate([x, h], axis=-1) @ w["kernel"] + w["bias"], 4, axis=-1)
        new_c = c * sigmoid(f + forget_bias) + sigmoid(i) * np.tanh(j)
        return np.tanh(new_c) * sigmoid(o), new_c
    return step


@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 0.75])
def test_tf_basic_lstm_cell(forget_bias):
    rng = np.random.default_rng(6)
    w = draw(rng, {"kernel": (D + U, 4 * U), "bias": (4 * U,)})
    x, state = rng.standard_normal((T, B, D)), init(rng, 2)
    model, params = layouts.load("tf", w, "lstm", forget_bias=forget_bias, cell_type="BasicLSTMCell")
    assert close(oracle(model, params, x, state), run(basic_lstm_step(w, forget_bias), x, state))


def test_tf_forgotten_forget_bias_is_visible():
    """Loading with the wrong forget_bias changes the function (the option is not a no-op)."""
    rng = np.random.default_rng(7)
    w = draw(rng, {"kernel": (D + U, 4 * U), "bias": (4 * U,)})
    x, state = rng.standard_normal((T, B, D)), init(rng, 2)
    model, params = layouts.load("tf", w, "lstm", forget_bias=0.0)
    assert not close(oracle(model, params, x, state), run(basic_lstm_step(w, 1.0), x, state))


def test_tf_lstm_block_cell_peephole_cell_clip():
    rng = np.random.default_rng(8)
    shapes = {"kernel": (D + U, 4 * U), "bias": (4 * U,), "w_i_diag": (U,), "w_f_diag": (U,),
              "w_o_diag": (U,)}
    w = {n: a * 3 for n, a in draw(rng, shapes).items()}      # large enough for the clip to act
    x, state = rng.standard_normal((T, B, D)), init(rng, 2)
    model, params = layouts.load("tf", w, "lstm", cell_clip=0.8, cell_type="LSTMBlockCell")
    want = run(tf_lstm_step(w, cell_clip=0.8, peep=True), x, state)
    assert close(oracle(model, params, x, state), want)
    assert not close(want, run(tf_lstm_step(w, peep=True), x, state))   # the clip acted


def test_tf_lstm_cell_projection():
    rng = np.random.default_rng(9)
    P = 2
    w = draw(rng, {"kernel": (D + P, 4 * U), "bias": (4 * U,), "projection/kernel": (U, P)})
    x = rng.standard_normal((T, B, D))
    state = (rng.standard_normal((B, P)), rng.standard_normal((B, U)))
    model, params = layouts.load("tf", w, "lstm", forget_bias=0.5)
    assert model.proj_size == P
    assert close(oracle(model, params, x, state), run(tf_lstm_step(w, forget_bias=0.5, proj=True), x, state))


# ------------------------------------------------------------------ cuDNN
def cudnn_lstm_step(w):
    Wi, Wf, Wc, Wo, Ri, Rf, Rc, Ro = (w[f"lin{j}/weight"] for j in range(8))
    bW = [w[f"lin{j}/bias"] for j in range(4)]
    bR = [w[f"lin{j}/bias"] for j in range(4, 8)]

    def step(x, h, c):
        i = sigmoid(x @ Wi.T + h @ Ri.T + bW[0] + bR[0])
        f = sigmoid(x @ Wf.T + h @ Rf.T + bW[1] + bR[1])
        o = sigmoid(x @ Wo.T + h @ Ro.T + bW[3] + bR[3])
        cc = np.tanh(x @ Wc.T + h @ Rc.T + bW[2] + bR[2])
        c = f * c + i * cc
        return o * np.tanh(c), c
    return step


def cudnn_gru_step(w):
    Wr, Wz, Wh, Rr, Rz, Rh = (w[f"lin{j}/weight"] for j in range(6))
    bWr, bWz, bWh, bRr, bRz, bRh = (w[f"lin{j}/bias"] for j in range(6))

    def step(x, h):
        r = sigmoid(x @ Wr.T + h @ Rr.T + bWr + bRr)
        i = sigmoid(x @ Wz.T + h @ Rz.T + bWz + bRz)          # the update gate
        hh = np.tanh(x @ Wh.T + r * (h @ Rh.T + bRh) + bWh)
        return ((1 - i) * hh + i * h,)
    return step


@pytest.mark.parametrize("cell,step,G", [("lstm", cudnn_lstm_step, 4), ("gru", cudnn_gru_step, 3)])
def test_cudnn(cell, step, G):
    rng = np.random.default_rng(10)
    shapes = {}
    for j in range(2 * G):
        shapes[f"lin{j}/weight"] = (U, D if j < G else U)
        shapes[f"lin{j}/bias"] = (U,)
    w = draw(rng, shapes)
    x, state = rng.standard_normal((T, B, D)), init(rng, 2 if cell == "lstm" else 1)
    model, params = layouts.load("cudnn", w)
    assert model.kind == cell
    assert close(oracle(model, params, x, state), run(step(w), x, state))
