"""What an audit found: :class:`AuditReport`, its rows, and the phrases its text is made of."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..jsonio import to_jsonable

_ABSENT = object()      # an optional field that a row of this kind does not have


@dataclass
class AuditRow:
    """One compared tensor of an audit. Forward and gradient rows carry the tolerances they were
    held to (rtol, atol, and a note when the target produced NaN/Inf); finite-difference rows the
    check's method, elements checked, resolution and whether it was inconclusive. Rows also read
    like the dicts they replace (``row["passed"]``, ``row.get("note")``)."""

    check: str
    tensor: str
    passed: bool
    max_abs: float
    max_rel: float
    ratio: float
    where: dict
    rtol: float = _ABSENT
    atol: float = _ABSENT
    note: str = _ABSENT
    method: str = _ABSENT
    checked: int = _ABSENT
    resolution: float = _ABSENT
    inconclusive: bool = _ABSENT

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not _ABSENT}

    def __getitem__(self, key):
        v = getattr(self, key, _ABSENT) if isinstance(key, str) else _ABSENT
        if v is _ABSENT:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        setattr(self, key, value)

    def __contains__(self, key):
        return getattr(self, key, _ABSENT) is not _ABSENT

    def get(self, key, default=None):
        v = getattr(self, key, _ABSENT)
        return default if v is _ABSENT else v


@dataclass
class AuditReport:
    """What ``lc.audit`` found. ``rows``: one :class:`AuditRow` per compared tensor;
    ``diagnosis``: sentences naming the layout
    mistake that explains a forward disagreement (empty when none was found or needed)."""

    target: str
    layout: str
    model: str
    dtype: str
    config: dict
    tolerances: dict
    rows: list = field(default_factory=list)
    diagnosis: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.rows)

    @property
    def verdict(self) -> str:
        """"failed", "inconclusive" (nothing disagreed, but the finite-difference check of some
        tensor could not resolve a wrong element: see ``resolution``) or "passed"."""
        if not self.passed:
            return "failed"
        return "inconclusive" if self.inconclusive else "passed"

    @property
    def inconclusive(self) -> list:
        """Tensors whose finite-difference check passed without resolving a wrong element."""
        return [r["tensor"] for r in self.rows if r.get("inconclusive")]

    @property
    def resolution(self):
        """The coarsest resolution of the finite-difference check (one element wrong by more than
        this relative error fails it); None without that check."""
        res = [r["resolution"] for r in self.rows if r.get("resolution") is not None]
        return max(res) if res else None

    @property
    def failures(self) -> list:
        return [r for r in self.rows if not r["passed"]]

    @property
    def summary(self) -> str:
        head = f"{self.target} ({self.layout} layout, {self.model}, {self.dtype})"
        if self.passed:
            checks = sorted({r["check"] for r in self.rows})
            s = f"{head} agrees with the oracle ({', '.join(checks)}: {len(self.rows)} tensors)."
            unsure = self.inconclusive
            if unsure:
                more = " and more" if len(unsure) > 4 else ""
                s += (f" The finite-difference check is inconclusive for {', '.join(unsure[:4])}"
                      f"{more}: an element wrong by 100% or more could pass there (resolution "
                      f"{self.resolution:.2g}).")
            return s
        bad = self.failures
        first = bad[0]
        s = (f"{head} disagrees with the oracle in {len(bad)} of {len(self.rows)} tensors; "
             f"first: {_row_phrase(first)}.")
        if self.diagnosis:
            s += " " + self.diagnosis[0]
        return s

    def to_dict(self) -> dict:
        return {"target": self.target, "layout": self.layout, "model": self.model,
                "dtype": self.dtype, "config": self.config, "passed": self.passed,
                "verdict": self.verdict, "resolution": self.resolution, "summary": self.summary, "tolerances": self.tolerances,
                "rows": [to_jsonable(r) for r in self.rows], "diagnosis": list(self.diagnosis),
                "notes": list(self.notes)}

    def to_text(self) -> str:
        lines = [f"{self.verdict.upper()}  " + self.summary, ""]
        lines.append(f"  {'check':<9}{'tensor':<24}{'max |diff|':>12}{'max rel':>11}{'x tol':>10}  where")
        for r in self.rows:
            mark = "!" if not r["passed"] else ("?" if r.get("inconclusive") else " ")
            lines.append(f"{mark} {r['check']:<9}{r['tensor']:<24}{r['max_abs']:>12.3e}"
                         f"{r['max_rel']:>11.2e}{r['ratio']:>10.2g}  {_where_text(r.get('where'))}"
                         + (f"  ({r['note']})" if r.get("note") else ""))
        for d in self.diagnosis:
            lines.append(f"diagnosis: {d}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def __str__(self):
        return self.to_text()


def _where_text(where) -> str:
    if not where:
        return ""
    order = ("layer", "direction", "gate", "t", "batch", "row", "column", "unit", "feature",
             "first_t", "index")
    parts = []
    for k in order:
        if k in where:
            v = where[k]
            parts.append(f"first bad step t={v}" if k == "first_t" else f"{k} {v}" if k != "t" else f"t={v}")
    return ", ".join(parts)


def _row_phrase(r) -> str:
    w = _where_text(r.get("where"))
    return (f"{r['check']} {r['tensor']} off by {r['max_abs']:.3g} ({r['ratio']:.3g} x tolerance)"
            + (f" at {w}" if w else "") + (f"; {r['note']}" if r.get("note") else ""))


def _row(check, tensor, c, tol, where):
    return AuditRow(check, tensor, c["passed"], c["max_abs"], c["max_rel"], c["ratio"], where,
                    rtol=tol["rtol"], atol=tol["atol"], note=c.get("note") or _ABSENT)


def _direction(model, k):
    return "reverse" if model.bidirectional and k % 2 else "forward"


def _where_state(model, name, c):
    """Where the worst element of y, h_n, c_n, x, h0 or c0 sits."""
    w = c["worst"]
    if w is None:
        return {}
    Ho = model.output_size
    if name in ("y",):
        t, b, u = w
        where = {"t": t, "batch": b, "unit": u % Ho}
        if model.bidirectional:
            where["direction"] = ("forward", "reverse")[u // Ho]
        if model.num_layers > 1:
            where["layer"] = model.num_layers - 1
        if c.get("first_t") is not None:
            where["first_t"] = c["first_t"]
        return where
    if name == "x":
        return {"t": w[0], "batch": w[1], "feature": w[2],
                **({"first_t": c["first_t"]} if c.get("first_t") is not None else {})}
    k, b, u = w
    where = {"layer": k // model.num_directions, "batch": b, "unit": u}
    if model.bidirectional:
        where["direction"] = _direction(model, k)
    return where
