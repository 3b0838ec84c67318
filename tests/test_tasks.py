"""lc.tasks: shapes, seeding, and that each task's targets follow from its inputs."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import OptionError


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_noise_is_seeded(seed):
    a = lc.tasks.noise(20, 3, 4, seed=seed)
    b = lc.tasks.noise(20, 3, 4, seed=seed)
    c = lc.tasks.noise(20, 3, 4, seed=seed + 1)
    assert a.x.shape == (20, 3, 4) and a.targets is None
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    assert lc.tasks.noise(5, 2, 3, dtype="float32").x.dtype == np.float32


@pytest.mark.parametrize("T,B,seed", [(2, 1, 0), (11, 5, 3), (200, 8, 9)])
def test_adding_targets_are_the_sum_of_the_marked_values(T, B, seed):
    x, y = lc.tasks.adding(T, B, seed=seed)
    assert x.shape == (T, B, 2) and y.shape == (B, 1)
    marks = x[..., 1]
    np.testing.assert_array_equal(marks.sum(axis=0), 2.0)
    assert (marks[: T // 2].sum(axis=0) == 1).all()            # one mark in each half
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * marks).sum(axis=0), rtol=1e-15)


@pytest.mark.parametrize("T,length,n_symbols", [(21, 10, 8), (50, 3, 4)])
def test_copy_memory_targets_repeat_the_first_symbols(T, length, n_symbols):
    x, y = lc.tasks.copy_memory(T, 4, length=length, n_symbols=n_symbols, seed=2)
    assert x.shape == (T, 4, n_symbols + 2) and y.shape == (T, 4)
    np.testing.assert_array_equal(x.sum(axis=-1), 1.0)          # one-hot
    symbols = x.argmax(axis=-1)
    np.testing.assert_array_equal(y[-length:], symbols[:length])
    assert (y[:-length] == 0).all()
    assert (symbols[T - length - 1] == n_symbols + 1).all()     # delimiter
    assert (symbols[length:T - length - 1] == 0).all()          # blanks


def test_temporal_order_classes_match_the_relevant_symbols():
    x, y = lc.tasks.temporal_order(100, 64, seed=5)
    symbols = x.argmax(axis=-1)
    assert (symbols[0] == 6).all() and (symbols[-1] == 7).all()
    for b in range(64):
        rel = symbols[:, b][(symbols[:, b] == 4) | (symbols[:, b] == 5)] - 4
        assert rel.size == 2 and y[b] == 2 * rel[0] + rel[1]
    assert set(np.unique(y)) == {0, 1, 2, 3}


def test_make_and_features():
    assert lc.tasks.make("adding", 10, 2).x.shape == (10, 2, 2)
    assert lc.tasks.make("noise", 10, 2, input_size=5).x.shape == (10, 2, 5)
    assert lc.tasks.features("copy_memory", n_symbols=4) == 6
    with pytest.raises(OptionError, match="produces 2 input features"):
        lc.tasks.make("adding", 10, 2, input_size=3)
    with pytest.raises(OptionError, match="unknown task"):
        lc.tasks.make("parity", 10, 2)
    with pytest.raises(OptionError, match="seq_len must be an integer >= 21"):
        lc.tasks.copy_memory(20, 2, length=10)
    with pytest.raises(OptionError, match="batch"):
        lc.tasks.adding(10, 0)
