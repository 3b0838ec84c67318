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
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
import types
from dataclasses import dataclass

import numpy as np

from . import backend
from .errors import FileFormatError, LstmcheckError, OptionError
from .sweep_exec import make_executor

DEFAULTS = {
    "cell": "lstm", "variant": "vanilla", "input_size": None, "hidden_size": 32, "num_layers": 1,
    "seq_len": 50, "batch": 4, "init": "pytorch", "spectral_radius": None, "forget_bias": None,
    "task": "noise", "dtype": "float64", "backend": "numpy", "seed": 0,
}
GRID_KEYS = tuple(DEFAULTS)
INITS = ("pytorch", "orthogonal", "gaussian", "chrono")   # chrono: pytorch + chrono(T_max=seq_len)
RESULTS_FILE = "results.jsonl"
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


# ------------------------------------------------------------------------------------ sizes
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def memory_estimate(cell, input_size, hidden_size, seq_len, batch, num_layers=1,
                    directions=1) -> int:
    """A rough lower bound of the bytes one forward + backward (+ gradient-flow trace) holds:
    float64 parameters and their gradients, the per-step tape (gate activations, h, c and
    their gradients) and Python's per-step bookkeeping. Only for refusing absurd sizes up front."""
    G, H, T, B = GATES.get(str(cell).lower(), 4), hidden_size, seq_len, batch
    k = num_layers * directions
    n_params = k * G * H * (max(input_size, H * directions) + H + 2)
    per_step = B * H * k * (G + 4) + B * input_size * 3     # tape and trace, x, dy
    return 8 * (4 * n_params + T * per_step) + 4096 * T * k


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024


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
        from .models import CELLS
        if not isinstance(v, str) or v.lower() not in CELLS:
            raise OptionError(f"unknown cell {v!r}; choose one of {', '.join(CELLS)}.")
        v = v.lower()
    elif key == "variant":
        from .models.lstm import parse_variant
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


def point_key(point: dict, measure_name: str) -> str:
    """The identity of a record in the results file: the measure and the full point."""
    return json.dumps({"measure": measure_name, **point}, sort_keys=True)


# ------------------------------------------------------------------------------------ study
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


def task_names() -> tuple:
    from .tasks import TASKS
    return tuple(TASKS)


def _task_data(point, model, rng):
    """Input x (T, B, D) from the point's task, and dL/dy of a loss that reads only the last
    output (a random unit direction per sequence), so that dL/dh_t measures how far back a
    signal at the end of the sequence reaches. The task shapes the inputs the state sees."""
    from .tasks import make
    x = make(point["task"], point["seq_len"], point["batch"], input_size=model.input_size,
             seed=rng, dtype=model.dtype, backend=point["backend"]).x
    dy = np.zeros((point["seq_len"], point["batch"], model.output_size * model.num_directions))
    u = rng.standard_normal(dy.shape[1:])
    dy[-1] = u / np.linalg.norm(u, axis=-1, keepdims=True)
    return x, backend.asarray(dy, model.xp, model.dtype)


def setup_study(point: dict) -> Study:
    """The model, parameters and data of one grid point, all from its seed."""
    from .models import build
    p = point
    opts = {"num_layers": p["num_layers"], "backend": p["backend"], "dtype": p["dtype"]}
    if p["cell"] == "lstm":
        opts["variant"] = p["variant"]
    elif p["variant"] != "vanilla":
        raise OptionError(f"variant {p['variant']!r} applies to LSTM only, not to {p['cell'].upper()}.")
    from .tasks import features
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


# ------------------------------------------------------------------------------------ measures
def _gradient_flow(study):
    """lstmcheck.probes.gradient_norms with the study's loss (dL/dy at the last step)."""
    from .probes import gradient_norms
    r = gradient_norms(study.model, study.params, study.x, loss=study.dy)
    return {"decay_rate": r.decay_rate, "c_decay_rate": r.c_decay_rate,
            "horizon": r.horizon.get(0.9), "horizon_99": r.horizon.get(0.99),
            "half_life": r.half_life, "steps_in_past": r.steps_in_past, "grad_norm": r.grad_norm}


def _lyapunov(study):
    """lstmcheck.probes.lyapunov_spectrum along the first sequence: lambda_1, the sum of the
    spectrum (phase-volume contraction) and the Kaplan-Yorke dimension."""
    from .probes import lyapunov_spectrum
    r = lyapunov_spectrum(study.model, study.params, study.x, seed=int(study.rng.integers(2**31)))
    lam = np.asarray(r.exponents, dtype=float)
    return {"lambda_1": float(lam[0]), "lambda_sum": float(lam.sum()),
            "kaplan_yorke": float(r.kaplan_yorke)}


def _gates(study):
    """lstmcheck.probes.gate_statistics: the memory gate's mean and time constant, and the
    fraction of saturated gate activations, all averaged over time."""
    from .probes import gate_statistics
    r = gate_statistics(study.model, study.params, study.x)
    out = {"saturation": float(np.mean(r.high)), "forget_mean": None, "time_constant": None}
    if r.forget_mean is not None:
        fm = float(np.mean(r.forget_mean))
        out.update(forget_mean=fm, time_constant=1.0 / (1.0 - fm) if fm < 1 else math.inf)
    return out


def _gradcheck(study):
    """The oracle's gradient against finite differences / complex step at this point."""
    from .check import gradcheck
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


def _plain(v):
    """A JSON-plain copy of a measure value (host scalars, lists)."""
    v = backend.to_host(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(a) for a in v]
    if isinstance(v, dict):
        return {str(k): _plain(a) for k, a in v.items()}
    return v


def run_point(job) -> dict:
    """Worker side: the record of one point. ``job`` is (measure, point). A user error at this
    point (an impossible combination, a missing GPU) becomes the record's ``error``."""
    measure, point = job
    record = dict(point)
    fns = [MEASURES[m] if isinstance(m, str) else m for m in _measure_parts(measure)]
    try:
        study = setup_study(point)
        outs = [fn(study) for fn in fns]
    except LstmcheckError as exc:
        record["error"] = str(exc)
        return record
    # A measure that breaks the record format is a bug in the measure: raise, do not record.
    for out in outs:
        if not isinstance(out, dict):
            raise OptionError(f"a measure returns a dict of numbers, got {type(out).__name__}.")
        clash = set(out) & (set(DEFAULTS) | {"error"})
        if clash:
            raise OptionError(f"measure field {sorted(clash)[0]!r} clashes with a grid key.")
        record.update({str(k): _plain(v) for k, v in out.items()})
    record["error"] = None
    return record


# ------------------------------------------------------------------------------------ results file
class ResultsFile:
    """Append-only JSON lines: ``{"key": ..., "record": {...}}`` per finished point.

    A last line cut short by a kill is ignored on reading (that point simply runs again) and
    removed before the next append."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, RESULTS_FILE)

    def load(self) -> dict:
        done = {}
        if not os.path.exists(self.path):
            return done
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    done[row["key"]] = row["record"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    if line.endswith("\n"):     # only the last, unfinished line may be broken
                        raise FileFormatError(f"{self.path} line {n} is not a sweep record; "
                                              f"use another output folder.") from None
        return done

    def __enter__(self):
        self._f = open(self.path, "a+b")
        self._drop_cut_line()
        return self

    def _drop_cut_line(self):
        """Cut off a last line left unfinished by a kill, so every line stays a whole record."""
        f = self._f
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(4096, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                pos = pos - step + nl + 1
                break
            pos -= step
        if pos != end:
            f.truncate(pos)
            f.seek(0, os.SEEK_END)

    def append(self, key, record):
        line = json.dumps({"key": key, "record": record}) + "\n"
        try:
            self._f.write(line.encode("utf-8"))   # one write per record: a kill cuts at most it
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:  # a full disk: say which file, and that nothing is lost
            raise OSError(exc.errno, f"{exc.strerror or exc} while recording a finished point; "
                          f"the points recorded before are kept and rerunning resumes",
                          self.path) from None

    def __exit__(self, *exc):
        self._f.close()
        return False


# ------------------------------------------------------------------------------------ sweep
def run_sweep(grid, measure="gradient_flow", *, executor=None, workers=None, scheduler=None,
              out=None, resume=True, progress=None, connect_timeout=5.0) -> list[dict]:
    """Run ``measure`` at every point of ``grid``; one record per point, in grid order.

    measure: a name in :data:`MEASURES`, a callable ``f(study) -> dict`` (module-level, so that
        worker processes can import it), or a list of these (their fields are merged).
    executor: 'inprocess' | 'process' | 'dask'; by default Dask when ``scheduler`` is given, a
        local process pool when ``workers > 1``, else in-process. With executor='dask' and no
        scheduler a LocalCluster of ``workers`` processes is started and closed.
    scheduler: address of a running Dask scheduler, 'tcp://HOST:PORT'; unreachable within
        ``connect_timeout`` seconds -> BackendError.
    out: folder of the append-only results file; with ``resume`` its finished points are reused.
    progress: ``f(done, total)`` called as points finish (resumed points count as done).

    Every random draw of a point comes from its seed, so the records are the same on every
    executor and in any order of completion.
    """
    points = expand_grid(grid)
    name = measure_name(measure)
    ex = make_executor(executor, workers=workers, scheduler=scheduler,
                       connect_timeout=connect_timeout)   # bad options fail before any work
    keys = [point_key(p, name) for p in points]
    records: dict = {}
    results = ResultsFile(out) if out is not None else None
    if results is not None and resume:
        done = results.load()
        records = {k: done[k] for k in keys if k in done}
    todo = [i for i, k in enumerate(keys) if k not in records]
    # Equal points (e.g. a repeated value) are computed once.
    first, copies = {}, {}
    for i in todo:
        first.setdefault(keys[i], i)
        copies[keys[i]] = copies.get(keys[i], 0) + 1
    jobs = list(first.values())
    total = len(points)
    finished = total - len(todo)
    if progress is not None:
        progress(finished, total)
    if jobs:
        with ex, (results if results is not None else _NoFile()) as sink:
            for j, rec in ex.imap(run_point, [(measure, points[i]) for i in jobs]):
                rec = json.loads(json.dumps(rec))   # exactly what a resumed run reads back
                k = keys[jobs[j]]
                sink.append(k, rec)
                records[k] = rec
                finished += copies[k]
                if progress is not None:
                    progress(finished, total)
    return [dict(records[k]) for k in keys]


class _NoFile:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def append(self, key, record):
        pass


class _SweepModule(types.ModuleType):
    """``lc.sweep`` is this module, callable as :func:`run_sweep`.

    Importing a submodule makes it the package's attribute of that name, so a plain function
    ``lc.sweep`` would turn into the module after the first import; a callable module is the
    same object however it was reached, and ``lc.sweep.expand_grid`` etc. stay at hand."""

    def __call__(self, grid, measure="gradient_flow", **options):
        return run_sweep(grid, measure, **options)


sys.modules[__name__].__class__ = _SweepModule
sweep = sys.modules[__name__]     # `from lstmcheck.sweep import sweep` and `lc.sweep` alike
