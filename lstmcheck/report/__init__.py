"""Reports: figures (matplotlib, Agg), and HTML / Markdown / JSON writers with atomic folders.

    rep = Report("My study")
    rep.add_row("gradient check", "max rel. error 3e-10", "pass")
    rep.add_figure("flow", "Gradient norm against lag.", fig)
    write_report(rep, "out/", force=False)
"""
from .document import Figure, Report, Row
from .writer import OutputError, atomic_folder, check_destination, to_jsonable, write_json, write_report

__all__ = ["Report", "Row", "Figure", "write_report", "atomic_folder", "check_destination",
           "OutputError", "to_jsonable", "write_json"]
