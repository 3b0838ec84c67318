"""RNN, LSTM and GRU: the oracle."""
from .base import RecurrentModel, Tape, Trace
from .gru import GRU
from .lstm import LSTM, VARIANTS as LSTM_VARIANTS
from .rnn import RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def build(cell: str, input_size: int, hidden_size: int, **options):
    """A model from a cell name ('rnn', 'lstm', 'gru') and its constructor options."""
    from ..errors import OptionError
    if not isinstance(cell, str) or cell.lower() not in CELLS:
        raise OptionError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}.")
    return CELLS[cell.lower()](input_size, hidden_size, **options)


__all__ = ["RNN", "LSTM", "GRU", "RecurrentModel", "Tape", "Trace", "CELLS", "LSTM_VARIANTS", "build"]
