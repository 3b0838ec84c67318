"""A 200-point gradient-flow sweep with 1 and 2 workers: the parallel speed-up of the executors.

Speed-up = (1-worker time) / (2-worker time) of the process pool, both measured here, including
pool or cluster start-up: that is what a user waits for. Each point runs
lstmcheck.probes.gradient_norms on a freshly initialised model, so the points are independent
and the ideal speed-up is the worker count, less process start-up.

Workers run single-threaded BLAS (as Dask's do); the in-process row runs with whatever BLAS
threads this process has, so its ratio to the 1-worker pool shows what BLAS threading costs (or
gains) on the small per-step GEMMs of a recurrence.
"""
from __future__ import annotations

import os
import time

import lstmcheck as lc
from .common import gemm_gflops, row

# 5 spectral radii x 4 forget biases x 10 seeds = 200 points
FULL = {"cell": "lstm", "hidden_size": 64, "seq_len": 50, "batch": 8, "init": "orthogonal",
        "spectral_radius": [0.5, 0.8, 1.0, 1.2, 1.5], "forget_bias": [-1.0, 0.0, 1.0, 2.0],
        "seed": list(range(10))}
QUICK = {**FULL, "hidden_size": 16, "seq_len": 20, "spectral_radius": [0.5, 1.0],
         "forget_bias": [0.0, 1.0], "seed": list(range(5))}   # 20 points


def _points(grid) -> int:
    from lstmcheck.sweep import expand_grid
    return len(expand_grid(grid))


def _time(grid, **how) -> float:
    t0 = time.perf_counter()
    recs = lc.sweep(grid, "gradient_flow", **how)
    dt = time.perf_counter() - t0
    bad = [r["error"] for r in recs if r["error"]]
    if bad:
        raise RuntimeError(f"benchmark sweep points failed: {bad[0]}")
    return dt


def run(quick: bool = False) -> list:
    grid = QUICK if quick else FULL
    n = _points(grid)
    # per-point GEMM flops of forward+backward (3 x the forward's 2TB(D+H)4H), vs machine peak
    D, H, T, B = 4, grid["hidden_size"], grid["seq_len"], grid["batch"]
    flops = 3 * 2 * T * B * (D + H) * 4 * H * n
    peak = gemm_gflops("float64") * 1e9
    t0 = _time(grid)
    rows = [row(f"sweep {n} points, in-process", t0, None,
                f"{n / t0:.1f} points/s; {flops / t0 / peak:.3f} of GEMM peak")]
    t1 = _time(grid, executor="process", workers=1)
    rows.append(row(f"sweep {n} points, process pool, 1 worker", t1, t0 / t1,
                    "speed-up vs in-process (1 BLAS thread per worker)"))
    workers = 2
    t2 = _time(grid, executor="process", workers=workers)
    rows.append(row(f"sweep {n} points, process pool, {workers} workers", t2, t1 / t2,
                    f"speed-up vs 1 worker ({os.cpu_count()} CPUs)", speedup=t1 / t2))
    try:
        import distributed  # noqa: F401
    except ImportError:
        return rows
    if not quick:
        td = _time(grid, executor="dask", workers=workers)
        rows.append(row(f"sweep {n} points, Dask LocalCluster, {workers} workers", td, t1 / td,
                        "speed-up vs the 1-worker pool, cluster start-up included",
                        speedup=t1 / td))
    return rows


if __name__ == "__main__":
    for r in run(quick=False):
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        print(f"{r['name']:<50} {r['seconds']:8.2f}s {ratio:>7}  {r['note']}")
