"""The append-only results file of a sweep (``results.jsonl``): recording and resuming."""
from __future__ import annotations

import json
import os

from .. import jsonio
from ..errors import FileFormatError, OptionError

RESULTS_FILE = "results.jsonl"


def point_key(point: dict, measure_name: str) -> str:
    """The identity of a record in the results file: the measure and the full point."""
    return jsonio.dumps({"measure": measure_name, **point}, sort_keys=True)


def check_out(out) -> None:
    """Refuse an ``out=`` that is a file, or lies under one, in one sentence naming it."""
    if not isinstance(out, (str, os.PathLike)):
        raise OptionError(f"out must be a folder path, got {type(out).__name__}.")
    path = os.path.abspath(os.fspath(out))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OptionError(f"out={os.fspath(out)} is a file; a sweep writes a folder there.")
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OptionError(f"cannot write the sweep to {os.fspath(out)}: {parent} is a file, not "
                          f"a folder.")
    if not os.path.isdir(path) and not os.access(parent, os.W_OK | os.X_OK):
        raise OptionError(f"cannot write the sweep to {os.fspath(out)}: the folder {parent} is "
                          f"not writable.")


class ResultsFile:
    """Append-only JSON lines: ``{"key": ..., "record": {...}}`` per finished point.

    A last line cut short by a kill is ignored on reading (that point simply runs again) and
    removed before the next append."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, RESULTS_FILE)

    def load(self) -> dict:
        done = {}
        if not os.path.exists(self.path):
            return done
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    done[row["key"]] = row["record"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    if line.endswith("\n"):     # only the last, unfinished line may be broken
                        raise FileFormatError(f"{self.path} line {n} is not a sweep record; "
                                              f"use another output folder.") from None
        return done

    def __enter__(self):
        self._f = open(self.path, "a+b")
        self._drop_cut_line()
        return self

    def _drop_cut_line(self):
        """Cut off a last line left unfinished by a kill, so every line stays a whole record."""
        f = self._f
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(4096, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                pos = pos - step + nl + 1
                break
            pos -= step
        if pos != end:
            f.truncate(pos)
            f.seek(0, os.SEEK_END)

    def append(self, key, record):
        line = jsonio.dumps({"key": key, "record": record}) + "\n"
        try:
            self._f.write(line.encode("utf-8"))   # one write per record: a kill cuts at most it
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:  # a full disk: say which file, and that nothing is lost
            raise OSError(exc.errno, f"{exc.strerror or exc} while recording a finished point; "
                          f"the points recorded before are kept and rerunning resumes",
                          self.path) from None

    def __exit__(self, *exc):
        self._f.close()
        return False


class _NoFile:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def append(self, key, record):
        pass
