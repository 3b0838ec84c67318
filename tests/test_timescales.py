"""The time-scales section of the default report: every registered cell through a two-layer stack,
and the clockwork RNN's modules, whose stated spacing is measured on the arrays the figure plots."""
import numpy as np

from lstmcheck import studies
from lstmcheck.models import registry


def _report():
    return studies.default_study(hidden_size=8, seq_len=40, batch=2, sections=("timescales",))


def test_every_registered_cell_has_a_curve_and_the_clockwork_modules_their_periods():
    report = _report()
    data = report.results["timescales"]
    assert list(data) == [registry.display_name(c) for c in registry.names()]
    for name, d in data.items():
        assert d["bottom_layer_norm_rel"].shape == (40,)
        row = next(r for r in report.rows if r.check == f"time scales: {name}")
        assert f"for {d['steps_reached']} steps" in row.result
        reached = np.nonzero(np.nan_to_num(d["bottom_layer_norm_rel"]) >= 1e-2)[0].max() + 1
        assert d["steps_reached"] == reached
    modules = data["CWRNN"]["modules"]
    assert [m["period"] for m in modules] == [1, 2, 4, 8]
    for m in modules:
        # the staircase: the curve changes between lags k and k + 1 once per update
        curve = m["curve"]
        steps = [k for k in range(39) if curve[k] != curve[k + 1]]
        assert m["spacing"] == m["period"] and m["changes"] == 39 // m["period"]
        assert len(steps) == m["changes"]
        row = next(r for r in report.rows if r.check == f"time scales: CWRNN module {m['module']}")
        assert f"period {m['period']}:" in row.result and f"every {m['spacing']:g} steps" in row.result
    (fig,) = [f for f in report.figures if f.name == "timescales"]
    assert "steps every 1, 2, 4, 8 lags (periods 1, 2, 4, 8)" in fig.caption


def test_the_default_report_includes_the_section():
    assert "timescales" in studies.DEFAULT_SECTIONS
