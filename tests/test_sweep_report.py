"""Sweep figures: tables averaged the right way, phases marked with the right sign, labelled axes."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lstmcheck.errors import OptionError
from lstmcheck.report import sweep as rs
from lstmcheck.report.style import save_figure


def _records(value="decay_rate", f=lambda r, n: r - 1.0):
    """Synthetic tidy records over spectral_radius x hidden_size x seed; one failed point."""
    out = []
    for rho, H, seed in itertools.product([1.5, 0.5, 1.0], [8, 32], [0, 1]):
        rec = {"cell": "rnn", "hidden_size": H, "spectral_radius": rho, "seed": seed,
               "forget_bias": None, "error": None, value: f(rho, H) + 0.01 * seed}
        out.append(rec)
    out.append({"cell": "rnn", "hidden_size": 64, "spectral_radius": 1.0, "seed": 0,
                "forget_bias": None, "error": "boom"})
    return out


def test_table_means_over_the_other_axes_and_leaves_failures_blank():
    recs = _records(f=lambda r, n: r * n)
    recs[0]["decay_rate"] = float("nan")          # rho 1.5, H 8, seed 0: not counted
    xs, ys, Z = rs.table(recs, "spectral_radius", "hidden_size", "decay_rate")
    assert xs == [0.5, 1.0, 1.5] and ys == [8, 32, 64]
    assert Z[1, 0] == pytest.approx(0.5 * 32 + 0.005)
    assert Z[0, 2] == pytest.approx(1.5 * 8 + 0.01)      # only seed 1 left
    assert np.isnan(Z[2]).all()                           # the failed point only
    assert rs.grid_axes(recs) == ["hidden_size", "spectral_radius", "seed"]
    assert rs.default_axes(recs) == ("hidden_size", "spectral_radius")


def test_table_and_axes_refuse_what_they_cannot_draw():
    recs = _records()
    with pytest.raises(OptionError, match="'lambda_1'.*decay_rate"):
        rs.table(recs, "spectral_radius", "hidden_size", "lambda_1")
    with pytest.raises(OptionError, match="'rho'"):
        rs.table(recs, "rho", "hidden_size", "decay_rate")
    with pytest.raises(OptionError, match="two parameters"):
        rs.default_axes([r for r in recs if r["hidden_size"] == 8 and r["seed"] == 0])
    with pytest.raises(OptionError, match="phase diagram"):
        rs.phase_diagram(recs, "spectral_radius", "hidden_size", "horizon")


def _marks(fig):
    return {t.get_text().split("\n")[0] for t in fig.axes[0].texts}


@pytest.mark.parametrize("value, f, want", [
    ("decay_rate", lambda r, n: 1.0 - r, {"V": 0.5, "E": 1.5, "0": 1.0, "failed": 1.0}),
    ("lambda_1", lambda r, n: r - 1.0, {"V": 0.5, "E": 1.5, "0": 1.0, "failed": 1.0}),
])
def test_phase_diagram_marks_follow_the_sign_convention(value, f, want):
    recs = [r for r in _records(value, f) if r["seed"] == 0]
    fig = rs.phase_diagram(recs, "spectral_radius", "hidden_size", tol=1e-9)
    ax = fig.axes[0]
    xs = [t.get_text() for t in ax.get_xticklabels()]
    for t in ax.texts:
        mark = t.get_text().split("\n")[0]
        x = int(round(t.get_position()[0]))
        assert float(xs[x]) == want[mark]
    assert _marks(fig) == set(want)           # the failed point (H 64, rho 1) is shown as such
    assert ax.get_xlabel() == "spectral_radius" and ax.get_ylabel() == "hidden_size"
    # orange (the top of the colour bar) means exploding whichever value is drawn
    im = ax.images[0]
    e = next(i for i, v in enumerate([0.5, 1.0, 1.5]) if want["E"] == v)
    assert im.get_array()[0, e] > 0 and im.norm(im.get_array()[0, e]) > 0.5


def test_figures_write_labelled_heatmaps_and_the_phase_diagram(tmp_path):
    recs = _records(f=lambda r, n: math.log(r) * 3 / n)
    for r in recs:
        if not r["error"]:
            r["horizon"] = 10 * r["spectral_radius"]
    figs = rs.figures(recs)
    assert [n for n, _, _ in figs] == ["sweep_decay_rate", "sweep_horizon", "sweep_phase"]
    for name, caption, fig in figs:
        ax = fig.axes[0]
        assert ax.get_xlabel() == "hidden_size" and ax.get_ylabel() == "spectral_radius"
        assert "mean over seed" in ax.get_title()
        assert fig.axes[1].get_ylabel()                    # the colour bar says what it shows
        png, svg, pdf = save_figure(fig, tmp_path, name)
        assert png.stat().st_size > 1000 and svg.read_text().startswith("<?xml")
    heat = figs[0][2].axes[0]
    assert heat.images[0].get_cmap().name == "cividis"
    assert len(heat.texts) == 7        # 2 x 3 cells with numbers, the failed point marked "failed"
    assert sum(t.get_text().startswith("failed") for t in heat.texts) == 1
