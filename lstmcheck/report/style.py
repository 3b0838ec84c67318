"""One look for every figure: the Okabe-Ito colour-blind-safe palette, viridis/cividis colour
maps, readable font sizes, and deterministic PNG + SVG output (no dates, fixed SVG ids)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # never needs a display; a no-op when a backend is already set

from matplotlib.figure import Figure  # noqa: E402  (pyplot-free: no global figure state)

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
CYCLE = [OKABE_ITO[k] for k in ("blue", "vermillion", "green", "orange", "purple", "sky", "black",
                                "yellow")]
# the registered cells' own colours, in registry order; other cells take the spare ones
CELL_PALETTE = [OKABE_ITO[k] for k in ("vermillion", "blue", "green", "orange", "purple", "sky")]
SEQUENTIAL = "viridis"      # perceptually uniform, colour-blind safe
SEQUENTIAL_ALT = "cividis"  # designed for colour-vision deficiencies

RC = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.5, "lines.linewidth": 1.6, "axes.spines.top": False,
    "axes.spines.right": False, "svg.fonttype": "none", "svg.hashsalt": "lstmcheck",
    "figure.dpi": 100, "savefig.bbox": "tight", "image.cmap": SEQUENTIAL,
}

DPI = 300            # print quality (a journal's minimum for line art)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def cell_colours() -> dict:
    """{registered cell name: its colour}: the palette in registry order."""
    from ..models.registry import names

    return dict(zip(names(), CELL_PALETTE))


def cell_colour(cell: str, i: int = 0) -> str:
    return cell_colours().get(str(cell).lower(), CYCLE[i % len(CYCLE)])


def series_colours(cells) -> list:
    """A colour per series: a cell's own colour for its first series, then unused palette
    colours, so that an "LSTM" and an "LSTM chrono" line never share a colour."""
    own = cell_colours()
    used, out = set(), []
    spare = [c for c in CYCLE if c not in own.values()] + list(own.values())
    for cell in cells:
        colour = own.get(str(cell).lower())
        if colour is None or colour in used:
            colour = next((c for c in spare if c not in used), CYCLE[len(out) % len(CYCLE)])
        used.add(colour)
        out.append(colour)
    return out


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 6.4, height: float = 3.6,
               **subplot_kw):
    """(figure, axes array) with the house style; axes is always a flat list."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw).ravel().tolist()
        for ax in axes:
            ax.set_prop_cycle(color=CYCLE)
    return fig, axes


FORMATS = ("png", "svg", "pdf")


def save_figure(fig, folder: Path, name: str, dpi: int = DPI, formats=FORMATS) -> list:
    """Write ``name.png``, ``name.svg`` and/or ``name.pdf`` into ``folder``; byte-identical
    across runs (no dates, no creator, fixed SVG ids).

    The PNG is reduced to a 256-colour palette (flat plot colours survive; files shrink ~3x).
    """
    import io

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(RC):
        for ext in formats:
            path = folder / f"{name}.{ext}"
            if ext == "png":
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
                image = Image.open(buf).convert("RGB").quantize(
                    colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
                image.save(path, format="PNG", optimize=True, dpi=(dpi, dpi))
            elif ext == "pdf":
                fig.savefig(path, format="pdf", dpi=dpi,
                            metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                      "Creator": None})
            else:
                fig.savefig(path, format=ext, dpi=dpi, metadata={"Date": None, "Creator": None})
            paths.append(path)
    return paths


def log_if_spans_decades(ax, values, axis: str = "y", decades: float = 2.0) -> bool:
    """Switch ``axis`` to a log scale when the positive ``values`` span more than ``decades``."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and np.log10(v.max() / v.min()) > decades:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        return True
    return False
