"""A recurrent model built from any cell: parameter naming, validation, forward and backward.

``Recurrent(cell, input_size, hidden_size, ...)`` is the public way to bring a cell of your own;
lc.RNN, lc.LSTM and lc.GRU are Recurrent models of the built-in cells. The execution itself is
the stack runner's (runner.py).
"""
from __future__ import annotations

import copy
import inspect
import numbers

import numpy as np

from .. import backend
from ..errors import DTypeError, NonFiniteError, OptionError, ParameterError, ShapeError
from . import runner
from .cell import Cell
from .runner import Tape, Trace  # noqa: F401  (re-exported)

DIRECTIONS = ("forward", "reverse", "bidirectional")


def positive_int(name, v, allow_zero=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < (0 if allow_zero else 1):
        lo = "a non-negative" if allow_zero else "a positive"
        raise OptionError(f"{name} must be {lo} integer, got {v!r}.")
    return int(v)


def flag(name, v):
    """A yes/no option: bool or 0/1; anything else (e.g. the string 'no') is refused rather than
    read by truthiness."""
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
        return bool(v)
    raise OptionError(f"{name} must be True or False, got {v!r}.")


def positive_number(name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not 0 < v < np.inf:
        raise OptionError(f"{name} must be a positive finite number, got {v!r}.")
    return float(v)


def resolve_direction(direction, bidirectional):
    """direction=, with the older bidirectional=True/False still accepted."""
    if bidirectional is not None:
        bidirectional = flag("bidirectional", bidirectional)
        if (direction == "bidirectional") != bidirectional and not (bidirectional and direction == "forward"):
            raise OptionError(f"bidirectional={bidirectional} contradicts direction={direction!r}.")
        direction = "bidirectional" if bidirectional else direction
    if direction not in DIRECTIONS:
        raise OptionError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}.")
    return direction


def require_model(model, name="model"):
    """``model`` when it is an lstmcheck model; a string, None or anything else is refused with
    one sentence (not an AttributeError deep inside)."""
    if not isinstance(model, Recurrent):
        hint = " (build one: lc.models.build(" + repr(model) + ", input_size, hidden_size))" \
            if isinstance(model, str) else ""
        raise OptionError(f"{name} must be an lstmcheck model (lc.LSTM, lc.GRU, lc.RNN, "
                          f"lc.Recurrent), got {type(model).__name__}{hint}.")
    return model


def snapshot_inputs(params, x, state0):
    """Copies of what a tape keeps of the caller's inputs (the params in a dict of its own, x,
    the state parts), so that changing one after forward cannot reach backward."""
    return {n: a.copy() for n, a in params.items()}, x.copy(), tuple(a.copy() for a in state0)


class Recurrent:
    """A stack of ``num_layers`` layers of ``cell``, run forward, reverse or both ways."""

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
                raise OptionError(f"{cls.__name__}(...) was called wrongly: {exc}.") from None
        return super().__new__(cls)

    def __init__(self, cell, input_size, hidden_size, *, num_layers=1, direction="forward",
                 bidirectional=None, backend="numpy", dtype="float64", batch_first=False):
        from .. import backend as be
        if isinstance(cell, type) and issubclass(cell, Cell):
            cell = cell()
        if not isinstance(cell, Cell):
            raise OptionError(f"cell must be an lstmcheck Cell (a subclass of lc.Cell), got "
                              f"{type(cell).__name__}.")
        self.cell = cell
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.direction = resolve_direction(direction, bidirectional)
        self.batch_first = flag("batch_first", batch_first)
        self.backend = backend
        self.xp = be.get_xp(backend)
        self.dtype = be.resolve_dtype(dtype)

    # ----------------------------------------------------------------- structure
    @property
    def kind(self) -> str:
        return self.cell.cell_name()

    @property
    def bidirectional(self) -> bool:
        return self.direction == "bidirectional"

    @property
    def directions(self) -> tuple:
        return ("forward", "reverse") if self.bidirectional else (self.direction,)

    @property
    def num_directions(self) -> int:
        return len(self.directions)

    @property
    def proj_size(self) -> int:
        return 0

    @property
    def output_size(self) -> int:
        """H_out: the size of h (proj_size when projecting)."""
        return self.cell.state_sizes(self.hidden_size)[0]

    @property
    def num_gates(self) -> int:
        return len(self.cell.gates)

    @property
    def gates(self) -> tuple:
        return self.cell.gates

    @staticmethod
    def suffix(layer, direction) -> str:
        return f"_l{layer}" + ("_reverse" if direction == "reverse" else "")

    def suffixes(self):
        """(layer, direction index, suffix) in PyTorch's order (layer-major): '_l0',
        '_l0_reverse', '_l1', ..."""
        for k in range(self.num_layers):
            for d, direction in enumerate(self.directions):
                yield k, d, self.suffix(k, direction)

    def param_suffix(self, layer, direction) -> str:
        """The suffix of the parameters layer ``layer`` runs with (a lower layer's when the cell
        ties weights across layers)."""
        return self.suffix(self.cell.param_layer(layer), direction)

    def base_names(self) -> list:
        """Parameter names without the layer suffix: weight_ih, weight_hh, bias_ih, bias_hh, ..."""
        return ["weight_ih", "weight_hh", "bias_ih", "bias_hh",
                *self.cell.extra_params(self.hidden_size)]

    def layer_input_size(self, k: int) -> int:
        return self.input_size if k == 0 else self.output_size * self.num_directions

    def param_shapes(self) -> dict:
        """{name: shape} in PyTorch's order; names and shapes follow torch.nn exactly."""
        G, H, Ho = self.num_gates, self.hidden_size, self.output_size
        shapes = {}
        for k, _, s in self.suffixes():
            if self.cell.param_layer(k) != k:         # tied: runs with a lower layer's weights
                continue
            shapes["weight_ih" + s] = (G * H, self.layer_input_size(k))
            shapes["weight_hh" + s] = (G * H, Ho)
            shapes["bias_ih" + s] = (G * H,)
            shapes["bias_hh" + s] = (G * H,)
            for name, shape in self.cell.extra_params(H).items():
                shapes[name + s] = tuple(shape)
        return shapes

    @property
    def param_names(self) -> list:
        return list(self.param_shapes())

    def num_params(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))

    def state_shapes(self, batch: int) -> tuple:
        """Shapes of the state parts a user passes and gets back: (L*dirs, B, width) each."""
        batch = positive_int("batch", batch, allow_zero=True)
        L = self.num_layers * self.num_directions
        sizes = self.cell.state_sizes(self.hidden_size)[:len(self.cell.state_names)]
        return tuple((L, batch, s) for s in sizes)

    def cell_spec(self) -> str:
        """How a configuration names the cell: its registry name, or module:Class."""
        from .registry import CELLS, cell_type
        name = self.kind
        if name in CELLS and isinstance(self.cell, cell_type(name)):
            return name
        t = type(self.cell)
        return f"{t.__module__}:{t.__qualname__}"

    def config(self) -> dict:
        """A value that rebuilds the model: ``models.build(**model.config())``."""
        cfg = dict(cell=self.cell_spec(), input_size=self.input_size,
                   hidden_size=self.hidden_size, num_layers=self.num_layers,
                   bidirectional=self.bidirectional, direction=self.direction,
                   backend=self.backend, dtype=self.dtype.name,
                   batch_first=self.batch_first)
        if self.proj_size:
            cfg["proj_size"] = self.proj_size
        cfg.update(self.cell.config())
        return cfg

    def replace(self, **changes):
        """The same cell with other model options (num_layers, direction, batch_first, backend,
        dtype): works for a user's cell that no configuration could name."""
        from .. import backend as be
        allowed = {"num_layers", "direction", "batch_first", "backend", "dtype"}
        bad = set(changes) - allowed
        if bad:
            raise OptionError(f"replace() takes {', '.join(sorted(allowed))}, not {sorted(bad)[0]!r}.")
        other = copy.copy(self)
        if "num_layers" in changes:
            other.num_layers = positive_int("num_layers", changes["num_layers"])
        if "direction" in changes:
            other.direction = resolve_direction(changes["direction"], None)
        if "batch_first" in changes:
            other.batch_first = flag("batch_first", changes["batch_first"])
        if "backend" in changes:
            other.backend, other.xp = changes["backend"], be.get_xp(changes["backend"])
        if "dtype" in changes:
            other.dtype = be.resolve_dtype(changes["dtype"])
        return other

    def __repr__(self):
        cfg = self.config()
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k not in ("cell",))
        return f"{type(self).__name__}({args})"

    def describe(self) -> str:
        d = "" if self.direction == "forward" else f", direction={self.direction!r}"
        return (f"{self.kind.upper()}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}" + d
                + (f", proj_size={self.proj_size}" if self.proj_size else "")
                + self.cell.describe() + ")")

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
        loc.update(self.cell.locate(base, tuple(int(i) for i in idx), self.hidden_size))
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

    def _state_names(self, what="state") -> tuple:
        """How errors name the parts of ``state`` (h0, c0) or of ``dstate``."""
        names = self.cell.state_names
        if what == "state":
            return tuple(f"{n}0" for n in names)
        if len(names) == 1:
            return (f"dstate (dL/d{names[0]}_T)",)
        return tuple(f"dstate[{j}] (dL/d{n}_T)" for j, n in enumerate(names))

    def _split_state(self, state, B, xp, dtype, what="state"):
        """state (None, h0, or (h0, c0)) -> tuple of arrays with the right shapes."""
        shapes = self.state_shapes(B)
        names = self._state_names(what)
        if state is None:
            return tuple(xp.zeros(s, dtype) for s in shapes)
        parts = tuple(state) if isinstance(state, (tuple, list)) else (state,)
        if len(parts) != len(shapes):
            want = ("the pair (h0, c0)" if len(shapes) == 2 else
                    "the tuple (" + ", ".join(self._state_names()) + ")" if len(shapes) > 1
                    else f"{self._state_names()[0]} alone")
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

    def _check_lengths(self, lengths, T, B, xp):
        if lengths is None:
            return None
        a = backend.to_host(lengths) if hasattr(lengths, "shape") else lengths
        try:
            a = np.asarray(a)
        except Exception:
            a = np.asarray([], dtype=object)
        if a.dtype.kind not in "iu" or a.shape != (B,):
            raise ShapeError(f"lengths must be {B} integers (one per sequence), got "
                             f"{a.dtype.name if a.dtype.kind != 'O' else type(lengths).__name__} "
                             f"of shape {a.shape}.")
        if a.min() < 1 or a.max() > T:
            raise ShapeError(f"lengths must lie in 1..{T} (the number of time steps), got "
                             f"{int(a.min())}..{int(a.max())}.")
        return backend.asarray(a.astype(np.int64), xp)

    # ----------------------------------------------------------------- forward
    def forward(self, params, x, state=None, *, lengths=None):
        """y, final state and tape. x: (T, B, input_size), or (B, T, input_size) if batch_first.
        lengths: (B,) integers in 1..T; steps t >= lengths[b] are padding (y = 0 there)."""
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
        lengths = self._check_lengths(lengths, T, B, xp)
        state0 = self._split_state(state, B, xp, dtype)
        names = self._state_names()
        for n, a in zip(names, state0):
            self._check_dtype(n, a, ref)
        self._check_finite({**params, "x": x, **dict(zip(names, state0))}, xp)

        # the tape would keep the caller's arrays, and an in-place change of one between forward
        # and backward would change the gradients without a word: it keeps copies instead
        # (one pass over the inputs, ~0.4% of the forward at the bench shape; cheaper than a
        # checksum that sees every change, at forward and again at backward; scripts/bench.py)
        params, x, state0 = snapshot_inputs(params, x, state0)
        with backend.gpu_errors(f"the forward pass of {self.describe()} on x of shape {tuple(x.shape)}"):
            y, final, tape = self.run_forward(params, x, state0, lengths=lengths)
        if self.batch_first:
            y = y.transpose(1, 0, 2)
        return y, (final if len(final) > 1 else final[0]), tape

    def run_forward(self, params, x, state0, lengths=None, fused=True):
        """forward without validation: x time-major, state0 a tuple of (L*dirs, B, .) arrays.

        Built-in cells touch parameters only through ``a @ W.T`` / ``a @ W[rows].T`` and
        broadcasting, so ``params`` may hold the checker's per-replica stand-ins."""
        return runner.stack_forward(self, params, x, state0, lengths=lengths, fused=fused)

    # ----------------------------------------------------------------- backward
    def backward(self, tape, dy, dstate=None, *, truncate=None, clip_norm=None):
        """Gradients of L for every parameter and for x and the initial state, given dy = dL/dy
        and dstate = dL/d(final state). ``truncate=k``: truncated BPTT, no gradient crosses the
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
            truncate = positive_int("truncate", truncate)
        if clip_norm is not None:
            clip_norm = positive_number("clip_norm", clip_norm)
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

        grads, dx, dstate0, tr = runner.stack_backward(self, tape, dy, dfinal, truncate=truncate,
                                                       trace=trace)
        tr.grad_norm = runner.grad_norm(xp, grads)
        if clip_norm is not None and tr.grad_norm > clip_norm:
            scale = clip_norm / tr.grad_norm
            for n in grads:
                grads[n] = grads[n] * scale
            tr.clipped = True
        grads["x"] = dx.transpose(1, 0, 2) if tape.batch_first else dx
        for n, a in zip(self._state_names(), dstate0):
            grads[n] = a
        return grads, tr

    # ----------------------------------------------------------------- second order
    def hvp(self, params, x, v, state=None, *, dy, dstate=None, lengths=None):
        """Hessian-vector product of L = <dy, y> + <dstate, final state>: d/de of backward's
        gradients at (params, x, state) + e v, for a direction ``v`` over any of the parameter
        names and "x", "h0", "c0" (missing ones are zero). Returns a dict with backward's keys:
        (H v)[name] for every parameter and input.

        By complex step through the model's own forward and backward (Squire & Trapp 1998):
        both are holomorphic in the inputs (no abs, max or conj on a path a derivative flows
        through; the clip bounds look at real parts only), so backward at params + i h v has
        imaginary part h (H v) + O(h^3), with no cancellation: h = 1e-20 leaves the real part
        exact and the imaginary one good to round-off. Verified by lc.check_hvp against real
        differences of backward in tests/test_models_hvp.py."""
        xp = backend.array_module(x, *params.values()) if isinstance(params, dict) else self.xp
        ref = self._check_params(params, xp)
        dtype = np.dtype(ref[1])
        if dtype.kind != "f":
            raise DTypeError(f"hvp takes real parameters (it makes its own complex step), got "
                             f"{dtype.name}.")
        names = self._state_names()
        known = [*self.param_names, "x", *names]
        if not isinstance(v, dict) or not v:
            raise ParameterError("v must be a non-empty dict of arrays keyed like params "
                                 "(\"x\", \"h0\", \"c0\" allowed too).")
        unknown = [k for k in v if k not in known]
        if unknown:
            raise ParameterError(f"v has {', '.join(map(str, unknown[:4]))}, which is neither a "
                                 f"parameter of {self.describe()} nor x, {', '.join(names)}.")
        cdt = backend.complex_of(dtype)
        B = x.shape[0 if self.batch_first else 1] if hasattr(x, "shape") and x.ndim == 3 else 0
        state0 = self._split_state(state, B, xp, dtype) if B else ()
        base = {**params, "x": x, **dict(zip(names, state0))}
        h = 1e-20 if dtype == np.float64 else 1e-10      # tolerance.complex_step's steps
        vmax = 0.0
        for k, a in v.items():
            if not hasattr(a, "shape") or tuple(a.shape) != tuple(base[k].shape):
                got = tuple(a.shape) if hasattr(a, "shape") else type(a).__name__
                raise ShapeError(f"v[{k!r}] has shape {got}, but {k} has shape "
                                 f"{tuple(base[k].shape)}.")
            vmax = max(vmax, float(xp.max(xp.abs(backend.asarray(a, xp)))) if a.size else 0.0)
        h = h / max(vmax, 1.0)
        point = {k: a.astype(cdt) + (h * 1j) * backend.asarray(v[k], xp, dtype) if k in v
                 else a.astype(cdt) for k, a in base.items()}
        st = tuple(point[n] for n in names)
        _, _, tape = self.forward({n: point[n] for n in self.param_names}, point["x"],
                                  (st if len(st) > 1 else st[0]) if B else None, lengths=lengths)
        dst = None
        if dstate is not None:
            parts = dstate if isinstance(dstate, (tuple, list)) else (dstate,)
            dst = tuple(backend.asarray(a, xp).astype(cdt) for a in parts)
            dst = dst if len(dst) > 1 else dst[0]
        dyc = backend.asarray(dy, xp).astype(cdt) if hasattr(dy, "shape") else dy
        grads = self.backward(tape, dyc, dst)
        return {k: (g.imag / h).astype(dtype) for k, g in grads.items()}


RecurrentModel = Recurrent    # the name earlier code imports
