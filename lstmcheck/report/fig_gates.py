"""Gate statistics: saturation heatmaps (gate × time) and the forget-gate time constants."""
from __future__ import annotations

import numpy as np

from .style import SEQUENTIAL, new_figure, series_colours


def gate_saturation_heatmaps(panels):
    """Fraction of saturated units per gate and time step, one heatmap per model.

    panels: dicts with label, gates (names, n_g), time (T,), saturation (n_g, T) in [0, 1].
    """
    fig, axes = new_figure(ncols=len(panels), width=2.9 * len(panels) + 0.9, height=2.9)
    im = None
    for ax, p in zip(axes, panels):
        sat = np.asarray(p["saturation"], dtype=float)
        t = np.asarray(p["time"], dtype=float)
        im = ax.imshow(sat, aspect="auto", origin="upper", cmap=SEQUENTIAL, vmin=0.0, vmax=1.0,
                       interpolation="nearest", extent=(t.min() - 0.5, t.max() + 0.5,
                                                        sat.shape[0] - 0.5, -0.5))
        ax.set_yticks(range(len(p["gates"])), [str(g) for g in p["gates"]])
        for j, row in enumerate(sat):      # the number behind each row, so zero reads as zero
            ax.text(t.mean(), j, f"mean {np.mean(row):.1%}, max {np.max(row):.1%}", ha="center",
                    va="center", fontsize=7, color="white" if np.mean(row) < 0.5 else "black")
        ax.set_xlabel("time step $t$")
        ax.set_title(p["label"])
        ax.grid(False)
    axes[0].set_ylabel("gate")
    if im is not None:
        fig.colorbar(im, ax=axes, label="saturated fraction of units\n(derivative < 1% of max)",
                     shrink=0.9)
    return fig


def gate_values_heatmaps(panels):
    """The memory gate of every unit over time (mean over the batch), one panel per model.

    panels: dicts with label, gate (its letter), time (T,), values (T, H) in [0, 1].
    """
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=2.9 * ncols + 0.9,
                           height=2.6 * nrows + 0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    im = None
    for ax, p in zip(axes, panels):
        v = np.asarray(p["values"], dtype=float)
        t = np.asarray(p["time"], dtype=float)
        im = ax.imshow(v.T, aspect="auto", origin="lower", cmap=SEQUENTIAL, vmin=0.0, vmax=1.0,
                       interpolation="nearest",
                       extent=(t.min() - 0.5, t.max() + 0.5, -0.5, v.shape[1] - 0.5))
        ax.set_xlabel("time step $t$")
        ax.set_title(f"{p['label']}: gate {p['gate']}")
        ax.grid(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("unit")
    if im is not None:
        fig.colorbar(im, ax=axes, label="gate value (mean over batch)", shrink=0.9)
    return fig


def forget_time_constants(panels):
    """Distribution of the forget gate's time constants τ = 1 / (1 − f̄) (steps), per model (the
    formula of lstmcheck.probes.gates).

    panels: dicts with label, cell, tau (H,) in steps.
    """
    fig, (ax,) = new_figure(width=4.6, height=3.2)
    taus = [np.asarray(p["tau"], dtype=float) for p in panels]
    finite = np.concatenate([t[np.isfinite(t) & (t > 0)] for t in taus]) if taus else np.ones(1)
    lo, hi = (max(float(finite.min()), 1e-2), float(finite.max())) if finite.size else (1e-2, 1.0)
    bins = np.geomspace(lo, max(hi, lo * 10), 30)
    styles = ("-", "--", ":", "-.")
    for i, (p, t, colour) in enumerate(zip(panels, taus,
                                           series_colours(p.get("cell") for p in panels))):
        ax.hist(np.clip(t[np.isfinite(t)], bins[0], bins[-1]), bins=bins, histtype="step",
                linewidth=1.5, color=colour, label=f"{p['label']} (H = {t.size})",
                linestyle=styles[i % len(styles)])
    ax.set_xscale("log")
    ax.set_xlabel(r"forget-gate time constant $\tau = 1/(1 - \bar f)$ (steps, log scale)")
    ax.set_ylabel("number of units")
    ax.set_title("Memory time scales")
    ax.legend(frameon=False)
    return fig
