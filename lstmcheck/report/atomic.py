"""Output folders lstmcheck owns, replaced with no moment at which the earlier one is lost.

Every folder lstmcheck writes (a report, a golden-vector suite) holds a marker file, ``.lstmcheck``,
with ``{"kind": ..., "version": ...}``. ``force`` replaces a folder only if it holds the marker of
the same kind, or is empty: a user's folder that merely holds an index.html or a manifest.json is
refused, and so is a report written before the marker existed (nothing tells it apart from a
user's folder).

A folder is written into ``.X.partial-<pid>-<random>`` beside its destination ``X`` and then
swapped in. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` (``RENAME_NOREPLACE`` for a
new destination): at every instant ``X`` is either the earlier folder or the new one, and the
earlier one, now at the temporary name, is deleted afterwards. Elsewhere (or where the file system
cannot exchange) the earlier folder is renamed to ``.X.old-<pid>-<random>`` first and put back on
every exit path. Either way SIGINT, SIGTERM and SIGHUP are held back for the few system calls of
the swap, so Ctrl-C lands before it (nothing changed) or after it (the new folder complete; the
CLI then says so).

A SIGKILL can still leave temporary folders. The next run against the same destination first
puts a ``.X.old-*`` back as ``X`` when ``X`` is missing, then deletes the ``.X.partial-*`` and
``.X.old-*`` folders whose process (the pid in the name) is gone and that hold a marker or nothing;
those of a live concurrent run, and anything lstmcheck cannot prove it wrote, are left alone.

Tests hold the swap at a named stage with the environment variable ``LSTMCHECK_TEST_FAULT``
(``stage=action`` items joined by commas; see ``_fault``); ``no-exchange`` forces the two-rename
path.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..errors import LstmcheckError, OptionError

MARKER = ".lstmcheck"
FAULT_ENV = "LSTMCHECK_TEST_FAULT"
# kind -> (what the folder is called in messages, the phrase "not <...>" refusals use)
KINDS = {"report": ("report", "an lstmcheck report"),
         "vectors": ("suite", "a vectors suite written by lstmcheck")}
_DEFERRED = tuple(getattr(signal, s) for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s))

_TEMPS: list = []     # temporary folders this process made (for an honest Ctrl-C message)
_WRITTEN: list = []   # destinations this process swapped a finished folder into
_DESTINATIONS: dict = {}   # temporary folder -> the destination it was made for


class OutputError(LstmcheckError, OSError):
    """The output folder exists, cannot be written, or is not a report that may be replaced."""


class RefusedFolder(OutputError, OptionError):
    """The destination exists and may not be replaced (without force, or not lstmcheck's)."""


# ------------------------------------------------------------------------------- the marker
def write_marker(folder, kind: str) -> Path:
    from .. import __version__

    path = Path(folder) / MARKER
    path.write_text(json.dumps({"kind": kind, "version": __version__}) + "\n", encoding="utf-8")
    return path


def read_marker(folder) -> dict | None:
    """The marker of ``folder`` as a dict, or None (absent, unreadable, or not ours)."""
    try:
        with open(Path(folder) / MARKER, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def _empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:
        return False


def _replaceable(folder: Path, kind: str) -> bool:
    if folder.is_symlink() or not folder.is_dir():
        return False
    marker = read_marker(folder)
    return _empty(folder) if marker is None else marker["kind"] == kind


# ------------------------------------------------------------------------------- the destination
def check_destination(out, force: bool = False, kind: str = "report") -> Path:
    """Refuse an unusable destination before any work is done; return it as an absolute path.

    First recovers what a killed run left beside it (see the module's docstring). Called again
    just before the swap, since the folder may have appeared meanwhile.
    """
    noun, article = KINDS[kind]
    out = Path(out).expanduser().absolute()
    recover(out, kind)
    if os.path.lexists(out):
        if not force:
            where = "--out" if kind == "report" else "folder"
            raise RefusedFolder(f"the output folder {out} already exists; choose another {where} "
                                f"or pass --force to replace the {noun} in it.")
        _refuse_unless_replaceable(out, kind)
    parent = out.parent
    if not parent.is_dir():
        if parent.exists():
            raise OutputError(f"cannot write the {noun} to {out}: {parent} is not a folder.")
        raise OutputError(f"cannot write the {noun} to {out}: the folder {parent} does not "
                          f"exist.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the {noun} to {out}: the folder {parent} is not "
                          f"writable.")
    return out


def _refuse_unless_replaceable(out: Path, kind: str) -> None:
    noun, article = KINDS[kind]
    if out.is_symlink() or not out.is_dir():
        what = "a symbolic link" if out.is_symlink() else "a file"
        raise RefusedFolder(f"{out} is {what} and not {article}; refusing to replace it even "
                            f"with --force.")
    marker = read_marker(out)
    if marker is None and not _empty(out):
        raise RefusedFolder(f"{out} exists and is not {article} (it has no {MARKER} marker file, "
                            f"which older lstmcheck versions did not write either); refusing to "
                            f"replace it even with --force, so delete it yourself if it is "
                            f"yours to lose.")
    if marker is not None and marker["kind"] != kind:
        other = KINDS.get(marker["kind"], (None, "another lstmcheck output"))[1]
        raise RefusedFolder(f"{out} holds {other}, not {article}; refusing to replace it even "
                            f"with --force.")


# ------------------------------------------------------------------------------- leftovers
def _temp_pid(name: str, out: Path, stage: str) -> int | None:
    prefix = f".{out.name}.{stage}-"
    if not name.startswith(prefix):
        return None
    pid = name[len(prefix):].partition("-")[0]
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # EPERM: another user's live process
        return True
    return True


def recover(out: Path, kind: str) -> None:
    """Put back an earlier folder a killed swap left at ``.X.old-*``; delete temporary folders of
    runs that are gone. Best effort: a failure here leaves things as they were."""
    try:
        with os.scandir(out.parent) as it:
            names = [e.name for e in it]
    except OSError:
        return
    olds, stale = [], []
    for name in names:
        for stage, found in (("partial", stale), ("old", olds)):
            pid = _temp_pid(name, out, stage)
            path = out.parent / name
            if pid is None or _alive(pid) or path.is_symlink() or not path.is_dir():
                continue
            marker = read_marker(path)
            if (marker is not None and marker["kind"] == kind) or _empty(path):
                found.append(path)
    if olds and not os.path.lexists(out):
        olds.sort(key=lambda p: p.stat().st_mtime)
        with contextlib.suppress(OSError):
            _rename_noreplace(olds.pop(), out)   # the newest: the one its run displaced last
    for path in stale + olds:
        _remove(path)


def _writable_and_retry(function, path, exc_info) -> None:
    """rmtree's error handler: a read-only folder inside a folder lstmcheck owns (a user's
    chmod 555 subfolder of a report replaced with force) is made writable and the deletion
    retried, instead of leaving the whole temporary folder behind without a word."""
    parent = os.path.dirname(path)
    try:
        os.chmod(parent, os.stat(parent).st_mode | 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, os.stat(path).st_mode | 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            function(path)
    except OSError:
        pass   # not ours to change: left for the next run's tidy-up


def _rmtree(path) -> None:
    shutil.rmtree(path, onerror=_writable_and_retry)   # onerror: Python 3.11 has no onexc


def _remove(path) -> None:
    """Delete a folder; a Ctrl-C meanwhile still finishes the deletion, then counts."""
    try:
        _rmtree(path)
    except FileNotFoundError:
        pass
    except BaseException:
        with contextlib.suppress(OSError):
            _rmtree(path)
        raise


def _temp_name(out: Path, stage: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f".{out.name}.{stage}-{os.getpid()}-", dir=out.parent))
    _TEMPS.append(path)
    _DESTINATIONS[path] = out
    return path


def user_paths(message: str) -> str:
    """``message`` with every temporary folder of this process replaced by the folder the user
    asked for (an error deep inside the writing names a file under ``.X.partial-*``; the user
    knows X)."""
    for tmp, out in _DESTINATIONS.items():
        message = message.replace(os.fspath(tmp), os.fspath(out))
    return message


def mark() -> tuple:
    """Where this process's record of temporary and finished folders stands (see below)."""
    return len(_TEMPS), len(_WRITTEN)


def interrupted_message(since: tuple = (0, 0)) -> str:
    """What the CLI says after Ctrl-C: true of what was left on disk since ``mark()``."""
    left = [p for p in _TEMPS[since[0]:] if os.path.lexists(p)]
    written = _WRITTEN[since[1]:]
    if left:
        return (f"interrupted; the temporary folder {left[0]} was left behind (the next run "
                f"writing to the same folder tidies it up).")
    if written:
        return (f"interrupted after {written[-1]} was written in full; nothing half-written was "
                f"left behind.")
    return "interrupted; nothing half-written was left behind."


# ------------------------------------------------------------------------------- the swap
@functools.lru_cache(maxsize=1)
def _libc_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):   # glibc before 2.28, musl without it
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", -1),
                getattr(errno, "EOPNOTSUPP", -1)}


def _renameat2(src, dst, flags: int) -> bool:
    """True once done; False where the OS or the file system cannot (the caller falls back)."""
    fn = _libc_renameat2()
    if fn is None or "no-exchange" in os.environ.get(FAULT_ENV, "").split(","):
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), os.fspath(src), None, os.fspath(dst))


def _rename_noreplace(src, dst) -> None:
    if not _renameat2(src, dst, _RENAME_NOREPLACE):
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst))
        os.rename(src, dst)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM/SIGHUP back; one that arrived meanwhile acts when this block ends.

    Done with Python handlers rather than a signal mask: the kernel hands a process-wide signal
    to any thread that does not block it (NumPy's BLAS threads), and Python runs every handler in
    the main thread anyway. Elsewhere than the main thread no KeyboardInterrupt can arise."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught, saved = [], {}

    def hold(signum, frame):
        caught.append(signum)

    for sig in _DEFERRED:
        if signal.getsignal(sig) is not None:   # None: set outside Python, cannot be put back
            saved[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):       # each once, now that the swap is whole
            signal.raise_signal(sig)


class _Swap:
    done = False        # the new folder is at the destination
    displaced = None    # where the earlier folder sits meanwhile


def _swap_into_place(tmp: Path, out: Path, force: bool, kind: str, swap: _Swap) -> None:
    for _ in range(3):   # the destination may appear between the check and the rename
        check_destination(out, force, kind)
        replace = os.path.lexists(out)
        _fault("swap")
        with _signals_deferred():
            if not replace:
                try:
                    _rename_noreplace(tmp, out)
                except FileExistsError:
                    continue
            elif _renameat2(tmp, out, _RENAME_EXCHANGE):
                swap.displaced = tmp
                try:
                    _fault("between")
                    if not _replaceable(tmp, kind):   # swapped in by someone since the check
                        raise RefusedFolder(f"{out} changed while the new {KINDS[kind][0]} was "
                                            f"written and is no longer one lstmcheck may "
                                            f"replace; it was left as it is.")
                except BaseException:
                    _renameat2(tmp, out, _RENAME_EXCHANGE)   # all or nothing
                    swap.displaced = None
                    raise
            else:
                old = _temp_name(out, "old")
                os.rmdir(old)          # only the unique name is wanted
                os.rename(out, old)
                swap.displaced = old
                try:
                    _fault("between")
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(old, out)
                    swap.displaced = None
                    raise
            swap.done = True
            _WRITTEN.append(out)
        return
    raise RefusedFolder(f"{out} keeps reappearing while the new {KINDS[kind][0]} is moved there; "
                        f"is another run writing to it?")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_folder(out, force: bool = False, kind: str = "report"):
    """Yield a fresh temporary folder; on success it becomes ``out``, on any exception it vanishes.

    ``kind`` names what is written ("report" or "vectors"): its marker goes into the folder, and
    ``force`` replaces only a folder holding the marker of that kind (or an empty one).
    """
    noun = KINDS[kind][0]
    out = check_destination(out, force, kind)
    try:
        tmp = _temp_name(out, "partial")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's private 0700 would stick to the folder
        write_marker(tmp, kind)
    except OSError as exc:
        if "tmp" in locals():
            _remove(tmp)
        raise OutputError(f"cannot write the {noun} to {out}: {exc.strerror or exc}.") from None
    swap = _Swap()
    try:
        _fault("made")
        yield tmp
        write_marker(tmp, kind)   # the body may have emptied the folder
        _swap_into_place(tmp, out, force, kind, swap)
        if swap.displaced is not None:
            _fault("delete")
            _remove(swap.displaced)
    except BaseException as exc:  # KeyboardInterrupt included: nothing half-written survives
        if swap.done:
            if swap.displaced is not None:
                _remove(swap.displaced)
        else:
            _remove(tmp)
        if isinstance(exc, LstmcheckError) or not isinstance(exc, OSError):
            raise
        kept = (f"the new {noun} is in place" if swap.done else
                f"the earlier {noun} there is unchanged" if os.path.lexists(out) else
                "nothing was written")
        raise OutputError(f"cannot write the {noun} to {out}: {exc.strerror or exc}; "
                          f"{kept}.") from exc


# ------------------------------------------------------------------------------- test hooks
def _fault(stage: str) -> None:
    """Act at ``stage`` as LSTMCHECK_TEST_FAULT asks (tests only): ``stage=sigkill`` or
    ``stage=sigint`` (the process signals itself), ``stage=interrupt`` or ``stage=exit`` (raise
    KeyboardInterrupt or SystemExit), ``stage=wait:PATH`` (create PATH.reached, then wait until
    PATH exists). Stages: made, swap, between (after the exchange, or between the two renames),
    delete."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for item in spec.split(","):
        name, _, action = item.partition("=")
        if name != stage:
            continue
        if action == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "interrupt":
            raise KeyboardInterrupt
        elif action == "exit":
            raise SystemExit(3)
        elif action.startswith("wait:"):
            go = action[len("wait:"):]
            Path(go + ".reached").touch()
            for _ in range(6000):
                if os.path.exists(go):
                    break
                time.sleep(0.02)
