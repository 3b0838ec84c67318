"""Layout adapters: the oracle's parameters in other frameworks' names, shapes and gate orders.

    model, params = load(layout, tensors, cell, **options)
    tensors = dump(layout, model, params, **options)
    load(layout, dump(layout, model, params), model.kind, **options(layout, model))  # == (model, params)

Layouts (one module each):

- "torch": state_dicts (canonical; see layouts/torch.py), and :func:`from_torch` for live modules.
- "keras": ``kernel`` (in, G*U), ``recurrent_kernel`` (U, G*U), ``bias``; LSTM gates i,f,c,o;
  GRU z,r,h with ``reset_after`` (bias (2, 3U)) or not (bias (3U,)); SimpleRNN.
- "onnx": ``W`` [dirs, G*H, in], ``R``, ``B`` [dirs, 2*G*H], ``P`` [dirs, 3H]; LSTM i,o,f,c;
  GRU z,r,h; plus the node attributes as options (direction, clip, input_forget, activations...).
- "tf": LSTMBlockCell / BasicLSTMCell / LSTMCell: fused [x, h] ``kernel``, gates i,c,f,o,
  ``forget_bias`` added to the forget gate at run time, ``cell_clip``, ``w_*_diag`` peepholes.
- "cudnn": per-gate linear-layer matrices and biases, cuDNN's linLayerID numbering.

Live objects: :func:`from_torch` (torch.nn modules), :func:`from_keras` (Keras 3 layers, their
get_weights() lists or .weights.h5 files; keras_live.py), :func:`from_flax` (flax.linen cells;
flax_live.py), and :func:`lengths_from_mask` for Keras masks.

Conversions are pure copies, transposes and gate permutations, so they are bit-exact; where a
layout holds one bias and the oracle two, dump writes their sum (``exact=True`` refuses a sum
that rounds). A model the layout cannot express raises ConversionError.

Tensors with several layers or directions carry a 'layer{k}/' and a 'forward/' or 'backward/'
prefix (ONNX stacks its directions in axis 0 instead; torch keeps its own suffixes).
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping

from . import _common, cudnn, keras, onnx, tf
from . import torch as torch_layout
from ..errors import OptionError, ParameterError

_CELL_OPTIONS = {"lstm": {"variant", "proj_size", "cell_clip", "input_forget"},
                 "rnn": {"nonlinearity"}}
LAYOUTS = {"torch": torch_layout, "keras": keras, "onnx": onnx, "tf": tf, "cudnn": cudnn}
# what the tensors' names and shapes determine: an option can only restate it where the
# layout's own load takes it (ONNX's hidden_size attribute)
_STRUCTURE = ("input_size", "hidden_size", "num_layers", "bidirectional", "proj_size")


def _module(layout):
    if not isinstance(layout, str) or layout.lower() not in LAYOUTS:
        raise OptionError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
    return LAYOUTS[layout.lower()]


def _model(model, layout):
    from ..models import RecurrentModel
    if not isinstance(model, RecurrentModel):
        raise OptionError(f"the {layout} layout needs an lstmcheck model (lc.Recurrent), got "
                          f"{type(model).__name__}.")
    return model


def _known_options(fn, options, what):
    """Refuse options ``fn`` does not take, naming them (not Python's TypeError)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in options if k not in params or params[k].kind is not params[k].KEYWORD_ONLY]
    if unknown:
        allowed = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
        raise OptionError(f"{what} has no option {unknown[0]!r}; "
                          f"{'its options are ' + ', '.join(allowed) if allowed else 'it takes none'}.")


def _tensors(tensors):
    if not isinstance(tensors, Mapping):
        raise ParameterError(f"tensors must be a dict of arrays, got {type(tensors).__name__}.")
    return dict(tensors)


def load(layout: str, tensors, cell: str | None = None, /, **options):
    """(model, params) from tensors in ``layout``. ``cell`` ('lstm', 'gru', 'rnn') is guessed from
    the shapes when None. Options: the layout's own (see its module) and the model's constructor
    options (variant, nonlinearity, dtype, backend, ...); ``strict=False`` ignores unknown names."""
    mod = _module(layout)
    if cell is None:  # options only one cell takes settle it (a 3-gate LSTM looks like a GRU)
        cell = next((c for c, keys in _CELL_OPTIONS.items() if keys & set(options)), None)
    if cell is not None and (not isinstance(cell, str) or cell.lower() not in mod.CELLS):
        raise OptionError(f"the {layout} layout holds {', '.join(mod.CELLS)} cells, not {cell!r}.")
    tensors = _tensors(tensors)
    if not tensors:
        raise ParameterError(f"no {layout} tensors were given.")
    own = inspect.signature(mod.load).parameters
    clash = [k for k in options if k in _STRUCTURE and k not in own]
    if clash:
        raise OptionError(f"the {layout} tensors determine {clash[0]}; it cannot be given as an "
                          f"option.")
    return mod.load(tensors, cell, **options)


def dump(layout: str, model, params, /, **options) -> dict:
    """Host NumPy arrays in ``layout`` for ``model`` and its canonical ``params``."""
    mod = _module(layout)
    if _common.cell_of(_model(model, layout)) not in mod.CELLS:
        raise OptionError(f"the {layout} layout holds {', '.join(mod.CELLS)} cells, "
                          f"not {_common.cell_of(model)}.")
    _known_options(mod.dump, options, f"dump for the {layout} layout")
    return mod.dump(model, params, **options)


def options(layout: str, model, /, **dump_options) -> dict:
    """The ``load`` options that rebuild ``model`` from ``dump(layout, model, params,
    **dump_options)``: what the tensor names and shapes cannot tell (ONNX attributes, Keras
    activations, TF forget_bias, nonlinearity, ...)."""
    mod = _module(layout)
    _known_options(mod.options, dump_options, f"options for the {layout} layout")
    if _common.cell_of(_model(model, layout)) not in mod.CELLS:
        raise OptionError(f"the {layout} layout holds {', '.join(mod.CELLS)} cells, "
                          f"not {_common.cell_of(model)}.")
    return mod.options(model, **dump_options)


def detect(tensors) -> str:
    """The layout tensor names point to (for files that do not say)."""
    names = [str(n).rsplit("/", 1)[-1] for n in _tensors(tensors)]
    full = [str(n) for n in tensors]
    if any(n.endswith(("weight_ih_l0", "weight_ih")) for n in full):
        return "torch"
    if "recurrent_kernel" in names:
        return "keras"
    if {"W", "R"} <= set(names):
        return "onnx"
    if "kernel" in names:
        return "tf"
    if "weight" in names and any(n.startswith("lin") for n in
                                 (str(f).rsplit("/", 2)[-2] for f in full if "/" in str(f))):
        return "cudnn"
    raise ParameterError(f"cannot tell the layout of tensors named "
                         f"{', '.join(sorted(full)[:6])}; pass layout= one of {', '.join(LAYOUTS)}.")


def from_torch(module):
    """(model, params) of a live torch.nn.RNN / LSTM / GRU or *Cell module (torch layout)."""
    return torch_layout.from_torch(module)


def from_keras(layer, **options):
    """(model, params) of a Keras 3 LSTM / GRU / SimpleRNN / Bidirectional layer, any backend
    (also its get_weights() list or a .weights.h5 path with config=); see keras_live."""
    from .keras_live import from_keras as read
    return read(layer, **options)


def from_flax(module, variables, **options):
    """(model, params) of a flax.linen LSTMCell / OptimizedLSTMCell / GRUCell / SimpleCell (or
    nn.RNN around one) and its variables; see flax_live."""
    from .flax_live import from_flax as read
    return read(module, variables, **options)


def lengths_from_mask(mask):
    """(B,) sequence lengths of a Keras (B, T) post-padding mask (others refused)."""
    from .keras_live import lengths_from_mask as read
    return read(mask)


__all__ = ["LAYOUTS", "load", "dump", "options", "detect", "from_torch", "from_keras",
           "from_flax", "lengths_from_mask"]
