"""Keras 3 layers read by lc.layouts.from_keras and audited against the oracle (torch backend in
this process; the jax backend in a subprocess, since Keras reads KERAS_BACKEND at import)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend", allow_module_level=True)
pytest.importorskip("torch")

import lstmcheck as lc                                   # noqa: E402
from lstmcheck.errors import ConversionError, OptionError   # noqa: E402

L = keras.layers
X = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)


def built(layer):
    layer(X)
    return layer


def one_sentence(msg):
    return msg.endswith(".") and "\n" not in msg


LAYERS = {
    "lstm hard_sigmoid go_backwards": lambda: L.LSTM(4, recurrent_activation="hard_sigmoid",
                                                     go_backwards=True),
    "lstm squareplus/log_sigmoid": lambda: L.LSTM(4, activation="squareplus",
                                                  recurrent_activation="log_sigmoid"),
    "gru reset_after": lambda: L.GRU(4),
    "gru reset_before no bias": lambda: L.GRU(4, reset_after=False, use_bias=False),
    "simple_rnn relu": lambda: L.SimpleRNN(4, activation="relu"),
    "bidirectional lstm": lambda: L.Bidirectional(L.LSTM(4, return_sequences=True)),
    "bidirectional gru reset_before": lambda: L.Bidirectional(L.GRU(4, reset_after=False)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_audit_passes_forward_gradients_and_lengths(name):
    layer = built(LAYERS[name]())
    report = lc.audit(layer, lengths=[5, 3], seq_len=5, batch=2)
    assert report.passed, report.to_text()
    checks = {r["check"] for r in report.rows}
    assert {"forward", "gradient", "fd"} <= checks
    assert report.config["lengths"] == [5, 3]


def test_model_follows_the_config():
    m, _ = lc.layouts.from_keras(built(L.LSTM(4, go_backwards=True)))
    assert m.direction == "reverse"
    m, _ = lc.layouts.from_keras(built(L.Bidirectional(L.GRU(4, reset_after=False))))
    assert m.direction == "bidirectional" and m.reset_after is False
    m, p = lc.layouts.from_keras(built(L.GRU(4, use_bias=False)))
    assert not any(np.any(p[n]) for n in p if n.startswith("bias"))
    m, _ = lc.layouts.from_keras(built(L.LSTM(4, recurrent_activation="hard_sigmoid")))
    assert m.flags.act_f == f"hard_sigmoid({1 / 6!r}, 0.5)"    # Keras 3's relu6(x + 3) / 6


def test_oracle_forward_matches_keras_call_with_return_sequences():
    layer = built(L.LSTM(4, return_sequences=True, go_backwards=True))
    model, params = lc.layouts.from_keras(layer)
    y_keras = np.asarray(layer(X).detach())[:, ::-1]          # go_backwards: reversed order
    y, _, _ = model.forward(params, np.swapaxes(X, 0, 1))
    np.testing.assert_allclose(np.swapaxes(y, 0, 1), y_keras, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["gru reset_before no bias", "bidirectional lstm"])
def test_weights_list_and_weights_h5_give_the_same_params(name, tmp_path):
    layer = built(LAYERS[name]())
    _, p = lc.layouts.from_keras(layer)
    config = {"class_name": type(layer).__name__, **layer.get_config()}
    _, p_list = lc.layouts.from_keras(layer.get_weights(), config=config)
    seq = keras.Sequential([keras.Input(X.shape[1:]), layer])
    seq.save_weights(tmp_path / "m.weights.h5")
    _, p_h5 = lc.layouts.from_keras(str(tmp_path / "m.weights.h5"), config=config)
    for n in p:
        np.testing.assert_array_equal(p_list[n], p[n])
        np.testing.assert_array_equal(p_h5[n], p[n])


def test_a_keras_mask_becomes_lengths():
    x = X.copy()
    x[1, 3:] = 0.0                                            # post-padding of sequence 1
    mask = L.Masking(mask_value=0.0).compute_mask(x)
    assert lc.layouts.lengths_from_mask(mask).tolist() == [5, 3]
    with pytest.raises(OptionError, match="mask row 1") as e:
        lc.layouts.lengths_from_mask(np.array([[1, 1, 1], [1, 0, 1]], bool))
    assert one_sentence(str(e.value))
    with pytest.raises(OptionError, match="mask row 0"):
        lc.layouts.lengths_from_mask(np.zeros((1, 3), bool))


@pytest.mark.parametrize("layer,words", [
    (lambda: L.LSTM(4, activation="gelu"), "'gelu' cannot be converted"),
    (lambda: L.SimpleRNN(4, activation="softmax"), "not elementwise"),
    (lambda: L.SimpleRNN(4, activation="selu"), "tanh, relu or identity"),
    (lambda: L.Bidirectional(L.LSTM(4), merge_mode="sum"), "merge_mode='sum'"),
])
def test_what_the_oracle_cannot_express_is_one_sentence(layer, words):
    with pytest.raises(ConversionError, match=words) as e:
        lc.layouts.from_keras(built(layer()))
    assert one_sentence(str(e.value))


def test_a_weights_list_without_config_is_refused():
    with pytest.raises(OptionError, match="needs config="):
        lc.layouts.from_keras(built(L.GRU(4)).get_weights())


def test_float64_lstm_and_gru_agree_to_float64_round_off():
    for layer in (L.LSTM(4, dtype="float64", go_backwards=True), L.GRU(4, dtype="float64")):
        layer(X.astype(np.float64))
        report = lc.audit(layer, seq_len=5, batch=2)
        assert report.passed and report.dtype == "float64", report.to_text()


@pytest.mark.parametrize("layer,lengths", [(lambda: L.SimpleRNN(4, dtype="float64"), None),
                                           (lambda: L.GRU(4, dtype="float64"), [5, 3])])
def test_float64_keras_caught_computing_in_float32(layer, lengths):
    """Keras 3.15 (non-TensorFlow backends) promotes float64 x float64 to float32 in ops on
    plain tensors (keras/src/backend/common/dtypes.py, BIT64_TO_BIT32_DTYPE): a float64
    SimpleRNN, and a float64 LSTM/GRU given a mask, are float32-accurate. The audit holds them to
    float64 tolerances and fails them by float32-sized errors, not by a layout mistake."""
    layer = layer()
    layer(X.astype(np.float64))
    report = lc.audit(layer, seq_len=5, batch=2, fd=False, lengths=lengths)
    assert not report.passed
    y = next(r for r in report.rows if r["tensor"] == "y")
    assert 1e-11 < y["max_abs"] < 1e-4, y


JAX_SCRIPT = r"""
import json, os
os.environ["KERAS_BACKEND"] = "jax"
import jax
jax.config.update("jax_enable_x64", True)
import keras, numpy as np
import lstmcheck as lc
x = np.zeros((2, 5, 3), np.float32)
out = {}
for name, layer in [("lstm", keras.layers.LSTM(4, go_backwards=True, recurrent_activation="hard_sigmoid")),
                    ("bigru", keras.layers.Bidirectional(keras.layers.GRU(4, reset_after=False))),
                    ("rnn", keras.layers.SimpleRNN(4))]:
    layer(x)
    r = lc.audit(layer, lengths=[5, 2], seq_len=5, batch=2)
    out[name] = [r.passed, sorted({row["check"] for row in r.rows}), r.target]
print(json.dumps(out))
"""


def test_keras_on_the_jax_backend_in_a_subprocess():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(
               os.path.abspath(lc.__file__))), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    for name, (passed, checks, target) in out.items():
        assert passed, name
        assert checks == ["fd", "forward", "gradient"] and "jax backend" in target, (name, checks)


@pytest.mark.parametrize("seed", [5, 0, 1])
def test_a_relu_layer_whose_differences_straddle_a_kink_passes(seed):
    """Seed 5: the float32 base step crossed relu kinks (bias[2], x[0, 0, 0] off by 7-30%) and
    a correct layer failed; the smaller-step opinion (check/api.py, _past_kinks) resolves it."""
    keras.utils.set_random_seed(seed)
    layer = built(L.SimpleRNN(4, activation="relu"))
    report = lc.audit(layer, lengths=[5, 3], seq_len=5, batch=2)
    assert report.passed, report.to_text()
