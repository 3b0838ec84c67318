"""What the layout adapters share: gate-block permutations, layer/direction prefixes, building
the model a set of foreign tensors describes, and checking those tensors against it.

Every adapter follows one pattern. ``load`` reads just enough "anchor" tensors to learn the
structure (input size, hidden size, layers, directions), builds the model, then checks every
tensor's name and shape against what ``dump`` would write for that model, so that a wrong shape
or a missing name is reported the same way in every layout.
"""
from __future__ import annotations

import re

import numpy as np

from .. import backend
from ..errors import ConversionError, DTypeError, NonFiniteError, OptionError, ParameterError, ShapeError
from ..models import build

_PREFIX = re.compile(r"^(?:layer(\d+)/)?(?:(forward|backward)/)?(.+)$")


# ------------------------------------------------------------------ values
def host_array(a, name, layout: str):
    """A layout tensor as a host NumPy array (array-likes such as nested lists convert); one
    that is not a real floating-point array is a DTypeError naming it."""
    try:
        a = np.asarray(backend.to_host(a))
    except (ValueError, TypeError):   # ragged nested lists
        raise DTypeError(f"{layout} tensor {name!r} is a {type(a).__name__} that is not a "
                         f"rectangular array of numbers.") from None
    if a.dtype.kind != "f":
        raise DTypeError(f"{layout} tensor {name!r} has dtype {a.dtype.name}; weights must be "
                         f"floating point.")
    return a


def option_number(name: str, v, kind=float, layout: str = "layout"):
    """A numeric load option (ONNX attributes arrive as int/float or their strings)."""
    try:
        out = kind(v)
        if kind is int and isinstance(v, (float, np.floating)) and v != out:   # 2.5 is no 2
            raise ValueError(v)
    except (TypeError, ValueError):
        raise OptionError(f"{layout} option {name} must be a{'n integer' if kind is int else ' number'}, "
                          f"got {v!r}.") from None
    if not np.isfinite(out):
        raise OptionError(f"{layout} option {name} must be finite, got {v!r}.")
    return out


def option_flag(name: str, v, layout: str = "layout") -> bool:
    """A 0/1 attribute (ONNX input_forget, layout, linear_before_reset): 0 or 1 as an int,
    a whole float, a bool or its string; anything else (2, 0.5, 'yes') is refused, not read as
    truthy."""
    try:
        out = float(v)
    except (TypeError, ValueError):
        out = float("nan")
    if out not in (0.0, 1.0):
        raise ConversionError(f"{layout} attribute {name} must be 0 or 1, got {v!r}.")
    return out == 1.0


# ------------------------------------------------------------------ gate blocks
def reorder(a, src: str, dst: str, axis: int = 0):
    """Stacked gate blocks of ``a`` along ``axis`` from order ``src`` to order ``dst``
    (strings of gate letters, e.g. 'ifgo' -> 'iofg'). Pure copy: bit-exact."""
    blocks = np.split(np.asarray(a), len(src), axis=axis)
    return np.concatenate([blocks[src.index(g)] for g in dst], axis=axis)


def split_gates(a, order: str, axis: int = 0) -> dict:
    """{gate letter: block} of a stacked tensor."""
    return dict(zip(order, np.split(np.asarray(a), len(order), axis=axis)))


def fuse_bias(b_ih, b_hh, what: str, exact: bool):
    """b_ih + b_hh for layouts with one bias. The sum rounds; with ``exact`` a rounding sum is
    refused (TwoSum: the error term of a + b is zero exactly when the sum is exact)."""
    s = b_ih + b_hh
    if exact:
        bb = s - b_ih
        err = (b_ih - (s - bb)) + (b_hh - bb)
        if np.any(err != 0):
            raise ConversionError(f"{what} holds one bias, and bias_ih + bias_hh is not exactly "
                                  f"representable in {s.dtype.name}; fold bias_hh into bias_ih "
                                  f"first or dump with exact=False.")
    return s


# ------------------------------------------------------------------ names
def prefix(model, k: int, d: int) -> str:
    """'layer{k}/' for stacks, then 'forward/' or 'backward/' for bidirectional models."""
    p = f"layer{k}/" if model.num_layers > 1 else ""
    if model.bidirectional:
        p += ("forward/", "backward/")[d]
    return p


def structure(tensors: dict, layout: str):
    """(num_layers, bidirectional) from 'layer{k}/' and 'forward/'/'backward/' prefixes."""
    layers, dirs = set(), set()
    for name in tensors:
        m = _PREFIX.match(str(name))
        layers.add(int(m.group(1)) if m.group(1) else 0)
        dirs.add(m.group(2))
    L = max(layers) + 1
    if sorted(layers) != list(range(L)):
        raise ParameterError(f"{layout} tensors name layers {sorted(layers)}, which are not "
                             f"numbered 0 to {L - 1} without gaps.")
    bidir = bool(dirs - {None})
    if bidir and None in dirs:
        raise ParameterError(f"{layout} tensors mix names with and without a forward/ or "
                             f"backward/ prefix.")
    return L, bidir


def anchor(tensors: dict, name: str, ndim: int, layout: str):
    """A tensor that tells the structure; missing or wrong rank is one clear sentence."""
    if name not in tensors:
        have = ", ".join(sorted(map(str, tensors))[:8]) or "nothing"
        raise ParameterError(f"{layout} tensors have no {name!r} (found: {have}).")
    a = host_array(tensors[name], name, layout)
    if a.ndim != ndim:
        raise ShapeError(f"{layout} tensor {name!r} has rank {a.ndim} (shape {a.shape}), "
                         f"expected rank {ndim}.")
    return a


# ------------------------------------------------------------------ building and checking
def tensor_dtype(tensors: dict, dtype=None):
    """The model dtype: the one asked for, else the common type of the floating-point tensors
    (others are refused by name in check_tensors, or ignored as extra names)."""
    if dtype is not None:
        return backend.resolve_dtype(dtype)
    kinds = set()
    for a in tensors.values():
        try:
            kinds.add(np.asarray(backend.to_host(a)).dtype)
        except (ValueError, TypeError):
            pass
    floats = [k for k in kinds if k.kind == "f"]
    if not floats:
        raise DTypeError(f"layout tensors must be floating point, got "
                         f"{', '.join(sorted(k.name for k in kinds)) or 'nothing'}.")
    return backend.resolve_dtype(np.result_type(*floats))


def make_model(cell, input_size, hidden_size, **options):
    return build(cell, int(input_size), int(hidden_size), **options)


def check_tensors(tensors: dict, expected: dict, layout: str, model, strict: bool = True):
    """Names and shapes of ``tensors`` against ``expected`` ({name: array} as dump writes)."""
    missing = [n for n in expected if n not in tensors]
    extra = [n for n in tensors if n not in expected]
    if missing:
        raise ParameterError(f"{layout} tensors for {model.describe()} lack "
                             f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}.")
    if extra and strict:
        raise ParameterError(f"{layout} tensors for {model.describe()} have unexpected names "
                             f"{', '.join(map(str, extra[:6]))}{' ...' if len(extra) > 6 else ''}"
                             f" (pass strict=False to ignore them).")
    out = {}
    for n, ref in expected.items():
        a = host_array(tensors[n], n, layout)
        if a.shape != ref.shape:
            raise ShapeError(f"{layout} tensor {n!r} has shape {a.shape}, expected {ref.shape} "
                             f"for {model.describe()}.")
        if not np.isfinite(a).all():
            bad = "NaN" if np.isnan(a).any() else "Inf"
            raise NonFiniteError(f"{layout} tensor {n!r} contains {bad}; weights must be finite.")
        out[n] = a
    return out


def zeros_params(model) -> dict:
    return {n: np.zeros(s, model.dtype) for n, s in model.param_shapes().items()}


def finish(model, params: dict):
    """Params in PyTorch order, the model's dtype, on the model's backend."""
    return {n: backend.asarray(params[n], model.xp, dtype=model.dtype) for n in model.param_names}


def host_params(model, params: dict) -> dict:
    """Validated params as host arrays (dump accepts NumPy or CuPy)."""
    xp = backend.array_module(*params.values()) if isinstance(params, dict) else np
    model._check_params(params, xp)
    return {n: np.asarray(backend.to_host(params[n])) for n in model.param_names}


def layer_views(model, params):
    """(k, d, canonical suffix, {base name: array}) for every layer and direction."""
    for k, d, s in model.suffixes():
        yield k, d, s, {b: params[b + s] for b in model.base_names()}


def cell_of(model) -> str:
    """The registry name of the model's cell ('lstm'), or 'module:Class' for a user's cell: what
    a layout's CELLS (the cells its format holds) is compared with. Not ``model.kind``, which a
    user's cell may spell like a built-in one."""
    return model.cell_spec()


def lstm_plain(model, layout: str, allow=("peephole",), proj=False, cell_clip=False, clip=False,
               activations=False):
    """Refuse LSTM features a layout cannot express (ConversionError, one sentence)."""
    if cell_of(model) != "lstm":
        return
    f = model.flags
    feats = []
    if f.peephole and "peephole" not in allow:
        feats.append("peepholes")
    if f.coupled and "cifg" not in allow:
        feats.append("a coupled input-forget gate (cifg)")
    if not (f.input_gate and f.forget_gate and f.output_gate):
        feats.append("a removed gate")
    if f.gate_recurrence:
        feats.append("gate recurrence (fgr)")
    if model.proj_size and not proj:
        feats.append("a projection (proj_size)")
    if f.cell_clip is not None and not cell_clip:
        feats.append("cell_clip")
    if f.clip is not None and not clip:
        feats.append("clip")
    if not activations and (f.act_f, f.act_g, f.act_h) != ("sigmoid", "tanh", "tanh"):
        feats.append(f"activations ({f.act_f}, {f.act_g}, {f.act_h})")
    if feats:
        raise ConversionError(f"the {layout} layout cannot express an LSTM with "
                              f"{' and '.join(feats)}.")
