"""One sentence that says what is wrong (or that all passed), from the per-tensor rows."""
from __future__ import annotations


def _where(w):
    loc = w.get("location") or {}
    parts = [f"{k} {v}" for k, v in loc.items() if k != "tensor"]
    return f"{w['tensor']}{list(w['index'])}" + (f" ({', '.join(parts)})" if parts else "")


def _describe(row, worst):
    name = row["name"]
    mine = [w for w in worst if w["tensor"] == name and not w.get("passed", True)]
    if row.get("nan_analytic"):
        return f"the analytic gradient of {name} has {row['nan_analytic']} NaN/Inf element(s)" + (
            f", first at {_where(mine[0])}" if mine else "")
    if row["method"] == "taylor":
        return (f"{name} fails the Taylor test: {row.get('reason')} (slope 2 expected; use "
                f"method='directional' to locate the wrong elements)")
    if row.get("nan_numeric"):
        return f"f is not finite near {name} ({row['nan_numeric']} perturbed evaluations gave NaN/Inf)"
    if row.get("swapped_gates"):
        a, b = row["swapped_gates"]
        return f"{name} has its gate blocks {a} and {b} swapped"
    if row["n_failed"] == 1 and mine:
        w = mine[0]
        rel = abs(w["analytic"] - w["numeric"]) / max(abs(w["numeric"]), 1e-300)
        return (f"{name} has one wrong element, {_where(w)}: analytic {w['analytic']:.10g} vs "
                f"numeric {w['numeric']:.10g} (relative error {rel:.2g})")
    gates = row.get("failing_gates")
    if row["n_failed"] == 0:
        return f"{name} disagrees along random directions, but no element stands out"
    what = f"{name}: {row['n_failed']} of {row['n_checked']} checked elements wrong"
    if gates and len(gates) < row.get("n_gates", 0):
        what += f", all in gate block{'s' if len(gates) > 1 else ''} {', '.join(gates)}"
    if row.get("normwise_rel_err") is not None:
        what += f" (normwise relative error {row['normwise_rel_err']:.2g})"
    return what


def summarize(rows, worst, method):
    bad = [r for r in rows if not r["passed"]]
    if not bad:
        n = sum(r["n_checked"] for r in rows)
        ratio = ""
        if worst and worst[0].get("tolerance"):
            w = worst[0]
            ratio = (f"; the closest call used {abs(w['analytic'] - w['numeric']) / w['tolerance']:.2g}"
                     f" of its tolerance")
        return f"All {n} checked numbers in {len(rows)} tensors agree with {method} derivatives{ratio}."
    parts = [_describe(r, worst) for r in bad[:3]]
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    return (f"{len(bad)} of {len(rows)} tensors fail: " + "; ".join(parts) + more + ".")
