"""Bad input raises one clear LstmcheckError naming what is wrong."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import (BackendError, DTypeError, LstmcheckError, NonFiniteError, OptionError,
                              ParameterError, ShapeError)


@pytest.fixture
def case():
    m = lc.LSTM(3, 4)
    return m, m.init_params(seed=0), np.random.default_rng(0).standard_normal((5, 2, 3))


def test_wrong_rank(case):
    m, p, x = case
    with pytest.raises(ShapeError, match="rank-3"):
        m.forward(p, x[0])


def test_wrong_feature_size(case):
    m, p, x = case
    with pytest.raises(ShapeError, match="input_size is 3"):
        m.forward(p, np.zeros((5, 2, 4)))


def test_missing_and_extra_params(case):
    m, p, x = case
    q = dict(p)
    del q["bias_hh_l0"]
    q["weight_xx"] = q["bias_ih_l0"]
    with pytest.raises(ParameterError, match="missing bias_hh_l0.*unexpected weight_xx"):
        m.forward(q, x)


def test_wrong_param_shape(case):
    m, p, x = case
    q = {**p, "weight_hh_l0": np.zeros((16, 5))}
    with pytest.raises(ShapeError, match=r"weight_hh_l0 has shape \(16, 5\), expected \(16, 4\)"):
        m.forward(q, x)


def test_mismatched_dtypes(case):
    m, p, x = case
    with pytest.raises(DTypeError, match="x has dtype float32"):
        m.forward(p, x.astype(np.float32))
    with pytest.raises(DTypeError, match="int64"):
        m.forward(p, np.zeros((5, 2, 3), dtype=np.int64))


@pytest.mark.parametrize("where", ["weight_ih_l0", "x", "h0"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_names_the_tensor(case, where, bad):
    m, p, x = case
    p, x = dict(p), x.copy()
    h0, c0 = np.zeros((1, 2, 4)), np.zeros((1, 2, 4))
    target = {"x": x, "h0": h0}.get(where, None)
    if target is None:
        p[where] = p[where].copy()
        target = p[where]
    target.flat[3] = bad
    with pytest.raises(NonFiniteError, match=f"{where} contains {'NaN' if np.isnan(bad) else 'Inf'}"):
        m.forward(p, x, (h0, c0))


def test_state_shape(case):
    m, p, x = case
    with pytest.raises(ShapeError, match="pair"):
        m.forward(p, x, np.zeros((1, 2, 4)))
    with pytest.raises(ShapeError, match="c0 has shape"):
        m.forward(p, x, (np.zeros((1, 2, 4)), np.zeros((1, 3, 4))))


def test_dy_shape(case):
    m, p, x = case
    y, _, tape = m.forward(p, x)
    with pytest.raises(ShapeError, match="dy has shape"):
        m.backward(tape, y[:-1])


def test_empty_sequence(case):
    m, p, _ = case
    with pytest.raises(ShapeError, match="at least one time step"):
        m.forward(p, np.zeros((0, 2, 3)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(variant="lstm2"), "unknown LSTM variant 'lstm2'"),
    (dict(variant="cifg+nfg"), "cannot be combined"),
    (dict(proj_size=4), "proj_size"),
    (dict(clip=-1.0), "clip must be a positive"),
    (dict(activations=("sigmoid", "tanh", "swish")), "unknown activation 'swish'"),
    (dict(dtype="float16"), "float16 is too coarse"),
    (dict(backend="tpu"), "unknown backend 'tpu'"),
    (dict(num_layers=0), "num_layers must be a positive integer"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(LstmcheckError, match=match):
        lc.LSTM(3, 4, **kwargs)


def test_bad_sizes_and_cells():
    with pytest.raises(OptionError, match="hidden_size must be a positive integer"):
        lc.GRU(3, -2)
    with pytest.raises(OptionError, match="unknown nonlinearity"):
        lc.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(OptionError, match="unknown cell 'transformer'"):
        lc.build("transformer", 3, 4)


def test_cupy_missing_or_no_gpu_is_one_sentence():
    from lstmcheck import backend
    if "cupy" in backend.available_backends():
        pytest.skip("a GPU is available here")
    with pytest.raises(BackendError, match="backend 'cupy' is not usable"):
        lc.LSTM(3, 4, backend="cupy")


def test_errors_are_one_sentence():
    try:
        lc.LSTM(3, 4, variant="nope")
    except LstmcheckError as e:
        assert "\n" not in str(e) and str(e).endswith(".")


def test_init_options():
    with pytest.raises(OptionError, match="forget_bias applies to LSTM, GRU, DGLSTM and GRIDLSTM"):
        lc.RNN(3, 4).init_params(forget_bias=1.0)
    with pytest.raises(OptionError, match="lacks"):
        lc.LSTM(3, 4, variant="nfg").init_params(forget_bias=1.0)
    with pytest.raises(OptionError, match="unknown init scheme"):
        lc.LSTM(3, 4).init_params(scheme="xavier")


def test_gpu_out_of_memory_is_one_sentence(monkeypatch):
    """A device OOM inside a model pass becomes a BackendError saying what to shrink.

    The error is raised from run_forward, beneath which the kernel selector picks the fused or
    the step execution by measurement, so the test holds on every machine."""

    class OutOfMemoryError(MemoryError):   # the name CuPy's allocator error carries
        pass

    def boom(*a, **k):
        raise OutOfMemoryError("Out of memory allocating 8,589,934,592 bytes")

    m = lc.LSTM(3, 4)
    monkeypatch.setattr(type(m), "run_forward", boom)
    with pytest.raises(BackendError, match=r"ran out of memory during the forward pass of LSTM\(3, 4.*reduce batch"):
        m.forward(m.init_params(seed=0), np.zeros((2, 1, 3)))
