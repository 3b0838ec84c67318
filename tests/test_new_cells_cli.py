"""The clockwork RNN, depth-gated LSTM and Grid LSTM through the CLI (gradcheck, probe, sweep),
the sweep API, golden vectors and the torch layout; a probe of a higher layer of a cell that
takes its lower layer's state is one line, exit 2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmcheck as lc

ROOT = Path(__file__).resolve().parents[1]
NEW = ("cwrnn", "dglstm", "gridlstm")
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
TINY = ["--hidden-size", "4", "--seq-len", "8", "--batch", "2"]


def run_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "lstmcheck", *args], env=ENV, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("cell", NEW)
def test_gradcheck_two_bidirectional_layers(cell, tmp_path):
    out = tmp_path / "check.json"
    r = run_cli(["gradcheck", "--cell", cell, "--num-layers", "2", "--bidirectional",
                 *TINY, "--json", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["verdict"] == "passed" and data["checks"][0]["case"]["cell"] == cell


def test_probe_writes_a_report_for_each_new_cell(tmp_path):
    for cell in NEW:
        rep = tmp_path / cell
        r = run_cli(["probe", "--cell", cell, *TINY, "--out", str(rep)], tmp_path)
        assert r.returncode == 0, r.stderr
        assert f"gradient flow ‖∂L/∂h‖: {cell.upper()}" in r.stdout
        assert list((rep / "figures").glob("*.png"))


def test_probe_of_a_higher_layer_of_a_below_cell_is_one_line(tmp_path):
    r = run_cli(["probe", "--cell", "dglstm", "--num-layers", "2", "--layer", "1", *TINY],
                tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "layer 1 of DGLSTM also takes the layer below's c" in lines[0]


def test_sweep_takes_the_new_cells(tmp_path):
    out = tmp_path / "sw"
    r = run_cli(["sweep", "--param", "cell=cwrnn,dglstm,gridlstm", "--param", "seq_len=6",
                 "--param", "hidden_size=4", "--param", "num_layers=1,2", "--out", str(out)],
                tmp_path)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line)["record"] for line in
               (out / "results.jsonl").read_text().splitlines() if line.strip()]
    assert sorted((rec["cell"], rec["num_layers"]) for rec in records) == \
        sorted((c, n) for c in NEW for n in (1, 2))
    assert all(rec["error"] is None for rec in records)


@pytest.mark.parametrize("cell,opts", [("cwrnn", {"periods": [1, 3]}), ("dglstm", {}),
                                       ("gridlstm", {})])
def test_torch_layout_round_trip(cell, opts):
    model = lc.build(cell, 3, 4, num_layers=2, direction="bidirectional", **opts)
    params = model.init_params(seed=0)
    tensors = lc.layouts.dump("torch", model, params)
    again, p2 = lc.layouts.load("torch", tensors, cell, **lc.layouts.options("torch", model))
    assert again.config() == model.config()
    for n in params:
        np.testing.assert_array_equal(p2[n], params[n])


def test_golden_vectors_hold_the_new_cells_and_verify(tmp_path):
    from lstmcheck import vectors

    manifest = vectors.export(tmp_path / "suite", cells=NEW)
    names = {c["name"] for c in manifest["cases"]}
    assert {"cwrnn_periods_1_3", "cwrnn_periods_l2_bi", "dglstm_l3", "gridlstm_l3_bi",
            "gridlstm_l2_bi"} <= names

    def oracle(config, params, x, state, dy=None, dstate=None):
        model, p = lc.layouts.load(config["layout"], params, config["cell"],
                                   **config["layout_options"])
        y, fin, tape = model.forward(p, x, state)
        return y, fin, model.backward(tape, dy, dstate)

    rep = vectors.verify(tmp_path / "suite", oracle)
    assert rep.passed, rep.to_text()
    assert all(not c["skipped"] and c["checked"] > 5 for c in rep.cases)
