"""Target adapters: one module per kind of foreign implementation, and :func:`make_target`,
which picks the adapter for what ``lc.audit`` was given."""
from __future__ import annotations

import os

from ...errors import FileFormatError, OptionError
from .base import TARGET_KINDS, Target, TargetError, call_target
from .function import _callable_target
from .flax import _flax_target, is_flax_pair
from .keras import _keras_target, is_keras_layer
from .npz import _npz_target, read_dump
from .onnx import _onnx_target
from .torch import _torch_target


def make_target(target, layout, cell, options, model, params, dtype, vjp, seed) -> Target:
    if isinstance(target, (str, os.PathLike)):
        ext = os.path.splitext(os.fspath(target))[1].lower()
        if ext == ".npz":
            return _npz_target(target, layout, cell, options)
        if ext == ".onnx":
            if not os.path.exists(target):
                raise FileFormatError(f"{os.fspath(target)}: no such file.")
            return _onnx_target(target, options)
        raise FileFormatError(f"cannot audit {os.fspath(target)!r}: a file target must be an .npz "
                              f"dump or an .onnx model.")
    if is_flax_pair(target):                      # (flax module, variables)
        return _flax_target(target)
    mod = type(target).__module__ or ""
    if mod.startswith("keras") and is_keras_layer(target):   # before torch: on the torch
        return _keras_target(target)                        # backend a layer is an nn.Module
    if mod.startswith("torch.nn") or _is_torch_module(target):
        return _torch_target(target)
    if mod.startswith("onnx") and hasattr(target, "graph"):
        return _onnx_target(target, options)
    if callable(target):
        return _callable_target(target, layout, cell, options, model, params, dtype, vjp, seed)
    raise OptionError(f"cannot audit a {type(target).__name__}: pass a callable with layout=, a "
                      f"torch.nn RNN/LSTM/GRU module, or the path of an .npz dump or .onnx model.")


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)
