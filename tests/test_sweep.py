"""Sweeps: grid expansion, per-point records, resume, and the same records on every executor."""
from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import BackendError, FileFormatError, MissingDependencyError, OptionError

sw = importlib.import_module("lstmcheck.sweep")   # the package; lc.sweep is the function

SMALL = {"input_size": 3, "hidden_size": 6, "seq_len": 12, "batch": 2}
GRID = {**{k: [v] for k, v in SMALL.items()}, "cell": ["lstm", "gru", "rnn"],
        "forget_bias": [None, 1.0], "seed": [0, 1]}


# Measures are module-level so that worker processes can import them by name.
def flow(study):
    """||dL/dh_t|| of the top layer, from the oracle's own per-step trace."""
    _, _, tape = study.model.forward(study.params, study.x)
    _, trace = study.model.backward_trace(tape, study.dy, trace=True)
    norms = np.linalg.norm(lc.backend.to_host(trace.dh[-1]), axis=(1, 2))
    lags = np.arange(len(norms))[::-1]               # T-1-t: steps back from the loss
    slope = np.polyfit(lags, np.log(norms), 1)[0]
    return {"decay_rate": float(-slope), "norms": norms, "first": norms[0]}


CALLS: list = []
STOP_AFTER: list = [None]


def counting(study):
    """flow, noting each point it computes; raises KeyboardInterrupt once STOP_AFTER is reached."""
    if STOP_AFTER[0] is not None and len(CALLS) >= STOP_AFTER[0]:
        raise KeyboardInterrupt
    CALLS.append(study.point["seed"])
    return flow(study)


def crash_once(study):
    """flow, but the first worker to reach a GRU with seed 1 dies there (os._exit)."""
    marker = os.path.join(os.environ["SWEEP_TEST_CRASH_DIR"], "crashed")
    if study.point["cell"] == "gru" and study.point["seed"] == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return flow(study)


@pytest.fixture(scope="module")
def reference():
    return lc.sweep(GRID, flow)


# ---------------------------------------------------------------------------- grid
def test_expand_grid_product_defaults_and_union():
    pts = sw.expand_grid({"cell": ["lstm", "gru"], "seq_len": [5, np.int64(9), 20]})
    assert len(pts) == 6
    assert [(p["cell"], p["seq_len"]) for p in pts[:3]] == [("lstm", 5), ("lstm", 9), ("lstm", 20)]
    assert all(set(p) == set(sw.GRID_KEYS) for p in pts)
    assert type(pts[1]["seq_len"]) is int and pts[0]["hidden_size"] == sw.DEFAULTS["hidden_size"]
    pts = sw.expand_grid([{"cell": "rnn", "seed": range(3)}, {"cell": ["LSTM"], "forget_bias": [1]}])
    assert [p["cell"] for p in pts] == ["rnn"] * 3 + ["lstm"]
    assert pts[-1]["forget_bias"] == 1.0 and isinstance(pts[-1]["forget_bias"], float)


@pytest.mark.parametrize("grid, words", [
    ({"hiden_size": [8]}, "'hiden_size'"),
    ({}, "empty"),
    ([], "empty"),
    ({"seq_len": []}, "'seq_len' has no values"),
    ({"hidden_size": [0]}, "'hidden_size'"),
    ({"seed": [1.5]}, "'seed'"),
    ({"cell": ["lsmt"]}, "'lsmt'"),
    ({"variant": ["peep"]}, "'peep'"),
    ({"init": ["xavier"]}, "'xavier'"),
    ({"task": ["sorting"]}, "'sorting'"),
    ({"backend": ["jax"]}, "'jax'"),
    ({"spectral_radius": [float("nan")]}, "'spectral_radius'"),
    ("seq_len=10", "dict"),
])
def test_bad_grids_are_refused_before_anything_runs(grid, words):
    with pytest.raises(lc.LstmcheckError, match=words):
        lc.sweep(grid, flow)


def test_bad_measure_and_executor_options():
    with pytest.raises(OptionError, match="'decay'"):
        lc.sweep({"seed": [0]}, "decay")
    with pytest.raises(OptionError, match="executor"):
        lc.sweep({"seed": [0]}, flow, executor="threads")
    with pytest.raises(OptionError, match="workers"):
        lc.sweep({"seed": [0]}, flow, workers=0)
    with pytest.raises(OptionError, match="scheduler"):
        lc.sweep({"seed": [0]}, flow, executor="process", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(OptionError, match="clashes"):
        lc.sweep({"seed": [0]}, lambda s: {"seed": 1})
    with pytest.raises(OptionError, match="module-level function"):
        lc.sweep({"seed": [0]}, lambda s: {}, workers=2)


# ---------------------------------------------------------------------------- records
def test_records_are_tidy_in_grid_order_and_match_a_direct_computation(reference):
    pts = sw.expand_grid(GRID)
    assert len(reference) == len(pts) == 12
    for p, r in zip(pts, reference):
        assert {k: r[k] for k in p} == p
        if p["cell"] == "rnn" and p["forget_bias"] is not None:
            assert r["error"] == "forget_bias applies to LSTM, GRU, DGLSTM and GRIDLSTM, not to RNN."
            assert "decay_rate" not in r
            continue
        assert r["error"] is None
        direct = flow(sw.setup_study(p))
        assert r["decay_rate"] == direct["decay_rate"]
        np.testing.assert_array_equal(r["norms"], direct["norms"])
        # the noise task's loss reads only y_T: dL/dh_{T-1} is its unit direction
        assert r["norms"][-1] == pytest.approx(np.sqrt(p["batch"]), rel=1e-12)
    # seeds change the draw; a forget bias changes an LSTM's parameters
    assert reference[0]["decay_rate"] != reference[1]["decay_rate"]
    assert reference[0]["decay_rate"] != reference[2]["decay_rate"]


def test_study_is_reproducible_and_streams_are_independent():
    p = sw.expand_grid({**SMALL, "init": "chrono", "cell": "lstm"})[0]
    a, b = sw.setup_study(p), sw.setup_study(p)
    for n in a.params:
        np.testing.assert_array_equal(a.params[n], b.params[n])
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.dy, b.dy)
    assert a.rng.integers(2**62) == b.rng.integers(2**62)
    # chrono: forget bias log U[1, T_max - 1], input bias its negative (T_max = seq_len + 2)
    H = p["hidden_size"]
    bf = a.params["bias_ih_l0"][H:2 * H]
    assert np.all((bf >= 0) & (bf <= np.log(p["seq_len"] + 1)))
    np.testing.assert_array_equal(a.params["bias_ih_l0"][:H], -bf)
    # the data is not a re-use of the weights' random stream
    assert not np.allclose(np.sort(np.abs(a.x.ravel()))[:5], np.sort(np.abs(a.params["weight_ih_l0"].ravel()))[:5])


def test_spectral_radius_moves_the_decay_rate_the_expected_way():
    recs = lc.sweep({**SMALL, "cell": "rnn", "init": "gaussian", "seq_len": 30,
                     "spectral_radius": [0.3, 0.9]}, flow)
    # a smaller recurrent spectral radius makes dL/dh_t vanish faster going back in time
    assert recs[0]["decay_rate"] > recs[1]["decay_rate"] > 0


def test_repeated_points_and_lc_sweep_is_callable():
    CALLS.clear()
    STOP_AFTER[0] = None
    recs = lc.sweep({**SMALL, "seed": [4, 4, 5]}, counting)
    assert CALLS == [4, 5] and recs[0] == recs[1] != recs[2]
    assert callable(lc.sweep) and lc.sweep is sw.sweep


def test_lc_sweep_and_lc_audit_are_plain_functions_from_a_fresh_import():
    """Importing the packages (before or after) leaves lc.sweep and lc.audit the functions."""
    import subprocess
    code = ("import types, lstmcheck as lc; a = lc.sweep; b = lc.sweep; au = lc.audit; "
            "import lstmcheck.sweep, lstmcheck.audit, lstmcheck.sweep.run, lstmcheck.audit.targets; "
            "from lstmcheck.sweep import sweep, expand_grid; from lstmcheck.audit import audit; "
            "assert a is b is sweep is lc.sweep and isinstance(a, types.FunctionType); "
            "assert au is audit is lc.audit and isinstance(au, types.FunctionType); "
            "assert expand_grid({'seed': [0, 1]})[1]['seed'] == 1")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = ("import lstmcheck.audit, lstmcheck.sweep, types; import lstmcheck as lc; "
            "assert isinstance(lc.audit, types.FunctionType) and isinstance(lc.sweep, types.FunctionType)")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- results file, resume
def test_interrupted_sweep_resumes_with_nothing_lost_or_recomputed(tmp_path, reference):
    CALLS.clear()
    STOP_AFTER[0] = 5
    with pytest.raises(KeyboardInterrupt):
        lc.sweep(GRID, counting, out=tmp_path)
    lines = (tmp_path / sw.RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 5 and len(CALLS) == 5
    first = list(CALLS)

    # a kill in the middle of a write leaves a cut last line: it is ignored, that point reruns
    (tmp_path / sw.RESULTS_FILE).write_text("\n".join(lines[:4]) + "\n" + lines[4][:40])
    CALLS.clear()
    STOP_AFTER[0] = None
    seen = []
    recs = lc.sweep(GRID, counting, out=tmp_path, progress=lambda d, n: seen.append((d, n)))
    assert recs == reference
    # only the 8 points without a whole record ran (the two impossible RNN points never reach
    # the measure), and the one with the cut record is among them
    assert len(CALLS) == 6 and CALLS[0] == first[4]
    assert seen[0] == (4, 12) and seen[-1] == (12, 12)
    rows = [json.loads(line) for line in (tmp_path / sw.RESULTS_FILE).read_text().splitlines()
            if line.startswith('{"key"') and line.endswith("}")]
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12

    # a third run reads everything back and computes nothing; another measure shares nothing
    CALLS.clear()
    assert lc.sweep(GRID, counting, out=tmp_path) == reference and CALLS == []
    assert lc.sweep({**SMALL, "seed": [0]}, flow, out=tmp_path, resume=False)[0] == reference[0]
    assert lc.sweep({**SMALL, "seed": [0]}, flow, out=tmp_path)[0] == reference[0]


def slow_flow(study):
    """flow, noting the point; slow when SWEEP_TEST_SLOW is set (to be killed midway)."""
    time.sleep(float(os.environ.get("SWEEP_TEST_SLOW", 0)))
    CALLS.append(study.point["seed"])
    return flow(study)


def test_a_killed_sweep_process_resumes_with_nothing_lost(tmp_path):
    grid = {**SMALL, "cell": "gru", "seed": list(range(30))}
    out = tmp_path / "run"
    results = out / sw.RESULTS_FILE
    code = ("import sys, lstmcheck as lc, test_sweep as t; "
            f"lc.sweep({grid!r}, t.slow_flow, out={str(out)!r})")
    env = {**os.environ, "SWEEP_TEST_SLOW": "0.05",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (results.exists() and results.read_text().count("\n") >= 4):
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.01)
    finally:
        proc.kill()                                  # SIGKILL: no chance to clean up
        proc.wait()
    done = results.read_text().count("\n")
    assert 4 <= done < 30
    CALLS.clear()
    recs = lc.sweep(grid, slow_flow, out=out)
    assert len(CALLS) == 30 - done                   # finished points were not recomputed
    assert recs == lc.sweep(grid, flow)              # and none was lost
    assert results.read_text().count("\n") == 30


def test_a_corrupt_results_file_is_reported(tmp_path):
    (tmp_path / sw.RESULTS_FILE).write_text("not json\n{}\n")
    with pytest.raises(FileFormatError, match="line 1"):
        lc.sweep({"seed": [0]}, flow, out=tmp_path)


# ---------------------------------------------------------------------------- executors
def test_process_pool_gives_the_same_records_and_survives_a_dying_worker(tmp_path, monkeypatch, reference):
    monkeypatch.setenv("SWEEP_TEST_CRASH_DIR", str(tmp_path))   # inherited by the workers
    recs = lc.sweep(GRID, crash_once, workers=2, out=tmp_path / "run")
    assert (tmp_path / "crashed").exists()           # a worker really died
    assert recs == reference                         # its points reran, nothing lost
    assert len((tmp_path / "run" / sw.RESULTS_FILE).read_text().splitlines()) == len(reference)


def test_process_pool_gives_up_on_a_point_that_always_kills():
    from lstmcheck.sweep.executors import ProcessPool
    pool = ProcessPool(1, max_restarts=2)
    with pytest.raises(BackendError, match="died 2 times"):
        list(pool.imap(os._exit, [3]))
    assert pool.restarts == 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_clear_error_not_a_hang():
    pytest.importorskip("distributed")
    caught = []
    t = threading.Thread(target=lambda: caught.append(_raises(
        lambda: lc.sweep({"seed": [0]}, flow, scheduler=f"tcp://127.0.0.1:{_free_port()}",
                         connect_timeout=2))), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "sweep hung on an unreachable scheduler"
    assert isinstance(caught[0], BackendError) and "cannot reach the Dask scheduler" in str(caught[0])
    with pytest.raises(OptionError, match="HOST:PORT"):
        lc.sweep({"seed": [0]}, flow, scheduler="127.0.0.1:8786")


def _raises(fn):
    try:
        fn()
    except Exception as exc:
        return exc
    return None


def test_missing_dask_is_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(MissingDependencyError, match="lstmcheck\\[distributed\\]"):
        lc.sweep({"seed": [0]}, flow, executor="dask")


def test_dask_local_cluster_gives_the_in_process_records_despite_a_dying_worker(
        tmp_path, monkeypatch, reference):
    pytest.importorskip("distributed")
    monkeypatch.setenv("SWEEP_TEST_CRASH_DIR", str(tmp_path))   # inherited by the workers
    # the sweep starts a LocalCluster of 2 single-threaded worker processes on loopback
    recs = lc.sweep(GRID, crash_once, executor="dask", workers=2, out=tmp_path / "run")
    assert (tmp_path / "crashed").exists()
    assert recs == reference
    assert len((tmp_path / "run" / sw.RESULTS_FILE).read_text().splitlines()) == len(reference)


def test_dask_existing_scheduler_address(reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None,
                                  protocol="tcp", host="127.0.0.1") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        recs = lc.sweep(GRID, flow, scheduler=cluster.scheduler_address)
    assert recs == reference


# ---------------------------------------------------------------------------- named measures, tasks
def test_named_gradient_flow_measure_is_the_probe_at_the_study():
    probes = pytest.importorskip("lstmcheck.probes")
    if not hasattr(probes, "gradient_norms"):
        pytest.skip("lstmcheck.probes.gradient_norms not available")
    grid = {**SMALL, "cell": ["lstm", "gru"], "num_layers": [1, 2], "seed": [3]}
    recs = lc.sweep(grid)                                # gradient_flow is the default
    for p, r in zip(sw.expand_grid(grid), recs):
        assert r.get("error") is None                    # a stacked model's first layer is probed
        s = sw.setup_study(p)
        direct = probes.gradient_norms(s.model, s.params, s.x, loss=s.dy)
        assert r["decay_rate"] == direct.decay_rate and r["horizon"] == direct.horizon[0.9]
        assert (r["c_decay_rate"] is None) == (p["cell"] == "gru")


def test_task_inputs_and_their_widths():
    from lstmcheck import tasks
    grid = {**SMALL, "input_size": None, "seq_len": 24,
            "task": ["noise", "adding", "copy_memory", "temporal_order"]}
    recs = lc.sweep(grid, flow)
    assert [r["error"] for r in recs] == [None] * 4
    for p in sw.expand_grid(grid):
        s = sw.setup_study(p)
        want = sw.NOISE_FEATURES if p["task"] == "noise" else tasks.features(p["task"])
        assert s.x.shape == (24, SMALL["batch"], want) == (24, SMALL["batch"], s.model.input_size)
    bad = lc.sweep({**SMALL, "task": "adding"}, flow)[0]   # SMALL has input_size 3
    assert bad["error"] == "task 'adding' produces 2 input features, but input_size is 3."


def test_named_lyapunov_gates_and_gradcheck_measures():
    probes = pytest.importorskip("lstmcheck.probes")
    if not hasattr(probes, "lyapunov_spectrum"):
        pytest.skip("lstmcheck.probes.lyapunov_spectrum not available")
    grid = {**SMALL, "cell": ["lstm", "rnn"], "init": "orthogonal", "spectral_radius": 0.5}
    recs = lc.sweep(grid, ["lyapunov", "gates", "gradcheck"])
    for p, r in zip(sw.expand_grid(grid), recs):
        s = sw.setup_study(p)
        lyap = probes.lyapunov_spectrum(s.model, s.params, s.x, seed=int(s.rng.integers(2**31)))
        assert r["lambda_1"] == lyap.exponents[0] < 0          # contracting at radius 0.5
        assert r["lambda_sum"] == pytest.approx(float(np.sum(lyap.exponents)), rel=1e-12)
        assert r["passed"] is True and r["max_rel_error"] < 1e-6
        assert (r["forget_mean"] is None) == (p["cell"] == "rnn")
        assert 0 <= r["saturation"] <= 1


def always_crash(study):
    os._exit(1)


def test_dask_gives_up_on_a_point_that_always_kills_with_a_clear_error():
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with pytest.raises(BackendError, match="died repeatedly"):
            lc.sweep({**SMALL, "seed": [0]}, always_crash, executor="dask", workers=1)
