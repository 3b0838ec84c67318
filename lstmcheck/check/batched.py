"""Batched perturbations for the project's models: K perturbed parameter sets in one forward.

Sequences in a batch never interact, so K replicas of the B sequences become one batch of K*B
(replica k owns batch rows k*B .. k*B+B-1). The model's forward touches parameters only through
``a @ W.T``, ``a @ W[rows].T`` and broadcasting (models/runner.py), so:

- a weight matrix is replaced by :class:`ReplicaMatrix`, whose ``.T`` multiplies like W.T and then
  adds each replica's own correction: a rank-one term for a one-element perturbation, a small
  per-replica GEMM for a dense direction. The shared product stays one big GEMM;
- a bias becomes a per-row (K*B, n) array, a peephole matrix (n, K*B, H);
- x, h0, c0 are tiled along the batch axis and perturbed in place.

For the complex step the shared real weights multiply the real and imaginary parts of the
activations separately (two real GEMMs instead of one complex one).
"""
from __future__ import annotations

import functools

import numpy as np

from .. import backend, parallel
from ..models import kernels, replica_lstm

STATE_NAMES = ("h0", "c0")
# rows of one replica batch on the loss-only path: a step's (rows, 4H) gate block stays in a
# core's L2 for H up to 128; 256..1024 rows measured within a few percent of each other
REPLICA_ROWS = 512
AUDIT_ENV = "LSTMCHECK_AUDIT_ROUTE"
REPLICA_TIMING_STEPS = 4      # steps of the replica batch its route is timed on (a step's cost
                              # does not change along the sequence)


def _audit_route():
    """'replicas' (the loss-only replica forward where it applies) or 'model' (the model's own
    forward with per-replica stand-ins); $LSTMCHECK_AUDIT_ROUTE overrides the default."""
    return kernels.forced(AUDIT_ENV, ("replicas", "model")) or "replicas"


def _matmul(a, wt):
    """a @ wt with a real wt: complex a as two real GEMMs (half the work of a complex GEMM)."""
    if np.iscomplexobj(a) and not np.iscomplexobj(wt):
        xp = backend.array_module(a)
        out = xp.empty(a.shape[:-1] + wt.shape[-1:], a.dtype)
        out.real[...] = a.real @ wt
        out.imag[...] = a.imag @ wt
        return out
    return a @ wt


class ReplicaMatrix:
    """A weight matrix W shared by K replicas of B rows, each with its own perturbation.

    ``sparse``: (replica, row, column, delta) arrays, one entry per perturbed element.
    ``dense``:  (V, s): replica k uses W + s[k] V[k].
    """

    __array_ufunc__ = None          # make ndarray @ ReplicaMatrix.T defer to __rmatmul__

    def __init__(self, W, K, B, sparse=None, dense=None):
        self.W, self.K, self.B = W, K, B
        self.sparse, self.dense = sparse, dense
        self.shape, self.dtype = W.shape, W.dtype

    @property
    def T(self):
        return _Transposed(self)

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError("ReplicaMatrix supports row slices only")
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise TypeError("ReplicaMatrix supports contiguous row slices only")
        sparse = dense = None
        if self.sparse is not None:
            k, r, c, d = self.sparse
            keep = (r >= start) & (r < stop)
            sparse = (k[keep], r[keep] - start, c[keep], d[keep])
        if self.dense is not None:
            V, s = self.dense
            dense = (V[:, start:stop], s)
        return ReplicaMatrix(self.W[start:stop], self.K, self.B, sparse, dense)

    def rmatmul(self, a):
        """a @ W_k.T for each replica k's rows of a (a: (R*K*B, in), replica-major within R)."""
        out = _matmul(a, self.W.T)
        K, B = self.K, self.B
        if self.sparse is not None and len(self.sparse[0]):
            k, r, c, d = self.sparse
            if np.iscomplexobj(d) and not np.iscomplexobj(out):
                out = out.astype(np.result_type(out.dtype, d.dtype))
            out4 = out.reshape(-1, K, B, out.shape[-1])
            a4 = a.reshape(-1, K, B, a.shape[-1])
            # advanced indices around a slice put the replica axis first: (n, R, B)
            out4[:, k, :, r] += a4[:, k, :, c] * d[:, None, None]
        if self.dense is not None:
            V, s = self.dense
            R = a.shape[0] // (K * B)
            ak = a.reshape(R, K, B, -1).transpose(1, 0, 2, 3).reshape(K, R * B, -1)
            corr = (ak @ V.transpose(0, 2, 1)) * s[:, None, None]
            corr = corr.reshape(K, R, B, -1).transpose(1, 0, 2, 3).reshape(out.shape)
            out = out + corr
        return out


class _Transposed:
    __array_ufunc__ = None

    def __init__(self, m):
        self.m = m
        self.shape = m.shape[::-1]
        self.dtype = m.dtype

    def __rmatmul__(self, a):
        return self.m.rmatmul(a)


class ReplicaRows(np.ndarray):
    """A per-row (K*B, n) bias. A bare slice selects columns, as it would on the (n,) original
    (``b[rz]`` in the GRU); arithmetic returns plain arrays."""

    def __getitem__(self, key):
        base = self.view(np.ndarray)
        if isinstance(key, slice):
            return base[..., key]
        return base[key]

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(i.view(np.ndarray) if isinstance(i, ReplicaRows) else i for i in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, ReplicaRows) else o
                                  for o in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)


class ModelEvaluator:
    """f(theta) = sum w_y*y + sum w_h*h_T (+ sum w_c*c_T) for the project's model, where theta
    holds every parameter plus 'x', 'h0' (and 'c0'); perturbed replicas run batched."""

    batched = True

    def __init__(self, model, theta, weights, rows_per_batch=1024):
        self.model = model
        self.theta = theta                 # host arrays (NumPy); the evaluator is host-side
        self.w = weights                   # {'y': (T,B,F), 'h0': (L,B,H), 'c0': ...}
        self.dtype = np.dtype(theta["x"].dtype)
        self.T, self.B = theta["x"].shape[:2]
        self.states = [n for n in STATE_NAMES if n in theta]
        # ~1024 rows keep a step's (rows, G*H) gate block within a core's L2 cache (measured)
        self.K_max = max(1, rows_per_batch // self.B)
        self.calls = 0                     # replicas evaluated
        self._f0_rows = None               # (f(theta), per-sequence terms), see _unperturbed
        base = model.base_names()
        self.matrices = {n for n in model.param_names if n.partition("_l")[0] in base
                         and len(model.param_shapes()[n]) == 2
                         and not n.startswith("weight_peep")}
        # one-element perturbations of a vanilla LSTM (weights, x, h0, c0): the loss-only
        # replica forward
        self.replicas = replica_lstm.applies(model) and _audit_route() == "replicas"
        kernels.prepare(np, self.dtype)    # before the replica chunks share the cores

    # ---- loss of each replica
    def _loss(self, y, final, K):
        B = self.B
        y4 = y.reshape(y.shape[0], K, B, -1)
        f = np.einsum("tkbf,tbf->k", y4, self.w["y"])
        for n, s in zip(self.states, final):
            f = f + np.einsum("lkbh,lbh->k", s.reshape(s.shape[0], K, B, -1), self.w[n])
        return f

    def abs_scale(self):
        """sum |w| |outputs|: the size of the terms f sums (its rounding is about u times this)."""
        x = self.theta["x"]
        y, final, _ = self.model.run_forward({n: self.theta[n] for n in self.model.param_names},
                                             x, tuple(self.theta[n] for n in self.states))
        s = float(np.abs(self.w["y"]).ravel() @ np.abs(y).ravel())
        for n, a in zip(self.states, final):
            s += float(np.abs(self.w[n]).ravel() @ np.abs(a).ravel())
        return s

    def value(self):
        self.calls += 1
        return float(np.real(self._run_chunk(1, {}, {}, cplx=False)[0]))

    # ---- one batched forward of K replicas
    def _run_chunk(self, K, sparse, dense, cplx):
        """sparse: {name: (k, flat_idx, delta)}; dense: {name: (V (K, *shape), s (K,))}."""
        if not self.model.cell.batchable:
            return self._run_each(K, sparse, dense, cplx)
        B, dt = self.B, self.dtype
        cdt = backend.complex_of(dt) if cplx else dt
        p = {}
        shapes = self.model.param_shapes()
        for n in self.model.param_names:
            W = self.theta[n]
            sp, de = sparse.get(n), dense.get(n)
            if n in self.matrices:
                if sp is not None:
                    k, j, d = sp
                    r, c = np.unravel_index(j, shapes[n])
                    sp = (k, r, c, d)
                p[n] = ReplicaMatrix(W, K, B, sparse=sp, dense=de)
            elif sp is None and de is None:
                p[n] = W
            elif W.ndim == 1:                               # bias: one row per batch row
                rep = np.empty((K, B) + W.shape, np.result_type(W, cdt))
                rep[...] = W
                if sp is not None:
                    k, j, d = sp
                    rep[k, :, j] += d[:, None]
                if de is not None:
                    V, s = de
                    rep += (V * s[:, None])[:, None, :]
                p[n] = rep.reshape(K * B, -1).view(ReplicaRows)
            else:                                           # peephole (n, H) -> (n, K*B, H)
                rep = np.empty((W.shape[0], K, B, W.shape[1]), np.result_type(W, cdt))
                rep[...] = W[:, None, None, :]
                if sp is not None:
                    k, j, d = sp
                    r, c = np.unravel_index(j, W.shape)
                    rep[r, k, :, c] += d[:, None]
                if de is not None:
                    V, s = de
                    rep += (V * s[:, None, None]).transpose(1, 0, 2)[:, :, None, :]
                p[n] = rep.reshape(W.shape[0], K * B, W.shape[1])
        inputs = {}
        for n in ("x", *self.states):
            a = self.theta[n]                               # (T|L, B, .) -> (T|L, K*B, .)
            rep = np.empty((a.shape[0], K, B, a.shape[2]), cdt)
            rep[...] = a[:, None]
            if n in sparse:
                k, j, d = sparse[n]
                t, b, c = np.unravel_index(j, a.shape)
                rep[t, k, b, c] += d
            if n in dense:
                V, s = dense[n]
                rep += (V * s[:, None, None, None]).transpose(1, 0, 2, 3)
            inputs[n] = rep.reshape(a.shape[0], K * B, a.shape[2])
        y, final, _ = self.model.run_forward(p, inputs["x"], tuple(inputs[n] for n in self.states))
        return self._loss(y, final, K)

    def _run_each(self, K, sparse, dense, cplx):
        """The replicas one forward each, on plain perturbed arrays: for cells that use their
        parameters in ways the stand-ins above cannot imitate (a user's cell)."""
        cdt = backend.complex_of(self.dtype) if cplx else self.dtype
        names = [*self.model.param_names, "x", *self.states]
        out = np.empty(K, cdt)
        for k in range(K):
            v = {}
            for n in names:
                a = self.theta[n].astype(np.result_type(self.theta[n], cdt), copy=True)
                if n in sparse:
                    kk, j, d = sparse[n]
                    np.add.at(a.reshape(-1), j[kk == k], d[kk == k])
                if n in dense:
                    V, s = dense[n]
                    a += s[k] * V[k]
                v[n] = a
            y, final, _ = self.model.run_forward({n: v[n] for n in self.model.param_names},
                                                 v["x"], tuple(v[n] for n in self.states))
            out[k] = self._loss(y, final, 1)[0]
        return out

    # ---- the evaluator interface (see evaluate.py)
    def _chunked(self, n, run, K_max=None):
        """run(lo, hi) -> f for replicas lo..hi-1, in chunks of at most K_max replicas; chunks
        are independent, so the CPU threads take equal shares of them."""
        threads = parallel.num_threads()
        chunks = -(-n // (K_max or self.K_max))
        chunks = -(-chunks // threads) * threads if n >= threads else chunks
        edges = [n * j // chunks for j in range(chunks + 1)]
        out = [None] * chunks

        def block(c0, c1):
            for c in range(c0, c1):
                if edges[c + 1] > edges[c]:
                    out[c] = run(edges[c], edges[c + 1])
        parallel.parallel_blocks(np, chunks, block, work=parallel.MIN_WORK)
        self.calls += n
        parts = [o for o in out if o is not None]
        return np.concatenate(parts) if parts else np.empty(0)

    def elements(self, name, idx, deltas):
        idx, deltas = np.asarray(idx), np.asarray(deltas)
        cplx = np.iscomplexobj(deltas)
        if name in ("x", *self.states):      # one sequence per replica (see _run_sequences)
            f0, rows = self._unperturbed()   # once, before the threads share it
            rest = f0 - rows                 # f(theta) without each sequence's own term
            if self.replicas and not cplx:   # the loss-only forward, a column per replica
                f = self._chunked(len(idx), lambda lo, hi: self._run_sequence_replicas(
                    name, idx[lo:hi], deltas[lo:hi], rest), K_max=REPLICA_ROWS)
            else:
                f = self._chunked(len(idx), lambda lo, hi: self._run_sequences(
                    name, idx[lo:hi], deltas[lo:hi], cplx, rest), K_max=self.K_max * self.B)
        elif self.replicas and not cplx and name in replica_lstm.PERTURBABLE:
            f = self._chunked(len(idx), lambda lo, hi: self._run_replicas(
                name, idx[lo:hi], deltas[lo:hi]), K_max=max(1, REPLICA_ROWS // self.B))
        else:
            f = self._chunked(len(idx), lambda lo, hi: self._run_chunk(
                hi - lo, {name: (np.arange(hi - lo), idx[lo:hi], deltas[lo:hi])}, {}, cplx))
        return f.astype(complex if cplx else float, copy=False)

    def _run_replicas(self, name, idx, deltas):
        """f for one-element perturbations of W_ih, W_hh, b_ih or b_hh (models/replica_lstm.py)."""
        rc = np.unravel_index(idx, self.theta[name].shape)
        args = (name, rc[0], rc[1] if len(rc) > 1 else None, deltas)
        route = self._replica_route(replica_lstm.replica_losses, len(deltas) * self.B, args)
        return replica_lstm.replica_losses(self.theta, self.w, *args, route=route)

    def _run_sequence_replicas(self, name, idx, deltas, rest):
        """f for one-element perturbations of x, h0 or c0 by the loss-only replica forward: one
        column per replica, running only the sequence it perturbs (see _run_sequences)."""
        lead, b, col = np.unravel_index(idx, self.theta[name].shape)
        args = (name, lead, b, col, deltas)
        route = self._replica_route(replica_lstm.sequence_losses, len(deltas), args)
        return rest[b] + replica_lstm.sequence_losses(self.theta, self.w, *args, route=route)

    def _replica_route(self, losses, rows, args):
        """kernels.replica_route for ``rows`` columns of ``losses(theta, w, *args, route=)``,
        timed on the real replica batch's first few steps."""
        def candidates():
            theta, w = replica_lstm.prefix(self.theta, self.w, REPLICA_TIMING_STEPS)
            return {r: functools.partial(losses, theta, w, *args, route=r)
                    for r in kernels.REPLICA_ROUTES}
        return kernels.replica_route(self.dtype, rows, self.theta["weight_hh_l0"].shape[1],
                                     candidates)

    def _run_sequences(self, name, idx, deltas, cplx, rest):
        """f for one-element perturbations of x, h0 or c0. Sequences never interact, so such a
        perturbation changes only the sequence b holding the element: each replica runs that one
        sequence and f = (f(theta) - f_b(theta)) + f_b(perturbed), a B-th of the work."""
        K = len(idx)
        lead, b, col = np.unravel_index(idx, self.theta[name].shape)
        cdt = backend.complex_of(self.dtype) if cplx else self.dtype
        inputs = {n: self.theta[n][:, b].astype(cdt) for n in ("x", *self.states)}
        inputs[name][lead, np.arange(K), col] += deltas
        return rest[b] + self._sequence_losses(inputs, b)

    def _sequence_losses(self, inputs, b):
        """Loss of each row k of ``inputs`` (sequence b[k]'s weights), shared weights."""
        K = len(b)
        batchable = self.model.cell.batchable
        p = {n: (ReplicaMatrix(self.theta[n], K, 1) if n in self.matrices and batchable
                 else self.theta[n]) for n in self.model.param_names}
        y, final, _ = self.model.run_forward(p, inputs["x"], tuple(inputs[n] for n in self.states))
        f = np.einsum("tkf,tkf->k", y, self.w["y"][:, b])
        for n, s in zip(self.states, final):
            f = f + np.einsum("lkh,lkh->k", s, self.w[n][:, b])
        return f

    def _unperturbed(self):
        """(f(theta), per-sequence terms of f(theta)), computed once."""
        if self._f0_rows is None:
            b = np.arange(self.B)
            rows = self._sequence_losses({n: self.theta[n] for n in ("x", *self.states)}, b)
            self._f0_rows = (self.value(), rows)
        return self._f0_rows

    def directions(self, dirs, scales):
        scales = np.asarray(scales)
        cplx = np.iscomplexobj(scales)

        def run(lo, hi):
            chunk, s = dirs[lo:hi], scales[lo:hi]
            dense = {}
            for n in sorted({n for v in chunk for n in v}):
                V = np.zeros((len(chunk),) + self.theta[n].shape, self.dtype)
                for k, v in enumerate(chunk):
                    if n in v:
                        V[k] = v[n]
                dense[n] = (V, s)
            return self._run_chunk(len(chunk), {}, dense, cplx)
        return self._chunked(len(dirs), run).astype(complex if cplx else float, copy=False)
