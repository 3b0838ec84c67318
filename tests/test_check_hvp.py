"""check_hvp on functions with known Hessians: right ones pass, planted errors (one entry, a
transposed block, a scale error) fail and are named; both numeric routes; bad input."""
import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.errors import FunctionError, OptionError, ShapeError


# ------------------------------------------------------------------ known Hessians
def quadratic(n=6, seed=0):
    """f = 1/2 z^T A z over z = (a, W.ravel()): grad A z, Hessian A (symmetric)."""
    rng = np.random.default_rng(seed)
    m = 3 + 2 * 2
    A = rng.standard_normal((m, m))
    A = A + A.T
    p = {"a": rng.standard_normal(3), "W": rng.standard_normal((2, 2))}

    def z(q):
        return np.concatenate([q["a"], q["W"].ravel()])

    def split(y):
        return {"a": y[:3], "W": y[3:].reshape(2, 2)}

    grad = lambda q: split(A @ z(q))            # noqa: E731
    hvp = lambda q, v: split(A @ z(v))          # noqa: E731
    return p, grad, hvp, A


def rosenbrock(n=5, seed=1):
    x0 = np.random.default_rng(seed).uniform(-1, 1.5, n)

    def grad(q):
        x = q["x"]
        g = np.zeros_like(x)
        g[:-1] += -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
        g[1:] += 200 * (x[1:] - x[:-1] ** 2)
        return {"x": g}

    def hess(x):
        H = np.zeros((n, n))
        H[np.arange(n - 1), np.arange(n - 1)] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
        H[np.arange(1, n), np.arange(1, n)] += 200
        H[np.arange(n - 1), np.arange(1, n)] = -400 * x[:-1]
        H[np.arange(1, n), np.arange(n - 1)] = -400 * x[:-1]
        return H

    return {"x": x0}, grad, (lambda q, v: {"x": hess(q["x"]) @ v["x"]}), hess


def logsumexp(shape=(3, 4), seed=2):
    """f = log sum exp(W): grad p = softmax(W), H v = p * v - p (p . v)."""
    W = np.random.default_rng(seed).standard_normal(shape)

    def soft(w):
        e = np.exp(w - np.max(np.real(w)))
        return e / e.sum()

    def hvp(q, v):
        pw = soft(q["W"])
        return {"W": pw * v["W"] - pw * np.sum(pw * v["W"])}

    return {"W": W}, (lambda q: {"W": soft(q["W"])}), hvp


def matrix_quadratic(seed=3, n=4):
    """f = 1/2 |W x|^2 + sum cos(W): H v = (V x) x^T - cos(W) * V; a transposed-block bug
    returns x (V x)^T instead."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    p = {"W": rng.standard_normal((n, n)), "b": rng.standard_normal(n)}
    grad = lambda q: {"W": np.outer(q["W"] @ x, x) - np.sin(q["W"]),     # noqa: E731
                      "b": q["b"] * 2.0}
    hvp = lambda q, v: {"W": np.outer(v["W"] @ x, x) - np.cos(q["W"]) * v["W"],  # noqa: E731
                        "b": 2.0 * v["b"]}
    return p, grad, hvp, x


CASES = {"quadratic": lambda: quadratic()[:3], "rosenbrock": lambda: rosenbrock()[:3],
         "logsumexp": logsumexp, "matrix": lambda: matrix_quadratic()[:3]}


@pytest.mark.parametrize("method", ["auto", "richardson"])
@pytest.mark.parametrize("case", list(CASES))
def test_right_hvp_passes(case, method):
    p, grad, hvp = CASES[case]()
    r = lc.check_hvp(grad, p, hvp, method=method)
    assert r.passed and r.verdict == "passed", r.summary
    assert r.resolution is not None and r.resolution < 1e-5
    want = "complex" if method == "auto" else "richardson"
    assert r.method == f"hvp({want})"
    d = r.to_dict()
    assert d["details"]["directions"]["unit"] == sum(a.size for a in p.values())


def test_one_wrong_entry_found_with_row_and_column():
    p, grad, hvp, A = quadratic()
    B = A.copy()
    B[1, 4] *= 1 + 1e-7           # one entry only (the matrix is no longer symmetric)

    def bad(q, v):
        y = B @ np.concatenate([v["a"], v["W"].ravel()])
        return {"a": y[:3], "W": y[3:].reshape(2, 2)}

    for method in ("auto", "richardson"):
        r = lc.check_hvp(grad, p, bad, method=method)
        assert not r.passed and r.failing() == ["a"]
        wrong = [w for w in r.worst if not w["passed"] and "column" in w]
        assert [(w["tensor"], w["index"], w["column"]["tensor"], w["column"]["index"])
                for w in wrong] == [("a", [1], "W", [0, 1])]
        assert "H[a[1], W[0, 1]]" in r.summary


def test_transposed_block_caught():
    p, grad, hvp, x = matrix_quadratic()

    def bad(q, v):
        out = hvp(q, v)
        out["W"] = np.outer(x, v["W"] @ x) - np.cos(q["W"]) * v["W"]
        return out

    r = lc.check_hvp(grad, p, bad)
    assert not r.passed and r.failing() == ["W"]


@pytest.mark.parametrize("case", ["rosenbrock", "logsumexp"])
def test_scale_error_caught(case):
    p, grad, hvp = CASES[case]()
    r = lc.check_hvp(grad, p, lambda q, v: {n: a * (1 + 1e-6) for n, a in hvp(q, v).items()})
    assert not r.passed, r.summary


def test_rosenbrock_hessian_entry_wrong():
    p, grad, hvp, hess = rosenbrock()

    def bad(q, v):
        H = hess(q["x"])
        H[2, 2] += 1e-6 * abs(H[2, 2])
        return {"x": H @ v["x"]}

    r = lc.check_hvp(grad, p, bad)
    assert not r.passed
    assert [(w["index"], w["column"]["index"]) for w in r.worst
            if not w["passed"] and "column" in w] == [([2], [2])]


def test_large_problem_screens_then_names_the_block():
    """Above UNIT_MAX numbers: random directions screen, per-tensor directions find the failing
    column block, unit directions of that (small) block name the entry."""
    rng = np.random.default_rng(5)
    n_big, n_small = 300, 5
    d_big = rng.uniform(1, 2, n_big)
    C = rng.standard_normal((n_small, n_small))
    C = C + C.T
    p = {"big": rng.standard_normal(n_big), "s": rng.standard_normal(n_small)}
    grad = lambda q: {"big": d_big * q["big"], "s": C @ q["s"]}          # noqa: E731
    good = lambda q, v: {"big": d_big * v["big"], "s": C @ v["s"]}       # noqa: E731
    r = lc.check_hvp(grad, p, good)
    assert r.passed and r.details["directions"] == {"random": 3}, r.summary
    D = C.copy()
    D[3, 1] += 1e-6
    bad = lambda q, v: {"big": d_big * v["big"], "s": D @ v["s"]}        # noqa: E731
    r = lc.check_hvp(grad, p, bad)
    assert not r.passed and r.details["failing_column_blocks"] == ["s"]
    assert "H[s[3], s[1]]" in r.summary
    assert r.details["evaluations"] < 30          # not 305 columns


def test_not_complex_safe_grad_falls_back_to_richardson():
    p, grad, hvp = rosenbrock()[:3]
    real_only = lambda q: grad({n: np.real(a).astype(float) for n, a in q.items()})  # noqa: E731
    r = lc.check_hvp(real_only, p, hvp)
    assert r.passed and r.method == "hvp(richardson)"
    assert any("complex step does not apply" in n for n in r.notes)


def test_locate_labels_rows_and_columns():
    p, grad, hvp, A = quadratic()
    B = A.copy()
    B[4, 0] *= 1 + 1e-6
    bad = lambda q, v: (lambda y: {"a": y[:3], "W": y[3:].reshape(2, 2)})(   # noqa: E731
        B @ np.concatenate([v["a"], v["W"].ravel()]))
    r = lc.check_hvp(grad, p, bad, locate=lambda n, i: {"tensor": n, "flat": int(i[-1])})
    w = [w for w in r.worst if not w["passed"] and "column" in w][0]
    assert w["location"] == {"tensor": "W", "flat": 1}
    assert w["column"]["location"] == {"tensor": "a", "flat": 0}


def test_bad_input_is_one_sentence():
    p, grad, hvp = logsumexp()
    with pytest.raises(OptionError, match="method"):
        lc.check_hvp(grad, p, hvp, method="taylor")
    with pytest.raises(OptionError, match="hvp_fn must be callable"):
        lc.check_hvp(grad, p, None)
    with pytest.raises(ShapeError, match=r"hvp_fn\(params, v\)\['W'\] has shape"):
        lc.check_hvp(grad, p, lambda q, v: {"W": v["W"].ravel()})
    with pytest.raises(FunctionError, match="grad_fn must return a dict"):
        lc.check_hvp(lambda q: q["W"], p, hvp)
    with pytest.raises(FunctionError, match="hvp_fn raised KeyError"):
        lc.check_hvp(grad, p, lambda q, v: {"W": v["nope"]})
