"""Gradient-checker speed: the default verdict and the full per-element central audit on the
issue's LSTM (D=32, H=64, T=20, B=4, float64), against torch.autograd.gradcheck (slow mode) and
against this machine's own GEMM throughput."""
from __future__ import annotations

import time

import numpy as np

import lstmcheck as lc
try:
    from benchmarks.common import gemm_gflops, row, timeit
except ImportError:       # run as a script: python scripts/benchmarks/check.py
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.common import gemm_gflops, row, timeit


def _case(quick):
    D, H, T, B = (8, 16, 5, 2) if quick else (32, 64, 20, 4)
    m = lc.LSTM(D, H)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, D))
    return m, p, x, (D, H, T, B)


def _torch_seconds_per_number(D, H, T, B):
    """torch.autograd.gradcheck slow mode on the same LSTM shape: seconds per checked number."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(D, H).double()
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.zeros(1, B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.zeros(1, B, H, dtype=torch.float64, requires_grad=True)
    w = [torch.randn(T, B, H, dtype=torch.float64)]
    names = [n for n, _ in lstm.named_parameters()]
    ps = [q.detach().clone().requires_grad_(True) for q in lstm.parameters()]

    def f(*args):
        out, _ = torch.func.functional_call(lstm, dict(zip(names, args[:4])), (args[4], (args[5], args[6])))
        return (out * w[0]).sum()

    inputs = (*ps, x, h0, c0)
    n = sum(a.numel() for a in inputs)
    t0 = time.perf_counter()
    torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False)
    return (time.perf_counter() - t0) / n


def run(quick: bool) -> list:
    m, p, x, (D, H, T, B) = _case(quick)
    P = m.num_params() + x.size + 2 * B * H
    rows = []
    auto = timeit(lambda: lc.gradcheck(m, p, x), repeat=1 if quick else 3)
    # torch slow mode: measured on a smaller H (the full case takes about a minute)
    Hs = 4 if quick else 16
    per = _torch_seconds_per_number(min(D, 4) if quick else D, Hs, T, B)
    torch_est = None
    if per is not None:
        # per-number cost held constant: it only grows with H, so this understates torch
        torch_est = per * P
        rows.append(row("torch.autograd.gradcheck slow mode (extrapolated)", torch_est, None,
                        f"measured {per * 1e3:.3g} ms per number on H={Hs}, times {P} numbers "
                        f"(a lower bound for H={H})"))
    rows.append(row(f"gradcheck auto, {P} numbers", auto,
                    torch_est / auto if torch_est else None, "ratio: torch slow mode / lstmcheck"))
    # the full audit on both routes, alternating (the machine is shared): the loss-only replica
    # forward (models/replica_lstm.py) and the model's own forward with per-replica stand-ins
    import os
    best = {"replicas": float("inf"), "model": float("inf")}
    verdicts = {}
    saved = os.environ.get("LSTMCHECK_AUDIT_ROUTE")
    try:
        for _ in range(1 if quick else 2):
            for route in best:
                os.environ["LSTMCHECK_AUDIT_ROUTE"] = route
                t0 = time.perf_counter()
                r = lc.gradcheck(m, p, x, method="central")
                best[route] = min(best[route], time.perf_counter() - t0)
                verdicts[route] = r.verdict
    finally:
        if saved is None:
            os.environ.pop("LSTMCHECK_AUDIT_ROUTE", None)
        else:
            os.environ["LSTMCHECK_AUDIT_ROUTE"] = saved
    full = best["replicas"]
    flops = 2 * P * 2 * T * B * (D + H) * 4 * H          # 2P forwards, GEMM flops each
    frac = flops / full / 1e9 / gemm_gflops("float64")
    rows.append(row(f"gradcheck central, every element ({P})", full,
                    torch_est / full if torch_est else None,
                    f"ratio: torch slow mode / lstmcheck (target >= 10); {frac:.0%} of numpy "
                    f"float64 GEMM throughput counting {2 * P} forwards' GEMM flops; "
                    f"verdict {verdicts['replicas']}", gemm_fraction=frac))
    rows.append(row("  the same on the model's own forward (LSTMCHECK_AUDIT_ROUTE=model)",
                    best["model"], best["model"] / full,
                    f"/ the replica route's time; verdict {verdicts['model']}"))
    # what the replica route really multiplies: the recurrent GEMM of every perturbed forward
    # (the input projection is shared), so its own GEMM floor is lower than the nominal one
    rec_flops = 2 * P * 2 * T * B * (H + B) * 4 * H
    t_rec = rec_flops / 1e9 / gemm_gflops("float64")
    rows.append(row("  floor: the replica route's recurrent GEMMs alone", t_rec,
                    torch_est / t_rec if torch_est else None,
                    f"{rec_flops / 1e9:.0f} GFLOP at the numpy GEMM rate; ratio: torch / floor"))
    # (a floor with the gates' transcendentals added is not stated: counted at NumPy's rate on
    # whole arrays it came out above the replica route's measured time, so it bounds nothing)
    return rows


if __name__ == "__main__":
    import sys
    for r in run("--quick" in sys.argv):
        print(r)
