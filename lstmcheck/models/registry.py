"""The cell registry: the one list of cells. Everything that offers a choice of cell (the CLI,
sweeps, vectors, layouts, reports) reads it; adding a cell is its file plus one line here.

An entry is a model class (a Recurrent subclass with ``cell_type``) or a bare Cell subclass, which
``build`` wraps in ``Recurrent``. A user's cell is named ``module:Class`` wherever a cell name
goes (``--cell mycells:MGU``)."""
from __future__ import annotations

import importlib
import inspect
import os
import traceback

from ..errors import OptionError
from .cell import Cell
from .cwrnn import CWRNNCell
from .dglstm import DGLSTMCell
from .gridlstm import GridLSTMCell
from .gru import GRU
from .lstm import LSTM
from .recurrent import Recurrent
from .rnn import RNN

CELLS = {
    "rnn": RNN,
    "lstm": LSTM,
    "gru": GRU,
    "cwrnn": CWRNNCell,
    "dglstm": DGLSTMCell,
    "gridlstm": GridLSTMCell,
}


def names() -> tuple:
    return tuple(CELLS)


def resolve(spec):
    """A registered name or 'module:Class' -> the registry entry (model class or Cell subclass)."""
    if isinstance(spec, type) and issubclass(spec, (Cell, Recurrent)):
        return spec
    if not isinstance(spec, str) or not spec:
        raise OptionError(f"cell must be a name ({', '.join(CELLS)}) or 'module:Class', got "
                          f"{spec!r}.")
    if spec.lower() in CELLS:
        return CELLS[spec.lower()]
    if ":" not in spec:
        raise OptionError(f"unknown cell {spec!r}; choose one of {', '.join(CELLS)} or name your "
                          f"own as 'module:Class'.")
    mod_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise OptionError(f"cannot load the cell {spec!r}: {exc}.") from None
    if not (isinstance(obj, type) and issubclass(obj, (Cell, Recurrent))):
        raise OptionError(f"{spec!r} is not a subclass of lc.Cell.")
    USER_MODULES.add(obj.__module__)
    return obj


# The modules of the users' own cells loaded so far: the CLI blames an exception raised there on
# the user's code (exit 2) rather than on lstmcheck (exit 3).
USER_MODULES: set = set()


def user_code_frame(exc: BaseException) -> str | None:
    """'file.py:line, in name' when the exception was raised in the module of a user's own
    module:Class cell, else None: from the innermost frame outwards (numpy called by the cell
    is passed over), the first frame of lstmcheck or of such a module decides."""
    for frame, line in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = frame.f_globals.get("__name__", "")
        if module == "lstmcheck" or module.startswith("lstmcheck."):
            return None
        if module in USER_MODULES:
            return f"{os.path.basename(frame.f_code.co_filename)}:{line}, in {frame.f_code.co_name}"
    return None


def canonical(spec) -> str:
    """How a configuration spells a cell: a registered name in lower case, 'module:Class' as
    given (loaded once to check it)."""
    resolve(spec)
    if isinstance(spec, type):
        return f"{spec.__module__}:{spec.__qualname__}"
    return spec.lower() if spec.lower() in CELLS else spec


def cell_type(spec) -> type:
    entry = resolve(spec)
    return entry if issubclass(entry, Cell) else entry.cell_type


def display_name(spec) -> str:
    """How reports and labels name a cell: 'LSTM' for a registered one, the class's cell name
    for 'module:Class' ('mycells:MGU' -> 'MGU')."""
    if isinstance(spec, str) and spec.lower() in CELLS:
        return spec.upper()
    t = cell_type(spec)
    return (t.name or t.__name__).upper()


def options(spec) -> tuple:
    """The keyword options ``build(spec, ...)`` takes for this cell: the model's own (num_layers,
    direction, dtype, ...) and the cell's constructor options (variant, reset_after, ...)."""
    entry = resolve(spec)
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if issubclass(entry, Recurrent):
        sigs = [inspect.signature(entry.__init__)]
    else:
        sigs = [inspect.signature(Recurrent.__init__), inspect.signature(entry.__init__)]
    skip = {"self", "cell", "input_size", "hidden_size"}
    return tuple(dict.fromkeys(n for sig in sigs for n, q in sig.parameters.items()
                               if q.kind in keyword and n not in skip))


def accepting(option) -> tuple:
    """The registered cells whose build takes ``option`` (e.g. 'variant': the LSTM)."""
    return tuple(n for n in CELLS if option in options(n))


def build(cell, input_size, hidden_size, **options):
    """A model from a cell name (or 'module:Class', or a class) and its options: the model's
    own options go to Recurrent, the rest to the cell's constructor."""
    entry = resolve(cell)
    if issubclass(entry, Recurrent):
        return entry(input_size, hidden_size, **options)
    model_opts = set(inspect.signature(Recurrent.__init__).parameters) - {"self", "cell",
                                                                          "input_size", "hidden_size"}
    cell_opts = {k: v for k, v in options.items() if k not in model_opts}
    try:
        c = entry(**cell_opts)
    except TypeError as exc:
        raise OptionError(f"{entry.__name__}(...) was called wrongly: {exc}.") from None
    return Recurrent(c, input_size, hidden_size,
                     **{k: v for k, v in options.items() if k in model_opts})
