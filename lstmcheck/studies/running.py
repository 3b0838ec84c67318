"""Running a study: the named sections, run in order on one context; ``probe_study`` runs chosen
sections on chosen subjects (models from a grid, or a user's trained weights)."""
from __future__ import annotations

from ..report import Report
from .phase import section_phase
from .sections import (section_flow, section_gates, section_horizon, section_jacobian,
                       section_lyapunov)
from .selfcheck import section_gradcheck
from .subjects import Context
from .timescales import section_timescales

SECTIONS = {"gradcheck": section_gradcheck, "flow": section_flow, "jacobian": section_jacobian,
            "lyapunov": section_lyapunov, "horizon": section_horizon, "gates": section_gates,
            "phase": section_phase, "timescales": section_timescales}
PROBE_SECTIONS = ("flow", "jacobian", "lyapunov", "horizon", "gates")


def run_sections(report, ctx, sections, progress=None):
    """Run the named sections in order; ``progress(name)`` after each (for a progress bar)."""
    for name in sections:
        SECTIONS[name](report, ctx)
        if progress is not None:
            progress(name)
    return report


def probe_study(subjects, *, sections=PROBE_SECTIONS, seed=0, progress=None, truncate=None,
                clip_norm=None, loss="last") -> Report:
    """Chosen probe sections on chosen subjects (models from a grid, or a user's weights).
    ``truncate`` / ``clip_norm`` go to the gradient-norm probe (flow and horizon sections); the
    flow figure then also shows full, unclipped BPTT, so what they change is visible. ``loss``:
    the gradient-norm probe's loss ("last" or "sum", lstmcheck.probes.gradient_norms)."""
    from ..errors import OptionError

    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise OptionError(f"unknown probe {unknown[0]!r}; choose from {', '.join(PROBE_SECTIONS)}.")
    if not subjects:
        raise OptionError("nothing to probe: give at least one cell or a weights file.")
    first = subjects[0].setting
    settings = {"seed": seed, "hidden_size": subjects[0].model.hidden_size,
                "seq_len": int(subjects[0].x.shape[0]), "batch": int(subjects[0].x.shape[1]),
                "task": first.get("task", "noise"), "dtype": subjects[0].model.dtype.name,
                "backend": subjects[0].model.backend, "truncate": truncate,
                "clip_norm": clip_norm, "loss": loss}
    ctx = Context(list(subjects), settings)
    report = Report("lstmcheck probe: gradient flow of " + ", ".join(s.label for s in subjects),
                    kind="gradient-flow report")
    report.results["settings"] = {"subjects": [s.setting for s in subjects], **settings}
    return run_sections(report, ctx, sections, progress)
