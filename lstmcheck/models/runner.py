"""The stack runner: any cell over layers x directions x sequence lengths x truncation x clipping.

A layer-direction runs its cell's step over the time steps in processing order (t = T-1 .. 0 for
a reverse direction) after one GEMM projects every step's input, ``u = x W_ih^T + b_ih``
(``+ b_hh`` when the cell folds it in). Backward mirrors it and does the weight GEMMs of W_ih
over all steps at once, and those of the cell's :class:`~lstmcheck.models.cell.Outer` terms.

Sequence lengths (right padding) are a mask: at a padded step the state passes through
unchanged, the output is 0, and no gradient enters the cell; so a reverse direction starts at
step lengths[b] - 1 with the initial state, and a forward one ends with the state after step
lengths[b] - 1 (PyTorch packed sequences, ONNX sequence_lens).

A cell's ``fused`` execution (a whole sequence at once) replaces the step loop where it applies
(no lengths, ``fused=True``) and kernels.fused measured it faster for the shape; the tests hold
it to the step. The whole-sequence GEMMs run on the BLAS threads kernels.blas_threads chose.

Two options of a cell reach the runner (both off for RNN, LSTM and GRU): ``output_part``, the
state part that is the layer's output y_t (default 0, h), and ``below``, the name of a state part
that the cell takes, at the same step, from the layer below (the depth-gated LSTM's c^L_t, the
Grid LSTM's depth memory). Layer k > 0 then receives the sequence of that part of layer k - 1 in
the same direction (None at layer 0), and its step_backward's fourth value, dL/d(below), flows
back into layer k - 1 at the same step, like dL/dy does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import parallel
from .cell import Outer


@dataclass
class LayerTape:
    """One layer-direction's record, in processing order."""

    xin: object                 # (T, B, D) the layer's input
    mask: object = None         # (T, B) bool, True at real steps; None without lengths
    caches: list = None         # per-step caches of the cell's step (readable path)
    fused: object = None        # the fused execution's own tape
    up: object = None           # (T, B, .) the state part the layer above takes (cell.below)


@dataclass
class Tape:
    """What backward needs; opaque to users."""

    x: object                      # (T, B, D) time-major input
    params: dict
    layers: list                   # LayerTape per (layer, direction), layer-major
    batch_first: bool
    lengths: object = None
    extras: dict = field(default_factory=dict)
    owner: object = field(default=None, repr=False)   # the model whose forward wrote it


@dataclass
class Trace:
    """Per-step state gradients from backward, in forward time order (index t = 0..T-1).

    ``dh[k]`` is dL/dh_t of layer-direction k (k = layer * dirs + direction), shape (T, B, H_out);
    ``dc[k]`` the same for the LSTM cell state (None for cells with one state part).
    ``grad_norm`` is the global parameter-gradient norm before clipping.
    """

    dh: list
    dc: list
    grad_norm: float = 0.0
    clipped: bool = False


# ----------------------------------------------------------------------------- one layer
def project(xp, cell, p, xin):
    """u = x W_ih^T + b_ih (+ b_hh when the cell folds it in), all time steps in one GEMM."""
    T, B, D = xin.shape
    u = parallel.matmul(xin.reshape(T * B, D), p["weight_ih"].T).reshape(T, B, -1)
    u += p["bias_ih"]
    if cell.fold_bias_hh:
        u += p["bias_hh"]
    return u


def full_state(xp, cell, state, H):
    """The visible state parts plus zeros for the cell's hidden ones (fgr's gate activations)."""
    sizes = cell.state_sizes(H)
    B = state[0].shape[0]
    return tuple(state) + tuple(xp.zeros((B, s), state[0].dtype) for s in sizes[len(state):])


def below_index(cell):
    """The index of the state part the layer above takes (cell.below), or None."""
    if cell.below is None:
        return None
    return (cell.state_names + cell.hidden_states).index(cell.below)


def layer_forward(xp, cell, p, xin, state0, mask=None, fused=True, below=None):
    """Outputs y_t (T, B, H_out), the final state (visible parts) and a LayerTape.
    below: (T, B, .) the lower layer's state part a ``cell.below`` cell takes (None: layer 0)."""
    u = project(xp, cell, p, xin)
    if fused and mask is None and cell.fused is not None and _fused_pays(xp, cell, p, xin, state0):
        ys, final, ftape = cell.fused.forward(xp, p, u, state0)
        return ys, final, LayerTape(xin, fused=ftape)
    ys, final, caches, up = _steps(xp, cell, p, u, state0, mask, below)
    return ys, final, LayerTape(xin, mask, caches, up=up)


def _fused_pays(xp, cell, p, xin, state0):
    """Whether the fused execution is the faster one for this layer, as kernels.fused measures
    it on forward + backward of prefixes of the real layer: both compute the same numbers, the
    fused one with fixed costs that only longer sequences repay, so the length is part of the
    shape class."""
    from . import kernels
    if not all(type(a) is xp.ndarray for a in p.values()):
        return True       # the checker's per-replica stand-ins: forward only, fused as always

    def candidates(steps):
        short = xin[:steps]
        dfinal = tuple(xp.zeros_like(a) for a in state0)

        def fused():
            ys, _, ftape = cell.fused.forward(xp, p, project(xp, cell, p, short), state0)
            layer_backward(xp, cell, p, LayerTape(short, fused=ftape), xp.zeros_like(ys), dfinal)

        def step():
            ys, _, caches, _ = _steps(xp, cell, p, project(xp, cell, p, short), state0, None)
            layer_backward(xp, cell, p, LayerTape(short, None, caches), xp.zeros_like(ys), dfinal)
        return {"fused": fused, "step": step}
    return kernels.fused(xp, xin.dtype, xin.shape[1], p["weight_hh"].shape[0], xin.shape[0],
                         candidates)


def _steps(xp, cell, p, u, state0, mask, below=None):
    """The readable execution: the cell's step at every time step. Also returns the stacked
    state part the layer above takes (cell.below), or None."""
    H = p["weight_hh"].shape[0] // len(cell.gates)
    state = full_state(xp, cell, state0, H)
    o, j = cell.output_part, below_index(cell)
    ys, caches, up = [], [], []
    for t in range(u.shape[0]):
        if j is None:
            new, cache = cell.step(xp, p, u[t], state)
        else:
            new, cache = cell.step(xp, p, u[t], state, None if below is None else below[t])
        if mask is not None:
            m = mask[t][:, None]
            new = tuple(xp.where(m, a, s) for a, s in zip(new, state))
            ys.append(xp.where(m, new[o], 0))
        else:
            ys.append(new[o])
        if j is not None:
            up.append(new[j])
        caches.append(cache)
        state = new
    return xp.stack(ys), state[:len(state0)], caches, (xp.stack(up) if up else None)


def _accumulate(grads, name, g):
    """Collect one step's gradient for ``name``: arrays are summed, Outer terms kept for one
    GEMM over all steps (see finish)."""
    for term in (g if isinstance(g, list) else [g]):
        if isinstance(term, Outer):
            grads.setdefault(name, []).append(term)
        else:
            grads.setdefault(name + "\0dense", []).append(term)


def _finish(xp, grads, p):
    """Sum the collected gradients: Outer terms with the same rows as one stacked GEMM."""
    out = {}
    for name in dict.fromkeys(k.split("\0")[0] for k in grads):
        shape = p[name].shape
        total = None
        dense = grads.get(name + "\0dense", [])
        if dense:
            total = sum(dense[1:], dense[0])
        blocks = {}
        for o in grads.get(name, []):
            key = (o.rows.start, o.rows.stop) if o.rows is not None else None
            blocks.setdefault(key, []).append(o)
        for key, terms in blocks.items():
            a = xp.concatenate([o.a for o in terms], axis=0)
            b = xp.concatenate([o.b for o in terms], axis=0)
            g = a.T @ b
            if key is not None:
                full = xp.zeros(shape, g.dtype)
                full[key[0]:key[1]] = g
                g = full
            total = g if total is None else total + g
        out[name] = total
    return out


def layer_backward(xp, cell, p, lt, dy, dfinal, *, truncate=None, trace=False, per_step=False,
                   dup=None, want_below=False):
    """dL/du (T, B, G*H), dL/d(initial state) (visible parts), the cell's parameter gradients,
    the per-step state gradients (a tuple of (T, B, .) arrays, or None without ``trace``) and,
    with ``per_step``, every step's parameter-gradient terms (readable path only).

    dy: dL/dy_t of every step (processing order); dfinal: dL/d(final state), visible parts.
    truncate=k: no gradient crosses the step boundaries t = k, 2k, ... (processing order).
    dup: (T, B, .) dL/d(the state part the layer above took), for ``cell.below`` cells;
    want_below: also return dL/d(this layer's own below input) (T, B, .), or None at layer 0."""
    if lt.fused is not None and not per_step:
        du, ds0, grads, steps = cell.fused.backward(xp, p, lt.fused, dy, dfinal,
                                                    truncate=truncate, trace=trace)
        return (du, ds0, grads, (steps if trace else None), None) + ((None,) if want_below else ())
    if lt.caches is None:
        raise ValueError("per-step gradients need the readable path (fused=False)")
    T = dy.shape[0]
    H = p["weight_hh"].shape[0] // len(cell.gates)
    carried = full_state(xp, cell, tuple(dfinal), H)
    n_vis = len(dfinal)
    o, j = cell.output_part, below_index(cell)
    dus, grads, steps, terms, dbelow = [None] * T, {}, [None] * T, [None] * T, [None] * T
    for t in reversed(range(T)):
        d = list(carried)
        d[o] = d[o] + dy[t]
        if dup is not None:
            d[j] = d[j] + dup[t]
        d = tuple(d)
        if lt.mask is not None:                 # padding: the state passes through untouched
            m = lt.mask[t][:, None]
            d_cell = tuple(a * m for a in d)
            passthrough = tuple(a * ~m for a in carried)
        else:
            d_cell, passthrough = d, None
        cache = lt.caches[t]
        if trace:
            steps[t] = cell.state_gradient(xp, p, cache, d_cell)[:n_vis]
        if j is None:
            du, dprev, dp = cell.step_backward(xp, p, cache, d_cell)
        else:
            du, dprev, dp, dbelow[t] = cell.step_backward(xp, p, cache, d_cell)
        if passthrough is not None:
            dprev = tuple(a + b for a, b in zip(dprev, passthrough))
        dus[t] = du
        if per_step:
            terms[t] = dp
        for name, g in dp.items():
            _accumulate(grads, name, g)
        carried = dprev
        if truncate and t % truncate == 0 and t > 0:
            carried = tuple(xp.zeros_like(a) for a in carried)
    traced = tuple(xp.stack([s[i] for s in steps]) for i in range(n_vis)) if trace else None
    out = (xp.stack(dus), carried[:n_vis], _finish(xp, grads, p), traced,
           terms if per_step else None)
    if want_below:
        out += (None if j is None or dbelow[0] is None else xp.stack(dbelow),)
    return out


# ----------------------------------------------------------------------------- the stack
def layer_params(model, params, suffix):
    return {b: params[b + suffix] for b in model.base_names()}


def grad_norm(xp, grads) -> float:
    """The global norm of the parameter gradients {name: array}, its dot products on one BLAS
    thread: a threaded one leaves OpenBLAS's workers spinning beside lstmcheck's threads."""
    with parallel.blas_threads(1):
        return sum(float(xp.vdot(g, g).real) for g in grads.values()) ** 0.5


def _gemm_policy(model, x):
    """Threads for the model's whole-sequence GEMMs (the input projection, the weight gradients:
    parallel.matmul) and NumPy's BLAS, chosen by kernels.blas_threads for the largest of them;
    per-step GEMMs run in parallel.parallel_blocks, which holds BLAS at one thread."""
    from .. import backend
    from . import kernels
    xp = backend.array_module(x)
    T, B, D = x.shape
    G = model.num_gates * model.hidden_size
    n = kernels.blas_threads(xp, x.dtype, T * B, max(D, model.hidden_size), G)
    return parallel.sequence_gemms(n)


def stack_forward(model, params, x, state0, lengths=None, fused=True, flip=()):
    """Every layer and direction; x time-major, state0 a tuple of (L*dirs, B, .) arrays.
    Returns (y, final state tuple, Tape). ``flip``: (layer, direction index) pairs run the
    wrong way in time (the audit's model of that mistake)."""
    with _gemm_policy(model, x):
        return _stack_forward(model, params, x, state0, lengths, fused, flip)


def _stack_forward(model, params, x, state0, lengths, fused, flip):
    from .. import backend
    xp = backend.array_module(x)
    T = x.shape[0]
    mask = None
    if lengths is not None:
        mask = xp.arange(T)[:, None] < xp.asarray(lengths)[None, :]
    dirs = model.directions
    layers, finals, revs = [], [[] for _ in state0], []
    inp = x
    for k in range(model.num_layers):
        outs = []
        for d, direction in enumerate(dirs):
            rev = (direction == "reverse") != ((k, d) in flip)
            idx = k * len(dirs) + d
            p = layer_params(model, params, model.param_suffix(k, direction))
            xin = inp[::-1] if rev else inp
            below = None
            if model.cell.below is not None and k > 0:    # same direction, one layer down
                below = layers[idx - len(dirs)].up
                below = below[::-1] if revs[idx - len(dirs)] != rev else below
            y, fin, lt = layer_forward(xp, model.cell, p, xin, tuple(a[idx] for a in state0),
                                       mask=None if mask is None else (mask[::-1] if rev else mask),
                                       fused=fused, below=below)
            layers.append(lt)
            revs.append(rev)
            outs.append(y[::-1] if rev else y)
            for lst, a in zip(finals, fin):
                lst.append(a)
        inp = outs[0] if len(dirs) == 1 else xp.concatenate(outs, axis=-1)
    final = tuple(xp.stack(lst) for lst in finals)
    return inp, final, Tape(x=x, params=params, layers=layers, batch_first=model.batch_first,
                            lengths=lengths, owner=model)


def _add(grads, name, g):
    grads[name] = g if name not in grads else grads[name] + g


def stack_backward(model, tape, dy, dfinal, *, truncate=None, trace=False):
    """Gradients of every parameter and of x and the initial state, plus a Trace."""
    with _gemm_policy(model, tape.x):
        return _stack_backward(model, tape, dy, dfinal, truncate, trace)


def _stack_backward(model, tape, dy, dfinal, truncate, trace):
    from .. import backend
    x, params = tape.x, tape.params
    xp = backend.array_module(x)
    T, B, _ = x.shape
    Ho = model.output_size
    dirs = model.directions
    n_ld = model.num_layers * len(dirs)
    grads = {}
    dstate0 = [[None] * n_ld for _ in dfinal]
    tr = Trace(dh=[None] * n_ld, dc=[None] * n_ld)
    dups = [None] * n_ld            # dL/d(the part each layer-direction passed up), cell.below
    d_out = dy
    for k in reversed(range(model.num_layers)):
        d_in = None
        for d, direction in enumerate(dirs):
            rev = direction == "reverse"
            s = model.param_suffix(k, direction)     # tied layers add into the same names
            idx = k * len(dirs) + d
            p = layer_params(model, params, s)
            lt = tape.layers[idx]
            dyk = d_out[..., d * Ho:(d + 1) * Ho]
            if rev:
                dyk = dyk[::-1]
            du, ds0, dp, steps, _, dbelow = layer_backward(
                xp, model.cell, p, lt, dyk, tuple(a[idx] for a in dfinal),
                truncate=truncate, trace=trace, dup=dups[idx], want_below=True)
            if dbelow is not None and k > 0:
                dups[idx - len(dirs)] = dbelow
            for j, a in enumerate(ds0):
                dstate0[j][idx] = a
            if trace:
                flip = (lambda a: a[::-1]) if rev else (lambda a: a)   # noqa: E731
                tr.dh[idx] = flip(steps[0])
                tr.dc[idx] = flip(steps[1]) if len(steps) > 1 and steps[1] is not None else None
            G = du.shape[-1]
            du2 = du.reshape(T * B, G)
            db = du2.sum(axis=0)
            _add(grads, "weight_ih" + s, parallel.matmul(du2.T, lt.xin.reshape(T * B, -1)))
            _add(grads, "bias_ih" + s, db)
            if model.cell.fold_bias_hh:
                _add(grads, "bias_hh" + s, db.copy())
            for n, g in dp.items():
                _add(grads, n + s, g)
            dxin = parallel.matmul(du2, p["weight_ih"]).reshape(T, B, -1)
            if rev:
                dxin = dxin[::-1]
            d_in = dxin if d_in is None else d_in + dxin
        d_out = d_in
    grads = {n: grads[n] for n in model.param_names}   # PyTorch order
    return grads, d_out, tuple(xp.stack(parts) for parts in dstate0), tr
