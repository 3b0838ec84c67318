"""The time-scales figure: gradient norm against lag through a stack of each cell, and a
clockwork RNN's modules one by one. Plain host arrays in, a matplotlib Figure out."""
from __future__ import annotations

import numpy as np

from .fig_flow import LAG, _positive
from .style import CYCLE, log_if_spans_decades, new_figure, series_colours


def timescales(curves, modules=None):
    """curves: dicts with label, cell, lag, norm (relative, by lag). modules: None, or a dict with
    label and rows (module, period, curve) of a cell with clock periods: a second panel."""
    fig, axes = new_figure(ncols=2 if modules else 1, width=10.0 if modules else 6.4, height=3.8)
    ax = axes[0]
    values = []
    for c, colour in zip(curves, series_colours(c.get("cell") for c in curves)):
        v = _positive(c["norm"])
        ax.plot(c["lag"], v, color=colour, label=c["label"])
        values.append(v)
    log_if_spans_decades(ax, np.concatenate(values) if values else [])
    ax.set_xlabel(LAG)
    ax.set_ylabel(r"$\|\partial L/\partial h^{0}_{T-k}\|$ (relative)")
    ax.set_title("Through time and depth: layer 0 of a 2-layer stack")
    ax.legend(frameon=False, fontsize=7)
    if modules:
        ax = axes[1]
        values = []
        for m, colour in zip(modules["rows"], CYCLE):
            v = _positive(m["curve"])
            lag = np.arange(v.size)
            ax.step(lag, v, where="post", color=colour,
                    label=f"module {m['module']}, period {m['period']}")
            values.append(v)
        log_if_spans_decades(ax, np.concatenate(values) if values else [])
        ax.set_xlabel(LAG)
        ax.set_ylabel(r"$\|\partial L/\partial h_{T-k}\|$ of the module (relative)")
        ax.set_title(f"{modules['label']}: one time scale per module")
        ax.legend(frameon=False, fontsize=7)
    return fig
