"""What RNN, LSTM and GRU share: parameter naming, validation, stacking over layers and
directions, the input projection of all time steps as one GEMM, and the weight-gradient GEMMs.

A cell (see rnn.py, lstm.py, gru.py) only runs the time loop of one layer in one direction:
given the projected inputs ``u_t = W_ih x_t + b_ih`` of every step it produces the outputs and a
tape, and backward turns the output gradients into ``dL/du_t`` plus its own recurrent-weight
gradients. Everything that is a GEMM over all time steps at once lives here.
"""
from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..errors import DTypeError, NonFiniteError, OptionError, ParameterError, ShapeError


@dataclass
class Tape:
    """What backward needs; opaque to users."""

    x: object                      # (T, B, D) time-major input
    params: dict
    layers: list                   # per (layer, direction): (layer input, cell tape)
    batch_first: bool
    extras: dict = field(default_factory=dict)
    owner: object = field(default=None, repr=False)   # the model whose forward wrote it


@dataclass
class Trace:
    """Per-step state gradients from backward, in forward time order (index t = 0..T-1).

    ``dh[k]`` is dL/dh_t of layer-direction k (k = layer * dirs + direction), shape (T, B, H_out);
    ``dc[k]`` the same for the LSTM cell state (None for RNN/GRU). ``grad_norm`` is the global
    parameter-gradient norm before clipping.
    """

    dh: list
    dc: list
    grad_norm: float = 0.0
    clipped: bool = False


def _positive_int(name, v, allow_zero=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < (0 if allow_zero else 1):
        lo = "a non-negative" if allow_zero else "a positive"
        raise OptionError(f"{name} must be {lo} integer, got {v!r}.")
    return int(v)


def _flag(name, v):
    """A yes/no option: bool or 0/1; anything else (e.g. the string 'no') is refused rather than
    read by truthiness."""
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
        return bool(v)
    raise OptionError(f"{name} must be True or False, got {v!r}.")


def _positive_number(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not 0 < v < np.inf:
        raise OptionError(f"{name} must be a positive finite number, got {v!r}.")
    return float(v)


class RecurrentModel:
    """Base class of RNN, LSTM and GRU. Subclasses set ``kind`` and build ``self.cell``."""

    kind = "rnn"

    def __new__(cls, *args, **options):
        # a wrong call would otherwise be Python's TypeError about __init__'s signature
        # (pickle and copy call __new__ without arguments: nothing to check then)
        sig = inspect.signature(cls.__init__)
        unknown = [k for k in options if k not in sig.parameters or k == "self"]
        if unknown:
            allowed = [n for n, q in sig.parameters.items() if q.kind is q.KEYWORD_ONLY]
            raise OptionError(f"{cls.__name__} has no option {unknown[0]!r}; its options are "
                              f"{', '.join(allowed)}.")
        if args or options:
            try:
                sig.bind(None, *args, **options)
            except TypeError as exc:
                raise OptionError(f"{cls.__name__}(input_size, hidden_size, **options) was called "
                                  f"wrongly: {exc}.") from None
        return super().__new__(cls)

    def __init__(self, input_size, hidden_size, *, num_layers=1, bidirectional=False,
                 backend="numpy", dtype="float64", batch_first=False, proj_size=0):
        from .. import backend as be

        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        self.proj_size = _positive_int("proj_size", proj_size, allow_zero=True)
        if self.proj_size and self.proj_size >= self.hidden_size:
            raise OptionError(f"proj_size ({self.proj_size}) must be smaller than hidden_size "
                              f"({self.hidden_size}), as in PyTorch.")
        self.bidirectional = _flag("bidirectional", bidirectional)
        self.batch_first = _flag("batch_first", batch_first)
        self.backend = backend
        self.xp = be.get_xp(backend)
        self.dtype = be.resolve_dtype(dtype)

    # ----------------------------------------------------------------- structure
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out: the size of h (proj_size when projecting)."""
        return self.proj_size or self.hidden_size

    @property
    def num_gates(self) -> int:
        return len(self.cell.gates)

    @property
    def gates(self) -> tuple:
        return self.cell.gates

    def suffixes(self):
        """'_l0', '_l0_reverse', '_l1', ... in PyTorch's order (layer-major)."""
        for k in range(self.num_layers):
            for d in range(self.num_directions):
                yield k, d, f"_l{k}" + ("_reverse" if d else "")

    def base_names(self) -> list:
        """Parameter names without the layer suffix: weight_ih, weight_hh, bias_ih, bias_hh, ..."""
        return ["weight_ih", "weight_hh", "bias_ih", "bias_hh",
                *self.cell.extra_params(self.hidden_size, self.output_size)]

    def _layer_params(self, params, suffix):
        return {b: params[b + suffix] for b in self.base_names()}

    def layer_input_size(self, k: int) -> int:
        return self.input_size if k == 0 else self.output_size * self.num_directions

    def param_shapes(self) -> dict:
        """{name: shape} in PyTorch's order; names and shapes follow torch.nn exactly."""
        G, H, Ho = self.num_gates, self.hidden_size, self.output_size
        shapes = {}
        for k, _, s in self.suffixes():
            shapes["weight_ih" + s] = (G * H, self.layer_input_size(k))
            shapes["weight_hh" + s] = (G * H, Ho)
            shapes["bias_ih" + s] = (G * H,)
            shapes["bias_hh" + s] = (G * H,)
            for name, shape in self.cell.extra_params(H, Ho).items():
                shapes[name + s] = shape
        return shapes

    @property
    def param_names(self) -> list:
        return list(self.param_shapes())

    def num_params(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))

    def state_shapes(self, batch: int) -> tuple:
        batch = _positive_int("batch", batch, allow_zero=True)
        L = self.num_layers * self.num_directions
        shapes = ((L, batch, self.output_size),)
        if self.cell.has_cell_state:
            shapes += ((L, batch, self.hidden_size),)
        return shapes

    def config(self) -> dict:
        """Constructor arguments, JSON-ready (enough to rebuild the model)."""
        cfg = dict(cell=self.kind, input_size=self.input_size, hidden_size=self.hidden_size,
                   num_layers=self.num_layers, bidirectional=self.bidirectional,
                   backend=self.backend, dtype=self.dtype.name, batch_first=self.batch_first)
        cfg.update(self.cell.config())
        if self.kind == "lstm":
            cfg["proj_size"] = self.proj_size
        return cfg

    def __repr__(self):
        cfg = self.config()
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k not in ("cell",))
        return f"{type(self).__name__}({args})"

    def locate(self, name: str, index) -> dict:
        """Decode a flat or tuple index into a parameter as layer, direction, gate, row, column."""
        shapes = self.param_shapes()
        if name in ("x", "h0", "c0"):
            return {"tensor": name}
        if name not in shapes:
            raise ParameterError(f"{self.describe()} has no parameter {name!r}.")
        base, _, rest = name.partition("_l")
        layer = int(rest.split("_")[0])
        direction = "reverse" if name.endswith("_reverse") else "forward"
        idx = index if np.ndim(index) == 0 else tuple(index)
        ok = all(isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))
                 for i in np.ravel(np.asarray(idx, dtype=object)))
        size = int(np.prod(shapes[name]))
        if np.ndim(index) == 0:
            ok = ok and 0 <= idx < size
        else:
            ok = ok and 1 <= len(idx) <= len(shapes[name]) and all(
                0 <= i < n for i, n in zip(idx, shapes[name]))
        if not ok:
            raise ShapeError(f"index {index!r} is not a flat index below {size} or an index tuple "
                             f"into {name} of shape {shapes[name]}.")
        if np.ndim(index) == 0:
            idx = np.unravel_index(int(index), shapes[name])
        loc = {"tensor": name, "layer": layer, "direction": direction}
        loc.update(self.cell.locate(base, idx, self.hidden_size))
        return loc

    # ----------------------------------------------------------------- init
    def init_params(self, seed=0, **scheme):
        """Parameters as a dict of arrays on the model's backend (see models/init.py)."""
        from .init import OPTIONS, init_params
        unknown = [k for k in scheme if k not in OPTIONS]
        if unknown:
            raise OptionError(f"init_params has no option {unknown[0]!r}; its options are "
                              f"{', '.join(OPTIONS)}.")
        return init_params(self, seed, **scheme)

    # ----------------------------------------------------------------- validation
    def _check_params(self, params, xp):
        if not isinstance(params, dict):
            raise ParameterError(f"params must be a dict of arrays, got {type(params).__name__}.")
        shapes = self.param_shapes()
        missing = [n for n in shapes if n not in params]
        extra = [n for n in params if n not in shapes]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
            if extra:
                parts.append("unexpected " + ", ".join(map(str, extra[:6])) + (" ..." if len(extra) > 6 else ""))
            raise ParameterError(f"params do not match the {self.describe()}: {'; '.join(parts)}.")
        ref = None   # (name, dtype) of the first array: a mismatch names both
        for n, shape in shapes.items():
            a = params[n]
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                raise ParameterError(f"parameter {n} is a {type(a).__name__}, not an array.")
            if tuple(a.shape) != shape:
                raise ShapeError(f"parameter {n} has shape {tuple(a.shape)}, expected {shape}.")
            ref = self._check_dtype(n, a, ref)
        return ref

    def _check_dtype(self, name, a, ref=None):
        """Refuse a dtype the model does not compute in, or one that differs from ``ref`` =
        (name, dtype) of an input checked before. Returns the ref for the next check."""
        dt = np.dtype(a.dtype)
        if dt.kind not in "fc" or backend.real_of(dt) != self.dtype:
            allowed = f"{self.dtype.name} (or {backend.complex_of(self.dtype).name} for the complex step)"
            raise DTypeError(f"{name} has dtype {dt.name}, but this model computes in {allowed}.")
        if ref is not None and dt != ref[1]:
            raise DTypeError(f"{name} has dtype {dt.name} while {ref[0]} has {ref[1].name}; "
                             f"all inputs must share one dtype.")
        return ref or (name, dt)

    def _check_finite(self, arrays: dict, xp):
        for n, a in arrays.items():
            if a is not None and not bool(xp.isfinite(a).all()):
                bad = "NaN" if bool(xp.isnan(a).any()) else "Inf"
                raise NonFiniteError(f"{n} contains {bad}; lstmcheck needs finite inputs.")

    def describe(self) -> str:
        return (f"{self.kind.upper()}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}"
                + (f", proj_size={self.proj_size}" if self.proj_size else "")
                + self.cell.describe() + ")")

    def _state_names(self, what="state") -> tuple:
        """How errors name the parts of ``state`` (h0, c0) or of ``dstate``."""
        if what == "state":
            return ("h0", "c0")[: len(self.state_shapes(1))]
        if self.cell.has_cell_state:
            return ("dstate[0] (dL/dh_T)", "dstate[1] (dL/dc_T)")
        return ("dstate (dL/dh_T)",)

    def _split_state(self, state, B, xp, dtype, what="state"):
        """state (None, h0, or (h0, c0)) -> tuple of arrays with the right shapes."""
        shapes = self.state_shapes(B)
        names = self._state_names(what)
        if state is None:
            return tuple(xp.zeros(s, dtype) for s in shapes)
        parts = tuple(state) if isinstance(state, (tuple, list)) else (state,)
        if len(parts) != len(shapes):
            want = "the pair (h0, c0)" if len(shapes) == 2 else "h0 alone"
            raise ShapeError(f"{what} for {self.kind.upper()} must be {want}, got {len(parts)} "
                             f"item(s).")
        out = []
        for n, a, s in zip(names, parts, shapes):
            if a is None:
                a = xp.zeros(s, dtype)
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                raise ShapeError(f"{n} must be an array of shape {s}, got {type(a).__name__}.")
            if tuple(a.shape) != s:
                raise ShapeError(f"{n} has shape {tuple(a.shape)}, expected {s}.")
            out.append(a)
        return tuple(out)

    # ----------------------------------------------------------------- forward
    def forward(self, params, x, state=None):
        """y, final state and tape. x: (T, B, input_size), or (B, T, input_size) if batch_first."""
        xp = backend.array_module(x, *params.values()) if isinstance(params, dict) else self.xp
        ref = self._check_params(params, xp)
        dtype = ref[1]
        if not hasattr(x, "ndim") or x.ndim != 3:
            got = f"rank {x.ndim}" if hasattr(x, "ndim") else type(x).__name__
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ShapeError(f"x must be a rank-3 array {layout}, got {got}.")
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"x has {x.shape[-1]} features, but the model's input_size is {self.input_size}.")
        self._check_dtype("x", x, ref)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, _ = x.shape
        if T == 0 or B == 0:
            raise ShapeError(f"x must have at least one time step and one sequence, got T={T}, B={B}.")
        state0 = self._split_state(state, B, xp, dtype)
        for n, a in zip(("h0", "c0"), state0):
            self._check_dtype(n, a, ref)
        self._check_finite({**params, "x": x, **dict(zip(("h0", "c0"), state0))}, xp)

        with backend.gpu_errors(f"the forward pass of {self.describe()} on x of shape {tuple(x.shape)}"):
            y, final, tape = self.run_forward(params, x, state0)
        if self.batch_first:
            y = y.transpose(1, 0, 2)
        return y, (final if self.cell.has_cell_state else final[0]), tape

    def run_forward(self, params, x, state0):
        """forward without validation: x time-major, state0 a tuple (h0,) or (h0, c0).

        Cells touch parameters only through ``a @ W.T`` / ``a @ W[rows].T`` and broadcasting, so
        ``params`` may hold stand-ins (the checker passes per-replica biases of shape (B, G*H)
        and weight matrices that add rank-one perturbations per replica).
        """
        xp = backend.array_module(x)
        dirs = self.num_directions
        layers, finals = [], [[] for _ in state0]
        inp = x
        for k in range(self.num_layers):
            outs = []
            for d in range(dirs):
                s = f"_l{k}" + ("_reverse" if d else "")
                p = self._layer_params(params, s)
                xin = inp[::-1] if d else inp
                u = self._project(xp, xin, p)
                y, fin, ctape = self.cell.forward(xp, p, u, tuple(a[k * dirs + d] for a in state0))
                layers.append((xin, ctape))
                outs.append(y[::-1] if d else y)
                for lst, a in zip(finals, fin):
                    lst.append(a)
            inp = outs[0] if dirs == 1 else xp.concatenate(outs, axis=-1)
        final = tuple(xp.stack(lst) for lst in finals)
        return inp, final, Tape(x=x, params=params, layers=layers, batch_first=self.batch_first,
                                owner=self)

    def _project(self, xp, xin, p):
        """u = x W_ih^T + b_ih (+ b_hh when the cell folds it in), all time steps in one GEMM."""
        T, B, D = xin.shape
        u = xin.reshape(T * B, D) @ p["weight_ih"].T
        u = u.reshape(T, B, -1)
        u += p["bias_ih"]
        if self.cell.fold_bias_hh:
            u += p["bias_hh"]
        return u

    # ----------------------------------------------------------------- backward
    def backward(self, tape, dy, dstate=None, *, truncate=None, clip_norm=None):
        """Gradients of L for every parameter and for x, h0 (and c0), given dy = dL/dy and
        dstate = dL/d(final state). ``truncate=k``: truncated BPTT, no gradient crosses the
        chunk boundaries t = k, 2k, ... ; ``clip_norm``: global-norm clipping of the parameter
        gradients (Pascanu et al. 2013, Algorithm 1)."""
        with backend.gpu_errors(f"the backward pass of {self.describe()}"):
            return self.backward_trace(tape, dy, dstate, truncate=truncate, clip_norm=clip_norm)[0]

    def backward_trace(self, tape, dy, dstate=None, *, truncate=None, clip_norm=None, trace=False):
        """backward, plus a :class:`Trace` of per-step dL/dh_t (and dL/dc_t) when trace=True."""
        if not isinstance(tape, Tape):
            raise OptionError("tape must be the third value returned by forward().")
        if tape.owner is not self and (tape.owner is None or tape.owner.config() != self.config()):
            raise OptionError(f"tape was recorded by the forward of another model "
                              f"({tape.owner.describe() if tape.owner is not None else 'unknown'}), "
                              f"not of {self.describe()}.")
        x, params = tape.x, tape.params
        xp = backend.array_module(x)
        T, B, _ = x.shape
        Ho = self.output_size
        dirs = self.num_directions
        if truncate is not None:
            truncate = _positive_int("truncate", truncate)
        if clip_norm is not None:
            clip_norm = _positive_number("clip_norm", clip_norm)
        want = (B, T, Ho * dirs) if tape.batch_first else (T, B, Ho * dirs)
        if not hasattr(dy, "shape") or not hasattr(dy, "dtype"):
            raise ShapeError(f"dy must be an array of shape {want} (the shape of y), got "
                             f"{type(dy).__name__}.")
        if tuple(dy.shape) != want:
            raise ShapeError(f"dy has shape {tuple(dy.shape)}, expected {want} (the shape of y).")
        if tape.batch_first:
            dy = dy.transpose(1, 0, 2)
        ref = ("the parameters", np.dtype(params[next(iter(params))].dtype))
        self._check_dtype("dy", dy, ref)
        dfinal = self._split_state(dstate, B, xp, ref[1], what="dstate")
        names = self._state_names("dstate")
        for n, a in zip(names, dfinal):
            self._check_dtype(n, a, ref)
        self._check_finite({"dy": dy, **dict(zip(names, dfinal))}, xp)

        grads = {}
        dstate0 = [[None] * (self.num_layers * dirs) for _ in dfinal]
        tr = Trace(dh=[None] * (self.num_layers * dirs), dc=[None] * (self.num_layers * dirs))
        d_out = dy
        for k in reversed(range(self.num_layers)):
            d_in = None
            for d in range(dirs):
                s = f"_l{k}" + ("_reverse" if d else "")
                idx = k * dirs + d
                p = self._layer_params(params, s)
                xin, ctape = tape.layers[idx]
                dyk = d_out[..., d * Ho:(d + 1) * Ho]
                if d:
                    dyk = dyk[::-1]
                du, ds0, dp, steps = self.cell.backward(
                    xp, p, ctape, dyk, tuple(a[idx] for a in dfinal), truncate=truncate, trace=trace)
                for j, a in enumerate(ds0):
                    dstate0[j][idx] = a
                if trace:
                    tr.dh[idx] = steps[0][::-1] if d else steps[0]
                    tr.dc[idx] = (steps[1][::-1] if d else steps[1]) if steps[1] is not None else None
                G = du.shape[-1]
                du2 = du.reshape(T * B, G)
                grads["weight_ih" + s] = du2.T @ xin.reshape(T * B, -1)
                grads["bias_ih" + s] = du2.sum(axis=0)
                if self.cell.fold_bias_hh:
                    grads["bias_hh" + s] = grads["bias_ih" + s].copy()
                for n, g in dp.items():
                    grads[n + s] = g
                dxin = (du2 @ p["weight_ih"]).reshape(T, B, -1)
                if d:
                    dxin = dxin[::-1]
                d_in = dxin if d_in is None else d_in + dxin
            d_out = d_in
        grads = {n: grads[n] for n in self.param_names}   # PyTorch order
        sq = sum(float(xp.vdot(g, g).real) for g in grads.values())
        tr.grad_norm = sq ** 0.5
        if clip_norm is not None and tr.grad_norm > clip_norm:
            scale = clip_norm / tr.grad_norm
            for n in grads:
                grads[n] = grads[n] * scale
            tr.clipped = True
        grads["x"] = d_out.transpose(1, 0, 2) if tape.batch_first else d_out
        grads["h0"] = xp.stack(dstate0[0])
        if self.cell.has_cell_state:
            grads["c0"] = xp.stack(dstate0[1])
        return grads, tr
