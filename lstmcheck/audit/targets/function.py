"""A Python callable ``target(params, x, state) -> (y, final_state)`` with tensors in a named
layout, and an optional ``vjp``."""
from __future__ import annotations

import inspect

import numpy as np

from ... import backend
from ...errors import OptionError, ParameterError, ShapeError
from ..oracle import _dump_options, _layouts, dump_layout, exposing_params, float64_model, load_layout
from .base import Target, _state_tuple, call_target


def _callable_target(fn, layout, cell, options, model, params, dtype, vjp, seed):
    if layout is None:
        raise OptionError("auditing a Python callable needs layout= (the layout its weights are in, "
                          "e.g. 'torch', 'keras', 'onnx', 'tf', 'cudnn').")
    options = dict(options or {})
    if model is not None and params is None:
        params = exposing_params(float64_model(model), seed)
    if params is None:
        raise OptionError("auditing a Python callable needs model= (the configuration to test) "
                          "or params= (its weights in the named layout).")
    if not isinstance(params, dict):
        raise ParameterError(f"params must be a dict of arrays, got {type(params).__name__}.")
    canonical = model is not None and set(params) == set(model.param_names)
    if canonical:
        m64 = float64_model(model)
        p64 = {n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()}
        m64._check_params(p64, np)
        dump_opts = _dump_options(layout, options)
        tensors = dump_layout(layout, m64, p64, **dump_opts)
        # what the tensor names cannot tell (ONNX attributes, TF forget_bias, ...), for loading
        options = {**_layouts().options(layout, m64, **dump_opts), **options}
        if dtype is None:
            dtype = model.dtype
    else:
        if cell is None and model is not None:
            cell = model.kind
        if cell is None:
            raise OptionError("params in a layout need cell= ('lstm', 'gru' or 'rnn') to be read.")
        tensors = {n: np.asarray(backend.to_host(a)) for n, a in params.items()}
        if dtype is None:
            dtype = np.result_type(*[a.dtype for a in tensors.values()])
        m64, p64 = load_layout(layout, tensors, cell, options)
    dtype = backend.resolve_dtype(dtype)
    tensors = {n: np.asarray(a, dtype) for n, a in tensors.items()}
    user_vjp = vjp if vjp is not None else getattr(fn, "vjp", None)
    if user_vjp is not None and not callable(user_vjp):
        raise OptionError(f"vjp must be a callable, got {type(user_vjp).__name__}.")
    one = (lambda s: s[0] if len(s) == 1 else tuple(s))
    vjp_t = None if user_vjp is None else (
        lambda t, x, s, dy, ds: {n: np.asarray(backend.to_host(g)) for n, g in dict(
            call_target("the audited vjp", user_vjp, t, x, one(s), dy, one(ds))).items()})
    if user_vjp is not None and _takes_lengths(user_vjp):
        vjp_t = (lambda t, x, s, dy, ds, lengths=None: {n: np.asarray(backend.to_host(g)) for n, g in dict(
            call_target("the audited vjp", user_vjp, t, x, one(s), dy, one(ds),
                        **({} if lengths is None else {"lengths": lengths}))).items()})
    elif vjp_t is not None:   # a vjp without lengths is called without them
        plain = vjp_t
        vjp_t = (lambda t, x, s, dy, ds, lengths=None: plain(t, x, s, dy, ds))
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return Target("callable", f"callable {name}", layout, m64.kind, options, tensors, dtype,
                  forward=lambda t, x, s, lengths=None: _call_forward(fn, t, x, s, lengths), vjp=vjp_t,
                  model=m64, params=_requantize(p64, tensors, layout, m64.kind, options, dtype),
                  takes_lengths=_takes_lengths(fn))


def _takes_lengths(fn) -> bool:
    """Whether ``fn`` takes a ``lengths`` keyword (by name; **kwargs does not count)."""
    try:
        p = inspect.signature(fn).parameters.get("lengths")
    except (TypeError, ValueError):
        return False
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def _requantize(p64, tensors, layout, cell, options, dtype):
    """The oracle's params from the tensors the target really sees (rounded to its dtype)."""
    if np.dtype(dtype) == np.float64:
        return p64
    return load_layout(layout, tensors, cell, options)[1]


def _call_forward(fn, tensors, x, state, lengths=None):
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    out = call_target(f"the audited callable {name}", fn, tensors, x,
                      state[0] if len(state) == 1 else state,
                      **({} if lengths is None else {"lengths": lengths}))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ShapeError("the audited callable must return (y, final_state), got "
                         f"{type(out).__name__}{'' if not isinstance(out, (tuple, list)) else f' of length {len(out)}'}.")
    y, fin = out
    parts = _state_tuple(fin, len(state))
    if len(parts) != len(state) or any(a is None for a in parts):
        want = "the pair (h_n, c_n)" if len(state) == 2 else "h_n alone"
        got = f"{len(parts)} array(s)" if all(a is not None for a in parts) else "None for a part"
        raise ShapeError(f"the audited callable {name} returned a final state of {got}; "
                         f"its final_state must be {want}.")
    return np.asarray(backend.to_host(y)), tuple(np.asarray(backend.to_host(a)) for a in parts)
