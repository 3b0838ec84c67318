"""Issue 13, "crashes that should be one sentence" and "unclear messages": wrong-typed options of
every public function, huge sizes, paths that are files, a user's measure that raises, unknown
keywords; the CLI's exit 2 with exactly one stderr line; real signals, read-only folders,
concurrent runs.

Each case gives the right answer or a LstmcheckError whose message names the argument; a CLI
case exits 2 with one line on stderr (no progress label before it, no traceback), the user's
earlier files byte-identical and no temporary folder left.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings, strategies as st

import lstmcheck as lc
from lstmcheck import layouts, validate
from lstmcheck.cli import cli
from lstmcheck.errors import FileFormatError, FunctionError, LstmcheckError, OptionError
from lstmcheck.models import init as init_module
from test_cli_errors import REPO, error_line, snapshot

NAN = float("nan")


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def small():
    model = lc.LSTM(3, 4)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    return model, model.init_params(0), x


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("r2") / "suite"
    lc.vectors.export(folder, cells=("rnn",), seed=0)
    return folder


def vectors_impl(config, params, x, state):
    model, p = layouts.load(config["layout"], params, config["cell"], **config["layout_options"])
    y, fin, _ = model.forward(p, x, state)
    return y, fin


def torch_lstm(params, x, state):
    model, p = layouts.load("torch", params, "lstm")
    y, fin, _ = model.forward(p, x, state)
    return y, fin


def boom(study):
    raise ZeroDivisionError("my measure divides by zero")


def temps(folder: Path) -> list:
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------ the Python table
# (id, call(model, params, x, suite, tmp), fragment the message must hold: the argument's name)
def _probe(name, **kw):
    fn = getattr(lc.probes, name)
    return lambda m, p, x, s, t: fn(m, p, x, **kw)


API = [
    ("shares-text", _probe("gradient_norms", shares="ab"), "shares"),
    ("shares-nan", _probe("gradient_norms", shares=(NAN,)), "shares"),
    ("shares-empty", _probe("gradient_norms", shares=()), "shares"),
    ("tol-text", _probe("gradient_norms", tol="a"), "tol"),
    ("tol-negative", _probe("gradient_norms", tol=-1.0), "tol"),
    ("tol-nan", _probe("gradient_norms", tol=NAN), "tol"),
    ("clip_norm-text", _probe("gradient_norms", clip_norm="1"), "clip_norm"),
    ("clip_norm-zero", _probe("gradient_norms", clip_norm=0), "clip_norm"),
    ("flow-seed-negative", _probe("gradient_norms", seed=-1), "seed"),
    ("lyapunov-seed-negative", _probe("lyapunov_spectrum", seed=-1), "seed"),
    ("lyapunov-seed-text", _probe("lyapunov_spectrum", seed="a"), "seed"),
    ("lyapunov-chunk-float", _probe("lyapunov_spectrum", chunk=2.5), "chunk"),
    ("jacobian-chunk-text", _probe("jacobian_spectrum", chunk="a"), "chunk"),
    ("jacobian-chunk-zero", _probe("jacobian_spectrum", chunk=0), "chunk"),
    ("perturbation-nan", _probe("lyapunov_spectrum", perturbation=NAN), "perturbation"),
    ("perturbation-negative", _probe("lyapunov_spectrum", perturbation=-1e-7), "perturbation"),
    ("perturbation-text", _probe("lyapunov_spectrum", perturbation="a"), "perturbation"),
    ("gates-low-text", _probe("gate_statistics", low="a"), "low"),
    ("gates-unknown-keyword", _probe("gate_statistics", threshold=0.1), "threshold"),
    ("horizon-share", lambda m, p, x, s, t: lc.probes.horizon_study((5,), share="a"), "share"),
    ("horizon-seq_lens", lambda m, p, x, s, t: lc.probes.horizon_study(2.5), "seq_lens"),
    ("noise-batch-float", lambda m, p, x, s, t: lc.tasks.noise(5, 2.5, 3), "batch"),
    ("noise-seed-negative", lambda m, p, x, s, t: lc.tasks.noise(5, 2, 3, seed=-1), "seed"),
    ("adding-seed-text", lambda m, p, x, s, t: lc.tasks.adding(5, 2, seed="a"), "seed"),
    ("make-unknown-option", lambda m, p, x, s, t: lc.tasks.make("adding", 5, 2, foo=1), "foo"),
    ("make-task-list", lambda m, p, x, s, t: lc.tasks.make(["adding"], 5, 2), "task"),
    ("noise-misspelt", lambda m, p, x, s, t: lc.tasks.noise(5, 2, 3, sed=1), "sed"),
    ("audit-unknown-keyword", lambda m, p, x, s, t: lc.audit(torch_lstm, input_size=3),
     "input_size"),
    ("audit-seq_len-float", lambda m, p, x, s, t: lc.audit(torch_lstm, layout="torch", model=m,
                                                            seq_len=2.5), "seq_len"),
    ("audit-batch-float", lambda m, p, x, s, t: lc.audit(torch_lstm, layout="torch", model=m,
                                                          batch=2.5), "batch"),
    ("audit-fd_elements-text", lambda m, p, x, s, t: lc.audit(torch_lstm, layout="torch",
                                                               model=m, fd_elements="a"),
     "fd_elements"),
    ("audit-options-list", lambda m, p, x, s, t: lc.audit(torch_lstm, layout="torch",
                                                           cell="lstm", options=[1]), "options"),
    ("verify-cases-int", lambda m, p, x, s, t: lc.vectors.verify(s, vectors_impl, cases=3),
     "cases"),
    ("verify-unknown-keyword", lambda m, p, x, s, t: lc.vectors.verify(s, vectors_impl,
                                                                        tol=1), "tol"),
    ("export-seed-negative", lambda m, p, x, s, t: lc.vectors.export(t / "e", seed=-1), "seed"),
    ("export-cells-int", lambda m, p, x, s, t: lc.vectors.export(t / "e", cells=3), "cells"),
    ("sweep-unknown-keyword", lambda m, p, x, s, t: lc.sweep({"cell": "rnn"}, outt="x"), "outt"),
    ("init-huge", lambda m, p, x, s, t: lc.LSTM(100000, 100000).init_params(0), "parameters"),
    ("init-huge-rnn", lambda m, p, x, s, t: lc.RNN(3, 10**6).init_params(0), "parameters"),
    ("gradcheck-missing", lambda m, p, x, s, t: lc.gradcheck(m), "params"),
]


@pytest.mark.parametrize("call, fragment", [pytest.param(c, f, id=i) for i, c, f in API])
def test_api_table(small, suite, tmp_path, call, fragment):
    model, params, x = small
    with pytest.raises(LstmcheckError) as info:
        call(model, params, x, suite, tmp_path)
    message = str(info.value)
    assert fragment in message and message.endswith((".", "?", ")")), message
    assert "\n" not in message
    assert temps(tmp_path) == []     # nothing half-made (export refuses before its temp folder)


# ------------------------------------------------------------------------------ right answers
def test_a_single_case_name_is_one_case_not_its_letters(suite):
    r = lc.vectors.verify(suite, vectors_impl, cases="rnn_l1_uni")
    assert [c["name"] for c in r.cases] == ["rnn_l1_uni"] and r.passed
    both = lc.vectors.verify(suite, vectors_impl, cases=("rnn_l1_uni", "rnn_l2_bi"))
    assert [c["name"] for c in both.cases] == ["rnn_l1_uni", "rnn_l2_bi"]


def test_a_single_cell_name_exports_that_cell(tmp_path):
    manifest = lc.vectors.export(tmp_path / "s", cells="rnn")
    assert {c["cell"] for c in manifest["cases"]} == {"rnn"}


def test_a_single_share_is_one_share(small):
    model, params, x = small
    one = lc.probes.gradient_norms(model, params, x, shares=0.9)
    two = lc.probes.gradient_norms(model, params, x, shares=(0.9,))
    assert list(one.horizon) == [0.9] and one.horizon == two.horizon


def test_init_params_cap_is_counted_before_any_draw(monkeypatch):
    """Just above the cap is refused naming the count; at it, the model is drawn."""
    model = lc.RNN(3, 4)
    n = sum(int(np.prod(s)) for s in model.param_shapes().values())
    monkeypatch.setattr(init_module, "MAX_PARAM_ELEMENTS", n - 1)
    with pytest.raises(OptionError, match=f"{n:,} parameters"):
        model.init_params(0)
    monkeypatch.setattr(init_module, "MAX_PARAM_ELEMENTS", n)
    assert set(model.init_params(0)) == set(model.param_names)


def test_a_sweep_measure_that_raises_is_one_sentence_naming_it(tmp_path):
    with pytest.raises(FunctionError, match=r"the measure boom raised ZeroDivisionError: my "
                                            r"measure divides by zero \(at the grid point "):
        lc.sweep({"cell": "rnn", "seq_len": 5}, boom, out=tmp_path / "sw")
    # nothing was recorded for the failed point: a fixed measure reruns it
    assert (tmp_path / "sw" / "results.jsonl").read_text() == ""


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_paths_that_are_files(suite, tmp_path, where):
    f = tmp_path / "afile"
    f.write_text("hi")
    path = f if where == "file" else f / "x"
    with pytest.raises(FileFormatError, match=str(f)):
        lc.vectors.verify(path, vectors_impl)
    with pytest.raises(OptionError, match=str(f)):
        lc.sweep({"cell": "rnn", "seq_len": 5}, out=path)
    with pytest.raises(LstmcheckError, match=str(f)):
        lc.vectors.export(path)
    assert f.read_text() == "hi" and temps(tmp_path) == []


# ------------------------------------------------------------------------------ property-based
JUNK = st.one_of(st.text(max_size=3), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-5, 0), st.booleans(), st.lists(st.integers(), max_size=2),
                 st.just(np.array([1.0, 2.0])), st.just({"a": 1}))
# (function, the option, values that must pass)
OPTIONS = [(lc.probes.gradient_norms, "tol", 0.5), (lc.probes.gradient_norms, "clip_norm", 1.0),
           (lc.probes.gradient_norms, "seed", 3), (lc.probes.gradient_norms, "shares", (0.5,)),
           (lc.probes.jacobian_spectrum, "chunk", 2), (lc.probes.lyapunov_spectrum, "chunk", 2),
           (lc.probes.lyapunov_spectrum, "perturbation", 1e-6),
           (lc.probes.lyapunov_spectrum, "seed", 1), (lc.probes.gate_statistics, "low", 0.1)]


@pytest.mark.parametrize("fn, option, good", OPTIONS, ids=[f"{f.__name__}-{o}" for f, o, _ in
                                                            OPTIONS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JUNK)
def test_any_value_of_a_probe_option_is_an_answer_or_a_sentence_naming_it(small, fn, option,
                                                                            good, value):
    model, params, x = small
    try:
        fn(model, params, x, **{option: value})
    except LstmcheckError as exc:
        assert option in str(exc), str(exc)
    fn(model, params, x, **{option: good})     # and a good value still gives an answer


@settings(max_examples=40, deadline=None)
@given(value=JUNK, name=st.sampled_from(["seq_len", "batch", "input_size", "seed", "scale"]))
def test_any_value_of_a_task_option_is_an_answer_or_a_sentence_naming_it(value, name):
    args = {"seq_len": 5, "batch": 2, "input_size": 3}
    kw = {name: value}
    try:
        if name in args:
            args = {**args, **kw}
            kw = {}
        lc.tasks.noise(args["seq_len"], args["batch"], args["input_size"], **kw)
    except LstmcheckError as exc:
        assert name in str(exc), str(exc)


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(JUNK, st.integers(), st.floats(), st.none()))
@example(value=-(2**63) - 1)     # beyond int64: np.isfinite raised TypeError on it
@example(value=10**400)          # beyond float range: no finite real
@example(value=2**53 + 1)        # a real option takes it as the nearest float
def test_validate_integer_and_real_either_return_the_value_or_name_it(value):
    for check in (lambda v: validate.integer("width", v), lambda v: validate.real("width", v),
                  lambda v: validate.seed(v, "width")):
        try:
            out = check(value)
        except OptionError as exc:
            assert str(exc).startswith("width must be") and repr(value)[:20] in str(exc)
        else:
            assert isinstance(out, (int, float))
            assert out == (float(value) if isinstance(out, float) else value)


# ------------------------------------------------------------------------------ files read back
def _rewrite_manifest(src: Path, dst: Path, change) -> Path:
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    change(m["cases"][0])
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


MANIFEST = [("missing-file", lambda e: e.pop("file"), "'file'"),
            ("missing-seq_len", lambda e: e.pop("seq_len"), "'seq_len'"),
            ("file-int", lambda e: e.update(file=3), "file = 3"),
            ("file-path", lambda e: e.update(file="../x.npz"), "'../x.npz'"),
            ("options-list", lambda e: e.update(layout_options=[1]), "layout_options"),
            ("config-text", lambda e: e.update(config="rnn"), "config"),
            ("name-int", lambda e: e.update(name=7), "name = 7"),
            ("seq_len-float", lambda e: e.update(seq_len=4.0), "seq_len"),
            ("time_reversed-text", lambda e: e.update(time_reversed="no"), "time_reversed")]


@pytest.mark.parametrize("change, fragment", [pytest.param(c, f, id=i) for i, c, f in MANIFEST])
def test_manifest_entries_with_missing_or_wrong_typed_fields(suite, tmp_path, change, fragment):
    folder = _rewrite_manifest(suite, tmp_path / "bad", change)
    with pytest.raises(FileFormatError) as info:
        lc.vectors.verify(folder, vectors_impl)
    assert fragment in str(info.value) and "manifest.json" in str(info.value)
    r = CliRunner().invoke(cli, ["vectors", "verify", str(folder), "--impl",
                                 "test_hardening_round2:vectors_impl"])
    assert fragment in error_line(r, 2)


@pytest.mark.parametrize("key, value", [("options", [1, 2]), ("cell", 3), ("layout", ["torch"]),
                                        ("time_reversed", "yes")])
def test_a_dump_whose_meta_fields_have_the_wrong_type(suite, tmp_path, key, value):
    d = dict(np.load(suite / "rnn_l1_uni.npz"))
    meta = json.loads(str(d.pop("meta")))
    meta[key] = value
    np.savez(tmp_path / "d.npz", meta=np.array(json.dumps(meta)), **d)
    with pytest.raises(FileFormatError, match=f"meta '{key}' must be"):
        lc.audit(tmp_path / "d.npz")
    r = CliRunner().invoke(cli, ["audit", str(tmp_path / "d.npz")])
    assert f"meta '{key}'" in error_line(r, 2)


# ------------------------------------------------------------------------------ the CLI table
IMPL = textwrap.dedent('''
    import numpy as np
    def raises(*args, **kwargs):
        raise ZeroDivisionError("my kernel")
''')


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("hi")
    (tmp_path / "r2impl.py").write_text(IMPL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


CLI = [  # (args, fragment of the error line); all exit 2 with one stderr line
    (["audit", "r2impl:raises", "--layout", "torch", "--cell", "lstm"], "raised ZeroDivisionError"),
    (["audit", "afile"], "afile"),
    (["vectors", "verify", "SUITE", "--impl", "r2impl:raises"], "raised ZeroDivisionError"),
    (["vectors", "export", "afile/x"], "afile is not a folder"),
    (["sweep", "--param", "cell=rnn", "--param", "seq_len=5", "--out", "afile/x"], "afile"),
    (["sweep", "--param", "cell=rnn", "--param", "seq_len=5", "--out", "afile"], "afile"),
    (["sweep", "--param", "cell=rnn", "--param", "seq_len=5", "--param", "batch=2.5"], "batch"),
    (["probe", "--cell", "rnn", "--seq-len", "5", "--task", "bogus"], "bogus"),
]


@pytest.mark.parametrize("args, fragment", CLI, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in
                                                    enumerate(CLI)])
def test_cli_table(scratch, suite, args, fragment):
    args = [str(suite) if a == "SUITE" else a for a in args]
    before = snapshot(scratch)
    r = CliRunner().invoke(cli, args)
    assert fragment in error_line(r, 2)
    assert snapshot(scratch) == before and temps(scratch) == []


def test_sweep_refuses_a_foreign_report_folder_and_keeps_it(scratch):
    (scratch / "sw" / "report").mkdir(parents=True)
    (scratch / "sw" / "report" / "index.html").write_text("mine")
    r = CliRunner().invoke(cli, ["sweep", "--param", "cell=rnn", "--param", "seq_len=5",
                                 "--out", "sw"])
    assert "refusing to replace" in error_line(r, 2)
    assert (scratch / "sw" / "report" / "index.html").read_text() == "mine"
    assert temps(scratch / "sw") == []


# ------------------------------------------------------------------------------ real processes
def env(**extra):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                         os.environ.get("PYTHONPATH", "")]),
            **extra}


def lstmcheck(args, cwd, prefix=(), **extra):
    return subprocess.run([*prefix, sys.executable, "-m", "lstmcheck", *args], cwd=cwd,
                          env=env(**extra), capture_output=True, text=True, timeout=300)


SETPRIV = shutil.which("setpriv")
# root keeps uid 0 but loses every capability on exec, so it obeys the permission bits
NO_OVERRIDE = (SETPRIV, "--inh-caps=-all", "--bounding-set=-all")


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                    reason="needs root and setpriv to drop root's override capabilities")
@pytest.mark.parametrize("args", [["vectors", "export", "ro/x", "--cell", "rnn"],
                                  ["sweep", "--param", "cell=rnn", "--param", "seq_len=5",
                                   "--out", "ro/x"],
                                  ["gradcheck", "--cell", "rnn", "--seq-len", "2", "--out",
                                   "ro/x"]], ids=["export", "sweep", "gradcheck"])
def test_read_only_folders_without_roots_override(tmp_path, args):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    (tmp_path / "ro").chmod(0o555)
    try:
        proc = lstmcheck(args, tmp_path, prefix=NO_OVERRIDE)
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "not writable" in lines[0] and "ro" in lines[0], proc.stderr
    assert snapshot(tmp_path) == before and temps(tmp_path / "ro") == []


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                    reason="needs root and setpriv to drop root's override capabilities")
def test_force_replaces_a_suite_holding_a_read_only_subfolder_and_leaves_no_temp(tmp_path):
    """The earlier suite (lstmcheck's, so --force may replace it) gained a chmod 555 folder:
    the replaced suite is deleted in full instead of lingering as a hidden temporary folder."""
    lc.vectors.export(tmp_path / "suite", cells=("rnn",))
    locked = tmp_path / "suite" / "locked"
    (locked / "deeper").mkdir(parents=True)
    (locked / "deeper" / "f").write_text("x")
    (locked / "deeper").chmod(0o555)
    locked.chmod(0o555)
    proc = lstmcheck(["vectors", "export", "suite", "--cell", "rnn", "--force"], tmp_path,
                     prefix=NO_OVERRIDE)
    assert proc.returncode == 0, proc.stderr
    assert temps(tmp_path) == [] and not locked.exists()
    assert lc.vectors.verify(tmp_path / "suite", vectors_impl).passed


def test_real_sigint_between_the_renames_of_vectors_export(tmp_path):
    """SIGINT from outside while the swap is held between its renames: the swap finishes (the
    signals wait for it), exit 130, one line saying the suite was written in full."""
    lc.vectors.export(tmp_path / "suite", cells=("rnn",), seed=1)
    go = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-m", "lstmcheck", "vectors", "export", "suite",
                             "--force", "--cell", "rnn", "--seed", "2"], cwd=tmp_path,
                            env=env(LSTMCHECK_TEST_FAULT=f"no-exchange,between=wait:{go}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3000):       # bounds a hang only; nothing is timed
            if Path(f"{go}.reached").exists() or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert Path(f"{go}.reached").exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        go.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.splitlines() == [f"lstmcheck: error: interrupted after {tmp_path / 'suite'} was "
                                f"written in full; nothing half-written was left behind."]
    assert lc.vectors.load_manifest(tmp_path / "suite")["seed"] == 2
    assert temps(tmp_path) == []


def test_concurrent_exports_to_one_folder(tmp_path):
    """Two runs at once: each ends with exit 0 or one sentence (exit 2), and the folder holds one
    complete suite, one of the two, with no temporary folder left."""
    lc.vectors.export(tmp_path / "suite", cells=("rnn",), seed=0)
    procs = [subprocess.Popen([sys.executable, "-m", "lstmcheck", "vectors", "export", "suite",
                               "--force", "--cell", "rnn", "--seed", str(s), "--quiet"],
                              cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    for code, err in results:
        assert code in (0, 2), err
        assert len(err.splitlines()) == (1 if code == 2 else 0), err
    seed = lc.vectors.load_manifest(tmp_path / "suite")["seed"]
    assert seed in [s for s, (code, _) in zip((1, 2), results) if code == 0]
    assert lc.vectors.verify(tmp_path / "suite", vectors_impl).passed
    assert temps(tmp_path) == []


def test_an_error_inside_the_writing_names_the_users_folder_not_the_temporary_one(tmp_path,
                                                                                   monkeypatch):
    from lstmcheck.report import writer
    from test_cli_errors import small_study

    small_study(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)

    def refuse(path, text):
        raise FileFormatError(f"{path} cannot hold this text.")

    monkeypatch.setattr(writer, "write_text", refuse)
    r = CliRunner().invoke(cli, ["report", "--out", "rep"])
    line = error_line(r, 2)
    assert f"error: {tmp_path / 'rep'}{os.sep}" in line and "cannot hold" in line, line
    assert ".partial-" not in line and temps(tmp_path) == []
