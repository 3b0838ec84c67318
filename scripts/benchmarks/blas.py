"""BLAS threads under load: the model's GEMM shapes on 1 thread and on BLAS's own count, and what
lstmcheck's policy (models/kernels.blas_threads) picks for them now. Run it with and without
``--load`` to see the policy hold: on a loaded machine idle BLAS workers spin and lose."""
from __future__ import annotations

import numpy as np

from lstmcheck import parallel
from lstmcheck.models import kernels
from .common import row, timeit_pair
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
    return rows
