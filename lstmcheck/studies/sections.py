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


def _norms(ctx, subject, plain=False):
    """gradient_norms of a subject, computed once per study, with the study's truncation and
    clipping (``plain``: without them, the comparison that shows what they change)."""
    from ..probes import gradient_norms

    opts = {} if plain else {k: ctx.settings[k] for k in ("truncate", "clip_norm")
                             if ctx.settings.get(k) is not None}
    key = ("gradient_norms", id(subject), tuple(sorted(opts.items())))
    if key not in ctx.cache:
        ctx.cache[key] = gradient_norms(subject.model, subject.params, subject.x,
                                        **subject.probed, shares=(HORIZON_SHARE,),
                                        seed=ctx.settings.get("seed", 0),
                                        loss=ctx.settings.get("loss", "last"), **opts)
    return ctx.cache[key]


def _modified(ctx):
    """What the study changes in BPTT, in words ('' when nothing)."""
    st = ctx.settings
    parts = ([f"truncated BPTT every {st['truncate']} steps"] if st.get("truncate") else []) + \
        ([f"gradient clipped to norm {st['clip_norm']:g}"] if st.get("clip_norm") else [])
    return ", ".join(parts)


def _tiny(subject):
    """The smallest normal number of the subject's dtype: below it a norm has underflowed."""
    return float(np.finfo(subject.model.dtype).tiny)


def _underflow_notes(r, tiny):
    """One note per state whose gradient norm underflows (GradientNorms.underflow_lag)."""
    quantities = (("‖∂L/∂h_t‖", r.underflow_lag), ("‖∂L/∂c_t‖", r.c_underflow_lag))
    return [fig_flow.underflow_text(q, k, tiny) for q, k in quantities if k is not None]


REACH_TOL = 0.01     # "stays >= 1% of its last-step value"


def _stop(*lags):
    """The first of the lags where a curve stops (under- or overflow), or None."""
    lags = [k for k in lags if k is not None]
    return min(lags) if lags else None


def section_flow(report, ctx):
    """Gradient norm against lag per model, median with its IQR band over the batch's
    sequences; theory overlay: exp(λ₁ k). A curve stops at the lag where its norm underflows
    (subnormal or 0 in the model's dtype) or overflows, with a note. One row per quantity
    (‖∂L/∂h‖, and ‖∂L/∂c‖ for the LSTM): the rate of each regime and the reach, all from the
    arrays plotted."""
    from . import statements as S

    curves, data, underflows = [], {}, []
    for s in ctx.subjects:
        r = _norms(ctx, s)
        lam = float(_lyapunov(ctx, s).exponents[0])
        with np.errstate(under="ignore", over="ignore"):
            theory = np.exp(lam * r.lags)
        tiny = _tiny(s)
        n = int(r.meta["B"])
        curves.append({"label": s.label, "cell": s.cell, "lag": r.lags, "norm": r.h_norm_rel,
                       "band": r.h_iqr_rel, "norm_c": r.c_norm_rel, "band_c": r.c_iqr_rel,
                       "n": n, "theory": theory,
                       "theory_label": f"{s.label}: exp(λ₁k), λ₁ = {lam:.3g}",
                       "underflow_lag": r.underflow_lag, "c_underflow_lag": r.c_underflow_lag,
                       "overflow_lag": r.overflow_lag, "truncated_lag": r.truncated_lag,
                       "tiny": tiny})
        data[s.label] = r.to_dict()     # underflow_lag, c_underflow_lag: None -> null
        notes = _underflow_notes(r, tiny)
        underflows += [f"{s.label}: {n_}" for n_ in notes]
        parts = [("‖∂L/∂h‖", r.h_norm_rel, r.regimes, r.underflow_lag, notes[:1]
                  if r.underflow_lag is not None else [])]
        if r.c_norm_rel is not None:
            parts.append(("‖∂L/∂c‖", r.c_norm_rel, r.c_regimes, r.c_underflow_lag,
                          notes[-1:] if r.c_underflow_lag is not None else []))
        cut = ([f"zero from lag {r.truncated_lag} (truncated BPTT)"]
               if r.truncated_lag is not None else [])
        for quantity, rel, regimes, under, note in parts:
            report.add_row(f"gradient flow {quantity}: {s.label}",
                           S.flow_text(quantity, rel, regimes, REACH_TOL,
                                       _stop(under, r.overflow_lag, r.truncated_lag),
                                       note + cut))
        if _modified(ctx):
            plain = _norms(ctx, s, plain=True)
            curves[-1]["compare"] = plain.h_norm_rel
            curves[-1]["compare_label"] = f"{s.label}: ‖∂L/∂h‖, full BPTT, unclipped"
            report.add_row(f"{_modified(ctx)}: {s.label}",
                           S.clip_text(r.grad_norm, r.clip_scale, plain.grad_norm,
                                       ctx.settings.get("clip_norm"), r.lags, r.h_norm_rel,
                                       plain.h_norm_rel))
    report.results["gradient_norms"] = data
    report.add_figure(
        "gradient_flow", "Median over the batch's sequences of ‖∂L/∂h_{T−k}‖ (solid) and, for "
        "the LSTM, ‖∂L/∂c_{T−k}‖ (dotted), each relative to the last step, against the lag k; "
        "shaded: the interquartile range over the sequences (n in the legend); dashed: "
        "exp(λ₁k) from the leading Lyapunov exponent λ₁, the rate linearised dynamics predict. "
        f"The summary rows fit the rate of lags 0–{_first_lags()} and of the tail separately."
        + (" Dash-dotted: where a norm underflows and its curve stops ("
           + "; ".join(underflows) + ")." if underflows else "")
        + (f" With {_modified(ctx)}; wide pale lines: full BPTT without clipping, for comparison."
           if _modified(ctx) else "")
        + (" Loss: L = Σ_t ⟨v, h_t⟩ (every step's output)." if ctx.settings.get("loss") == "sum"
           else " Loss: L = ⟨v, h_T⟩ (the last hidden state only)."),
        fig_flow.gradient_norm_vs_lag(curves), table=fig_flow.flow_table(curves))


def _first_lags():
    from ..probes.regimes import FIRST_LAGS
    return FIRST_LAGS


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
                       f"{HORIZON_SHARE:.0%} of ∂L/∂W_hh comes from the last {h + 1} steps"
                       if h is not None else "undetermined: the recurrent part of ∂L/∂W_hh is 0 "
                       "(nothing to share out)")
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
    """Lyapunov spectrum (QR method) and the convergence of its leading exponents; λ₁'s sign
    is stated only where it exceeds its uncertainty (statements.lyapunov_text)."""
    from . import statements as S

    spectra, conv, data = [], [], {}
    for s in ctx.subjects:
        r = _lyapunov(ctx, s)
        spectra.append({"label": s.label, "cell": s.cell, "exponents": r.exponents})
        conv.append({"label": s.label, "cell": s.cell, "steps": r.convergence_steps,
                     "estimates": r.convergence[:, :3]})
        data[s.label] = {**r.to_dict(), "convergence": r.convergence[:, :3]}  # what is plotted
        report.add_row(f"Lyapunov spectrum: {s.label}",
                       S.lyapunov_text(r.exponents, r.lambda1_gap, r.convergence[:, :3],
                                       steps=int(r.meta["T"]) - int(r.meta["warmup"])))
    report.results["lyapunov_spectrum"] = data
    report.add_figure(
        "lyapunov", "Left: Lyapunov exponents of the state dynamics driven by the inputs "
        "(λ₁ < 0: perturbations and gradients shrink). Right: running estimates of λ₁…λ₃.",
        fig_flow.lyapunov_figure(spectra, conv))


def section_gates(report, ctx):
    """Gate saturation over time (a derivative below 1% of its maximum), the memory gate's
    values per unit over time, and its time constants τ = 1/(1 − f̄)."""
    from ..probes import gate_statistics
    from ..probes.gates import DERIVATIVE_TOL
    from ..report import fig_gates
    from . import statements as S

    panels, taus, values, data = [], [], [], {}
    for s in ctx.subjects:
        r = _cached(ctx, gate_statistics, s)
        sat = np.asarray(r.saturation, dtype=float)
        T = sat.shape[1]
        panels.append({"label": s.label, "gates": r.gates, "time": np.arange(1, T + 1),
                       "saturation": sat})
        data[s.label] = r.to_dict()
        text = (f"saturated (derivative < {DERIVATIVE_TOL:.0%} of its maximum), mean over time: "
                + ", ".join(f"{g} {v:.0%}" for g, v in zip(r.gates, sat.mean(axis=1))))
        if r.unit_time_constant is not None:
            tau = np.asarray(r.unit_time_constant, dtype=float)
            taus.append({"label": s.label, "cell": s.cell, "tau": tau})
            med = float(np.median(tau))
            text += (f"; mean {r.forget_gate} gate {np.mean(r.forget_mean):.3g}, median time "
                     f"constant τ = 1/(1 − f̄) " + (f"{med:.3g} steps" if np.isfinite(med) else
                                                   "unbounded (f̄ = 1 in float64)"))
            if r.forget_unit is not None:
                values.append({"label": s.label, "gate": r.forget_gate,
                               "time": np.arange(1, T + 1), "values": r.forget_unit})
            if r.input_unit is not None:
                values.append({"label": s.label, "gate": "i", "time": np.arange(1, T + 1),
                               "values": r.input_unit})
        report.add_row(f"gates: {s.label}", S.sentence(text))
    report.results["gate_statistics"] = data
    report.add_figure(
        "gate_saturation", "Fraction of saturated units per gate and time step. Saturated means "
        f"the activation's derivative is below {DERIVATIVE_TOL:.0%} of its maximum: "
        f"σ'(a) < {DERIVATIVE_TOL / 4:g} for sigmoid gates (s outside 0.0025–0.9975), tanh'(a) "
        f"< {DERIVATIVE_TOL:g} for tanh-like ones (|v| > 0.995). A forget gate held near 1 on "
        "purpose (chrono) is memory, not saturation, unless it is pinned beyond 0.9975.",
        fig_gates.gate_saturation_heatmaps(panels))
    if values:
        report.add_figure(
            "gate_values", "The memory gate (LSTM: forget gate f; GRU: update gate z) and the "
            "LSTM's input gate i of every unit over time, mean over the batch: which units keep "
            "memory, for how long, and which let new input in.",
            fig_gates.gate_values_heatmaps(values))
    if taus:
        report.add_figure(
            "time_constants", "Memory time constant τ = 1/(1 − f̄) of each unit's forget gate "
            "(GRU: update gate z), f̄ averaged over time and batch.",
            fig_gates.forget_time_constants(taus))
