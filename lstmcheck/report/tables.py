"""The numbers a figure plots, as tidy CSV rows: what a reader needs to re-plot it or check a
sentence against it without parsing results.json.

By default the rows are read back from the figure itself (every line's x and y, every image's
cells), so the CSV cannot drift from the drawing; a section may pass richer rows (an IQR band
is a polygon, better given as its two edges)."""
from __future__ import annotations

import csv
import io

import numpy as np


def figure_rows(fig) -> list:
    """Tidy rows of what ``fig`` draws: panel, series, x, y for lines; panel, series, row, col,
    value for images and meshes. Unlabelled lines (references, markers) are 'line N'."""
    from matplotlib.collections import QuadMesh
    from matplotlib.image import AxesImage

    rows = []
    for a, ax in enumerate(fig.axes):
        if ax.get_label() == "<colorbar>":
            continue
        panel = ax.get_title() or f"panel {a + 1}"
        for n, line in enumerate(ax.get_lines(), 1):
            label = line.get_label()
            name = f"line {n}" if label.startswith("_") else label
            x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
            rows += [{"panel": panel, "series": name, "x": xi, "y": yi} for xi, yi in zip(x, y)]
        for art in ax.get_children():
            if isinstance(art, (AxesImage, QuadMesh)):
                v = np.ma.filled(np.ma.asarray(art.get_array(), dtype=float), np.nan)
                v = v.reshape(v.shape[0], -1) if v.ndim > 1 else v[None]
                rows += [{"panel": panel, "series": "image", "row": i, "col": j, "value": v[i, j]}
                         for i in range(v.shape[0]) for j in range(v.shape[1])]
    return rows


def csv_text(rows) -> str:
    """CSV of tidy rows (the union of their keys, in first-seen order); NaN written empty."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    w = csv.DictWriter(out, keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in keys})
    return out.getvalue()


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else f"{float(v):.6g}"
    if isinstance(v, np.integer):
        return int(v)
    return v
