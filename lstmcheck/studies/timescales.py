"""The time-scales section: how far back the gradient reaches through a two-layer stack of every
cell in the study at one hidden size (so that the depth-gated LSTM's depth gate and the Grid
LSTM's depth transform take part), and the clockwork RNN's modules one by one, whose curves are
staircases with one step per update of the module.

The loss is L = sum_b <v_b, y_T[b]> on the top layer's last output (seeded unit vectors v_b);
the curves are the median over the batch of ||dL/dh_(T-k)|| of a layer, relative per sequence
to its latest nonzero value (probes.flow.relative_norms), from backwards of the whole stack.
For the modules, the loss is on one module's units at a time (a faster module reads the slower
ones at every step, so with the loss on all units every module's gradient changes every step).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..models import build
from ..probes.flow import relative_norms
from ..report import fig_timescales

STACK_LAYERS = 2
REACH = 1e-2            # "still reaches": at least 1% of the latest nonzero gradient


def _first_per_cell(subjects):
    """One subject per cell (the first: default initialisation), in study order."""
    seen = {}
    for s in subjects:
        seen.setdefault(s.cell, s)
    return list(seen.values())


class StackRun:
    """A two-layer stack of ``cell``, its forward on x, and backwards of the loss on y_T."""

    def __init__(self, cell, hidden_size, x, seed, dtype="float64", backend_name="numpy"):
        self.model = build(cell, x.shape[-1], hidden_size, num_layers=STACK_LAYERS, dtype=dtype,
                           backend=backend_name)
        self.y, _, self.tape = self.model.forward(self.model.init_params(seed=seed), x)
        v = backend.rng(seed).standard_normal((x.shape[1], self.model.output_size))
        self.v = v / np.linalg.norm(v, axis=1, keepdims=True)

    def trace(self, units=None):
        """dL/dh_t (T, B, H_out) of every layer-direction for L = sum_b <v_b, y_T[b]>, or with
        ``units`` (a bool mask of the top layer's units) the loss on those units only."""
        xp = backend.array_module(self.y)
        v = self.v if units is None else self.v * units
        dy = xp.zeros_like(self.y)
        dy[-1] = backend.asarray(v, xp, self.y.dtype)
        _, tr = self.model.backward_trace(self.tape, dy, trace=True)
        return [backend.to_host(a) for a in tr.dh]


def _curve(dh):
    """Median over the batch of the relative ||dL/dh_t||, indexed by lag (0 = the last step)."""
    rel = relative_norms(np.linalg.norm(dh, axis=-1))
    return np.median(rel[::-1], axis=1)


def _reach(curve):
    above = np.nonzero(np.nan_to_num(curve) >= REACH)[0]
    return int(above.max() + 1) if above.size else 0


def module_curves(run):
    """For a cell with modules (the clockwork RNN's ``periods``): per module i, with the loss on
    module i's units of the top layer's last output, the curve of module i's dL/dh_t there and
    the median spacing (in steps) between the lags where it changes (sequence 0)."""
    cell, H = run.model.cell, run.model.hidden_size
    units = cell.module_of(H)
    out = []
    for i, period in enumerate(cell.periods):
        if not np.any(units == i):           # an empty module (hidden_size < modules)
            continue
        g = run.trace(units == i)[-1][:, :, units == i]
        changes = [t for t in range(g.shape[0] - 1) if not np.array_equal(g[t, 0], g[t + 1, 0])]
        spacing = float(np.median(np.diff(changes))) if len(changes) > 1 else float("nan")
        out.append({"module": i, "period": int(period), "curve": _curve(g),
                    "changes": len(changes), "spacing": spacing})
    return out


def section_timescales(report, ctx):
    H = ctx.settings.get("hidden_size", 32)
    seed = ctx.settings.get("seed", 0)
    curves, modules, data = [], None, {}
    for s in _first_per_cell(ctx.subjects):
        run = StackRun(s.cell, H, s.x, seed, dtype=s.model.dtype.name,
                       backend_name=s.model.backend)
        model = run.model
        name = model.kind.upper()
        curve = _curve(run.trace()[0])
        reach = _reach(curve)
        curves.append({"label": name, "cell": s.cell, "lag": np.arange(curve.size),
                       "norm": curve})
        data[name] = {"lag": np.arange(curve.size), "bottom_layer_norm_rel": curve,
                      "steps_reached": reach}
        report.add_row(f"time scales: {name}", f"‖∂L/∂h_(T−k)‖ of layer 0 of {STACK_LAYERS} stays "
                       f"≥ {REACH:.0%} of its latest value for {reach} steps")
        if modules is None and getattr(model.cell, "periods", None) is not None:
            modules = {"label": name, "rows": module_curves(run)}
            data[name]["modules"] = modules["rows"]
            for m in modules["rows"]:
                report.add_row(f"time scales: {name} module {m['module']}",
                               f"period {m['period']}: with the loss on this module, its ∂L/∂h "
                               f"(top layer) changes every {m['spacing']:g} steps back "
                               f"({m['changes']} changes in {curve.size} steps)")
    report.results["timescales"] = data
    caption = (f"Left: median ‖∂L/∂h_(T−k)‖ of the bottom layer of a {STACK_LAYERS}-layer stack "
               f"of each cell at hidden size {H}, relative to its latest nonzero value, for a loss "
               f"on the top layer's last output (through time and depth).")
    if modules is not None:
        caption += (f" Right: the {modules['label']}'s top layer, one curve per module i for a "
                    f"loss on module i's last output: a module of period T_i carries its gradient "
                    f"unchanged between its updates, so its curve is a staircase with steps every "
                    + ", ".join(f"{m['spacing']:g}" for m in modules["rows"])
                    + " lags (periods " + ", ".join(str(m["period"]) for m in modules["rows"])
                    + ").")
    report.add_figure("timescales", caption, fig_timescales.timescales(curves, modules))
