"""The gradient rows of an audit: the target's gradients against the oracle's, and against
finite differences of the target's own forward."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError, ShapeError
from .report import AuditRow, _row, _where_state
from .tolerances import compare, real_output


def _compare_gradients(report, model, gmap, grads_t, g_o, tol):
    oracle = gmap.pullback(g_o)
    for k in ("x", "h0", "c0"):
        if k in g_o:
            oracle[k] = g_o[k]
    unknown = [n for n in grads_t if n not in oracle]
    if unknown:
        raise ParameterError(f"the target's gradients name {', '.join(map(str, unknown[:4]))}, "
                             f"which {'is' if len(unknown) == 1 else 'are'} neither a tensor of "
                             f"the {gmap.layout} layout nor x, h0, c0.")
    for n in [*gmap.names, "x", "h0", "c0"]:
        if n not in grads_t or grads_t[n] is None:
            continue
        got = real_output(f"the target's gradient for {n}", grads_t[n])
        if got.shape != oracle[n].shape:
            raise ShapeError(f"the target's gradient for {n} has shape {got.shape}, expected "
                             f"{oracle[n].shape}.")
        c = compare(got, oracle[n], **tol)
        if n in ("x", "h0", "c0"):
            # "first bad step" counts forward in time; a backward error is placed by placement.py
            where = {k: v for k, v in _where_state(model, n, c).items() if k != "first_t"}
        else:
            where = _where_param(model, gmap, n, c["worst"])
        report.rows.append(_row("gradient", f"d{n}" if n in ("x", "h0", "c0") else n, c, tol, where))


def _where_param(model, gmap, name, worst):
    """Layer, direction, gate, row, column of a layout tensor's element, via the oracle's names."""
    if worst is None:
        return {}
    cname, flat = gmap.canonical_of(name, worst)
    where = {"index": list(worst)}
    if cname is not None:
        loc = model.locate(cname, flat)
        loc.pop("tensor", None)
        if not model.bidirectional:
            loc.pop("direction", None)
        if model.num_layers == 1:
            loc.pop("layer", None)
        where.update(loc)
        if cname != name:
            where["oracle_tensor"] = cname
    return where


def _fd_rows(report, tgt, model, gmap, grads_t, x_t, state_t, dy_t, dstate_t, elements, seed):
    """The target's gradients against central differences of its own forward (lc.check_gradients).
    Each row keeps the check's resolution and whether it was inconclusive for that tensor."""
    from ..check import check_gradients
    from ..check.summary import inconclusive
    inputs = {"x": x_t, **dict(zip(("h0", "c0"), state_t))}
    theta = {n: np.asarray(tgt.tensors[n]) for n in gmap.names if n in grads_t}
    theta.update({k: v for k, v in inputs.items() if k in grads_t})
    grads = {n: np.asarray(grads_t[n], theta[n].dtype) for n in theta}
    dy64 = np.asarray(dy_t, np.float64)
    ds64 = [np.asarray(d, np.float64) for d in dstate_t]

    def loss(th):
        if any(np.iscomplexobj(a) for a in th.values()):
            return 0.0   # a foreign forward is real-only: a real answer tells the checker so
        tens = {**tgt.tensors, **{n: th[n] for n in gmap.names if n in th}}
        st = tuple(th.get(k, s) for k, s in zip(("h0", "c0"), state_t))
        y, fin = tgt.forward(tens, th.get("x", x_t), st)
        return float(np.sum(np.asarray(y, np.float64) * dy64)
                     + sum(np.sum(np.asarray(f, np.float64) * d) for f, d in zip(fin, ds64)
                           if f is not None))

    def locate(name, index):
        if name in inputs:
            return {"index": list(index)}
        return _where_param(model, gmap, name, tuple(index))

    # central differences: two runs of the target per element (complex step needs the oracle's
    # complex-safe forward; Richardson triples the runs for accuracy the audit does not need)
    rep = check_gradients(loss, theta, grads, method="central", elements=elements, seed=seed,
                          locate=locate)
    unresolved = set(inconclusive(rep.tensors))
    worst = {}
    for w in rep.worst:
        worst.setdefault(w["tensor"], w)
    for r in rep.tensors:
        tol = r.get("tolerance") or 0.0
        w = worst.get(r["name"]) or {}
        ratio = (r["max_abs_err"] / tol) if tol else (0.0 if r["passed"] else float("inf"))
        report.rows.append(AuditRow(
            "fd", r["name"] if r["name"] not in inputs else "d" + r["name"], bool(r["passed"]),
            r["max_abs_err"], r["max_rel_err"], ratio, dict(w.get("location") or {}),
            method=r.get("method"), checked=r.get("n_checked"), resolution=r.get("resolution"),
            inconclusive=r["name"] in unresolved))
    report.notes.append(f"finite differences of the target's own forward: {rep.summary}")
