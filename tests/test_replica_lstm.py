"""The audit's loss-only replica forward (models/replica_lstm.py) against the readable path."""
import json
import warnings

import numpy as np
import pytest

import lstmcheck as lc
from lstmcheck.check import api
from lstmcheck.check.batched import ModelEvaluator
from lstmcheck.models import kernels, replica_lstm

TENSORS = replica_lstm.PERTURBABLE


def _problem(D=3, H=5, T=6, B=3, seed=0, scale=2.0):
    m = lc.LSTM(D, H)
    rng = np.random.default_rng(seed)
    theta = {**m.init_params(seed=seed, scale=scale), "x": rng.standard_normal((T, B, D)),
             "h0": rng.standard_normal((1, B, H)), "c0": rng.standard_normal((1, B, H))}
    w = {"y": rng.standard_normal((T, B, H)), "h0": rng.standard_normal((1, B, H)),
         "c0": rng.standard_normal((1, B, H))}
    return m, theta, w


def _readable_loss(m, theta, w, name, flat, d):
    """The loss of the perturbed model through the cell's readable step."""
    p = {n: theta[n].copy() for n in m.param_names}
    p[name].reshape(-1)[flat] += d
    y, (h, c), _ = m.run_forward(p, theta["x"], (theta["h0"], theta["c0"]), fused=False)
    return float((w["y"] * y).sum() + (w["h0"] * h).sum() + (w["c0"] * c).sum())


ROUTES = kernels.REPLICA_ROUTES


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", TENSORS)
@pytest.mark.parametrize("seed, scale", [(0, 2.0), (3, 0.5), (5, 12.0)])   # 12: saturated gates
def test_each_replica_is_the_readable_loss_of_its_perturbed_model(name, route, seed, scale):
    m, theta, w = _problem(seed=seed, scale=scale)
    shape = theta[name].shape
    rng = np.random.default_rng(1 + seed)
    flat = rng.permutation(int(np.prod(shape)))[:7]
    d = rng.choice([-1.0, 1.0], 7) * rng.uniform(1e-6, 0.3, 7)   # small and large steps
    rc = np.unravel_index(flat, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # exp(-z) overflowing to inf is no warning
        f = replica_lstm.replica_losses(theta, w, name, rc[0], rc[1] if len(rc) > 1 else None,
                                        d, route=route)
    ref = np.array([_readable_loss(m, theta, w, name, j, dj) for j, dj in zip(flat, d)])
    scale = np.abs(w["y"]).sum() + np.abs(w["h0"]).sum() + 10 * np.abs(w["c0"]).sum()
    assert np.abs(f - ref).max() <= 1e-14 * scale
    # and a perturbation is visible: replicas differ from the unperturbed loss
    f0 = _readable_loss(m, theta, w, name, 0, 0.0)
    assert np.all(np.abs(ref - f0) > 0)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("T, B", [(1, 1), (1, 3), (4, 1), (3, 7)])
def test_edge_shapes_give_the_readable_loss(T, B, route):
    """One step (f's terms of h_t ride the next step's GEMM, so the last step is added
    separately), one sequence, and more sequences than hidden units."""
    m, theta, w = _problem(D=2, H=3, T=T, B=B, seed=11)
    scale = np.abs(w["y"]).sum() + np.abs(w["h0"]).sum() + 10 * np.abs(w["c0"]).sum()
    for name in TENSORS:
        shape = theta[name].shape
        flat = np.arange(0, int(np.prod(shape)), 2)
        d = np.linspace(-0.2, 0.3, len(flat))
        rc = np.unravel_index(flat, shape)
        f = replica_lstm.replica_losses(theta, w, name, rc[0], rc[1] if len(rc) > 1 else None,
                                        d, route=route)
        ref = np.array([_readable_loss(m, theta, w, name, j, dj) for j, dj in zip(flat, d)])
        assert np.abs(f - ref).max() <= 1e-14 * scale, name


def _readable_sequence_loss(m, theta, w, name, flat, d):
    """The perturbed model's loss terms of the sequence holding element ``flat`` of x, h0 or c0,
    through the readable step."""
    v = {n: theta[n].copy() for n in ("x", "h0", "c0")}
    v[name].reshape(-1)[flat] += d
    b = np.unravel_index(flat, theta[name].shape)[1]
    p = {n: theta[n] for n in m.param_names}
    y, (h, c), _ = m.run_forward(p, v["x"][:, b:b + 1], (v["h0"][:, b:b + 1], v["c0"][:, b:b + 1]),
                                 fused=False)
    return float((w["y"][:, b:b + 1] * y).sum() + (w["h0"][:, b:b + 1] * h).sum()
                 + (w["c0"][:, b:b + 1] * c).sum())


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", ["x", "h0", "c0"])
@pytest.mark.parametrize("seed, scale, T", [(0, 2.0, 6), (3, 0.5, 1), (5, 12.0, 6)])
def test_each_sequence_replica_is_its_sequences_readable_loss(name, route, seed, scale, T):
    """sequence_losses: a column per replica, running only the sequence it perturbs, gives that
    sequence's terms of the perturbed model's loss (saturated gates and one step included)."""
    m, theta, w = _problem(T=T, seed=seed, scale=scale)
    size = theta[name].size
    rng = np.random.default_rng(1 + seed)
    flat = rng.permutation(size)[:min(9, size)]
    d = rng.choice([-1.0, 1.0], len(flat)) * rng.uniform(1e-6, 0.3, len(flat))
    lead, b, col = np.unravel_index(flat, theta[name].shape)
    f = replica_lstm.sequence_losses(theta, w, name, lead, b, col, d, route=route)
    ref = np.array([_readable_sequence_loss(m, theta, w, name, j, dj) for j, dj in zip(flat, d)])
    scale_ = np.abs(w["y"]).sum() + np.abs(w["h0"]).sum() + 10 * np.abs(w["c0"]).sum()
    assert np.abs(f - ref).max() <= 1e-14 * scale_
    f0 = np.array([_readable_sequence_loss(m, theta, w, name, j, 0.0) for j in flat])
    assert np.all(np.abs(ref - f0) > 0)       # each perturbation is visible


def test_the_replica_path_is_chosen_for_vanilla_lstms_only():
    assert replica_lstm.applies(lc.LSTM(3, 4))
    for other in (lc.LSTM(3, 4, variant="peephole"), lc.LSTM(3, 4, num_layers=2),
                  lc.LSTM(3, 4, direction="reverse"), lc.LSTM(3, 4, proj_size=2),
                  lc.LSTM(3, 4, clip=1.0), lc.GRU(3, 4), lc.RNN(3, 4)):
        assert not replica_lstm.applies(other)


def test_the_evaluator_gives_the_same_numbers_on_both_routes(monkeypatch):
    m, theta, w = _problem(T=4, B=2)
    rng = np.random.default_rng(2)
    deltas = {n: 1e-5 * rng.standard_normal(theta[n].size) for n in (*TENSORS, "x", "h0", "c0")}
    res = {}
    for route in ("replicas", "model"):
        monkeypatch.setenv("LSTMCHECK_AUDIT_ROUTE", route)
        ev = ModelEvaluator(m, theta, w)
        assert ev.replicas == (route == "replicas")
        res[route] = {n: ev.elements(n, np.arange(theta[n].size), deltas[n])
                      for n in (*TENSORS, "x", "h0", "c0")}
    for n in (*TENSORS, "x", "h0", "c0"):
        a, b = res["replicas"][n], res["model"][n]
        assert np.abs(a - b).max() <= 1e-13 * max(1.0, np.abs(b).max())


def _rows(report):
    return {t["name"]: t for t in report.to_dict()["tensors"]}


@pytest.mark.parametrize("wrong", [None, ("weight_hh_l0", 7), ("bias_ih_l0", 3)])
def test_gradcheck_verdicts_agree_on_both_routes(monkeypatch, wrong):
    """Same verdict, same failing element, numeric derivatives within the checker's bands."""
    m = lc.LSTM(3, 4)
    p = m.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    if wrong is not None:                       # a gradient with one wrong element
        real = api._model_grads

        def broken(*args):
            g, nondet = real(*args)
            g = dict(g)
            g[wrong[0]] = g[wrong[0]].copy()
            g[wrong[0]].reshape(-1)[wrong[1]] += 1e-3 * (1 + abs(g[wrong[0]].reshape(-1)[wrong[1]]))
            return g, nondet
        monkeypatch.setattr(api, "_model_grads", broken)
    reports = {}
    for route in ("replicas", "model"):
        monkeypatch.setenv("LSTMCHECK_AUDIT_ROUTE", route)
        reports[route] = lc.gradcheck(m, p, x, method="central")
    a, b = reports["replicas"], reports["model"]
    assert a.verdict == b.verdict == ("passed" if wrong is None else "failed")
    ra, rb = _rows(a), _rows(b)
    for n in ra:
        assert ra[n]["passed"] == rb[n]["passed"] and ra[n]["n_failed"] == rb[n]["n_failed"]
        assert abs(ra[n]["max_abs_err"] - rb[n]["max_abs_err"]) <= 0.1 * rb[n]["tolerance"]
    if wrong is not None:
        assert not ra[wrong[0]]["passed"]


def test_an_unknown_audit_route_is_one_sentence(monkeypatch):
    monkeypatch.setenv("LSTMCHECK_AUDIT_ROUTE", "fast")
    m, theta, w = _problem()
    with pytest.raises(lc.LstmcheckError, match="LSTMCHECK_AUDIT_ROUTE must be one of"):
        ModelEvaluator(m, theta, w)


def test_a_long_sequence_replica_is_the_readable_loss():
    """200 steps: rounding the routes do differently does not build up along the sequence."""
    m, theta, w = _problem(D=4, H=6, T=200, B=2, seed=7, scale=1.5)
    flat, d = np.array([3, 40, 77]), np.array([1e-5, -0.2, 3e-3])
    rc = np.unravel_index(flat, theta["weight_hh_l0"].shape)
    ref = np.array([_readable_loss(m, theta, w, "weight_hh_l0", j, dj) for j, dj in zip(flat, d)])
    scale = np.abs(w["y"]).sum() + np.abs(w["h0"]).sum() + 10 * np.abs(w["c0"]).sum()
    for route in ROUTES:
        f = replica_lstm.replica_losses(theta, w, "weight_hh_l0", *rc, d, route=route)
        assert np.abs(f - ref).max() <= 1e-14 * scale, route


@pytest.mark.parametrize("route", ROUTES)
def test_the_evaluator_runs_the_route_it_is_told(monkeypatch, route):
    monkeypatch.setenv("LSTMCHECK_REPLICA_ROUTE", route)
    used = []
    real = replica_lstm.replica_losses
    monkeypatch.setattr(replica_lstm, "replica_losses",
                        lambda *a, route: used.append(route) or real(*a, route=route))
    m, theta, w = _problem(T=4, B=2)
    ev = ModelEvaluator(m, theta, w)
    f = ev.elements("weight_hh_l0", np.arange(5), np.full(5, 1e-5))
    assert set(used) == {route} and f.shape == (5,)


def test_the_replica_route_is_measured_once_and_remembered(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("LSTMCHECK_CACHE_DIR", raising=False)
    monkeypatch.delenv("LSTMCHECK_REPLICA_ROUTE", raising=False)
    monkeypatch.setattr(kernels, "_cache", {})
    m, theta, w = _problem(T=6, B=2)
    ev = ModelEvaluator(m, theta, w)
    ev.elements("weight_ih_l0", np.arange(4), np.full(4, 1e-5))
    stored = json.loads((tmp_path / "lstmcheck" / "kernels.json").read_text())
    routes = [v for k, v in stored.items() if k.startswith(("replica_route|", "replica_route@"))]
    assert len(routes) == 1 and routes[0] in ROUTES


def test_an_unknown_replica_route_is_one_sentence(monkeypatch):
    monkeypatch.setenv("LSTMCHECK_REPLICA_ROUTE", "fast")
    m, theta, w = _problem()
    ev = ModelEvaluator(m, theta, w)
    with pytest.raises(lc.LstmcheckError, match="LSTMCHECK_REPLICA_ROUTE must be one of"):
        ev.elements("bias_ih_l0", np.arange(3), np.full(3, 1e-5))
