"""Labels without a user's locate: parameters named and shaped as PyTorch's (weight_ih_l0 with
4H rows: LSTM gates i, f, g, o; 3H: GRU r, z, n; *_reverse; bias_*; weight_hr_*, weight_peep_*)
are the parameters of a model the project can build. Its own ``locate`` (the cell's index map)
then names layer, direction, gate, row and column; x (T, B, D) gets its time step. Names and gate
words are shared with the audit's diagnoses (GATE_NAMES)."""
from __future__ import annotations

import re

import numpy as np

GATE_NAMES = {"i": "input", "f": "forget", "g": "cell candidate", "o": "output", "r": "reset",
              "z": "update", "n": "new", "h": "hidden"}
_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr|weight_peep)_l(\d+)(_reverse)?$")
GATED = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def gate_word(g) -> str:
    """'f (forget)': a gate's letter and what it is."""
    return f"{g} ({GATE_NAMES.get(g, g)})"


def _dims(shapes):
    """(layers, directions, hidden, proj, rows, input, peephole rows) read off the shapes."""
    parts = {n: _NAME.match(n).groups() for n in shapes}
    layers = 1 + max(int(k) for _, k, _ in parts.values())
    dirs = 2 if any(r for _, _, r in parts.values()) else 1
    by_base = {}
    for n, (base, _, _) in parts.items():
        by_base.setdefault(base, shapes[n])
    proj = 0
    if "weight_hr" in by_base:
        proj, H = by_base["weight_hr"]
    elif "weight_hh" in by_base:
        H = by_base["weight_hh"][1]
    else:
        return None
    rows = next((by_base[b][0] for b in GATED if b in by_base), None)
    if rows is None or H == 0 or rows % H:
        return None
    D = shapes["weight_ih_l0"][1] if "weight_ih_l0" in shapes else 1
    peep = by_base["weight_peep"][0] if "weight_peep" in by_base else 0
    return layers, dirs, int(H), int(proj), int(rows) // int(H), int(D), int(peep)


def _candidate(dims):
    from ..models import GRU, LSTM, RNN
    L, dirs, H, proj, G, D, peep = dims
    direction = "bidirectional" if dirs == 2 else "forward"
    kw = dict(num_layers=L, direction=direction)
    if G == 4:
        return LSTM(D, H, proj_size=proj, variant="peephole" if peep else "vanilla", **kw)
    if G == 3 and peep:
        return LSTM(D, H, proj_size=proj, variant="peephole+cifg", **kw)
    if G == 3 and not proj:
        return GRU(D, H, **kw)
    if G == 1 and not proj and not peep:
        return RNN(D, H, **kw)
    return None


def torch_labels(theta):
    """(locate, gates per tensor, description) for PyTorch-named params, else (None, None, None).
    Every recognised name must have the shape the inferred model gives it: no guessing."""
    shapes = {n: tuple(np.shape(t)) for n, t in theta.items() if isinstance(n, str) and _NAME.match(n)}
    if not shapes:
        return None, None, None
    try:
        dims = _dims(shapes)
        model = _candidate(dims) if dims else None
    except Exception:            # an odd shape is simply not a PyTorch layout
        return None, None, None
    if model is None:
        return None, None, None
    want = model.param_shapes()
    if any(want.get(n) != s for n, s in shapes.items()):
        return None, None, None
    states = dict(zip(("h0", "c0"), (s[1:] for s in model.state_shapes(1))))

    def locate(name, index):
        if name in shapes:
            return model.locate(name, tuple(index))
        t = theta.get(name)
        if name == "x" and t is not None and t.ndim == 3 and t.shape[-1] == model.input_size:
            return {"tensor": "x", "time": int(index[0]), "batch": int(index[1]),
                    "feature": int(index[2])}
        if name in states and t is not None and t.ndim == 3 and t.shape[0] == \
                model.num_layers * model.num_directions and t.shape[2] == states[name][-1]:
            return {"tensor": name, "layer": int(index[0]) // model.num_directions,
                    "direction": "reverse" if index[0] % model.num_directions else "forward",
                    "batch": int(index[1]), "unit": int(index[2])}
        return None

    gates = {n: model.num_gates for n in shapes if _NAME.match(n).group(1) in GATED}
    return locate, gates, f"PyTorch names and shapes of {model.describe()}, gates {','.join(model.gates)}"
