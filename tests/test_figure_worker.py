"""A report's figures saved by a second process: the same bytes as saved here, its errors raised
here, and nothing left running or lying about when this process's part ends early."""
import glob
import os
import tempfile
from types import SimpleNamespace

import pytest

from lstmcheck.report import Report, figure_worker, style, write_report
from lstmcheck.report.style import new_figure


def _figures(n):
    out = []
    for k in range(n):
        fig, (ax,) = new_figure(width=3, height=2)
        ax.plot([0, 1, 2], [1, 10 + k, 100])
        ax.set_xlabel(f"lag {k}")
        out.append(SimpleNamespace(figure=fig, name=f"f{k}"))
    return out


def _report(n):
    rep = Report("t")
    rep.add_row("check", "fine", "pass")
    for f in _figures(n):
        rep.add_figure(f.name, "caption", f.figure)
    return rep


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def started(monkeypatch):
    """The worker processes started, so a test can see that they ended."""
    procs = []
    real = figure_worker._start

    def start(jobs):
        w = real(jobs)
        procs.append(w[0])
        return w
    monkeypatch.setattr(figure_worker, "_start", start)
    return procs


def test_the_worker_writes_the_bytes_this_process_would(tmp_path, monkeypatch, started):
    monkeypatch.setenv("LSTMCHECK_THREADS", "2")
    both = write_report(_report(5), tmp_path / "two")
    assert len(started) == 1                       # the second process did save figures
    monkeypatch.setenv("LSTMCHECK_THREADS", "1")
    here = write_report(_report(5), tmp_path / "one")
    assert len(started) == 1
    a, b = _files(both), _files(here)
    assert sorted(n for n in a if n.startswith("figures/f")) == \
        sorted(f"figures/f{k}.{e}" for k in range(5) for e in ("png", "svg", "pdf", "csv"))
    assert a == b


def test_an_error_in_the_worker_is_raised_here_as_itself(tmp_path, monkeypatch, started):
    monkeypatch.setenv("LSTMCHECK_THREADS", "2")
    blocked = tmp_path / "file"
    blocked.write_text("")                         # the worker's folder cannot be made
    saved = []
    with pytest.raises((FileExistsError, NotADirectoryError)):
        figure_worker.save_figures(_figures(4), blocked / "figures", ("png",),
                                   lambda f: saved.append(f.name), lambda f: None)
    assert saved == ["f0", "f2"] and started and started[0].poll() is not None


def test_an_interruption_here_stops_the_worker_and_leaves_nothing(tmp_path, monkeypatch, started):
    """Killed at once, not waited for: it writes none of its figures (it is still starting)."""
    monkeypatch.setenv("LSTMCHECK_THREADS", "2")
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "lstmcheck-figures-*")))

    def interrupted(f):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        figure_worker.save_figures(_figures(6), tmp_path / "figures", style.FORMATS,
                                   interrupted, lambda f: None)
    assert started and started[0].poll() is not None
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").iterdir())
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "lstmcheck-figures-*"))) == before
    out = write_report(_report(2), tmp_path / "r")                # below MIN_FIGURES: no worker
    assert len(started) == 1 and (out / "figures" / "f1.png").exists()
