"""Forward+backward of a one-layer LSTM against PyTorch on the CPU (issue 2's speed target),
each in a process of its own, timed alternately: the headline ratio is a call right after
another (as a training loop or an audit runs), the row below it the first call after a pause.

Each shape also gets two floors measured in the same run: the same GEMMs with nothing else
(per-step GEMMs split over the CPU threads as the model does, all-step GEMMs as parallel.matmul
runs them),
and those GEMMs plus the 5 T B H gate transcendentals at NumPy's best rate. A floor's ratio to
PyTorch is the best any NumPy implementation of the cell can reach on this machine. A third
floor runs the same GEMMs through PyTorch's own BLAS (MKL or oneDNN on x86), in a process of
its own taking turns with ours and PyTorch's LSTM: no implementation whose GEMMs are no faster than
PyTorch's gets under that ratio, whatever it does between them.
"""
from __future__ import annotations

import numpy as np

import lstmcheck as lc
from lstmcheck import parallel
from .common import (SETTLE_S, gemm_gflops, row, timeit, timeit_pair,
                     timeit_isolated, transcendental_ns, transcendental_seconds)

SHAPES = [(64, 200, 128, 256), (32, 100, 64, 128)]   # (B, T, D, H)


def lstm_flops(B, T, D, H):
    """GEMM flops of forward + backward: forward 2TB(D+H)4H, backward twice that."""
    return 3 * 2 * T * B * (D + H) * 4 * H


def _ours(B, T, D, H, dtype):
    m = lc.LSTM(D, H, dtype=dtype)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, D)).astype(dtype)
    dy = np.ones((T, B, H), dtype)

    def step():
        _, _, tape = m.forward(p, x)
        m.backward(tape, dy)
    return step


def _ours_fresh(B, T, D, H, dtype):
    """_ours with every large array fresh from the operating system (workspace.py off)."""
    import os
    from lstmcheck import workspace
    os.environ[workspace.ENV] = "0"
    return _ours(B, T, D, H, dtype)


def _gemms(B, T, D, H, dtype):
    """Only the GEMMs of forward+backward, arranged as the model arranges them."""
    r = np.random.default_rng(0)
    X = r.standard_normal((T * B, D)).astype(dtype)
    W_ih = r.standard_normal((4 * H, D)).astype(dtype)
    W_hh = r.standard_normal((4 * H, H)).astype(dtype)
    W_hh_T = np.ascontiguousarray(W_hh.T)
    hs = r.standard_normal((T, B, H)).astype(dtype)
    dz = r.standard_normal((T, B, 4 * H)).astype(dtype)
    z = np.empty((B, 4 * H), dtype)
    dh = np.empty((B, H), dtype)

    def recurrent(lo, hi):
        for t in range(T):
            np.matmul(hs[t, lo:hi], W_hh_T, out=z[lo:hi])
        for t in range(T):
            np.matmul(dz[t, lo:hi], W_hh, out=dh[lo:hi])

    def step():
        with parallel.sequence_gemms(None):       # as the model runs them (parallel.matmul)
            parallel.matmul(X, W_ih.T)
            parallel.parallel_blocks(np, B, recurrent, work=4 * H * T)
            dz2 = dz.reshape(T * B, -1)
            parallel.matmul(dz2.T, hs.reshape(T * B, -1))
            parallel.matmul(dz2.T, X)
            parallel.matmul(dz2, W_ih)
    return step


def _torch_gemms(B, T, D, H, dtype):
    """_gemms' GEMMs, the same shapes in the same arrangement, by PyTorch's BLAS on its threads."""
    import torch
    tdt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    X, W_ih, W_hh, hs, dz = (torch.randn(*s, dtype=tdt, generator=g) for s in
                             ((T * B, D), (4 * H, D), (4 * H, H), (T, B, H), (T, B, 4 * H)))
    W_hh_T = W_hh.t().contiguous()
    z, dh = torch.empty(B, 4 * H, dtype=tdt), torch.empty(B, H, dtype=tdt)

    def step():
        with torch.no_grad():
            torch.mm(X, W_ih.t())
            for t in range(T):
                torch.mm(hs[t], W_hh_T, out=z)
            for t in range(T):
                torch.mm(dz[t], W_hh, out=dh)
            dz2 = dz.reshape(T * B, -1)
            torch.mm(dz2.t(), hs.reshape(T * B, -1))
            torch.mm(dz2.t(), X)
            torch.mm(dz2, W_ih)
    return step


def _has_torch():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def _torch(B, T, D, H, dtype):
    import torch
    tdt = getattr(torch, dtype)
    mod = torch.nn.LSTM(D, H).to(tdt)
    x = torch.randn(T, B, D, dtype=tdt, generator=torch.Generator().manual_seed(0), requires_grad=True)
    dy = torch.ones(T, B, H, dtype=tdt)

    def step():
        y, _ = mod(x)
        y.backward(dy)
    return step


def _snapshot(B, T, D, H, dtype):
    """(forward, the copies of params, x and the state its tape keeps): model.forward copies the
    caller's inputs so that an in-place change after it cannot reach backward."""
    from lstmcheck.models.recurrent import snapshot_inputs
    m = lc.LSTM(D, H, dtype=dtype)
    p = m.init_params(seed=0)
    r = np.random.default_rng(0)
    x = r.standard_normal((T, B, D)).astype(dtype)
    state = tuple(r.standard_normal(s).astype(dtype) for s in m.state_shapes(B))
    return (lambda: m.forward(p, x, state)), (lambda: snapshot_inputs(p, x, state))


def run(quick: bool = False) -> list[dict]:
    rows = []
    for dtype in ("float64", "float32"):
        ns = transcendental_ns(dtype)
        rows.append(row(f"NumPy's gate transcendentals, {dtype}, one thread", ns["tanh"] * 1e-9,
                        None, "ns an element: " + ", ".join(f"{k} {v:.2f}" for k, v in ns.items())))
    shapes = SHAPES[1:] if quick else SHAPES
    for B, T, D, H in shapes:
        for dtype in ("float64", "float32"):
            repeat = 1 if quick else 5
            name = f"LSTM fwd+bwd {dtype} (B,T,D,H)=({B},{T},{D},{H})"
            args = (B, T, D, H, dtype)
            paused = None
            if _has_torch():            # each in its own process, taking turns (common.py)
                turns = timeit_isolated((_ours, args), (_torch, args), (_torch_gemms, args),
                                        (_ours_fresh, args), repeat=repeat)
                t_ours, t_torch, t_torch_gemm, t_fresh = turns["back_to_back"]
                paused = turns["after_pause"]
            else:
                t_ours, t_torch = timeit(_ours(*args), repeat), None
            t_gemm = timeit(_gemms(B, T, D, H, dtype), repeat)
            t_tr = transcendental_seconds(5 * T * B * H, dtype)
            frac = lstm_flops(B, T, D, H) / t_ours / 1e9 / gemm_gflops(dtype)
            if t_torch is not None:
                target = 0.5 if dtype == "float64" else 1.0
                rows.append(row(name, t_ours, t_ours / t_torch,
                                f"time / PyTorch CPU time (target <= {target}); "
                                f"{frac:.2f} of numpy {dtype} GEMM throughput; torch {t_torch:.3f}s"))
                rows.append(row("  the first call after a pause", paused[0],
                                paused[0] / paused[1],
                                f"time / PyTorch's first call after a {SETTLE_S} s pause "
                                f"(torch {paused[1]:.3f}s)"))
                rows.append(row("  with fresh memory each call", t_fresh, t_fresh / t_torch,
                                f"/ PyTorch time; LSTMCHECK_WORKSPACE_MB=0 (recycled arrays "
                                f"take {t_ours / t_fresh:.2f} of its time)"))
                rows.append(row("  floor: its GEMMs alone", t_gemm, t_gemm / t_torch,
                                "GEMM time / PyTorch time"))
                rows.append(row(f"  floor: GEMMs + {5 * T * B * H} gate transcendentals",
                                t_gemm + t_tr, (t_gemm + t_tr) / t_torch,
                                f"/ PyTorch time; transcendentals alone {t_tr:.3f}s"))
                rows.append(row("  floor: the same GEMMs by PyTorch's own BLAS", t_torch_gemm,
                                t_torch_gemm / t_torch,
                                f"/ PyTorch time: no implementation with GEMMs no faster than "
                                f"PyTorch's gets under it (target {target})"))
            else:
                rows.append(row(name, t_ours, frac, f"fraction of numpy {dtype} GEMM throughput "
                                                    "(PyTorch not installed)"))
                rows.append(row("  floor: GEMMs + gate transcendentals", t_gemm + t_tr,
                                (t_gemm + t_tr) / t_ours, "floor / our time"))
            t_fwd, t_copy = timeit_pair(*_snapshot(B, T, D, H, dtype), repeat)
            rows.append(row("  the tape's copies of params, x, state", t_copy, t_copy / t_fwd,
                            f"/ forward time ({t_fwd:.3f}s, copies included)"))
    return rows
