"""A report's figures saved by two processes at once.

Saving a figure (matplotlib's layout and drawing, three formats) is Python under one interpreter
lock, and it is most of a report's time on a slow CPU. So where lstmcheck may use two CPUs, a
second interpreter (a fresh ``python -c`` on this process's own module path, which never re-runs
the caller's script as multiprocessing's spawn would) saves every other figure while
this process saves the rest. It runs in a session of its own, so a terminal's Ctrl-C reaches
only this process; whatever ends this process's part early (Ctrl-C, a full disk, an error) kills
it before the caller's atomic folder is cleaned up, so it never writes into a folder that is
gone. An error in it is raised here as the same exception. A figure that cannot be pickled is
saved here; with one CPU (``LSTMCHECK_THREADS=1``) or few figures, all are.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import parallel

MIN_FIGURES = 4     # below this a second interpreter's start-up (1-2 s) is not repaid


def save_figures(figures, folder, formats, save_here, done):
    """``save_here(f)`` or the worker's save for every figure in ``figures`` (items with
    ``.figure`` and ``.name``); ``done(f)`` after each one is on disk (the worker's at the end)."""
    theirs = []
    if len(figures) >= MIN_FIGURES and parallel.num_threads() >= 2:
        for f in figures[1::2]:
            try:
                theirs.append((f, pickle.dumps(f.figure)))
            except Exception:            # a figure holding something unpicklable: saved here
                pass
    sent = {id(f) for f, _ in theirs}
    worker = _start([(blob, str(folder), f.name, tuple(formats)) for f, blob in theirs]) \
        if theirs else None
    try:
        for f in figures:
            if id(f) not in sent:
                save_here(f)
                done(f)
        if worker is not None:
            _finish(worker)
    finally:
        if worker is not None:
            _stop(worker)
    for f, _ in theirs:
        done(f)


def _start(jobs):
    fd, path = tempfile.mkstemp(prefix="lstmcheck-figures-", suffix=".pickle")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(jobs, fh)
    # this process's own module path, in its order: the same lstmcheck, nothing shadowed
    boot = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
            "from lstmcheck.report.figure_worker import _serve; _serve(sys.argv[1])")
    err = tempfile.TemporaryFile()        # a file, not a pipe: warnings can never stall it
    proc = subprocess.Popen([sys.executable, "-c", boot, path, json.dumps(sys.path)],
                            stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    return proc, path, err


def _finish(worker):
    proc, _, err = worker
    out, _ = proc.communicate()
    try:
        status, exc = pickle.loads(out)
    except Exception:
        err.seek(0)
        words = err.read().decode(errors="replace").strip().splitlines()
        raise RuntimeError("the process saving the report's figures failed"
                           + (f": {words[-1]}" if words else "")) from None
    if status != "ok":
        raise exc


def _stop(worker):
    proc, path, err = worker
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    err.close()
    try:
        os.unlink(path)
    except OSError:
        pass


def _serve(path):
    from . import style
    result = ("ok", None)
    try:
        with open(path, "rb") as fh:
            jobs = pickle.load(fh)
        for blob, folder, name, formats in jobs:
            style.save_figure(pickle.loads(blob), Path(folder), name, formats=formats)
    except BaseException as exc:                      # the same exception, raised by the parent
        result = ("error", exc)
    try:
        data = pickle.dumps(result)
    except Exception:                                 # unpicklable: its words, at least
        data = pickle.dumps(("error", RuntimeError(f"{type(result[1]).__name__}: {result[1]}")))
    sys.stdout.buffer.write(data)
