"""BLAS threads under load: the model's GEMM shapes on 1 thread and on BLAS's own count, and what
lstmcheck's policy (models/kernels.blas_threads) picks for them now. Run it with and without
``--load`` to see the policy hold: on a loaded machine idle BLAS workers spin and lose. Last, what
a GEMM leaves behind: a row-split recurrence timed right after the projection GEMM on BLAS's own
threads, on one, and as the model runs it (parallel.matmul, on lstmcheck's threads). Between
them, the per-step GEMM with W_hh^T as a transposed view and as a contiguous copy."""
from __future__ import annotations

import time

import numpy as np

from lstmcheck import parallel
from lstmcheck.models import kernels
from .common import row, timeit, timeit_pair
from .models import SHAPES


def _gemm(a, b, out, threads):
    def go():
        with parallel.blas_threads(threads):
            np.matmul(a, b, out=out)
    return go


def run(quick: bool = False) -> list[dict]:
    if not parallel._blas_controllers():
        return [row("BLAS threads: threadpoolctl not installed", 0.0)]
    rows = []
    r = np.random.default_rng(0)
    shapes = SHAPES[1:] if quick else SHAPES
    for B, T, D, H in shapes:
        for dtype in ("float64", "float32"):
            # the input projection and the per-step recurrent GEMM of forward
            for m, k, n, what in ((T * B, D, 4 * H, "x W_ih^T, all steps"),
                                  (B, H, 4 * H, "h W_hh^T, one step")):
                a = r.standard_normal((m, k)).astype(dtype)
                b = r.standard_normal((k, n)).astype(dtype)
                out = np.empty((m, n), dtype)
                t1, tn = timeit_pair(_gemm(a, b, out, 1), _gemm(a, b, out, None),
                                     repeat=3 if quick else 15)
                pick = kernels.blas_threads(np, dtype, m, k, n)
                chosen = t1 if pick == 1 else tn
                rows.append(row(f"GEMM {dtype} ({m}x{k})@({k}x{n}) {what}", chosen, tn / t1,
                                f"n threads / 1 thread; policy picks "
                                f"{'1' if pick == 1 else 'n'} ({kernels.load_class()}): "
                                f"{min(t1, tn) / chosen:.2f} of the better"))
    rows += _hh_layouts(shapes, repeat=3 if quick else 30)
    B, T, D, H = SHAPES[1]
    rows += _aftermath(B, T, D, H, "float64", repeat=3 if quick else 10)
    return rows


def _hh_layouts(shapes, repeat):
    """The fused recurrence's per-step GEMM on one BLAS thread, for a whole batch and for one of
    two row blocks, with W_hh^T as the transposed view or a contiguous copy (kernels.hh_layout):
    OpenBLAS's kernels for the two layouts are not equally fast, and not alike by dtype."""
    rows = []
    r = np.random.default_rng(1)
    for B, T, D, H in shapes:
        for dtype in ("float64", "float32"):
            for m in (B, B // 2):
                W = r.standard_normal((4 * H, H)).astype(dtype)
                h = r.standard_normal((m, H)).astype(dtype)
                out = np.empty((m, 4 * H), dtype)
                tv, tc = timeit_pair(_gemm(h, W.T, out, 1),
                                     _gemm(h, np.ascontiguousarray(W.T), out, 1), repeat)
                pick = kernels.hh_layout(np, np.dtype(dtype), m, H, 4 * H)
                rows.append(row(f"h W_hh^T {dtype} ({m}x{H})@({H}x{4 * H}), view / copy", tv,
                                tv / tc, f"view time / copy time (copy {tc * 1e6:.1f} us); "
                                         f"kernels.hh_layout picks {pick}"))
    return rows


def _aftermath(B, T, D, H, dtype, repeat):
    """The recurrence (a step: h W_hh^T, then tanh; rows split over the CPU threads) right after
    the input projection by each of three executions: OpenBLAS's idle workers spin after a
    multithreaded call (about 0.1 s) and take cores from what follows."""
    r = np.random.default_rng(0)
    X = r.standard_normal((T * B, D)).astype(dtype)
    W_ih = r.standard_normal((D, 4 * H)).astype(dtype)
    h = r.standard_normal((B, H)).astype(dtype)
    W_hh = (r.standard_normal((H, 4 * H)) / H).astype(dtype)
    z = np.empty((B, 4 * H), dtype)

    def steps(lo, hi):
        for _ in range(T):
            np.matmul(h[lo:hi], W_hh, out=z[lo:hi])
            np.tanh(z[lo:hi], out=z[lo:hi])

    def after(project):
        t = [float("inf")]

        def go():
            project()
            t0 = time.perf_counter()
            parallel.parallel_blocks(np, B, steps, work=4 * H, min_work=0)
            t[0] = min(t[0], time.perf_counter() - t0)
        timeit(go, repeat)
        return t[0]

    def blas(n):
        def project():
            with parallel.blas_threads(n):
                X @ W_ih
        return project

    def ours():
        with parallel.sequence_gemms(None):
            parallel.matmul(X, W_ih)
    t_n, t_1, t_ours = after(blas(None)), after(blas(1)), after(ours)
    label = f"split recurrence {dtype} (B,H,T)=({B},{H},{T}) after a GEMM"
    return [row(f"{label} on BLAS's threads", t_n, t_n / t_1, "/ the time after a one-thread GEMM"),
            row(f"{label} on one BLAS thread", t_1, 1.0, ""),
            row(f"{label} on lstmcheck's threads", t_ours, t_ours / t_1,
                "/ the time after a one-thread GEMM (parallel.matmul, as the model runs it)")]
