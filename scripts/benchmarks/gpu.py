"""GPU rows (issue 7): forward+backward against PyTorch's cuDNN LSTM on the same GPU.

Runs only where CuPy sees a GPU and PyTorch has CUDA; otherwise prints why it was skipped.
"""
from __future__ import annotations

import numpy as np

import lstmcheck as lc
from lstmcheck import backend
from .common import gemm_gflops, row, timeit

SHAPES = [(64, 200, 128, 256), (256, 200, 512, 512), (8, 1000, 32, 64)]   # (B, T, D, H)
TARGET = {"float64": {(256, 200, 512, 512): 1.5}, "float32": {}}


def run(quick: bool = False) -> list[dict]:
    status = backend.gpu_status()
    if not status["available"]:
        return [row("GPU section skipped", 0.0, None, status["reason"])]
    cp = backend.get_xp("cupy")
    try:
        import torch
        has_cudnn = torch.cuda.is_available()
    except ImportError:
        torch, has_cudnn = None, False
    rows = []
    for B, T, D, H in (SHAPES[:1] if quick else SHAPES):
        for dtype in ("float32", "float64"):
            m = lc.LSTM(D, H, backend="cupy", dtype=dtype)
            p = m.init_params(seed=0)
            x = cp.asarray(np.random.default_rng(0).standard_normal((T, B, D)), dtype=dtype)
            dy = cp.ones((T, B, H), dtype)

            def ours():
                _, _, tape = m.forward(p, x)
                m.backward(tape, dy)
            t_ours = timeit(ours, 3, xp=cp)
            name = f"GPU LSTM fwd+bwd {dtype} (B,T,D,H)=({B},{T},{D},{H})"
            frac = 3 * 2 * T * B * (D + H) * 4 * H / t_ours / 1e9 / gemm_gflops(dtype, 4096, xp=cp)
            if not has_cudnn:
                rows.append(row(name, t_ours, frac, "fraction of CuPy GEMM throughput (no CUDA PyTorch)"))
                continue
            tdt = getattr(torch, dtype)
            mod = torch.nn.LSTM(D, H).to("cuda", tdt)
            xt = torch.randn(T, B, D, device="cuda", dtype=tdt, requires_grad=True)
            dyt = torch.ones(T, B, H, device="cuda", dtype=tdt)

            def theirs():
                y, _ = mod(xt)
                y.backward(dyt)
                torch.cuda.synchronize()
            t_cudnn = timeit(theirs, 3)
            target = TARGET[dtype].get((B, T, D, H), 3.0)
            rows.append(row(name, t_ours, t_ours / t_cudnn,
                            f"time / cuDNN time (target <= {target}); cuDNN {t_cudnn:.4f}s; "
                            f"{frac:.2f} of CuPy GEMM throughput"))
    return rows
