"""Which execution of the same maths is fastest here: measured on the machine at hand, never
assumed from a CPU model's name.

Each choice below has formulations that compute the same numbers (bit for bit, or within the
ulp bound its test states). Which one is faster depends on the CPU, the NumPy/BLAS build, the
dtype, the shape and how busy the machine is (NumPy's float64 tanh is SIMD on some builds and
not on others; scipy's expit the other way round; BLAS worker threads spin and lose severalfold
on a loaded machine). So the first use times the candidates on a small block of the real shape:
interleaved, repeated, the minimum of each kept, within a budget of a few milliseconds
(``BUDGET_S``, at least ``MIN_ROUNDS`` rounds). The winner is remembered per machine (CPU model
and identity, core count, NumPy version and BLAS build), dtype and shape class in
``$XDG_CACHE_HOME/lstmcheck/kernels.json`` (``$LSTMCHECK_CACHE_DIR/kernels.json`` where that is
set), so a machine keeps making the same choice and its results stay reproducible from run to
run. Every choice has an environment override:

    LSTMCHECK_GATE_ROUTE   tanh | logistic | exp  the transcendental of a fused LSTM gate block
    LSTMCHECK_CELL_ROUTE   tanh | logistic  tanh(c) as tanh, or as 2 sigma(2c) - 1
    LSTMCHECK_FUSED        fused | step     the fused sequence execution or the readable step
    LSTMCHECK_ROW_THREADS  split | whole    batch rows split across CPU threads, or not
    LSTMCHECK_BLAS_THREADS 1 | n            threads for a model's whole-sequence GEMMs (n: the
                                            CPU threads', each running BLAS on one)
    LSTMCHECK_REPLICA_ROUTE tanh | logistic | exp  the audit's replica forward (replica_lstm.py)
    LSTMCHECK_SIGMOID_ROUTE expit | exp     every other logistic sigmoid (activations.sigmoid):
                                            scipy's expit, or 1/(1 + exp(-z))
    LSTMCHECK_HH_LAYOUT    view | copy      the fused recurrence's W_hh^T: a transposed view, or
                                            a contiguous copy made once a forward

The thread choices are also keyed by the load (``load_class``): they are re-measured when the
machine's other processes come to occupy its cores, and GEMMs too small to share are kept on
one thread without measuring.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import backend, parallel
from ..errors import OptionError

ROUTES = ("tanh", "logistic")
GATE_ROUTES = ("tanh", "logistic", "exp")        # fused_lstm.py (kernels.gate_block)
REPLICA_ROUTES = ("tanh", "logistic", "exp")     # models/replica_lstm.py
SIGMOID_ROUTES = ("expit", "exp")                # models/activations.py (logistic below)
BUDGET_S = 0.004          # measurement time per choice, beyond the warm-up call
REPLICA_BUDGET_S = 0.15   # the audit's replica route (see replica_route)
ROW_SPLIT_BUDGET_S = 0.1  # the fused recurrence's row split (see row_split)
MIN_ROUNDS, MAX_ROUNDS = 3, 15
TIE = 0.05                # relative difference below which an extrapolated measurement is a tie
SMALL_GEMM_FLOPS = 1 << 21   # below this a GEMM stays on one BLAS thread: waking workers costs more


@dataclass(frozen=True)
class Choice:
    env: str
    options: tuple       # the first is kept on a tie (and when nothing can be measured)
    revision: int = 1    # raised when a candidate's code changes: older measurements are stale


CHOICES = {
    "gate_route": Choice("LSTMCHECK_GATE_ROUTE", GATE_ROUTES, revision=3),   # 3: whole-block passes
    "cell_route": Choice("LSTMCHECK_CELL_ROUTE", ROUTES),
    "fused": Choice("LSTMCHECK_FUSED", ("fused", "step"), revision=4),   # 4: grouped, no spin
    "row_threads": Choice("LSTMCHECK_ROW_THREADS", ("split", "whole"), revision=4),  # 4: real steps
    "blas_threads": Choice("LSTMCHECK_BLAS_THREADS", ("1", "n"), revision=2),  # 2: our threads
    "replica_route": Choice("LSTMCHECK_REPLICA_ROUTE", REPLICA_ROUTES, revision=2),  # 2: longer
    "sigmoid_route": Choice("LSTMCHECK_SIGMOID_ROUTE", SIGMOID_ROUTES),
    "hh_layout": Choice("LSTMCHECK_HH_LAYOUT", ("view", "copy")),
}

_cache: dict = {}
_lock = threading.RLock()   # a measurement may measure a nested choice


def forced(env: str, options) -> str | None:
    """The value of an override variable, None when unset; anything else is one clear error."""
    value = os.environ.get(env, "").strip()
    if not value:
        return None
    if value not in options:
        raise OptionError(f"{env} must be one of {', '.join(options)}, got {value!r}.")
    return value


CACHE_DIR_ENV = "LSTMCHECK_CACHE_DIR"


def _cache_file() -> Path:
    """$LSTMCHECK_CACHE_DIR/kernels.json, else $XDG_CACHE_HOME/lstmcheck/kernels.json (the test
    suite points the first at a folder of its own: choices measured while it loads the machine
    are no guide to a user's runs)."""
    own = os.environ.get(CACHE_DIR_ENV, "").strip()
    if own:
        return Path(own) / "kernels.json"
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lstmcheck" / "kernels.json"


def _cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it (what the bench prints)."""
    return _cpuinfo().get("model name") or platform.processor()


def _cpu_identity() -> str:
    """The CPU as the cache knows it: its name, and beside it the family/model/stepping and a
    digest of the feature flags, since virtual machines name different CPUs alike ("AMD EPYC"
    has been a Zen 2 with a scalar float64 tanh here, and a faster CPU elsewhere)."""
    info = _cpuinfo()
    ident = "/".join(info.get(k, "") for k in ("cpu family", "model", "stepping"))
    flags = info.get("flags") or info.get("Features") or ""
    digest = hashlib.sha1(" ".join(sorted(flags.split())).encode()).hexdigest()[:8]
    return f"{_cpu_model()} [{ident} {digest}]"


def _cpuinfo() -> dict:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    out = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


@functools.lru_cache(maxsize=None)
def _blas_build() -> str:
    """NumPy's own BLAS (name, version, core type): the one its GEMMs run on. Other BLAS
    libraries in the process (scipy's, once scipy.linalg is imported) are not part of it, or a
    process that had loaded scipy and a fresh worker would see two machines, measure twice,
    and could choose differently and so round differently."""
    libs = parallel._blas_controllers()
    own = [c for c in libs if "numpy" in os.path.basename(os.path.dirname(c.filepath))]
    return ",".join(sorted(f"{c.internal_api}-{c.version}-{getattr(c, 'architecture', '')}"
                           for c in (own or libs))) or "unknown-blas"


def _machine_key(xp) -> str:
    """A machine image can come back on another CPU: the CPU's identity is part of the key (as
    an identity for the cache, never a reason for a choice)."""
    return _machine_key_of(backend.backend_name(xp), _blas_build())


@functools.lru_cache(maxsize=None)
def _machine_key_of(backend_name: str, blas: str) -> str:
    # once per process: every select() needs the key, and /proc/cpuinfo costs 0.1 ms a read
    return f"{platform.machine()}|{_cpu_identity()}|{os.cpu_count()}|{backend_name}|" \
           f"numpy-{np.__version__}|{blas}"


def shape_class(rows: int, width: int) -> str:
    """Shapes within a factor of two share a measurement."""
    return f"r{max(int(rows), 1).bit_length()}w{max(int(width), 1).bit_length()}"


def load_class() -> str:
    """'loaded' when other threads ready to run fill the cores, else 'quiet'. Counted now
    (_runnable_others), not by the 1-minute load average where the kernel gives the count: that
    average counts lstmcheck's own work of the last minute too, and a bench that had kept both
    cores busy read 'loaded' on an otherwise idle machine. Read at most once a LOAD_TTL_S (a
    read costs about 0.3 ms)."""
    now = time.monotonic()
    if now - _LOAD[0] < LOAD_TTL_S:
        return _LOAD[1]
    _LOAD[:] = [now, _load_class()]
    return _LOAD[1]


LOAD_TTL_S = 1.0
_LOAD = [float("-inf"), "quiet"]


def _load_class() -> str:
    others = _runnable_others()
    if others is None:
        try:
            others = os.getloadavg()[0]
        except (AttributeError, OSError):
            return "quiet"
    return "loaded" if others >= parallel.num_threads() else "quiet"


def _runnable_others():
    """Threads of other processes ready to run: the median of five reads of /proc/loadavg's
    runnable count, less this process's own running threads (the one asking, and BLAS workers
    still spinning after a call); None without /proc."""
    try:
        counts = []
        for _ in range(5):
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]))
        own = _own_running()
    except (OSError, ValueError, IndexError):
        return None
    return max(0, sorted(counts)[2] - own)


def _own_running() -> int:
    n = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as fh:
                n += fh.read().rpartition(")")[2].split()[0] == "R"
        except OSError:               # a thread that ended meanwhile
            pass
    return max(n, 1)


def _measure(xp, candidates: dict, budget: float = BUDGET_S, grouped: bool = False) -> str:
    """The fastest candidate (the first on a tie)."""
    best = _best_times(xp, candidates, budget, grouped)
    names = list(candidates)
    return min(names, key=lambda n: (best[n], names.index(n)))


def _best_times(xp, fns: dict, budget: float = BUDGET_S, grouped: bool = False) -> dict:
    """{key: the minimum of its timings} over interleaved rounds (order reversed every other
    round, so a load change hits all), after a warm-up call of each. ``grouped``: each key's
    warm-up and rounds in turn instead, in the given order, for candidates that leave BLAS's
    workers spinning (OpenBLAS's spin for about 0.1 s after a multithreaded call) and would
    slow whichever candidate came next."""
    keys = list(fns)
    best = dict.fromkeys(keys, float("inf"))
    for group in ([[k] for k in keys] if grouped else [keys]):
        for k in group:                       # warm-up: first calls allocate and page in
            fns[k]()
        end = time.perf_counter() + budget / (len(keys) if grouped else 1)
        rounds = 0
        while rounds < MIN_ROUNDS or (rounds < MAX_ROUNDS and time.perf_counter() < end):
            for k in (group if rounds % 2 == 0 else group[::-1]):
                backend.synchronize(xp)
                t0 = time.perf_counter()
                fns[k]()
                backend.synchronize(xp)
                best[k] = min(best[k], time.perf_counter() - t0)
            rounds += 1
    return best


def select(name: str, xp, dtype, shape: str, candidates, measure=None) -> str:
    """The option of choice ``name`` for this machine, dtype and shape class: the override,
    else the remembered measurement, else a new one. ``candidates()`` returns {option: fn},
    timed by _measure; ``measure(candidates)``, when given, times candidates of another form
    and returns the winner."""
    choice = CHOICES[name]
    value = forced(choice.env, choice.options)
    if value:
        return value
    tag = name if choice.revision == 1 else f"{name}@{choice.revision}"
    key = f"{tag}|{_machine_key(xp)}|{_dtype_name(dtype)}|{shape}"
    if key in _cache:
        return _cache[key]
    with _lock:                 # threads of one process measure once, not against each other
        if key in _cache:
            return _cache[key]
        path = _cache_file()
        value = _stored(path).get(key)
        if value not in choice.options:
            value = measure(candidates) if measure is not None else _measure(xp, candidates())
            stored = _stored(path)       # again: a nested choice measured meanwhile wrote it
            stored[key] = value
            try:                              # a read-only home only costs a re-measurement
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
                os.replace(tmp, path)
            except OSError:
                pass
        _cache[key] = value
        return value


@functools.lru_cache(maxsize=None)
def _dtype_name(dtype) -> str:
    # once per dtype: a choice asked once a step (sigmoid_route) pays select's lookup each time,
    # and numpy's dtype.name alone took 1.5 us
    return np.dtype(dtype).name


def _stored(path) -> dict:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


# ------------------------------------------------------------------ the choices
def _block(xp, dtype, n=16384):
    return backend.asarray(np.linspace(-4, 4, n), xp, dtype)


def exp_reciprocal(xp):
    """F(y) = 1/(1 + exp(y)) in three passes: sigma(z) = F(-z), for builds whose exp is faster
    than their expit and tanh (NumPy's float32 exp is SIMD where its tanh is not). exp(y) = inf
    gives 0."""
    def f(y, out):
        with np.errstate(over="ignore"):
            xp.exp(y, out=out)
        out += 1.0
        xp.reciprocal(out, out=out)
        return out
    return f


def exp_sigmoid(xp):
    """sigma(z) = F(-z) = 1/(1 + exp(-z)) in four passes, as f(z, out=None)."""
    F = exp_reciprocal(xp)

    def f(z, out=None):
        out = xp.negative(z, out=out)
        return F(out, out=out)
    return f


def gate_block(xp, dtype, route, gates, H):
    """(F, k, m, b) for a gate block of ``gates`` (H columns each) by a route: a column's
    activation is m F(k z) + b, with k, m, b per-column constants. tanh(z) = 2 sigma(2z) - 1,
    sigma(z) = tanh(z/2)/2 + 1/2, and the exp route's F takes -z (scaling by a power of two or a
    sign is exact)."""
    if route == "tanh":
        F, sig, tnh = xp.tanh, (0.5, 0.5, 0.5), (1.0, 1.0, 0.0)
    elif route == "logistic":
        F, sig, tnh = backend.expit(xp), (1.0, 1.0, 0.0), (2.0, 2.0, -1.0)
    else:
        F, sig, tnh = exp_reciprocal(xp), (-1.0, 1.0, 0.0), (-2.0, 2.0, -1.0)
    kmb = np.array([tnh if g == "g" else sig for g in gates])
    return (F, *(backend.asarray(np.repeat(kmb[:, j], H), xp, dtype) for j in range(3)))


def gate_route(xp, dtype) -> str:
    """'tanh', 'logistic' or 'exp': how a fused gate block of i, f, g, o is activated (see
    gate_block). Each candidate is timed as fused_lstm._fused runs it: z -> k z, F, then m F + b,
    each one pass over the whole block."""
    def candidates():
        z = _block(xp, dtype).reshape(16, -1)
        out = xp.empty_like(z)
        q = z.shape[1] // 4

        def route(name):
            F, k, m, b = gate_block(xp, dtype, name, ("i", "f", "g", "o"), q)

            def go():
                xp.multiply(z, k, out=out)
                F(out, out=out)
                xp.multiply(out, m, out=out)
                xp.add(out, b, out=out)
            return go
        return {n: route(n) for n in GATE_ROUTES}
    return select("gate_route", xp, dtype, "any", candidates)


def cell_route(xp, dtype) -> str:
    """'tanh' or 'logistic': tanh(c) as tanh, or as 2 sigma(2c) - 1 (four passes; it differs
    from tanh by at most one rounding of a number near 1/2: 1.1e-16 in float64)."""
    def candidates():
        z = _block(xp, dtype)
        out = xp.empty_like(z)
        expit = backend.expit(xp)

        def logistic():
            xp.multiply(z, 2.0, out=out)
            expit(out, out=out)
            xp.multiply(out, 2.0, out=out)
            xp.subtract(out, 1.0, out=out)
        return {"tanh": lambda: xp.tanh(z, out=out), "logistic": logistic}
    return select("cell_route", xp, dtype, "any", candidates)


def fused(xp, dtype, rows, width, steps, candidates) -> bool:
    """True when the fused sequence execution is the faster one for a layer of ``steps`` steps.

    ``candidates(n)`` gives {"fused": fn, "step": fn}, forward + backward of the first n steps of
    the real layer. Short layers are timed whole. For longer ones a prefix misleads: the fused
    execution pays fixed costs (its buffers, its threads) once, and its cost per step keeps
    falling with length where the step path's does not (at (B, H) = (64, 256) it lost 8 steps
    and won 200 by 18-29%), so each is timed at s and 2s steps, s = min(steps // 2, 32), and
    judged by its estimated time at the real length, t(s) + (t(2s) - t(s)) (steps - s) / s."""
    shape = f"{shape_class(rows, width)}n{max(int(steps), 1).bit_length()}"   # lengths within 2x

    def by_length(candidates):
        # grouped, the fused first: the step path's GEMMs run on BLAS's own threads, whose
        # spinning after it would slow the fused one's row threads if it came next
        if steps < 16:
            return _measure(xp, candidates(steps), grouped=True)
        s = min(steps // 2, 32)
        c = {k: candidates(k) for k in (s, 2 * s)}
        t = _best_times(xp, {(n, k): c[k][n] for n in ("fused", "step") for k in (s, 2 * s)},
                        grouped=True)
        est = {n: t[n, s] + (t[n, 2 * s] - t[n, s]) * (steps - s) / s for n in ("fused", "step")}
        # within TIE of each other the first (fused) is kept: an extrapolation 6x beyond what
        # was timed cannot resolve less, and the fused one's advantage grows with length
        return "step" if est["step"] < (1 - TIE) * est["fused"] else "fused"
    return select("fused", xp, dtype, shape, candidates, measure=by_length) == "fused"


def row_split(xp, dtype, rows, width, phase, candidates) -> bool:
    """True when batch rows split across CPU threads beat one block for this phase ('forward' or
    'backward') of a recurrence of this shape, per load class. ``candidates()`` gives
    {"split": fn, "whole": fn}: the phase over the first steps of the real layer each way. The
    real work, not a stand-in: the threads share the GEMMs but take turns at the interpreter
    lock around every elementwise call, so which wins depends on a step's calls (at (B, H) =
    (32, 128) float64 one block was 16% faster than two threads, where a GEMM-and-tanh stand-in
    had timed the threads faster). Under parallel.MIN_WORK elements, one thread or a GPU: never
    split."""
    threads = min(parallel.num_threads(), rows)
    if threads <= 1 or rows * width < parallel.MIN_WORK or not backend.is_host(xp) \
            or not parallel._blas_controllers():
        return False
    shape = f"{shape_class(rows, width)}|{phase}|{load_class()}"
    # the longer budget: three rounds of a few steps flipped the choice from run to run here
    return select("row_threads", xp, dtype, shape, candidates,
                  measure=lambda c: _measure(xp, c(), ROW_SPLIT_BUDGET_S)) == "split"


def blas_threads(xp, dtype, m, k, n) -> int | None:
    """Threads for a model's whole-sequence (m x k) @ (k x n) GEMMs (parallel.sequence_gemms): 1,
    or None for all of them. Small GEMMs stay on one thread; larger ones are measured, per load
    class (see load_class)."""
    if not backend.is_host(xp) or not parallel._blas_controllers():
        return None
    if 2 * m * k * n < SMALL_GEMM_FLOPS or parallel.num_threads() <= 1 or parallel.in_block():
        return 1     # (in a block of parallel_blocks the other blocks hold the other cores)

    def candidates():
        r = np.random.default_rng(0)
        # a slice of the real shape: the same k and n, up to 512 rows (a few ms)
        mm = min(m, 512)
        a = backend.asarray(r.standard_normal((mm, k)), xp, dtype)
        b = backend.asarray(r.standard_normal((k, n)), xp, dtype)

        def gemm(threads):                  # as the model runs it: parallel.matmul
            def go():
                with parallel.sequence_gemms(threads):
                    parallel.matmul(a, b)
            return go
        return {"1": gemm(1), "n": gemm(None)}
    shape = f"{shape_class(m, n)}k{max(k, 1).bit_length()}|{load_class()}"
    return 1 if select("blas_threads", xp, dtype, shape, candidates) == "1" else None


def replica_route(dtype, rows, hidden, candidates) -> str:
    """'tanh' or 'logistic' for the audit's replica forward of ``rows`` rows and ``hidden`` units;
    ``candidates()`` gives {route: fn}, a few steps of the real replica batch by each route.
    Timed for longer than the other choices (REPLICA_BUDGET_S): the routes can lie within 5% of
    each other, and an audit this serves takes seconds."""
    return select("replica_route", np, dtype, shape_class(rows, 4 * hidden), candidates,
                  measure=lambda c: _measure(np, c(), REPLICA_BUDGET_S))


def logistic(xp, dtype):
    """The logistic sigmoid f(z, out=None) for real arrays of ``dtype``, by whichever of scipy's
    expit and 1/(1 + exp(-z)) (four passes) sigmoid_route measured faster here. Both are
    accurate relative to sigma everywhere (the second's exp(-z) = inf gives 0, exactly): within
    2 float64 ulps (3 in float32) of it, tests/test_kernels.py states. On a GPU, and for other
    dtypes: expit."""
    # float32 and float64 only: expit gives float64 for integers and float16, as it always has
    timed = np.dtype(dtype) in (np.float32, np.float64)
    route = sigmoid_route(xp, dtype) if backend.is_host(xp) and timed else "expit"
    return backend.expit(xp) if route == "expit" else exp_sigmoid(xp)


def sigmoid_route(xp, dtype) -> str:
    """'expit' or 'exp': see logistic."""
    def candidates():
        z = _block(xp, dtype)
        out = xp.empty_like(z)
        return {"expit": functools.partial(backend.expit(xp), z, out=out),
                "exp": functools.partial(exp_sigmoid(xp), z, out=out)}
    return select("sigmoid_route", xp, dtype, "any", candidates)


def hh_layout(xp, dtype, rows, H, G) -> str:
    """'view' or 'copy': the fused forward's per-step (rows, H) @ W_hh^T with W_hh^T as the
    transposed view of W_hh (G, H), or as a contiguous copy made once a forward. Timed as the
    recurrence runs it, on one BLAS thread: OpenBLAS's kernels for the two layouts differ, and
    not alike by dtype (scripts/bench.py blas on an AVX-512 Xeon: float32 (16, 128) @ (128, 512)
    took 1.71x as long by the view, float64 within 4% either way)."""
    if not backend.is_host(xp):
        return "view"

    def candidates():
        r = np.random.default_rng(0)
        W = backend.asarray(r.standard_normal((G, H)), xp, dtype)
        h = backend.asarray(r.standard_normal((rows, H)), xp, dtype)
        out = xp.empty((rows, G), dtype)
        Wc = xp.ascontiguousarray(W.T)

        def gemm(WT):
            def go():
                with parallel.blas_threads(1):
                    xp.matmul(h, WT, out=out)
            return go
        return {"view": gemm(W.T), "copy": gemm(Wc)}
    return select("hh_layout", xp, dtype, f"{shape_class(rows, G)}h{max(H, 1).bit_length()}",
                  candidates)


def prepare(xp, dtype) -> None:
    """Measure now the elementwise choices a forward may ask for (gate_route, cell_route,
    sigmoid_route), before work split across threads asks for them from inside a block, where
    the other blocks would load the measurement."""
    if backend.is_host(xp) and np.dtype(dtype).kind == "f":
        gate_route(xp, dtype)
        cell_route(xp, dtype)
        sigmoid_route(xp, dtype)
