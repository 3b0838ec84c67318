"""Audit a foreign RNN/LSTM/GRU implementation against the oracle.

``lc.audit(target, ...)`` runs the target and the float64 oracle on the same weights, inputs and
initial state, and compares

* the forward outputs (y, the final h and c),
* the target's gradients (when it has any) with the oracle's, in the target's own tensor names,
* the target's gradients with finite differences of the target's own forward
  (``lc.check_gradients``), when the target can be re-run with other weights.

When the forward disagrees it tests the usual layout mistakes on the oracle side (gate blocks in
another order, a transposed kernel, a constant offset on one gate's bias such as a forgotten
forget_bias, a direction that runs the wrong way or whose weights or outputs are swapped) and
names the one that makes the two agree.

Targets
-------
callable, with ``layout=``
    ``target(params, x, state) -> (y, final_state)``: ``params`` is a dict of arrays in the named
    layout (``lc.layouts.dump(layout, model, params)``), ``x`` is time-major (T, B, input_size),
    ``state`` and ``final_state`` are ``h`` or ``(h, c)`` of shape (layers*dirs, B, H_out) /
    (layers*dirs, B, H); ``y`` is (T, B, dirs*H_out). An optional backward,
    ``vjp(params, x, state, dy, dstate) -> dict`` (passed as ``vjp=`` or set as ``target.vjp``),
    returns dL/d(tensor) for L = sum(dy*y) + sum(dh*h_T) (+ sum(dc*c_T)), keyed by the layout's
    tensor names and "x", "h0", "c0" (any subset). The oracle's configuration comes from
    ``model=`` or from loading ``params`` (layout tensors) with ``cell=`` and ``options=``.
torch module
    nn.RNN / nn.LSTM / nn.GRU (any layers, bidirectional, proj_size, batch_first) and the *Cell
    classes; gradients by autograd.
Keras 3 layer
    LSTM / GRU / SimpleRNN / Bidirectional on the torch or jax backend (targets/keras.py), run by
    Keras with the audit's weights; gradients by torch autograd or jitted ``jax.vjp``;
    ``lengths=`` become a Keras mask.
``(flax module, variables)``
    a flax.linen LSTMCell / OptimizedLSTMCell / GRUCell / SimpleCell or nn.RNN around one
    (targets/flax.py), run by ``nn.RNN`` under ``jax.jit``; ``lengths=`` are ``seq_lengths``.
path to an ``.npz`` dump written by any language (arrays of one real dtype, time-major):

    ======================  ==============================================================
    ``meta``                optional JSON text (a 0-d string array or UTF-8 bytes as uint8):
                            ``{"layout": "torch", "cell": "lstm", "options": {...}}``;
                            ``layout=``, ``cell=``, ``options=`` arguments override it
    ``param/<name>``        every weight tensor, under the layout's name (required)
    ``x``                   input (T, B, input_size) (required)
    ``h0``, ``c0``          initial state (layers*dirs, B, H_out) / (layers*dirs, B, H);
                            zeros when absent
    ``lengths``             optional (B,) integers in 1..T: the sequence lengths (right
                            padding) the dump was computed with; y is 0 at padded steps
    ``y``                   output (T, B, dirs*H_out) (required)
    ``hn``, ``cn``          final state, compared when present
    ``dy``, ``dhn``, ``dcn``  cotangents of L = sum(dy*y) + sum(dhn*hn) + sum(dcn*cn);
                            ``dy`` is required when gradients are present, the others
                            default to zeros
    ``grad/<name>``         dL/d<name> for weights (layout names) and ``grad/x``,
                            ``grad/h0``, ``grad/c0``; optional, compared when present
    ======================  ==============================================================

    The dtype of ``y`` sets the tolerances. ``"time_reversed": true`` in meta says the dump holds
    the model run on flipped time (an ONNX dump with direction "reverse" loads as the
    direction='reverse' model, which needs no flip).
path to an ``.onnx`` model (or an ``onnx.ModelProto``) with LSTM/GRU/RNN nodes (one per layer)
    run as a black box in onnxruntime: a hand-built node or what ``torch.onnx.export`` writes
    (graph inputs and outputs are traced through Slice/Squeeze/Transpose/Reshape/Concat to the
    nodes' X, initial_h, initial_c, sequence_lens and Y, Y_h, Y_c, under any names;
    batch_first is read off the Transpose). Gradients are central differences of the
    onnxruntime forward (the weight initializers become graph inputs), at finite-difference
    tolerances. A float64 graph that onnxruntime cannot run in float64 is run in float32 and the
    report says so. A direction="reverse" node is audited as the direction='reverse' model;
    ``sequence_lens`` as an initializer is the oracle's ``lengths=``, as a graph input it is fed
    ``lengths=`` (seeded ragged lengths by default) and the oracle gets the same.

``lengths=`` (B,) integers in 1..T, right padding, reach the oracle and every target that takes
them (a callable with a ``lengths`` keyword; see :func:`audit`).

Tolerances
----------
Differences are measured elementwise against ``rtol*|oracle| + atol*max|oracle|`` (the second
term scales with the tensor, so near-zero entries of a large tensor do not demand relative
accuracy). With eps the target dtype's machine epsilon, T steps, L layers and fan-in
n = input_size + H_out of the widest layer, the derived defaults are

    forward:   rtol = atol = 64 * eps * sqrt(T * L * n)
    gradients: 8 times the forward tolerance (backward runs the recurrence again, transposed)

which is ~1e-13 in float64 and ~5e-5 in float32 for small models, orders of magnitude below
what any layout mistake produces. ``rtol=``/``atol=`` override both.

Modules
-------
tolerances (the defaults above, ``compare``), report (:class:`AuditReport` and its rows), oracle
(the oracle's weights, inputs and runs; the layouts bridge), gradient_map (:class:`GradientMap`),
targets/ (one adapter per kind of target, on ``targets.base.Target``), gradients (gradient and
finite-difference rows), diagnosis (the layout mistake behind a forward disagreement) and run
(``audit()`` itself).

``lc.audit`` is the function :func:`audit`; this package is ``lstmcheck.audit`` in
``sys.modules`` and is reached by ``from lstmcheck.audit import ...``.
"""
from __future__ import annotations

from .diagnosis import GATE_NAMES, diagnose_forward
from .gradient_map import GradientMap
from .oracle import (_dump_options, dump_layout, exposing_params, float64_model, load_layout,
                     oracle_run, random_cotangents, random_inputs)
from .report import AuditReport, AuditRow, _row, _row_phrase, _where_state, _where_text
from .run import audit
from .targets import TARGET_KINDS, Target, TargetError, call_target, make_target, read_dump
from .tolerances import compare, tolerances

__all__ = ["audit", "AuditReport", "AuditRow", "GradientMap", "Target", "TargetError", "TARGET_KINDS",
           "GATE_NAMES", "call_target", "compare", "diagnose_forward", "dump_layout",
           "exposing_params", "float64_model", "load_layout", "make_target", "oracle_run",
           "random_cotangents", "random_inputs", "read_dump", "tolerances"]

