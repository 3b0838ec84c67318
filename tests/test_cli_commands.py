"""Every CLI command through click's CliRunner: results, exit codes and every error path."""
import json
import os
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import lstmcheck as lc
from lstmcheck import studies
from lstmcheck.cli import cli
from lstmcheck.report import style

SMALL = ["--seq-len", "12", "--hidden-size", "6", "--batch", "2"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(r, code=2):
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("lstmcheck: error: ") and "Traceback" not in r.stderr
    return lines[-1]


def hidden(folder):
    return [p for p in os.listdir(folder) if p.startswith(".")]


@pytest.fixture
def small_study(monkeypatch):
    """`lstmcheck report` with one cheap section, so that its CLI paths test in a second."""
    real = studies.default_study
    monkeypatch.setattr(studies, "default_study",
                        lambda **kw: real(**{**kw, "cells": ("rnn", "gru"),
                                             "sections": ("flow", "gates")}))


# ----------------------------------------------------------------------------- report
def test_report_refuses_existing_folder_then_force_replaces(tmp_path, small_study):
    out = tmp_path / "rep"
    r = run("report", "--out", out, *SMALL, "--quiet")
    assert r.exit_code == 0, r.output
    first = (out / "results.json").read_text()
    assert "lstmcheck report" in json.loads(first)["meta"]["command"]
    assert "already exists" in error_line(run("report", "--out", out, *SMALL))
    assert (out / "results.json").read_text() == first
    r = run("report", "--out", out, *SMALL, "--seed", "1", "--force", "--json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "results.json").read_text())["meta"]["seed"] == 1
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True
    assert hidden(tmp_path) == []


def test_ctrl_c_mid_report_keeps_earlier_report(tmp_path, small_study, monkeypatch):
    out = tmp_path / "rep"
    assert run("report", "--out", out, *SMALL, "--quiet").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []
    real_save = style.save_figure

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:   # the first figure is already written when Ctrl-C arrives
            raise KeyboardInterrupt
        return real_save(*a, **k)

    monkeypatch.setattr(style, "save_figure", interrupted)
    r = run("report", "--out", out, *SMALL, "--force")
    assert "interrupted" in error_line(r, 130) and len(calls) == 2
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert hidden(tmp_path) == []
    calls.clear()
    r = run("report", "--out", tmp_path / "new", *SMALL)   # a new folder: nothing appears
    assert r.exit_code == 130 and not (tmp_path / "new").exists() and hidden(tmp_path) == []


def test_report_output_folder_errors(tmp_path, monkeypatch):
    afile = tmp_path / "file"
    afile.write_text("")
    assert "not a folder" in error_line(run("report", "--out", afile / "rep"))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    assert "not an lstmcheck report" in error_line(run("report", "--out", precious, "--force"))
    assert (precious / "notes.txt").read_text() == "keep"
    monkeypatch.setattr(os, "access", lambda *a: False)     # root writes anywhere: simulate
    assert "not writable" in error_line(run("report", "--out", tmp_path / "rep"))


@pytest.mark.parametrize("args, text", [
    (["report", "--hidden-size", "-3"], "must be a positive integer, got -3"),
    (["report", "--seq-len", "0"], "must be a positive integer, got 0"),
    (["probe", "--cell", "lstn"], "'lstn' is not one of"),
    (["gradcheck", "--cell", "cnn"], "'cnn' is not one of"),
    (["gradcheck", "--batch", "-1"], "positive integer"),
    (["gradcheck", "--elements", "none"], "'all' or a positive integer"),
    (["gradcheck", "--cell", "gru", "--variant", "cifg"], "variants apply to LSTM only"),
    (["probe", "--cell", "rnn", "--forget-bias", "1"], "forget_bias applies to LSTM, GRU, DGLSTM and GRIDLSTM"),
    (["probe", "--dtype", "float16"], "'float16' is not one of"),
    (["audit", "no_such_module:fn"], "cannot import 'no_such_module'"),
    (["audit", "os:no_such_function"], "has no attribute"),
    (["vectors", "verify", "missing-folder", "--impl", "os:getcwd"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(args, text):
    assert text in error_line(run(*args))


# ----------------------------------------------------------------------------- gradcheck
def test_gradcheck_passes_with_json(tmp_path):
    r = run("gradcheck", "--cell", "lstm", "--variant", "peephole", "--variant", "cifg",
            "--dtype", "float64", "--dtype", "float32", "--json", tmp_path / "g.json")
    assert r.exit_code == 0, r.output
    assert "4 of 4 checks passed" in r.stdout
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["passed"] and len(data["checks"]) == 4
    assert {c["case"]["dtype"] for c in data["checks"]} == {"float32", "float64"}


def test_gradcheck_planted_bug_exits_1_and_reports(tmp_path, monkeypatch):
    from lstmcheck import check

    real = check.gradcheck

    def with_bug(model, params, x, **kw):
        backward = model.backward

        def wrong(tape, dy, dstate=None, **k):
            g = backward(tape, dy, dstate, **k)
            g["bias_hh_l0"] = g["bias_hh_l0"] * 1.01        # a 1% error in one tensor
            return g

        model.backward = wrong
        return real(model, params, x, **kw)

    monkeypatch.setattr(check, "gradcheck", with_bug)
    r = run("gradcheck", "--cell", "gru", "--out", tmp_path / "rep")
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.stdout and "bias_hh_l0" in r.stdout
    res = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert res["summary"]["passed"] is False
    assert {f["name"] for f in res["summary"]["figures"]} == {"gradcheck_errors", "gradcheck_heatmap"}


# ----------------------------------------------------------------------------- probe
def test_probe_models_writes_report(tmp_path):
    r = run("probe", "--cell", "lstm", "--init", "chrono", *SMALL, "--probe", "flow",
            "--probe", "gates", "--out", tmp_path / "p", "--json", "-", "--quiet")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert set(data["results"]) >= {"gradient_norms", "gate_statistics"}
    figures = sorted(p.name for p in (tmp_path / "p" / "figures").iterdir())
    assert figures == sorted(f"{n}.{e}" for n in ("gradient_flow", "gate_saturation",
                                                  "gate_values", "time_constants")
                             for e in ("png", "svg", "pdf", "csv"))


def test_probe_trained_weights_and_bad_files(tmp_path):
    model = lc.GRU(3, 5)
    params = model.init_params(seed=1)
    np.savez(tmp_path / "w.npz", **params)
    r = run("probe", "--weights", tmp_path / "w.npz", "--seq-len", "15", "--probe", "flow")
    assert r.exit_code == 0, r.output
    assert "GRU from" in r.stdout
    assert error_line(run("probe", "--weights", tmp_path / "missing.npz"))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    assert "corrupt.npz" in error_line(run("probe", "--weights", tmp_path / "corrupt.npz"))
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02garbage")
    assert "corrupt.pt" in error_line(run("probe", "--weights", tmp_path / "corrupt.pt"))
    np.savez(tmp_path / "odd.npz", foo=np.zeros(3))
    assert error_line(run("probe", "--weights", tmp_path / "odd.npz"))


# ----------------------------------------------------------------------------- audit, vectors
IMPL = textwrap.dedent('''
    import lstmcheck as lc

    def oracle(params, x, state):
        m = lc.LSTM(x.shape[2], params["weight_hh_l0"].shape[1])
        y, final, _ = m.forward(params, x, state)
        return y, final

    def off_by_a_bit(params, x, state):
        y, final = oracle(params, x, state)
        return y * 1.001, final

    def verify_oracle(config, params, x, state):
        model, p = lc.layouts.load(config["layout"], params, config["cell"],
                                   **config["layout_options"])
        if config.get("time_reversed"):
            raise NotImplementedError
        y, final, _ = model.forward(p, x, state)
        return y, final

    def verify_wrong(config, params, x, state):
        y, final = verify_oracle(config, params, x, state)
        return y + 1e-3, final
''')


@pytest.fixture
def impl_module(tmp_path, monkeypatch):
    (tmp_path / "cli_test_impl.py").write_text(IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return "cli_test_impl"


def test_audit_callable_pass_and_fail(tmp_path, impl_module):
    r = run("audit", f"{impl_module}:oracle", "--layout", "torch", "--cell", "lstm")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("PASSED")
    r = run("audit", f"{impl_module}:off_by_a_bit", "--layout", "torch", "--cell", "lstm",
            "--out", tmp_path / "a", "--json", tmp_path / "a.json")
    assert r.exit_code == 1 and r.stdout.startswith("FAILED")
    assert "report written to" in r.stderr
    assert json.loads((tmp_path / "a.json").read_text())["passed"] is False
    assert (tmp_path / "a" / "figures" / "audit.png").stat().st_size > 0
    assert "FAILED" in (tmp_path / "a" / "index.html").read_text()


def test_vectors_export_audit_and_verify(tmp_path, impl_module):
    suite = tmp_path / "suite"
    r = run("vectors", "export", suite, "--cell", "rnn", "--json", tmp_path / "m.json")
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["cases"] and (suite / "manifest.json").exists()
    assert "already exists" in error_line(run("vectors", "export", suite, "--cell", "rnn"))
    assert run("vectors", "export", suite, "--cell", "rnn", "--force").exit_code == 0
    case = suite / manifest["cases"][0]["file"]
    r = run("audit", case)
    assert r.exit_code == 0 and r.stdout.startswith("PASSED"), r.output
    (tmp_path / "corrupt.npz").write_bytes(b"garbage")
    assert "corrupt.npz" in error_line(run("audit", tmp_path / "corrupt.npz"))
    (tmp_path / "corrupt.onnx").write_bytes(b"garbage")
    assert error_line(run("audit", tmp_path / "corrupt.onnx"))
    r = run("vectors", "verify", suite, "--impl", f"{impl_module}:verify_oracle")
    assert r.exit_code == 0, r.output
    r = run("vectors", "verify", suite, "--impl", f"{impl_module}:verify_wrong", "--json", "-")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["passed"] is False     # --json - keeps stdout pure JSON
