"""The oracle's side of an audit: weights and inputs that expose layout mistakes, the float64
model of a configuration, one oracle run, and loading/dumping a named layout in float64."""
from __future__ import annotations

import inspect

import numpy as np

from .. import backend
from ..errors import OptionError


def exposing_params(model, seed=0) -> dict:
    """Parameters that expose layout mistakes: PyTorch-style draws, then every gate block scaled
    and offset differently, so that no two gates (and no two directions) look alike."""
    params = {n: backend.to_host(a).copy() for n, a in model.init_params(seed=seed).items()}
    H, G = model.hidden_size, len(model.gates)
    for name, a in params.items():
        base = name.split("_l")[0]
        if base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") and a.shape[0] == G * H:
            for j in range(G):
                blk = a[j * H:(j + 1) * H]
                blk *= 1.0 + 0.3 * j
                if base.startswith("bias"):
                    blk += 0.2 * (j - (G - 1) / 2)
        if name.endswith("_reverse"):
            a *= 1.1   # directions differ even where the seed's draws happen to be alike
    return {n: backend.asarray(a, model.xp, model.dtype) for n, a in params.items()}


def random_inputs(model, seq_len=5, batch=2, seed=0):
    """x (T, B, D) ~ N(0, 1) and a non-zero initial state ~ 0.5 N(0, 1), all float64 on the host."""
    rng = backend.rng(seed)
    x = rng.standard_normal((seq_len, batch, model.input_size))
    state = tuple(0.5 * rng.standard_normal(s) for s in model.state_shapes(batch))
    return x, state


def random_cotangents(model, seq_len, batch, seed=0):
    """dy and dstate for L = sum(dy*y) + sum(dstate*final_state), seeded."""
    rng = backend.rng(np.random.SeedSequence([seed, 7]).generate_state(1)[0])
    dy = rng.standard_normal((seq_len, batch, model.output_size * model.num_directions))
    dstate = tuple(rng.standard_normal(s) for s in model.state_shapes(batch))
    return dy, dstate


def float64_model(model):
    """The same configuration computing in float64 on the host (the oracle's precision)."""
    from ..models.recurrent import require_model
    return require_model(model).replace(backend="numpy", dtype="float64", batch_first=False)


def oracle_run(model, params, x, state, dy=None, dstate=None, lengths=None):
    """(y, final state tuple, grads or None) of the float64 oracle; everything on the host.
    lengths: (B,) sequence lengths (right padding), or None for full length."""
    xp = np
    p = {n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()}
    y, fin, tape = model.forward(p, np.asarray(x, np.float64), _state_arg(model, state),
                                 lengths=lengths)
    fin = fin if isinstance(fin, tuple) else (fin,)
    grads = None
    if dy is not None:
        grads = model.backward(tape, xp.asarray(dy, np.float64), _state_arg(model, dstate))
    return y, fin, grads


def _state_arg(model, state):
    """A state tuple as forward/backward take it: h alone for RNN/GRU, (h, c) for LSTM."""
    if state is None:
        return None
    state = tuple(np.asarray(s, np.float64) for s in state)
    return state if len(state) > 1 else state[0]


def _layouts():
    from .. import layouts
    return layouts


def load_layout(layout, tensors, cell, options):
    """(model, params) of the oracle for tensors in a named layout, in float64."""
    if not isinstance(layout, str):
        raise OptionError(f"layout must be a layout name such as 'torch' or 'keras', got {layout!r}.")
    tensors64 = {n: np.asarray(backend.to_host(a), np.float64) for n, a in tensors.items()}
    model, params = _layouts().load(layout, tensors64, cell, **dict(options or {}))
    if model.dtype != np.float64:
        model = float64_model(model)
    return model, {n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()}


def dump_layout(layout, model, params, **dump_options):
    return {n: np.asarray(backend.to_host(a)) for n, a in
            _layouts().dump(layout, model, {n: backend.to_host(a) for n, a in params.items()},
                            **dump_options).items()}


def _dump_options(layout, options):
    """The part of a layout's options its dump takes (forget_bias, reset_after, direction...)."""
    if not isinstance(layout, str) or layout.lower() not in _layouts().LAYOUTS:
        _layouts().load(layout, {}, None)     # raises the layouts' own one-sentence error
    sig = inspect.signature(_layouts().LAYOUTS[layout.lower()].dump)
    return {k: v for k, v in (options or {}).items() if k in sig.parameters and k not in ("model", "params")}
