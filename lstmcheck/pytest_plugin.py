"""pytest plugin (entry point ``pytest11`` name ``lstmcheck``): the oracle in a downstream test suite.

Installed with lstmcheck, it gives every test session these fixtures:

``assert_matches_oracle(impl, cell="lstm", layout="torch", **audit_options)``
    audits ``impl`` (a callable in ``layout``, a torch module, an .npz dump or an .onnx model;
    see :func:`lstmcheck.audit.audit`) and fails the test with the audit's text report when it
    disagrees with the oracle; ``state=``, ``dstate=``, ``lengths=`` (and ``x``, ``dy``,
    ``seq_len``, ``batch``, ``dtype``) reach the audit. For a callable, ``input_size``/``hidden_size`` and the model's
    options (``num_layers``, ``bidirectional``, ``variant``, ...) choose the configuration.
    Returns the AuditReport. Also importable: ``from lstmcheck.pytest_plugin import
    assert_matches_oracle``.
``lstm_oracle``
    a factory ``lstm_oracle(cell="lstm", input_size=3, hidden_size=4, **model_options)`` of
    oracle models (float64, NumPy).
``oracle_case``
    a factory ``oracle_case(cell="lstm", layout="torch", seq_len=5, batch=2, seed=None,
    lengths=None, **model_options)`` of an :class:`OracleCase`: weights in the layout, inputs, a
    non-zero initial state, cotangents, and the oracle's outputs and gradients (in the layout's
    names); ``case.check`` holds outputs to tolerances of their own dtype.
``lstm_vectors``
    the golden-vector suite exported once per session; ``lc.vectors.verify(lstm_vectors, impl)``.

Command-line option: ``--lstmcheck-seed N`` (default 0) seeds every fixture that draws numbers.

Loaded by every pytest run once lstmcheck is installed, so importing it stays cheap: the rest
of lstmcheck is imported inside the fixtures.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("lstmcheck", "lstmcheck oracle fixtures")
    group.addoption("--lstmcheck-seed", type=int, default=0, dest="lstmcheck_seed",
                    help="seed of the lstmcheck fixtures' weights, inputs and cotangents (default 0)")


@dataclass
class OracleCase:
    """One configuration with everything a conformance test compares against."""

    model: object                 # the oracle model (float64)
    layout: str
    options: dict                 # the layout's load options (ONNX attributes, forget_bias, ...)
    params: dict                  # weights in the layout's names
    canonical: dict               # the same weights in the oracle's (PyTorch) names
    x: object                     # (T, B, input_size)
    state: object                 # h0, or (h0, c0) for LSTM
    dy: object
    dstate: object
    y: object                     # the oracle's outputs
    final_state: object
    grads: dict = field(default_factory=dict)   # dL/d(layout tensor), "x", "h0" (, "c0")
    lengths: object = None        # (B,) sequence lengths (right padding), or None: full length

    def check(self, y, final_state=None, grads=None, *, rtol=None, atol=None):
        """Assert that an implementation's outputs (and gradients) match this case, within
        tolerances of the precision they come in (float32 outputs: float32 tolerances)."""
        from .audit.tolerances import (check_tolerance, compare, output_dtype, real_output,
                                       tolerances)
        rtol, atol = check_tolerance("rtol", rtol), check_tolerance("atol", atol)
        n = len(self.model.cell.state_names)
        fin = final_state if isinstance(final_state, (tuple, list)) else (final_state,)
        dt = output_dtype(y, *fin, *(grads or {}).values())
        tol = tolerances(dt, len(self.x), self.model.num_layers,
                         max(self.model.layer_input_size(k) for k in range(self.model.num_layers))
                         + self.model.output_size)
        if rtol is not None or atol is not None:
            fixed = {"rtol": rtol or 0.0, "atol": atol or 0.0}
            tol = {"forward": fixed, "gradient": fixed}
        pairs = [("y", y, self.y, "forward")]
        if final_state is not None:
            got = final_state if isinstance(final_state, (tuple, list)) else (final_state,)
            want = self.final_state if n == 2 else (self.final_state,)
            if len(got) != n:
                from .errors import ShapeError
                raise ShapeError(f"final_state has {len(got)} array(s); for the "
                                 f"{self.model.kind.upper()} it must be "
                                 f"{'the pair (h_n, c_n)' if n == 2 else 'h_n alone'}.")
            pairs += [(k, g, w, "forward") for k, g, w in zip(("h_n", "c_n"), got, want)]
        for k, g in (grads or {}).items():
            if k not in self.grads:
                raise AssertionError(f"gradient {k!r} is neither a {self.layout} tensor nor x, h0, c0")
            pairs.append((f"d{k}", g, self.grads[k], "gradient"))
        bad = []
        for name, got, want, kind in pairs:
            got = real_output(name, _host(got))
            if got.shape != want.shape:
                bad.append(f"{name} has shape {got.shape}, expected {want.shape}")
                continue
            c = compare(got, want, **tol[kind])
            if not c["passed"]:
                bad.append(f"{name} off by {c['max_abs']:.3g} ({c['ratio']:.3g} x tolerance) at "
                           f"index {c['worst']}")
        if bad:
            raise AssertionError(f"{self.model.describe()} in the {self.layout} layout does not "
                                 f"match the oracle: " + "; ".join(bad))


def _host(a):
    import numpy as np
    if hasattr(a, "detach"):          # a torch tensor
        a = a.detach().cpu().numpy()
    from . import backend
    return np.asarray(backend.to_host(a))


def make_case(cell="lstm", layout="torch", *, input_size=3, hidden_size=4, seq_len=5, batch=2,
              seed=0, layout_options=None, lengths=None, **model_options) -> OracleCase:
    """An :class:`OracleCase` with per-gate-distinct weights (see lstmcheck.audit.exposing_params);
    ``lengths`` (B,) makes it a variable-length batch (the oracle's ``forward(..., lengths=)``)."""
    import numpy as np
    from .audit import (GradientMap, _dump_options, dump_layout, exposing_params,
                         oracle_run, random_cotangents, random_inputs)
    from . import layouts
    from .models import build
    model = build(cell, input_size, hidden_size, **model_options)
    canonical = exposing_params(model, seed)
    dump_opts = _dump_options(layout, layout_options)
    tensors = dump_layout(layout, model, canonical, **dump_opts)
    options = {**layouts.options(layout, model, **dump_opts), **dict(layout_options or {})}
    x, state = random_inputs(model, seq_len, batch, seed)
    dy, dstate = random_cotangents(model, seq_len, batch, seed)
    if lengths is not None:
        lengths = np.asarray(model._check_lengths(lengths, seq_len, batch, np), np.int64)
    y, fin, g = oracle_run(model, canonical, x, state, dy, dstate, lengths=lengths)
    grads = GradientMap(layout, tensors, model.kind, options).pullback(g)
    grads.update({k: g[k] for k in ("x", "h0", "c0") if k in g})
    one = (lambda s: tuple(s) if len(s) == 2 else s[0])
    return OracleCase(model=model, layout=layout, options=options, params=tensors,
                      canonical={k: _host(v) for k, v in canonical.items()}, x=x, state=one(state),
                      dy=dy, dstate=one(dstate), y=y, final_state=one(fin), grads=grads,
                      lengths=lengths)


def assert_matches_oracle(impl, cell="lstm", layout="torch", *, input_size=3, hidden_size=4,
                          model=None, params=None, seed=0, fd=True, options=None, vjp=None,
                          rtol=None, atol=None, x=None, state=None, dstate=None, dy=None,
                          lengths=None, seq_len=5, batch=2, dtype=None, **model_options):
    """Audit ``impl`` against the oracle and fail with the audit's report if they disagree.

    x, state, dy, dstate, lengths, seq_len, batch, dtype go to :func:`lstmcheck.audit` as they
    are: ``state=(h0, np.zeros_like(c0))`` audits an implementation that starts from zero cell
    state; ``lengths=[5, 3]`` a variable-length batch (a callable taking ``lengths`` gets them)."""
    from .audit import audit
    from .audit.tolerances import check_tolerance
    from .models import build
    rtol, atol = check_tolerance("rtol", rtol), check_tolerance("atol", atol)
    own_layout = callable(impl) and not _is_torch_module(impl)   # files and modules say theirs
    if own_layout and model is None and params is None:
        model = build(cell, input_size, hidden_size, **model_options)
    report = audit(impl, layout=layout if own_layout else None, cell=cell if own_layout else None,
                   model=model, params=params, seed=seed, fd=fd, options=options, vjp=vjp,
                   rtol=rtol, atol=atol, x=x, state=state, dstate=dstate, dy=dy, lengths=lengths,
                   seq_len=seq_len, batch=batch, dtype=dtype)
    if not report.passed:
        raise AssertionError("implementation disagrees with the lstmcheck oracle:\n" + report.to_text())
    return report


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def lstmcheck_seed(request) -> int:
    """The --lstmcheck-seed option (default 0)."""
    return request.config.getoption("lstmcheck_seed", 0)


@pytest.fixture
def lstm_oracle():
    """Factory of oracle models: lstm_oracle(cell='lstm', input_size=3, hidden_size=4, **opts)."""
    from .models import build

    def factory(cell="lstm", input_size=3, hidden_size=4, **model_options):
        return build(cell, input_size, hidden_size, **model_options)
    return factory


@pytest.fixture
def oracle_case(lstmcheck_seed):
    """Factory of :class:`OracleCase`: oracle_case(cell, layout, **options)."""

    def factory(cell="lstm", layout="torch", *, seed=None, **options):
        return make_case(cell, layout, seed=lstmcheck_seed if seed is None else seed, **options)
    return factory


@pytest.fixture(name="assert_matches_oracle")
def _assert_matches_oracle_fixture(lstmcheck_seed):
    """assert_matches_oracle(impl, cell=..., layout=..., **options), seeded by --lstmcheck-seed."""

    def check(impl, cell="lstm", layout="torch", **options):
        options.setdefault("seed", lstmcheck_seed)
        return assert_matches_oracle(impl, cell, layout, **options)
    return check


@pytest.fixture(scope="session")
def lstm_vectors(tmp_path_factory, pytestconfig):
    """Folder of the golden-vector suite, exported once per session."""
    from . import vectors
    folder = tmp_path_factory.mktemp("lstmcheck") / "vectors"
    vectors.export(folder, seed=pytestconfig.getoption("lstmcheck_seed", 0))
    return folder
