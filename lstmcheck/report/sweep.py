"""Figures of a sweep: heatmaps of one measure over two grid axes, and the vanishing/exploding
phase diagram.

Records are the tidy rows of :func:`lstmcheck.sweep`. Grid axes other than the two plotted
(seeds, most often) are averaged over, but never across opposite regimes: a cell whose points
vanish in some seeds and explode in others is drawn "mixed" with the split (V2 E1) and no mean.
Points that failed (``error``) or gave a non-finite number are left out of the mean and counted
("1 failed"), and a cell with nothing left is drawn blank. Every cell also carries its number,
its n (and in the phase diagram a letter), so no information rests on colour alone; the grid
parameters that do not vary are written under every figure.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from .style import SEQUENTIAL_ALT, new_figure

# Grid keys, in the order a sweep lists them (kept here so report/ need not import sweep.py).
GRID_KEYS = ("cell", "variant", "input_size", "hidden_size", "num_layers", "seq_len", "batch",
             "init", "spectral_radius", "forget_bias", "task", "dtype", "backend", "seed")
VALUES = ("decay_rate", "horizon", "lambda_1")
LABELS = {
    "decay_rate": "gradient decay rate (nats per step back)",
    "horizon": "gradient horizon (steps)",
    "lambda_1": "largest Lyapunov exponent $\\lambda_1$ (nats per step)",
    "max_rel_error": "max relative gradient error",
}
DIVERGING = "PuOr_r"     # ColorBrewer, colour-blind safe: purple = vanishing, orange = exploding
# Sign convention of the phase diagram: for each value, +1 when positive means vanishing.
VANISHING_SIGN = {"decay_rate": +1, "lambda_1": -1}
LETTERS = {"vanishing": "V", "exploding": "E", "neutral": "0", "undetermined": "?"}
PHASE_TOL = 1e-3     # nats per step: |value| below this is neither phase (probes.regimes)


def grid_axes(records) -> list:
    """The grid keys along which the records vary, in grid order."""
    return [k for k in GRID_KEYS
            if len({_label(r.get(k)) for r in records if k in r}) > 1]


def default_axes(records) -> tuple:
    """Two axes for the figures: the varying keys with the most values, seeds last."""
    axes = grid_axes(records)
    axes.sort(key=lambda k: (k == "seed", -len({_label(r.get(k)) for r in records})))
    if len(axes) < 2:
        raise _option_error(f"a heatmap needs a grid that varies along two parameters; this one "
                            f"varies along {len(axes)} ({', '.join(axes) or 'none'}).")
    x, y = axes[:2]
    return (x, y) if GRID_KEYS.index(x) < GRID_KEYS.index(y) else (y, x)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def regime(record, value, tol=PHASE_TOL):
    """The phase of one record: its measured ``regime`` (the gradient_flow measure's tail
    verdict, "exploding" when the gradient overflowed) when it has one and ``value`` is the
    decay rate; otherwise from the sign of ``value`` (None for values without a phase)."""
    if value not in VANISHING_SIGN:
        return None
    if value == "decay_rate" and record.get("regime") in LETTERS:
        return record["regime"]
    v = record.get(value)
    if not _number(v):
        return None
    v = VANISHING_SIGN[value] * v
    return "vanishing" if v > tol else "exploding" if v < -tol else "neutral"


def cells(records, x: str, y: str, value: str, tol: float = PHASE_TOL):
    """(x values, y values, {(j, i): {"values", "regimes", "failed"}}) for every (y_j, x_i)."""
    for k in (x, y):
        if k not in GRID_KEYS:
            raise _option_error(f"{k!r} is not a grid parameter; choose from {', '.join(GRID_KEYS)}.")
    if not any(value in r for r in records):
        have = sorted({k for r in records for k in r if k not in GRID_KEYS and k != "error"})
        raise _option_error(f"the records have no {value!r}; they have {', '.join(have) or 'nothing measured'}.")
    xs = _sorted_values(r.get(x) for r in records)
    ys = _sorted_values(r.get(y) for r in records)
    xi = {_label(v): i for i, v in enumerate(xs)}
    yi = {_label(v): j for j, v in enumerate(ys)}
    out = {(j, i): {"values": [], "regimes": [], "failed": 0, "overflowed": 0}
           for j in range(len(ys)) for i in range(len(xs))}
    for r in records:
        c = out[yi[_label(r.get(y))], xi[_label(r.get(x))]]
        if r.get("error"):
            c["failed"] += 1
            continue
        v = r.get(value)
        c["overflowed"] += r.get("overflow_lag") is not None
        if _number(v):
            c["values"].append(float(v))
            c["regimes"].append(regime(r, value, tol))
    return xs, ys, out


def _split(regimes) -> str:
    """'V2 E1': how many points of a cell fell in each phase."""
    counts = {m: sum(g == m for g in regimes) for m in LETTERS}
    return " ".join(f"{LETTERS[m]}{n}" for m, n in counts.items() if n)


def table(records, x: str, y: str, value: str, tol: float = PHASE_TOL):
    """(x values, y values, Z) with Z[j, i] the mean of ``value`` over the records at
    (y_j, x_i); NaN where no record has a finite value, or where the records fall in opposite
    phases (a mean of vanishing and exploding points describes neither)."""
    xs, ys, groups = cells(records, x, y, value, tol)
    Z = np.full((len(ys), len(xs)), np.nan)
    for (j, i), c in groups.items():
        if c["values"] and len(set(c["regimes"])) <= 1:
            Z[j, i] = float(np.mean(c["values"]))
    return xs, ys, Z


def heatmap(records, x: str, y: str, value: str, *, title: str | None = None):
    """A matplotlib Figure: ``value`` averaged over the other grid axes, on the (x, y) grid."""
    xs, ys, Z = table(records, x, y, value)
    _, _, groups = cells(records, x, y, value)
    fig, (ax,) = new_figure(width=_width(xs), height=_height(ys))
    im = ax.imshow(np.ma.masked_invalid(Z), cmap=SEQUENTIAL_ALT, aspect="auto", origin="lower")
    ax.set_facecolor("#e6e6e6")           # blank cells (mixed, failed) on light grey
    _annotate(ax, Z, im, groups)
    _categorical_axes(ax, x, xs, y, ys)
    fig.colorbar(im, ax=ax, label=LABELS.get(value, value))
    ax.set_title(title or f"{value} over {x} and {y}" + _averaged_note(records, x, y))
    _fixed_note(fig, records)
    return fig


def phase_diagram(records, x: str, y: str, value: str | None = None, *, tol: float = PHASE_TOL):
    """Vanishing/exploding phases over (x, y): a diverging map of ``value`` centred on 0 (the
    boundary between the phases), each cell marked V (vanishing), E (exploding) or 0 (neither,
    |value| <= tol). ``value``: 'decay_rate' (> 0 vanishes) or 'lambda_1' (< 0 vanishes);
    by default the first of them the records have."""
    if value is None:
        value = next((v for v in VANISHING_SIGN if any(v in r for r in records)), "decay_rate")
    if value not in VANISHING_SIGN:
        raise _option_error(f"a phase diagram reads {' or '.join(VANISHING_SIGN)}, not {value!r}.")
    xs, ys, Z = table(records, x, y, value, tol)
    _, _, groups = cells(records, x, y, value, tol)
    sign = VANISHING_SIGN[value]
    finite = Z[np.isfinite(Z)]
    span = float(np.max(np.abs(finite))) if finite.size else 1.0
    span = span if span > 0 else 1.0
    # Orange for exploding whatever the value's sign convention: colour by -sign * value, on a
    # symmetric scale (equal lengths of the colour bar are equal rates on both sides).
    shown = -sign * Z
    fig, (ax,) = new_figure(width=_width(xs), height=_height(ys))
    ax.set_facecolor("#e6e6e6")
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=DIVERGING, aspect="auto", origin="lower",
                   norm=TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span))
    for (j, i), c in groups.items():
        text = _cell_text(c, value, tol)
        if text is None:
            continue
        z = Z[j, i]
        dark = np.isfinite(z) and abs(z) > 0.6 * span
        ax.text(i, j, text, ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    _categorical_axes(ax, x, xs, y, ys)
    cb = fig.colorbar(im, ax=ax, label=f"{LABELS.get(value, value)}")
    cb.set_ticks([-span, 0.0, span])
    cb.set_ticklabels([f"vanishing\n{_fmt(sign * span)}", "boundary\n0",
                       f"exploding\n{_fmt(-sign * span)}"])
    ax.set_title(f"Vanishing (V) / exploding (E) phases by {value}" + _averaged_note(records, x, y))
    _fixed_note(fig, records, extra=f"0: |{value}| ≤ {tol:g}; mixed: points in opposite phases "
                                    f"(split shown, not averaged); n: points per cell")
    return fig


def _cell_text(c, value, tol):
    """A phase-diagram cell's words: 'V\n0.108\nn=3', 'mixed\nV2 E1', 'failed\n(2)'."""
    failed = f"\n{c['failed']} failed" if c["failed"] else ""
    if c.get("overflowed"):
        failed += f"\n{c['overflowed']} overflowed"
    if not c["values"]:
        return f"failed\n({c['failed']})" if c["failed"] else None
    phases = set(c["regimes"])
    n = len(c["values"])
    if len(phases) > 1:
        return f"mixed\n{_split(c['regimes'])}{failed}"
    mark = LETTERS[next(iter(phases))]
    return f"{mark}\n{_fmt(float(np.mean(c['values'])))}\nn={n}{failed}"


def figures(records, x: str | None = None, y: str | None = None) -> list:
    """(name, caption, Figure) for every heatmap the records allow, then the phase diagram."""
    if x is None or y is None:
        dx, dy = default_axes(records)
        x, y = x or dx, y or dy
    out = []
    for value in VALUES + ("max_rel_error",):
        if any(isinstance(r.get(value), (int, float)) for r in records):
            out.append((f"sweep_{value}", f"{LABELS[value]} over {x} and {y}.",
                        heatmap(records, x, y, value)))
    if any(v in r for r in records for v in VANISHING_SIGN):
        out.append(("sweep_phase", f"Vanishing/exploding phase diagram over {x} and {y}.",
                    phase_diagram(records, x, y)))
    return out


def sweep_report(records, *, x: str | None = None, y: str | None = None,
                 title: str = "lstmcheck sweep: gradient flow over a grid"):
    """A :class:`lstmcheck.report.Report` of a sweep: counts, figures, and every record."""
    from .document import Report

    rep = Report(title, kind="sweep report")
    failed = [r for r in records if r.get("error")]
    rep.add_row("grid points", str(len(records)))
    axes = grid_axes(records)
    rep.add_row("grid axes", ", ".join(axes) or "none (a single point)")
    if failed:
        rep.add_row("points that could not run", f"{len(failed)}: {failed[0]['error']}")
        rep.warnings.append(f"{len(failed)} of {len(records)} points FAILED (left out of the "
                            f"figures, counted in their cells)")
    over = [r for r in records if r.get("overflow_lag") is not None]
    if over:
        lags = sorted(int(r["overflow_lag"]) for r in over)
        rep.add_row("gradient overflow (exploding)",
                    f"{len(over)} of {len(records)} points: ‖∂L/∂h‖ overflowed at lag "
                    f"{lags[0]}" + (f"..{lags[-1]}" if lags[-1] != lags[0] else "")
                    + "; recorded as exploding")
    for value in VALUES:
        vals = [r[value] for r in records if isinstance(r.get(value), (int, float))
                and not isinstance(r.get(value), bool) and math.isfinite(r[value])]
        if vals:
            rep.add_row(LABELS[value], f"{min(vals):.3g} .. {max(vals):.3g} (median "
                        f"{float(np.median(vals)):.3g})")
    if len(axes) >= 2 or (x and y):
        for name, caption, fig in figures(records, x, y):
            rep.add_figure(name, caption, fig)
    else:
        rep.notes.append("The grid varies along fewer than two parameters, so there are no "
                         "heatmaps; the records are in results.json.")
    rep.results["records"] = list(records)
    return rep


# ------------------------------------------------------------------------------ helpers
def _option_error(msg):
    from ..errors import OptionError
    return OptionError(msg)


def _label(v) -> str:
    return "none" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def _sorted_values(values):
    """Distinct grid values: numbers in numeric order (None first), strings as first seen."""
    seen = {}
    for v in values:
        seen.setdefault(_label(v), v)
    vals = list(seen.values())
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in vals):
        vals.sort(key=lambda v: (v is not None, v if v is not None else 0))
    return vals


def _categorical_axes(ax, x, xs, y, ys):
    ax.set_xticks(range(len(xs)), [_label(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_label(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(False)


def _annotate(ax, Z, im, groups=None):
    if Z.size > 400:                      # too small to read; the colour bar has to do
        return
    for j in range(Z.shape[0]):
        for i in range(Z.shape[1]):
            c = (groups or {}).get((j, i), {"values": [], "regimes": [], "failed": 0})
            failed = f"\n{c['failed']} failed" if c["failed"] else ""
            if np.isfinite(Z[j, i]):
                light = im.norm(Z[j, i]) < 0.5     # cividis is dark at the bottom
                n = f"\nn={len(c['values'])}" if groups else ""
                ax.text(i, j, _fmt(Z[j, i]) + n + failed, ha="center", va="center", fontsize=7,
                        color="white" if light else "black")
            elif len(set(c["regimes"])) > 1:
                ax.text(i, j, f"mixed\n{_split(c['regimes'])}{failed}", ha="center",
                        va="center", fontsize=7)
            elif c["failed"]:
                ax.text(i, j, f"failed\n({c['failed']})", ha="center", va="center", fontsize=7)


def fixed_parameters(records) -> dict:
    """The grid parameters every record shares (the figure's fixed settings)."""
    out = {}
    for k in GRID_KEYS:
        vals = {_label(r.get(k)) for r in records if k in r}
        if len(vals) == 1 and any(k in r for r in records):
            out[k] = next(iter(vals))
    return out


def _fixed_note(fig, records, extra=None):
    """The fixed parameters (and a legend of the marks) under the figure."""
    fixed = fixed_parameters(records)
    lines = ["fixed: " + ", ".join(f"{k} {v}" for k, v in fixed.items())] if fixed else []
    if extra:
        lines.append(extra)
    if lines:
        fig.supxlabel("\n".join(lines), fontsize=6.5, color="#333333")


def _fmt(v) -> str:
    return f"{v:.3g}"


def _averaged_note(records, x, y) -> str:
    rest = [k for k in grid_axes(records) if k not in (x, y)]
    return f"\n(mean over {', '.join(rest)})" if rest else ""


def _width(xs) -> float:
    return min(12.0, 2.5 + 0.7 * len(xs))


def _height(ys) -> float:
    return min(10.0, 1.8 + 0.45 * len(ys))
