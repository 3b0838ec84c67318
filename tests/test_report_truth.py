"""Every sentence a report states, held to the numbers of the same run (issue 16): gradient
overflow is a measurement (exploding, at its lag), regimes are fitted separately, sweeps never
average opposite phases, banners never say "passed" without a check."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import ortho_group

import lstmcheck as lc
from lstmcheck.probes import gradient_norms
from lstmcheck.probes import regimes as R
from lstmcheck.report import Report
from lstmcheck.report import sweep as rs

NO_INF_NAN = re.compile(r"\b(inf|nan)\b", re.I)


def linear_rnn(H, alpha, seed=0, D=3):
    """h_t = W h_{t-1} + U x_t with W = alpha * orthogonal: ||dL/dh_{T-k}|| = alpha^k exactly."""
    model = lc.RNN(D, H, nonlinearity="identity")
    params = model.init_params(seed)
    params["weight_hh_l0"] = alpha * ortho_group.rvs(H, random_state=seed)
    return model, params


# ----------------------------------------------------------------------------- overflow
def test_gradient_overflow_is_recorded_as_exploding_at_its_lag():
    """alpha = 1.5 for T = 2000: alpha^k passes the float64 range near k = 1750. The probe no
    longer raises; it records the lag, and the norms before it are still alpha^k."""
    alpha, H = 1.5, 4
    model, params = linear_rnn(H, alpha)
    params["bias_ih_l0"][:] = params["bias_hh_l0"][:] = 0.0
    x = np.zeros((2000, 2, 3))          # h stays 0 (no forward overflow); the backward is linear
    r = gradient_norms(model, params, x)
    big = np.finfo(np.float64).max
    # some element passes MAX only once the norm does (element <= norm), and surely once the
    # norm passes sqrt(H) * MAX (element >= norm / sqrt(H)); the loss vector has norm 1
    lo, hi = np.log(big) / np.log(alpha), (np.log(big) + 0.5 * np.log(H)) / np.log(alpha)
    assert r.overflow_lag is not None and lo - 1 <= r.overflow_lag <= hi + 1
    k = r.overflow_lag
    np.testing.assert_allclose(r.h_norm_rel[:k], alpha ** np.arange(k), rtol=1e-8)
    assert np.isnan(r.h_norm[k:]).all() and r.grad_norm == np.inf and not r.clipped
    assert r.regimes["tail"].verdict == "exploding" and r.regimes["tail"].overflow_lag == k
    assert r.regimes["first"].rate == pytest.approx(-np.log(alpha), rel=1e-9)
    assert r.regimes["tail"].rate == pytest.approx(-np.log(alpha), rel=1e-9)
    assert np.isfinite(r.contribution_share[:k]).all()


def test_regimes_are_fitted_separately_and_say_undetermined_when_sequences_disagree():
    lags = np.arange(40)[:, None]
    # a 50x drop over the first step, then x0.9 per step, in three sequences
    steady = np.exp(-np.log(50) * (lags > 0) - 0.1 * np.maximum(lags - 1, 0)) * np.ones((1, 3))
    reg = R.regimes(steady)
    assert reg["tail"].rate == pytest.approx(0.1) and reg["tail"].verdict == "vanishing"
    assert reg["first"].rate > 0.5 and reg["tail"].n == 3 and reg["tail"].lags == (5, 39)
    # two sequences vanish, two explode: the IQR straddles 0
    mixed = np.exp(np.concatenate([-0.05 * lags, -0.05 * lags, 0.05 * lags, 0.05 * lags], 1))
    assert R.regimes(mixed)["tail"].verdict == "undetermined"
    flat = np.ones((40, 2)) * np.exp(1e-5 * lags)
    assert R.regimes(flat)["tail"].verdict == "neutral"
    assert R.regimes(np.ones((1, 2)))["first"].verdict == "undetermined"   # one lag: no fit
    assert R.classify(0.2, 0.3) == "vanishing" and R.classify(-0.3, -0.2) == "exploding"


# ----------------------------------------------------------------------------- the sweep
@pytest.fixture(scope="module")
def overflow_sweep():
    """The issue's sweep scaled down (seq_len 8000 instead of 20000, RNN only): at radius 2 two
    of three seeds overflow."""
    return lc.sweep({"cell": "rnn", "spectral_radius": [1.5, 2.0], "seq_len": 8000,
                     "seed": [0, 1, 2]}, "gradient_flow")


def test_sweep_records_overflow_as_exploding_and_drops_no_point(overflow_sweep):
    recs = overflow_sweep
    assert len(recs) == 6 and not any(r["error"] for r in recs)
    over = [r for r in recs if r["overflow_lag"] is not None]
    assert over and all(r["regime"] == "exploding" for r in over)
    assert all(0 < r["overflow_lag"] < 8000 for r in over)
    rep = rs.sweep_report(recs, x="cell", y="spectral_radius")
    row = next(r for r in rep.rows if r.check == "gradient overflow (exploding)")
    assert row.result.startswith(f"{len(over)} of 6 points")
    assert f"lag {min(r['overflow_lag'] for r in over)}" in row.result


def test_sweep_never_averages_opposite_phases(overflow_sweep):
    recs = overflow_sweep
    fig = rs.phase_diagram(recs, "cell", "spectral_radius")
    texts = [t.get_text() for t in fig.axes[0].texts]
    _, ys, Z = rs.table(recs, "cell", "spectral_radius", "decay_rate")
    for j, rho in enumerate(ys):
        at = [r for r in recs if r["spectral_radius"] == rho]
        phases = [rs.regime(r, "decay_rate") for r in at]
        if len(set(phases)) > 1:                     # mixed: no mean, the split instead
            assert np.isnan(Z[j, 0])
            split = " ".join(f"{rs.LETTERS[p]}{phases.count(p)}" for p in rs.LETTERS
                             if phases.count(p))
            assert f"mixed\n{split}" in texts[j]
        else:
            assert Z[j, 0] == pytest.approx(np.mean([r["decay_rate"] for r in at]))
            assert texts[j].endswith(f"n={len(at)}") or "overflowed" in texts[j]
    fixed = fig.texts[-1].get_text() if fig.texts else fig._supxlabel.get_text()
    assert "seq_len 8000" in fixed and "hidden_size 32" in fixed


# ----------------------------------------------------------------------------- banners
def test_reports_without_checks_do_not_say_passed():
    rep = Report("probe", kind="gradient-flow report")
    rep.add_row("gradient flow: RNN", "vanishing")
    assert rep.verdict == "no checks" and rep.headline == "gradient-flow report, no checks run"
    rep.warnings.append("2 of 6 points FAILED")
    assert "passed" not in rep.headline and rep.headline.endswith("2 of 6 points FAILED")
    rep.add_row("gradcheck", "ok", "pass")
    assert rep.headline.startswith("All checks passed")


def test_a_sweep_with_failed_points_says_so():
    recs = [{"cell": "rnn", "seed": s, "spectral_radius": 1.0, "hidden_size": 8,
             "error": "boom" if s else None, "decay_rate": 0.1} for s in range(3)]
    rep = rs.sweep_report(recs)
    assert rep.verdict == "no checks"
    assert rep.headline == "sweep report, no checks run; 2 of 3 points FAILED (left out of the " \
                           "figures, counted in their cells)"


# ----------------------------------------------------------------------------- a probe report
from lstmcheck import studies  # noqa: E402
from lstmcheck.studies import statements as S  # noqa: E402

FLOAT = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


@pytest.fixture(scope="module")
def probe_report():
    """RNN, LSTM, GRU and chrono LSTM (H 8, T 60, 6 sequences), every probe section and the
    phase section, as `lstmcheck probe` and `lstmcheck report` run them."""
    grid = [{"cell": ["rnn", "lstm", "gru"], "seq_len": 60, "hidden_size": 8, "batch": 6},
            {"cell": "lstm", "init": "chrono", "seq_len": 60, "hidden_size": 8, "batch": 6}]
    subjects = studies.subjects_from_grid(grid)
    rep = studies.probe_study(subjects)
    ctx = studies.Context(subjects, {"seq_len": 60, "hidden_size": 8, "batch": 6,
                                     "task": "noise", "seed": 0, "dtype": "float64",
                                     "backend": "numpy"})
    studies.SECTIONS["phase"](rep, ctx)
    return rep


def _rows(rep, prefix):
    return {r.check[len(prefix):]: r.result for r in rep.rows if r.check.startswith(prefix)}


def _figure(rep, name):
    return next(f.figure for f in rep.figures if f.name == name)


def _lines(fig, ax=0):
    return {line.get_label(): np.asarray(line.get_ydata(), dtype=float)
            for line in fig.axes[ax].get_lines() if not line.get_label().startswith("_")}


def _fit(rel, lo, hi):
    """Independent per-sequence least-squares fit of log r against the lag on lags lo..hi:
    the median and quartiles of -slope (normal equations, not np.polyfit)."""
    k = np.arange(lo, hi + 1, dtype=float)
    y = np.log(rel[lo:hi + 1])
    slopes = ((k - k.mean())[:, None] * (y - y.mean(axis=0))).sum(0) / ((k - k.mean()) ** 2).sum()
    return np.percentile(-slopes, [25, 50, 75])


def test_every_sentence_is_free_of_inf_and_nan(probe_report):
    assert probe_report.rows
    for r in probe_report.rows:
        assert not NO_INF_NAN.search(r.result), r
    with pytest.raises(AssertionError):
        S.sentence("exploding (half-life inf steps)")


def test_flow_rows_name_h_or_c_and_state_the_plotted_numbers(probe_report):
    rep = probe_report
    rows = _rows(rep, "gradient flow ")
    data = rep.results["gradient_norms"]
    lines = _lines(_figure(rep, "gradient_flow"))
    for label, entry in data.items():
        for q, key, seq_key in (("h", "h_norm_rel", "h_rel_seq"), ("c", "c_norm_rel", "c_rel_seq")):
            if entry[key] is None:
                assert f"‖∂L/∂{q}‖: {label}" not in rows
                continue
            text = rows[f"‖∂L/∂{q}‖: {label}"]
            plotted = lines[f"{label}: ‖∂L/∂{q}‖ (n = 6)"]
            np.testing.assert_array_equal(plotted, entry[key])        # the row reads the plot
            # the reach: the first lag where the plotted median is below 1%
            below = np.nonzero(plotted < 0.01)[0]
            if below.size:
                assert text.endswith(f"first falls below 1% of its last-step value at lag "
                                     f"{below[0]}")
            else:
                assert text.endswith("at every lag 0–59")
            # each regime's factor, IQR and n against an independent fit of the same arrays
            seq = np.asarray(entry[seq_key])
            for lo, hi in ((0, R.FIRST_LAGS), (R.FIRST_LAGS, 59)):
                q25, med, q75 = _fit(seq, lo, hi)
                m = re.search(rf"lags {lo}–{hi}: (\w+) ×({FLOAT}) per step \([^;]*; IQR "
                              rf"×({FLOAT})\.\.×({FLOAT}), n = (\d+)\)", text)
                assert m, text
                verdict, f, f_lo, f_hi, n = m.groups()
                assert float(f) == pytest.approx(np.exp(-med), rel=2e-3)
                assert float(f_lo) == pytest.approx(np.exp(-q75), rel=2e-3)
                assert float(f_hi) == pytest.approx(np.exp(-q25), rel=2e-3)
                assert int(n) == seq.shape[1] == 6
                assert verdict == R.classify(q25, q75)


def test_the_h_row_is_about_h_even_where_c_reaches_further(probe_report):
    """The issue's chrono LSTM: ‖∂L/∂h‖ drops below 1% within a few lags while ‖∂L/∂c‖ stays
    above it; the h row says so (the old row took the larger of the two)."""
    rows = _rows(probe_report, "gradient flow ")
    entry = probe_report.results["gradient_norms"]["LSTM chrono"]
    k = int(np.nonzero(np.asarray(entry["h_norm_rel"]) < 0.01)[0][0])
    assert k < 20 and min(entry["c_norm_rel"]) > 0.01
    assert rows["‖∂L/∂h‖: LSTM chrono"].endswith(f"at lag {k}")
    assert rows["‖∂L/∂c‖: LSTM chrono"].endswith("at every lag 0–59")
    assert entry["steps_in_past"] < entry["c_steps_in_past"] == 60


def test_plotted_gradient_norms_match_finite_differences():
    """The plotted ‖∂L/∂h_{T-k}‖ against central differences of the loss L = <v, h_T> rerun
    from a perturbed h_{T-k} (the LSTM's c held, as the probe's partial derivative does),
    float64. (‖∂L/∂c‖ is held to the model's own backward in test_probes_flow.)"""
    for cell in ("rnn", "lstm", "gru"):
        model = lc.build(cell, 3, 4)
        params = model.init_params(1)
        T = 12
        x = lc.tasks.noise(T, 1, 3, seed=2).x
        v = np.random.default_rng(3).standard_normal(4)
        dy = np.zeros((T, 1, 4))
        dy[-1, 0] = v
        r = gradient_norms(model, params, x, loss=dy)

        def loss(t, state):
            y, _, _ = model.forward(params, x[t:], state)
            return float(v @ y[-1, 0])
        assert r.h_norm[0] == pytest.approx(np.linalg.norm(v), rel=1e-12)     # lag 0: dL/dh_T = v
        for k in (1, 3, 7):
            t = T - k
            _, state, _ = model.forward(params, x[:t])
            parts = list(state) if isinstance(state, tuple) else [state]
            g = np.zeros(4)
            for i in range(4):
                e = np.zeros_like(parts[0])
                e[0, 0, i] = 1e-6
                wrap = (lambda h: (h, parts[1])) if len(parts) > 1 else (lambda h: h)
                g[i] = (loss(t, wrap(parts[0] + e)) - loss(t, wrap(parts[0] - e))) / 2e-6
            assert r.h_norm[k] == pytest.approx(np.linalg.norm(g), rel=1e-6), (cell, k)


def test_lyapunov_rows_state_their_uncertainty(probe_report):
    rows = _rows(probe_report, "Lyapunov spectrum: ")
    for label, entry in probe_report.results["lyapunov_spectrum"].items():
        lam = entry["exponents"][0]
        run = np.asarray(entry["convergence"])[:, 0]
        drift = run[len(run) // 2:].max() - run[len(run) // 2:].min()
        unc = max(entry["lambda1_gap"], drift)
        m = re.match(rf"λ₁ = ({FLOAT}) ± ({FLOAT}) nats/step", rows[label])
        assert m and float(m.group(1)) == pytest.approx(lam, rel=2e-3)
        assert float(m.group(2)) == pytest.approx(unc, rel=0.05)
        word = "undetermined" if unc >= abs(lam) else ("chaotic" if lam > 0 else "contracting")
        assert word in rows[label]
    # the row: λ₁ = 0.0035 with a gap of 0.017 has no sign
    text = S.lyapunov_text([0.0035], 0.017, np.full((10, 1), 0.0035))
    assert "sign undetermined" in text and "chaotic" not in text
    assert "undetermined" in S.lyapunov_text([-0.5], 0.0, np.full((1, 1), -0.5), steps=1)


def test_gate_rows_and_saturation_by_derivative(probe_report):
    rep = probe_report
    rows = _rows(rep, "gates: ")
    fig = _figure(rep, "gate_saturation")
    images = {ax.get_title(): ax.images[0].get_array() for ax in fig.axes if ax.images
              and ax.get_title()}
    for label, entry in rep.results["gate_statistics"].items():
        sat = np.asarray(images[label], dtype=float)
        np.testing.assert_array_equal(sat, entry["saturation"])
        for g, row in zip(entry["gates"], sat):
            assert f"{g} {np.mean(row):.0%}" in rows[label]
        if entry["unit_time_constant"] is not None:
            f_unit = np.asarray(entry["forget_unit"]).mean(axis=0)   # the gate_values figure
            tau = 1.0 / (1.0 - f_unit)
            m = re.search(rf"τ = 1/\(1 − f̄\) ({FLOAT}) steps", rows[label])
            assert float(m.group(1)) == pytest.approx(np.median(tau), rel=2e-3)
    # the chrono forget gate (mean near 1) is memory, not saturation
    chrono = rep.results["gate_statistics"]["LSTM chrono"]
    f = chrono["gates"].index("f")
    assert np.mean(chrono["forget_mean"]) > 0.9 and np.mean(chrono["saturation"][f]) < 0.05
    tc = _figure(rep, "time_constants")
    assert "1/(1 - \\bar f)" in tc.axes[0].get_xlabel()


def test_saturation_threshold_is_the_derivative_by_finite_differences():
    """4 s (1 - s) and 1 - v^2 are sigma' / sigma'(0) and tanh', checked by the complex step
    (f'(a) = Im f(a + ih) / h, no cancellation)."""
    from lstmcheck.probes.gates import _relative_derivative
    a = np.linspace(-8, 8, 33)
    sig = lambda z: 1 / (1 + np.exp(-z))                      # noqa: E731
    cs = lambda f: np.imag(f(a + 1e-30j)) / 1e-30             # noqa: E731
    np.testing.assert_allclose(_relative_derivative(sig(a), True), cs(sig) / 0.25, rtol=1e-12)
    np.testing.assert_allclose(_relative_derivative(np.tanh(a), False), cs(np.tanh), rtol=1e-9)
    # the threshold stated in the caption: sigma' < 0.0025 <=> s outside 0.0025..0.9975 (approx.)
    s = np.array([0.0024, 0.0026, 0.97, 0.99, 0.9974, 0.9976])
    assert list(_relative_derivative(s, True) < 0.01) == [True, False, False, False, False, True]


def test_phase_rows_follow_the_plotted_rates(probe_report):
    rep = probe_report
    rows = _rows(rep, "phases over ρ(W_hh): ")
    fig = _figure(rep, "phase_diagram")
    rate_ax = fig.axes[-2] if fig.axes[-1].get_label() == "<colorbar>" else fig.axes[-1]
    rate_ax = next(ax for ax in fig.axes if ax.get_title().startswith("Vanishing"))
    plotted = {line.get_label(): np.asarray(line.get_ydata(), dtype=float)
               for line in rate_ax.get_lines() if not line.get_label().startswith("_")}
    records = rep.results["phase"]["records"]
    for label, text in rows.items():
        recs = [r for r in records if r["cell"] == label.lower()]
        growth = -np.array([r["tail_rate"] for r in recs])
        np.testing.assert_allclose(plotted[label], growth)
        verdicts = []
        for r in recs:
            q25, q75 = r["tail_rate_iqr"]
            verdicts.append(R.classify(q25, q75))
        assert [r["regime"] for r in recs] == verdicts
        assert text.startswith(S.phases_text([r["spectral_radius"] for r in recs], verdicts))
        # "exploding" is said only of radii whose whole IQR band grows
        for r, v in zip(recs, verdicts):
            if v == "exploding":
                assert -r["tail_rate_iqr"][1] > R.RATE_TOL
    # the colour scale is symmetric about 0: equal lengths are equal decades on both sides
    mesh = next(c for ax in fig.axes for c in ax.collections if hasattr(c, "norm")
                and c.norm is not None and hasattr(c.norm, "vcenter"))
    assert mesh.norm.vmin == -mesh.norm.vmax and mesh.norm.vcenter == 0
    assert "fixed: hidden size 8, T = 60" in fig._supxlabel.get_text()


def test_horizon_axis_says_symlog_and_curves_are_distinct(probe_report):
    fig = _figure(probe_report, "horizon")
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and "symlog" in ax.get_xlabel()
    lines = [l for l in ax.get_lines() if not l.get_label().startswith("_")]
    styles = [(l.get_color(), str(l.get_linestyle()), l.get_marker()) for l in lines]
    assert len(set(styles)) == len(styles)
    colours = [l.get_color() for l in lines]
    assert len(set(colours)) == len(colours)                  # one colour per model


def test_csv_beside_each_figure_holds_the_plotted_numbers(probe_report, tmp_path):
    import csv
    from lstmcheck.report import write_report
    out = write_report(probe_report, tmp_path / "r")
    for f in probe_report.figures:
        assert (out / "figures" / f"{f.name}.csv").is_file(), f.name
        assert (out / "figures" / f"{f.name}.pdf").read_bytes().startswith(b"%PDF")
    rows = list(csv.DictReader((out / "figures" / "gradient_flow.csv").open()))
    want = probe_report.results["gradient_norms"]["GRU"]["h_norm_rel"]
    got = [float(r["median_rel"]) for r in rows if r["model"] == "GRU" and r["quantity"] == "dL/dh"]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    html = (out / "index.html").read_text()
    assert "no checks run" in html and "All checks passed" not in html


def test_a_report_reproduces_from_its_header(tmp_path):
    """`lstmcheck probe` with non-default options; rerunning the command its header states
    (into another folder) gives the same numbers, and the page shows that command."""
    import json
    import shlex

    from click.testing import CliRunner

    from lstmcheck.cli import cli
    first = tmp_path / "a"
    args = ["probe", "--cell", "gru", "--seq-len", "30", "--hidden-size", "6", "--batch", "3",
            "--seed", "4", "--init", "orthogonal", "--spectral-radius", "1.2", "--probe", "flow",
            "--out", str(first), "--quiet"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    data = json.loads((first / "results.json").read_text())
    meta = data["meta"]
    assert meta["seed"] == 4 and meta["dtype"] == "float64" and meta["backend"] == "numpy"
    assert meta["options"]["spectral_radius"] == 1.2 and meta["lstmcheck"] == lc.__version__
    words = shlex.split(meta["command"])
    assert words[:2] == ["lstmcheck", "probe"] and "--spectral-radius" in words
    words[words.index("--out") + 1] = str(tmp_path / "b")
    r = CliRunner().invoke(cli, words[1:])
    assert r.exit_code == 0, r.output
    again = json.loads((tmp_path / "b" / "results.json").read_text())
    assert again["results"]["gradient_norms"] == data["results"]["gradient_norms"]
    html = (first / "index.html").read_text()
    assert "--spectral-radius 1.2" in html and "gradient-flow report, no checks run" in html


def test_a_single_step_says_undetermined_never_nan():
    """`--seq-len 1` used to print "x nan per step"."""
    subjects = studies.subjects_from_grid({"cell": ["lstm", "rnn"], "seq_len": 1,
                                           "hidden_size": 4, "batch": 2})
    rep = studies.probe_study(subjects)
    for r in rep.rows:
        assert not NO_INF_NAN.search(r.result), r
    rows = _rows(rep, "gradient flow ")
    assert all("undetermined" in t for t in rows.values())
    assert all("undetermined" in t for t in _rows(rep, "Lyapunov spectrum: ").values())


# ----------------------------------------------------------------------------- researcher requests
def test_truncation_and_clipping_show_what_they_change(tmp_path):
    subjects = studies.subjects_from_grid({"cell": "lstm", "seq_len": 40, "hidden_size": 6,
                                           "batch": 3})
    rep = studies.probe_study(subjects, sections=("flow",), truncate=10, clip_norm=0.5)
    rows = {r.check: r.result for r in rep.rows}
    entry = rep.results["gradient_norms"]["LSTM"]
    assert entry["truncated_lag"] == 10 and entry["underflow_lag"] is None   # a cut, not underflow
    h = rows["gradient flow ‖∂L/∂h‖: LSTM"]
    assert "lags 5–9:" in h and h.endswith("zero from lag 10 (truncated BPTT)")
    change = rows["truncated BPTT every 10 steps, gradient clipped to norm 0.5: LSTM"]
    g, scale = entry["grad_norm"], entry["clip_scale"]
    assert g > 0.5 and scale == pytest.approx(0.5 / g)
    assert change.startswith(f"‖∇θ L‖ = {g:.3g} > 0.5: scaled by {scale:.3g} to 0.5")
    assert change.endswith("departs from full BPTT at lag 10")
    lines = _lines(rep.figures[0].figure)
    full = lines["LSTM: ‖∂L/∂h‖, full BPTT, unclipped"]
    cut = lines["LSTM: ‖∂L/∂h‖ (n = 3)"]
    np.testing.assert_allclose(cut[:10], full[:10], rtol=1e-12)
    assert np.isnan(cut[10:]).all() and np.isfinite(full[10:]).all()


def test_several_weight_files_in_one_figure_and_float32_probed_in_float64(tmp_path):
    from click.testing import CliRunner
    import json

    from lstmcheck.cli import cli
    model = lc.LSTM(3, 5, dtype="float32")
    paths = []
    for step, scale in enumerate((0.5, 1.0, 2.0)):
        p = {k: (v * scale).astype(np.float32) for k, v in model.init_params(seed=1).items()}
        paths.append(tmp_path / f"ckpt{step}.npz")
        np.savez(paths[-1], **p)
    args = ["probe", "--cell", "lstm", "--seq-len", "20", "--batch", "2", "--probe", "flow",
            "--dtype", "float64", "--out", str(tmp_path / "r"), "--quiet"]
    for p in paths:
        args += ["--weights", str(p)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    labels = list(data["results"]["gradient_norms"])
    assert len(labels) == 3 and all("float32 → float64" in lab for lab in labels)
    assert [s["dtype"] for s in data["results"]["settings"]["subjects"]] == ["float64"] * 3
    # the float64 probe of float32 weights matches the float64 model built from them
    w = dict(np.load(paths[1]))
    m64 = lc.LSTM(3, 5)
    x = lc.tasks.noise(20, 2, 3, seed=0).x
    want = gradient_norms(m64, {k: v.astype(np.float64) for k, v in w.items()}, x, seed=0)
    np.testing.assert_allclose(data["results"]["gradient_norms"][labels[1]]["h_norm_rel"],
                               want.h_norm_rel, rtol=1e-5)
    fig_lines = [l for l in (tmp_path / "r" / "figures" / "gradient_flow.csv").read_text()
                 .splitlines()[1:]]
    assert {line.split(",")[0] for line in fig_lines} == set(labels)


def test_gate_values_figure_plots_the_forget_and_input_gates_per_unit(probe_report):
    fig = _figure(probe_report, "gate_values")
    shown = {ax.get_title(): np.asarray(ax.images[0].get_array()) for ax in fig.axes
             if ax.images}
    entry = probe_report.results["gate_statistics"]["LSTM"]
    np.testing.assert_array_equal(shown["LSTM: gate f"], np.asarray(entry["forget_unit"]).T)
    np.testing.assert_array_equal(shown["LSTM: gate i"], np.asarray(entry["input_unit"]).T)
    assert "GRU: gate z" in shown and "GRU: gate i" not in shown
    assert probe_report.results["gate_statistics"]["RNN"]["input_unit"] is None
