#!/usr/bin/env python
"""The default check on small problems: "auto" (screen, then elements where needed) against the
per-element complex step that "auto" ran before the screen (method="complex" still does), on the
same problems, in one run. Prints evaluations of fn (or batched model replicas) and seconds.

    python scripts/check_speed.py
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

import lstmcheck as lc  # noqa: E402
from planted import lstm as P  # noqa: E402


def best(f, n=3):
    t = []
    for _ in range(n):
        s = time.perf_counter()
        r = f()
        t.append(time.perf_counter() - s)
    return min(t), r


def problems():
    p, w = P.make(0, T=8, H=8, D=4)
    yield "planted LSTM H=8 D=4 T=8 (check_gradients)", \
        lambda method: lc.check_gradients(P.loss_fn(w), p, P.backward(p, w), method=method)
    for m, T in ((lc.LSTM(4, 8), 10), (lc.GRU(8, 16), 10), (lc.RNN(8, 32), 20)):
        x = np.random.default_rng(0).standard_normal((T, 2, m.input_size))
        pm = m.init_params(seed=0)
        yield f"{m.describe()} T={T} B=2 (gradcheck)", \
            (lambda method, m=m, pm=pm, x=x: lc.gradcheck(m, pm, x, method=method))


def main():
    print(f"{'problem':60s} {'auto evals':>10s} {'elem evals':>10s} {'auto s':>8s} "
          f"{'elem s':>8s} {'speed-up':>8s}")
    for name, run in problems():
        ta, ra = best(lambda: run("auto"))
        te, re_ = best(lambda: run("complex"))
        assert ra.passed == re_.passed
        print(f"{name[:60]:60s} {ra.details['evaluations']:10d} {re_.details['evaluations']:10d} "
              f"{ta:8.3f} {te:8.3f} {te / ta:7.1f}x")


if __name__ == "__main__":
    main()
