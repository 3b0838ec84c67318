"""`lstmcheck sweep`: grid files and --param, resume from --out, figures, one-line errors."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import lstmcheck as lc
from lstmcheck.sweep import expand_grid, load_grid, parse_param
from lstmcheck.cli import cli
from lstmcheck.errors import FileFormatError, OptionError

SMALL = ["--param", "hidden_size=6", "--param", "seq_len=12", "--param", "batch=2"]


def _run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("text, want", [
    ("seq_len=10,100", ("seq_len", [10, 100])),
    ("seed=0:3,7", ("seed", [0, 1, 2, 7])),
    ("seed=0:6:2", ("seed", [0, 2, 4])),
    ("forget_bias=none, 1, 2.5", ("forget_bias", [None, 1, 2.5])),
    ("variant=peephole+cifg,vanilla", ("variant", ["peephole+cifg", "vanilla"])),
])
def test_parse_param(text, want):
    assert parse_param(text) == want


@pytest.mark.parametrize("text", ["seq_len", "=1,2", "seq_len="])
def test_parse_param_refuses_malformed_text(text):
    with pytest.raises(OptionError, match="name=v1,v2"):
        parse_param(text)


def test_load_grid_toml_json_and_errors(tmp_path):
    (tmp_path / "g.toml").write_text('[grid]\ncell = ["rnn", "gru"]\nforget_bias = ["none", 1.0]\n')
    assert load_grid(tmp_path / "g.toml") == {"cell": ["rnn", "gru"], "forget_bias": [None, 1.0]}
    (tmp_path / "g.json").write_text('[{"cell": "rnn"}, {"cell": "lstm", "forget_bias": [null, 2]}]')
    grid = load_grid(tmp_path / "g.json")
    assert [p["forget_bias"] for p in expand_grid(grid)] == [None, None, 2.0]
    (tmp_path / "bad.toml").write_text("cell = [rnn\n")
    with pytest.raises(FileFormatError, match="not valid TOML"):
        load_grid(tmp_path / "bad.toml")
    with pytest.raises(FileFormatError, match=".toml or .json"):
        load_grid(tmp_path / "g.yaml")


def test_sweep_command_writes_records_and_figures_and_resumes(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('cell = ["rnn", "gru"]\ninit = "orthogonal"\nspectral_radius = [0.5, 1.5]\n'
                    'seed = [0, 1]\nhidden_size = 99\n')
    out = tmp_path / "run"
    r = _run("sweep", str(grid), *SMALL, "--out", str(out), "--json", "-")
    assert r.exit_code == 0, r.output
    payload = json.loads(r.output[r.output.index("{"):r.output.rindex("}") + 1])
    recs = payload["records"]
    assert len(recs) == 8 and {x["hidden_size"] for x in recs} == {6}    # --param wins
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 8
    figs = sorted(p.name for p in (out / "report" / "figures").glob("*.png"))
    assert figs == ["sweep_decay_rate.png", "sweep_horizon.png", "sweep_phase.png"]
    assert (out / "report" / "index.html").is_file()
    # the same command again: everything read back, nothing appended, same records
    r2 = _run("sweep", str(grid), *SMALL, "--out", str(out), "--json", "-", "--quiet")
    assert r2.exit_code == 0
    assert json.loads(r2.output)["records"] == recs
    assert (out / "results.jsonl").read_text().splitlines() == lines


@pytest.mark.parametrize("args, words", [
    (["--param", "hiden_size=8"], "unknown grid parameter 'hiden_size'"),
    (["--param", "seq_len"], "name=v1,v2"),
    (["--param", "cell=rnn", "--param", "forget_bias=1"], "none of the 1 grid points could run"),
    (["--param", "seed=0", "--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
    (["--param", "seed=0,1", "--x", "rho", "--y", "seed"], "'rho' is not a grid parameter"),
])
def test_sweep_command_errors_are_one_line_and_exit_2(tmp_path, args, words):
    if "--scheduler" in args:
        pytest.importorskip("distributed")
    r = CliRunner().invoke(cli, ["sweep", *SMALL, "--out", str(tmp_path / "o"), "--quiet", *args])
    assert r.exit_code == 2
    err = [line for line in r.output.splitlines() if line.startswith("lstmcheck: error:")]
    assert len(err) == 1 and words in err[0]
