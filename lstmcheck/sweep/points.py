"""One grid point: its :class:`Study` (model, parameters, data, all from the point's seed) and
its record (``run_point``, the worker side of a sweep)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ..errors import FunctionError, LstmcheckError, OptionError
from .grid import DEFAULTS, NOISE_FEATURES
from ..jsonio import to_jsonable
from ..models.registry import user_code_frame
from .measures import MEASURES, _measure_parts


@dataclass
class Study:
    """What a measure gets at one grid point. ``dy`` is dL/dy of the task's loss (its shape is
    y's); ``rng`` is a generator for any further draws, independent of those already made."""

    point: dict
    model: object
    params: dict
    x: object
    dy: object
    rng: np.random.Generator


def _task_data(point, model, rng):
    """Input x (T, B, D) from the point's task, and dL/dy of a loss that reads only the last
    output (a random unit direction per sequence), so that dL/dh_t measures how far back a
    signal at the end of the sequence reaches. The task shapes the inputs the state sees."""
    from ..tasks import make
    x = make(point["task"], point["seq_len"], point["batch"], input_size=model.input_size,
             seed=rng, dtype=model.dtype, backend=point["backend"]).x
    dy = np.zeros((point["seq_len"], point["batch"], model.output_size * model.num_directions))
    u = rng.standard_normal(dy.shape[1:])
    dy[-1] = u / np.linalg.norm(u, axis=-1, keepdims=True)
    return x, backend.asarray(dy, model.xp, model.dtype)


def setup_study(point: dict, **model_options) -> Study:
    """The model, parameters and data of one grid point, all from its seed; ``model_options``
    (e.g. direction=) go to the model beside the point's own."""
    from ..models import build, registry
    p = point
    opts = {"num_layers": p["num_layers"], "backend": p["backend"], "dtype": p["dtype"],
            **model_options}
    if "variant" in registry.options(p["cell"]):
        opts["variant"] = p["variant"]
    elif p["variant"] != "vanilla":
        takers = "/".join(registry.display_name(c) for c in registry.accepting("variant"))
        raise OptionError(f"variant {p['variant']!r} applies to {takers} only, not to "
                          f"{registry.display_name(p['cell'])}.")
    from ..tasks import features
    D = p["input_size"]
    if D is None:
        D = NOISE_FEATURES if p["task"] == "noise" else features(p["task"])
    elif p["task"] != "noise" and D != features(p["task"]):
        raise OptionError(f"task {p['task']!r} produces {features(p['task'])} input features, "
                          f"but input_size is {D}.")
    model = build(p["cell"], D, p["hidden_size"], **opts)
    # Independent streams for the weights, the data and the measure from one seed.
    init_ss, data_ss, measure_ss = np.random.SeedSequence(p["seed"]).spawn(3)
    scheme = "pytorch" if p["init"] == "chrono" else p["init"]
    params = model.init_params(
        np.random.default_rng(init_ss), scheme=scheme, spectral_radius=p["spectral_radius"],
        forget_bias=p["forget_bias"], chrono=p["seq_len"] + 2 if p["init"] == "chrono" else None)
    x, dy = _task_data(p, model, np.random.default_rng(data_ss))
    return Study(p, model, params, x, dy, np.random.default_rng(measure_ss))


class _UserMeasureFailed(Exception):
    """Carries the FunctionError of a user's measure past run_point's per-point error record."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


def _measure(fn, study):
    """``fn(study)``; a user's measure that raises (not a LstmcheckError: that is the point's
    error, as for the built-in measures) is one FunctionError naming it and the point, as
    check_gradients and audit wrap the user's code."""
    if fn in MEASURES.values():
        return fn(study)
    try:
        return fn(study)
    except (LstmcheckError, MemoryError):
        raise
    except Exception as exc:
        name = getattr(fn, "__qualname__", type(fn).__name__)
        text = " ".join(str(exc).split()) or "no message"
        point = ", ".join(f"{k}={v!r}" for k, v in study.point.items()
                          if DEFAULTS.get(k, object()) != v)
        raise _UserMeasureFailed(FunctionError(
            f"the measure {name} raised {type(exc).__name__}: {text} (at the grid point "
            f"{point or 'of the defaults'}).")) from exc


def run_point(job) -> dict:
    """Worker side: the record of one point. ``job`` is (measure, point). A user error at this
    point (an impossible combination, a missing GPU) becomes the record's ``error``."""
    measure, point = job
    record = dict(point)
    fns = [MEASURES[m] if isinstance(m, str) else m for m in _measure_parts(measure)]
    try:
        study = setup_study(point)
        outs = [_measure(fn, study) for fn in fns]
    except _UserMeasureFailed as failed:   # a bug in the user's code: stop, do not record it
        raise failed.error from None
    except LstmcheckError as exc:
        record["error"] = str(exc)
        return record
    except Exception as exc:
        # raised in a user's module:Class cell: the user's error, said here, where the
        # traceback still shows it (a sweep worker's traceback does not reach the parent)
        where = user_code_frame(exc)
        if where is None:
            raise
        raise FunctionError(f"your code raised {type(exc).__name__}: "
                            f"{' '.join(str(exc).split()) or 'no message'} ({where}).") from exc
    # A measure that breaks the record format is a bug in the measure: raise, do not record.
    for out in outs:
        if not isinstance(out, dict):
            raise OptionError(f"a measure returns a dict of numbers, got {type(out).__name__}.")
        clash = set(out) & (set(DEFAULTS) | {"error"})
        if clash:
            raise OptionError(f"measure field {sorted(clash)[0]!r} clashes with a grid key.")
        record.update({str(k): to_jsonable(v) for k, v in out.items()})
    record["error"] = None
    return record
