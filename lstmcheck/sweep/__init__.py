"""Sweeps: a gradient-flow study at every point of a grid, one tidy record per point.

    records = lc.sweep({"cell": ["lstm", "gru"], "seq_len": [50, 200], "seed": [0, 1]},
                       measure="gradient_flow", workers=2, out="runs/a")

A grid is a dict ``key -> list of values`` (its Cartesian product) or a list of such dicts (the
union of their products). Keys not given take :data:`DEFAULTS`. At each point a
:class:`Study` is set up (model, parameters, input, loss gradient, all drawn from the point's
seed) and handed to the measure, which returns a dict of numbers; the record is the point plus
those numbers (plus ``error``, the message of a user error that made the point impossible, e.g.
a forget bias on an RNN).

With ``out`` every record is appended to ``out/results.jsonl`` as soon as it is known, keyed by
the point and the measure, so a sweep that is interrupted (Ctrl-C, a killed job, a lost cluster)
resumes where it stopped: finished points are read back, never recomputed.

Modules: grid (keys, defaults, expansion, validation, ``--param`` and grid files), sizes (memory
estimates), measures, points (a point's :class:`Study` and record), results (``results.jsonl``),
executors (in-process, local processes, Dask) and run (:func:`run_sweep`).

``lc.sweep`` is the function :func:`sweep`; this package is ``lstmcheck.sweep`` in
``sys.modules`` and is reached by ``from lstmcheck.sweep import ...``.
"""
from __future__ import annotations

from .executors import EXECUTORS, make_executor
from .grid import (DEFAULTS, GRID_KEYS, INITS, NOISE_FEATURES, expand_grid, load_grid,
                   parse_param, task_names)
from .measures import MEASURES, measure_name
from .points import Study, run_point, setup_study
from .results import RESULTS_FILE, ResultsFile, point_key
from .run import run_sweep
from .sizes import format_bytes, max_gates, memory_estimate, num_gates, physical_memory


def sweep(grid, measure="gradient_flow", **options) -> list[dict]:
    """``lc.sweep``: :func:`run_sweep` (see there for the options)."""
    import inspect

    from .. import validate
    accepted = [n for n in inspect.signature(run_sweep).parameters if n not in ("grid", "measure")]
    if set(options) - set(accepted):   # one sentence naming it, not run_sweep's TypeError
        raise validate.unknown_keyword("sweep()", options, accepted)
    return run_sweep(grid, measure, **options)


__all__ = ["sweep", "run_sweep", "expand_grid", "load_grid", "parse_param", "setup_study",
           "run_point", "point_key", "measure_name", "memory_estimate", "physical_memory",
           "format_bytes", "make_executor", "task_names", "Study", "ResultsFile", "DEFAULTS",
           "GRID_KEYS", "INITS", "NOISE_FEATURES", "MEASURES", "RESULTS_FILE", "num_gates", "max_gates",
           "EXECUTORS"]
