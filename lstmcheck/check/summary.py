"""One sentence that says what is wrong (or that all passed), from the per-tensor rows."""
from __future__ import annotations

from .labels import gate_word


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
        return (f"{name} has its gate blocks {a} and {b} swapped: its {gate_word(a)} block holds "
                f"the {gate_word(b)} gradient and the other way round")
    if row.get("permuted_gates"):
        return (f"{name} has its gate blocks permuted: it stacks them as "
                f"{','.join(row['permuted_gates'])} where the layout stacks them "
                f"{','.join(row['gate_order'])}")
    if row["n_failed"] == 1 and mine:
        w = mine[0]
        rel = abs(w["analytic"] - w["numeric"]) / max(abs(w["numeric"]), 1e-300)
        return (f"{name} has one wrong element, {_where(w)}: analytic {w['analytic']:.10g} vs "
                f"numeric {w['numeric']:.10g} (relative error {rel:.2g})")
    gates = row.get("failing_gates")
    if row.get("normwise_failed") and row["n_failed"] == 0:
        return (f"{name} is off as a whole: normwise relative error "
                f"{row['normwise_rel_err']:.2g}, above the {row['normwise_tolerance']:.2g} that "
                f"rounding explains, with no single element outside its band")
    if row["n_failed"] == 0:
        k = (f" ({row['n_directions_failed']} of {row['n_directions']})"
             if row.get("n_directions") else "")
        return f"{name} disagrees along random directions{k}, but no element stands out"
    what = f"{name}: {row['n_failed']} of {row['n_checked']} checked elements wrong"
    if gates and len(gates) < row.get("n_gates", 0):
        what += f", all in gate block{'s' if len(gates) > 1 else ''} {', '.join(gates)}"
    if row.get("normwise_rel_err") is not None:
        scope = row.get("normwise_scope")
        what += (f" (normwise relative error {row['normwise_rel_err']:.2g}"
                 + (f" over {scope}" if scope else "") + ")")
    return what


INCONCLUSIVE = 1.0     # resolution at which even a 100% error of one element could pass


def inconclusive(rows):
    """Names of passing tensors whose check cannot resolve a wrong element (resolution >= 1)."""
    return [r["name"] for r in rows if r["passed"] and (r.get("resolution") or 0) >= INCONCLUSIVE]


def resolution_sentence(rows):
    """What a pass is worth: the coarsest per-element resolution over the tensors, and which
    tensors the method could not resolve at all."""
    res = [(r["resolution"], r["name"]) for r in rows if r.get("resolution") is not None]
    if not res:
        return ""
    coarse, name = max(res)
    unresolved = inconclusive(rows)
    if unresolved:
        return (f" Inconclusive for {', '.join(unresolved[:4])}"
                f"{' and more' if len(unresolved) > 4 else ''}: an element wrong by 100% or more "
                f"could pass there (resolution {coarse:.2g}, e.g. derivatives below what the "
                f"precision or the method can resolve).")
    return (f" Resolution: one element wrong by more than {coarse:.2g} relative would have failed "
            f"(coarsest tensor {name}; derivatives >= 1% of their tensor's largest).")


def summarize(rows, worst, method):
    bad = [r for r in rows if not r["passed"]]
    if not bad:
        n = sum(r["n_checked"] for r in rows)
        n_tensors = len({r["name"] for r in rows})
        ratio = ""
        if worst and worst[0].get("tolerance"):
            w = worst[0]
            ratio = (f"; the closest call used {abs(w['analytic'] - w['numeric']) / w['tolerance']:.2g}"
                     f" of its tolerance")
        return (f"All {n} checked numbers in {n_tensors} tensors agree with {method} derivatives"
                f"{ratio}." + resolution_sentence(rows))
    # a tensor may have several rows (check_hvp's columns and random directions, gradcheck's
    # float32 rows): count and describe tensors, each by its first failing row
    first = list({r["name"]: r for r in reversed(bad)}.values())[::-1]
    n_all = len({r["name"] for r in rows})
    parts = [_describe(r, worst) for r in first[:3]]
    more = f" (and {len(first) - 3} more)" if len(first) > 3 else ""
    return (f"{len(first)} of {n_all} tensors fail: " + "; ".join(parts) + more + ".")
