"""Keras 3's elementwise activations in the oracle: forward as Keras 3 defines it
(keras/src/backend/numpy/nn.py, written out independently here), derivative-from-output checked
by the complex step and by central differences, and inside an LSTM by lc.gradcheck."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.models import activations as A

SA, SS = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
KERAS3 = {   # name: Keras 3's formula
    "relu6": lambda x: np.minimum(np.maximum(x, 0), 6),
    "selu": lambda x: SS * np.where(x > 0, x, SA * (np.exp(np.minimum(x, 0)) - 1)),
    "celu": lambda x: np.maximum(x, 0) + 1.0 * np.expm1(np.minimum(x, 0) / 1.0),
    "exponential": np.exp,
    "log_sigmoid": lambda x: -np.log1p(np.exp(-x)),
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0.0)),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "sparse_plus": lambda x: np.where(x <= -1, 0.0, np.where(x < 1, 0.25 * (x + 1) ** 2, x)),
    "sparse_sigmoid": lambda x: np.where(x <= -1, 0.0, np.where(x >= 1, 1.0, 0.5 * (x + 1))),
    "squareplus": lambda x: (x + np.sqrt(x ** 2 + 4)) / 2,
    "hard_sigmoid(0.16666666666666666, 0.5)": lambda x: np.clip(np.maximum(x + 3, 0), 0, 6) / 6,
}
# points on both sides of every kink (+-0.5, +-1, 0, +-3, 6), none on one
Z = np.array([-7.3, -3.4, -2.2, -1.3, -0.8, -0.6, -0.3, -0.05, 0.07, 0.4, 0.7, 0.9, 1.6, 2.8,
              3.3, 5.2, 6.6])


@pytest.mark.parametrize("name", sorted(KERAS3))
def test_forward_is_keras3s(name):
    act = A.get(name)
    np.testing.assert_allclose(act(np, Z.copy()), KERAS3[name](Z), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", sorted(KERAS3))
def test_derivative_from_output_matches_complex_step_and_differences(name):
    act = A.get(name)
    h = 1e-30
    cs = act(np, Z + 1j * h).imag / h
    e = 1e-6
    cd = (act(np, Z + e) - act(np, Z - e)) / (2 * e)
    got = act.grad(np, act(np, Z.copy())) * np.ones_like(Z)
    np.testing.assert_allclose(got, cs, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got, cd, rtol=1e-7, atol=1e-8)
    assert np.ptp(got) > 0 or name == "exponential" or np.all(got != 0)   # not a constant 0


def test_hard_sigmoid_default_is_still_onnxs():
    """The oracle's bare 'hard_sigmoid' keeps ONNX's (0.2, 0.5); Keras 3's is spelled out."""
    assert (A.get("hard_sigmoid").alpha, A.get("hard_sigmoid").beta) == (0.2, 0.5)


@pytest.mark.parametrize("acts", [("hard_sigmoid(0.16666666666666666, 0.5)", "selu", "celu"),
                                  ("sparse_sigmoid", "squareplus", "log_sigmoid"),
                                  ("relu6", "hard_tanh", "exponential")])
def test_lstm_with_keras_activations_passes_gradcheck(acts):
    model = lc.LSTM(3, 4, activations=acts)
    params = model.init_params(seed=1)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    report = lc.gradcheck(model, params, x, seed=0)
    assert report.passed and report.verdict == "passed", report.to_dict()


def test_unknown_activation_is_one_sentence():
    with pytest.raises(lc.LstmcheckError, match="unknown activation 'gelu'"):
        A.get("gelu")
