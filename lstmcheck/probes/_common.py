"""What the probes share: input validation, result objects, the state vector s = (h, c), and the
checkpointed (segment-wise) forward/backward that keeps memory flat for long sequences.

Probes analyse the recurrence of one layer in one direction (``layer=``, ``direction=``; the
first by default): its state s_t = h_t (RNN, GRU) or (h_t, c_t) (LSTM), every state part of
its cell, is what dL/ds_t and ds_T/ds_t are taken of.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import backend, validate
from ..errors import NonFiniteError, OptionError, ShapeError

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


# ----------------------------------------------------------------------------- the recurrence
class Layer:
    """The recurrence a probe analyses: one layer in one direction of a model, with the
    parameters of that layer-direction. Its state s_t is every state part of the cell joined
    ((h, c) for the LSTM), in the direction's processing order (s_1 follows the first step
    processed: x[T-1] for a reverse direction)."""

    def __init__(self, model, params, layer, direction):
        from ..models import runner
        self.model, self.cell = model, model.cell
        self.layer, self.direction = layer, direction
        self.p = runner.layer_params(model, params, model.param_suffix(layer, direction))
        self.sizes = self.cell.state_sizes(model.hidden_size)
        self.state_size = int(sum(self.sizes))
        self.has_c = len(self.cell.state_names) > 1

    def describe(self):
        m = self.model
        if m.num_layers == 1 and m.num_directions == 1:
            return m.describe()
        return f"{m.describe()} layer {self.layer} {self.direction}"

    def join(self, state):
        """State parts (B, .) -> s (B, n)."""
        xp = backend.array_module(*state)
        return state[0] if len(state) == 1 else xp.concatenate(state, axis=-1)

    def split(self, s):
        """s (B, n) -> the state parts."""
        out, lo = [], 0
        for w in self.sizes:
            out.append(s[:, lo:lo + w])
            lo += w
        return tuple(out)

    def project(self, x):
        from ..models import runner
        return runner.project(backend.array_module(x), self.cell, self.p, x)

    def step(self, x_t, state):
        """One step on (B, D) inputs from the state parts -> the next state parts."""
        xp = backend.array_module(x_t)
        return self.cell.step(xp, self.p, self.project(x_t[None])[0], state)[0]

    def run(self, x, state, fused=False):
        """(outputs, final state parts, LayerTape) over x (T, B, D) in processing order."""
        from ..models import runner
        xp = backend.array_module(x)
        full = runner.full_state(xp, self.cell, state[:len(self.cell.state_names)],
                                 self.model.hidden_size) if len(state) < len(self.sizes) else state
        fused = fused and not self.cell.hidden_states       # the fused run returns h, c only
        return runner.layer_forward(xp, self.cell, self.p, x, full, fused=fused)


# ----------------------------------------------------------------------------- validation
def _choose(model, layer, direction):
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not \
            0 <= layer < model.num_layers:
        raise OptionError(f"layer must be one of 0..{model.num_layers - 1} (the model has "
                          f"{model.num_layers} layer(s)), got {layer!r}.")
    if layer > 0 and model.cell.below is not None:
        # the one-layer recurrence a probe follows would need that input at every step too
        raise OptionError(f"layer {layer} of {model.kind.upper()} also takes the layer below's "
                          f"{model.cell.below} at every step, which the probes do not feed; "
                          f"probe layer 0.")
    if direction is None:
        direction = model.directions[0]
    if direction not in model.directions:
        raise OptionError(f"direction must be one of {', '.join(model.directions)} for "
                          f"{model.describe()}, got {direction!r}.")
    return int(layer), direction


def prepare(model, params, x, state=None, *, layer=0, direction=None):
    """Validate (params, x, state) like model.forward does, without running the whole sequence,
    and pick the recurrence to probe. Returns (Layer, its input sequence (T, B, D) in processing
    order, its initial state parts of shape (B, .))."""
    if not hasattr(model, "cell") or not hasattr(model, "directions"):
        raise OptionError(f"model must be an lstmcheck model (lc.LSTM, lc.Recurrent, ...), got "
                          f"{type(model).__name__}.")
    layer, direction = _choose(model, layer, direction)
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
    if layer > 0:                      # the layer's input: the outputs of the layers below
        below = model.replace(num_layers=layer, batch_first=False)
        n_below = layer * model.num_directions
        x, _, _ = below.run_forward({n: params[n] for n in below.param_names}, x,
                                    tuple(a[:n_below] for a in state0))
    view = Layer(model, params, layer, direction)
    idx = layer * model.num_directions + model.directions.index(direction)
    from ..models import runner
    s0 = runner.full_state(xp, model.cell, tuple(a[idx] for a in state0), model.hidden_size)
    return view, (x[::-1] if direction == "reverse" else x), s0


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
    return validate.integer(name, v, allow_none=allow_none)


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


# ----------------------------------------------------------------------------- trajectories
def trajectory(view, x, state0):
    """States s_0 .. s_T (T+1, B, n) along x (T, B, D), s_0 = state0. Raises NonFiniteError at the
    first step that overflows."""
    xp = backend.array_module(x)
    T, B, _ = x.shape
    S = xp.empty((T + 1, B, view.state_size), x.dtype)
    S[0] = view.join(state0)
    state = state0
    for t in range(T):
        with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported below
            state = view.step(x[t], state)
        S[t + 1] = view.join(state)
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


def forward_checkpoints(view, x, state0, bounds):
    """Run forward segment by segment keeping only the state at each segment start."""
    T = x.shape[0]
    checkpoints, state = [], state0
    for a, b, _ in bounds:
        checkpoints.append(state)
        with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported below
            y, state, _ = view.run(x[a:b], state, fused=True)
        bad = first_nonfinite(y)
        if bad is not None:
            raise_nonfinite("the hidden state h_t", a + bad + 1, T)
    return checkpoints, state
