"""Studies behind `lstmcheck report` and `lstmcheck probe`: run probes on models, collect summary
rows, figures and the numbers behind them into a :class:`~lstmcheck.report.Report`.

A study is a list of *sections*. Each section is a function ``section(report, ctx)`` that runs
one probe (or check) on the study's subjects, adds summary rows, a figure and its data. The
default study (``default_study``) is every section on a small RNN, LSTM and GRU; ``probe_study``
runs chosen sections on chosen models (or on a user's trained weights).

Models are built from sweep points (:func:`lstmcheck.sweep.setup_study`), so the CLI options,
the sweep grid keys and the study all mean the same thing by ``init``, ``spectral_radius``,
``forget_bias``, ``task`` and ``seed``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from .errors import LstmcheckError
from .report import Report
from .report import fig_flow

# Small enough that `lstmcheck report` runs in seconds, large enough for the effects to show.
DEFAULTS = {"cells": ("rnn", "lstm", "gru"), "hidden_size": 32, "seq_len": 100, "batch": 8,
            "task": "noise", "init": "pytorch", "seed": 0, "dtype": "float64", "backend": "numpy"}
PHASE_RADII = tuple(np.round(np.linspace(0.25, 2.5, 10), 3))
PHASE_SEQ_LEN = 60
HORIZON_SHARE = 0.9
N_SPECTRUM = 16      # leading singular values / Lyapunov exponents kept and plotted


@dataclass
class Subject:
    """One model under study with its parameters and input."""

    label: str
    cell: str
    model: object
    params: dict
    x: object
    setting: dict = field(default_factory=dict)   # the sweep point (or file) it came from


@dataclass
class Context:
    subjects: list
    settings: dict
    cache: dict = field(default_factory=dict)      # results shared between sections


def label_of(point: dict) -> str:
    """RNN, LSTM, GRU, plus what differs from the defaults (variant, init, radius, bias)."""
    parts = [point["cell"].upper()]
    if point.get("variant", "vanilla") != "vanilla":
        parts.append(point["variant"])
    for key, fmt in (("spectral_radius", "ρ={:g}"), ("forget_bias", "b_f={:g}")):
        if point.get(key) is not None:
            parts.append(fmt.format(point[key]))
    if point.get("init", "pytorch") != "pytorch":
        parts.append(point["init"])
    return " ".join(parts)


def subjects_from_grid(grid) -> list:
    """Subjects from a sweep grid (dict of key -> value or list of values)."""
    sweep = importlib.import_module("lstmcheck.sweep")   # the package; lc.sweep is the function

    out = []
    for point in sweep.expand_grid(grid):
        s = sweep.setup_study(point)
        out.append(Subject(label_of(point), point["cell"], s.model, s.params, s.x, point))
    return out


def subject_from_weights(path, *, layout=None, cell=None, seq_len=100, batch=8, task="noise",
                         seed=0, backend="numpy"):
    """A user's trained weights (any file lstmcheck.io reads) driven by a task's inputs."""
    from . import io, tasks

    try:
        model, params = io.load_file(path, layout=layout, cell=cell)
    except LstmcheckError as exc:  # every message names the file it is about
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{str(path)!r}: {exc}") from None
    x = tasks.make(task, seq_len, batch, input_size=model.input_size, seed=seed,
                   dtype=model.dtype.name, backend=backend).x
    setting = {"weights": str(path), "cell": model.kind, "seq_len": seq_len, "batch": batch,
               "task": task, "seed": seed}
    return Subject(f"{model.kind.upper()} from {path}", model.kind, model, params, x, setting)


# ----------------------------------------------------------------------------- sections
def _cached(ctx, probe, subject, **kwargs):
    """A probe's result for a subject, computed once per study (sections share them)."""
    key = (probe.__name__, id(subject))
    if key not in ctx.cache:
        ctx.cache[key] = probe(subject.model, subject.params, subject.x, **kwargs)
    return ctx.cache[key]


def _n_spectrum(subject):
    """How many singular values / exponents to keep: N_SPECTRUM, or the whole state if smaller."""
    m = subject.model
    return min(N_SPECTRUM, m.output_size + (m.hidden_size if m.cell.has_cell_state else 0))


def _lyapunov(ctx, subject):
    from .probes import lyapunov_spectrum
    return _cached(ctx, lyapunov_spectrum, subject, k=_n_spectrum(subject),
                   seed=ctx.settings.get("seed", 0))


def _norms(ctx, subject):
    """gradient_norms of a subject, computed once per study."""
    from .probes import gradient_norms

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
        from .probes import horizon_study

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
    from .probes import jacobian_spectrum

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


SIGMOID_GATES = frozenset("ifozr")


def section_gates(report, ctx):
    """Gate saturation over time and the forget gate's memory time constants."""
    from .probes import gate_statistics
    from .report import fig_gates

    panels, taus, data = [], [], {}
    for s in ctx.subjects:
        r = _cached(ctx, gate_statistics, s)
        # sigmoid gates saturate at either end; tanh-like activations only at |a| -> 1
        sat = np.array([r.high[j] + (r.low[j] if g in SIGMOID_GATES else 0.0)
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


def phase_measure(study):
    """Sweep measure: the per-lag relative gradient norm and its decay rate."""
    from .probes import gradient_norms

    r = gradient_norms(study.model, study.params, study.x, seed=0)
    return {"norm_rel": r.h_norm_rel, "decay_rate": r.decay_rate,
            "underflow_lag": r.underflow_lag}


def section_phase(report, ctx):
    """Vanishing/exploding phase diagram over the spectral radius of W_hh, per cell."""
    sweep = importlib.import_module("lstmcheck.sweep")   # the package; lc.sweep is the function

    st = ctx.settings
    cells = list(dict.fromkeys(s.cell for s in ctx.subjects))  # the phase diagram is per cell
    grid = {"cell": cells, "spectral_radius": list(PHASE_RADII), "init": "orthogonal",
            "seq_len": min(PHASE_SEQ_LEN, st["seq_len"]), "hidden_size": st["hidden_size"],
            "batch": st["batch"], "task": st["task"], "seed": st["seed"], "dtype": st["dtype"],
            "backend": st["backend"]}
    records = sweep.sweep(grid, phase_measure)
    bad = [r["error"] for r in records if r.get("error")]
    if bad:
        from .errors import OptionError
        raise OptionError(f"the spectral-radius sweep failed: {bad[0]}")
    panels, decay = [], []
    for cell in cells:
        rows = [r for r in records if r["cell"] == cell]
        radius = np.array([r["spectral_radius"] for r in rows])
        norm = np.array([r["norm_rel"] for r in rows], dtype=float)
        for i, r in enumerate(rows):       # never colour a subnormal or zero norm
            if r.get("underflow_lag") is not None:
                norm[i, r["underflow_lag"]:] = np.nan
        rate = -np.array([r["decay_rate"] for r in rows], dtype=float)   # growth per step
        panels.append({"label": cell.upper(), "radius": radius, "lag": np.arange(norm.shape[1]),
                       "norm": norm})
        decay.append({"label": cell.upper(), "cell": cell, "radius": radius, "rate": rate})
        crossing = _zero_crossing(radius, rate)
        report.add_row(f"edge of chaos: {cell.upper()}",
                       "gradients explode above ρ(W_hh) ≈ " + f"{crossing:.3g}" if crossing
                       else "no transition between ρ = "
                       f"{radius.min():g} and {radius.max():g}")
    report.results["phase"] = {"grid": grid, "records": records}
    report.add_figure(
        "phase_diagram", "Vanishing (purple) or exploding (orange) gradients over the spectral "
        "radius of W_hh (orthogonal init) and the lag; black: ‖∂L/∂h‖ = 1. Right: growth rate.",
        fig_flow.phase_diagram(panels, decay))


def _zero_crossing(x, y):
    """The first x where y changes sign from negative to positive (linear interpolation)."""
    for i in range(len(x) - 1):
        if np.isfinite(y[i]) and np.isfinite(y[i + 1]) and y[i] < 0 <= y[i + 1]:
            return float(x[i] + (x[i + 1] - x[i]) * (-y[i]) / (y[i + 1] - y[i]))
    return None


# ----------------------------------------------------------------------------- self-check
@dataclass(frozen=True)
class Case:
    """One self-check: a cell with its options, in one dtype, backend and method."""

    cell: str
    options: tuple = ()          # sorted (name, value) pairs, e.g. (("variant", "cifg"),)
    dtype: str = "float64"
    backend: str = "numpy"
    method: str = "auto"

    @property
    def model_label(self) -> str:
        return " ".join([self.cell.upper(), *(f"{k}={v}" if isinstance(v, bool) else str(v)
                                              for k, v in self.options)])

    @property
    def label(self) -> str:
        return f"{self.model_label} {self.dtype} {self.backend} {self.method}"

    def to_dict(self):
        return {"cell": self.cell, **dict(self.options), "dtype": self.dtype,
                "backend": self.backend, "method": self.method}


def self_check_cases(cells=("rnn", "lstm", "gru"), variants=None, dtypes=("float64",),
                     backends=("numpy",), methods=("auto",)) -> list:
    """Every combination; ``variants`` None means every LSTM variant, and the RNN
    nonlinearities and both GRU reset conventions come along."""
    from .errors import OptionError
    from .models import CELLS, LSTM_VARIANTS
    from .models.rnn import NONLINEARITIES

    cells = [str(c).lower() for c in cells]
    for c in cells:
        if c not in CELLS:
            raise OptionError(f"unknown cell {c!r}; choose one of {', '.join(CELLS)}.")
    if variants and "lstm" not in cells:
        raise OptionError("variants apply to LSTM only; add --cell lstm.")
    per_cell = {
        "rnn": [(("nonlinearity", n),) for n in NONLINEARITIES if n != "identity"],
        "lstm": [(("variant", v),) for v in (variants or LSTM_VARIANTS)],
        "gru": [(("reset_after", True),), (("reset_after", False),)],
    }
    return [Case(c, opts, dt, be, m) for c in cells for opts in per_cell[c] for dt in dtypes
            for be in backends for m in methods]


def run_self_check(cases, *, input_size=3, hidden_size=4, seq_len=5, batch=2, num_layers=1,
                   bidirectional=False, elements="all", seed=0, progress=None) -> list:
    """``lc.gradcheck`` of the oracle itself for every case: [(case, GradcheckReport)]."""
    from . import tasks
    from .check import gradcheck
    from .models import build

    out = []
    for case in cases:
        model = build(case.cell, input_size, hidden_size, num_layers=num_layers,
                      bidirectional=bidirectional, dtype=case.dtype, backend=case.backend,
                      **dict(case.options))
        params = model.init_params(seed)
        x = tasks.noise(seq_len, batch, input_size, seed=seed, dtype=case.dtype,
                        backend=case.backend).x
        out.append((case, gradcheck(model, params, x, method=case.method, elements=elements,
                                    seed=seed)))
        if progress is not None:
            progress(case.label)
    return out


TENSOR_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peep", "weight_hr",
                "x", "h0", "c0")


def _tensor_kind(name):
    return name.split("_l")[0] if "_l" in name else name


ROW_STATUS = {"passed": "pass", "failed": "fail", "inconclusive": "inconclusive"}


def add_self_check(report, results, *, one_row_per_case=True):
    """Summary rows, the error histogram, the per-tensor error heatmap and the raw reports."""
    from .report import fig_check

    methods = list(dict.fromkeys(c.method for c, _ in results))
    if one_row_per_case:
        for case, r in results:
            report.add_row(f"gradcheck {case.label}", r.summary, ROW_STATUS[r.verdict])
    else:
        for m in methods:
            rs = [(c, r) for c, r in results if c.method == m]
            failed = [c.label for c, r in rs if r.verdict == "failed"]
            unsure = [c.label for c, r in rs if r.verdict == "inconclusive"]
            worst = max((t["max_rel_err"] or 0.0) for _, r in rs for t in r.tensors)
            done = rs[0][1].method if rs else m
            report.add_row(f"oracle gradient check ({done})",
                           f"{len(rs) - len(failed) - len(unsure)} of {len(rs)} models pass; "
                           f"largest relative error of a tensor {worst:.2g}"
                           + (f"; INCONCLUSIVE: {', '.join(unsure)}" if unsure else "")
                           + (f"; FAILED: {', '.join(failed)}" if failed else ""),
                           "fail" if failed else ("inconclusive" if unsure else "pass"))
    groups = []
    for m in methods:
        errs = [t["max_rel_err"] for c, r in results if c.method == m for t in r.tensors
                if t.get("max_rel_err") is not None]
        name = next(r.method for c, r in results if c.method == m)
        groups.append({"label": name, "errors": np.array(errs, dtype=float)})
    if any(g["errors"].size for g in groups):
        report.add_figure(
            "gradcheck_errors", "Largest relative error of each checked tensor (every model, "
            "layer and input), by numerical method.",
            fig_check.error_histogram(groups, xlabel="largest relative error per tensor",
                                      unit="tensors"))
    first = [(c, r) for c, r in results if c.method == methods[0]]
    kinds = [k for k in TENSOR_KINDS if any(_tensor_kind(t["name"]) == k
                                            for _, r in first for t in r.tensors)]
    matrix = np.full((len(first), len(kinds)), np.nan)
    for i, (_, r) in enumerate(first):
        for t in r.tensors:
            if t.get("max_rel_err") is not None and _tensor_kind(t["name"]) in kinds:
                j = kinds.index(_tensor_kind(t["name"]))
                matrix[i, j] = np.nanmax([matrix[i, j], t["max_rel_err"]])
    if first and kinds:
        report.add_figure(
            "gradcheck_heatmap", f"Largest relative error per model and tensor "
            f"({first[0][1].method}); n/a: the model has no such tensor.",
            fig_check.error_heatmap(matrix, [f"{c.model_label} {c.dtype}" for c, _ in first],
                                    kinds, xlabel="tensor", title="Gradient-check errors"))
    report.results["gradcheck"] = [{"case": c.to_dict(), "verdict": r.verdict,
                                    "resolution": r.resolution, "report": _brief(r)}
                                   for c, r in results]


def _brief(r):
    """A check's report without the worst-element list when it passed (that list only matters
    for a failure, and it dominates the size of results.json)."""
    d = r.to_dict()
    if r.passed:
        d.pop("worst", None)
    return d


def section_gradcheck(report, ctx):
    """The oracle checks itself: every cell and variant, complex step and central differences."""
    cells = list(dict.fromkeys(s.cell for s in ctx.subjects))
    cases = self_check_cases(cells, methods=("auto", "central"))
    add_self_check(report, run_self_check(cases, seed=ctx.settings.get("seed", 0)),
                   one_row_per_case=False)


SECTIONS = {"gradcheck": section_gradcheck, "flow": section_flow, "jacobian": section_jacobian,
            "lyapunov": section_lyapunov, "horizon": section_horizon, "gates": section_gates,
            "phase": section_phase}
DEFAULT_SECTIONS = ("gradcheck", "flow", "jacobian", "lyapunov", "horizon", "gates", "phase")
HORIZON_SEQ_LENS = (30, 100, 300, 1000)


# ----------------------------------------------------------------------------- running
def run_sections(report, ctx, sections, progress=None):
    """Run the named sections in order; ``progress(name)`` after each (for a progress bar)."""
    for name in sections:
        SECTIONS[name](report, ctx)
        if progress is not None:
            progress(name)
    return report


PROBE_SECTIONS = ("flow", "jacobian", "lyapunov", "horizon", "gates")


def probe_study(subjects, *, sections=PROBE_SECTIONS, seed=0, progress=None) -> Report:
    """Chosen probe sections on chosen subjects (models from a grid, or a user's weights)."""
    from .errors import OptionError

    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise OptionError(f"unknown probe {unknown[0]!r}; choose from {', '.join(PROBE_SECTIONS)}.")
    if not subjects:
        raise OptionError("nothing to probe: give at least one cell or a weights file.")
    first = subjects[0].setting
    settings = {"seed": seed, "hidden_size": subjects[0].model.hidden_size,
                "seq_len": int(subjects[0].x.shape[0]), "batch": int(subjects[0].x.shape[1]),
                "task": first.get("task", "noise"), "dtype": subjects[0].model.dtype.name,
                "backend": subjects[0].model.backend}
    ctx = Context(list(subjects), settings)
    report = Report("lstmcheck probe: gradient flow of " + ", ".join(s.label for s in subjects))
    report.results["settings"] = {"subjects": [s.setting for s in subjects], **settings}
    return run_sections(report, ctx, sections, progress)


def default_study(*, cells=DEFAULTS["cells"], hidden_size=DEFAULTS["hidden_size"],
                  seq_len=DEFAULTS["seq_len"], batch=DEFAULTS["batch"], task=DEFAULTS["task"],
                  seed=DEFAULTS["seed"], dtype=DEFAULTS["dtype"], backend=DEFAULTS["backend"],
                  sections=DEFAULT_SECTIONS, progress=None) -> Report:
    """The study of `lstmcheck report`: every section on a small RNN, LSTM and GRU."""
    settings = dict(cells=tuple(cells), hidden_size=hidden_size, seq_len=seq_len, batch=batch,
                    task=task, init=DEFAULTS["init"], seed=seed, dtype=dtype, backend=backend,
                    horizon_seq_lens=HORIZON_SEQ_LENS)
    common = {"hidden_size": hidden_size, "seq_len": seq_len, "batch": batch, "task": task,
              "seed": seed, "dtype": dtype, "backend": backend}
    grid = [{"cell": list(cells), **common}]
    if "lstm" in cells:  # what a memory-friendly initialisation changes
        grid.append({"cell": "lstm", "init": "chrono", **common})
    ctx = Context(subjects_from_grid(grid), settings)
    report = Report("lstmcheck report: gradient checks and gradient flow of RNN, LSTM and GRU")
    report.results["settings"] = settings
    report.notes.append(
        f"Models: {', '.join(s.label for s in ctx.subjects)} with hidden size {hidden_size}, "
        f"PyTorch's default initialisation (LSTM chrono: Tallec & Ollivier's chrono "
        f"initialisation for T_max = {seq_len + 2}), {task} inputs of {seq_len} steps × {batch} sequences, "
        f"seed {seed}, {dtype} on {backend}. The loss reads the last hidden state only, so "
        f"∂L/∂h_(T−k) shows how far back a signal at the end reaches.")
    return run_sections(report, ctx, sections, progress)
