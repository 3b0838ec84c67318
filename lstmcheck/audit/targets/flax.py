"""A flax.linen recurrent cell (or nn.RNN around one) with its variables, ``(module, variables)``,
run by Flax's own ``nn.RNN`` scan under ``jax.jit``; gradients by ``jax.vjp``, jitted too.

Traced once per shape, a cell audit takes about a second where calling the cell step by step
from Python (an un-jitted callable) took about a minute. The target's tensors are shown in the keras
layout (kernel (in, G*U), recurrent_kernel, bias: Flax's (in, out) kernels side by side): the
jitted function builds Flax's parameter tree from them (flax_live.flax_tree), so jax
differentiates through that map and the gradients arrive in the same names. ``lengths=`` are Flax's ``seq_lengths``; Flax leaves outputs at padded steps
undefined, so the target sets them to zero (the oracle's convention) before comparing.
"""
from __future__ import annotations

import numpy as np

from ... import backend
from ...errors import OptionError, require
from ..gradient_map import GradientMap
from ..oracle import _layouts, dump_layout, float64_model, load_layout
from .base import Target, call_target


def is_flax_pair(obj) -> bool:
    return (isinstance(obj, tuple) and len(obj) == 2
            and (type(obj[0]).__module__ or "").startswith("flax"))


def _flax_target(pair):
    jax = require("jax", "jax", "auditing a Flax module")
    require("flax", "flax", "auditing a Flax module")
    import jax.numpy as jnp
    import flax.linen as nn
    from ...layouts.flax_live import flax_tree, from_flax, unwrap
    module, variables = pair
    model, params = from_flax(module, variables)
    cell, kind, reverse, keep_order = unwrap(module)
    dtype = backend.resolve_dtype(model.dtype)
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise OptionError("float64 Flax parameters run in float32 unless jax_enable_x64 is set; "
                          "call jax.config.update('jax_enable_x64', True) first.")
    rnn = nn.RNN(cell, return_carry=True, reverse=reverse, keep_order=True)
    s = "_l0_reverse" if reverse else "_l0"
    canon = [b + s for b in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    m64 = float64_model(model)
    p64 = {n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()}
    # shown in the keras layout (kernels (in, G*U) as Flax's, one name set for both directions)
    tensors = {n: np.asarray(a, dtype) for n, a in dump_layout("keras", m64, p64).items()}
    options = {**_layouts().options("keras", m64), **({"direction": "reverse"} if reverse else {})}
    gmap = GradientMap("keras", tensors, kind, options)
    _, const = load_layout("keras", {n: np.zeros(a.shape) for n, a in tensors.items()}, kind, options)
    names = gmap.names
    lstm = kind == "lstm"

    def canonical(w):
        """The oracle's tensors from the keras ones: a selection (GradientMap.source) plus the
        constants the layout lacks, so jax differentiates through it exactly."""
        flat = jnp.concatenate([w[n].ravel() for n in names])
        out = {}
        for n in canon:
            src = gmap.source[n]
            picked = jnp.where(jnp.asarray(src >= 0), flat[np.maximum(src, 0)], 0)
            out[n] = const[n].astype(dtype) + picked.reshape(const[n].shape)
        return out

    def run(w, xb, state, lengths):
        """(y (B, T, H), final state parts (1, B, H)) of Flax's RNN on batch-major xb."""
        c = canonical(w)
        tree = flax_tree(kind, *(c[n] for n in canon), jnp)
        carry = (state[1][0], state[0][0]) if lstm else state[0][0]    # Flax's LSTM carry: (c, h)
        fin, y = rnn.apply({"params": {"cell": tree}}, xb, initial_carry=carry,
                           seq_lengths=lengths)
        if lengths is not None:   # undefined in Flax past each length; zero in the oracle
            y = jnp.where((jnp.arange(xb.shape[1])[None, :] < lengths[:, None])[..., None], y, 0)
        parts = (fin[1], fin[0]) if lstm else (fin,)
        return y, tuple(p[None] for p in parts)

    run_jit = jax.jit(run)

    @jax.jit
    def pullback(w, xb, state, lengths, dyb, dstate):
        _, back = jax.vjp(lambda ww, xx, ss: run(ww, xx, ss, lengths), w, xb, state)
        return back((dyb, dstate))

    def j(a):
        return jnp.asarray(np.asarray(a, dtype))

    def lens(lengths):
        return None if lengths is None else jnp.asarray(np.asarray(lengths, np.int32))

    what = f"the audited Flax {type(cell).__name__}"

    def forward(tens, x, state, lengths=None):
        y, fin = call_target(what, run_jit, {n: j(tens[n]) for n in names}, j(np.swapaxes(x, 0, 1)),
                             tuple(j(a) for a in state), lens(lengths))
        return np.swapaxes(np.asarray(y), 0, 1), tuple(np.asarray(a) for a in fin)

    def vjp(tens, x, state, dy, dstate, lengths=None):
        gw, gx, gs = call_target(what, pullback, {n: j(tens[n]) for n in names},
                                 j(np.swapaxes(x, 0, 1)), tuple(j(a) for a in state),
                                 lens(lengths), j(np.swapaxes(dy, 0, 1)),
                                 tuple(j(a) for a in dstate))
        out = {n: np.asarray(gw[n]) for n in names}
        out["x"] = np.swapaxes(np.asarray(gx), 0, 1)
        out.update({k: np.asarray(g) for k, g in zip(("h0", "c0"), gs)})
        return out

    note = "" if not reverse or keep_order else ", keep_order=False flipped to input order"
    return Target("flax", f"flax.linen.{type(cell).__name__} (jax.jit{note})", "keras",
                  model.kind, options, tensors, dtype, forward=forward, vjp=vjp, model=m64,
                  takes_lengths=True, params=load_layout("keras", tensors, kind, options)[1])
