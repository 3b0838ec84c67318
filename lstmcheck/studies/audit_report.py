"""What the report of `lstmcheck audit` holds: one row per compared tensor, the audit's summary,
diagnoses and notes, the worst-difference figure and the audit's results."""
from __future__ import annotations

from ..report import Report


def audit_status(row) -> str:
    """A compared tensor's summary-table status."""
    if not row["passed"]:
        return "fail"
    return "inconclusive" if row.get("inconclusive") else "pass"


def audit_report(result) -> Report:
    """A report of an :func:`lstmcheck.audit` result."""
    from ..report import fig_check

    rep = Report(f"lstmcheck audit: {result.target}")
    for r in result.rows:
        rep.add_row(f"{r['check']}: {r['tensor']}", f"max |diff| {r['max_abs']:.3g}, "
                    f"{r['ratio']:.3g} × tolerance", audit_status(r))
    rep.notes += [result.summary, *result.diagnosis, *result.notes]
    if result.rows:
        rep.add_figure("audit", "Worst difference from the oracle per compared tensor, in units "
                       "of its tolerance (≤ 1 passes).", fig_check.audit_bars(result.rows))
    rep.results["audit"] = result.to_dict()
    return rep
