"""Grids: their keys and defaults, expansion into points, validation of every value, and the
CLI's ``--param`` and grid-file spellings."""
from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np

from .. import backend
from ..errors import FileFormatError, OptionError
from .sizes import format_bytes, memory_estimate, physical_memory

DEFAULTS = {
    "cell": "lstm", "variant": "vanilla", "input_size": None, "hidden_size": 32, "num_layers": 1,
    "seq_len": 50, "batch": 4, "init": "pytorch", "spectral_radius": None, "forget_bias": None,
    "task": "noise", "dtype": "float64", "backend": "numpy", "seed": 0,
}
GRID_KEYS = tuple(DEFAULTS)
INITS = ("pytorch", "orthogonal", "gaussian", "chrono")   # chrono: pytorch + chrono(T_max=seq_len)
NOISE_FEATURES = 4      # input_size of the 'noise' task when the grid leaves it open (None)


# ------------------------------------------------------------------------------------ grid
def expand_grid(grid) -> list[dict]:
    """Every point of ``grid`` as a full dict over :data:`GRID_KEYS`, in grid order."""
    parts = [grid] if isinstance(grid, dict) else grid
    if not isinstance(parts, (list, tuple)) or not all(isinstance(p, dict) for p in parts):
        raise OptionError(f"a grid is a dict of parameter -> values or a list of such dicts, "
                          f"got {type(grid).__name__}.")
    points = []
    for part in parts:
        if not part:
            continue                  # {} names no parameter: it adds no point
        unknown = [k for k in part if k not in DEFAULTS]
        if unknown:
            raise OptionError(f"unknown grid parameter {unknown[0]!r}; the grid keys are "
                              f"{', '.join(GRID_KEYS)}.")
        axes = {}
        for k, v in part.items():
            vals = list(v) if isinstance(v, (list, tuple, range)) else [v]
            if not vals:
                raise OptionError(f"grid parameter {k!r} has no values, so the grid is empty.")
            axes[k] = [_check_value(k, x) for x in vals]
        for combo in itertools.product(*axes.values()):
            points.append({**DEFAULTS, **dict(zip(axes, combo))})
    if not points:
        raise OptionError("the grid is empty; give at least one parameter with values, e.g. "
                          "{'seq_len': [10, 100]}.")
    for p in points:              # an impossible size fails here, not as an OOM kill later
        need = memory_estimate(p["cell"], p["input_size"] or NOISE_FEATURES, p["hidden_size"],
                               p["seq_len"], p["batch"], p["num_layers"])
        have = physical_memory()
        if have and need > have:
            sizes = ", ".join(f"{k}={p[k]}" for k in ("hidden_size", "seq_len", "batch",
                                                      "num_layers"))
            raise OptionError(f"the grid point {p['cell']} {sizes} needs at least about "
                              f"{format_bytes(need)} of memory, more than this machine's "
                              f"{format_bytes(have)}; choose smaller sizes.")
    return points


def _check_value(key, v):
    """One grid value, normalised to a JSON-plain Python type; a bad value is refused up front
    (combinations that do not fit together are reported per point instead)."""
    if isinstance(v, np.generic):
        v = v.item()
    if key == "input_size" and v is None:
        pass                          # the task's own width (NOISE_FEATURES for noise)
    elif key in ("input_size", "hidden_size", "num_layers", "seq_len", "batch", "seed"):
        low = 0 if key == "seed" else 1
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise OptionError(f"grid parameter {key!r} takes integers >= {low}, got {v!r}.")
    elif key in ("spectral_radius", "forget_bias"):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise OptionError(f"grid parameter {key!r} takes finite numbers (or None), got {v!r}.")
        v = None if v is None else float(v)
    elif key == "cell":
        from ..models import registry
        if not isinstance(v, str):
            raise OptionError(f"grid parameter 'cell' takes a cell's name or 'module:Class', "
                              f"got {v!r}.")
        v = registry.canonical(v)     # a registered name or a user's 'module:Class'
    elif key == "variant":
        from ..models.lstm import parse_variant
        parse_variant(v)
    elif key == "init":
        if v not in INITS:
            raise OptionError(f"unknown init {v!r}; choose one of {', '.join(INITS)}.")
    elif key == "task":
        if v not in task_names():
            raise OptionError(f"unknown task {v!r}; choose one of {', '.join(task_names())}.")
    elif key == "dtype":
        v = backend.resolve_dtype(v).name
    elif key == "backend":
        if v not in backend.BACKENDS:
            raise OptionError(f"unknown backend {v!r}; choose one of {', '.join(backend.BACKENDS)}.")
    return v


def parse_param(text: str) -> tuple:
    """``'name=v1,v2,...'`` (the CLI's --param) as (name, values). Values are ints, floats,
    ``none``, or strings; ``a:b`` (or ``a:b:step``) is the integer range a..b-1."""
    name, sep, rest = str(text).partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise OptionError(f"a parameter is written name=v1,v2,..., got {text!r}.")
    values = []
    for item in rest.split(","):
        item = item.strip()
        parts = item.split(":")
        if len(parts) in (2, 3) and all(_is_int(p) for p in parts):
            values.extend(range(*map(int, parts)))
        else:
            values.append(_parse_value(item))
    return name, values


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def _parse_value(s: str):
    if s.lower() in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(s)
        except ValueError:
            pass
    return s


def load_grid(path) -> dict | list:
    """A grid from a TOML or JSON file: its top level, or its ``grid`` entry (a table, or an
    array of tables for a union of grids). TOML has no null: write "none"."""
    import tomllib
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".toml", ".json"):
        raise FileFormatError(f"a grid file is .toml or .json, got {path!r}.")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f) if ext == ".toml" else json.load(f)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path} is not valid {ext[1:].upper()}: {exc}.") from None
    grid = doc.get("grid", doc) if isinstance(doc, dict) else doc
    if not (isinstance(grid, dict) or isinstance(grid, list)
            and all(isinstance(g, dict) for g in grid)):
        raise FileFormatError(f"{path} holds no grid: write parameter = [values] entries (or a "
                              f"list of such tables), not a {type(grid).__name__} of values.")
    return _nones(grid)


def _nones(v):
    """The string 'none' (any case) as None, throughout a loaded grid."""
    if isinstance(v, str) and v.lower() in ("none", "null"):
        return None
    if isinstance(v, list):
        return [_nones(a) for a in v]
    if isinstance(v, dict):
        return {k: _nones(a) for k, a in v.items()}
    return v


def task_names() -> tuple:
    from ..tasks import TASKS
    return tuple(TASKS)
