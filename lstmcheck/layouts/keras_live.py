"""Live Keras 3 layers (any backend) and their masks, read into the oracle.

    model, params = from_keras(layer)                       # LSTM, GRU, SimpleRNN, Bidirectional
    model, params = from_keras(layer.get_weights(), config=layer.get_config() | {"class_name": ...})
    model, params = from_keras("model.weights.h5", config=...)   # Keras 3 weight paths
    lengths = lengths_from_mask(mask)                        # (B, T) post-padding mask -> (B,)

What the layer's config says becomes the model: ``go_backwards=True`` is direction="reverse"
(Keras returns that direction's outputs in reversed order, the oracle in input order; the audit
target flips them back), ``Bidirectional(merge_mode="concat")`` is direction="bidirectional",
``activation``/``recurrent_activation`` are read with Keras 3's own definitions (keras.py),
GRU ``reset_after`` both ways, ``use_bias=False`` as zero biases. ``return_sequences`` and
``return_state`` only choose what the layer returns; they do not change the model.
"""
from __future__ import annotations

import numpy as np

from . import keras as keras_layout
from ..errors import ConversionError, OptionError, ParameterError, ShapeError

_CELLS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}
_NAMES = ("kernel", "recurrent_kernel", "bias")


def _class_name(layer) -> str | None:
    for cls in type(layer).__mro__:
        if cls.__module__.startswith("keras") and cls.__name__ in (*_CELLS, "Bidirectional"):
            return cls.__name__
    return None


def _split_config(config):
    """{'class_name': C, 'config': {...}} or {'class_name': C, ...} -> (C, {...})."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise OptionError("config must be a Keras layer config with its 'class_name' (e.g. "
                          "{'class_name': 'LSTM', **layer.get_config()}).")
    inner = config.get("config", {k: v for k, v in config.items() if k != "class_name"})
    name = str(config["class_name"]).rsplit(">", 1)[-1]
    if name not in (*_CELLS, "Bidirectional"):
        raise OptionError(f"from_keras reads LSTM, GRU, SimpleRNN and Bidirectional layers, not "
                          f"{name}.")
    return name, dict(inner)


def _act_name(value, default):
    if value is None:
        return default
    if isinstance(value, dict):      # a serialized activation: {'class_name': 'function', 'config': 'tanh'}
        value = value.get("config", value.get("class_name"))
    return getattr(value, "__name__", value)


def _direction_options(name, cfg, weights):
    """(cell class name, inner config, {prefix: [arrays]}, direction) of a layer config."""
    if name != "Bidirectional":
        return name, cfg, {"": list(weights)}, "reverse" if cfg.get("go_backwards") else "forward"
    inner_name, inner = _split_config(cfg.get("layer", {}))
    back = cfg.get("backward_layer")
    back_name, back_cfg = _split_config(back) if back else (inner_name, {**inner, "go_backwards":
                                                                         not inner.get("go_backwards")})
    if (cfg.get("merge_mode", "concat") or "none") != "concat":
        raise ConversionError(f"Bidirectional(merge_mode={cfg.get('merge_mode')!r}) combines its "
                              f"directions in a way the oracle does not; only 'concat' converts.")
    if inner.get("go_backwards") or not back_cfg.get("go_backwards") or back_name != inner_name:
        raise ConversionError("a Bidirectional layer converts when its forward layer runs "
                              "forwards and its backward layer is the same kind of layer running "
                              "backwards.")
    for key in ("units", "activation", "recurrent_activation", "use_bias", "reset_after"):
        if inner.get(key) != back_cfg.get(key):
            raise ConversionError(f"the Bidirectional layer's two directions differ in {key} "
                                  f"({inner.get(key)!r} and {back_cfg.get(key)!r}); the oracle "
                                  f"runs one configuration in both.")
    n = len(weights) // 2
    return inner_name, inner, {"forward/": list(weights[:n]), "backward/": list(weights[n:])}, \
        "bidirectional"


def _tensors(parts, use_bias, cls):
    """Keras layout tensors from each direction's get_weights() list."""
    want = _NAMES if use_bias else _NAMES[:2]
    out = {}
    for prefix, arrays in parts.items():
        if len(arrays) != len(want):
            raise ParameterError(f"a Keras {cls}{' (' + prefix[:-1] + ')' if prefix else ''} with "
                                 f"use_bias={use_bias} has {len(want)} weights "
                                 f"({', '.join(want)}), got {len(arrays)}.")
        for n, a in zip(want, arrays):
            out[prefix + n] = np.asarray(a)
    return out


def from_keras(layer, *, config=None, dtype=None, backend="numpy"):
    """(model, params) of a Keras 3 LSTM / GRU / SimpleRNN / Bidirectional layer.

    ``layer``: a built Keras 3 layer object (any backend), or its ``get_weights()`` list with
    ``config=`` (``{"class_name": "LSTM", **layer.get_config()}`` or a serialized layer), or the
    path of a Keras 3 ``.weights.h5`` file holding that one layer, with ``config=``."""
    cell, tensors, options = read(layer, config=config)
    return keras_layout.load(tensors, cell, dtype=dtype, backend=backend, **options)


def read(layer, *, config=None):
    """(cell, keras layout tensors, keras layout load options) of what from_keras takes."""
    if isinstance(layer, (list, tuple)):
        if config is None:
            raise OptionError("a get_weights() list needs config= (the layer's config with its "
                              "'class_name'), since the weights alone do not say which layer "
                              "they are.")
        name, cfg = _split_config(config)
        weights = list(layer)
    elif isinstance(layer, str) or hasattr(layer, "__fspath__"):
        if config is None:
            raise OptionError("a .weights.h5 file needs config= (the layer's config with its "
                              "'class_name').")
        name, cfg = _split_config(config)
        weights = _read_weights_h5(layer)
    else:
        name = _class_name(layer)
        if name is None:
            raise OptionError(f"from_keras reads Keras 3 LSTM, GRU, SimpleRNN and Bidirectional "
                              f"layers, not {type(layer).__name__}.")
        if not getattr(layer, "built", True) or not layer.get_weights():
            raise ParameterError(f"the Keras {name} layer has no weights yet; build it (call it "
                                 f"once on an input) before reading it.")
        cfg = layer.get_config()
        if name == "Bidirectional":   # the live sub-layers say what the config may leave out
            cfg = {**cfg, "layer": {"class_name": _class_name(layer.forward_layer),
                                    "config": layer.forward_layer.get_config()},
                   "backward_layer": {"class_name": _class_name(layer.backward_layer),
                                      "config": layer.backward_layer.get_config()}}
        weights = [np.asarray(w) for w in layer.get_weights()]
    cls, inner, parts, direction = _direction_options(name, cfg, weights)
    cell = _CELLS[cls]
    use_bias = bool(inner.get("use_bias", True))
    tensors = _tensors(parts, use_bias, cls)
    options = {"activation": _act_name(inner.get("activation"), "tanh")}
    if cell != "rnn":
        options["recurrent_activation"] = _act_name(inner.get("recurrent_activation"), "sigmoid")
    if cell == "gru":
        options["reset_after"] = bool(inner.get("reset_after", True))
    if direction == "reverse":
        options["direction"] = "reverse"
    units = inner.get("units")
    rk = tensors[("forward/" if direction == "bidirectional" else "") + "recurrent_kernel"]
    if units is not None and np.shape(rk)[0] != int(units):
        raise ShapeError(f"the Keras {cls} config says units={units}, but its recurrent_kernel "
                         f"has shape {np.shape(rk)}.")
    return cell, tensors, options


def _read_weights_h5(path):
    """The arrays of a Keras 3 .weights.h5 file holding one layer, in get_weights() order
    (Keras 3 stores each layer's variables under .../vars/0, 1, ... in creation order)."""
    import os
    from ..errors import FileFormatError, require
    h5py = require("h5py", "h5py", "reading a Keras .weights.h5 file")
    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"{path}: not a readable Keras .weights.h5 file ({exc}).") from None
    groups = []
    with f:
        def visit(name, obj):
            if isinstance(obj, h5py.Group) and name.endswith("vars") and len(obj):
                groups.append(name)
        f.visititems(visit)
        out = []
        for g in groups:     # HDF5 lists groups in name order: forward_* before backward_* is
            # not guaranteed, so keep the order the layer wrote them in (forward first)
            out.append((0 if "backward" not in g else 1, g,
                        [np.asarray(f[g][k]) for k in sorted(f[g], key=int)]))
    if not out:
        raise FileFormatError(f"{path}: holds no Keras layer variables (no '.../vars' groups).")
    return [a for _, _, arrays in sorted(out, key=lambda t: t[:2]) for a in arrays]


def lengths_from_mask(mask):
    """(B,) int64 sequence lengths of a Keras (B, T) post-padding mask (True on the first
    lengths[b] steps, False after); any other mask is refused in one sentence."""
    m = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask)   # torch, jax, numpy
    if m.ndim != 2:
        raise ShapeError(f"a Keras mask is (batch, time), got shape {m.shape}.")
    m = m.astype(bool)
    lengths = m.sum(axis=1).astype(np.int64)
    prefix = np.arange(m.shape[1])[None, :] < lengths[:, None]
    bad = np.nonzero((m != prefix).any(axis=1) | (lengths == 0))[0]
    if bad.size:
        b = int(bad[0])
        raise OptionError(f"mask row {b} ({m[b].astype(int).tolist()}) is not post-padding "
                          f"(True for steps 0..n-1 with n >= 1, then False), which is the only "
                          f"mask that sequence lengths express.")
    return lengths
