"""Gradient-flow probes at the sizes issue 4 names (float64, CPU):

- gradient_norms, LSTM H=256, B=8, T=10,000: <= 30 s and <= 1 GiB peak (tracemalloc);
- jacobian_spectrum, H=128, T=1,000 (LSTM: state (h, c), n = 256; RNN: n = 128): <= 30 s;
- full Lyapunov spectrum, H=128, T=10,000 (RNN n = 128; LSTM n = 256): <= 60 s.

Ratios: the share of this machine's GEMM throughput that the probe's dense work reaches (its
nominal flops / time / GEMM flop rate) — measured in this run, so comparable across machines.
"""
from __future__ import annotations

import time
import tracemalloc

import lstmcheck as lc
from lstmcheck import probes
from .common import gemm_gflops, row


def _once(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _gradient_norms(T, H=256, B=8, D=32):
    model = lc.LSTM(D, H)
    params = model.init_params(0)
    x = lc.tasks.noise(T, B, D, seed=1).x
    tracemalloc.start()
    seconds, r = _once(lambda: probes.gradient_norms(model, params, x))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # two forwards (checkpoint + recompute) and one backward: 4 GEMM passes of 2*B*(D+H)*4H
    flops = 4 * 2 * T * B * (D + H) * 4 * H
    return row(f"gradient_norms LSTM H={H} B={B} T={T}", seconds,
               flops / seconds / 1e9 / gemm_gflops(), f"peak {peak / 2**20:.0f} MiB (tracemalloc), "
               f"segment {r.meta['segment']}, horizon90 {r.horizon[0.9]}",
               peak_bytes=peak)


def _spectrum(cell, T, H=128, D=32):
    model = lc.build(cell, D, H)
    params = model.init_params(0)
    x = lc.tasks.noise(T, 1, D, seed=1).x
    seconds, r = _once(lambda: probes.jacobian_spectrum(model, params, x))
    n = r.meta["n"]
    flops = T * (2 * n ** 3 + 4 * n ** 3)            # product update + singular values (~4 n^3)
    return row(f"jacobian_spectrum {cell.upper()} H={H} (n={n}) T={T}", seconds,
               flops / seconds / 1e9 / gemm_gflops(), f"cond at max lag {r.condition_number[-1]:.2e}")


def _lyapunov(cell, T, H=128, D=32):
    model = lc.build(cell, D, H)
    params = model.init_params(0)
    x = lc.tasks.noise(T, 1, D, seed=1).x
    seconds, r = _once(lambda: probes.lyapunov_spectrum(model, params, x))
    n = r.meta["n"]
    qrs = r.meta["warmup"] + (T - r.meta["warmup"]) / r.meta["reorth"]
    flops = T * 2 * n ** 3 + qrs * 8 / 3 * n ** 3     # J @ Q + Householder QR with Q formed
    return row(f"lyapunov_spectrum (full) {cell.upper()} H={H} (n={n}) T={T}", seconds,
               flops / seconds / 1e9 / gemm_gflops(),
               f"lambda1 {r.exponents[0]:+.4f} (perturbation {r.lambda1_perturbation:+.4f}), "
               f"reorth {r.meta['reorth']}")


def run(quick: bool) -> list[dict]:
    """quick: a smoke run at small sizes (same code paths)."""
    T_long, T_jac, H = (200, 50, 32) if quick else (10_000, 1_000, 128)
    rows = [_gradient_norms(T_long, H=2 * H)]
    for cell in ("rnn", "lstm"):
        rows.append(_spectrum(cell, T_jac, H=H))
    for cell in ("rnn", "lstm"):
        rows.append(_lyapunov(cell, T_long, H=H))
    return rows
