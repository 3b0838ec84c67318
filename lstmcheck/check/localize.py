"""Bisection: from "tensor W is wrong along a random direction" to the wrong elements.

Segments are contiguous ranges of flat (row-major) indices. A tensor with gate blocks starts as
one segment per gate; a segment spanning several rows splits at a row boundary, a part of one row
splits in half, so the search runs tensor -> gate block -> row -> element. Every segment of a
level is tested at once (one batched evaluation) with a random direction supported on it, so one
wrong element costs O(log P) directional derivatives. When more than ``max_failing`` segments of
a level fail, the error is spread out: bisection stops and reports the failing region.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import methods


@dataclass
class Localization:
    leaves: list                      # flat indices of single wrong elements
    spread: list                      # (start, stop) ranges still failing when bisection stopped
    path: list = field(default_factory=list)   # per level: (segments tested, segments failing)
    evals: int = 0


def _split(seg, row_len):
    a, b = seg
    n = b - a
    if n > row_len and row_len > 1:
        rows = -(-n // row_len)
        mid = a + (rows // 2) * row_len
    else:
        mid = a + n // 2
    return [(a, mid), (mid, b)]


def localize(ev, grads, theta, name, mode, dtype, f0, F, rng, *, gates=1, nondet=0.0,
             max_failing=8, rtol=None, atol=None, extra=None) -> Localization:
    shape = np.shape(theta[name])
    size = int(np.prod(shape))
    row_len = int(shape[-1]) if len(shape) >= 2 else 1
    rows = size // row_len
    if gates > 1 and rows % gates == 0:
        step = (rows // gates) * row_len
        segments = [(k * step, (k + 1) * step) for k in range(gates)]
    else:
        segments = [(0, size)]
    out = Localization([], [])
    while segments:
        dirs = []
        for a, b in segments:
            v = np.zeros(size)
            # one element: the unit vector, an exact per-element check; else a Gaussian direction
            v[a:b] = 1.0 if b - a == 1 else rng.standard_normal(b - a)
            dirs.append({name: v.reshape(shape)})
        r = methods.directional(ev, grads, theta, dirs, mode, dtype, f0, F, nondet)
        ok, _, _ = methods.directional_passes(r, dtype, nondet, rtol, atol,
                                              extra=extra(dirs) if extra else None)
        out.evals += r.evals
        failing = [s for s, good in zip(segments, ok) if not good]
        out.path.append((len(segments), len(failing)))
        if len(failing) > max_failing:
            out.spread = failing
            break
        segments = []
        for s in failing:
            if s[1] - s[0] == 1:
                out.leaves.append(s[0])
            else:
                segments += _split(s, row_len)
    return out
