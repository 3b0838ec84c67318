"""Gradient-flow figures: norm against lag with theory overlays, Jacobian singular values,
Lyapunov spectra, effective horizon, and the vanishing/exploding phase diagram.

Every function takes plain host arrays (what results.json stores) and returns a matplotlib
Figure; turning probe results into these arrays is the caller's business (lstmcheck/study.py).
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from .style import MARKERS, SEQUENTIAL, log_if_spans_decades, new_figure, series_colours

LAG = "lag $k = T - t$ (steps back from the loss)"


TINY = np.finfo(np.float64).tiny


def _positive(a, tiny=TINY):
    """Values a log axis can show: zeros and subnormals (below ``tiny``, the smallest normal
    number of the data's dtype: no relative precision left) become NaN."""
    a = np.asarray(a, dtype=float)
    return np.where(a >= tiny, a, np.nan)


def _before(lag, values, stop, tiny=TINY):
    """``values`` where ``lag < stop`` (the lag where the norm underflows), NaN from there on."""
    values = _positive(values, tiny)
    if stop is None:
        return values
    return np.where(np.asarray(lag) < stop, values, np.nan)


def underflow_text(quantity, lag, tiny):
    """The note shown wherever a curve stops: '<quantity> underflows (below 2.2e-308) from lag k'."""
    return f"{quantity} underflows (below {tiny:.2g}) from lag {lag}"


def _note(ax, lines, loc="lower left"):
    """Small text notes in a corner of the axes (on a white box, readable over lines)."""
    if not lines:
        return
    x, ha = (0.02, "left") if "left" in loc else (0.98, "right")
    y, va = (0.03, "bottom") if "lower" in loc else (0.97, "top")
    ax.text(x, y, "\n".join(lines), transform=ax.transAxes, ha=ha, va=va, fontsize=7,
            bbox={"facecolor": "white", "edgecolor": "#999999", "alpha": 0.85, "pad": 2})


def gradient_norm_vs_lag(curves, *, ylabel=r"$\|\partial L/\partial h_{T-k}\|$ (relative to $k = 0$)"):
    """One line per curve, with its IQR band over sequences; dashed: its theory overlay,
    dotted: the LSTM cell-state norm. Every curve also has its own marker, so curves that
    coincide stay visible.

    curves: dicts with label, cell, lag, norm, and optionally band ((n_lag, 2) quartiles),
    n (sequences), theory, theory_label, norm_c, band_c, and underflow_lag / c_underflow_lag
    (the first lag whose absolute norm is subnormal or 0 in the model's dtype, whose smallest
    normal number is ``tiny``) and overflow_lag (where the norm overflowed): a curve stops there,
    a dash-dotted line marks the lag and a note on the axes says so. Zeros and subnormals are
    never plotted.
    """
    fig, (ax,) = new_figure(width=6.4, height=3.8)
    values, notes = [], []
    for i, (c, colour) in enumerate(zip(curves, series_colours(c.get("cell") for c in curves))):
        lag = np.asarray(c["lag"])
        tiny = c.get("tiny", TINY)
        n = f" (n = {c['n']})" if c.get("n") else ""
        series = [("norm", "band", "underflow_lag", "‖∂L/∂h‖", "-", "‖∂L/∂h_t‖")]
        if c.get("norm_c") is not None:
            series.append(("norm_c", "band_c", "c_underflow_lag", "‖∂L/∂c‖", ":", "‖∂L/∂c_t‖"))
        every = max(1, len(lag) // 12)
        for key, band_key, stop_key, name, style, quantity in series:
            stop = _first(c.get(stop_key), c.get("overflow_lag"))
            v = _before(lag, c[key], stop, tiny)
            ax.plot(lag, v, color=colour, linestyle=style, marker=MARKERS[i % len(MARKERS)],
                    markersize=3, markevery=(i % every, every), label=f"{c['label']}: {name}{n}")
            if c.get(band_key) is not None:
                band = np.asarray(c[band_key], dtype=float)
                ax.fill_between(lag, _before(lag, band[:, 0], stop, tiny),
                                _before(lag, band[:, 1], stop, tiny), color=colour, alpha=0.15,
                                linewidth=0)
            values.append(v)
            if c.get(stop_key) is not None:
                ax.axvline(c[stop_key], color=colour, linestyle="-.", linewidth=0.9)
                notes.append(f"{c['label']}: " + underflow_text(quantity, c[stop_key], tiny))
        if c.get("overflow_lag") is not None:
            ax.axvline(c["overflow_lag"], color=colour, linestyle="-.", linewidth=0.9)
            notes.append(f"{c['label']}: the gradient overflows (exploding) from lag "
                         f"{c['overflow_lag']}")
        if c.get("truncated_lag") is not None:
            ax.axvline(c["truncated_lag"], color=colour, linestyle=(0, (1, 1)), linewidth=1.0)
            notes.append(f"{c['label']}: truncated BPTT, no gradient from lag "
                         f"{c['truncated_lag']}")
        if c.get("compare") is not None:      # the same model without truncation / clipping
            ax.plot(lag, _positive(c["compare"], tiny), color=colour, linewidth=3.0, alpha=0.3,
                    label=c.get("compare_label") or f"{c['label']}: comparison")
        if c.get("theory") is not None:
            ax.plot(lag, _positive(c["theory"], tiny), color=colour, linestyle="--", linewidth=1.1,
                    alpha=0.8, label=c.get("theory_label") or f"{c['label']}: theory")
    log_if_spans_decades(ax, np.concatenate([np.ravel(v) for v in values]) if values else [])
    _note(ax, notes)
    ax.set_xlabel(LAG)
    ax.set_ylabel(ylabel + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title("Gradient flow back through time (median, IQR shaded)")
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    if max(map(len, labels), default=0) > 45:   # long labels (file paths): below the axes
        fig.set_size_inches(7.5, 3.8 + 0.17 * len(labels))
        fig.legend(loc="outside lower center", frameon=False, ncols=1)
    elif len(ax.get_lines()) > 6:   # a long legend goes beside the axes, not over the lines
        fig.set_size_inches(9.5, 3.8)
        fig.legend(loc="outside right upper", frameon=False)
    else:
        ax.legend(frameon=False)
    return fig


def _first(*lags):
    lags = [k for k in lags if k is not None]
    return min(lags) if lags else None


def flow_table(curves) -> list:
    """The numbers gradient_norm_vs_lag plots, as tidy rows: model, quantity, lag, the median
    and the quartiles of the relative norm over the sequences, n, and the theory line (blank
    where a curve stops)."""
    rows = []
    for c in curves:
        lag = np.asarray(c["lag"])
        tiny = c.get("tiny", TINY)
        for key, band_key, stop_key, q in (("norm", "band", "underflow_lag", "h"),
                                           ("norm_c", "band_c", "c_underflow_lag", "c")):
            if c.get(key) is None:
                continue
            stop = _first(c.get(stop_key), c.get("overflow_lag"))
            med = _before(lag, c[key], stop, tiny)
            band = np.asarray(c[band_key], dtype=float) if c.get(band_key) is not None else None
            theory = _positive(c["theory"], tiny) if c.get("theory") is not None else None
            for k in range(lag.size):
                rows.append({"model": c["label"], "quantity": f"dL/d{q}", "lag": int(lag[k]),
                             "median_rel": med[k],
                             "q25_rel": _before(lag, band[:, 0], stop, tiny)[k] if band is not None else None,
                             "q75_rel": _before(lag, band[:, 1], stop, tiny)[k] if band is not None else None,
                             "n": c.get("n"),
                             "theory_exp_lambda1_k": theory[k] if theory is not None else None})
    return rows


def jacobian_heatmaps(panels):
    """Singular values of ∂s_T/∂s_{T−k}: one lag × index heatmap per panel, log colour scale.

    panels: dicts with label, lag (n_lags,), log10_sv (n_lags, n_sv), descending per row
    (logs, so that values that underflow to 0 still show), and optionally underflow_lag (the
    first lag whose largest singular value is below ``tiny``, the dtype's smallest normal
    number): a dashed line marks it, with a note in the panel.
    """
    fig, axes = new_figure(ncols=len(panels), width=2.6 * len(panels) + 1.0, height=3.2)
    logs = [np.asarray(p["log10_sv"], dtype=float) for p in panels]
    finite = np.concatenate([v[np.isfinite(v)] for v in logs]) if logs else np.zeros(1)
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    im = None
    for ax, p, v in zip(axes, panels, logs):
        lag = np.asarray(p["lag"], dtype=float)
        im = ax.imshow(v, aspect="auto", origin="lower", cmap=SEQUENTIAL, vmin=vmin, vmax=vmax,
                       interpolation="nearest",
                       extent=(0.5, v.shape[1] + 0.5, lag.min() - 0.5, lag.max() + 0.5))
        ax.set_title(p["label"])
        ax.set_xlabel("singular value index $i$")
        ax.grid(False)
        k = p.get("underflow_lag")
        if k is not None:   # below: the values themselves are subnormal or 0, only the logs hold
            ax.axhline(k - 0.5, color="white", linestyle="--", linewidth=1.2)
            _note(ax, [underflow_text("σ₁", k, p.get("tiny", TINY))], loc="upper right")
    axes[0].set_ylabel("lag $k$ (steps)")
    if im is not None:
        fig.colorbar(im, ax=axes, label=r"$\log_{10}\,\sigma_i(\partial s_T/\partial s_{T-k})$",
                     shrink=0.9)
    return fig


def lyapunov_figure(spectra, convergence=None):
    """Left: Lyapunov exponents λ₁ ≥ λ₂ ≥ … per model. Right: running estimates of the
    leading exponents against the number of steps (QR iterations), showing convergence.

    spectra: dicts with label, cell, exponents (n,). convergence: dicts with label, cell,
    steps (n_steps,), estimates (n_steps, m) for the leading m exponents.
    """
    ncols = 2 if convergence else 1
    fig, axes = new_figure(ncols=ncols, width=3.5 * ncols + 0.6, height=3.4)
    ax = axes[0]
    for i, (s, colour) in enumerate(zip(spectra, series_colours(s.get("cell") for s in spectra))):
        lam = np.asarray(s["exponents"], dtype=float)
        ax.plot(np.arange(1, lam.size + 1), lam, marker=MARKERS[i % len(MARKERS)], markersize=2.5,
                color=colour, label=s["label"])
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("exponent index $i$")
    ax.set_ylabel(r"$\lambda_i$ (nats per step)")
    ax.set_title("Lyapunov spectrum")
    ax.legend(frameon=False)
    if convergence:
        ax = axes[1]
        for c, colour in zip(convergence, series_colours(c.get("cell") for c in convergence)):
            est = np.atleast_2d(np.asarray(c["estimates"], dtype=float).T).T
            for j in range(est.shape[1]):
                ax.plot(c["steps"], est[:, j], color=colour, linewidth=1.0,
                        alpha=1.0 - 0.6 * j / max(1, est.shape[1]),
                        label=c["label"] if j == 0 else None)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("steps averaged (log scale)")
        ax.set_ylabel(r"running estimate of $\lambda_i$ (nats per step)")
        ax.set_title("Convergence of the leading exponents")  # colours as on the left
    return fig


def horizon_figure(curves, *, threshold=None, study=None):
    """Left: the cumulative share of the weight gradient contributed by lags 0…k, with each
    model's effective horizon (where the share reaches ``threshold``) marked. Right (optional):
    effective horizon against a study parameter (e.g. forget bias, sequence length).

    curves: dicts with label, cell, lag, share (cumulative, ends at 1), horizon (a lag or None).
    study: dicts with label, cell, x, horizon, and the shared keys xlabel, xlog.
    """
    ncols = 2 if study else 1
    fig, axes = new_figure(ncols=ncols, width=3.6 * ncols + 1.4, height=3.4)
    ax = axes[0]
    styles = ("-", (0, (5, 2)), (0, (1, 1.5)), "-.", (0, (3, 1, 1, 1, 1, 1)))
    for i, (c, colour) in enumerate(zip(curves, series_colours(c.get("cell") for c in curves))):
        lag = np.asarray(c["lag"])
        every = max(1, len(lag) // 15)
        # own line style and marker: curves that coincide stay visible under each other
        h = c.get("horizon")
        ax.plot(lag, c["share"], color=colour, linestyle=styles[i % len(styles)],
                marker=MARKERS[i % len(MARKERS)], markersize=3, markevery=(i % every, every),
                mfc="none" if i % 2 else colour,
                label=c["label"] + ("" if h is None else f" (horizon: lag {h})"))
        if h is not None:   # horizons that coincide: offset dash patterns keep both visible
            ax.axvline(h, color=colour, linestyle=(2 * i, (4, 4)), linewidth=1.0)
    if threshold is not None:
        ax.axhline(threshold, color="black", linewidth=0.8, linestyle=":",
                   label=f"{threshold:.0%} of the total")
    symlog = bool(curves) and max(len(c["lag"]) for c in curves) > 50
    if symlog:
        ax.set_xscale("symlog", linthresh=10)   # short horizons and long tails in one view
        ax.set_xlim(left=0)
        ax.axvline(10, color="#999999", linewidth=0.6, linestyle=(0, (1, 2)))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(LAG + ("\n(symlog axis: linear for k ≤ 10, logarithmic beyond; dotted: k = 10)"
                         if symlog else ""))
    ax.set_ylabel(r"share of $\|\partial L/\partial W_{hh}\|$ from lags $0 \ldots k$")
    ax.set_title("Effective horizon (dashed)")
    handles, labels = ax.get_legend_handles_labels()   # below the panels: no line is hidden
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
               frameon=False)
    if study:
        ax = axes[1]
        for i, (s, colour) in enumerate(zip(study, series_colours(s.get("cell") for s in study))):
            ax.plot(s["x"], s["horizon"], marker=MARKERS[i % len(MARKERS)], markersize=4,
                    color=colour, label=s["label"], mfc="none" if i % 2 else colour,
                    linestyle=("-", "--", ":", "-.")[i % 4])
        ax.set_xlabel(study[0].get("xlabel", ""))
        if study[0].get("xlog"):
            ax.set_xscale("log")
        log_if_spans_decades(ax, np.concatenate([np.ravel(s["horizon"]) for s in study]), "y", 1.0)
        ax.set_ylabel("effective horizon (steps)")
        ax.set_title(study[0].get("title", "Horizon against the setting"))
        ax.legend(frameon=False)
    return fig


def phase_diagram(panels, decay=None, note=None):
    """Vanishing/exploding phase diagram: log₁₀ gradient norm over spectral radius × lag (one
    panel per cell), diverging colours centred on 1, the contour ‖∂L/∂h‖ = 1 in black; and,
    optionally, the per-step growth rate against spectral radius (0 = edge of chaos).

    panels: dicts with label, radius (n_r,), lag (n_lag,), norm (n_r, n_lag).
    decay: dicts with label, cell, radius, rate (log growth per step), optionally band
    ((n_r, 2) quartiles of the rate) and tol (the band |rate| <= tol that is neither phase).
    note: the fixed parameters, written under the figure.
    """
    ncols = len(panels) + (1 if decay else 0)
    fig, axes = new_figure(ncols=ncols, width=2.9 * ncols + 0.8, height=3.3)
    logs = [np.log10(_positive(p["norm"])) for p in panels]
    finite = np.concatenate([v[np.isfinite(v)].ravel() for v in logs]) if logs else np.zeros(1)
    # One symmetric range about 0: equal lengths of the colour bar are equal decades on both
    # sides (a two-slope scale would give 0..+5 the length of -35..0 and exaggerate growth).
    span = max(1e-3, float(np.abs(finite).max())) if finite.size else 1.0
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    mesh = None
    for ax, p, v in zip(axes, panels, logs):
        r, lag = np.asarray(p["radius"], dtype=float), np.asarray(p["lag"], dtype=float)
        mesh = ax.pcolormesh(r, lag, v.T, cmap="PuOr_r", norm=norm, shading="nearest",
                             rasterized=True)  # a vector mesh would bloat the SVG
        if np.nanmin(v) < 0 < np.nanmax(v) and min(v.shape) > 1:
            ax.contour(r, lag, v.T, levels=[0.0], colors="black", linewidths=1.0)
        ax.set_title(p["label"])
        ax.set_xlabel(r"spectral radius $\rho(W_{hh})$")
        ax.grid(False)
    axes[0].set_ylabel("lag $k$ (steps)")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes[:len(panels)], shrink=0.9,
                     label=r"$\log_{10}\|\partial L/\partial h_{T-k}\|$")
    if decay:
        fig.get_layout_engine().set(wspace=0.12)  # room between the colour bar and this panel
        ax = axes[-1]
        styles = ("-", "--", ":", "-.")
        # each cell's own colour (distinct by construction), plus its own line style and marker
        for i, (d, colour) in enumerate(zip(decay, series_colours(d.get("cell") for d in decay))):
            ax.plot(d["radius"], d["rate"], marker=MARKERS[i % len(MARKERS)], markersize=4 + i,
                    color=colour, label=d["label"], linestyle=styles[i % len(styles)],
                    mfc="none" if i % 2 else colour)   # hollow markers: none hides another
            if d.get("band") is not None:
                band = np.asarray(d["band"], dtype=float)
                ax.fill_between(d["radius"], band[:, 0], band[:, 1], color=colour, alpha=0.15,
                                linewidth=0)
        ax.axhline(0.0, color="black", linewidth=0.8)
        if d.get("tol"):
            ax.axhspan(-d["tol"], d["tol"], color="#bbbbbb", alpha=0.5, linewidth=0,
                       label=f"|rate| ≤ {d['tol']:g}: neither")
        ax.set_xlabel(r"spectral radius $\rho(W_{hh})$")
        ax.set_ylabel(r"tail growth rate of $\|\partial L/\partial h\|$ (nats/step)")
        ax.set_title("Vanishing (< 0) or exploding (> 0)")
        ax.legend(frameon=False)
    if note:
        fig.supxlabel(note, fontsize=7, color="#333333")      # the fixed parameters
    return fig
