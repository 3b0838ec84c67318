"""Same seed, same backend -> bit-identical results: models, init, checker reports, probes, tasks,
golden vectors and CLI report folders; twice in one process and once in a fresh subprocess.

CLI folders: `lstmcheck probe` writes no timestamps, durations or environment fields into
results.json or summary.md, so both are compared byte for byte, unfiltered."""
import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import lstmcheck as lc
from lstmcheck.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _digest(obj) -> str:
    """A stable hash of nested dicts/lists/arrays, exact to the bit."""
    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(str(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for a in v:
                feed(a)
        elif isinstance(v, np.ndarray):
            h.update(str((v.dtype.str, v.shape)).encode() + np.ascontiguousarray(v).tobytes())
        elif isinstance(v, (float, np.floating)):
            h.update(np.float64(v).tobytes())
        else:
            h.update(repr(v).encode())
    feed(obj)
    return h.hexdigest()


def _everything():
    """One digest per capability, all from seed 0."""
    out = {}
    for cell in ("LSTM", "GRU", "RNN"):
        m = getattr(lc, cell)(3, 4, num_layers=2, bidirectional=True)
        p = m.init_params(seed=0, scheme="orthogonal")
        x = lc.tasks.noise(7, 2, 3, seed=0).x
        y, state, tape = m.forward(p, x)
        g = m.backward(tape, np.cos(y))
        out[f"{cell}.init"] = _digest(p)
        out[f"{cell}.forward_backward"] = _digest([y, state, g])
    m = lc.LSTM(3, 4)
    p = m.init_params(seed=0)
    x = lc.tasks.noise(30, 2, 3, seed=0).x
    for method in ("auto", "central", "directional", "taylor"):
        r = lc.gradcheck(m, p, x[:6], method=method, seed=0)
        out[f"gradcheck.{method}"] = _digest(r.to_dict())
    out["probe.flow"] = _digest(lc.probes.gradient_norms(m, p, x).to_dict())
    out["probe.spectrum"] = _digest(lc.probes.jacobian_spectrum(m, p, x).to_dict())
    out["probe.lyapunov"] = _digest(lc.probes.lyapunov_spectrum(m, p, x).to_dict())
    out["probe.gates"] = _digest(lc.probes.gate_statistics(m, p, x).to_dict())
    for task in ("noise", "adding", "copy_memory", "temporal_order"):
        size = 4 if task == "noise" else None
        out[f"task.{task}"] = _digest(list(lc.tasks.make(task, 40, 3, input_size=size, seed=5)))
    return out


@pytest.fixture(scope="module")
def first():
    return _everything()


def test_twice_in_one_process(first):
    second = _everything()
    assert [k for k in first if first[k] != second[k]] == []


def _clean_env():
    """A bare environment, but the BLAS's own settings kept: OPENBLAS_CORETYPE (set on some
    machines) picks another kernel, and a different kernel rounds differently."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "MKL_", "GOTO"))}
    # and the same kernel choices (the suite's own cache folder, see conftest.py): a choice made
    # afresh could be the other of two near-equal candidates, which rounds differently
    env["LSTMCHECK_CACHE_DIR"] = os.environ["LSTMCHECK_CACHE_DIR"]
    env.update({"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"})
    return env


def test_in_a_fresh_subprocess(first):
    code = ("import pickle, sys; sys.path.insert(0, 'tests'); import test_determinism as t; "
            "sys.stdout.buffer.write(pickle.dumps(t._everything()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True,
                         env=_clean_env())
    other = pickle.loads(out.stdout)
    assert [k for k in first if first[k] != other[k]] == []


def test_seed_matters(first):
    """The digests are not constants: another seed changes them (so the tests above can fail)."""
    m = lc.LSTM(3, 4)
    assert _digest(m.init_params(seed=1)) != _digest(m.init_params(seed=0))
    x = lc.tasks.noise(30, 2, 3, seed=0).x
    a = lc.probes.lyapunov_spectrum(m, m.init_params(seed=0), x, seed=0).to_dict()
    b = lc.probes.lyapunov_spectrum(m, m.init_params(seed=0), x, seed=1).to_dict()
    assert _digest(a) != _digest(b)


def test_check_gradients_report_is_deterministic():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    p = {"w": rng.standard_normal(5)}
    fn = lambda q: float(np.tanh(q["w"]) @ A @ np.tanh(q["w"]))  # noqa: E731
    g = {"w": (1 - np.tanh(p["w"]) ** 2) * ((A + A.T) @ np.tanh(p["w"]))}
    g["w"][2] *= 1 + 1e-6
    for method in ("auto", "central", "richardson", "complex", "directional", "taylor"):
        a, b = (lc.check_gradients(fn, p, g, method=method, seed=3).to_dict() for _ in range(2))
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), method


def test_vectors_export_is_byte_identical(tmp_path):
    digests = []
    for k in range(2):
        folder = tmp_path / f"v{k}"
        lc.vectors.export(folder, cells=("lstm",), seed=0)
        digests.append({p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(folder.rglob("*")) if p.is_file()})
    assert digests[0] == digests[1] and digests[0]


def _folder(path):
    return ((path / "results.json").read_bytes(), (path / "summary.md").read_bytes(),
            sorted(p.name for p in (path / "figures").iterdir()))


@pytest.mark.parametrize("args", [
    ["probe", "--cell", "lstm", "--seq-len", "12", "--hidden-size", "4", "--batch", "2",
     "--probe", "flow", "--probe", "lyapunov"],
])
def test_cli_output_folder_is_identical(tmp_path, monkeypatch, args):
    runner = CliRunner()
    outs = []
    for k in range(2):
        # the same relative --out from two folders: the header records the command line as typed
        (tmp_path / f"run{k}").mkdir()
        monkeypatch.chdir(tmp_path / f"run{k}")
        out = tmp_path / f"run{k}" / "rep"
        r = runner.invoke(cli, args + ["--out", "rep", "--quiet"])
        if r.exit_code == 2 and "--out" in (r.output or ""):
            pytest.skip(f"{args[0]} writes no folder")
        assert r.exit_code == 0, r.output
        outs.append(_folder(out))
    assert outs[0] == outs[1]          # results.json and summary.md byte for byte, same figures
