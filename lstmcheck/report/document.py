"""What a report holds, independent of how it is written: a summary table, figures with one-line
captions, and the JSON-ready results behind them."""
from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("pass", "fail", "info")


@dataclass
class Row:
    """One line of the summary table."""

    check: str
    result: str
    status: str = "info"      # 'pass', 'fail' or 'info' (a measurement, not a verdict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self):
        return {"check": self.check, "result": self.result, "status": self.status}


@dataclass
class Figure:
    """A matplotlib figure saved as ``figures/<name>.png`` and ``.svg``."""

    name: str
    caption: str              # one line: what the reader should see in it
    figure: object            # matplotlib.figure.Figure


@dataclass
class Report:
    title: str
    rows: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)   # short paragraphs shown under the table

    @property
    def passed(self) -> bool:
        """True unless some summary row failed."""
        return not any(r.status == "fail" for r in self.rows)

    def add_row(self, check, result, status="info"):
        self.rows.append(Row(check, result, status))

    def add_figure(self, name, caption, figure):
        if any(f.name == name for f in self.figures):
            raise ValueError(f"duplicate figure name {name!r}")
        self.figures.append(Figure(name, " ".join(caption.split()), figure))

    def summary_dict(self, formats=("png", "svg")):
        return {"title": self.title, "passed": self.passed,
                "rows": [r.to_dict() for r in self.rows],
                "figures": [{"name": f.name, "caption": f.caption,
                             **{ext: f"figures/{f.name}.{ext}" for ext in formats}}
                            for f in self.figures],
                "notes": list(self.notes)}
