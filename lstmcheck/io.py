"""Reading weights from files: .npz, .safetensors, PyTorch .pt/.pth state_dicts, .onnx models.

    tensors = read_tensors(path)                       # {name: numpy array}
    model, params = load_file(path, layout=None, cell=None, **options)

The layout is the file's own for .pt/.pth (torch) and .onnx (the LSTM/GRU/RNN nodes and their
attributes); for .npz and .safetensors it is read from the tensor names unless given. A file
that is missing, corrupt or of another kind raises FileFormatError with one sentence.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping

import numpy as np

from . import layouts
from .errors import FileFormatError, LstmcheckError, require

SUFFIXES = (".npz", ".safetensors", ".pt", ".pth", ".onnx")


def _path(path) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "not found"
        raise FileFormatError(f"cannot read {path!r}: {what}.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise FileFormatError(f"cannot read {path!r}: unknown file type {suffix or '(none)'!r}; "
                              f"lstmcheck reads {', '.join(SUFFIXES)}.")
    return path


def _reason(exc) -> str:
    """The exception's type and first sentence, to quote inside our one sentence."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return f"{type(exc).__name__}: {text}".rstrip(": ")[:160]


def _read_npz(path):
    if not zipfile.is_zipfile(path):  # np.load would try it as a pickle and say so, confusingly
        raise FileFormatError(f"{path!r} is not a readable .npz archive (not a zip file).")
    try:
        # our own handle: np.load leaks the one it opens when the zip directory is corrupt
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            if not isinstance(f, Mapping) and not hasattr(f, "files"):
                raise ValueError("a single array, not an archive")
            return {n: f[n] for n in f.files}
    except Exception as exc:  # zipfile, zlib and numpy's header parsing raise many kinds
        raise FileFormatError(f"{path!r} is not a readable .npz archive ({_reason(exc)}).") from None


def _read_safetensors(path):
    st = require("safetensors.numpy", "safetensors", "reading .safetensors files")
    try:
        return dict(st.load_file(path))
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError/ValueError
        raise FileFormatError(f"{path!r} is not a readable .safetensors file ({_reason(exc)}).") from None


def _flatten(obj, prefix=""):
    """A nested checkpoint dict -> {dotted name: tensor}; non-tensor entries are skipped."""
    out = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        elif hasattr(v, "detach") and hasattr(v, "numpy"):
            out[name] = v
    return out


def _pickled_class(exc) -> str | None:
    """The class a weights-only torch.load refused to unpickle ("Unsupported global: GLOBAL
    torch.nn.modules.rnn.LSTM ..."), as "torch.nn.LSTM"-like text, or None."""
    import re
    m = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", str(exc))
    if not m:
        return None
    parts = m.group(1).split(".")
    if parts[:2] == ["torch", "nn"]:            # torch.nn.modules.rnn.LSTM -> torch.nn.LSTM
        parts = ["torch", "nn", parts[-1]]
    return ".".join(parts) + " object"


def _read_torch(path):
    torch = require("torch", "torch", "reading PyTorch .pt/.pth files")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":   # neither torch.save's zip nor its legacy pickle
                raise FileFormatError(f"{path!r} is not a readable PyTorch file (neither the zip "
                                      f"archive nor the pickle torch.save writes).")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch's own errors
        pickled = _pickled_class(exc)
        if pickled:
            raise FileFormatError(
                f"{path!r} holds a whole pickled {pickled} (torch.save(module)), which lstmcheck "
                f"does not unpickle since that runs code from the file: save its state_dict() "
                f"instead (torch.save(module.state_dict(), path)).") from None
        raise FileFormatError(f"{path!r} is not a readable PyTorch file ({_reason(exc)}).") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # training checkpoints wrap the state_dict
    if not isinstance(obj, Mapping):
        raise FileFormatError(f"{path!r} holds a {type(obj).__name__}, not a state_dict; save "
                              f"module.state_dict() instead.")
    tensors = _flatten(obj)
    if not tensors:
        raise FileFormatError(f"{path!r} holds no tensors.")
    out = {}
    for n, t in tensors.items():
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:   # NumPy has no bfloat16; float32 holds it exactly
            t = t.float()
        out[n] = t.numpy().copy()
    return out


def _read_onnx_proto(path):
    onnx = require("onnx", "onnx", "reading .onnx files")
    try:
        return onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise FileFormatError(f"{path!r} is not a readable ONNX model ({_reason(exc)}).") from None


def read_tensors(path) -> dict:
    """Every tensor in a file as a host NumPy array, by name (ONNX: its initializers)."""
    path = _path(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix in (".pt", ".pth"):
        return _read_torch(path)
    from onnx import numpy_helper
    return {t.name: numpy_helper.to_array(t) for t in _read_onnx_proto(path).graph.initializer}


def load_file(path, layout=None, cell=None, **options):
    """(model, params) from the weights in a file; see the module docstring."""
    path = _path(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".onnx" and layout in (None, "onnx"):
        model, params = layouts.onnx.from_onnx(_read_onnx_proto(path), where=repr(path), **options)
        if cell is not None and model.kind != str(cell).lower():
            raise FileFormatError(f"{path!r} holds a {model.kind.upper()}, not a {str(cell).upper()}.")
        return model, params
    tensors = read_tensors(path)
    try:
        if layout is None:
            layout = "torch" if suffix in (".pt", ".pth") else layouts.detect(tensors)
        return layouts.load(layout, tensors, cell, **options)
    except LstmcheckError as exc:
        raise type(exc)(f"{path!r}: {exc}") from None


def save_npz(path, tensors: dict) -> None:
    """Write tensors to .npz atomically (a temporary file renamed into place)."""
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **{str(n): np.asarray(a) for n, a in tensors.items()})
    os.replace(tmp, path)
