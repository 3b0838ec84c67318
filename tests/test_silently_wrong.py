"""Issue 13, "silently wrong": inputs that used to give a wrong answer with no word now give the
right answer or a LstmcheckError that names the argument (never a traceback of another type).

One table for the Python API (case, call, expected error class, fragment of its message), the
in-place changes between forward and backward (the tape keeps copies: the gradients stay those
of the forward), the right answers that must still come out, and the CLI-reachable cases
(exit 2, exactly one stderr line).
"""
from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import lstmcheck as lc
from lstmcheck import layouts
from lstmcheck.cli import cli
from lstmcheck.errors import (ConversionError, DTypeError, FileFormatError, LstmcheckError,
                              OptionError, ShapeError)
from lstmcheck.pytest_plugin import assert_matches_oracle, make_case

NAN = float("nan")


# ------------------------------------------------------------------------------ implementations
def _oracle(cell):
    def impl(params, x, state):
        model, p = layouts.load("torch", params, cell)
        y, fin, _ = model.forward(p, x, state)
        return y, fin
    return impl


def complex_y(params, x, state):
    y, fin = _oracle("rnn")(params, x, state)
    return y + 0j, fin                          # the right numbers, in a complex array


def complex_hn(params, x, state):
    y, fin = _oracle("rnn")(params, x, state)
    return y, fin * (1 + 1e-3j)


def lstm_without_cn(params, x, state):
    y, (h, c) = _oracle("lstm")(params, x, state)
    return y, h                                 # h_n alone: c_n was never compared


def lstm_cn_none(params, x, state):
    y, (h, c) = _oracle("lstm")(params, x, state)
    return y, (h, None)


def vectors_impl(config, params, x, state):
    model, p = layouts.load(config["layout"], params, config["cell"], **config["layout_options"])
    y, fin, _ = model.forward(p, x, state)
    return y, fin


def vectors_without_cn(config, params, x, state):
    y, fin = vectors_impl(config, params, x, state)
    return (y, fin[0]) if isinstance(fin, tuple) else (y, fin)


def vectors_complex(config, params, x, state):
    y, fin = vectors_impl(config, params, x, state)
    return y.astype(complex), fin


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sw") / "suite"
    lc.vectors.export(folder, cells=("rnn", "lstm"), seed=0)
    return folder


@pytest.fixture(scope="module")
def unlisted(suite, tmp_path_factory):
    """The suite with one case's sha256 deleted from the manifest (the file itself intact)."""
    folder = tmp_path_factory.mktemp("sw") / "unlisted"
    shutil.copytree(suite, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for e in manifest["cases"]:
        if e["name"] == "rnn_l1_uni":
            del e["sha256"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


RNN, LSTM = lc.RNN(2, 3), lc.LSTM(2, 3)
P_RNN, P_LSTM = RNN.init_params(seed=0), LSTM.init_params(seed=0)
X = lc.tasks.noise(3, 2, 2, seed=1).x


def _tf_tensors():
    return layouts.dump("tf", LSTM, P_LSTM)


def _onnx(cell="lstm"):
    model = LSTM if cell == "lstm" else lc.GRU(2, 3)
    return layouts.dump("onnx", model, model.init_params(seed=0))


def case(id, call, error, fragment):
    return pytest.param(call, error, fragment, id=id)


def audit_rnn(**kw):
    return lambda: lc.audit(_oracle("rnn"), layout="torch", model=RNN, fd=False, **kw)


TABLE = [
    # ------------------------------------------------ tolerances: negative passes all, NaN fails all
    case("audit-negative-rtol", audit_rnn(rtol=-1.0), OptionError, "rtol"),
    case("audit-negative-atol", audit_rnn(atol=-1e-9), OptionError, "atol"),
    case("audit-nan-rtol", audit_rnn(rtol=NAN), OptionError, "rtol"),
    case("audit-nan-atol", audit_rnn(atol=NAN), OptionError, "atol"),
    case("audit-inf-atol", audit_rnn(atol=float("inf")), OptionError, "atol"),
    case("audit-text-rtol", audit_rnn(rtol="1e-9"), OptionError, "rtol"),
    case("audit-bool-atol", audit_rnn(atol=True), OptionError, "atol"),
    case("verify-negative-rtol",
         lambda s: lc.vectors.verify(s, vectors_impl, rtol=-1.0), OptionError, "rtol"),
    case("verify-nan-atol",
         lambda s: lc.vectors.verify(s, vectors_impl, atol=NAN), OptionError, "atol"),
    case("plugin-negative-atol",
         lambda: assert_matches_oracle(_oracle("rnn"), "rnn", input_size=2, hidden_size=3,
                                       fd=False, atol=-1.0), OptionError, "atol"),
    case("plugin-nan-rtol",
         lambda: assert_matches_oracle(_oracle("rnn"), "rnn", input_size=2, hidden_size=3,
                                       fd=False, rtol=NAN), OptionError, "rtol"),
    case("oracle-case-check-negative-rtol",
         lambda: (lambda c: c.check(c.y, c.final_state, rtol=-1.0))(make_case("rnn")),
         OptionError, "rtol"),
    # ------------------------------------------------ complex output, an LSTM without c_n
    case("audit-complex-y",
         lambda: lc.audit(complex_y, layout="torch", model=RNN, fd=False), DTypeError, "y"),
    case("audit-complex-hn",
         lambda: lc.audit(complex_hn, layout="torch", model=RNN, fd=False), DTypeError, "h_n"),
    case("audit-complex-gradient",
         lambda: lc.audit(_oracle("rnn"), layout="torch", model=RNN, fd=False,
                          vjp=lambda p, x, s, dy, ds: {"x": np.zeros(x.shape, complex)}),
         DTypeError, "gradient for x"),
    case("audit-lstm-without-cn",
         lambda: lc.audit(lstm_without_cn, layout="torch", model=LSTM, fd=False),
         ShapeError, "(h_n, c_n)"),
    case("audit-lstm-cn-none",
         lambda: lc.audit(lstm_cn_none, layout="torch", model=LSTM, fd=False),
         ShapeError, "(h_n, c_n)"),
    case("verify-lstm-without-cn",
         lambda s: lc.vectors.verify(s, vectors_without_cn, cases=["lstm_l1_uni"]),
         ShapeError, "(h_n, c_n)"),
    case("verify-complex-y",
         lambda s: lc.vectors.verify(s, vectors_complex, cases=["rnn_l1_uni"]),
         DTypeError, "complex"),
    case("oracle-case-check-without-cn",
         lambda: (lambda c: c.check(c.y, c.final_state[0]))(make_case("lstm")),
         ShapeError, "(h_n, c_n)"),
    case("oracle-case-check-complex",
         lambda: (lambda c: c.check(c.y + 0j))(make_case("rnn")), DTypeError, "complex"),
    # ------------------------------------------------ gradcheck on complex inputs
    case("gradcheck-complex-params",
         lambda: lc.gradcheck(RNN, {k: v + 1j for k, v in P_RNN.items()}, X + 0j),
         DTypeError, "params['weight_ih_l0']"),
    case("gradcheck-complex-h0",
         lambda: lc.gradcheck(RNN, {k: v + 0j for k, v in P_RNN.items()}, X + 0j,
                              np.zeros((1, 2, 3), complex)), DTypeError, "complex"),
    # ------------------------------------------------ NaN options
    case("noise-nan-scale", lambda: lc.tasks.noise(3, 2, 2, scale=NAN), OptionError, "scale"),
    case("noise-inf-scale", lambda: lc.tasks.noise(3, 2, 2, scale=float("inf")), OptionError,
         "scale"),
    case("noise-negative-scale", lambda: lc.tasks.noise(3, 2, 2, scale=-1.0), OptionError,
         "scale"),
    case("noise-text-scale", lambda: lc.tasks.noise(3, 2, 2, scale="big"), OptionError, "scale"),
    case("tf-load-nan-forget-bias",
         lambda: layouts.load("tf", _tf_tensors(), "lstm", forget_bias=NAN), OptionError,
         "forget_bias"),
    case("tf-dump-nan-forget-bias",
         lambda: layouts.dump("tf", LSTM, P_LSTM, forget_bias=NAN), OptionError, "forget_bias"),
    case("tf-options-inf-forget-bias",
         lambda: layouts.options("tf", LSTM, forget_bias=float("inf")), OptionError,
         "forget_bias"),
    # ------------------------------------------------ out-of-range ONNX attributes
    case("onnx-input-forget-2",
         lambda: layouts.load("onnx", _onnx(), "lstm", input_forget=2), ConversionError,
         "input_forget"),
    case("onnx-layout-5",
         lambda: layouts.load("onnx", _onnx(), "lstm", layout=5), ConversionError, "layout"),
    case("onnx-layout-half",
         lambda: layouts.load("onnx", _onnx(), "lstm", layout=0.5), ConversionError, "layout"),
    case("onnx-layout-negative",
         lambda: layouts.load("onnx", _onnx(), "lstm", layout=-1), ConversionError, "layout"),
    case("onnx-linear-before-reset-2",
         lambda: layouts.load("onnx", _onnx("gru"), "gru", linear_before_reset=2),
         ConversionError, "linear_before_reset"),
    case("onnx-hidden-size-fraction",
         lambda: layouts.load("onnx", _onnx(), "lstm", hidden_size=3.5), OptionError,
         "hidden_size"),
    # ------------------------------------------------ a golden vector without its checksum
    case("verify-case-without-sha256",
         lambda s, u: lc.vectors.verify(u, vectors_impl, cases=["rnn_l1_uni"]),
         FileFormatError, "sha256"),
]


@pytest.mark.parametrize("call, error, fragment", TABLE)
def test_refused_with_one_sentence_naming_the_argument(call, error, fragment, suite, unlisted):
    n = call.__code__.co_argcount
    with pytest.raises(LstmcheckError) as info:
        call(*(suite, unlisted)[:n])
    assert isinstance(info.value, error), (type(info.value).__name__, str(info.value))
    text = str(info.value)
    assert fragment in text, text
    assert "\n" not in text and text.endswith(".")


# ------------------------------------------------------------------------------ still right
def test_right_answers_still_come_out(suite):
    good = dict(layout="torch", model=RNN, fd=False)
    assert lc.audit(_oracle("rnn"), **good).passed
    assert lc.audit(_oracle("rnn"), rtol=0, atol=1e-12, **good).passed
    assert lc.audit(_oracle("lstm"), layout="torch", model=LSTM, fd=False).passed
    assert not lc.audit(lambda p, x, s: (lambda y, f: (y + 1e-3, f))(*_oracle("rnn")(p, x, s)),
                        rtol=0.0, atol=0.0, **good).passed          # zero tolerance: exact only
    assert lc.vectors.verify(suite, vectors_impl).passed
    assert lc.vectors.verify(suite, vectors_impl, rtol=1e-10, atol=1e-10).passed
    assert lc.tasks.noise(3, 2, 2, scale=0.0).x.max() == 0.0
    assert np.array_equal(lc.tasks.noise(3, 2, 2, scale=np.float32(2)).x,
                          2 * lc.tasks.noise(3, 2, 2).x)
    tf = layouts.dump("tf", LSTM, P_LSTM, forget_bias=0.5)
    assert layouts.load("tf", tf, "lstm", forget_bias=0.5)[1]["bias_hh_l0"][3] == 0.5
    onnx = _onnx()
    for one in (1, "1", 1.0, True, np.int64(1)):
        assert layouts.load("onnx", onnx, "lstm", input_forget=one)[0].flags.coupled
        assert layouts.load("onnx", onnx, "lstm", layout=one)[0].batch_first
    for zero in (0, "0", 0.0, False):
        m = layouts.load("onnx", onnx, "lstm", input_forget=zero, layout=zero)[0]
        assert not m.flags.coupled and not m.batch_first
    assert layouts.load("onnx", onnx, "lstm", hidden_size=3.0)[0].hidden_size == 3
    assert lc.gradcheck(RNN, P_RNN, X, method="complex").passed   # its own complex step


# ------------------------------------------------------------------------------ forward, then change
def _tape_case(model, batch_first=False):
    model = model.replace(batch_first=True) if batch_first else model
    p = {k: v.copy() for k, v in model.init_params(seed=2).items()}
    x = lc.tasks.noise(4, 2, model.input_size, seed=3).x
    if batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    state = tuple(np.full(s, 0.1) for s in model.state_shapes(2))
    return model, p, x, state if len(state) > 1 else state[0]


def _change_x(p, x, s):
    x += 1.0


def _change_param(p, x, s):
    p["weight_hh_l0"][0, 0] += 1e-9


def _change_h0(p, x, s):
    (s[0] if isinstance(s, tuple) else s)[...] = 0.0


def _change_c0(p, x, s):
    s[1][0, 0, 0] = np.nan


def _fill_x(p, x, s):
    x[:] = x[0, 0, 0]


@pytest.mark.parametrize("model", [LSTM, lc.GRU(2, 3)], ids=["lstm", "gru"])
@pytest.mark.parametrize("change, name", [
    (_change_x, "x"), (_fill_x, "x"), (_change_param, "param"), (_change_h0, "h0"),
    (_change_c0, "c0")], ids=["x+=1", "x-filled", "param", "h0", "c0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
def test_backward_is_that_of_the_forward_whatever_the_caller_changes_in_between(
        model, change, name, batch_first):
    """The tape keeps copies of params, x and the state: an in-place change after forward
    (PyTorch would raise on its version counter) leaves the gradients those of the values the
    forward saw, bit for bit, and a second forward sees the new values."""
    if name == "c0" and model.kind != "lstm":
        pytest.skip("the GRU has no c0")
    m, p, x, s = _tape_case(model, batch_first)
    y, _, tape = m.forward(p, x, s)
    dy = np.ones_like(y)
    before = m.backward(tape, dy)
    change(p, x, s)
    after = m.backward(tape, dy)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before), name
    if name != "c0":                                 # (a NaN c0 is refused by forward)
        _, _, tape2 = m.forward(p, x, s)
        again = m.backward(tape2, dy)
        assert any(not np.array_equal(before[k], again[k]) for k in before)


def test_a_tape_is_unaffected_by_what_the_caller_does_to_its_dict():
    m, p, x, s = _tape_case(LSTM)
    y, _, tape = m.forward(p, x, s)
    dy = np.ones_like(y)
    want = m.backward(tape, dy)
    p["weight_ih_l0"] = np.zeros_like(p["weight_ih_l0"])     # a new array, not a change of one
    del p["bias_hh_l0"]
    got = m.backward(tape, dy)
    assert all(np.array_equal(want[k], got[k]) for k in want)
    again = m.backward(tape, dy)                             # a tape stays usable
    assert all(np.array_equal(want[k], again[k]) for k in want)


def test_the_tape_holds_none_of_the_callers_arrays():
    m, p, x, s = _tape_case(LSTM)
    _, _, tape = m.forward(p, x, s)
    mine = [*p.values(), x, *s]
    assert tape.params is not p
    held = [tape.x, *tape.params.values(), *(lt.xin for lt in tape.layers)]
    assert not any(np.shares_memory(a, b) for a in held for b in mine)
    # run_forward (what the checker calls thousands of times) copies nothing
    _, _, raw = m.run_forward(p, x, s)
    assert raw.x is x and raw.params is p


# ------------------------------------------------------------------------------ the CLI
IMPL = textwrap.dedent('''
    import numpy as np
    from lstmcheck import layouts

    def _run(cell, params, x, state):
        model, p = layouts.load("torch", params, cell)
        y, fin, _ = model.forward(p, x, state)
        return y, fin

    def rnn_complex(params, x, state):
        y, fin = _run("rnn", params, x, state)
        return y + 0j, fin

    def lstm_without_cn(params, x, state):
        y, (h, c) = _run("lstm", params, x, state)
        return y, h

    def verify_without_cn(config, params, x, state):
        model, p = layouts.load(config["layout"], params, config["cell"],
                                **config["layout_options"])
        y, fin, _ = model.forward(p, x, state)
        return (y, fin[0]) if isinstance(fin, tuple) else (y, fin)

    def verify_ok(config, params, x, state):
        model, p = layouts.load(config["layout"], params, config["cell"],
                                **config["layout_options"])
        y, fin, _ = model.forward(p, x, state)
        return y, fin
''')
# A non-terminal stderr gets no progress labels (issue 13): an error is exactly one line there.


def error_line(result, code):
    """The contract of a failed command (as in test_cli_errors): its one error line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == "", result.stdout
    text = result.stderr.splitlines()
    assert len(text) == 1, result.stderr
    assert text[0].startswith("lstmcheck: error: ")
    assert "Traceback" not in result.stderr and "internal error" not in text[0]
    return text[0]


SIZES = ["--input-size", "2", "--hidden-size", "3", "--seq-len", "3", "--batch", "2", "--no-fd"]


@pytest.fixture
def workdir(tmp_path, monkeypatch, suite, unlisted):
    (tmp_path / "sw_impl.py").write_text(IMPL)
    shutil.copytree(suite, tmp_path / "suite")
    shutil.copytree(unlisted, tmp_path / "unlisted")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("args, mention", [
    (["audit", "sw_impl:rnn_complex", "--layout", "torch", "--cell", "rnn", *SIZES], "complex"),
    (["audit", "sw_impl:lstm_without_cn", "--layout", "torch", "--cell", "lstm", *SIZES],
     "(h_n, c_n)"),
    (["vectors", "verify", "suite", "--impl", "sw_impl:verify_without_cn", "--case",
      "lstm_l1_uni"], "(h_n, c_n)"),
    (["vectors", "verify", "unlisted", "--impl", "sw_impl:verify_ok", "--case", "rnn_l1_uni"],
     "sha256"),
], ids=["audit-complex", "audit-lstm-without-cn", "verify-lstm-without-cn",
        "verify-case-without-sha256"])
def test_cli_exit_2_with_one_line(workdir, args, mention):
    result = CliRunner().invoke(cli, args)
    line = error_line(result, 2)
    assert mention in line, line


def test_cli_verify_of_the_intact_suite_still_passes(workdir):
    result = CliRunner().invoke(cli, ["vectors", "verify", "suite", "--impl", "sw_impl:verify_ok",
                                      "--case", "rnn_l1_uni"])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------ part 3: crashes
@pytest.mark.parametrize("call", [
    lambda m: lc.gradcheck(m, P_LSTM, X),
    lambda m: lc.audit(_oracle("lstm"), layout="torch", model=m, fd=False),
    lambda m: lc.probes.gradient_norms(m, P_LSTM, X),
    lambda m: lc.probes.gate_statistics(m, P_LSTM, X),
    lambda m: lc.probes.jacobian_spectrum(m, P_LSTM, X),
    lambda m: lc.probes.lyapunov_spectrum(m, P_LSTM, X),
], ids=["gradcheck", "audit", "gradient_norms", "gate_statistics", "jacobian_spectrum",
        "lyapunov_spectrum"])
@pytest.mark.parametrize("model", ["lstm", None, 3], ids=["str", "None", "int"])
def test_a_string_or_none_where_a_model_goes_is_one_sentence(call, model):
    with pytest.raises(OptionError, match="model") as info:
        call(model)
    text = str(info.value)
    if model is not None or "lstmcheck model" in text:    # audit: None means "no model given"
        assert text.startswith("model must be an lstmcheck model") and \
            type(model).__name__ in text, text
