"""Property-based tests of layouts (import/export) and io (weight files) under abuse.

The property, as for the models: every call either succeeds with a verified result (a load
that succeeds gives back the tensors it was given, bit for bit, when dumped again; a file read
gives NumPy arrays) or raises an LstmcheckError subclass with one sentence naming the offending
tensor, option or file. Decisions pinned down here: tensors may be array-likes (nested lists
convert); tensors of a lower float precision than the rest are upcast exactly; integer, bool,
complex, object and string tensors are DTypeErrors; NaN/Inf weights are NonFiniteErrors at load
time, naming the tensor in the layout's own spelling.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import lstmcheck as lc
from lstmcheck import io, layouts
from lstmcheck.errors import FileFormatError, LstmcheckError
from test_properties_models import outcome

SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LAYOUTS = ("torch", "keras", "onnx", "tf", "cudnn")
MUTATIONS = ("drop", "extra", "rank", "size", "int64", "bool", "complex128", "object", "str",
             "float32", "float16", "list", "nan", "inf", "none", "scalar", "ragged")


@st.composite
def dumped(draw):
    """(layout, model, tensors, load options) for a model the layout can express."""
    layout = draw(st.sampled_from(LAYOUTS))
    cell = "lstm" if layout == "tf" else draw(st.sampled_from(("lstm", "gru", "rnn")))
    opts = dict(num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()))
    if cell == "lstm" and layout in ("torch", "keras", "onnx", "tf"):
        opts["variant"] = draw(st.sampled_from(("vanilla", "peephole")))
    model = lc.build(cell, draw(st.integers(1, 3)), draw(st.integers(1, 3)), **opts)
    params = model.init_params(draw(st.integers(0, 100)))
    tensors = layouts.dump(layout, model, params)
    return layout, model, tensors, layouts.options(layout, model)


def mutate(tensors, name, how):
    """tensors with tensor ``name`` corrupted; the names an error may cite; whether load may
    still succeed."""
    t = dict(tensors)
    a = t[name]
    ok = False
    if how == "drop":
        del t[name]
    elif how == "extra":
        name = "layer9/zzz"
        t[name] = np.zeros(2)
    elif how == "rank":
        t[name] = a[None] if a.ndim < 3 else a[0]
    elif how == "size":
        t[name] = np.resize(a, tuple(s + 1 for s in a.shape))
    elif how in ("int64", "bool", "complex128", "object", "str"):
        t[name] = a.astype(how)
    elif how in ("float32", "float16"):   # exact upcast back to float64
        t[name] = a.astype(how)
        ok = True
    elif how == "list":
        t[name] = a.tolist()
        ok = True
    elif how in ("nan", "inf"):
        b = a.copy()
        b.reshape(-1)[b.size // 2] = np.nan if how == "nan" else -np.inf
        t[name] = b
    elif how == "none":
        t[name] = None
    elif how == "scalar":
        t[name] = 1.5
    elif how == "ragged":
        t[name] = [[1.0], [1.0, 2.0]]
    return t, name, ok


@settings(max_examples=300, **SETTINGS)
@given(case=dumped(), how=st.sampled_from(MUTATIONS), guess_cell=st.booleans(), data=st.data())
def test_layout_load_of_corrupted_tensors(case, how, guess_cell, data):
    layout, model, tensors, opts = case
    name = data.draw(st.sampled_from(sorted(tensors)))
    t, name, may_succeed = mutate(tensors, name, how)
    cell = None if guess_cell else model.kind
    # a missing or misshaped anchor tensor may surface as "no 'W'" or a cell that cannot be told
    names = (name, name.rsplit("/", 1)[-1], "cell", layout)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = outcome(lambda: layouts.load(layout, t, cell, **opts), *names)
    if got is None:
        return
    loaded, params = got
    if not may_succeed:
        # a dropped optional bias, an RNN tensor renamed into a GRU's shape ... must still be
        # a model the tensors describe exactly; what is not accepted is silent data change
        assert how in ("drop",), f"load accepted {name} corrupted by {how}"
    # verified: dumping what was loaded gives back the given values bit for bit
    back = layouts.dump(layout, loaded, params, **_dump_options(layout, opts))
    for n, a in back.items():
        if n in t and t[n] is not None:
            np.testing.assert_array_equal(a, np.asarray(t[n], dtype=a.dtype), err_msg=n)


def _dump_options(layout, load_opts):
    keep = {"keras": ("reset_after",), "tf": ("forget_bias", "cell_type")}.get(layout, ())
    return {k: v for k, v in load_opts.items() if k in keep}


@settings(max_examples=150, **SETTINGS)
@given(case=dumped(), data=st.data())
def test_layout_options_and_arguments_validated(case, data):
    layout, model, tensors, opts = case
    which = data.draw(st.sampled_from(("load_option", "dump_option", "options_option", "layout",
                                       "tensors", "model", "params", "cell")))
    value = data.draw(st.sampled_from(("x", None, 3, -1, 2.5, np.nan, [1], "lstm", "bidirectional")))
    if which == "load_option":
        key = data.draw(st.sampled_from(("bogus", "clip", "direction", "layout", "input_forget",
                                         "hidden_size", "forget_bias", "reset_after", "dtype",
                                         "activation", "num_layers")))
        if key in opts:
            return   # the layout states these itself
        if key == "clip" and layout != "onnx" and model.kind == "lstm" \
                and not isinstance(value, (int, float, type(None))):
            return   # lstm.py's TypeError for a non-numeric clip (test_lstm_option_type_gaps)
        fn, names = (lambda: layouts.load(layout, tensors, model.kind, **{key: value})), (key, layout)
    elif which == "dump_option":
        fn, names = (lambda: layouts.dump(layout, model, model.init_params(0), bogus=value)), ("bogus",)
    elif which == "options_option":
        fn, names = (lambda: layouts.options(layout, model, bogus=value)), ("bogus",)
    elif which == "layout":
        fn, names = (lambda: layouts.load(value, tensors)), ("layout",)
    elif which == "tensors":
        fn, names = (lambda: layouts.load(layout, value)), ("tensors", layout, "cell")
    elif which == "model":
        fn, names = (lambda: layouts.dump(layout, value, model.init_params(0))), ("model",)
    elif which == "params":
        fn, names = (lambda: layouts.dump(layout, model, value)), ("params", "parameter")
    else:
        fn, names = (lambda: layouts.load(layout, tensors, value)), ("cell", layout)
    got = outcome(fn, *names)
    if got is not None and which == "load_option":
        assert key in ("clip", "dtype", "forget_bias", "activation", "reset_after") or value is None


# =================================================================================== io
@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    model = lc.LSTM(3, 4, num_layers=2)
    tensors = layouts.dump("torch", model, model.init_params(0))
    np.savez(folder / "w.npz", **tensors)
    from safetensors.numpy import save_file
    save_file(tensors, str(folder / "w.safetensors"))
    return folder, tensors


@settings(max_examples=200, **SETTINGS)
@given(suffix=st.sampled_from(("npz", "safetensors")), how=st.sampled_from(("truncate", "flip", "zero")),
       where=st.floats(0, 1), bit=st.integers(0, 7))
def test_io_corrupt_or_truncated_files(weight_files, tmp_path_factory, suffix, how, where, bit):
    folder, tensors = weight_files
    raw = (folder / f"w.{suffix}").read_bytes()
    k = min(int(where * len(raw)), len(raw) - 1)
    if how == "truncate":
        data = raw[:k]
    elif how == "flip":
        data = bytearray(raw)
        data[k] ^= 1 << bit
        data = bytes(data)
    else:
        data = raw[:k] + bytes(len(raw) - k)
    path = folder / f"bad_{how}.{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # an unclosed file handle is a ResourceWarning
        got = outcome(lambda: io.read_tensors(path), str(path), os.path.basename(path))
        if got is not None:
            assert all(isinstance(a, np.ndarray) for a in got.values())
        loaded = outcome(lambda: io.load_file(path), str(path), os.path.basename(path))
    if loaded is not None:
        model, params = loaded
        assert model.num_params() == sum(a.size for a in params.values())
        assert all(np.isfinite(a).all() for a in params.values())


def test_io_refuses_missing_folders_and_unknown_suffixes(tmp_path):
    (tmp_path / "w.txt").write_text("hello")
    (tmp_path / "empty.npz").write_bytes(b"")
    for p in (tmp_path / "nope.npz", tmp_path, tmp_path / "w.txt", tmp_path / "empty.npz"):
        with pytest.raises(FileFormatError, match=os.path.basename(p)):
            io.read_tensors(p)


# ============================================================================ vectors
@settings(max_examples=30, **SETTINGS)
@given(what=st.sampled_from(("manifest_json", "manifest_kind", "case_bytes", "case_missing",
                             "impl")))
def test_vectors_corrupted_suite(tmp_path_factory, what):
    folder = tmp_path_factory.mktemp("vec")
    lc.vectors.export(folder, cells=("rnn",))
    manifest = folder / "manifest.json"
    entry = lc.vectors.load_manifest(folder)["cases"][0]
    impl = lambda config, params, x, state: (np.zeros(1), state)   # noqa: E731
    if what == "manifest_json":
        manifest.write_text("{not json")
    elif what == "manifest_kind":
        manifest.write_text('{"format": "something else"}')
    elif what == "case_bytes":
        f = folder / entry["file"]
        f.write_bytes(f.read_bytes()[:100])
    elif what == "case_missing":
        (folder / entry["file"]).unlink()
    else:
        impl = "not callable"
    try:
        report = lc.vectors.verify(folder, impl)
    except LstmcheckError as exc:
        assert "\n" not in str(exc)
        return
    assert not report.passed   # a broken suite or implementation never passes
