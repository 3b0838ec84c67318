"""What the probes share: input validation, result objects, the state vector s = (h, c), and the
checkpointed (segment-wise) forward/backward that keeps memory flat for long sequences.

Probes analyse the recurrence of one layer in one direction (num_layers=1, unidirectional): its
state s_t = h_t (RNN, GRU) or (h_t, c_t) (LSTM) is what dL/ds_t and ds_T/ds_t are taken of.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import backend
from ..errors import NonFiniteError, OptionError, ShapeError

SUFFIX = "_l0"


class Result:
    """Mixin for probe results (dataclasses): ``to_dict()`` gives every field, arrays as host
    NumPy arrays, nested results as dicts, plus the probe's name."""

    probe = "probe"

    def to_dict(self) -> dict:
        out = {"probe": self.probe}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(v):
    if isinstance(v, Result):
        return v.to_dict()
    if isinstance(v, dict):
        return {str(k): _plain(a) for k, a in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(a) for a in v)
    if isinstance(v, np.generic):
        return v.item()
    return backend.to_host(v)


# ----------------------------------------------------------------------------- validation
def check_model(model):
    if getattr(model, "num_layers", None) != 1 or model.bidirectional:
        raise OptionError(
            "probes analyse the recurrence of one layer in one direction; build the model with "
            f"num_layers=1 and bidirectional=False (got {model.describe()}).")


def prepare(model, params, x, state=None):
    """Validate (params, x, state) like model.forward does, without running the whole sequence.
    Returns x time-major and the initial state as a tuple (h0,) or (h0, c0) of (B, H) arrays."""
    check_model(model)
    if not hasattr(x, "ndim") or x.ndim != 3:
        raise ShapeError("x must be a rank-3 array (T, B, input_size)"
                         + (" (batch_first: (B, T, input_size))" if model.batch_first else "") + ".")
    # one step through the model's own validation: names, shapes, dtypes, state
    model.forward(params, x[:, :1] if model.batch_first else x[:1], state)
    if model.batch_first:
        x = x.transpose(1, 0, 2)
    xp = backend.array_module(x)
    bad = first_nonfinite(x)
    if bad is not None:
        raise NonFiniteError(f"x contains NaN or Inf at x[{bad}] (time step t={bad + 1}); probes "
                             f"need finite inputs.")
    B = x.shape[1]
    dtype = params[model.param_names[0]].dtype
    if state is None:
        state0 = tuple(xp.zeros(s, dtype) for s in model.state_shapes(B))
    else:
        state0 = tuple(state) if isinstance(state, (tuple, list)) else (state,)
        state0 = tuple(xp.zeros(s, dtype) if a is None else a
                       for a, s in zip(state0, model.state_shapes(B)))
    return x, tuple(a[0] for a in state0)


def check_sample(sample, B):
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or not -B <= sample < B:
        raise OptionError(f"sample must index one of the batch's {B} sequences, got {sample!r}.")
    return int(sample) % B


def check_k(k, n, what="the state size"):
    if k is None:
        return n
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise OptionError(f"k must be a positive integer, got {k!r}.")
    if k > n:
        raise OptionError(f"k={k} is larger than {what} ({n}); at most {n} directions exist.")
    return int(k)


def positive_int(name, v, allow_none=True):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise OptionError(f"{name} must be a positive integer, got {v!r}.")
    return int(v)


def row_norms(xp, a):
    """Euclidean norms along the last axis without squaring into underflow: each row is scaled
    by its largest magnitude first, so norms down to the smallest subnormal survive (a plain
    sqrt(sum of squares) is 0 below ~1e-154 in float64)."""
    m = xp.max(xp.abs(a), axis=-1, keepdims=True)
    safe = xp.where(m > 0, m, 1)
    return xp.linalg.norm(a / safe, axis=-1) * m[..., 0]


def first_lag_below(values, bound, first_lag=0):
    """The lag of the first value below ``bound`` (lags counted from ``first_lag``), else None:
    where a norm, or its log, falls under the dtype's smallest normal number."""
    low = np.nonzero(np.asarray(values) < bound)[0]
    return int(low[0]) + first_lag if low.size else None


def first_nonfinite(a, axis0_offset=0):
    """The first index along axis 0 where ``a`` holds NaN/Inf, or None."""
    xp = backend.array_module(a)
    ok = xp.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    if bool(ok.all()):
        return None
    return int(backend.to_host(xp.argmin(ok))) + axis0_offset


def raise_nonfinite(what, step, T):
    raise NonFiniteError(f"{what} became NaN or Inf at time step t={step} (of T={T}); the "
                         f"network overflowed there (lower the weight scale or the input scale).")


# ----------------------------------------------------------------------------- state vector
def state_size(model) -> int:
    """n: size of the state s = h (RNN/GRU) or (h, c) (LSTM)."""
    return model.output_size + (model.hidden_size if model.cell.has_cell_state else 0)


def join_state(state):
    """(h,) or (h, c) with shapes (B, .) -> s (B, n)."""
    xp = backend.array_module(*state)
    return state[0] if len(state) == 1 else xp.concatenate(state, axis=-1)


def split_state(model, s):
    """s (B, n) -> (h,) or (h, c)."""
    Ho = model.output_size
    return (s[:, :Ho], s[:, Ho:]) if model.cell.has_cell_state else (s,)


def layer_params(model, params):
    return {b: params[b + SUFFIX] for b in model.base_names()}


def step(model, params, x_t, state):
    """One time step on (B, D) inputs from a state tuple of (B, .) arrays -> next state tuple."""
    _, final, _ = model.run_forward(params, x_t[None], tuple(a[None] for a in state))
    return tuple(a[0] for a in final)


def trajectory(model, params, x, state0):
    """States s_0 .. s_T (T+1, B, n) along x (T, B, D), s_0 = state0. Raises NonFiniteError at the
    first step that overflows."""
    xp = backend.array_module(x)
    T, B, _ = x.shape
    S = xp.empty((T + 1, B, state_size(model)), x.dtype)
    S[0] = join_state(state0)
    state = state0
    for t in range(T):
        with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported below
            state = step(model, params, x[t], state)
        S[t + 1] = join_state(state)
        if not bool(xp.isfinite(S[t + 1]).all()):
            raise_nonfinite("the state", t + 1, T)
    return S


# ----------------------------------------------------------------------------- segments
def auto_segment(model, B, T, budget_bytes=128 * 2**20):
    """Time steps per segment so that one segment's tape (and its backward) stays near budget."""
    H, G = model.hidden_size, model.num_gates
    per_step = B * (3 * G * H + 6 * H) * np.dtype(model.dtype).itemsize
    return int(max(1, min(T, budget_bytes // per_step)))


def segment_bounds(T, segment, truncate=None):
    """[(a, b, truncate_inside)]: segments of about ``segment`` steps. With truncated BPTT every
    chunk boundary (multiples of ``truncate``) is a segment boundary, and segments start on chunk
    boundaries whenever they may contain one, so the cell's own truncation (at local t = k, 2k..)
    lines up with the global one."""
    if truncate is None:
        cuts = range(0, T, segment)
        inside = None
    elif truncate <= segment:
        seg = truncate * max(1, segment // truncate)
        cuts = range(0, T, seg)
        inside = truncate
    else:
        cuts = sorted(set(range(0, T, segment)) | set(range(0, T, truncate)))
        inside = None
    cuts = list(cuts) + [T]
    return [(a, b, inside) for a, b in zip(cuts[:-1], cuts[1:])]


def forward_checkpoints(model, params, x, state0, bounds):
    """Run forward segment by segment keeping only the state at each segment start."""
    T = x.shape[0]
    checkpoints, state = [], state0
    for a, b, _ in bounds:
        checkpoints.append(state)
        with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported below
            y, final, _ = model.run_forward(params, x[a:b], tuple(s[None] for s in state))
        bad = first_nonfinite(y)
        if bad is not None:
            raise_nonfinite("the hidden state h_t", a + bad + 1, T)
        state = tuple(s[0] for s in final)
    return checkpoints, state
