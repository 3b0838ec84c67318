"""GradcheckReport: the verdict, one row per tensor, the worst elements, one-sentence summary."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np


def plain(v):
    """NumPy scalars/arrays/tuples -> plain Python types, non-finite floats kept as floats."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.complexfloating, complex)):
        return float(np.real(v))
    return v


def _fmt(v, width=10):
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan".rjust(width)
        return f"{v:.3g}".rjust(width)
    return str(v).rjust(width)


@dataclass
class GradcheckReport:
    passed: bool
    method: str
    tensors: list
    worst: list
    summary: str
    dtype: str = "float64"
    notes: list = field(default_factory=list)       # fallbacks, windows, localisation paths
    details: dict = field(default_factory=dict)     # floors, evaluation counts, seed

    @property
    def verdict(self) -> str:
        """"failed", "inconclusive" (no disagreement, but some tensor's check cannot resolve a
        wrong element: resolution >= 1) or "passed"."""
        from .summary import inconclusive
        if not self.passed:
            return "failed"
        return "inconclusive" if inconclusive(self.tensors) else "passed"

    @property
    def resolution(self):
        """The coarsest per-tensor resolution: one significant element wrong by more than this
        relative error fails the check (None when no tensor has a relative statement)."""
        res = [r["resolution"] for r in self.tensors if r.get("resolution") is not None]
        return max(res) if res else None

    def to_dict(self) -> dict:
        d = {"passed": self.passed, "verdict": self.verdict, "resolution": self.resolution,
             "method": self.method, "dtype": self.dtype,
             "summary": self.summary, "tensors": self.tensors, "worst": self.worst,
             "notes": self.notes, "details": self.details}
        d = plain(d)
        json.dumps(d)  # JSON-ready is part of the contract: fail here, not in a writer
        return d

    def failing(self) -> list:
        """Names of the failing tensors, once each (a tensor may have several rows)."""
        return list(dict.fromkeys(r["name"] for r in self.tensors if not r["passed"]))

    def to_text(self) -> str:
        head = ["tensor", "shape", "method", "checked", "max abs", "max rel", "norm rel",
                "cosine", "tolerance", "resolution", "verdict"]
        rows = []
        for r in self.tensors:
            rows.append([r["name"], "x".join(map(str, r["shape"])) or "()", r["method"],
                         str(r["n_checked"]), _fmt(r["max_abs_err"]), _fmt(r["max_rel_err"]),
                         _fmt(r["normwise_rel_err"]), _fmt(r["cosine"]), _fmt(r["tolerance"]),
                         _fmt(r.get("resolution")), "ok" if r["passed"] else "FAIL"])
        widths = [max(len(h), *(len(str(x).strip()) for x in col)) if rows else len(h)
                  for h, col in zip(head, zip(*rows) if rows else [[]] * len(head))]
        lines = [self.verdict.upper() + f" ({self.method}, {self.dtype}): "
                 + self.summary, ""]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for r in rows:
            lines.append("  ".join(str(x).strip().ljust(w) for x, w in zip(r, widths)))
        if self.worst:
            lines += ["", "worst elements:"]
            for w in self.worst:
                loc = w.get("location") or {}
                where = ", ".join(f"{k}={v}" for k, v in loc.items() if k != "tensor")
                col = w.get("column")       # check_hvp: the unit direction e_j it came from
                if col:
                    where += (", " if where else "") + f"column {col['tensor']}{col['index']}"
                lines.append(f"  {w['tensor']}{list(w['index'])}" + (f" ({where})" if where else "")
                             + f": analytic {w['analytic']:.10g}, numeric {w['numeric']:.10g}"
                             + f" +- {w['error_bar']:.2g}"
                             + ("" if w.get("passed", True) else "  <- wrong"))
        for n in self.notes:
            lines.append("note: " + n)
        return "\n".join(lines)

    def __str__(self):
        return self.to_text()

    def __bool__(self):
        return bool(self.passed)
