"""Checker and audit figures: error histograms, per-gate error heatmaps, audit bars."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm

from .style import OKABE_ITO, SEQUENTIAL, new_figure

_FLOOR = 1e-18  # an exact zero error is drawn at this floor on log axes


def error_histogram(groups, *, tolerance=None, xlabel="relative error |analytic − numeric| / scale",
                    unit="elements"):
    """Histogram of per-element errors on log-spaced bins, one outline per group.

    groups: dicts with label and errors (any shape); tolerance: a vertical reference line.
    """
    fig, (ax,) = new_figure(width=5.2, height=3.3)
    errs = [np.maximum(np.abs(np.ravel(np.asarray(g["errors"], dtype=float))), _FLOOR)
            for g in groups]
    finite = np.concatenate([e[np.isfinite(e)] for e in errs]) if errs else np.ones(1)
    lo = float(finite.min()) if finite.size else _FLOOR
    hi = max(float(finite.max()) if finite.size else 1.0, tolerance or 0.0, lo * 100)
    bins = np.geomspace(lo / 2, hi * 2, 40)
    for i, (g, e) in enumerate(zip(groups, errs)):
        ax.hist(e[np.isfinite(e)], bins=bins, histtype="step", linewidth=1.5,
                color=[OKABE_ITO[k] for k in ("blue", "vermillion", "green", "orange",
                                              "purple", "sky", "black")][i % 7],
                label=f"{g['label']} ({e.size} {unit})")
    if tolerance:
        ax.axvline(tolerance, color="black", linestyle="--", linewidth=1.0,
                   label=f"tolerance {tolerance:.1g}")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"number of {unit}")
    ax.set_title("Gradient-check errors")
    ax.legend(frameon=False)
    return fig


def error_heatmap(matrix, rows, cols, *, title="Largest error per tensor and gate",
                  label="max relative error", xlabel="gate"):
    """A log-coloured rows × cols heatmap (e.g. tensor × gate), each cell annotated; NaN = n/a."""
    m = np.asarray(matrix, dtype=float)
    fig, (ax,) = new_figure(width=1.2 + 0.9 * len(cols) + 1.2, height=0.8 + 0.32 * len(rows))
    shown = np.where(np.isfinite(m), np.maximum(m, _FLOOR), np.nan)
    finite = shown[np.isfinite(shown)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (1e-16, 1.0)
    norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10))
    im = ax.imshow(shown, cmap=SEQUENTIAL, norm=norm, aspect="auto", interpolation="nearest")
    for (i, j), v in np.ndenumerate(m):
        text = "n/a" if not np.isfinite(v) else f"{v:.0e}"
        dark = np.isfinite(v) and norm(max(v, _FLOOR)) < 0.5
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=label)
    return fig


def audit_bars(rows):
    """Worst |difference| / tolerance per compared tensor (≤ 1 passes), on a log axis.

    rows: dicts with check, tensor, ratio, passed.
    """
    fig, (ax,) = new_figure(width=5.6, height=0.9 + 0.24 * max(1, len(rows)))
    labels = [f"{r['check']}: {r['tensor']}" for r in rows]
    ratio = np.array([r["ratio"] if np.isfinite(r["ratio"]) else 1e6 for r in rows], dtype=float)
    colours = [OKABE_ITO["blue"] if r["passed"] else OKABE_ITO["vermillion"] for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, np.maximum(ratio, 1e-6), color=colours)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1.0, label="tolerance")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("worst |target − oracle| / tolerance (≤ 1 passes; red: fails)")
    ax.set_title("Audit against the oracle")
    ax.legend(frameon=False, loc="lower right")
    return fig
