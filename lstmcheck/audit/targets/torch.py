"""A torch.nn RNN/LSTM/GRU module (or *Cell), run functionally; gradients by autograd; with
``lengths=`` a layer module runs on a PackedSequence."""
from __future__ import annotations

import numpy as np

from ... import backend
from ...errors import require
from ..oracle import _layouts, float64_model
from .base import Target


_TORCH_CELLS = {"RNNCell": "rnn", "LSTMCell": "lstm", "GRUCell": "gru"}


def _torch_target(module):
    torch = require("torch", "torch", "auditing a PyTorch module")
    model, params = _layouts().from_torch(module)
    dtype = backend.resolve_dtype(str(next(module.parameters()).dtype).replace("torch.", ""))
    tensors = {n: p.detach().cpu().numpy().copy() for n, p in module.named_parameters()}
    is_cell = type(module).__name__ in _TORCH_CELLS
    batch_first = bool(getattr(module, "batch_first", False))
    tdtype = next(module.parameters()).dtype
    names = list(tensors)

    def run(tensors_t, x, state, lengths=None):
        """Functional call of the module with other weights: (y, final state tuple) tensors.
        ``lengths``: the batch goes in as a PackedSequence (enforce_sorted=False) and y comes
        back padded with zeros to T steps: PyTorch's own variable-length path."""
        from torch.func import functional_call
        if is_cell:
            h = state[0][0]
            st = (h, state[1][0]) if len(state) == 2 else h
            ys = []
            for t in range(x.shape[0]):
                st = functional_call(module, tensors_t, (x[t], st))
                ys.append(st[0] if isinstance(st, tuple) else st)
            fin = st if isinstance(st, tuple) else (st,)
            return torch.stack(ys), tuple(a.unsqueeze(0) for a in fin)
        xin = x.transpose(0, 1) if batch_first else x
        st = tuple(state) if len(state) == 2 else state[0]
        if lengths is not None:
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
            xin = pack_padded_sequence(xin, torch.as_tensor(np.asarray(lengths), dtype=torch.int64),
                                       batch_first=batch_first, enforce_sorted=False)
        y, fin = functional_call(module, tensors_t, (xin, st))
        if lengths is not None:
            y, _ = pad_packed_sequence(y, batch_first=batch_first, total_length=x.shape[0])
        y = y.transpose(0, 1) if batch_first else y
        return y, (fin if isinstance(fin, tuple) else (fin,))

    def as_t(a, grad=False):
        t = torch.as_tensor(np.asarray(a), dtype=tdtype)
        return t.requires_grad_(True) if grad else t

    def forward(tens, x, state, lengths=None):
        with torch.no_grad():
            y, fin = run({n: as_t(tens[n]) for n in names}, as_t(x), tuple(as_t(s) for s in state),
                         lengths)
        return y.numpy(), tuple(a.numpy() for a in fin)

    def vjp(tens, x, state, dy, dstate, lengths=None):
        w = {n: as_t(tens[n], True) for n in names}
        xs, ss = as_t(x, True), tuple(as_t(s, True) for s in state)
        y, fin = run(w, xs, ss, lengths)
        loss = (y * as_t(dy)).sum() + sum((a * as_t(d)).sum() for a, d in zip(fin, dstate))
        loss.backward()
        grads = {n: w[n].grad.numpy() for n in names}
        grads["x"] = xs.grad.numpy()
        for k, s in zip(("h0", "c0"), ss):
            grads[k] = s.grad.numpy()
        return grads

    return Target("torch", f"torch.nn.{type(module).__name__}", "torch", model.kind, {}, tensors,
                  dtype, forward=forward, vjp=vjp, model=float64_model(model),
                  params={n: np.asarray(backend.to_host(a), np.float64) for n, a in params.items()},
                  takes_lengths=not is_cell)
