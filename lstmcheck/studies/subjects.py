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
    layer: int = 0                 # the layer and direction the probes analyse (None: the
    direction: str | None = None   # model's first direction)

    @property
    def probed(self) -> dict:
        """The probes' layer= and direction= for this subject."""
        return {"layer": self.layer, "direction": self.direction}


@dataclass
class Context:
    subjects: list
    settings: dict
    cache: dict = field(default_factory=dict)      # results shared between sections


def label_of(point: dict) -> str:
    """RNN, LSTM, GRU, plus what differs from the defaults (variant, init, radius, bias)."""
    from ..models.registry import display_name

    parts = [display_name(point["cell"])]
    if point.get("variant", "vanilla") != "vanilla":
        parts.append(point["variant"])
    for key, fmt in (("spectral_radius", "ρ={:g}"), ("forget_bias", "b_f={:g}")):
        if point.get(key) is not None:
            parts.append(fmt.format(point[key]))
    if point.get("init", "pytorch") != "pytorch":
        parts.append(point["init"])
    return " ".join(parts)


def subjects_from_grid(grid, *, layer=0, probe_direction=None, model_options=None) -> list:
    """Subjects from a sweep grid (dict of key -> value or list of values). ``model_options``
    ({"direction": ...}) go to every model; ``layer`` and ``probe_direction`` say which
    recurrence the probes analyse (default: layer 0 in the model's first direction)."""
    model_options, direction = dict(model_options or {}), probe_direction
    sweep = importlib.import_module("lstmcheck.sweep")   # the package; lc.sweep is the function

    out = []
    for point in sweep.expand_grid(grid):
        s = sweep.setup_study(point, **model_options)
        label, setting = label_of(point), dict(point, **model_options)
        k, d = layer, direction
        if layer or direction is not None:
            from ..probes._common import _choose

            k, d = _choose(s.model, layer, direction)   # a wrong one is refused before any work
            label += f" layer {k} {d}"
            setting.update(probe_layer=k, probe_direction=d)
        elif model_options.get("direction") == "reverse":
            label += " reverse"
        out.append(Subject(label, point["cell"], s.model, s.params, s.x, setting, k, d))
    return out


def subject_from_weights(path, *, layout=None, cell=None, seq_len=100, batch=8, task="noise",
                         seed=0, backend="numpy", dtype=None):
    """A user's trained weights (any file lstmcheck.io reads) driven by a task's inputs.
    ``dtype`` (e.g. "float64" for float32 weights) converts the model and its weights, so a
    float32 training run is probed at the checking precision; None keeps the file's dtype."""
    from .. import backend as be
    from .. import io, tasks

    try:
        model, params = io.load_file(path, layout=layout, cell=cell)
    except LstmcheckError as exc:  # every message names the file it is about
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{str(path)!r}: {exc}") from None
    stored = model.dtype.name
    if dtype is not None and dtype != stored:
        model = model.replace(dtype=dtype)
        params = {k: be.asarray(v, be.array_module(v), model.dtype) for k, v in params.items()}
    x = tasks.make(task, seq_len, batch, input_size=model.input_size, seed=seed,
                   dtype=model.dtype.name, backend=backend).x
    setting = {"weights": str(path), "cell": model.kind, "seq_len": seq_len, "batch": batch,
               "task": task, "seed": seed, "stored_dtype": stored, "dtype": model.dtype.name}
    label = f"{model.kind.upper()} from {path}" + (
        f" ({stored} → {model.dtype.name})" if model.dtype.name != stored else "")
    return Subject(label, model.kind, model, params, x, setting)


def probe_subjects(cells=(), *, weights=None, layout=None, variant="vanilla", hidden_size=32,
                   seq_len=100, batch=8, init="pytorch", spectral_radius=None, forget_bias=None,
                   task="noise", seed=0, dtype="float64", backend="numpy", num_layers=1,
                   model_direction="forward", layer=0, direction=None) -> list:
    """The subjects of `lstmcheck probe`: a user's ``weights`` (one file or several, e.g. the
    checkpoints of one training run, all driven by the same inputs; of ``cells[0]`` if given),
    or one model per cell (default LSTM) built from the options, ``num_layers`` deep, running
    ``model_direction``. The probes analyse ``layer`` in ``direction`` (default: layer 0 in the
    model's first direction). With weights, ``dtype`` None keeps each file's dtype."""
    if weights:
        out = []
        for path in ([weights] if isinstance(weights, (str, bytes)) or hasattr(weights, "name")
                     and not isinstance(weights, (list, tuple)) else list(weights)):
            s = subject_from_weights(path, layout=layout, cell=cells[0] if cells else None,
                                     seq_len=seq_len, batch=batch, task=task, seed=seed,
                                     backend=backend, dtype=dtype)
            if layer or direction is not None:
                from ..probes._common import _choose

                s.layer, s.direction = _choose(s.model, layer, direction)
                s.label += f" layer {s.layer} {s.direction}"
            out.append(s)
        return out
    grid = {"cell": list(cells or ("lstm",)), "num_layers": num_layers,
            "hidden_size": hidden_size, "seq_len": seq_len,
            "batch": batch, "init": init, "spectral_radius": spectral_radius,
            "forget_bias": forget_bias, "task": task, "seed": seed, "dtype": dtype,
            "backend": backend}
    if variant != "vanilla":
        grid["variant"] = variant
    extra = {} if model_direction == "forward" else {"direction": model_direction}
    return subjects_from_grid(grid, layer=layer, probe_direction=direction, model_options=extra)
