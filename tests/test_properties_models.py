"""Property-based tests of the models' public API under abuse (hypothesis).

The property, for every call: it either succeeds with verified results (shapes, finite outputs
for finite inputs, float64 gradients that agree with the complex step on a random direction) or
raises an LstmcheckError subclass whose one-sentence message names the offending argument. Any
other exception (a bare ValueError, numpy's broadcast or ufunc errors, AttributeError, ...)
propagates and fails the test.

Decisions the properties pin down: an empty sequence (T = 0) or batch (B = 0) is a ShapeError;
Python lists are not arrays (a ShapeError/ParameterError naming them, no silent conversion);
float16, integer, bool, object and string arrays are DTypeErrors; complex arrays are accepted
only when every input is complex (the complex step).
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import lstmcheck as lc
from lstmcheck.errors import LstmcheckError, OptionError
from lstmcheck.models.recurrent import RecurrentModel
from numeric import complex_step_directional, dot, loss_fn

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
LSTM_PARTS = ("vanilla", "peephole", "cifg", "no_output_tanh", "nig", "nfg", "nog", "niaf",
              "noaf", "fgr")


# ================================================================================== helpers
def outcome(fn, *names):
    """fn()'s result, or None when it raised an LstmcheckError naming one of ``names`` in one
    sentence. Every other exception propagates (and fails the test)."""
    try:
        return fn()
    except LstmcheckError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg, repr(msg)
        assert any(str(n) in msg for n in names), \
            f"{type(exc).__name__}({msg!r}) names none of {names}"
        return None


def strict_numerics():
    """Overflow, invalid operations and division by zero become errors, warnings too."""
    class Ctx:
        def __enter__(self):
            self.w = warnings.catch_warnings()
            self.w.__enter__()
            warnings.simplefilter("error")
            self.e = np.errstate(over="raise", invalid="raise", divide="raise")
            self.e.__enter__()

        def __exit__(self, *exc):
            self.e.__exit__(*exc)
            self.w.__exit__(*exc)
    return Ctx()


@st.composite
def configs(draw, max_layers=3):
    """(cell, input_size, hidden_size, options) over every cell, LSTM variant combination
    (invalid ones included: building them must raise OptionError), projection and structure."""
    cell = draw(st.sampled_from(("rnn", "lstm", "gru")))
    D, H = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    opts = dict(num_layers=draw(st.integers(1, max_layers)), bidirectional=draw(st.booleans()),
                batch_first=draw(st.booleans()))
    if cell == "lstm":
        parts = draw(st.lists(st.sampled_from(LSTM_PARTS), min_size=1, max_size=3, unique=True))
        opts["variant"] = "+".join(parts)
        opts["proj_size"] = draw(st.integers(0, H - 1))
    elif cell == "gru":
        opts["reset_after"] = draw(st.booleans())
    else:
        opts["nonlinearity"] = draw(st.sampled_from(("tanh", "relu", "identity")))
    return cell, D, H, opts


def build(cfg, **extra):
    cell, D, H, opts = cfg
    # the only refusals a drawn config may get: variants that contradict each other
    return outcome(lambda: lc.build(cell, D, H, **opts, **extra), "variant", "cifg")


def bounded(model) -> bool:
    """Outputs stay bounded at any weight scale: saturating activations somewhere on each path."""
    if model.kind == "gru":
        return True
    if model.kind == "rnn":
        return model.nonlinearity == "tanh"
    return not (model.flags.act_g == "identity" and model.flags.act_h == "identity")


def make_inputs(model, T, B, seed, scale=1.0):
    """Params, x in the model's layout and a random state (a tuple, as inputs for loss_fn)."""
    rng = np.random.default_rng(seed)
    params = model.init_params(seed, scale=scale)
    shape = (B, T, model.input_size) if model.batch_first else (T, B, model.input_size)
    x = rng.standard_normal(shape).astype(model.dtype)
    state = tuple(rng.standard_normal(s).astype(model.dtype) for s in model.state_shapes(B))
    return params, x, state


def state_arg(state):
    return state if len(state) > 1 else state[0]


def as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


# =========================================================== valid calls: verified results
@settings(max_examples=400, **SETTINGS)
@given(cfg=configs(), T=st.integers(1, 4), B=st.integers(1, 3), seed=st.integers(0, 2**16),
       scale=st.sampled_from((1.0, 10.0, 1e3)), dtype=st.sampled_from(("float64", "float32")))
def test_valid_calls_succeed_with_verified_results(cfg, T, B, seed, scale, dtype):
    model = build(cfg, dtype=dtype)
    if model is None:
        return
    if not bounded(model):
        scale = 1.0     # identity/relu paths grow like scale^(T*layers): no saturation to rely on
    params, x, state = make_inputs(model, T, B, seed, scale)
    rng = np.random.default_rng(seed + 1)
    with strict_numerics():   # weights up to 1e3 saturate the gates without overflow warnings
        y, final, tape = model.forward(params, x, state_arg(state))
        final = as_tuple(final)
        dy = rng.standard_normal(y.shape).astype(model.dtype)
        dstate = tuple(rng.standard_normal(a.shape).astype(model.dtype) for a in final)
        grads = model.backward(tape, dy, state_arg(dstate))

    lead = (B, T) if model.batch_first else (T, B)
    assert y.shape == lead + (model.output_size * model.num_directions,)
    assert tuple(a.shape for a in final) == model.state_shapes(B)
    assert y.dtype == model.dtype and all(a.dtype == model.dtype for a in final)
    assert np.isfinite(y).all() and all(np.isfinite(a).all() for a in final)
    inputs = {**params, "x": x, **dict(zip(("h0", "c0"), state))}
    assert set(grads) == set(inputs)
    for n, g in grads.items():
        assert g.shape == inputs[n].shape and g.dtype == model.dtype, n
        assert np.isfinite(g).all(), n
    if dtype == "float64":
        # complex step on a random projection: exact to round-off at any weight scale
        v = {n: rng.standard_normal(a.shape) for n, a in inputs.items()}
        numeric = complex_step_directional(loss_fn(model, dy, dstate), inputs, v)
        analytic = dot(grads, v)
        size = sum(float(np.abs(grads[n]).ravel() @ np.abs(v[n]).ravel()) for n in v)
        tol = 1e-10 * size + 1e-30
        if scale >= 100:
            # Backward takes each gate derivative from the gate's output (y(1 - y), 1 - y^2),
            # which is exact to eps *absolutely*: a gate saturated to 1 - 1e-12 keeps few
            # relative digits. The error is then ~eps per local derivative times the size of
            # the inputs and cotangents (measured: < 70 eps * Q), not ~eps * |gradient|.
            Q = (sum(np.abs(a).sum() for a in (dy, *dstate))
                 * max(np.abs(a).max() for a in inputs.values())
                 * sum(np.abs(a).sum() for a in v.values()))
            tol += 1e4 * np.finfo(float).eps * Q
        assert abs(numeric - analytic) <= tol, (numeric, analytic, size)


# ============================================================ corrupted inputs to forward
DTYPES = ("float32", "float16", "int64", "bool", "complex128", "object", "str")
KINDS = ("nan", "inf", "dtype", "list", "shape", "rank", "missing", "extra")


def _corrupt(a, kind, data, model):
    """A bad version of array ``a`` and whether the call may still succeed with it."""
    if kind in ("nan", "inf"):
        a = a.copy()
        flat = a.reshape(-1)
        flat[data.draw(st.integers(0, flat.size - 1))] = \
            np.nan if kind == "nan" else data.draw(st.sampled_from((np.inf, -np.inf)))
        return a, False
    if kind == "dtype":
        dt = data.draw(st.sampled_from(DTYPES))
        b = a.astype(dt)
        return b, b.dtype == model.dtype
    if kind == "list":
        return a.tolist(), False
    if kind == "shape":        # one axis one longer or shorter (never empty)
        ax = data.draw(st.integers(0, a.ndim - 1))
        n = a.shape[ax] + (1 if a.shape[ax] == 1 or data.draw(st.booleans()) else -1)
        shape = a.shape[:ax] + (n,) + a.shape[ax + 1:]
        return np.resize(a, shape), False
    if kind == "rank":
        return (a[None] if data.draw(st.booleans()) or a.ndim == 1 else a[0]), False
    raise AssertionError(kind)


@settings(max_examples=600, **SETTINGS)
@given(cfg=configs(max_layers=2), T=st.integers(1, 3), B=st.integers(1, 3),
       kind=st.sampled_from(KINDS), data=st.data())
def test_corrupted_forward_inputs_raise_errors_naming_them(cfg, T, B, kind, data):
    model = build(cfg)
    if model is None:
        return
    params, x, state = make_inputs(model, T, B, seed=T * 7 + B)
    inputs = {**params, "x": x, **dict(zip(("h0", "c0"), state))}
    target = data.draw(st.sampled_from(sorted(inputs)))
    check_corrupted(model, inputs, target, kind, data)


def check_corrupted(model, inputs, target, kind, data):
    """Forward with ``inputs[target]`` corrupted by ``kind``: a named error, or (where the
    corruption is harmless) a finite result."""
    inputs = dict(inputs)
    x_orig = inputs["x"]
    may_succeed = False
    names = [target]
    if kind == "missing":
        if target in model.param_names:
            del inputs[target]
        else:   # x=None is refused; h0/c0 None mean zeros
            inputs[target] = None
            may_succeed = target != "x"
    elif kind == "extra":
        target = data.draw(st.sampled_from(("bogus", "weight_ih_l7", "weight_hh_l0_reverse",
                                            "weight_peep_l0", "weight_hr_l0", 3)))
        if target in model.param_names:
            return
        inputs[target] = np.zeros(2)
        names = [target]
    else:
        inputs[target], may_succeed = _corrupt(inputs[target], kind, data, model)
    if target == "x" and kind in ("shape", "rank"):
        names += ["h0", "c0"]          # a different batch size contradicts the given state
        t_axis = 1 if model.batch_first else 0
        shape = np.shape(inputs["x"])
        may_succeed = len(shape) == 3 and all(  # another sequence length is a valid input
            a == b for i, (a, b) in enumerate(zip(shape, np.shape(x_orig))) if i != t_axis)
    if kind == "dtype" and target != "x" and not may_succeed:
        names += ["x"]                 # x may be checked against a parameter's odd dtype first
    params = {n: a for n, a in inputs.items() if n not in ("x", "h0", "c0")}
    state = tuple(inputs[n] for n in ("h0", "c0") if n in inputs)
    result = outcome(lambda: model.forward(params, inputs["x"], state_arg(state)), *names)
    if result is not None:
        assert may_succeed, f"forward accepted {target} corrupted by {kind}"
        y, final, _ = result
        assert np.isfinite(y).all() and all(np.isfinite(a).all() for a in as_tuple(final))


@settings(max_examples=100, **SETTINGS)
@given(cfg=configs(max_layers=2), B=st.integers(1, 2), data=st.data())
def test_wrong_state_structure_and_params_container(cfg, B, data):
    model = build(cfg)
    if model is None:
        return
    params, x, state = make_inputs(model, 2, B, seed=B)
    h0 = state[0]
    bad_states = [h0[None], (h0,) * 3, [h0] * len(state), {"h0": h0}, "h0", 3.0, h0.tolist(),
                  (h0.astype(np.float32),) * len(state), (h0[:, :, :0],) * len(state)]
    for bad in bad_states:
        r = outcome(lambda: model.forward(params, x, bad), "state", "h0", "c0")
        if r is not None:   # a list instead of a tuple, or a 1-tuple for RNN/GRU, is fine
            assert isinstance(bad, (list, tuple)) and len(bad) == len(state) \
                and bad[0].dtype == model.dtype and bad[0].shape == h0.shape
    for bad in (list(params.values()), tuple(params.items()), None, "params"):
        assert outcome(lambda: model.forward(bad, x, state_arg(state)), "params") is None
    # empty sequence and empty batch: a ShapeError naming x (decided: no empty forward)
    T0 = np.zeros((B, 0, model.input_size) if model.batch_first else (0, B, model.input_size))
    assert outcome(lambda: model.forward(params, T0), "x") is None


# ================================================================= backward under abuse
@settings(max_examples=300, **SETTINGS)
@given(cfg=configs(max_layers=2), T=st.integers(1, 3), B=st.integers(1, 2),
       what=st.sampled_from(("dy", "dstate", "truncate", "clip_norm", "tape")), data=st.data())
def test_backward_abuse_raises_errors_naming_the_argument(cfg, T, B, what, data):
    model = build(cfg)
    if model is None:
        return
    params, x, state = make_inputs(model, T, B, seed=T + B)
    y, final, tape = model.forward(params, x, state_arg(state))
    dy, dstate = np.ones_like(y), tuple(np.ones_like(a) for a in as_tuple(final))
    kw = {}
    names = [what]
    may_succeed = False
    if what == "dy":
        kind = data.draw(st.sampled_from(("nan", "inf", "dtype", "list", "shape", "rank")))
        dy, may_succeed = _corrupt(dy, kind, data, model)
    elif what == "dstate":
        kind = data.draw(st.sampled_from(("nan", "inf", "dtype", "list", "shape", "rank", "arity")))
        j = data.draw(st.integers(0, len(dstate) - 1))
        if kind == "arity":
            dstate = dstate * 2 if data.draw(st.booleans()) else dstate[0]
            may_succeed = len(as_tuple(final)) == 1   # RNN/GRU: the array alone is the dstate
        else:
            parts = list(dstate)
            parts[j], may_succeed = _corrupt(parts[j], kind, data, model)
            dstate = tuple(parts)
    elif what == "tape":
        tape = data.draw(st.sampled_from((None, "tape", (y, final),
                                          lc.build("gru", model.input_size, 2).forward(
                                              lc.build("gru", model.input_size, 2).init_params(0),
                                              np.zeros((T, B, model.input_size)))[2])))
    else:
        good = (1, 2, 5) if what == "truncate" else (0.5, 1, 1.5, 1e3)
        bad = (0, -1, np.nan, np.inf, "2", True, [1]) + ((1.5,) if what == "truncate" else ())
        kw[what] = data.draw(st.sampled_from(good + bad))
        may_succeed = kw[what] in good and not isinstance(kw[what], bool)
    grads = outcome(lambda: model.backward(tape, dy, state_arg(as_tuple(dstate)), **kw), *names)
    if grads is not None:
        assert may_succeed, f"backward accepted a bad {what}"
        assert all(np.isfinite(g).all() for g in grads.values())
        if "clip_norm" in kw:
            norm = np.sqrt(sum(float(np.vdot(grads[n], grads[n])) for n in model.param_names))
            assert norm <= kw["clip_norm"] * (1 + 1e-12)


# ================================================================== init_params options
WEIRD = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                  st.integers(-3, 300), st.sampled_from(("a", None, [1.0, 2.0], True, np.float32(2.5),
                                                         np.int64(3), 1e308, -0.0, 5e-324)))
INIT_OPTIONS = ("scheme", "gain", "spectral_radius", "forget_bias", "chrono", "scale", "seed",
                "bogus")


@settings(max_examples=400, **SETTINGS)
@given(cell=st.sampled_from(("rnn", "lstm", "gru", "lstm_nfg", "lstm_proj")),
       dtype=st.sampled_from(("float64", "float32")),
       scheme=st.sampled_from(("pytorch", "orthogonal", "gaussian")),
       name=st.sampled_from(INIT_OPTIONS), value=st.one_of(WEIRD, st.sampled_from(
           ("pytorch", "orthogonal", "gaussian", "xavier", np.random.default_rng(0)))))
def test_init_params_options_validated(cell, dtype, scheme, name, value):
    opts = {"lstm_nfg": dict(variant="nfg"), "lstm_proj": dict(proj_size=2)}.get(cell, {})
    model = lc.build(cell.split("_")[0], 3, 4, num_layers=2, dtype=dtype, **opts)
    kw = {"scheme": scheme, name: value}
    seed = kw.pop("seed", 0)
    params = outcome(lambda: model.init_params(seed, **kw), name)
    if params is None:
        return
    assert list(params) == model.param_names
    for n, a in params.items():
        assert a.shape == model.param_shapes()[n] and a.dtype == model.dtype, n
        assert np.isfinite(a).all(), n
    kg = {"lstm": "f", "gru": "z"}.get(model.kind)
    if name == "forget_bias" and value is not None:
        j = model.gates.index(kg)
        H = model.hidden_size
        np.testing.assert_array_equal(params["bias_ih_l1"][j * H:(j + 1) * H],
                                      np.asarray(value, model.dtype))
        assert not params["bias_hh_l1"][j * H:(j + 1) * H].any()
    if name == "spectral_radius" and value is not None and not model.proj_size:
        H = model.hidden_size
        radius = max(abs(np.linalg.eigvals(params["weight_hh_l0"][:H].astype(float))))
        assert radius == pytest.approx(float(value), rel=1e-5, abs=1e-30)


# ======================================================== build / constructors: options
BUILD_OPTIONS = ("num_layers", "bidirectional", "batch_first", "dtype", "backend", "proj_size",
                 "variant", "reset_after", "nonlinearity", "cell_clip", "clip", "activations",
                 "foo", "input_size")
@settings(max_examples=400, **SETTINGS)
@given(cell=st.sampled_from(("rnn", "lstm", "gru")), name=st.sampled_from(BUILD_OPTIONS),
       value=st.one_of(WEIRD, st.sampled_from((
           "float16", "float32", "int", "object", "numpy", "cupy", "tanh", "relu", "peephole+cifg",
           "cifg+nig", "peephole+", ("sigmoid", "tanh", "tanh"), ("relu", "x", "tanh"),
           ("tanh",), 0, 1, 2, False))))
def test_build_options_validated(cell, name, value):
    D, H = 3, 4
    kw = {name: value}
    if name == "input_size":
        D = kw.pop("input_size")
    try:
        model = outcome(lambda: lc.build(cell, D, H, **kw), name, name.rstrip("s"), "cifg")
    except lc.backend.BackendError:   # pragma: no cover - only where CuPy is installed but broken
        return
    if model is None:
        return
    model.forward(model.init_params(0), np.zeros((2, 1, model.input_size), model.dtype))
    cfg = model.config()
    if name in cfg and name not in ("variant", "dtype", "activations"):
        assert cfg[name] == value or (name == "input_size" and cfg[name] == D)


def test_fgr_backward_one_step():
    model = lc.LSTM(2, 3, variant="fgr")
    y, final, tape = model.forward(model.init_params(0), np.ones((1, 1, 2)))
    grads = model.backward(tape, np.ones_like(y))
    assert np.isfinite(grads["weight_gr_l0"]).all() and not grads["weight_gr_l0"].any()


@pytest.mark.parametrize("opts", [dict(clip="a"), dict(cell_clip=(1.0,)), dict(activations=3),
                                  dict(clip=True), dict(cell_clip=float("inf"))])
def test_lstm_option_types(opts):
    with pytest.raises(OptionError):
        lc.LSTM(3, 4, **opts)


def test_build_refuses_unknown_cells_and_wrong_calls():
    for cell in (None, 3, "transformer", ["lstm"]):
        assert outcome(lambda: lc.build(cell, 3, 4), "cell") is None
    assert outcome(lambda: lc.LSTM(3), "hidden_size") is None
    assert outcome(lambda: lc.GRU(3, 4, 2), "positional") is None
    assert outcome(lambda: lc.RNN(3, 4, variant="cifg"), "variant") is None


# ========================================================================= controls
def test_control_outcome_rejects_foreign_and_unnamed_errors():
    """outcome() is the property's judge: a bare numpy error or an error that names the wrong
    argument must fail it, or every property above would pass vacuously."""
    with pytest.raises(ValueError):
        outcome(lambda: np.zeros(3).reshape(2, 2), "x")
    with pytest.raises(AssertionError, match="names none of"):
        outcome(lambda: (_ for _ in ()).throw(OptionError("something is wrong.")), "x")
    assert outcome(lambda: (_ for _ in ()).throw(OptionError("x is wrong.")), "x") is None


class _Fixed:
    """Stands in for hypothesis' ``data``: every draw returns one value."""

    def __init__(self, value):
        self.value = value

    def draw(self, strategy):
        return self.value


@pytest.mark.parametrize("kind, drawn, validator, disabled", [
    ("nan", 0, "_check_finite", lambda self, arrays, xp: None),
    ("dtype", "int64", "_check_dtype", lambda self, name, a, ref=None: ref or (name, a.dtype)),
])
def test_control_property_catches_a_broken_validator(monkeypatch, kind, drawn, validator, disabled):
    """With a validator switched off, the corrupted-input property fails (NaN x accepted, or an
    integer x silently computed with)."""
    model = lc.LSTM(2, 3)
    params, x, state = make_inputs(model, 2, 1, seed=0)
    inputs = {**params, "x": x, "h0": state[0], "c0": state[1]}
    check_corrupted(model, inputs, "x", kind, _Fixed(drawn))     # intact: the property holds
    monkeypatch.setattr(RecurrentModel, validator, disabled)
    with pytest.raises(AssertionError, match="forward accepted x"):
        check_corrupted(model, inputs, "x", kind, _Fixed(drawn))


# ============================================================ locate and state_shapes
@settings(max_examples=200, **SETTINGS)
@given(cfg=configs(max_layers=2), data=st.data())
def test_locate_decodes_or_names_the_bad_index(cfg, data):
    model = build(cfg)
    if model is None:
        return
    shapes = model.param_shapes()
    name = data.draw(st.sampled_from(sorted(shapes) + ["bogus", "weight_ih_l9", "weight_ih_lx"]))
    size = int(np.prod(shapes.get(name, (1,))))
    index = data.draw(st.one_of(st.integers(-2, size + 2), st.sampled_from(("a", 1.5, None)),
                                st.tuples(st.integers(-1, 5), st.integers(-1, 5))))
    loc = outcome(lambda: model.locate(name, index), name, "index")
    if loc is None:
        return
    assert name in shapes
    flat = index if np.ndim(index) == 0 else np.ravel_multi_index(index, shapes[name])
    assert 0 <= flat < size and loc["tensor"] == name
    k, rest = name.split("_l")[1].split("_")[0], name.endswith("_reverse")
    assert loc["layer"] == int(k) and loc["direction"] == ("reverse" if rest else "forward")
    if "gate" in loc and name.split("_l")[0] in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        row = np.unravel_index(flat, shapes[name])[0]
        H = model.hidden_size
        assert loc["gate"] == model.gates[row // H] and loc["row"] == row % H


def test_state_shapes_refuses_a_bad_batch():
    for batch in (-1, 1.5, "a", None):
        assert outcome(lambda: lc.LSTM(3, 4).state_shapes(batch), "batch") is None
