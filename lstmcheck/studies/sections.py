"""The probe sections of a study. Each ``section(report, ctx)`` runs one probe on the study's
subjects and adds its summary rows, its figure and the numbers behind the figure to the report.
"""
from __future__ import annotations

import numpy as np

from ..report import fig_flow

HORIZON_SHARE = 0.9
N_SPECTRUM = 16      # leading singular values / Lyapunov exponents kept and plotted


def _cached(ctx, probe, subject, **kwargs):
    """A probe's result for a subject, computed once per study (sections share them)."""
    key = (probe.__name__, id(subject))
    if key not in ctx.cache:
        ctx.cache[key] = probe(subject.model, subject.params, subject.x, **subject.probed,
                               **kwargs)
    return ctx.cache[key]


def _n_spectrum(subject):
    """How many singular values / exponents to keep: N_SPECTRUM, or the whole state if smaller."""
    m = subject.model
    return min(N_SPECTRUM, m.output_size + (m.hidden_size if m.cell.has_cell_state else 0))


def _lyapunov(ctx, subject):
    from ..probes import lyapunov_spectrum
    return _cached(ctx, lyapunov_spectrum, subject, k=_n_spectrum(subject),
                   seed=ctx.settings.get("seed", 0))


def _norms(ctx, subject):
    """gradient_norms of a subject, computed once per study."""
    from ..probes import gradient_norms

    return _cached(ctx, gradient_norms, subject, shares=(HORIZON_SHARE,),
                   seed=ctx.settings.get("seed", 0))


def _tiny(subject):
    """The smallest normal number of the subject's dtype: below it a norm has underflowed."""
    return float(np.finfo(subject.model.dtype).tiny)


def _underflow_notes(r, tiny):
    """One note per state whose gradient norm underflows (GradientNorms.underflow_lag)."""
    quantities = (("‖∂L/∂h_t‖", r.underflow_lag), ("‖∂L/∂c_t‖", r.c_underflow_lag))
    return [fig_flow.underflow_text(q, k, tiny) for q, k in quantities if k is not None]


def section_flow(report, ctx):
    """Gradient norm against lag per model; theory overlay: exp(λ₁ k) when known. A curve stops
    at the lag where its norm underflows (subnormal or 0 in the model's dtype), with a note."""
    curves, data, underflows = [], {}, []
    for s in ctx.subjects:
        r = _norms(ctx, s)
        lam = float(_lyapunov(ctx, s).exponents[0])
        with np.errstate(under="ignore"):
            theory = np.exp(lam * r.lags)
        tiny = _tiny(s)
        curves.append({"label": s.label, "cell": s.cell, "lag": r.lags, "norm": r.h_norm_rel,
                       "norm_c": r.c_norm_rel, "theory": theory,
                       "theory_label": f"{s.label}: exp(λ₁k), λ₁ = {lam:.3g}",
                       "underflow_lag": r.underflow_lag, "c_underflow_lag": r.c_underflow_lag,
                       "tiny": tiny})
        data[s.label] = r.to_dict()     # underflow_lag, c_underflow_lag: None -> null
        verdict = ("vanishing" if r.decay_rate > 0 else "exploding") if np.isfinite(r.decay_rate) \
            else "flat"
        notes = _underflow_notes(r, tiny)
        underflows += [f"{s.label}: {n}" for n in notes]
        report.add_row(f"gradient flow: {s.label}",
                       f"{verdict}, ×{r.decay_factor:.3g} per step (half-life "
                       f"{r.half_life:.3g} steps); ‖∂L/∂h‖ stays ≥ 1% of its last-step value for "
                       f"{r.steps_in_past} steps" + "".join(f"; {n}" for n in notes))
    report.results["gradient_norms"] = data
    report.add_figure(
        "gradient_flow", "Median ‖∂L/∂h_{T−k}‖ relative to the last step against the lag k for "
        "each model; dotted: the LSTM cell state; dashed: exp(λ₁k) from the leading Lyapunov "
        "exponent λ₁, the rate linearised dynamics predict."
        + (" Dash-dotted: where a norm underflows and its curve stops ("
           + "; ".join(underflows) + ")." if underflows else ""),
        fig_flow.gradient_norm_vs_lag(curves))


def section_horizon(report, ctx):
    """Share of the recurrent weight gradient from each lag, and the effective horizon."""
    curves, data = [], {}
    for s in ctx.subjects:
        r = _norms(ctx, s)
        h = r.horizon.get(HORIZON_SHARE)
        curves.append({"label": s.label, "cell": s.cell, "lag": r.lags,
                       "share": r.contribution_share, "horizon": h})
        data[s.label] = {"lags": r.lags, "contribution": r.contribution,
                         "contribution_share": r.contribution_share, "horizon": h}
        report.add_row(f"effective horizon: {s.label}",
                       f"{HORIZON_SHARE:.0%} of ∂L/∂W_hh comes from the last "
                       f"{'?' if h is None else h + 1} steps")
    against_T = None
    if ctx.settings.get("horizon_seq_lens"):
        from ..probes import horizon_study

        st = ctx.settings
        hs = horizon_study(st["horizon_seq_lens"], hidden_size=st["hidden_size"],
                           batch=st["batch"], share=HORIZON_SHARE, seed=st["seed"],
                           backend=st["backend"])
        against_T = [{"label": lab.replace(" default", "").upper().replace("CHRONO", "chrono"),
                      "cell": lab.split()[0], "x": hs.seq_lens, "horizon": hs.horizon[i] + 1,
                      "xlabel": "sequence length T (steps)", "xlog": True,
                      "title": "Horizon against sequence length"}
                     for i, lab in enumerate(hs.labels)]
        data["horizon_study"] = {k: v for k, v in hs.to_dict().items()
                                 if k not in ("curves", "c_curves")}    # not plotted
        for i, lab in enumerate(hs.labels):
            report.add_row(f"horizon at T = {hs.seq_lens[-1]}: {lab}",
                           f"{HORIZON_SHARE:.0%} of ∂L/∂W_hh from the last "
                           f"{hs.horizon[i, -1] + 1:.0f} steps")
    report.results["horizon"] = {"share": HORIZON_SHARE, "models": data}
    report.add_figure(
        "horizon", f"Left: cumulative share of ∂L/∂W_hh contributed by lags 0…k; dashed: the "
        f"lag by which {HORIZON_SHARE:.0%} has accumulated (the effective horizon)."
        + (" Right: that horizon against the sequence length, PyTorch default and chrono "
           "initialisation." if against_T else ""),
        fig_flow.horizon_figure(curves, threshold=HORIZON_SHARE, study=against_T))


def _magnitude(value, log_value):
    """A number for a summary row; below the normal range from its natural log (10^...)."""
    if value >= np.finfo(np.float64).tiny or not np.isfinite(log_value):
        return f"{value:.3g}"
    return f"10^{log_value / np.log(10):.4g}"


def section_jacobian(report, ctx):
    """Singular values of the state Jacobian ∂s_T/∂s_{T−k} against the lag (from their logs, which
    stay exact where the values underflow; the lag where they do is marked)."""
    from ..probes import jacobian_spectrum

    panels, data, underflows = [], {}, []
    for s in ctx.subjects:
        r = _cached(ctx, jacobian_spectrum, s, k=_n_spectrum(s))
        log10_sv = r.log_singular_values / np.log(10)
        tiny = _tiny(s)
        panels.append({"label": s.label, "lag": r.lags, "log10_sv": log10_sv,
                       "underflow_lag": r.underflow_lag, "tiny": tiny})
        data[s.label] = {"lags": r.lags, "log10_singular_values": log10_sv,
                         "spectral_norm": r.spectral_norm, "condition_number": r.condition_number,
                         "state": r.state, "meta": r.meta, "underflow_lag": r.underflow_lag}
        k = int(r.lags[-1])
        note = ("" if r.underflow_lag is None else
                "; " + fig_flow.underflow_text("σ₁", r.underflow_lag, tiny))
        underflows += [f"{s.label}{note}"] if note else []
        top = r.log_singular_values[:, 0]
        report.add_row(f"Jacobian ∂s_T/∂s_(T−k): {s.label}",
                       f"largest singular value {_magnitude(r.spectral_norm[0], top[0])} at k = 1, "
                       f"{_magnitude(r.spectral_norm[-1], top[-1])} at k = {k}{note}")
    report.results["jacobian_spectrum"] = data
    report.add_figure(
        "jacobian_spectrum", "Singular values of the state Jacobian ∂s_T/∂s_(T−k) (s = h, or "
        "(h, c) for LSTM) for every lag k: how many directions survive k steps back."
        + (" Dashed: the lag from which σ₁ underflows (" + "; ".join(underflows)
           + "); the colours there come from the exact logs." if underflows else ""),
        fig_flow.jacobian_heatmaps(panels))


def section_lyapunov(report, ctx):
    """Lyapunov spectrum (QR method) and the convergence of its leading exponents."""
    spectra, conv, data = [], [], {}
    for s in ctx.subjects:
        r = _lyapunov(ctx, s)
        spectra.append({"label": s.label, "cell": s.cell, "exponents": r.exponents})
        conv.append({"label": s.label, "cell": s.cell, "steps": r.convergence_steps,
                     "estimates": r.convergence[:, :3]})
        data[s.label] = {**r.to_dict(), "convergence": r.convergence[:, :3]}  # what is plotted
        report.add_row(f"Lyapunov spectrum: {s.label}",
                       f"λ₁ = {r.exponents[0]:.4g} nats/step "
                       f"({'chaotic' if r.exponents[0] > 0 else 'contracting'}); "
                       f"finite-perturbation λ₁ differs by {r.lambda1_gap:.2g}")
    report.results["lyapunov_spectrum"] = data
    report.add_figure(
        "lyapunov", "Left: Lyapunov exponents of the state dynamics driven by the inputs "
        "(λ₁ < 0: perturbations and gradients shrink). Right: running estimates of λ₁…λ₃.",
        fig_flow.lyapunov_figure(spectra, conv))


def section_gates(report, ctx):
    """Gate saturation over time and the forget gate's memory time constants."""
    from ..probes import gate_statistics
    from ..report import fig_gates

    panels, taus, data = [], [], {}
    for s in ctx.subjects:
        r = _cached(ctx, gate_statistics, s)
        # sigmoid gates saturate at either end; tanh-like activations only at |a| -> 1
        unit = s.model.cell.unit_gates      # sigmoid-like: activations in (0, 1)
        sat = np.array([r.high[j] + (r.low[j] if g in unit else 0.0)
                        for j, g in enumerate(r.gates)])
        T = sat.shape[1]
        panels.append({"label": s.label, "gates": r.gates, "time": np.arange(1, T + 1),
                       "saturation": sat})
        data[s.label] = r.to_dict()
        text = f"saturated: {', '.join(f'{g} {v:.0%}' for g, v in zip(r.gates, sat.mean(axis=1)))}"
        if r.unit_time_constant is not None:
            tau = np.asarray(r.unit_time_constant, dtype=float)
            taus.append({"label": s.label, "cell": s.cell, "tau": tau})
            text += (f"; mean {r.forget_gate} gate {np.mean(r.forget_mean):.3g}, median time "
                     f"constant {np.median(tau):.3g} steps")
        report.add_row(f"gates: {s.label}", text)
    report.results["gate_statistics"] = data
    report.add_figure(
        "gate_saturation", "Fraction of saturated units per gate and time step (sigmoid gates "
        "below 0.05 or above 0.95; tanh activations beyond ±0.95).",
        fig_gates.gate_saturation_heatmaps(panels))
    if taus:
        report.add_figure(
            "time_constants", "Memory time constant τ = 1/(1 − f̄) of each unit's forget gate "
            "(GRU: update gate z), averaged over time and batch.",
            fig_gates.forget_time_constants(taus))
