"""A Keras 3 LSTM / GRU / SimpleRNN / Bidirectional layer, run by Keras itself on its backend.

The audit runs a copy of the layer built from its config with ``return_sequences=True``,
``return_state=True`` and ``zero_output_for_mask=True`` (what the oracle returns: every step, the
final state, zeros at padded steps), through ``layer.stateless_call`` with the weights it is
given, so the same code path serves any weights. Gradients: torch autograd on the torch backend,
``jax.vjp`` (jitted, like the forward) on the jax backend; other backends are audited forward
only. ``lengths=`` become Keras' (B, T) post-padding mask. ``go_backwards=True`` outputs come
back in reversed order and are flipped into input order, the oracle's convention.
"""
from __future__ import annotations

import numpy as np

from ... import backend
from ...errors import OptionError, require
from ..oracle import float64_model
from .base import Target, call_target


def is_keras_layer(obj) -> bool:
    return any(c.__module__.startswith("keras") and c.__name__ == "Layer" for c in type(obj).__mro__)


def _audit_copy(keras, layer):
    """A copy of ``layer`` that returns every step and the final state, zeros at masked steps."""
    cfg = layer.get_config()
    seq = {"return_sequences": True, "return_state": True, "zero_output_for_mask": True}
    if type(layer).__name__ == "Bidirectional" or hasattr(layer, "forward_layer"):
        for key in ("layer", "backward_layer"):
            if cfg.get(key):
                cfg[key] = {**cfg[key], "config": {**cfg[key]["config"], **seq}}
    else:
        cfg.update(seq)
    return type(layer).from_config(cfg)


def _keras_target(layer):
    keras = require("keras", "keras", "auditing a Keras layer")
    from ...layouts import keras as keras_layout
    from ...layouts.keras_live import read
    cell, tensors, options = read(layer)
    model, params = keras_layout.load(tensors, cell, **options)
    name = keras.backend.backend()
    dtype = backend.resolve_dtype(np.asarray(layer.get_weights()[0]).dtype.name)
    if name == "jax" and dtype == np.float64:
        import jax
        if not jax.config.jax_enable_x64:
            raise OptionError("a float64 Keras layer on the jax backend runs in float32 unless "
                              "jax_enable_x64 is set; call jax.config.update('jax_enable_x64', "
                              "True) before building the layer.")
    bidir = model.direction == "bidirectional"
    reverse = model.direction == "reverse"
    copy = _audit_copy(keras, layer)
    T0 = 2
    copy(np.zeros((1, T0, model.input_size), dtype))          # builds it
    # the layout name of each of the copy's variables, in the order stateless_call takes them
    subs = ((copy.forward_layer, "forward/"), (copy.backward_layer, "backward/")) if bidir \
        else ((copy, ""),)
    ids = {id(v): pre + v.name for sub, pre in subs for v in sub.trainable_variables}
    names = [ids[id(v)] for v in copy.trainable_variables]
    fixed = [v.value for v in copy.non_trainable_variables]
    missing = [n for n in names if n not in tensors]
    if missing:
        raise OptionError(f"the Keras layer's variables {', '.join(missing)} are not the "
                          f"kernel, recurrent_kernel and bias of a Keras 3 RNN cell.")
    n_state = len(model.state_shapes(1))

    def initial(state):
        """(dirs, B, H) state parts -> Keras' flat list: [h, c] per direction, forward first."""
        return [state[p][d] for d in range(model.num_directions) for p in range(n_state)]

    def outputs(out):
        """Keras' [y, states...] (batch-major) -> y (T, B, .), final state tuple (dirs, B, H)."""
        y, *st = out
        y = keras.ops.flip(y, axis=1) if reverse else y   # go_backwards: reversed -> input order
        fin = tuple([st[d * n_state + p] for d in range(model.num_directions)]
                    for p in range(n_state))
        return y, fin

    def mask_of(x_shape, lengths):
        """Keras' (B, T) mask of ``lengths``, as a tensor of the layer's backend."""
        if lengths is None:
            return None
        m = np.arange(x_shape[0])[None, :] < np.asarray(lengths)[:, None]
        return keras.ops.convert_to_tensor(m, dtype="bool")

    def call(weights, x, state, mask):
        out, _ = call_target(f"the audited Keras {type(layer).__name__}", copy.stateless_call,
                             weights, fixed, x, initial_state=state, mask=mask)
        return out

    if name == "torch":
        torch = require("torch", "torch", "auditing a Keras layer on the torch backend")

        def tt(a, grad=False):
            t = torch.as_tensor(np.ascontiguousarray(a), dtype=getattr(torch, dtype.name))
            return t.requires_grad_(True) if grad else t

        def forward(tens, x, state, lengths=None):
            with torch.no_grad():
                out = call([tt(tens[n]) for n in names], tt(np.swapaxes(x, 0, 1)),
                           [tt(s) for s in initial(state)], mask_of(x.shape, lengths))
            y, fin = outputs(out)
            return (np.swapaxes(_np(y), 0, 1),
                    tuple(np.stack([_np(a) for a in part]) for part in fin))

        def vjp(tens, x, state, dy, dstate, lengths=None):
            w = [tt(tens[n], True) for n in names]
            xs = tt(np.swapaxes(x, 0, 1), True)
            s0 = [tt(s, True) for s in initial(state)]
            y, fin = outputs(call(w, xs, s0, mask_of(x.shape, lengths)))
            loss = (y * tt(np.swapaxes(dy, 0, 1))).sum()
            for part, d in zip(fin, dstate):
                loss = loss + sum((a * tt(d[k])).sum() for k, a in enumerate(part))
            loss.backward()
            grads = {n: _np(t.grad) for n, t in zip(names, w)}
            grads["x"] = np.swapaxes(_np(xs.grad), 0, 1)
            return {**grads, **_state_grads([_np(s.grad) for s in s0], model, n_state)}
    elif name == "jax":
        import jax
        import jax.numpy as jnp

        def run(weights, xb, s0, mask):
            y, fin = outputs(call(weights, xb, s0, mask))
            return y, tuple(jnp.stack(part) for part in fin)

        run_jit = jax.jit(run)

        def forward(tens, x, state, lengths=None):
            y, fin = run_jit([jnp.asarray(tens[n]) for n in names], jnp.asarray(np.swapaxes(x, 0, 1)),
                             [jnp.asarray(s) for s in initial(state)], mask_of(x.shape, lengths))
            return np.swapaxes(np.asarray(y), 0, 1), tuple(np.asarray(a) for a in fin)

        @jax.jit
        def pullback(weights, xb, s0, mask, dyb, ds):
            out, back = jax.vjp(lambda w, xx, ss: run(w, xx, ss, mask), weights, xb, s0)
            return back((dyb, ds))

        def vjp(tens, x, state, dy, dstate, lengths=None):
            gw, gx, gs = pullback([jnp.asarray(tens[n]) for n in names],
                                  jnp.asarray(np.swapaxes(x, 0, 1)),
                                  [jnp.asarray(s) for s in initial(state)],
                                  mask_of(x.shape, lengths), jnp.asarray(np.swapaxes(dy, 0, 1)),
                                  tuple(jnp.asarray(d) for d in dstate))
            grads = {n: np.asarray(g) for n, g in zip(names, gw)}
            grads["x"] = np.swapaxes(np.asarray(gx), 0, 1)
            return {**grads, **_state_grads([np.asarray(g) for g in gs], model, n_state)}
    else:
        def forward(tens, x, state, lengths=None):
            out = call([np.asarray(tens[n]) for n in names], np.swapaxes(x, 0, 1),
                       list(initial(state)), mask_of(x.shape, lengths))
            y, fin = outputs(out)
            return (np.swapaxes(_np(y), 0, 1),
                    tuple(np.stack([_np(a) for a in part]) for part in fin))
        vjp = None

    return Target("keras", f"keras.layers.{type(layer).__name__} ({name} backend)", "keras",
                  model.kind, options, tensors, dtype, forward=forward, vjp=vjp,
                  model=float64_model(model), takes_lengths=True,
                  params={n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()})


def _np(t):
    t = t.detach().cpu() if hasattr(t, "detach") else t
    return np.asarray(t)


def _state_grads(flat, model, n_state):
    """Keras' flat initial-state gradients -> "h0" (and "c0") of shape (dirs, B, H)."""
    out = {}
    for p, key in enumerate(("h0", "c0")[:n_state]):
        out[key] = np.stack([flat[d * n_state + p] for d in range(model.num_directions)])
    return out

