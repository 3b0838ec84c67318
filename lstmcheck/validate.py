"""Checks of the options a user passes to the public functions, shared by all of them.

Each check takes the argument's name and its value and returns the value in a canonical form
(an ``int``, a ``float``, a list of names) or raises one :class:`OptionError` sentence that names
the argument and says what it takes. Python's own errors for a wrong type (``TypeError: 'float'
object cannot be interpreted as an integer`` deep inside NumPy) never name the argument, so every
public entry point checks its options here before any work.

:func:`keywords` turns a call with an unknown keyword (``lc.audit(impl, input_size=3)``) into
such a sentence as well, listing the keywords the function does take.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import math
import numbers

import numpy as np

from .errors import OptionError

SEED_MAX = 2**32 - 1   # NumPy, torch and CuPy all accept seeds in 0..2**32-1


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def integer(name: str, v, *, low: int = 1, high: int | None = None, allow_none: bool = False):
    """An integer (not a bool, not 2.0) in low..high; None passes through with ``allow_none``."""
    if v is None and allow_none:
        return None
    if not is_int(v) or v < low or (high is not None and v > high):
        what = (f"an integer in {low}..{high}" if high is not None else
                "a positive integer" if low == 1 else f"an integer >= {low}")
        raise OptionError(f"{name} must be {what}" + (" or None" if allow_none else "")
                          + f", got {v!r}.")
    return int(v)


def real(name: str, v, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False, allow_none: bool = False):
    """A finite real number (not a bool, not NaN) in the interval from ``low`` to ``high``
    (open at an end with ``low_open``/``high_open``)."""
    if v is None and allow_none:
        return None
    try:
        ok = is_real(v) and math.isfinite(v)
    except OverflowError:        # an int beyond float range (10**400) is no finite float
        ok = False
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        if low is not None and high is not None:
            what = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                    f"{')' if high_open else ']'}")
        elif low is not None:
            what = f"a finite number {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            what = f"a finite number {'<' if high_open else '<='} {high:g}"
        else:
            what = "a finite number"
        raise OptionError(f"{name} must be {what}" + (" or None" if allow_none else "")
                          + f", got {v!r}.")
    return float(v)


def seed(v, name: str = "seed"):
    """An explicit seed: an integer in 0..2**32-1, a SeedSequence or a Generator."""
    if isinstance(v, (np.random.Generator, np.random.SeedSequence)):
        return v
    if not is_int(v) or not 0 <= v <= SEED_MAX:
        raise OptionError(f"{name} must be an integer in 0..{SEED_MAX} or a numpy Generator, "
                          f"got {v!r}.")
    return int(v)


def names(name: str, v, *, allow_none: bool = False) -> list | None:
    """One name or several: a string is one name (never its letters), a list or tuple of strings
    is several; anything else is refused."""
    if v is None and allow_none:
        return None
    if isinstance(v, str):
        return [v]
    if isinstance(v, (list, tuple, set, frozenset)) and v and all(isinstance(s, str) for s in v):
        return list(v)
    raise OptionError(f"{name} must be a name or a non-empty list of names, got {v!r}.")


def mapping(name: str, v, *, allow_none: bool = True) -> dict | None:
    """A dict with string keys (options passed on as keywords), or None."""
    if v is None and allow_none:
        return None
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise OptionError(f"{name} must be a dict of option names to values, got "
                          f"{type(v).__name__} {v!r}."[:300])
    return v


def unknown_keyword(function: str, given, accepted) -> OptionError:
    """The sentence for keywords ``given`` that ``function`` does not take."""
    bad = sorted(set(given) - set(accepted))
    if not accepted:
        return OptionError(f"{function} takes no options, got {bad[0]!r}.")
    close = difflib.get_close_matches(bad[0], list(accepted), n=1) if bad else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return OptionError(f"{function} takes no option {bad[0]!r}{hint}; its options are "
                       f"{', '.join(accepted)}.")


def keywords(fn):
    """Decorate a public function so that an unknown keyword, a missing argument or too many
    positional ones is one OptionError naming it, not Python's TypeError."""
    sig = inspect.signature(fn)
    accepted = [p.name for p in sig.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            unknown = [k for k in kwargs if k not in accepted]
            if unknown:
                raise unknown_keyword(f"{fn.__name__}()", unknown, accepted) from None
            raise OptionError(f"{fn.__name__}(): {exc}.") from None
        return fn(*args, **kwargs)

    checked.__signature__ = sig
    return checked
