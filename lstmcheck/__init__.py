"""lstmcheck: gradient verification and gradient-flow analysis for recurrent networks.

Submodules that pull in heavier or optional machinery are loaded on first use.

``lc.audit`` and ``lc.sweep`` are plain functions, bound below after their packages are imported:
importing a submodule sets the parent's attribute of that name to the submodule only when it is
first loaded, so once ``lstmcheck.audit`` and ``lstmcheck.sweep`` are in ``sys.modules`` the
attributes stay the functions. The packages themselves are reached with
``from lstmcheck.audit import ...`` / ``from lstmcheck.sweep import ...`` (or
``importlib.import_module``); ``from lstmcheck import audit`` gives the function.
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
    "check_hvp": ("lstmcheck.check", "check_hvp"),
    "GradcheckReport": ("lstmcheck.check", "GradcheckReport"),
}


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"lstmcheck.{name}")
    if name in _LAZY_ATTRS:
        mod, attr = _LAZY_ATTRS[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'lstmcheck' has no attribute {name!r}")


# Last: the packages load (binding their modules here), then the names become the functions.
from .audit import audit  # noqa: E402
from .sweep import sweep  # noqa: E402

__all__ = ["LSTM", "GRU", "RNN", "Cell", "Outer", "Recurrent", "build", "LstmcheckError", "check_gradients", "check_hvp", "gradcheck",
           "audit", "sweep", "layouts", "probes", "vectors", "tasks", "__version__"]
