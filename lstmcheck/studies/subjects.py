"""What a study runs on: subjects (a model, its parameters and input) and the context the sections
of one study share.

Models are built from sweep points (:func:`lstmcheck.sweep.setup_study`), so the CLI options,
the sweep grid keys and the study all mean the same thing by ``init``, ``spectral_radius``,
``forget_bias``, ``task`` and ``seed``.
"""
from __future__ import annotations

import importlib

from dataclasses import dataclass, field

from ..errors import LstmcheckError


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
    from .. import io, tasks

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


def probe_subjects(cells=(), *, weights=None, layout=None, variant="vanilla", hidden_size=32,
                   seq_len=100, batch=8, init="pytorch", spectral_radius=None, forget_bias=None,
                   task="noise", seed=0, dtype="float64", backend="numpy") -> list:
    """The subjects of `lstmcheck probe`: a user's ``weights`` (of ``cells[0]`` if given), or one
    model per cell (default LSTM) built from the options."""
    if weights:
        return [subject_from_weights(weights, layout=layout, cell=cells[0] if cells else None,
                                     seq_len=seq_len, batch=batch, task=task, seed=seed,
                                     backend=backend)]
    grid = {"cell": list(cells or ("lstm",)), "hidden_size": hidden_size, "seq_len": seq_len,
            "batch": batch, "init": init, "spectral_radius": spectral_radius,
            "forget_bias": forget_bias, "task": task, "seed": seed, "dtype": dtype,
            "backend": backend}
    if variant != "vanilla":
        grid["variant"] = variant
    return subjects_from_grid(grid)
