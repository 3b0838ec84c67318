"""The cell registry is the only list of cells, and a user's cell (module:Class) reaches every CLI
command the built-in cells reach: gradcheck, probe, sweep; unknown cells are one line, exit 2."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lstmcheck"
TINY = ["--hidden-size", "3", "--seq-len", "6", "--batch", "2"]


def _mgu_source() -> str:
    """The MGU class of docs/cells.md, exactly as the docs give it (the python block up to the
    lines that use it)."""
    doc = (ROOT / "docs" / "cells.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    return block[:block.index("\nmodel = ")]


@pytest.fixture(scope="module")
def cellmod(tmp_path_factory):
    """A folder holding the module ``usercells`` with the docs' MGU, and an environment that can
    import it (PYTHONPATH) besides this checkout."""
    folder = tmp_path_factory.mktemp("usercells")
    (folder / "usercells.py").write_text(_mgu_source(), encoding="utf-8")
    paths = [str(folder), str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    env.pop("LSTMCHECK_DEBUG", None)
    return folder, env


def run_cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "lstmcheck", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=600)


# --------------------------------------------------------------------------- a user's cell
def test_gradcheck_user_cell(cellmod, tmp_path):
    folder, env = cellmod
    out = tmp_path / "check.json"
    r = run_cli(["gradcheck", "--cell", "usercells:MGU", "--json", str(out)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["verdict"] == "passed"
    assert [c["case"]["cell"] for c in data["checks"]] == ["usercells:MGU"]
    assert "MGU" in r.stdout and "1 of 1 checks passed" in r.stdout


def test_gradcheck_user_cell_layers_and_directions(cellmod, tmp_path):
    folder, env = cellmod
    for extra in (["--num-layers", "2", "--bidirectional"], ["--direction", "reverse"]):
        r = run_cli(["gradcheck", "--cell", "usercells:MGU", "--seq-len", "3", *extra], env,
                    tmp_path)
        assert r.returncode == 0, (extra, r.stderr)
        assert "1 of 1 checks passed" in r.stdout


def test_probe_user_cell_writes_a_report(cellmod, tmp_path):
    folder, env = cellmod
    rep = tmp_path / "rep"
    r = run_cli(["probe", "--cell", "usercells:MGU", *TINY, "--out", str(rep)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (rep / "index.html").is_file() and (rep / "results.json").is_file()
    results = json.loads((rep / "results.json").read_text())
    assert "MGU" in json.dumps(results)
    assert list((rep / "figures").glob("*.png"))
    assert "gates: MGU" in r.stdout


def test_sweep_user_cell(cellmod, tmp_path):
    folder, env = cellmod
    out = tmp_path / "sw"
    r = run_cli(["sweep", "--param", "cell=usercells:MGU,rnn", "--param", "seq_len=4",
                 "--param", "hidden_size=3", "--out", str(out)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line)["record"] for line in
               (out / "results.jsonl").read_text().splitlines() if line.strip()]
    mine = [rec for rec in records if rec["cell"] == "usercells:MGU"]
    assert len(mine) == 1 and mine[0]["error"] is None


def test_user_cell_from_the_current_folder(cellmod):
    """Like module:callable targets, a module in the current folder is importable."""
    folder, env = cellmod
    env = dict(env, PYTHONPATH=str(ROOT))
    r = run_cli(["gradcheck", "--cell", "usercells:MGU", "--seq-len", "3"], env, folder)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args", [
    ["gradcheck", "--cell", "nosuch"],
    ["gradcheck", "--cell", "nosuchmod:X"],
    ["gradcheck", "--cell", "usercells:Nope"],
    ["gradcheck", "--cell", "os:sep"],
    ["probe", "--cell", "nosuchmod:X"],
    ["audit", "x.npz", "--cell", "nosuch"],
    ["vectors", "export", "suite", "--cell", "usercells:MGU"],
    ["sweep", "--param", "cell=nosuch", "--param", "seq_len=4"],
    ["sweep", "--param", "cell=nosuchmod:X", "--param", "seq_len=4"],
])
def test_unknown_cell_is_one_line_exit_2(cellmod, tmp_path, args):
    folder, env = cellmod
    r = run_cli(args, env, tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcheck: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_cell_message_names_the_registry():
    from lstmcheck.models import registry

    r = subprocess.run([sys.executable, "-m", "lstmcheck", "gradcheck", "--cell", "cnn"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2
    assert "'cnn' is not one of " + ", ".join(map(repr, registry.names())) in r.stderr
    assert "module:Class" in r.stderr


def test_help_lists_the_registered_cells():
    from click.testing import CliRunner

    from lstmcheck.cli import cli
    from lstmcheck.models import registry

    text = CliRunner().invoke(cli, ["probe", "--help"]).output
    assert "|".join(registry.names()) in text and "MODULE:CLASS" in text
    for option in ("--layer", "--direction", "--num-layers", "--bidirectional"):
        assert option in text


# --------------------------------------------------------------------------- layer, direction
def test_probe_a_layer_and_direction_of_a_bidirectional_stack(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "p.json"
    r = run_cli(["probe", "--cell", "lstm", "--num-layers", "2", "--bidirectional", "--layer", "1",
                 "--direction", "reverse", *TINY, "--json", str(out)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "LSTM layer 1 reverse" in r.stdout
    data = json.loads(out.read_text())
    flow = data["results"]["gradient_norms"]
    assert list(flow) == ["LSTM layer 1 reverse"]
    assert flow["LSTM layer 1 reverse"]["meta"]["model"].endswith("layer 1 reverse")
    subjects = data["results"]["settings"]["subjects"]
    assert subjects[0]["probe_layer"] == 1 and subjects[0]["probe_direction"] == "reverse"
    assert subjects[0]["num_layers"] == 2 and subjects[0]["direction"] == "bidirectional"


def test_probe_layer_out_of_range_is_refused(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = run_cli(["probe", "--cell", "gru", "--num-layers", "2", "--layer", "2", *TINY], env,
                tmp_path)
    assert r.returncode == 2 and "layer must be one of 0..1" in r.stderr


def test_probe_subjects_pass_layer_and_direction_to_the_probes():
    import numpy as np

    import lstmcheck as lc
    from lstmcheck import studies

    (s,) = studies.probe_subjects(["gru"], hidden_size=3, seq_len=5, batch=2, num_layers=2,
                                  model_direction="bidirectional", layer=1, direction="reverse")
    assert s.model.num_layers == 2 and s.model.direction == "bidirectional"
    got = lc.probes.gradient_norms(s.model, s.params, s.x, **s.probed)
    want = lc.probes.gradient_norms(s.model, s.params, s.x, layer=1, direction="reverse")
    np.testing.assert_array_equal(got.h_norm_rel, want.h_norm_rel)


# --------------------------------------------------------------------------- the registry is the list
def test_derived_lists_follow_the_registry():
    from lstmcheck import studies, vectors
    from lstmcheck.models import registry
    from lstmcheck.probes.horizon import DEFAULT_CONFIGS
    from lstmcheck.report.style import series_colours
    from lstmcheck.sweep import num_gates

    names = registry.names()
    assert tuple(studies.DEFAULTS["cells"]) == names
    assert [c for c, _ in DEFAULT_CONFIGS if _ == "default"] == list(names)
    assert set(vectors.CELLS) <= set(names)
    assert {c.cell for c in studies.self_check_cases()} == set(names)
    assert len(set(series_colours(names))) == len(names)
    for n in names:
        assert num_gates(n) == registry.build(n, 2, 3).num_gates


def test_sizes_refuse_an_unknown_cell_instead_of_guessing():
    from lstmcheck.errors import OptionError
    from lstmcheck.sweep import memory_estimate

    with pytest.raises(OptionError, match="unknown cell"):
        memory_estimate("cnn", 3, 4, 5, 2)


def test_user_cell_through_the_python_api(cellmod, monkeypatch):
    folder, _ = cellmod
    monkeypatch.syspath_prepend(str(folder))
    from lstmcheck import studies
    from lstmcheck.models import registry
    from lstmcheck.sweep import expand_grid, num_gates

    assert num_gates("usercells:MGU") == 2
    assert registry.display_name("usercells:MGU") == "MGU"
    (case,) = studies.self_check_cases(["usercells:MGU"])
    assert case.options == () and case.model_label == "MGU"
    assert expand_grid({"cell": ["usercells:MGU"]})[0]["cell"] == "usercells:MGU"
    with pytest.raises(Exception, match="variant"):
        studies.self_check_cases(["usercells:MGU"], variants=["cifg"])


def test_a_layout_compares_the_registry_name_not_the_spelling(cellmod, monkeypatch):
    """A user's cell whose name reads like a built-in one is still not what torch.nn holds."""
    folder, _ = cellmod
    monkeypatch.syspath_prepend(str(folder))
    import usercells

    import lstmcheck as lc
    from lstmcheck import layouts
    from lstmcheck.errors import OptionError

    class Impostor(usercells.MGU):
        name = "gru"

    model = lc.Recurrent(Impostor(), 2, 3)
    assert model.kind == "gru"
    with pytest.raises(OptionError, match="holds"):
        layouts.dump("torch", model, model.init_params(0))


ALLOWED = ("models", "layouts")    # the registry and the cells; formats say which cells they hold
# Known remaining place (see selfcheck._builtin_options): the built-in cells' self-check
# variants, until the cells' files declare check_options.
KNOWN = {("studies", "selfcheck.py")}


def cell_lists(source: str, names) -> list:
    """(line, text) of every tuple, list or set with two or more registered cell names as plain
    elements, and of every dict with two or more of them as keys: in code, not in docstrings or
    comments (a usage example may name cells)."""
    import io
    import tokenize

    toks = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT,
                              tokenize.DEDENT)]
    close = {"(": ")", "[": "]", "{": "}"}

    def is_cell(t):
        return t.type == tokenize.STRING and t.string.strip("'\"") in names

    hits = []
    for i, t in enumerate(toks):
        if t.type != tokenize.OP or t.string not in close:
            continue
        depth, elements, keys = 0, 0, 0
        for j in range(i + 1, len(toks)):
            u = toks[j]
            if u.type == tokenize.OP and u.string in close:
                depth += 1
            elif u.type == tokenize.OP and u.string in close.values():
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and is_cell(u) and toks[j - 1].string in (t.string, ","):
                nxt = toks[j + 1].string
                elements += nxt in (",", close[t.string])
                keys += nxt == ":" and t.string == "{"
        if elements >= 2 or keys >= 2:
            hits.append((t.start[0], source.splitlines()[t.start[0] - 1].strip()))
    return hits


def test_no_hard_coded_cell_lists_outside_models_and_layouts():
    from lstmcheck.models import registry

    names = set(registry.names())
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).parts
        if rel[0] in ALLOWED or tuple(rel) in KNOWN:
            continue
        for line, text in cell_lists(path.read_text(encoding="utf-8"), names):
            found.append(f"{'/'.join(rel)}:{line}: {text}")
    assert not found, "cells listed outside the registry:\n" + "\n".join(found)


@pytest.mark.parametrize("text, hit", [
    ('CELLS = ("rnn", "lstm", "gru")', True),
    ("x = ['lstm', 'gru']", True),
    ('GATES = {"rnn": 1, "gru": 3, "lstm": 4}', True),
    ('per_cell = {"rnn": [1], "lstm": [2]}', True),
    ('cells = ("lstm",)', False),
    ('"""lc.sweep({"cell": ["lstm", "gru"]})"""', False),
    ('# CELLS = ("rnn", "lstm")', False),
    ('if cell == "lstm": pass', False),
])
def test_the_cell_list_finder(text, hit):
    assert bool(cell_lists(text + "\n", {"rnn", "lstm", "gru"})) is hit


@pytest.mark.parametrize("command", [
    ["probe", "--cell", "brokencells:Broken", *TINY],
    ["gradcheck", "--cell", "brokencells:Broken", "--seq-len", "3"],
    ["sweep", "--param", "cell=brokencells:Broken", "--param", "seq_len=4",
     "--param", "hidden_size=3"],
    ["sweep", "--param", "cell=brokencells:Broken", "--param", "seq_len=4",
     "--param", "hidden_size=3", "--param", "seed=0:2", "--workers", "2"],   # in worker processes
])
def test_a_user_cell_that_raises_is_the_users_error(cellmod, tmp_path, command):
    """An exception from the user's own cell is exit 2 and one line naming where it came from,
    not an 'internal error, please report it' (exit 3) that blames lstmcheck."""
    folder, env = cellmod
    (tmp_path / "brokencells.py").write_text(
        "from usercells import MGU\n\n\nclass Broken(MGU):\n"
        "    def step(self, xp, p, u, state):\n"
        "        raise ValueError('my bug')\n", encoding="utf-8")
    env = dict(env, PYTHONPATH=os.pathsep.join([str(tmp_path), env["PYTHONPATH"]]))
    r = run_cli([*command, "--out", str(tmp_path / "out")], env, tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "your code raised ValueError: my bug (brokencells.py:6, in step)" in lines[0]


@pytest.mark.parametrize("workers", [None, 2])
def test_a_raising_user_cell_in_lc_sweep_is_a_function_error(cellmod, tmp_path, monkeypatch,
                                                              workers):
    """lc.sweep names the user's code in one FunctionError, here and in worker processes (whose
    traceback never reaches this process: the sentence is made where it is raised)."""
    import lstmcheck as lc
    from lstmcheck.errors import FunctionError
    folder, env = cellmod
    (tmp_path / "brokencells2.py").write_text(
        "from usercells import MGU\n\n\nclass Broken(MGU):\n"
        "    def step(self, xp, p, u, state):\n"
        "        raise ValueError('my bug')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), env["PYTHONPATH"]]))
    with pytest.raises(FunctionError,
                       match=r"your code raised ValueError: my bug \(brokencells2.py:6, in step\)"):
        lc.sweep({"cell": ["brokencells2:Broken"], "seq_len": [4], "hidden_size": [3],
                  "seed": [0, 1]}, workers=workers, out=str(tmp_path / "out"))
