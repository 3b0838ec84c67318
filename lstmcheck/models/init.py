"""Parameter initialisation. Draws happen on the host from one seeded generator, in parameter
order, then move to the model's backend, so a seed means the same numbers on NumPy and CuPy."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..errors import OptionError

SCHEMES = ("pytorch", "orthogonal", "gaussian")
# 2**31 elements: 16 GiB in float64, beyond any model a gradient check is meant for, and below
# the point where NumPy's drawing would fail with a MemoryError on most machines
MAX_PARAM_ELEMENTS = 2**31
OPTIONS = ("scheme", "gain", "spectral_radius", "forget_bias", "chrono", "scale")


def _real(name, v, *, low=-np.inf, strict=False, what="a finite number"):
    """A finite real scalar (not bool) above ``low``; anything else is one OptionError."""
    ok = (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
          and np.isfinite(v) and (v > low if strict else v >= low))
    if not ok:
        raise OptionError(f"{name} must be {what}, got {v!r}.")
    return float(v)


def _seed(seed):
    """An explicit seed: a non-negative integer, a SeedSequence or a Generator."""
    if isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}.")
    return int(seed)


def _refuse_huge(model) -> None:
    """Refuse, before drawing anything, a model whose parameters exceed MAX_PARAM_ELEMENTS or
    whose float64 draws (plus the copy in the model's dtype) would not fit in this machine's
    memory: NumPy would otherwise fail with a MemoryError (or the OS kill the process) midway."""
    from ..sweep.sizes import format_bytes, physical_memory

    n = sum(int(np.prod(s, dtype=object)) for s in model.param_shapes().values())
    need = n * (8 + np.dtype(model.dtype).itemsize)
    have = physical_memory()
    if n > MAX_PARAM_ELEMENTS or (have and need > have):
        limit = (f"more than the 2**31 that init_params accepts" if
                 n > MAX_PARAM_ELEMENTS else f"more than this machine's {format_bytes(have)}")
        raise OptionError(f"{model.describe()} has {n:,} parameters, about {format_bytes(need)} to initialise, {limit}; "
                          f"choose smaller sizes.")


def _orthogonal(rng, rows, cols):
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))          # Haar-uniform, not biased by QR's sign convention
    return q if rows >= cols else q.T


def _memory_cells() -> str:
    """'LSTM and GRU': the registered cells with a gate that keeps memory."""
    from .registry import CELLS, cell_type
    names = [n.upper() for n in CELLS if cell_type(n).memory_gate is not None]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _gate_blocks(model):
    """Row slices of a stacked (G*H, ...) tensor, keyed by gate letter."""
    H = model.hidden_size
    return {g: slice(j * H, (j + 1) * H) for j, g in enumerate(model.gates)}


@np.errstate(over="ignore", invalid="ignore")   # out-of-range results are refused below
def init_params(model, seed=0, *, scheme="pytorch", gain=1.0, spectral_radius=None,
                forget_bias=None, chrono=None, scale=1.0):
    """Initial parameters for ``model``.

    scheme: "pytorch" — every tensor U(-1/sqrt(H), 1/sqrt(H)) (torch.nn's default);
            "orthogonal" — each gate block of W_hh orthogonal, biases zero, the rest as pytorch;
            "gaussian" — W_hh ~ N(0, gain^2 / H_out), W_ih ~ N(0, 1 / fan_in), biases zero
            (the random-network ensemble of the edge-of-chaos literature).
    spectral_radius: rescale each gate block of W_hh to this spectral radius (largest singular
            value when the block is not square, i.e. with a projection).
    forget_bias: LSTM forget-gate bias (GRU: update gate z), put in bias_ih; bias_hh's block is 0.
    chrono: T_max for chrono initialisation (Tallec & Ollivier 2018): b_f ~ log U[1, T_max - 1],
            b_i = -b_f for LSTM; b_z ~ log U[1, T_max - 1] for GRU.
    scale: multiply every weight matrix (not biases), e.g. 4 to saturate the gates.
    """
    _refuse_huge(model)
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise OptionError(f"unknown init scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")
    keep_gate = model.cell.memory_gate
    for opt, val in (("forget_bias", forget_bias), ("chrono", chrono)):
        if val is not None and keep_gate is None:
            if type(model.cell).memory_gate is not None:     # a variant without the gate
                raise OptionError(f"{opt} needs a forget gate, which {model.describe()} lacks.")
            raise OptionError(f"{opt} applies to {_memory_cells()}, not to {model.kind.upper()}.")
    if chrono is not None:
        chrono = _real("chrono", chrono, low=2, strict=True,
                       what="T_max, a finite number of time steps > 2")
    if spectral_radius is not None:
        spectral_radius = _real("spectral_radius", spectral_radius, low=0,
                                what="a finite non-negative number")
    if forget_bias is not None:
        forget_bias = _real("forget_bias", forget_bias)
    # zero would give all-zero weights, which no scheme means
    gain = _real("gain", gain, low=0, strict=True, what="a finite positive number")
    scale = _real("scale", scale, low=0, strict=True, what="a finite positive number")
    seed = _seed(seed)

    rng = backend.rng(seed)
    H = model.hidden_size
    k = 1.0 / np.sqrt(H)
    blocks = _gate_blocks(model)
    params = {}
    for name, shape in model.param_shapes().items():
        base = name.split("_l")[0]
        if scheme == "pytorch" or (scheme == "orthogonal" and base not in ("weight_hh", "bias_ih", "bias_hh")):
            a = rng.uniform(-k, k, size=shape)
        elif base.startswith("bias"):
            a = np.zeros(shape)
        elif scheme == "orthogonal":              # weight_hh
            a = np.concatenate([_orthogonal(rng, H, shape[1]) for _ in model.gates], axis=0)
        elif base == "weight_hh":                 # gaussian
            a = rng.standard_normal(shape) * (gain / np.sqrt(shape[1]))
        else:
            a = rng.standard_normal(shape) / np.sqrt(shape[-1])
        zeros = model.cell.structural_zeros(base, H)
        if zeros is not None:                 # entries the cell's structure fixes at 0
            a = np.where(zeros, 0.0, a)
        if base == "weight_hh" and spectral_radius is not None:
            for s in blocks.values():
                blk = a[s]
                if blk.shape[0] == blk.shape[1]:
                    r = np.max(np.abs(np.linalg.eigvals(blk)))
                else:
                    r = np.linalg.norm(blk, 2)
                a[s] = blk * (spectral_radius / r) if r > 0 else blk
        if base.startswith("weight"):
            a = a * scale
        params[name] = a
    for name in params:
        base = name.split("_l")[0]
        if base not in ("bias_ih", "bias_hh") or keep_gate is None or keep_gate not in blocks:
            continue
        kg = blocks[keep_gate]
        if forget_bias is not None:
            params[name][kg] = forget_bias if base == "bias_ih" else 0.0
        if chrono is not None:
            if base == "bias_ih":
                b = np.log(rng.uniform(1.0, chrono - 1.0, size=H))
                params[name][kg] = b
                if keep_gate == "f" and "i" in blocks:     # LSTM: b_i = -b_f
                    params[name][blocks["i"]] = -b
            else:
                params[name][kg] = 0.0
                if keep_gate == "f" and "i" in blocks:
                    params[name][blocks["i"]] = 0.0
    limit = np.finfo(model.dtype).max
    bad = next((n for n, a in params.items() if not np.all(np.abs(a) <= limit)), None)
    if bad is not None:   # e.g. scale * spectral_radius beyond the dtype's range
        given = dict(scale=scale, spectral_radius=spectral_radius, gain=gain,
                     forget_bias=forget_bias)
        opts = ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None)
        raise OptionError(f"init options {opts} give {bad} values outside the "
                          f"{model.dtype.name} range.")
    return {n: backend.asarray(a, model.xp, dtype=model.dtype) for n, a in params.items()}
