"""Rough memory needs of a grid point, to refuse absurd sizes before any work."""
from __future__ import annotations

import functools
import os


def num_gates(cell) -> int:
    """How many gate blocks a cell's weights stack (its default configuration), asked of the
    registry: a registered name, 'module:Class' or a class. An unknown cell is an OptionError."""
    from ..models import registry

    entry = registry.resolve(cell)
    return _num_gates(entry)


@functools.lru_cache(maxsize=None)
def _num_gates(entry) -> int:
    from ..errors import LstmcheckError
    from ..models import registry

    try:
        return registry.build(entry, 1, 1).num_gates
    except (LstmcheckError, TypeError):   # a cell whose constructor needs arguments
        return len(registry.cell_type(entry).gates)


def max_gates() -> int:
    """The most gate blocks of any registered cell (for estimates that name no cell)."""
    from ..models import registry

    return max(num_gates(c) for c in registry.names())


def memory_estimate(cell, input_size, hidden_size, seq_len, batch, num_layers=1,
                    directions=1) -> int:
    """A rough lower bound of the bytes one forward + backward (+ gradient-flow trace) holds:
    float64 parameters and their gradients, the per-step tape (gate activations, h, c and
    their gradients) and Python's per-step bookkeeping. Only for refusing absurd sizes up front."""
    G, H, T, B = num_gates(cell), hidden_size, seq_len, batch
    k = num_layers * directions
    n_params = k * G * H * (max(input_size, H * directions) + H + 2)
    per_step = B * H * k * (G + 4) + B * input_size * 3     # tape and trace, x, dy
    return 8 * (4 * n_params + T * per_step) + 4096 * T * k


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
