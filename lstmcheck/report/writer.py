"""Report folders: index.html, summary.md, results.json and figures, written atomically.

A report is written into a temporary folder next to its destination and swapped into place only
once every file is complete (lstmcheck.report.atomic), so an interrupted run (Ctrl-C, an error, a
full disk, a kill) never leaves a half-written report and never destroys an earlier one. An
existing report is replaced only when asked (``force``), and only if lstmcheck wrote it (its
``.lstmcheck`` marker says so): an unrelated folder is never deleted.
"""
from __future__ import annotations

from pathlib import Path

from .atomic import (MARKER, OutputError, RefusedFolder, atomic_folder,  # noqa: F401
                     check_destination)
from ..jsonio import dumps, to_jsonable  # noqa: F401  (to_jsonable: re-exported)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, data, digits: int | None = None, indent=1) -> Path:
    """JSON through lstmcheck.jsonio (NumPy scalars/arrays converted, NaN/Inf written as null,
    strict JSON); ``digits``: round floats to that many significant digits (smaller files)."""
    seps = (",", ":") if indent is None else (",", ": ")
    return write_text(path, dumps(data, digits=digits, indent=indent, separators=seps) + "\n")


RESULT_DIGITS = 6   # significant digits kept in results.json (plots need far fewer)


def write_report(report, out, *, force: bool = False, meta: dict | None = None,
                 progress=None, formats=None) -> Path:
    """Write ``report`` as a folder: index.html, summary.md, results.json,
    figures/*.png|svg|pdf and figures/*.csv (the numbers each figure plots).

    ``progress(label)`` is called once per file group written (for the CLI's progress bar);
    ``formats`` picks the figure files (default PNG, SVG and PDF; the index shows the PNG).
    Returns the final folder. Nothing appears at ``out`` unless every file was written.
    """
    from .html import render_html
    from .markdown import render_markdown
    from . import style
    from .figure_worker import save_figures
    from .tables import csv_text, figure_rows

    formats = tuple(formats or style.FORMATS)
    if "png" not in formats:
        raise ValueError("a report needs PNG figures (the index page shows them)")
    tick = progress or (lambda label: None)
    meta = {k: v for k, v in (meta or {}).items()}
    with atomic_folder(out, force) as tmp:
        figures = list(report.figures)
        for f in figures:           # the numbers first: a figure's file may be saved elsewhere
            rows = f.table if f.table is not None else figure_rows(f.figure)
            write_text(tmp / "figures" / f"{f.name}.csv", csv_text(rows))
        save_figures(figures, tmp / "figures", formats,
                     lambda f: style.save_figure(f.figure, tmp / "figures", f.name, formats=formats),
                     lambda f: tick(f.name))
        results = {"meta": meta, "summary": report.summary_dict(formats),
                   "results": report.results}
        write_json(tmp / "results.json", results, digits=RESULT_DIGITS, indent=None)
        brief = {k: v for k, v in meta.items() if not isinstance(v, dict)}
        write_text(tmp / "summary.md", render_markdown(report, brief, formats))
        write_text(tmp / "index.html", render_html(report, brief, formats))
        tick("index.html")
    return Path(out).expanduser().absolute()
