"""Gradient-checker speed: the default verdict and the full per-element central audit on the
issue's LSTM (D=32, H=64, T=20, B=4, float64), against torch.autograd.gradcheck (slow mode) and
against this machine's own GEMM throughput."""
from __future__ import annotations

import time

import numpy as np

import lstmcheck as lc
from lstmcheck import parallel
from lstmcheck.models import kernels
try:
    from benchmarks.common import gemm_gflops, row, timeit, transcendental_seconds
except ImportError:       # run as a script: python scripts/benchmarks/check.py
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.common import gemm_gflops, row, timeit, transcendental_seconds


def _case(quick):
    D, H, T, B = (8, 16, 5, 2) if quick else (32, 64, 20, 4)
    m = lc.LSTM(D, H)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, D))
    return m, p, x, (D, H, T, B)


def _torch_seconds_per_number(D, H, T, B):
    """torch.autograd.gradcheck slow mode on the same LSTM: seconds per checked number.

    Timed on the real model, with only its biases and h0, c0 asking for gradients (4 of its 7
    inputs, 8H + 2BH numbers): slow mode pays two forwards of the whole model per number,
    whichever input holds it (measured alike on the biases and on every input at H=16), so the
    per-number time carries to all inputs without the minute-long run of all of them."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(D, H).double()
    names = [n for n, _ in lstm.named_parameters()]
    x = torch.randn(T, B, D, dtype=torch.float64)
    h0 = torch.zeros(1, B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.zeros(1, B, H, dtype=torch.float64, requires_grad=True)
    w = torch.randn(T, B, H, dtype=torch.float64)
    ps = [q.detach().clone().requires_grad_(n.startswith("bias"))
          for n, q in zip(names, lstm.parameters())]

    def f(*args):
        out, _ = torch.func.functional_call(lstm, dict(zip(names, args[:4])),
                                            (args[4], (args[5], args[6])))
        return (out * w).sum()

    inputs = (*ps, x, h0, c0)
    n = sum(a.numel() for a in inputs if a.requires_grad)
    best = float("inf")
    for _ in range(2):                     # the first also warms torch up
        t0 = time.perf_counter()
        torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False)
        best = min(best, time.perf_counter() - t0)
    return best / n


def run(quick: bool) -> list:
    m, p, x, (D, H, T, B) = _case(quick)
    P = m.num_params() + x.size + 2 * B * H
    rows = []
    auto = timeit(lambda: lc.gradcheck(m, p, x), repeat=1 if quick else 3)
    per = _torch_seconds_per_number(D, H, T, B)
    torch_est = None
    if per is not None:
        torch_est = per * P
        rows.append(row("torch.autograd.gradcheck slow mode (per number x numbers)", torch_est,
                        None, f"measured {per * 1e3:.3g} ms per number on this model's "
                              f"{8 * H + 2 * B * H} bias and state numbers, times {P}"))
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
    # a cell the replica route does not cover (the model's own forward), by each sigmoid route
    g = lc.GRU(D, H)
    gp = g.init_params(seed=0)
    saved = os.environ.get("LSTMCHECK_SIGMOID_ROUTE")
    t_gru = dict.fromkeys(kernels.SIGMOID_ROUTES, float("inf"))
    try:
        for _ in range(1 if quick else 2):          # alternating, the machine is shared
            for route in t_gru:
                os.environ["LSTMCHECK_SIGMOID_ROUTE"] = route
                t0 = time.perf_counter()
                lc.gradcheck(g, gp, x, method="central")
                t_gru[route] = min(t_gru[route], time.perf_counter() - t0)
    finally:
        if saved is None:
            os.environ.pop("LSTMCHECK_SIGMOID_ROUTE", None)
        else:
            os.environ["LSTMCHECK_SIGMOID_ROUTE"] = saved
    first = kernels.SIGMOID_ROUTES[0]
    for route, t in t_gru.items():
        rows.append(row(f"  GRU, the same shape, central (sigmoid by {route})", t,
                        t / t_gru[first], f"/ the {first} route's time; chosen here: "
                        f"{kernels.sigmoid_route(np, np.float64)}"))
    # what the replica route really does: the recurrent GEMM of every perturbed forward (the
    # input projection is shared), and 5 transcendentals per unit, row and step
    n_fwd = 2 * (m.num_params())                   # the weight replicas; x, h0, c0 aside
    rec_flops = n_fwd * 2 * T * B * (H + B) * 4 * H
    t_rec = rec_flops / 1e9 / gemm_gflops("float64")
    n_tr = n_fwd * T * B * 5 * H
    t_tr = transcendental_seconds(n_tr, "float64")
    rows.append(row("  floor: the replica route's recurrent GEMMs", t_rec,
                    torch_est / t_rec if torch_est else None,
                    f"{rec_flops / 1e9:.0f} GFLOP at the numpy GEMM rate; ratio: torch / floor"))
    rows.append(row("  floor: those GEMMs + the replicas' gate transcendentals", t_rec + t_tr,
                    torch_est / (t_rec + t_tr) if torch_est else None,
                    f"{n_tr / 1e9:.2f} G at NumPy's fastest of tanh/expit/exp here "
                    f"({t_tr / n_tr * 1e9 * parallel.num_threads():.2f} ns each per thread); "
                    f"ratio: torch / floor"))
    return rows


if __name__ == "__main__":
    import sys
    for r in run("--quick" in sys.argv):
        print(r)
