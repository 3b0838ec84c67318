"""The cell registry: the one list of cells. Everything that offers a choice of cell (the CLI,
sweeps, vectors, layouts, reports) reads it; adding a cell is its file plus one line here.

An entry is a model class (a Recurrent subclass with ``cell_type``) or a bare Cell subclass, which
``build`` wraps in ``Recurrent``. A user's cell is named ``module:Class`` wherever a cell name
goes (``--cell mycells:MGU``)."""
from __future__ import annotations

import importlib
import inspect

from ..errors import OptionError
from .cell import Cell
from .gru import GRU
from .lstm import LSTM
from .recurrent import Recurrent
from .rnn import RNN

CELLS = {
    "rnn": RNN,
    "lstm": LSTM,
    "gru": GRU,
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
    return obj


def cell_type(spec) -> type:
    entry = resolve(spec)
    return entry if issubclass(entry, Cell) else entry.cell_type


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
