"""backend.parallel_rows / parallel_blocks: the CPU thread pool gives the plain call's results
bit for bit, covers every row exactly once, and hands worker errors back to the caller."""
import json
import threading

import numpy as np
import pytest
from scipy.special import expit

import lstmcheck as lc
from lstmcheck import backend, parallel
from lstmcheck.errors import OptionError


@pytest.mark.parametrize("shape", [(1,), (1, 1), (2, 3), (7, 5), (33, 129), (1000,), (5, 4, 3)])
@pytest.mark.parametrize("threads", [2, 3, 5])
@pytest.mark.parametrize("ufunc", [np.tanh, expit, np.exp])
def test_parallel_rows_equals_plain_call_bitwise(shape, threads, ufunc):
    z = np.random.default_rng(sum(shape)).standard_normal(shape) * 4
    want = ufunc(z)
    out = np.full(shape, np.nan)
    got = parallel.parallel_rows(ufunc, out, z, threads=threads, min_size=0)
    assert got is out
    assert np.array_equal(out, want)


def test_parallel_rows_broadcasts_unsplit_arguments():
    """Arguments that are not row-aligned (a per-column vector, a scalar) are passed whole."""
    rng = np.random.default_rng(0)
    a, col = rng.standard_normal((9, 4)), rng.standard_normal(4)
    out = np.empty((9, 4))
    parallel.parallel_rows(np.multiply, out, a, col, threads=4, min_size=0)
    assert np.array_equal(out, a * col)
    parallel.parallel_rows(np.add, out, a, 2.5, threads=4, min_size=0)
    assert np.array_equal(out, a + 2.5)


def test_parallel_rows_in_place_on_a_column_slice():
    z = np.random.default_rng(1).standard_normal((11, 8))
    want = z.copy()
    want[:, 2:5] = np.tanh(want[:, 2:5])
    zs = z[:, 2:5]
    parallel.parallel_rows(np.tanh, zs, zs, threads=3, min_size=0)
    assert np.array_equal(z, want)


@pytest.mark.parametrize("n,threads", [(1, 4), (2, 2), (3, 2), (7, 3), (100, 8)])
def test_parallel_blocks_cover_every_row_once(n, threads):
    seen = np.zeros(n, int)
    blocks = []

    def fn(lo, hi):
        seen[lo:hi] += 1
        blocks.append((lo, hi))
    parallel.parallel_blocks(np, n, fn, threads=threads, min_work=0, gemm=False)
    assert (seen == 1).all()
    assert len(blocks) == min(n, threads)


def test_small_work_runs_as_one_plain_call():
    calls = []
    parallel.parallel_blocks(np, 10, lambda lo, hi: calls.append((lo, hi)), work=3, threads=4)
    assert calls == [(0, 10)]


@pytest.mark.parametrize("failing_block", [0, 1, 2])
def test_a_worker_error_reaches_the_caller_and_the_pool_survives(failing_block):
    def fn(lo, hi):
        if lo == [0, 3, 6][failing_block]:
            raise ValueError(f"block {lo}:{hi} failed")
    with pytest.raises(ValueError, match="failed"):
        parallel.parallel_blocks(np, 9, fn, threads=3, min_work=0, gemm=False)
    out = np.empty(9)
    parallel.parallel_rows(np.negative, out, np.arange(9.0), threads=3, min_size=0)
    assert np.array_equal(out, -np.arange(9.0))


def test_nested_and_concurrent_calls_run_serially_without_deadlock():
    inner = np.zeros(12)

    def outer(lo, hi):
        parallel.parallel_rows(np.add, inner[lo:hi], inner[lo:hi], 1.0, threads=3, min_size=0)
    parallel.parallel_blocks(np, 12, outer, threads=3, min_work=0, gemm=False)
    assert (inner == 1).all()
    results = []

    def caller():
        out = np.empty((50, 7))
        z = np.linspace(-3, 3, 350).reshape(50, 7)
        parallel.parallel_rows(np.tanh, out, z, threads=2, min_size=0)
        results.append(np.array_equal(out, np.tanh(z)))
    ts = [threading.Thread(target=caller) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == [True] * 4


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("LSTMCHECK_THREADS", "3")
    assert parallel.num_threads() == 3
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("LSTMCHECK_THREADS", bad)
        with pytest.raises(OptionError, match="LSTMCHECK_THREADS"):
            parallel.num_threads()
    monkeypatch.delenv("LSTMCHECK_THREADS")
    assert parallel.num_threads() >= 1


def test_blas_thread_count_is_restored():
    ctl = parallel._blas_controllers()
    if not ctl:
        pytest.skip("threadpoolctl is not installed")
    before = [c.num_threads for c in ctl]
    seen = []
    parallel.parallel_blocks(np, 4, lambda lo, hi: seen.append([c.num_threads for c in ctl]),
                            threads=2, min_work=0)
    assert all(s == [1] * len(ctl) for s in seen)
    assert [c.num_threads for c in ctl] == before


def test_gemm_work_is_not_split_when_blas_cannot_be_held_at_one_thread(monkeypatch):
    monkeypatch.setattr(parallel, "_blas_controllers", lambda: ())
    calls = []
    parallel.parallel_blocks(np, 8, lambda lo, hi: calls.append((lo, hi)), threads=2, min_work=0)
    assert calls == [(0, 8)]


@pytest.mark.parametrize("variant,opts", [("vanilla", {}), ("peephole", {"clip": 0.8}),
                                          ("cifg", {"proj_size": 5}), ("fgr", {"cell_clip": 0.6})])
def test_lstm_split_across_threads_equals_one_thread(monkeypatch, variant, opts):
    """Batch rows split across threads give the single-thread forward and backward (float64):
    each row runs the same operations, only BLAS may round a GEMM's row block differently."""
    if not parallel._blas_controllers():
        pytest.skip("threadpoolctl is not installed: GEMM work is not split")
    model = lc.LSTM(6, 16, variant=variant, **opts)
    params = model.init_params(seed=3)
    rng = np.random.default_rng(4)
    T, B = 9, 701                              # an odd batch: uneven blocks
    monkeypatch.setenv("LSTMCHECK_ROW_THREADS", "split")   # whatever this machine measured
    x = rng.standard_normal((T, B, 6))
    state = (rng.standard_normal((1, B, model.output_size)), rng.standard_normal((1, B, 16)))
    dy = rng.standard_normal((T, B, model.output_size))
    out = []
    for threads in ("1", "3"):
        monkeypatch.setenv("LSTMCHECK_THREADS", threads)
        y, (h, c), tape = model.forward(params, x, state)
        grads = model.backward(tape, dy, (h, c))
        out.append((y, h, c, grads))
    (y1, h1, c1, g1), (y3, h3, c3, g3) = out
    for a, b in [(y1, y3), (h1, h3), (c1, c3)] + [(g1[n], g3[n]) for n in g1]:
        assert np.abs(a - b).max() <= 1e-14 * np.abs(a).max()


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
@pytest.mark.parametrize("m,k,n,transposed", [(701, 33, 65, False), (300, 1024, 40, True),
                                              (7, 5, 3, False), (1, 200, 100, False)])
def test_sequence_matmul_equals_the_plain_product(threads, dtype, m, k, n, transposed):
    """parallel.matmul under sequence_gemms: row blocks on our threads give the plain a @ b
    within the kernels' bound (BLAS rounds a block's edge rows its own way), the same on every
    call, transposed views included (a weight gradient is dz.T @ h); one thread is the plain
    call."""
    if not parallel._blas_controllers():
        pytest.skip("threadpoolctl is not installed: GEMM work is not split")
    rng = np.random.default_rng(m + k)
    a = rng.standard_normal((k, m) if transposed else (m, k)).astype(dtype)
    a = a.T if transposed else a
    if dtype.startswith("complex"):
        a = a + 1j * rng.standard_normal(a.shape)
    b = rng.standard_normal((k, n)).astype("float64" if dtype == "complex128" else dtype)
    with parallel.blas_threads(1):
        plain = a @ b
    calls = []
    real_blocks = parallel.parallel_blocks

    def spy(*args, **kw):
        calls.append(kw.get("threads"))
        return real_blocks(*args, **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "parallel_blocks", spy)
        with parallel.sequence_gemms(threads):
            got = parallel.matmul(a, b)
            again = parallel.matmul(a, b)
    assert got.dtype == plain.dtype and got.shape == plain.shape
    bound = 2e-5 if dtype == "float32" else 1e-13
    assert np.abs(got - plain).max() <= bound * np.abs(plain).max()
    np.testing.assert_array_equal(got, again)
    if threads == 1:
        np.testing.assert_array_equal(got, plain)
    assert calls == ([] if threads == 1 else [threads, threads])
    assert parallel._sequence_threads() == 1              # outside the block: the plain call


def test_sequence_gemms_inside_a_block_keep_blas_at_one_thread(monkeypatch):
    """A model run inside a block of parallel_blocks (the audit runs replica chunks so) keeps
    its GEMMs on its own thread: BLAS's thread count is process-wide, and raising it there put
    BLAS workers beside the other blocks (the model-forward audit of an LSTM took 1.9x as
    long). Outside a block, sequence_gemms still sets both."""
    if not parallel._blas_controllers():
        pytest.skip("threadpoolctl is not installed: GEMM work is not split")
    from lstmcheck.models import kernels
    libs = parallel._blas_controllers()
    monkeypatch.setattr(parallel, "_BLAS_DEFAULTS", [3] * len(libs))   # as on a bigger machine
    seen = {}

    def block(lo, hi):
        with parallel.sequence_gemms(None):
            seen[lo] = (parallel.in_block(), parallel._sequence_threads(),
                        [c.num_threads for c in libs],
                        kernels.blas_threads(np, np.float64, 4096, 512, 2048))
    parallel.parallel_blocks(np, 4, block, threads=2, work=parallel.MIN_WORK)
    assert len(seen) == 2
    for inside, threads, blas, chosen in seen.values():
        assert inside and threads == 1 and blas == [1] * len(libs) and chosen == 1
    assert not parallel.in_block()
    alone = []                                           # a single block has the cores to itself
    parallel.parallel_blocks(np, 4, lambda lo, hi: alone.append(parallel.in_block()))
    assert alone == [False]
    with parallel.sequence_gemms(None):                  # outside: our threads and BLAS's
        assert parallel._sequence_threads() == parallel.num_threads()
        assert [c.num_threads for c in libs] == [3] * len(libs)
    assert parallel._sequence_threads() == 1


def test_sequence_matmul_leaves_stand_ins_to_their_own_product():
    """The checker's per-replica weights are not arrays: they multiply themselves."""
    class StandIn:
        __array_ufunc__ = None

        def __rmatmul__(self, a):
            return "own product"
    with parallel.sequence_gemms(2):
        assert parallel.matmul(np.ones((100, 300)), StandIn()) == "own product"


def test_the_row_split_is_timed_on_the_real_phase_per_load(monkeypatch, tmp_path):
    """kernels.row_split times the fused layer's own forward (or backward) on its first steps,
    split and whole, and keys the result by phase and load class."""
    from lstmcheck.models import fused_lstm, kernels
    if not parallel._blas_controllers():
        pytest.skip("threadpoolctl is not installed: GEMM work is not split")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LSTMCHECK_CACHE_DIR", raising=False)
    monkeypatch.setattr(kernels, "_cache", {})
    monkeypatch.setenv("LSTMCHECK_THREADS", "2")
    monkeypatch.setenv("LSTMCHECK_FUSED", "fused")
    monkeypatch.delenv("LSTMCHECK_ROW_THREADS", raising=False)
    timed = []
    real = fused_lstm.FusedLSTM.forward, fused_lstm.FusedLSTM.backward

    def forward(self, xp, p, u, state0, *, split=None):
        timed.append(("forward", len(u), split))
        return real[0](self, xp, p, u, state0, split=split)

    def backward(self, xp, p, tape, dy, dfinal, *, split=None, **kw):
        timed.append(("backward", len(dy), split))
        return real[1](self, xp, p, tape, dy, dfinal, split=split, **kw)
    monkeypatch.setattr(fused_lstm.FusedLSTM, "forward", forward)
    monkeypatch.setattr(fused_lstm.FusedLSTM, "backward", backward)
    model = lc.LSTM(4, 16)
    p = model.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((40, 300, 4))
    y, _, tape = model.forward(p, x)
    model.backward(tape, np.ones_like(y))
    s = fused_lstm.SPLIT_TIMING_STEPS
    for phase in ("forward", "backward"):
        assert {(ph, n, sp) for ph, n, sp in timed if ph == phase and sp is not None} == \
            {(phase, s, True), (phase, s, False)}
        assert (phase, 40, None) in timed                  # the real call, after the measurement
    stored = json.loads((tmp_path / "lstmcheck" / "kernels.json").read_text())
    keys = [k for k in stored if k.startswith("row_threads@")]
    assert sorted(k.split("|")[-2] for k in keys) == ["backward", "forward"]
    assert all(k.split("|")[-1] == kernels.load_class() for k in keys)
