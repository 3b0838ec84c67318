"""Forward+backward of a one-layer LSTM against PyTorch on the CPU (issue 2's speed target)."""
from __future__ import annotations

import numpy as np

import lstmcheck as lc
from .common import gemm_gflops, row, timeit

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


def _torch(B, T, D, H, dtype):
    try:
        import torch
    except ImportError:
        return None
    tdt = getattr(torch, dtype)
    mod = torch.nn.LSTM(D, H).to(tdt)
    x = torch.randn(T, B, D, dtype=tdt, generator=torch.Generator().manual_seed(0), requires_grad=True)
    dy = torch.ones(T, B, H, dtype=tdt)

    def step():
        y, _ = mod(x)
        y.backward(dy)
    return step


def run(quick: bool = False) -> list[dict]:
    rows = []
    shapes = SHAPES[1:] if quick else SHAPES
    for B, T, D, H in shapes:
        for dtype in ("float64", "float32"):
            repeat = 1 if quick else 3
            t_ours = timeit(_ours(B, T, D, H, dtype), repeat)
            gflops = lstm_flops(B, T, D, H) / t_ours / 1e9
            frac = gflops / gemm_gflops(dtype)
            tstep = _torch(B, T, D, H, dtype)
            name = f"LSTM fwd+bwd {dtype} (B,T,D,H)=({B},{T},{D},{H})"
            if tstep is not None:
                t_torch = timeit(tstep, repeat)
                target = 0.5 if dtype == "float64" else 1.0
                rows.append(row(name, t_ours, t_ours / t_torch,
                                f"time / PyTorch CPU time (target <= {target}); "
                                f"{frac:.2f} of numpy {dtype} GEMM throughput; torch {t_torch:.3f}s"))
            else:
                rows.append(row(name, t_ours, frac, f"fraction of numpy {dtype} GEMM throughput "
                                                    "(PyTorch not installed)"))
    return rows
