"""horizon_study: how far back the gradient reaches in RNN, LSTM and GRU, with default and chrono
initialisation (Tallec & Ollivier 2018), for sequence lengths up to 10,000 — the data of one
figure (gradient horizon against T, one line per configuration, plus the decay curves at the
longest T).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import tasks
from .. import validate as V
from ..errors import OptionError
from ..models import build
from . import _common as C
from .flow import gradient_norms


def default_configs() -> tuple:
    """(cell, init) of every registered cell with PyTorch's default initialisation, and again
    with chrono initialisation for the cells with a memory gate (LSTM's f, GRU's z)."""
    from ..models import registry

    return tuple(conf for name in registry.names()
                 for conf in [(name, "default")] + ([(name, "chrono")]
                                                    if registry.cell_type(name).memory_gate
                                                    else []))


DEFAULT_CONFIGS = default_configs()


@dataclass
class HorizonStudy(C.Result):
    """Rows follow ``labels`` (one per configuration), columns ``seq_lens``.

    labels          ("rnn default", "lstm chrono", ...).
    seq_lens        (S,) the sequence lengths T.
    horizon         (C, S) lag by which ``share`` of the recurrent-weight gradient has
                    accumulated (from gradient_norms, loss="last" on Gaussian noise).
    steps_in_past   (C, S) lags over which ||dL/dh_t|| / ||dL/dh_T|| stays >= tol.
    decay_rate      (C, S) fitted decay of ||dL/dh_t|| per step (nats; > 0 vanishing).
    half_life       (C, S) log(2) / decay_rate.
    curves          {label: (T_max,) median ||dL/dh_t|| / ||dL/dh_T|| by lag} at the longest T.
    c_curves        {label: same for ||dL/dc_t||} for LSTM configurations.
    meta            hidden_size, batch, input_size, share, tol, seed.
    """

    probe = "horizon_study"
    labels: tuple
    seq_lens: np.ndarray
    horizon: np.ndarray
    steps_in_past: np.ndarray
    decay_rate: np.ndarray
    half_life: np.ndarray
    curves: dict
    c_curves: dict
    meta: dict = field(default_factory=dict)


@V.keywords
def horizon_study(seq_lens=(100, 1000, 10000), *, configs=DEFAULT_CONFIGS, hidden_size=64,
                  batch=4, input_size=8, share=0.9, tol=1e-2, seed=0, backend="numpy"):
    """Gradient horizons of each (cell, init) in ``configs`` at each T in ``seq_lens``.

    init: "default" (PyTorch's uniform init) or "chrono" (chrono=T, LSTM and GRU only)."""
    share = V.real("share", share, low=0, high=1, low_open=True)
    tol = V.real("tol", tol, low=0, high=1, low_open=True)
    seed = V.seed(seed)
    hidden_size = V.integer("hidden_size", hidden_size)
    batch = V.integer("batch", batch)
    input_size = V.integer("input_size", input_size)
    if isinstance(seq_lens, (int, np.integer)):
        seq_lens = (seq_lens,)
    if isinstance(seq_lens, str) or not hasattr(seq_lens, "__iter__"):
        raise OptionError(f"seq_lens must be a sequence length or a list of them, got "
                          f"{seq_lens!r}.")
    seq_lens = sorted(C.positive_int("seq_len", T, allow_none=False) for T in seq_lens)
    if not seq_lens:
        raise OptionError("seq_lens must name at least one sequence length.")
    labels = tuple(f"{cell} {init}" for cell, init in configs)
    shape = (len(configs), len(seq_lens))
    out = {k: np.full(shape, np.nan) for k in ("horizon", "steps_in_past", "decay_rate", "half_life")}
    curves, c_curves = {}, {}
    for i, (cell, init) in enumerate(configs):
        if init not in ("default", "chrono"):
            raise OptionError(f"unknown init {init!r} in configs; use 'default' or 'chrono'.")
        model = build(cell, input_size, hidden_size, backend=backend)
        for j, T in enumerate(seq_lens):
            if init == "chrono" and T < 3:
                continue
            params = model.init_params(seed, **({"chrono": T} if init == "chrono" else {}))
            x = tasks.noise(T, batch, input_size, seed=seed + 1, backend=backend).x
            r = gradient_norms(model, params, x, loss="last", shares=(share,), tol=tol, seed=seed)
            out["horizon"][i, j] = np.nan if r.horizon[share] is None else r.horizon[share]
            out["steps_in_past"][i, j] = r.steps_in_past
            out["decay_rate"][i, j] = r.decay_rate
            out["half_life"][i, j] = r.half_life
            if T == seq_lens[-1]:
                curves[labels[i]] = r.h_norm_rel
                if r.c_norm_rel is not None:
                    c_curves[labels[i]] = r.c_norm_rel
    return HorizonStudy(labels=labels, seq_lens=np.array(seq_lens), curves=curves,
                        c_curves=c_curves, meta=dict(hidden_size=hidden_size, batch=batch,
                                                     input_size=input_size, share=share, tol=tol,
                                                     seed=seed), **out)
