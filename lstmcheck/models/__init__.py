"""The oracle: cells (one file each), the stack runner, init and the cell registry."""
from .cell import Cell, Outer
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell, VARIANTS as LSTM_VARIANTS
from .recurrent import Recurrent, RecurrentModel
from .registry import CELLS, build
from .rnn import RNN, RNNCell
from .runner import Tape, Trace

__all__ = ["Cell", "Outer", "Recurrent", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "RecurrentModel", "Tape", "Trace", "CELLS", "LSTM_VARIANTS", "build"]
