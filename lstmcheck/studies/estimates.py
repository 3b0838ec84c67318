"""Up-front estimates of what a run costs, and refusals of sizes that cannot finish: a clear
sentence before any work instead of a MemoryError, the OOM killer, or hours of finite differences.

The messages name sizes through ``spell(name)``: the Python name by default; the CLI passes its
option spelling (``hidden_size`` -> ``--hidden-size``)."""
from __future__ import annotations

from ..errors import OptionError

GRADCHECK_STEP_LIMIT = 10**9   # cell steps; at ~10 us each, hours of work


class SizeError(OptionError):
    """Sizes whose run would not fit in memory or would run for hours."""


def _name(name: str) -> str:
    return name


def refuse_huge(cells, *, hidden_size, seq_len, batch, input_size=4, num_layers=1, directions=1,
                named=None, spell=_name) -> None:
    """Refuse sizes whose tape alone would not fit in this machine's memory, before any work.
    The message names the sizes in ``named`` (those the user chose), or all of them."""
    from ..sweep import format_bytes, memory_estimate, physical_memory

    have = physical_memory()
    need = max(memory_estimate(c, input_size, hidden_size, seq_len, batch, num_layers,
                               directions) for c in cells)
    if have and need > have:
        sizes = {"hidden_size": hidden_size, "seq_len": seq_len, "batch": batch,
                 "input_size": input_size, "num_layers": num_layers}
        shown = [k for k in sizes if named is not None and k in named] or list(sizes)
        raise SizeError(f"{', '.join(f'{spell(k)} {sizes[k]}' for k in shown)} would need at "
                        f"least about {format_bytes(need)} of memory, more than this machine's "
                        f"{format_bytes(have)}; choose smaller sizes.")


def gradcheck_steps(n_cases, elements, *, input_size, hidden_size, seq_len, num_layers,
                    directions) -> tuple:
    """(elements checked per model, cell steps of the whole check): each checked element costs
    two runs of the model over every step, layer and direction."""
    from ..sweep import max_gates

    k = num_layers * directions
    n_params = k * max_gates() * hidden_size * (
        max(input_size, hidden_size * directions) + hidden_size + 2)
    checked = n_params if elements == "all" else min(n_params, elements * 5 * k)
    return checked, n_cases * 2 * checked * seq_len * k


def refuse_slow_gradcheck(n_cases, elements, *, input_size, hidden_size, seq_len, num_layers,
                          directions, spell=_name) -> None:
    """Refuse a check whose finite differences would run for hours; suggest sampling instead."""
    checked, steps = gradcheck_steps(n_cases, elements, input_size=input_size,
                                     hidden_size=hidden_size, seq_len=seq_len,
                                     num_layers=num_layers, directions=directions)
    if steps > GRADCHECK_STEP_LIMIT:
        raise SizeError(
            f"checking {checked:,} elements of {n_cases} model(s) with {spell('num_layers')} "
            f"{num_layers}, {spell('hidden_size')} {hidden_size} and {spell('seq_len')} "
            f"{seq_len} would run about {steps:.1e} cell steps (hours); sample with "
            f"{spell('elements')} or choose smaller sizes.")
