#!/usr/bin/env python
"""Measure what check_gradients resolves in float32, over honest float32 configurations.

For each configuration (the tests' hand-written NumPy LSTM and the project's LSTM/GRU/RNN run in
float32, gates up to saturation, T up to 50) it prints: the float32 rounding measured on fn
(round-offs of |fn|), the honest gradient's largest element error and normwise error in float32
round-offs, the verdict on the honest gradient, the stated resolution, and whether a planted
1e-3 error on one significant element and a 1e-4 scale error of a whole tensor are caught.

    python scripts/float32_resolution.py            # every configuration
    python scripts/float32_resolution.py --quick    # a few
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

import lstmcheck as lc  # noqa: E402
from planted import lstm as P  # noqa: E402


def planted(seed, T, scale):
    p, w = P.make(seed, T=T, scale=scale, dtype=np.float32)
    g64 = P.backward({k: v.astype(np.float64) for k, v in p.items()},
                     {k: v.astype(np.float64) for k, v in w.items()})
    return f"planted LSTM seed={seed} T={T} scale={scale}", P.loss_fn(w), p, P.backward(p, w), \
        g64, "Wh", "Wx"


def oracle(cell, seed, T, scale, **kw):
    """fn runs the project's model in whatever precision its parameters have."""
    make = {"lstm": lc.LSTM, "gru": lc.GRU, "rnn": lc.RNN}[cell]
    m32 = make(3, 4, dtype="float32", **kw)
    rng = np.random.default_rng(seed)
    p = m32.init_params(seed=seed, scale=scale)
    x = rng.standard_normal((T, 2, 3)).astype(np.float32)
    y, _, _ = m32.forward(p, x)
    wy = rng.standard_normal(y.shape)
    models = {np.dtype("float32"): m32, np.dtype("float64"): make(3, 4, **kw),
              np.dtype("complex128"): make(3, 4, dtype="complex128", **kw)
              if False else None}

    def fn(q):
        dt = np.dtype(next(iter(q.values())).dtype)
        m = models.get(dt) or make(3, 4, dtype=dt.name, **kw)
        return np.sum(m.forward(q, x.astype(dt))[0] * wy)

    def grads(q):
        dt = np.dtype(next(iter(q.values())).dtype)
        m = models[dt]
        _, _, tape = m.forward(q, x.astype(dt))
        g = m.backward(tape, wy.astype(dt))
        return {n: np.asarray(g[n], np.float64) for n in m.param_names}

    g64 = grads({k: v.astype(np.float64) for k, v in p.items()})
    return (f"lc.{cell.upper()}{kw or ''} seed={seed} T={T} init scale={scale}", fn, p, grads(p),
            g64, "weight_hh_l0", "weight_ih_l0")


def configs(quick):
    if quick:
        yield planted(0, 20, 3.0)
        yield oracle("gru", 0, 20, 2.0)
        return
    for seed in range(4):
        for T in (5, 20, 50):
            for scale in (1.0, 3.0, 6.0):
                yield planted(seed, T, scale)
    for cell, kw in (("lstm", {}), ("lstm", {"variant": "peephole"}), ("gru", {}), ("rnn", {})):
        for T, scale in ((10, 1.0), (50, 3.0)):
            yield oracle(cell, 1, T, scale, **kw)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    u = float(np.finfo(np.float32).eps)
    print(f"{'configuration':44s} {'fn32 ulps':>9s} {'elem ulps':>9s} {'norm ulps':>9s} "
          f"{'honest':>8s} {'resolution':>10s} {'1e-3 el':>7s} {'1e-4 T':>7s}")
    res, alarms, misses, n = [], 0, 0, 0
    for name, fn, p, g, g64, el_tensor, scale_tensor in configs(args.quick):
        n += 1
        el = max(float(np.max(np.abs(g[k] - g64[k]) / (u * (np.abs(g64[k])
                                                            + np.abs(g64[k]).max())))) for k in g64)
        nw = max(float(np.linalg.norm(g[k] - g64[k]) / (u * np.linalg.norm(g64[k]))) for k in g64)
        r = lc.check_gradients(fn, p, g)
        kappa = r.details.get("low_precision", {}).get("measured_roundoffs", float("nan"))
        one = {k: v.copy() for k, v in g.items()}
        j = np.unravel_index(np.argmax(np.abs(g64[el_tensor])), g64[el_tensor].shape)
        one[el_tensor][j] *= np.float32(1 + 1e-3)
        whole = {k: v.copy() for k, v in g.items()}
        whole[scale_tensor] = whole[scale_tensor] * np.float32(1 + 1e-4)
        c1 = not lc.check_gradients(fn, p, one).passed
        c2 = not lc.check_gradients(fn, p, whole).passed
        alarms += not r.passed
        misses += (not c1) + (not c2)
        res.append(r.resolution)
        print(f"{name[:44]:44s} {kappa:9.3g} {el:9.3g} {nw:9.3g} {r.verdict:>8s} "
              f"{r.resolution:10.2g} {'caught' if c1 else 'MISSED':>7s} "
              f"{'caught' if c2 else 'MISSED':>7s}")
    print(f"\n{n} honest float32 configurations: {alarms} false alarms; {misses} of {2 * n} "
          f"planted errors missed; stated per-element resolution median {np.median(res):.2g}, "
          f"max {np.max(res):.2g}")


if __name__ == "__main__":
    main()
