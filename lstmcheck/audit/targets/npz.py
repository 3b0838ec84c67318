"""An ``.npz`` dump written by any language (see :mod:`lstmcheck.audit` for its format)."""
from __future__ import annotations

import json
import os

import numpy as np

from ... import backend
from ...errors import FileFormatError, LstmcheckError, OptionError
from ..oracle import load_layout
from .base import Target


META_FIELDS = (("layout", str, "a layout name such as \"torch\""),
               ("cell", str, "a cell name such as \"lstm\""),
               ("options", dict, "a JSON object of the layout's options"),
               ("config", dict, "a JSON object"),
               ("time_reversed", bool, "true or false"))


def _read_meta(z, path):
    if "meta" not in z.files:
        return {}
    raw = z["meta"]
    text = raw.tobytes().decode("utf-8") if raw.dtype == np.uint8 else str(raw[()] if raw.ndim == 0 else raw[0])
    try:
        meta = json.loads(text)
    except ValueError:
        raise FileFormatError(f"{path}: 'meta' is not JSON text.") from None
    if not isinstance(meta, dict):
        raise FileFormatError(f"{path}: 'meta' must be a JSON object such as "
                              f'{{"layout": "torch", "cell": "lstm"}}.')
    # each field of its own type: options as a list or a cell as a number would otherwise
    # fail deep inside the layouts with a TypeError
    for key, types, what in META_FIELDS:
        if meta.get(key) is not None and not isinstance(meta[key], types):
            raise FileFormatError(f"{path}: meta {key!r} must be {what}, got "
                                  f"{type(meta[key]).__name__} {meta[key]!r}."[:400])
    return meta


def read_dump(path) -> dict:
    """The arrays of an audit dump (see the module docstring), checked for the required keys."""
    import zipfile
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileFormatError(f"{path}: no such file.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
            meta = _read_meta(z, path)
    except FileFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise FileFormatError(f"{path} is not a readable .npz archive ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'}).") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if not any(k.startswith("param/") for k in arrays):
        missing.insert(0, "param/<name> weights")
    if missing:
        raise FileFormatError(f"{path} lacks {', '.join(missing)} (see lstmcheck.audit for the "
                              f"dump format).")
    if any(k.startswith("grad/") for k in arrays) and "dy" not in arrays:
        raise FileFormatError(f"{path} holds gradients but not the dy they were computed for.")
    return {"meta": meta, **arrays}


def _npz_target(path, layout, cell, options):
    d = read_dump(path)
    meta = d.pop("meta")
    name = os.fspath(path)
    for key, given in (("cell", cell), ("layout", layout)):   # the dump says what it holds
        if given and meta.get(key) and str(given).lower() != str(meta[key]).lower():
            raise OptionError(f"{name} records {key} {meta[key]!r}, but {key} {given!r} was "
                              f"asked for; leave {key} out for a dump.")
    layout = layout or meta.get("layout", "torch")
    cell = cell or meta.get("cell")
    options = {**dict(meta.get("options") or {}), **dict(options or {})}
    tensors = {k[len("param/"):]: v for k, v in d.items() if k.startswith("param/")}
    dtype = backend.resolve_dtype(d["y"].dtype)
    try:
        model, params = load_layout(layout, tensors, cell, options)
    except LstmcheckError as exc:  # name the file whose tensors do not fit
        raise type(exc)(f"{name}: {exc}") from None
    fixed = {"x": d["x"], "y": d["y"],
             "state": tuple(d.get(k) for k in ("h0", "c0")[:len(model.state_shapes(1))]),
             "final": tuple(d.get(k) for k in ("hn", "cn")[:len(model.state_shapes(1))])}
    grads = {k[len("grad/"):]: v for k, v in d.items() if k.startswith("grad/")}
    lengths = np.asarray(d["lengths"]).astype(np.int64) if "lengths" in d else None
    if meta.get("time_reversed") and not (layout == "onnx" and model.direction == "reverse"):
        # the dump holds flip(model(flip(x))); an ONNX reverse node now loads as the
        # direction='reverse' model, which is that already (older suites marked it so)
        for k in ("x", "y"):
            fixed[k] = fixed[k][::-1]
        for k in ("x",):
            if k in grads:
                grads[k] = grads[k][::-1]
        if "dy" in d:
            d["dy"] = d["dy"][::-1]
    if grads:
        fixed.update(grads=grads, dy=d["dy"],
                     dstate=tuple(d.get(k) for k in ("dhn", "dcn")[:len(model.state_shapes(1))]))
    return Target("npz", f"dump {os.path.basename(os.fspath(path))}", layout, model.kind, options,
                  tensors, dtype, fixed=fixed, model=model, params=params, lengths=lengths)
