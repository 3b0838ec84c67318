"""The default study of `lstmcheck report`: every section on a small RNN, LSTM and GRU (and the
LSTM again with chrono initialisation)."""
from __future__ import annotations

from ..models.registry import display_name, names
from ..report import Report
from .running import run_sections
from .subjects import Context, subjects_from_grid

# Small enough that `lstmcheck report` runs in seconds, large enough for the effects to show.
DEFAULTS = {"cells": names(), "hidden_size": 32, "seq_len": 100, "batch": 8,
            "task": "noise", "init": "pytorch", "seed": 0, "dtype": "float64", "backend": "numpy"}
DEFAULT_SECTIONS = ("gradcheck", "flow", "jacobian", "lyapunov", "horizon", "gates", "phase",
                    "timescales")
HORIZON_SEQ_LENS = (30, 100, 300, 1000)


def _and(words) -> str:
    """'RNN, LSTM and GRU'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


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
    report = Report(kind="gradient-check and gradient-flow report", title="lstmcheck report: gradient checks and gradient flow of "
                    + _and([display_name(c) for c in cells]))
    report.results["settings"] = settings
    report.notes.append(
        f"Models: {', '.join(s.label for s in ctx.subjects)} with hidden size {hidden_size}, "
        f"PyTorch's default initialisation (LSTM chrono: Tallec & Ollivier's chrono "
        f"initialisation for T_max = {seq_len + 2}), {task} inputs of {seq_len} steps × {batch} sequences, "
        f"seed {seed}, {dtype} on {backend}. The loss reads the last hidden state only, so "
        f"∂L/∂h_(T−k) shows how far back a signal at the end reaches.")
    return run_sections(report, ctx, sections, progress)
