"""flax.linen recurrent cells read by lc.layouts.from_flax and audited as (module, variables)
targets, jitted: forward, jax.vjp gradients, finite differences, seq_lengths, reverse."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")
nn = pytest.importorskip("flax.linen")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp                                   # noqa: E402

import lstmcheck as lc                                    # noqa: E402
from lstmcheck.errors import ConversionError, OptionError   # noqa: E402

X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 3)))
F64 = dict(param_dtype=jnp.float64)


def init(module):
    return module, module.init(jax.random.key(0), X)


@pytest.mark.parametrize("cell,reverse", [
    (lambda: nn.OptimizedLSTMCell(4, **F64), False),
    (lambda: nn.LSTMCell(4, **F64), True),
    (lambda: nn.GRUCell(4, **F64), False),
    (lambda: nn.SimpleCell(4, **F64), True),
])
def test_audit_passes_forward_gradients_lengths_reverse(cell, reverse):
    report = lc.audit(init(nn.RNN(cell(), reverse=reverse)), lengths=[5, 3], seq_len=5, batch=2)
    assert report.passed and report.dtype == "float64", report.to_text()
    assert {"forward", "gradient", "fd"} <= {r["check"] for r in report.rows}
    assert "jax.jit" in report.target


def test_oracle_forward_matches_flax_and_seq_lengths_are_lengths():
    rnn, v = init(nn.RNN(nn.GRUCell(4, **F64), return_carry=True))
    carry, y = rnn.apply(v, X, seq_lengths=jnp.array([5, 2]))
    model, params = lc.layouts.from_flax(rnn, v)
    y_o, h_o, _ = model.forward(params, np.swapaxes(np.asarray(X), 0, 1), lengths=[5, 2])
    np.testing.assert_allclose(h_o[0], np.asarray(carry), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.swapaxes(y_o, 0, 1)[0], np.asarray(y)[0], rtol=1e-12, atol=1e-13)
    assert model.reset_after is True               # Flax's GRU is PyTorch's


def test_a_planted_gate_swap_is_caught():
    """Flax parameters whose i and f blocks are swapped disagree, and the audit says which."""
    rnn, v = init(nn.RNN(nn.LSTMCell(4, **F64)))
    model, params = lc.layouts.from_flax(rnn, v)
    p = v["params"]["cell"]
    swapped = {"params": {"cell": {**p, "ii": p["if"], "if": p["ii"], "hi": p["hf"], "hf": p["hi"]}}}
    report = lc.audit((rnn, swapped), model=model, params=params, seq_len=5, batch=2)
    assert not report.passed
    assert "i (input) and f (forget)" in " ".join(report.diagnosis)


def test_what_the_oracle_cannot_express_is_one_sentence():
    with pytest.raises(ConversionError, match="gelu"):
        lc.layouts.from_flax(*init(nn.RNN(nn.LSTMCell(4, activation_fn=jax.nn.gelu, **F64))))
    with pytest.raises(ConversionError, match="residual"):
        lc.layouts.from_flax(*init(nn.RNN(nn.SimpleCell(4, residual=True, **F64))))
    with pytest.raises(OptionError, match="from_flax reads"):
        lc.layouts.from_flax(nn.Dense(3), {})
