"""Reports say where gradient norms underflow: curves stop at GradientNorms.underflow_lag (never a
zero or subnormal on a log axis), the figure and summary.md carry a note, results.json stores
underflow_lag / c_underflow_lag (null when nothing underflows), the Jacobian heatmap is marked."""
import json

import numpy as np
import pytest

from lstmcheck import studies
from lstmcheck.report import fig_flow, write_report

TINY64 = np.finfo(np.float64).tiny


def _subjects(dtype, radius, seq_len, cells=("rnn", "lstm")):
    return studies.subjects_from_grid({"cell": list(cells), "init": "orthogonal",
                                     "spectral_radius": radius, "seq_len": seq_len,
                                     "hidden_size": 6, "batch": 2, "dtype": dtype})


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _plotted(fig):
    """Every y value drawn as a line on the figure's first axes (NaN = not drawn)."""
    return {line.get_label().split(" (n = ")[0]: np.asarray(line.get_ydata(), dtype=float)
            for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}


@pytest.fixture(scope="module")
def report_float64(tmp_path_factory):
    """RNN at spectral radius 0.05 over 400 steps: ‖∂L/∂h‖ falls by ~20x per step and underflows
    in float64; the LSTM beside it (forget gate) keeps its gradient in the normal range."""
    rnn, lstm = _subjects("float64", 0.05, 400)
    rep = studies.probe_study([rnn, lstm], sections=("flow", "jacobian"))
    out = write_report(rep, tmp_path_factory.mktemp("underflow") / "report", formats=("png",))
    return rep, out, rnn.label, lstm.label


def test_underflowing_curve_is_cut_noted_and_stored(report_float64):
    rep, out, rnn, lstm = report_float64
    data = json.loads((out / "results.json").read_text())["results"]
    k = data["gradient_norms"][rnn]["underflow_lag"]
    assert isinstance(k, int) and 0 < k < 400
    assert data["gradient_norms"][rnn]["c_underflow_lag"] is None          # RNN: no cell state
    note = f"‖∂L/∂h_t‖ underflows (below 2.2e-308) from lag {k}"
    md = (out / "summary.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith(f"| gradient flow ‖∂L/∂h‖: {rnn}"))
    assert note in row
    fig = next(f.figure for f in rep.figures if f.name == "gradient_flow")
    assert any(note in t for t in _texts(fig))
    h = _plotted(fig)[f"{rnn}: ‖∂L/∂h‖"]
    assert np.all(np.isfinite(h[:k])) and np.all(np.isnan(h[k:]))       # stops at the lag
    for label, y in _plotted(fig).items():                              # nothing subnormal
        assert np.all(y[np.isfinite(y)] >= TINY64), label
    assert (out / "figures" / "gradient_flow.png").stat().st_size > 0


def test_non_underflowing_model_has_null_and_no_note(report_float64):
    rep, out, rnn, lstm = report_float64
    data = json.loads((out / "results.json").read_text())["results"]
    entry = data["gradient_norms"][lstm]
    assert "underflow_lag" in entry and entry["underflow_lag"] is None
    assert "c_underflow_lag" in entry and entry["c_underflow_lag"] is None
    rows = [r.result for r in rep.rows if r.check.startswith("gradient flow") and lstm in r.check]
    assert len(rows) == 2 and not any("underflows" in row for row in rows)      # h and c rows
    assert data["jacobian_spectrum"][lstm]["underflow_lag"] is None
    fig = next(f.figure for f in rep.figures if f.name == "gradient_flow")
    assert not any(lstm in t for t in _texts(fig))
    lstm_h = _plotted(fig)[f"{lstm}: ‖∂L/∂h‖"]
    assert np.all(np.isfinite(lstm_h))


def test_jacobian_heatmap_marks_the_underflow_lag(report_float64):
    rep, out, rnn, lstm = report_float64
    data = json.loads((out / "results.json").read_text())["results"]["jacobian_spectrum"]
    k = data[rnn]["underflow_lag"]
    assert isinstance(k, int) and 1 < k <= 400
    log10_top = np.array(data[rnn]["log10_singular_values"])[:, 0]
    assert log10_top[k - 1] < np.log10(TINY64) <= log10_top[k - 2]        # the first lag below
    fig = next(f.figure for f in rep.figures if f.name == "jacobian_spectrum")
    rnn_ax = next(ax for ax in fig.axes if ax.get_title() == rnn)
    assert [t.get_text() for t in rnn_ax.texts] == [f"σ₁ underflows (below 2.2e-308) from lag {k}"]
    assert [tuple(line.get_ydata()) for line in rnn_ax.get_lines()] == [(k - 0.5, k - 0.5)]
    lstm_ax = next(ax for ax in fig.axes if ax.get_title() == lstm)
    assert not lstm_ax.texts and not lstm_ax.get_lines()
    row = next(r.result for r in rep.rows if r.check == f"Jacobian ∂s_T/∂s_(T−k): {rnn}")
    assert f"from lag {k}" in row and "10^" in row                       # not "0" at k = 400


def test_float32_threshold_and_cell_state():
    """In float32 the threshold is float32's smallest normal number; the LSTM cell state gets its
    own note."""
    subjects = _subjects("float32", 0.3, 200)
    rnn, lstm = (s.label for s in subjects)
    rep = studies.probe_study(subjects, sections=("flow",))
    g = rep.results["gradient_norms"]
    assert g[rnn]["underflow_lag"] is not None
    rows = {r.check: r.result for r in rep.rows}
    assert f"‖∂L/∂h_t‖ underflows (below 1.2e-38) from lag {g[rnn]['underflow_lag']}" \
        in rows[f"gradient flow ‖∂L/∂h‖: {rnn}"]
    assert g[lstm]["c_underflow_lag"] is not None      # ×0.56 per step: 1e-38 within 200 steps
    assert f"‖∂L/∂c_t‖ underflows (below 1.2e-38) from lag {g[lstm]['c_underflow_lag']}" \
        in rows[f"gradient flow ‖∂L/∂c‖: {lstm}"]        # the c row, not the h row
    fig = rep.figures[0].figure
    for label, y in _plotted(fig).items():
        assert np.all(y[np.isfinite(y)] >= np.finfo(np.float32).tiny), label


def test_figure_never_draws_zeros_or_subnormals():
    lag = np.arange(6)
    norm = np.array([1.0, 1e-200, 1e-300, 1e-310, 0.0, 0.0])   # subnormal at lag 3, then 0
    fig = fig_flow.gradient_norm_vs_lag([{"label": "A", "cell": "rnn", "lag": lag, "norm": norm,
                                          "theory": norm, "underflow_lag": 3}])
    y = _plotted(fig)
    assert np.array_equal(np.isfinite(y["A: ‖∂L/∂h‖"]), [True, True, True, False, False, False])
    assert np.array_equal(np.isfinite(y["A: theory"]), [True, True, True, False, False, False])
    assert _texts(fig) == ["A: ‖∂L/∂h_t‖ underflows (below 2.2e-308) from lag 3"]
    fig = fig_flow.gradient_norm_vs_lag([{"label": "B", "cell": "rnn", "lag": lag[:3],
                                          "norm": norm[:3]}])
    assert _texts(fig) == []
