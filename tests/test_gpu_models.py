"""CuPy against NumPy: the same seeds give the same models on both backends (float64 <= 1e-12)."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck import backend

pytestmark = pytest.mark.gpu

CASES = [
    ("lstm", dict(num_layers=2, bidirectional=True)),
    ("lstm", dict(proj_size=3)),
    ("lstm", dict(variant="peephole+cifg", clip=2.0)),
    ("lstm", dict(variant="fgr")),
    ("gru", dict(num_layers=2)),
    ("gru", dict(reset_after=False, bidirectional=True)),
    ("rnn", dict(nonlinearity="relu")),
]


def rel(a, b):
    return float(np.linalg.norm(backend.to_host(a) - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("cell,opts", CASES)
def test_cupy_matches_numpy(cell, opts):
    cpu = lc.build(cell, 4, 6, **opts)
    gpu = lc.build(cell, 4, 6, backend="cupy", **opts)
    p_cpu, p_gpu = cpu.init_params(seed=3), gpu.init_params(seed=3)
    xp = gpu.xp
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 5, 4))
    y, st, tape = cpu.forward(p_cpu, x)
    yg, stg, tapeg = gpu.forward(p_gpu, xp.asarray(x))
    assert type(yg).__module__.startswith("cupy")
    assert rel(yg, y) < 1e-12
    dy = rng.standard_normal(y.shape)
    g = cpu.backward(tape, dy)
    gg = gpu.backward(tapeg, xp.asarray(dy))
    for n in g:
        assert rel(gg[n], g[n]) < 1e-12, n


def test_cupy_complex_forward():
    gpu = lc.LSTM(3, 4, backend="cupy")
    p = gpu.init_params(seed=0)
    xp = gpu.xp
    x = xp.asarray(np.random.default_rng(0).standard_normal((5, 2, 3)))
    y, _, _ = gpu.forward(p, x)
    yc, _, _ = gpu.forward({n: a.astype(complex) for n, a in p.items()}, x.astype(complex))
    assert rel(yc.real, backend.to_host(y)) < 1e-14
