"""lstmcheck: gradient verification and gradient-flow analysis for recurrent networks.

Submodules that pull in heavier or optional machinery are loaded on first use.
"""
from __future__ import annotations

import importlib

from .errors import LstmcheckError
from .models import GRU, LSTM, RNN, Cell, Outer, Recurrent, build

__version__ = "0.1.0"

_LAZY_MODULES = {"layouts", "probes", "vectors", "tasks", "check", "report", "backend", "models"}
_LAZY_ATTRS = {
    "check_gradients": ("lstmcheck.check", "check_gradients"),
    "gradcheck": ("lstmcheck.check", "gradcheck"),
    "GradcheckReport": ("lstmcheck.check", "GradcheckReport"),
    "audit": ("lstmcheck.audit", "audit"),
    "sweep": ("lstmcheck.sweep", "sweep"),
}


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"lstmcheck.{name}")
    if name in _LAZY_ATTRS:
        mod, attr = _LAZY_ATTRS[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'lstmcheck' has no attribute {name!r}")


__all__ = ["LSTM", "GRU", "RNN", "Cell", "Outer", "Recurrent", "build", "LstmcheckError", "check_gradients", "gradcheck",
           "audit", "sweep", "layouts", "probes", "vectors", "tasks", "__version__"]
