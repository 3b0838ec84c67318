"""The named measures a sweep runs at each point (``f(study) -> dict`` of numbers)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError


def _gradient_flow(study):
    """lstmcheck.probes.gradient_norms with the study's loss (dL/dy at the last step).

    ``regime`` is the verdict of the tail regime of ||dL/dh|| (the first-steps one for short
    sequences; lstmcheck.probes.regimes), "exploding" where the gradient overflowed, at
    ``overflow_lag``: an overflow is a measurement of this point, not a failure."""
    from ..probes import gradient_norms
    r = gradient_norms(study.model, study.params, study.x, loss=study.dy)
    reg = r.regimes.get("tail", r.regimes["first"])
    return {"decay_rate": r.decay_rate, "c_decay_rate": r.c_decay_rate,
            "regime": reg.verdict, "rate_first": r.regimes["first"].rate,
            "rate_tail": r.regimes["tail"].rate if "tail" in r.regimes else None,
            "overflow_lag": r.overflow_lag, "underflow_lag": r.underflow_lag,
            "horizon": r.horizon.get(0.9), "horizon_99": r.horizon.get(0.99),
            "half_life": r.half_life, "steps_in_past": r.steps_in_past, "grad_norm": r.grad_norm}


def _lyapunov(study):
    """lstmcheck.probes.lyapunov_spectrum along the first sequence: lambda_1, the sum of the
    spectrum (phase-volume contraction) and the Kaplan-Yorke dimension."""
    from ..probes import lyapunov_spectrum
    r = lyapunov_spectrum(study.model, study.params, study.x, seed=int(study.rng.integers(2**31)))
    lam = np.asarray(r.exponents, dtype=float)
    return {"lambda_1": float(lam[0]), "lambda_sum": float(lam.sum()),
            "kaplan_yorke": float(r.kaplan_yorke)}


def _gates(study):
    """lstmcheck.probes.gate_statistics: the memory gate's mean and time constant, and the
    fraction of saturated gate activations, all averaged over time."""
    from ..probes import gate_statistics
    r = gate_statistics(study.model, study.params, study.x)
    out = {"saturation": float(np.mean(r.high)), "forget_mean": None, "time_constant": None}
    if r.forget_mean is not None:
        fm = float(np.mean(r.forget_mean))
        out.update(forget_mean=fm, time_constant=1.0 / (1.0 - fm) if fm < 1 else math.inf)
    return out


def _gradcheck(study):
    """The oracle's gradient against finite differences / complex step at this point."""
    from ..check import gradcheck
    r = gradcheck(study.model, study.params, study.x, seed=int(study.rng.integers(2**31)))
    rel = [t["max_rel_err"] for t in r.to_dict()["tensors"] if t.get("max_rel_err") is not None]
    return {"max_rel_error": max(rel) if rel else None, "passed": bool(r.passed)}


MEASURES = {"gradient_flow": _gradient_flow, "lyapunov": _lyapunov, "gates": _gates,
            "gradcheck": _gradcheck}


def _measure_parts(measure):
    parts = list(measure) if isinstance(measure, (list, tuple)) else [measure]
    if not parts:
        raise OptionError("measure is empty; name one of " + ", ".join(MEASURES) + " or pass a callable.")
    for m in parts:
        if isinstance(m, str) and m not in MEASURES:
            raise OptionError(f"unknown measure {m!r}; choose one of {', '.join(MEASURES)} or pass a callable.")
        if not isinstance(m, str) and not callable(m):
            raise OptionError(f"a measure is a name or a callable, got {type(m).__name__}.")
    return parts


def measure_name(measure) -> str:
    return "+".join(m if isinstance(m, str) else f"{m.__module__}.{m.__qualname__}"
                    for m in _measure_parts(measure))
