"""Input workloads for gradient-flow probes and sweeps: seeded, time-major, documented.

Every task returns a :class:`Workload` ``(x, targets)`` (unpackable as a pair) with
``x`` of shape (seq_len, batch, input_size) in the requested dtype and backend, and ``targets``
(host NumPy) where the task defines one, else None:

- :func:`noise` — i.i.d. Gaussian inputs, the neutral workload of the probes.
- :func:`adding` — the adding problem (Hochreiter & Schmidhuber 1997, Exp. 4; in the two-channel
  form of Le et al. 2015): add the two marked values of a long random sequence.
- :func:`copy_memory` — the copy-memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016):
  reproduce a short symbol string after a long blank delay.
- :func:`temporal_order` — the temporal-order problem (Hochreiter & Schmidhuber 1997, Exp. 6a):
  classify the order of two relevant symbols hidden in noise symbols.

``make(name, seq_len, batch, ...)`` selects a task by name (the sweep's ``task`` grid key) and
``features(name, ...)`` says how many input features it produces.
"""
from __future__ import annotations

import inspect
import numbers
from typing import NamedTuple

import numpy as np

from . import backend as be
from . import validate as V
from .errors import OptionError


class Workload(NamedTuple):
    """``x`` (T, B, input_size) on the requested backend; ``targets`` host NumPy or None."""

    x: object
    targets: object = None


def _check_sizes(seq_len, batch, minimum=1, what="seq_len"):
    for name, v, lo in ((what, seq_len, minimum), ("batch", batch, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise OptionError(f"{name} must be an integer >= {lo}, got {v!r}.")


def _to(x, dtype, backend_name):
    return be.asarray(x, be.get_xp(backend_name), be.resolve_dtype(dtype))


def _one_hot(symbols, n):
    return np.eye(n)[symbols]


@V.keywords
def noise(seq_len, batch, input_size, *, seed=0, scale=1.0, dtype="float64", backend="numpy"):
    """x ~ N(0, scale^2), i.i.d. over time, batch and features. No targets."""
    _check_sizes(seq_len, batch)
    _check_sizes(input_size, 1, what="input_size")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real) \
            or not 0 <= scale < np.inf:
        raise OptionError(f"scale must be a finite number >= 0, got {scale!r}.")
    x = be.rng(V.seed(seed)).standard_normal((seq_len, batch, input_size)) * scale
    return Workload(_to(x, dtype, backend), None)


@V.keywords
def adding(seq_len, batch, *, seed=0, dtype="float64", backend="numpy"):
    """Adding problem: x[..., 0] ~ U(0, 1), x[..., 1] marks one step in the first half and one in
    the second half of the sequence; target (batch, 1) is the sum of the two marked values.
    A model that answers 1 (the mean) has MSE 1/6; the task needs memory over ~seq_len/2 steps."""
    _check_sizes(seq_len, batch, minimum=2)
    rng = be.rng(V.seed(seed))
    values = rng.uniform(0.0, 1.0, (seq_len, batch))
    half = seq_len // 2
    first = rng.integers(0, half, batch)
    second = rng.integers(half, seq_len, batch)
    marks = np.zeros((seq_len, batch))
    cols = np.arange(batch)
    marks[first, cols] = 1.0
    marks[second, cols] = 1.0
    targets = (values[first, cols] + values[second, cols])[:, None]
    return Workload(_to(np.stack([values, marks], axis=-1), dtype, backend), targets)


@V.keywords
def copy_memory(seq_len, batch, *, length=10, n_symbols=8, seed=0, dtype="float64",
                backend="numpy"):
    """Copy memory: ``length`` symbols drawn from 1..n_symbols, then blanks (0), then a delimiter
    (n_symbols + 1) ``length`` steps before the end; the model must output the symbols in the last
    ``length`` steps. seq_len is the total length (delay = seq_len - 2*length).

    x: one-hot (seq_len, batch, n_symbols + 2); targets: (seq_len, batch) integer classes, blank (0)
    everywhere but the last ``length`` steps. Guessing the blank and then uniformly at random has
    cross-entropy length * log(n_symbols) / seq_len (the memoryless baseline)."""
    _check_sizes(length, 1, what="length")
    _check_sizes(n_symbols, 1, what="n_symbols")
    _check_sizes(seq_len, batch, minimum=2 * length + 1)
    rng = be.rng(V.seed(seed))
    data = rng.integers(1, n_symbols + 1, (length, batch))
    symbols = np.zeros((seq_len, batch), dtype=np.int64)
    symbols[:length] = data
    symbols[seq_len - length - 1] = n_symbols + 1           # "now repeat"
    targets = np.zeros((seq_len, batch), dtype=np.int64)
    targets[seq_len - length:] = data
    return Workload(_to(_one_hot(symbols, n_symbols + 2), dtype, backend), targets)


TEMPORAL_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "B", "E")


@V.keywords
def temporal_order(seq_len, batch, *, seed=0, dtype="float64", backend="numpy"):
    """Temporal order: a begin symbol B, noise symbols a-d, an end symbol E; at a step in
    [0.1, 0.2)*seq_len and one in [0.5, 0.6)*seq_len sit the relevant symbols X or Y. The class
    (targets, shape (batch,)) is the order seen: 0 = XX, 1 = XY, 2 = YX, 3 = YY.
    x: one-hot (seq_len, batch, 8) over the symbols ``TEMPORAL_SYMBOLS``."""
    _check_sizes(seq_len, batch, minimum=20)
    rng = be.rng(V.seed(seed))
    symbols = rng.integers(0, 4, (seq_len, batch))          # noise a-d
    symbols[0], symbols[-1] = 6, 7                          # B ... E
    t1 = rng.integers(int(0.1 * seq_len), int(0.2 * seq_len), batch)
    t2 = rng.integers(int(0.5 * seq_len), int(0.6 * seq_len), batch)
    which = rng.integers(0, 2, (2, batch))                  # 0 = X, 1 = Y
    cols = np.arange(batch)
    symbols[t1, cols] = 4 + which[0]
    symbols[t2, cols] = 4 + which[1]
    targets = 2 * which[0] + which[1]
    return Workload(_to(_one_hot(symbols, len(TEMPORAL_SYMBOLS)), dtype, backend), targets)


TASKS = {"noise": noise, "adding": adding, "copy_memory": copy_memory,
         "temporal_order": temporal_order}


def features(name, *, input_size=None, n_symbols=8):
    """Features a task produces (noise: whatever ``input_size`` asks for)."""
    fixed = {"adding": 2, "copy_memory": n_symbols + 2, "temporal_order": len(TEMPORAL_SYMBOLS)}
    if name == "noise":
        if input_size is None:
            raise OptionError("task 'noise' needs input_size.")
        return input_size
    if not isinstance(name, str) or name not in fixed:
        raise OptionError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    return fixed[name]


@V.keywords
def make(name, seq_len, batch, *, input_size=None, seed=0, dtype="float64", backend="numpy",
         **options):
    """The task called ``name`` with its options; for fixed-width tasks ``input_size`` must be
    None or match the task's width (see :func:`features`)."""
    if not isinstance(name, str) or name not in TASKS:
        raise OptionError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    takes = [p for p in inspect.signature(TASKS[name]).parameters
             if p not in ("seq_len", "batch", "input_size", "seed", "dtype", "backend")]
    if set(options) - set(takes):   # TypeError would not say which task lacks the option
        raise V.unknown_keyword(f"task {name!r}", options, takes)
    common = dict(seed=seed, dtype=dtype, backend=backend, **options)
    if name == "noise":
        if input_size is None:
            raise OptionError("task 'noise' needs input_size.")
        return noise(seq_len, batch, input_size, **common)
    width = features(name, n_symbols=options.get("n_symbols", 8))
    if input_size is not None and input_size != width:
        raise OptionError(f"task {name!r} produces {width} input features, but input_size is "
                          f"{input_size}.")
    return TASKS[name](seq_len, batch, **common)
