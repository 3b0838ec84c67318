"""summary.md: the summary table and figure list as Markdown (for CI logs and pull requests)."""
from __future__ import annotations


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report, meta: dict | None = None, formats=("png", "svg")) -> str:
    lines = [f"# {report.title}", ""]
    if meta:
        lines += [" · ".join(f"{k}: {v}" for k, v in meta.items()), ""]
    lines += [f"**{report.headline}**", "",
              "| Check | Result | Status |", "|---|---|---|"]
    lines += [f"| {_cell(r.check)} | {_cell(r.result)} | {r.status} |" for r in report.rows]
    lines.append("")
    for n in report.notes:
        lines += [n, ""]
    for i, f in enumerate(report.figures, 1):
        other = " ".join(f"[{ext.upper()}](figures/{f.name}.{ext})"
                         for ext in (*formats, "csv") if ext != "png")
        lines += [f"**Figure {i}.** {f.caption} {other}".rstrip(), "",
                  f"![{_cell(f.caption)}](figures/{f.name}.png)", ""]
    return "\n".join(lines)


def render_text(report) -> str:
    """The summary table for a terminal (what the CLI prints)."""
    width = max([len(r.check) for r in report.rows] + [5])
    mark = {"pass": "ok", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "info": ""}
    mark_width = max([len(mark[r.status]) for r in report.rows] + [4])
    lines = [f"{mark[r.status].ljust(mark_width)}  {r.check.ljust(width)}  {r.result}"
             for r in report.rows]
    return "\n".join(lines)
