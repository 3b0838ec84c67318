"""Recycled arrays (lstmcheck/workspace.py): an array anyone can still see is never handed out
again, and a model computes the same numbers with recycling on and off."""
import gc

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import workspace
from lstmcheck.errors import LstmcheckError

BIG = (512, 300)          # 1.2 MB of float64: above workspace.MIN_BYTES


@pytest.fixture(autouse=True)
def _fresh_pool(monkeypatch):
    monkeypatch.delenv(workspace.ENV, raising=False)
    workspace.clear()
    yield
    workspace.clear()


def test_a_freed_array_is_handed_out_again():
    a = workspace.empty(np, BIG, np.float64)
    address = a.ctypes.data
    del a
    b = workspace.empty(np, BIG[::-1], np.float64)       # same size, any shape
    assert b.ctypes.data == address and b.shape == BIG[::-1]


@pytest.mark.parametrize("keep", ["array", "view", "slice_of_view", "in_a_dict", "transpose"])
def test_an_array_anyone_holds_is_never_handed_out(keep):
    a = workspace.empty(np, BIG, np.float64)
    a[...] = 7.0
    held = {"array": lambda: a, "view": lambda: a[1:],
            "slice_of_view": lambda: a[1:][:, 2:], "in_a_dict": lambda: {"t": a[5]},
            "transpose": lambda: a.T}[keep]()
    del a
    gc.collect()
    others = [workspace.empty(np, BIG, np.float64) for _ in range(3)]
    for o in others:
        o[...] = -1.0
    seen = held["t"] if keep == "in_a_dict" else held
    assert np.all(seen == 7.0)
    assert not any(np.shares_memory(seen, o) for o in others)


def test_small_arrays_dtypes_and_sizes_do_not_mix():
    small = workspace.empty(np, (10, 10), np.float64)
    assert small.base is None                            # plain np.empty, not pooled
    a = workspace.empty(np, BIG, np.float64)
    address = a.ctypes.data
    del a
    assert workspace.empty(np, BIG, np.float32).ctypes.data != address
    assert workspace.empty(np, (BIG[0] + 1, BIG[1]), np.float64).ctypes.data != address
    assert workspace.empty(np, BIG, np.float64).ctypes.data == address


def test_the_pool_holds_at_most_the_cap(monkeypatch):
    monkeypatch.setenv(workspace.ENV, "3")               # 3 MB: two 1.2 MB arrays at most
    arrays = [workspace.empty(np, BIG, np.float64) for _ in range(5)]
    assert sum(a.nbytes for a in workspace._pool) <= 3 << 20
    assert len({a.ctypes.data for a in arrays}) == 5     # the dropped ones live on with us
    arrays[1][...] = 1.0
    assert np.all(arrays[1] == 1.0)


def test_zero_turns_recycling_off(monkeypatch):
    monkeypatch.setenv(workspace.ENV, "0")
    a = workspace.empty(np, BIG, np.float64)
    assert a.base is None and not workspace._pool


@pytest.mark.parametrize("value", ["lots", "-1", "nan"])
def test_a_bad_cap_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv(workspace.ENV, value)
    with pytest.raises(LstmcheckError, match=workspace.ENV):
        workspace.empty(np, BIG, np.float64)


def _run(dtype, proj_size=0, seed=0):
    T, B, D, H = 60, 48, 40, 64          # tapes over MIN_BYTES, so recycling takes part
    m = lc.LSTM(D, H, proj_size=proj_size, dtype=dtype)
    p = m.init_params(seed=seed)
    r = np.random.default_rng(seed)
    x = r.standard_normal((T, B, D)).astype(dtype)
    dy = r.standard_normal((T, B, proj_size or H)).astype(dtype)
    y, state, tape = m.forward(p, x)
    return m, y, state, tape, dy


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("proj_size", [0, 16])
def test_a_held_tape_and_outputs_survive_later_calls(dtype, proj_size, monkeypatch):
    """The first call's outputs, tape and gradients stay as they were while later calls of the
    same shape (which recycle whatever is free) run, and equal a run with recycling off. The
    fused execution is forced: it is the one that recycles, and on a loaded machine the readable
    step may measure faster for this shape (it did in a CI run on a 2-core AMD EPYC)."""
    monkeypatch.setenv("LSTMCHECK_FUSED", "fused")
    m, y, state, tape, dy = _run(dtype, proj_size)
    y0, h0 = y.copy(), state[0].copy()
    before = workspace.reused
    for seed in (1, 2):                                   # other numbers, the same shapes
        m2, y2, _, tape2, dy2 = _run(dtype, proj_size, seed)
        m2.backward(tape2, dy2)
        del m2, y2, tape2
    assert workspace.reused > before                      # the later calls did recycle
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(state[0], h0)
    g = m.backward(tape, dy)
    workspace.clear()
    monkeypatch.setenv(workspace.ENV, "0")
    m_ref, y_ref, _, tape_ref, dy_ref = _run(dtype, proj_size)
    g_ref = m_ref.backward(tape_ref, dy_ref)
    np.testing.assert_array_equal(y, y_ref)
    for name in g_ref:
        np.testing.assert_array_equal(g[name], g_ref[name], err_msg=name)


def test_a_bad_cap_is_exit_2_and_one_line_in_the_cli(monkeypatch):
    from click.testing import CliRunner
    from lstmcheck.cli import cli
    monkeypatch.setenv(workspace.ENV, "lots")
    result = CliRunner().invoke(cli, ["gradcheck", "--cell", "lstm"])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("lstmcheck: error:") and workspace.ENV in lines[-1]
    assert "Traceback" not in result.output
