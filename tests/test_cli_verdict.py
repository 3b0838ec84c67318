"""`lstmcheck gradcheck` and `lstmcheck audit` tell an INCONCLUSIVE check from a pass: the verdict
and the report's reason are printed, --json and the report files carry verdict and resolution,
and the exit code stays 0 (nothing disagreed)."""
import importlib
import itertools
import json
import textwrap

import pytest
from click.testing import CliRunner

from lstmcheck import studies
from lstmcheck.check.report import GradcheckReport
from lstmcheck.cli import cli

audit_module = importlib.import_module("lstmcheck.audit")   # the package; lc.audit is the function


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _row(name, passed=True, resolution=0.01):
    return {"name": name, "shape": [3], "method": "central", "passed": passed, "n_checked": 3,
            "n_failed": 0 if passed else 1, "max_abs_err": 1e-9, "max_rel_err": 1e-8,
            "normwise_rel_err": 1e-8, "cosine": 1.0, "tolerance": 1e-6, "resolution": resolution}


def _report(rows, summary):
    return GradcheckReport(passed=all(r["passed"] for r in rows), method="central", tensors=rows,
                           worst=[], summary=summary)


def test_real_taylor_float32_check_is_inconclusive_not_passed(tmp_path):
    """A Taylor test in float32 cannot resolve one wrong element of the ReLU RNN's W_ih: the
    command says INCONCLUSIVE with the report's reason, exit code 0, verdicts in every output."""
    r = run("gradcheck", "--cell", "rnn", "--method", "taylor", "--dtype", "float32",
            "--json", tmp_path / "g.json", "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "g.json").read_text())
    verdicts = {c["case"]["nonlinearity"]: c for c in data["checks"]}
    assert data["verdict"] == "inconclusive" and data["passed"] is True
    relu, tanh = verdicts["relu"], verdicts["tanh"]
    assert relu["verdict"] == "inconclusive" and relu["resolution"] >= 1.0
    assert tanh["verdict"] == "passed" and tanh["resolution"] < 1.0
    assert relu["report"]["verdict"] == "inconclusive"
    lines = r.stdout.splitlines()
    assert any(line.startswith("INCONCLUSIVE") and "RNN relu float32" in line
               and relu["report"]["summary"] in line for line in lines)
    assert any(line.startswith("ok") and "RNN tanh float32" in line for line in lines)
    assert lines[-1] == "1 of 2 checks passed, 1 inconclusive (exit code 0: nothing disagreed)."
    saved = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert saved["summary"]["verdict"] == "inconclusive"
    assert [c["verdict"] for c in saved["results"]["gradcheck"]] == \
        [c["verdict"] for c in data["checks"]]
    assert [c["resolution"] for c in saved["results"]["gradcheck"]] == \
        pytest.approx([c["resolution"] for c in data["checks"]], rel=1e-5)
    assert "INCONCLUSIVE" in (tmp_path / "rep" / "summary.md").read_text()
    assert "INCONCLUSIVE" in (tmp_path / "rep" / "index.html").read_text()


@pytest.fixture
def canned(monkeypatch):
    """run_self_check returns the given GradcheckReports, one per case."""
    def use(*reports):
        def fake(cases, progress=None, **_):
            return list(zip(cases, itertools.cycle(reports)))
        monkeypatch.setattr(studies, "run_self_check", fake)
    return use


def test_inconclusive_report_is_never_printed_as_passed(canned, tmp_path):
    why = "All 9 checked numbers agree. Inconclusive for w: an element wrong by 100% could pass."
    canned(_report([_row("w", resolution=3.0), _row("b")], why))
    r = run("gradcheck", "--cell", "rnn", "--json", "-")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["verdict"] == "inconclusive" and data["checks"][0]["resolution"] == 3.0
    r = run("gradcheck", "--cell", "rnn")
    assert r.exit_code == 0 and "PASSED" not in r.stdout
    assert r.stdout.startswith("INCONCLUSIVE") and why in r.stdout.splitlines()[0]
    assert f"INCONCLUSIVE (central, float64): {why}" in r.stdout     # the report's own text
    assert "0 of 2 checks passed, 2 inconclusive" in r.stdout         # both RNN nonlinearities


def test_a_failure_still_wins_over_inconclusive(canned):
    canned(_report([_row("w", resolution=3.0)], "inconclusive."),
           _report([_row("w", passed=False)], "1 of 1 tensors fail: w."))
    r = run("gradcheck", "--cell", "rnn", "--json", "-")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["verdict"] == "failed" and not data["passed"]
    assert [c["verdict"] for c in data["checks"]] == ["inconclusive", "failed"]


def test_plain_pass_is_unchanged(canned):
    canned(_report([_row("w")], "all agree."), _report([_row("w")], "all agree."))
    r = run("gradcheck", "--cell", "rnn")
    assert r.exit_code == 0 and "INCONCLUSIVE" not in r.stdout
    assert r.stdout.splitlines()[-1] == "2 of 2 checks passed."


# ----------------------------------------------------------------------------- audit
def _audit_report(fd_inconclusive):
    rows = [{"check": "forward", "tensor": "y", "passed": True, "max_abs": 0.0, "max_rel": 0.0,
             "ratio": 0.0, "where": {}},
            {"check": "fd", "tensor": "weight_ih_l0", "passed": True, "max_abs": 1e-9,
             "max_rel": 1e-8, "ratio": 0.1, "where": {}, "resolution": 4.0 if fd_inconclusive
             else 0.01, "inconclusive": fd_inconclusive}]
    return audit_module.AuditReport(target="t", layout="torch", model="LSTM(3, 4)",
                                    dtype="float32", config={}, tolerances={}, rows=rows)


def test_audit_report_verdict_and_resolution():
    rep = _audit_report(True)
    assert rep.passed and rep.verdict == "inconclusive" and rep.resolution == 4.0
    assert rep.to_text().startswith("INCONCLUSIVE") and "inconclusive for weight_ih_l0" in rep.summary
    d = rep.to_dict()
    assert d["verdict"] == "inconclusive" and d["resolution"] == 4.0
    rep = _audit_report(False)
    assert rep.verdict == "passed" and rep.to_text().startswith("PASSED")
    rep.rows[0]["passed"] = False
    assert rep.verdict == "failed" and rep.to_text().startswith("FAILED")


def test_audit_cli_prints_inconclusive_exit_0(monkeypatch, tmp_path):
    monkeypatch.setattr(audit_module, "audit", lambda *a, **k: _audit_report(True))
    dump = tmp_path / "target.npz"
    dump.write_bytes(b"")        # exists: the TARGET is read as a file by the (replaced) audit
    r = run("audit", dump, "--json", tmp_path / "a.json", "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("INCONCLUSIVE") and "PASSED" not in r.stdout
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["verdict"] == "inconclusive" and data["resolution"] == 4.0
    saved = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert saved["summary"]["verdict"] == "inconclusive"
    assert saved["results"]["audit"]["verdict"] == "inconclusive"
    assert "INCONCLUSIVE" in (tmp_path / "rep" / "summary.md").read_text()


IMPL = textwrap.dedent('''
    import lstmcheck as lc

    def _model(params, x):
        return lc.LSTM(x.shape[2], params["weight_hh_l0"].shape[1])

    def oracle(params, x, state):
        y, final, _ = _model(params, x).forward(params, x, state)
        return y, final

    def vjp(params, x, state, dy, dstate):   # with its own gradients the audit runs fd too
        m = _model(params, x)
        return m.backward(m.forward(params, x, state)[2], dy, dstate)

    oracle.vjp = vjp
''')


def test_real_audit_rows_carry_the_fd_resolution(tmp_path, monkeypatch):
    (tmp_path / "verdict_impl.py").write_text(IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    r = run("audit", "verdict_impl:oracle", "--layout", "torch", "--cell", "lstm", "--json", "-")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    fd = [row for row in data["rows"] if row["check"] == "fd"]
    assert fd and all(row["inconclusive"] is False and 0 < row["resolution"] < 1 for row in fd)
    assert data["verdict"] == "passed" and data["resolution"] == max(row["resolution"] for row in fd)
