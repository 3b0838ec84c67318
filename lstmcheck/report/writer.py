"""Atomic report folders.

A report is written into a temporary folder next to its destination and renamed into place only
once every file is complete, so an interrupted run (Ctrl-C, an error, a full disk) never leaves a
half-written report and never destroys an earlier one. An existing report is replaced only when
asked (``force``), and only if the folder looks like a report: an unrelated folder is never
deleted.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import LstmcheckError
from ..jsonio import dumps, to_jsonable  # noqa: F401  (to_jsonable: re-exported)

# Files whose presence marks a folder as an lstmcheck report (safe to replace with force).
REPORT_MARKERS = ("results.json", "index.html")


class OutputError(LstmcheckError, OSError):
    """The output folder exists, cannot be written, or is not a report that may be replaced."""


def _is_replaceable(path: Path) -> bool:
    return path.is_dir() and (not any(path.iterdir())
                              or any((path / m).is_file() for m in REPORT_MARKERS))


def check_destination(out, force: bool = False) -> Path:
    """Refuse an unusable destination before any work is done; return it as an absolute path.

    Called again just before the rename, since the folder may have appeared meanwhile.
    """
    out = Path(out).expanduser().absolute()
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputError(f"the output folder {out} already exists; choose another --out or "
                              f"pass --force to replace it.")
        if not _is_replaceable(out):
            raise OutputError(f"{out} exists and is not an lstmcheck report (no results.json or "
                              f"index.html); refusing to replace it even with --force.")
    parent = out.parent
    if not parent.is_dir():
        if parent.exists():
            raise OutputError(f"cannot write the report to {out}: {parent} is not a folder.")
        raise OutputError(f"cannot write the report to {out}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the report to {out}: the folder {parent} is not writable.")
    return out


@contextlib.contextmanager
def atomic_folder(out, force: bool = False):
    """Yield a fresh temporary folder; on success it becomes ``out``, on any exception it vanishes.

    The temporary folder lives in the same parent, so the final step is a rename on one file
    system. With ``force`` the old report is moved aside first and deleted only after the new one
    is in place; if that rename fails, the old one is put back.
    """
    out = check_destination(out, force)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's private 0700 would stick to the report
    except OSError as exc:
        raise OutputError(f"cannot write the report to {out}: {exc.strerror or exc}.") from None
    try:
        yield tmp
        check_destination(out, force)
        _swap_into_place(tmp, out)
    except OSError as exc:  # a full disk, a vanished folder: name the report, not a temp file
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, LstmcheckError):
            raise
        kept = "the earlier report there is unchanged" if out.exists() else "nothing was written"
        raise OutputError(f"cannot write the report to {out}: {exc.strerror or exc}; "
                          f"{kept}.") from exc
    except BaseException:  # KeyboardInterrupt included: nothing half-written survives
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)  # only the unique name is wanted
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        try:
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:  # Ctrl-C while the replaced report is deleted: finish, then count
            shutil.rmtree(old, ignore_errors=True)
            raise


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
    """Write ``report`` as a folder: index.html, summary.md, results.json, figures/*.png|svg.

    ``progress(label)`` is called once per file group written (for the CLI's progress bar);
    ``formats`` picks the figure files (default PNG and SVG; the index shows the PNG).
    Returns the final folder. Nothing appears at ``out`` unless every file was written.
    """
    from .html import render_html
    from .markdown import render_markdown
    from .style import FORMATS, save_figure

    formats = tuple(formats or FORMATS)
    if "png" not in formats:
        raise ValueError("a report needs PNG figures (the index page shows them)")
    tick = progress or (lambda label: None)
    meta = {k: v for k, v in (meta or {}).items()}
    with atomic_folder(out, force) as tmp:
        for f in report.figures:
            save_figure(f.figure, tmp / "figures", f.name, formats=formats)
            tick(f.name)
        results = {"meta": meta, "summary": report.summary_dict(formats),
                   "results": report.results}
        write_json(tmp / "results.json", results, digits=RESULT_DIGITS, indent=None)
        brief = {k: v for k, v in meta.items() if not isinstance(v, dict)}
        write_text(tmp / "summary.md", render_markdown(report, brief, formats))
        write_text(tmp / "index.html", render_html(report, brief, formats))
        tick("index.html")
    return Path(out).expanduser().absolute()
