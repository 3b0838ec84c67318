"""Moving gradients between a layout's tensors and the oracle's canonical parameters."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..errors import ConversionError
from .oracle import load_layout


class GradientMap:
    """How a layout's tensors feed the canonical parameters, to move gradients between them.

    Every layout load is a selection: each canonical element is one layout element or a constant
    (forget_bias folded in, a bias a layout lacks). Loading tensors whose elements hold their own
    index recovers it; a second load with doubled indices proves it is a selection. Then
    dL/d(layout element j) = sum of dL/d(canonical element i) over the i that read j."""

    def __init__(self, layout, tensors, cell, options):
        self.layout = layout
        self.shapes = {n: tuple(np.shape(a)) for n, a in tensors.items()}
        self.offsets, total = {}, 0
        for n, s in self.shapes.items():
            self.offsets[n] = total
            total += int(np.prod(s, dtype=np.int64))
        self.total = total
        codes = {n: (self.offsets[n] + 1 + np.arange(np.prod(s, dtype=np.int64), dtype=np.float64)).reshape(s)
                 for n, s in self.shapes.items()}
        _, p0 = load_layout(layout, {n: np.zeros(s) for n, s in self.shapes.items()}, cell, options)
        _, p1 = load_layout(layout, codes, cell, options)
        _, p2 = load_layout(layout, {n: 2 * c for n, c in codes.items()}, cell, options)
        self.source = {}
        for n in p0:
            d1 = np.rint(p1[n] - p0[n])
            if not np.array_equal(np.rint(p2[n] - p0[n]), 2 * d1) or d1.min() < 0 or d1.max() > total:
                raise ConversionError(f"layout {layout!r} does not load {n} by selecting elements, "
                                      f"so gradients cannot be moved between its tensors and the oracle's.")
            self.source[n] = d1.astype(np.int64).ravel() - 1      # -1: a constant
        self.names = list(self.shapes)

    def pullback(self, grads: dict) -> dict:
        """Canonical parameter gradients -> gradients of the layout's tensors."""
        flat = np.zeros(self.total)
        for n, src in self.source.items():
            g = np.asarray(backend.to_host(grads[n]), np.float64).ravel()
            keep = src >= 0
            np.add.at(flat, src[keep], g[keep])
        return {n: flat[self.offsets[n]:self.offsets[n] + int(np.prod(s, dtype=np.int64))].reshape(s)
                for n, s in self.shapes.items()}

    def canonical_of(self, name, index):
        """(canonical name, flat index) of the first canonical element reading a layout element."""
        j = self.offsets[name] + int(np.ravel_multi_index(index, self.shapes[name]))
        for n, src in self.source.items():
            hit = np.flatnonzero(src == j)
            if hit.size:
                return n, int(hit[0])
        return None, None
