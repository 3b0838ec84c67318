"""A foreign implementation brought to one interface (:class:`Target`), and calling user code."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import LstmcheckError

TARGET_KINDS = ("callable", "torch", "npz", "onnx", "keras", "flax")


@dataclass
class Target:
    """A foreign implementation, brought to one interface.

    forward(tensors, x, state) -> (y, final state tuple), in the target's dtype (host arrays);
    vjp(tensors, x, state, dy, dstate) -> {name: gradient} or None; fixed: what a dump holds
    (inputs, outputs, cotangents, gradients) in place of running anything.

    Sequence lengths: ``lengths`` are the ones the target fixes (an ONNX initializer, a dump's
    array); ``takes_lengths``: forward (and vjp) take a ``lengths=`` keyword;
    ``default_lengths``: "ragged" when the audit should choose ragged lengths if none are given
    (an ONNX graph that takes sequence_lens as an input)."""

    kind: str
    description: str
    layout: str
    cell: str | None
    options: dict
    tensors: dict
    dtype: np.dtype
    forward: object = None
    vjp: object = None
    fixed: dict = field(default_factory=dict)
    model: object = None          # the oracle model, when the target determines it
    params: object = None         # the oracle's canonical params, idem
    state_rule: tuple = ()        # per state part: None (free), an array (fixed), "zeros"
    lengths: object = None        # (B,) ints the target fixes, or None
    takes_lengths: bool = False   # forward/vjp accept lengths=
    default_lengths: str | None = None   # "ragged": the audit picks ragged lengths by default
    notes: list = field(default_factory=list)    # what the report should say about the run
    gradient_method: str | None = None   # how vjp's gradients come about, when not analytic
    gradient_tolerances: object = None   # tolerances(dtype, T, L, fan_in) for such gradients


def _state_tuple(state, n):
    """None, an array, or a tuple/list of arrays -> tuple of arrays (or Nones) of length n."""
    if state is None:
        return (None,) * n
    parts = tuple(state) if isinstance(state, (tuple, list)) else (state,)
    return parts


class TargetError(LstmcheckError, RuntimeError):
    """The implementation under test raised an exception of its own (not lstmcheck's bug)."""


def call_target(what: str, fn, *args, **kwargs):
    """Call the user's code; its own exceptions become one sentence naming ``what`` failed."""
    try:
        return fn(*args, **kwargs)
    except (LstmcheckError, NotImplementedError, MemoryError):
        raise
    except Exception as exc:
        text = " ".join(str(exc).split()) or "no message"
        raise TargetError(f"{what} raised {type(exc).__name__}: {text}") from exc
