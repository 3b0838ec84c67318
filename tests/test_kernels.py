"""The measured selector (models/kernels.py): every choice it can make computes what the
readable cell path computes, within the bound stated here; measurements are bounded, cached per
machine, dtype, shape class (and load for BLAS threads), and every choice can be forced."""
import itertools
import json
import os

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import backend, parallel
from lstmcheck.errors import OptionError
from lstmcheck.models import LSTM_VARIANTS, kernels, runner

# The documented bound: each choice rounds differently from the readable step (tanh through the
# logistic, row blocks of a GEMM), never by more than this relative to the largest value.
BOUND = {"float64": 1e-13, "float32": 2e-5}
VARIANTS = [v for v in LSTM_VARIANTS if v != "noaf"] + ["noaf", "peephole+cifg", "peephole+fgr"]
COMBOS = list(itertools.product(kernels.GATE_ROUTES, kernels.ROUTES, ("split", "whole"), ("1", "n"),
                                ("view", "copy")))


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LSTMCHECK_CACHE_DIR", raising=False)
    monkeypatch.setattr(kernels, "_cache", {})
    kernels._machine_key_of.cache_clear()
    yield tmp_path / "lstmcheck" / "kernels.json"
    kernels._machine_key_of.cache_clear()      # a test may have named another CPU


def _run(m, p, x, s0, dy, fused):
    y, fin, tape = m.run_forward(p, x, s0, fused=fused)
    grads, dx, ds0, _ = runner.stack_backward(m, tape, dy, tuple(np.ones_like(a) for a in fin))
    assert all(lt.fused is not None for lt in tape.layers) == fused
    return [y, *fin, dx, *ds0, *(grads[n] for n in m.param_names)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_choice_gives_the_readable_result(variant, dtype, monkeypatch):
    """All 48 combinations of gate route, cell route, row threads, BLAS threads and W_hh^T's
    layout, forward and backward, on a batch large enough to be split across threads."""
    m = lc.LSTM(4, 16, variant=variant, dtype=dtype, clip=2.0 if variant == "nog" else None)
    rng = np.random.default_rng(3)
    p = m.init_params(seed=1, scale=2.0)
    T, B = 4, 300                                  # B * 4H >= parallel.MIN_WORK: splittable
    x = rng.standard_normal((T, B, 4)).astype(dtype)
    s0 = tuple((0.5 * rng.standard_normal(s)).astype(dtype) for s in m.state_shapes(B))
    dy = rng.standard_normal((T, B, m.output_size)).astype(dtype)
    readable = _run(m, p, x, s0, dy, fused=False)
    monkeypatch.setenv("LSTMCHECK_FUSED", "fused")
    for gate, cell, rows, blas, layout in COMBOS:
        for env, v in (("LSTMCHECK_GATE_ROUTE", gate), ("LSTMCHECK_CELL_ROUTE", cell),
                       ("LSTMCHECK_ROW_THREADS", rows), ("LSTMCHECK_BLAS_THREADS", blas),
                       ("LSTMCHECK_HH_LAYOUT", layout)):
            monkeypatch.setenv(env, v)
        for a, b in zip(_run(m, p, x, s0, dy, fused=True), readable):
            assert a.dtype == b.dtype
            assert np.abs(a - b).max() <= BOUND[dtype] * max(1.0, np.abs(b).max()), \
                (gate, cell, rows, blas, layout)


def test_the_step_choice_is_the_readable_path(monkeypatch):
    monkeypatch.setenv("LSTMCHECK_FUSED", "step")
    m = lc.LSTM(3, 4)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _, tape = m.forward(p, x)
    assert tape.layers[0].fused is None
    np.testing.assert_array_equal(y, m.run_forward(p, x, tuple(np.zeros(s) for s in
                                                             m.state_shapes(2)), fused=False)[0])


@pytest.mark.parametrize("name", list(kernels.CHOICES))
def test_every_choice_can_be_forced_and_a_bad_value_is_one_sentence(name, monkeypatch,
                                                                     fresh_cache):
    ch = kernels.CHOICES[name]
    for option in ch.options:
        monkeypatch.setenv(ch.env, option)
        assert kernels.select(name, np, np.float64, "any", lambda: pytest.fail("measured")) \
            == option
    monkeypatch.setenv(ch.env, "fastest")
    with pytest.raises(OptionError, match=rf"^{ch.env} must be one of .*got 'fastest'\.$"):
        kernels.select(name, np, np.float64, "any", dict)


def test_a_measurement_is_bounded_interleaved_and_remembered(fresh_cache, monkeypatch):
    calls = []

    def candidates():
        return {"tanh": lambda: calls.append("tanh"), "logistic": lambda: calls.append("logistic")}
    first = kernels.select("gate_route", np, np.float64, "r3w5", candidates)
    assert first in kernels.ROUTES
    n = calls.count("tanh")
    assert n == calls.count("logistic")                       # every round times both
    assert kernels.MIN_ROUNDS + 1 <= n <= kernels.MAX_ROUNDS + 1
    assert calls[2:4] != calls[4:6]                           # the order alternates
    stored = json.loads(fresh_cache.read_text())
    (key, value), = stored.items()
    assert value == first and key.endswith("|float64|r3w5") and kernels._cpu_identity() in key
    # another process reads it back instead of measuring (and so makes the same choice)
    monkeypatch.setattr(kernels, "_cache", {})
    assert kernels.select("gate_route", np, np.float64, "r3w5",
                          lambda: pytest.fail("measured twice")) == first
    # another dtype or shape class is a new measurement
    calls.clear()
    kernels.select("gate_route", np, np.float32, "r3w5", candidates)
    assert calls


def test_lstmcheck_cache_dir_takes_the_choices_and_the_suite_keeps_its_own(monkeypatch, tmp_path):
    """LSTMCHECK_CACHE_DIR holds kernels.json where set (the suite sets it, so its measurements,
    made on a busy machine, never reach the user's cache); XDG_CACHE_HOME is the fallback."""
    assert os.environ.get("LSTMCHECK_CACHE_DIR")                 # conftest's folder
    assert str(kernels._cache_file().parent) == os.environ["LSTMCHECK_CACHE_DIR"]
    monkeypatch.setenv("LSTMCHECK_CACHE_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(kernels, "_cache", {})
    kernels.select("gate_route", np, np.float64, "r3w5",
                   lambda: {"tanh": lambda: None, "logistic": lambda: None})
    assert (tmp_path / "own" / "kernels.json").exists()
    assert not (tmp_path / "xdg").exists()


def test_the_faster_candidate_wins_whatever_the_cpu_is_called(fresh_cache, monkeypatch):
    import time
    for cpu in ("Intel(R) Xeon(R) Platinum", "AMD EPYC"):
        monkeypatch.setattr(kernels, "_cpuinfo", lambda: {"model name": cpu})
        kernels._machine_key_of.cache_clear()        # the key is computed once per process
        assert cpu in kernels._machine_key(np)
        for slow in kernels.ROUTES:
            fast = [r for r in kernels.ROUTES if r != slow][0]
            cands = {r: (lambda: time.sleep(2e-3)) if r == slow else (lambda: None)
                     for r in kernels.ROUTES}
            assert kernels.select("gate_route", np, np.float64, f"slow-{slow}",
                                  lambda: cands) == fast


def test_blas_threads_follow_the_load_and_small_gemms_stay_on_one(fresh_cache, monkeypatch):
    monkeypatch.setattr(kernels, "LOAD_TTL_S", 0)
    if not parallel._blas_controllers():
        pytest.skip("threadpoolctl is not installed")
    monkeypatch.setattr(parallel, "num_threads", lambda: 2)
    measured = []
    real = kernels._measure
    monkeypatch.setattr(kernels, "_measure", lambda xp, c: measured.append(1) or real(xp, c))
    assert kernels.blas_threads(np, np.float64, 8, 16, 64) == 1 and not measured
    for load, cls in ((0, "quiet"), (5, "loaded")):
        monkeypatch.setattr(kernels, "_runnable_others", lambda load=load: load)
        assert kernels.load_class() == cls
        assert kernels.blas_threads(np, np.float64, 2000, 128, 512) in (1, None)
    assert len(measured) == 2                                  # once per load class
    keys = json.loads(fresh_cache.read_text())
    assert {k.rsplit("|", 1)[1] for k in keys} == {"quiet", "loaded"}


def test_the_load_is_what_runs_now_besides_us(monkeypatch):
    """Other busy processes make the machine 'loaded' at once; this process's own past work does
    not (the 1-minute average remembers it), and without /proc the average is the fallback."""
    import subprocess
    import sys
    monkeypatch.setattr(kernels, "LOAD_TTL_S", 0)
    monkeypatch.setattr(parallel, "num_threads", lambda: 2)
    monkeypatch.setattr(kernels.os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    if kernels._runnable_others() is None:
        assert kernels.load_class() == "loaded"
        return
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    try:
        import time
        time.sleep(0.5)
        assert kernels._runnable_others() >= 2
        assert kernels.load_class() == "loaded"
    finally:
        for p in busy:
            p.kill()
            p.wait()
    monkeypatch.setattr(kernels, "_runnable_others", lambda: 0)
    assert kernels.load_class() == "quiet"
    monkeypatch.setattr(kernels, "_runnable_others", lambda: None)
    assert kernels.load_class() == "loaded"


def test_blas_threads_context_sets_and_restores():
    # an earlier test may have loaded another BLAS (torch's, scipy's) after the first look:
    # look again now so the cached libraries and a fresh controller see the same ones
    parallel._blas_controllers.cache_clear()
    libs = parallel._blas_controllers()
    if not libs:
        pytest.skip("threadpoolctl is not installed")
    before = [c.num_threads for c in libs]
    from threadpoolctl import ThreadpoolController
    fresh = [c.num_threads for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    assert list(parallel._blas_defaults()) == fresh        # the libraries' own counts
    if max(fresh) > 1:           # first read inside a block that holds BLAS at one thread
        parallel._blas_controllers.cache_clear()
        libs = parallel._blas_controllers()
        with parallel._blas_limit(1):
            assert list(parallel._blas_defaults()) == fresh
    with parallel.blas_threads(1):
        assert all(c.num_threads == 1 for c in libs)
        with parallel.blas_threads(None):
            assert [c.num_threads for c in libs] == list(parallel._blas_defaults())
        assert all(c.num_threads == 1 for c in libs)
    assert [c.num_threads for c in libs] == before


def test_fused_or_step_is_judged_at_the_layers_own_length(fresh_cache):
    """A prefix favours the execution with no fixed cost; the selector extrapolates each one's
    cost per step to the real length instead (and times short layers whole)."""
    import time

    def candidates(fused_ms, step_ms):      # (fixed, per step) of each
        def make(steps):
            return {name: (lambda f=f, p=p: time.sleep((f + p * steps) / 1e3))
                    for name, (f, p) in (("fused", fused_ms), ("step", step_ms))}
        return make
    # fused: 6 ms fixed + 0.05 ms a step; step: 0.25 ms a step, nothing fixed
    cheap_steps = candidates((6.0, 0.05), (0.0, 0.25))
    assert kernels.fused(np, np.float64, 64, 1024, 8, cheap_steps) is False     # 6.4 vs 2 ms
    assert kernels.fused(np, np.float64, 64, 1024, 1000, cheap_steps) is True   # 56 vs 250 ms
    # when the fused one is the slower per step, long layers keep the step path
    dear_steps = candidates((6.0, 0.5), (0.0, 0.25))
    assert kernels.fused(np, np.float32, 64, 1024, 1000, dear_steps) is False


def test_cpus_of_one_name_but_another_make_or_feature_set_are_other_machines(monkeypatch):
    base = {"model name": "AMD EPYC", "cpu family": "23", "model": "49", "stepping": "0",
            "flags": "fpu sse2 avx avx2 fma"}
    keys = set()
    for info in (base, {**base, "model": "1"}, {**base, "cpu family": "25"},
                 {**base, "flags": "fpu sse2 avx avx2 fma avx512f"}):
        monkeypatch.setattr(kernels, "_cpuinfo", lambda info=info: info)
        kernels._machine_key_of.cache_clear()
        keys.add(kernels._machine_key(np))
        assert "AMD EPYC" in kernels._cpu_identity()
    assert len(keys) == 4
    # the flags' order is no difference
    monkeypatch.setattr(kernels, "_cpuinfo", lambda: {**base, "flags": "fma avx2 avx sse2 fpu"})
    kernels._machine_key_of.cache_clear()
    assert kernels._machine_key(np) in keys
    kernels._machine_key_of.cache_clear()


def test_a_fresh_worker_and_a_process_with_scipy_loaded_are_one_machine():
    """Sweep workers read the parent's measurements: the key must not depend on which other
    BLAS libraries a process happens to have loaded (scipy.linalg brings its own)."""
    import subprocess
    import sys
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS beside NumPy's)
    kernels._machine_key_of.cache_clear()
    here = kernels._machine_key(np)
    code = "import numpy as np; from lstmcheck.models import kernels; print(kernels._machine_key(np))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert fresh == here


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_exp_gate_route_saturates_without_warnings(dtype, monkeypatch):
    """Pre-activations far beyond exp's range (weights at scale 1000, |z| to 930: exp(-z) overflows to inf,
    sigma = 0 exactly) give the readable step's numbers and no warning."""
    import warnings
    m = lc.LSTM(3, 8, dtype=dtype)
    p = m.init_params(seed=2, scale=1000.0)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 3)).astype(dtype)
    s0 = tuple(np.zeros(s, dtype) for s in m.state_shapes(3))
    dy = rng.standard_normal((5, 3, 8)).astype(dtype)
    readable = _run(m, p, x, s0, dy, fused=False)
    monkeypatch.setenv("LSTMCHECK_FUSED", "fused")
    monkeypatch.setenv("LSTMCHECK_GATE_ROUTE", "exp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fused = _run(m, p, x, s0, dy, fused=True)
    for a, b in zip(fused, readable):
        assert np.abs(a - b).max() <= BOUND[dtype] * max(1.0, np.abs(b).max())


def test_a_choice_measured_inside_another_is_kept_on_disk(fresh_cache):
    """The outer measurement writes after the nested one: it must not overwrite it."""
    def outer():
        kernels.select("cell_route", np, np.float64, "inner", lambda: {"tanh": lambda: None,
                                                                        "logistic": lambda: None})
        return {"tanh": lambda: None, "logistic": lambda: None, "exp": lambda: None}
    kernels.select("gate_route", np, np.float64, "outer", outer)
    keys = json.loads(fresh_cache.read_text())
    assert sorted(k.split("|")[0] for k in keys) == ["cell_route", "gate_route@3"]


@pytest.mark.parametrize("dtype, ulps", [("float64", 2.0), ("float32", 3.0)])
@pytest.mark.parametrize("route", kernels.SIGMOID_ROUTES)
def test_both_sigmoid_routes_are_the_logistic_to_a_few_ulps(route, dtype, ulps, monkeypatch):
    """activations.sigmoid by either route (expit, 1/(1 + exp(-z))) against the logistic in
    extended precision: relative to sigma, through saturation (exp(-z) = inf gives 0, with no
    warning), in place and into a new array."""
    import warnings

    from lstmcheck.models import activations
    monkeypatch.setenv("LSTMCHECK_SIGMOID_ROUTE", route)
    assert kernels.sigmoid_route(np, np.dtype(dtype)) == route
    lim = 800 if dtype == "float64" else 100
    z = np.concatenate([np.linspace(-lim, lim, 40001),
                        np.random.default_rng(0).standard_normal(4000) * 6]).astype(dtype)
    ref = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = activations.sigmoid(np, z)
        inplace = z.copy()
        assert activations.sigmoid(np, inplace, out=inplace) is inplace
    np.testing.assert_array_equal(new, inplace)
    assert new.dtype == z.dtype
    tiny = np.finfo(dtype).tiny
    normal = ref > tiny
    rel = np.abs(new[normal] - ref[normal]) / ref[normal]
    assert rel.max() <= ulps * np.finfo(dtype).eps
    assert np.all(np.abs(new[~normal]) <= tiny)          # below the normal range: 0 or tiny


@pytest.mark.parametrize("model", ["gru", "lstm", "lstm_peephole"])
def test_cells_agree_under_both_sigmoid_routes(model, monkeypatch):
    """The readable path (GRU, LSTM, an LSTM whose o waits for its peephole) computes the same
    numbers by either sigmoid route, within the kernels' bound, and each route really runs (by
    a count of its calls: on some builds the two give the same bits, scipy's expit and NumPy's
    exp both being the C library's scalar exp, as on an AVX2 AMD EPYC here)."""
    m = {"gru": lambda: lc.GRU(3, 5), "lstm": lambda: lc.LSTM(3, 5),
         "lstm_peephole": lambda: lc.LSTM(3, 5, variant="peephole")}[model]()
    rng = np.random.default_rng(4)
    p = m.init_params(seed=2, scale=3.0)              # saturated gates included
    x = rng.standard_normal((6, 4, 3))
    s0 = tuple(0.5 * rng.standard_normal(s) for s in m.state_shapes(4))
    dy = rng.standard_normal((6, 4, m.output_size))
    calls = dict.fromkeys(kernels.SIGMOID_ROUTES, 0)

    def counted(route, make):
        def made(xp):
            f = make(xp)

            def g(*args, **kw):
                calls[route] += 1
                return f(*args, **kw)
            return g
        return made
    monkeypatch.setattr(backend, "expit", counted("expit", backend.expit))
    monkeypatch.setattr(kernels, "exp_sigmoid", counted("exp", kernels.exp_sigmoid))
    out = {}
    for route in kernels.SIGMOID_ROUTES:
        monkeypatch.setenv("LSTMCHECK_SIGMOID_ROUTE", route)
        before = dict(calls)
        out[route] = _run(m, p, x, s0, dy, fused=False)
        assert {r: calls[r] - before[r] > 0 for r in calls} == {r: r == route for r in calls}
    for a, b in zip(*out.values()):
        assert np.abs(a - b).max() <= BOUND["float64"] * max(1.0, np.abs(b).max())


def test_the_checker_measures_elementwise_choices_before_its_threads_start(fresh_cache):
    """ModelEvaluator measures the gate, cell and sigmoid routes when it is made, not from inside
    a replica block where the other block would load the timing."""
    from lstmcheck.check.batched import ModelEvaluator
    m = lc.GRU(3, 4)
    rng = np.random.default_rng(0)
    theta = {**m.init_params(seed=0), "x": rng.standard_normal((3, 2, 3)),
             "h0": rng.standard_normal((1, 2, 4))}
    w = {"y": rng.standard_normal((3, 2, 4)), "h0": rng.standard_normal((1, 2, 4))}
    ModelEvaluator(m, theta, w)
    names = {k.split("|")[0].split("@")[0] for k in json.loads(fresh_cache.read_text())}
    assert {"gate_route", "cell_route", "sigmoid_route"} <= names


@pytest.mark.parametrize("dtype", ["int64", "float16"])
def test_sigmoid_of_other_dtypes_is_expits(dtype, monkeypatch):
    """Only float32 and float64 take a measured route: other dtypes go to expit as before (its
    float64 result for integers and float16), whatever a machine would measure."""
    from scipy.special import expit

    from lstmcheck.models import activations
    monkeypatch.setenv("LSTMCHECK_SIGMOID_ROUTE", "exp")
    z = np.array([-3, 0, 2], dtype)
    got = activations.sigmoid(np, z)
    want = expit(z)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
