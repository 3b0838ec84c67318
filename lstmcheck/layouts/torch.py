"""PyTorch: state_dict names and shapes, which are the canonical ones (of every registered cell;
torch.nn itself has RNN, LSTM and GRU).

``weight_ih_l{k}[_reverse]`` (G*H, in), ``weight_hh_l{k}[_reverse]`` (G*H, H_out),
``bias_ih/bias_hh`` (G*H,), ``weight_hr`` (proj, H); LSTM gates i,f,g,o, GRU r,z,n. Parameters
PyTorch lacks (peepholes ``weight_peep``, gate recurrence ``weight_gr``) keep the same style, so
every variant round-trips. The *Cell classes name their tensors without the ``_l0`` suffix; a
state_dict without any bias is a ``bias=False`` module (biases zero). A state_dict of a larger
module is read through its prefix (``rnn.weight_ih_l0``...), found automatically when unique.
"""
from __future__ import annotations

import re

import numpy as np

from . import _common as C
from ..errors import ConversionError, DTypeError, OptionError, ParameterError

# torch.nn itself has the first three (from_torch reads those modules); a state_dict in the
# canonical names expresses every registered cell, whose parameters are named in this style
_TORCH_NN = ("lstm", "gru", "rnn")


def _registered() -> tuple:
    from ..models.registry import names
    return tuple(dict.fromkeys(_TORCH_NN + names()))


CELLS = _registered()
_CELL_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_SUFFIX = re.compile(r"_l(\d+)(_reverse)?$")
_GATES = {4: "lstm", 3: "gru", 1: "rnn"}


def _find_prefix(tensors: dict) -> str:
    """The prefix in front of ``weight_ih_l0`` (or a cell's ``weight_ih``), when unique."""
    found = {n[: -len(tail)] for n in map(str, tensors) for tail in ("weight_ih_l0", "weight_ih")
             if n.endswith(tail) and (n == tail or n[: -len(tail)].endswith("."))}
    if not found:
        return ""
    if len(found) > 1:
        raise ParameterError(f"the state_dict holds several recurrent modules "
                             f"({', '.join(sorted(p.rstrip('.') or '<root>' for p in found))}); "
                             f"pass prefix= to choose one.")
    return found.pop()


def _canonical_names(tensors: dict, prefix) -> tuple[dict, bool]:
    """Strip the prefix; give a cell's unsuffixed names the '_l0' suffix."""
    if prefix is None:
        prefix = _find_prefix(tensors)
    if prefix:
        tensors = {n[len(prefix):]: a for n, a in tensors.items() if str(n).startswith(prefix)}
        tensors = {n: a for n, a in tensors.items() if "." not in n}
    is_cell = "weight_ih" in tensors and "weight_ih_l0" not in tensors
    if is_cell:
        tensors = {(n + "_l0" if n in _CELL_NAMES else n): a for n, a in tensors.items()}
    return tensors, is_cell


def guess_cell(tensors: dict, prefix=None) -> str:
    t, _ = _canonical_names(tensors, prefix)
    w_ih = C.anchor(t, "weight_ih_l0", 2, "torch")
    w_hh = C.anchor(t, "weight_hh_l0", 2, "torch")
    H = t["weight_hr_l0"].shape[1] if "weight_hr_l0" in t else w_hh.shape[1]
    G = w_ih.shape[0] // max(H, 1)
    if G not in _GATES or w_ih.shape[0] != G * H:
        raise ParameterError(f"cannot tell the cell from weight_ih_l0 of shape {w_ih.shape} and "
                             f"hidden size {H}; pass cell='lstm', 'gru' or 'rnn'.")
    return _GATES[G]


def load(tensors: dict, cell=None, *, prefix=None, dtype=None, strict=True, backend="numpy",
         **model_options):
    t, _ = _canonical_names(tensors, prefix)
    cell = (cell or guess_cell(t, "")).lower()
    w_ih = C.anchor(t, "weight_ih_l0", 2, "torch")
    w_hh = C.anchor(t, "weight_hh_l0", 2, "torch")
    layers = {int(m.group(1)) for n in t if (m := _SUFFIX.search(str(n)))}
    bidir = any(str(n).endswith("_reverse") for n in t)
    if cell == "lstm":
        proj = t["weight_hr_l0"].shape[0] if "weight_hr_l0" in t else 0
        H = t["weight_hr_l0"].shape[1] if proj else w_hh.shape[1]
        variant = model_options.pop("variant", "vanilla")
        for name, part in (("weight_peep_l0", "peephole"), ("weight_gr_l0", "fgr")):
            if name in t and part not in variant.split("+"):
                variant += "+" + part
        model_options.update(proj_size=proj, variant=variant)
    else:
        H = w_hh.shape[1]
    no_bias = not any(n.startswith("bias_") for n in t)
    model = C.make_model(cell, w_ih.shape[1], H, num_layers=max(layers) + 1, bidirectional=bidir,
                         dtype=C.tensor_dtype(t, dtype), backend=backend, **model_options)
    if no_bias:  # a bias=False module
        t = {**t, **{n: np.zeros(s, model.dtype) for n, s in model.param_shapes().items()
                     if n.startswith("bias_")}}
    t = C.check_tensors(t, C.zeros_params(model), "torch", model, strict)
    return model, C.finish(model, t)


def dump(model, params, *, as_cell=False) -> dict:
    """PyTorch state_dict arrays; ``as_cell`` writes an nn.*Cell's unsuffixed names."""
    last = model.num_layers - 1
    if model.cell.param_layer(last) != last:
        raise ConversionError(f"a state_dict holds one set of weights per layer, and "
                              f"{model.describe()} shares them between layers.")
    p = C.host_params(model, params)
    if as_cell:
        if model.num_layers > 1 or model.bidirectional or getattr(model, "proj_size", 0):
            raise ConversionError("an nn.*Cell is one unidirectional layer without projection; "
                                  f"{model.describe()} is not.")
        return {n[: -len("_l0")]: a.copy() for n, a in p.items()}
    return {n: a.copy() for n, a in p.items()}


def options(model, **opts) -> dict:
    """The load options that rebuild ``model`` from its dump (what names cannot tell)."""
    cfg = model.config()
    out = {k: cfg[k] for k in ("nonlinearity", "reset_after", "clip", "cell_clip", "activations",
                               "batch_first") if k in cfg}
    if "activations" in out:
        out["activations"] = tuple(out["activations"])
    if C.cell_of(model) == "lstm":
        out["variant"] = model.variant
    for k, v in model.cell.config().items():     # a cell's own options (clockwork periods)
        out.setdefault(k, v)
    return out


# ------------------------------------------------------------------ live modules
def from_torch(module):
    """(model, params) of a torch.nn.RNN / LSTM / GRU or RNNCell / LSTMCell / GRUCell."""
    from ..errors import require
    torch = require("torch", "torch", "from_torch")
    nn = torch.nn
    kinds = ((nn.LSTM, "lstm"), (nn.GRU, "gru"), (nn.RNN, "rnn"),
             (nn.LSTMCell, "lstm"), (nn.GRUCell, "gru"), (nn.RNNCell, "rnn"))
    cell = next((c for cls, c in kinds if isinstance(module, cls)), None)
    if cell is None:
        inner = [(n, type(m).__name__) for n, m in getattr(module, "named_modules", lambda: [])()
                 if n and isinstance(m, tuple(cls for cls, _ in kinds))]
        an = (lambda t: f"{'an' if t[0] in 'LR' else 'a'} {t}")     # an LSTM, a GRU
        hint = ""
        if len(inner) == 1:
            hint = f"; it holds {an(inner[0][1])} as .{inner[0][0]}: pass .{inner[0][0]}"
        elif inner:
            hint = ("; it holds " + ", ".join(f"{an(t)} as .{n}" for n, t in inner[:4])
                    + ": pass one of them")
        raise OptionError(f"from_torch takes torch.nn.RNN, LSTM, GRU or their *Cell classes, "
                          f"got {type(module).__name__}{hint}.")
    opts = {}
    if isinstance(module, nn.RNNBase):
        if module.dropout and module.training and module.num_layers > 1:
            raise ConversionError("the module applies dropout between layers in training mode, "
                                  "which the oracle does not; call module.eval() first.")
        opts["batch_first"] = module.batch_first
    if cell == "rnn":
        opts["nonlinearity"] = module.nonlinearity
    sd = {n: a.detach().cpu() for n, a in module.state_dict().items()}
    dtypes = {a.dtype for a in sd.values()}
    if not dtypes <= {torch.float32, torch.float64}:
        raise DTypeError(f"from_torch needs float32 or float64 parameters, got "
                         f"{', '.join(sorted(str(d) for d in dtypes))}.")
    tensors = {n: a.numpy().copy() for n, a in sd.items()}
    return load(tensors, cell, prefix="", **opts)
