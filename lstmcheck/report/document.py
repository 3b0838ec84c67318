"""What a report holds, independent of how it is written: a summary table, figures with one-line
captions, and the JSON-ready results behind them."""
from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("pass", "fail", "inconclusive", "info")


@dataclass
class Row:
    """One line of the summary table."""

    check: str
    result: str
    status: str = "info"      # 'pass', 'fail', 'inconclusive' (no disagreement, but the check
                              # could not resolve a wrong element) or 'info' (a measurement)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self):
        return {"check": self.check, "result": self.result, "status": self.status}


@dataclass
class Figure:
    """A matplotlib figure saved as ``figures/<name>.png`` (300 dpi), ``.svg``, ``.pdf``, with
    ``figures/<name>.csv`` beside it: the numbers it plots (``table``: tidy rows, dicts; by
    default read back from the figure's own lines and images, lstmcheck.report.tables)."""

    name: str
    caption: str              # one line: what the reader should see in it
    figure: object            # matplotlib.figure.Figure
    table: list | None = None


@dataclass
class Report:
    title: str
    rows: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)   # short paragraphs shown under the table
    kind: str = "report"      # what the report is, for a banner without checks
    warnings: list = field(default_factory=list)  # what went wrong outside any check (failed
                                                  # sweep points): shown in the banner

    @property
    def checked(self) -> bool:
        """Whether any row is a check (pass, fail, inconclusive) rather than a measurement."""
        return any(r.status != "info" for r in self.rows)

    @property
    def passed(self) -> bool:
        """True unless some summary row failed."""
        return not any(r.status == "fail" for r in self.rows)

    @property
    def verdict(self) -> str:
        """'failed' if some row failed, else 'inconclusive' if some check was, 'no checks' when
        no row is a check (a probe or sweep report only measures), else 'passed'."""
        if not self.checked:
            return "no checks"
        if not self.passed:
            return "failed"
        return "inconclusive" if any(r.status == "inconclusive" for r in self.rows) else "passed"

    @property
    def headline(self) -> str:
        """The verdict in words, for the top of every page: never "passed" without a check,
        and any warning (failed sweep points) after it."""
        words = {"failed": "Some checks FAILED", "passed": "All checks passed",
                 "no checks": f"{self.kind}, no checks run",
                 "inconclusive": "No check failed, but some were INCONCLUSIVE (they could not "
                                 "resolve a wrong element)"}[self.verdict]
        return "; ".join([words, *self.warnings])

    def add_row(self, check, result, status="info"):
        self.rows.append(Row(check, result, status))

    def add_figure(self, name, caption, figure, table=None):
        if any(f.name == name for f in self.figures):
            raise ValueError(f"duplicate figure name {name!r}")
        self.figures.append(Figure(name, " ".join(caption.split()), figure, table))

    def summary_dict(self, formats=("png", "svg", "pdf")):
        return {"title": self.title, "passed": self.passed, "verdict": self.verdict,
                "rows": [r.to_dict() for r in self.rows],
                "figures": [{"name": f.name, "caption": f.caption,
                             **{ext: f"figures/{f.name}.{ext}" for ext in formats},
                             "csv": f"figures/{f.name}.csv"}
                            for f in self.figures],
                "notes": list(self.notes)}
