"""The one JSON encoder of lstmcheck, for every results file it writes.

Report folders' results.json, a sweep's results.jsonl (and its record keys), the CLI's ``--json``
output, the golden-vector manifest and the meta text of .npz dumps all go through
:func:`to_jsonable` and :func:`dumps`, and so do the ``to_dict()`` of the audit and vector
reports.

Conversions: objects with ``to_dict()`` -> that dict; dict keys -> str; tuples -> lists; NumPy
(or CuPy) arrays -> nested lists; NumPy scalars -> Python scalars; complex -> ``{"real": ...,
"imag": ...}``; ``pathlib.Path`` -> str; ``numpy.dtype`` -> its name.

**Non-finite numbers.** JSON has no NaN or infinity. Every NaN, +inf and -inf float is written
as ``null``, in every file; the text is strict JSON (``allow_nan=False``), so any JSON reader
parses it. A reader of a numeric field takes ``null`` as "not a finite number" (the
in-memory objects keep the float where the distinction between NaN and inf matters, e.g. a
check report's rows).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import backend

__all__ = ["to_jsonable", "dumps", "write", "loads"]

loads = json.loads


def to_jsonable(obj, digits: int | None = None):
    """Plain JSON types (see the module docstring); ``digits``: round floats to that many
    significant digits (smaller files)."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict(), digits)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, digits) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    obj = backend.to_host(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), digits)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, complex):
        return {"real": to_jsonable(obj.real, digits), "imag": to_jsonable(obj.imag, digits)}
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}") if digits else obj
    if isinstance(obj, np.dtype):
        return obj.name
    return obj


def dumps(obj, *, digits: int | None = None, indent=None, separators=None,
          sort_keys: bool = False) -> str:
    """Strict JSON text of ``obj`` (``json.dumps``'s layout arguments, its defaults)."""
    return json.dumps(to_jsonable(obj, digits), indent=indent, separators=separators,
                      sort_keys=sort_keys, allow_nan=False)


def write(path, obj, *, digits: int | None = None, indent=1, separators=None) -> Path:
    """Write ``obj`` as JSON text and a final newline to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(dumps(obj, digits=digits, indent=indent, separators=separators) + "\n",
                    encoding="utf-8")
    return path
