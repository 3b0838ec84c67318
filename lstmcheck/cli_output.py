"""What the command line writes and how it ends: the exit codes, the group whose ``main`` turns
every outcome into one of them (an error is one line on stderr), the result on stdout, notes and
progress bars on stderr, report folders written with a progress bar.

Exit codes: 0 no check failed (all passed, or some were inconclusive); 1 a check failed; 2 usage
or input error (one line on stderr, ``--debug`` adds the traceback); 3 internal error (a bug in
lstmcheck); 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback

import click

from .cli_options import flag_set
from .errors import LstmcheckError

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


# --------------------------------------------------------------------------- the group and errors
class LstmcheckGroup(click.Group):
    """A click group whose ``main`` turns every outcome into one of the documented exit codes."""

    group_class = type   # subgroups (``vectors``) are LstmcheckGroups too

    def parse_args(self, ctx, args):
        if not args and self.no_args_is_help:   # click would put the whole help in the error
            raise click.UsageError(f"missing a command; choose one of "
                                   f"{', '.join(sorted(self.commands))}.", ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        # click's own main answers Ctrl-C by printing an empty line before our message; a
        # private exception carries the interrupt past it (one line on stderr, nothing before)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or bool(os.environ.get("LSTMCHECK_DEBUG"))
        from .report import atomic
        written = atomic.mark()   # what this invocation leaves, for an honest Ctrl-C message
        try:  # the program's name, also in CliRunner (which would say 'cli')
            rv = super().main(argv, "lstmcheck", complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else EXIT_PASS
        except (KeyboardInterrupt, _Interrupted, click.Abort):
            code = _fail(EXIT_INTERRUPTED, atomic.interrupted_message(written), debug,
                         keep_temp_names=True)   # it names a temporary folder on purpose
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            code = _fail(EXIT_INPUT, exc.format_message() + hint, debug)
        except LstmcheckError as exc:
            code = _fail(EXIT_INPUT, str(exc), debug)
        except MemoryError as exc:  # sizes the up-front estimate let through
            code = _fail(EXIT_INPUT, f"ran out of memory ({exc or 'MemoryError'}); choose smaller "
                         f"sizes.", debug)
        except OSError as exc:  # unreadable input, full disk, permission denied
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            code = _fail(EXIT_INPUT, f"{exc.strerror or exc}{where}.", debug)
        except Exception as exc:  # a bug: still one line unless --debug
            from .models.registry import user_code_frame
            where = user_code_frame(exc)
            if where is not None:   # raised in the user's own code (a module:Class cell)
                code = _fail(EXIT_INPUT, f"your code raised {type(exc).__name__}: {exc} "
                             f"({where}); rerun with --debug for the traceback.", debug)
            else:
                code = _fail(EXIT_BUG, f"internal error {type(exc).__name__}: {exc} (rerun with "
                             f"--debug for the traceback and please report it).", debug)
        if standalone_mode:
            sys.exit(code)
        return code


class _Interrupted(BaseException):
    """Ctrl-C on its way out of click (which would print an empty line for a KeyboardInterrupt)."""


def _fail(code: int, message: str, debug: bool, keep_temp_names: bool = False) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    if not keep_temp_names:
        from .report.atomic import user_paths
        message = user_paths(str(message))
    click.echo("lstmcheck: error: " + " ".join(str(message).split()), err=True)
    return code


# --------------------------------------------------------------------------- output
def say(text: str = "") -> None:
    """The human-readable result on stdout; silent with --quiet or after --json -."""
    if not flag_set("quiet"):
        click.echo(text)


def say_report(report) -> None:
    """A report's summary table, as the terminal shows it."""
    from .report.markdown import render_text

    say(render_text(report))


def note(text: str) -> None:
    """A message about what was done (not the result) on stderr; silent with --quiet."""
    if not flag_set("quiet"):
        click.echo(text, err=True)

def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):   # replaced or closed stderr
        return False


# click's bar hides the cursor while drawing; after an error: erase the bar's line, show it again
_ERASE_BAR = "\r\033[K\033[?25h"


@contextlib.contextmanager
def progress(total: int, label: str):
    """A progress bar on stderr; yields ``advance(label)``.

    Only a terminal gets one: elsewhere (a log file, a pipe, CI) click would print the bare label
    once, which helps no one and before an error made stderr two lines. On a terminal an error
    (or Ctrl-C) erases the bar, so the error line that follows stands alone."""
    if flag_set("quiet") or total <= 0 or not _stderr_is_terminal():
        yield lambda item=None: None
        return
    bar = click.progressbar(length=total, label=label, file=sys.stderr,
                            item_show_func=lambda s: s, show_eta=False)
    try:   # __enter__ draws the bar: a Ctrl-C while it draws must erase it too
        bar.__enter__()
        yield lambda item=None: bar.update(1, item)
    except BaseException:
        bar.finished = True                       # nothing more is drawn
        sys.stderr.write(_ERASE_BAR)
        sys.stderr.flush()
        raise
    bar.__exit__(None, None, None)


@contextlib.contextmanager
def progress_count(total: int, label: str):
    """A progress bar driven by counts: yields ``tick(n_done, total)``."""
    with progress(total, label) as advance:
        done = [0]

        def tick(n, _total):
            for _ in range(n - done[0]):
                advance()
            done[0] = n

        yield tick


def run_one(label: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` under a one-step progress bar."""
    with progress(1, label) as advance:
        result = fn(*args, **kwargs)
        advance("done")
    return result


def exit_code(passed: bool) -> int:
    return EXIT_PASS if passed else EXIT_FAIL


def command_line(ctx=None) -> str:
    """The command that reproduces this run: the subcommand with every option spelled out
    (defaults included), from click's own view of the parameters, so the report can be
    rerun from its header alone."""
    import shlex

    ctx = ctx or click.get_current_context()
    words = ["lstmcheck", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])
                      if v is not None]
            continue
        if param.name in ("json_path",) or value is None or not param.opts:
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            if value:
                words.append(flag)
            continue
        for v in (value if param.multiple else [value]):
            words += [flag, str(v)]
    return shlex.join(words)


def report_meta(report, **extra) -> dict:
    """The header of a report: the full command line, lstmcheck's version, dtype, backend,
    seed (from the options, else from the study's settings) and every option's value."""
    from . import __version__

    ctx = click.get_current_context()
    settings = report.results.get("settings", {}) if hasattr(report, "results") else {}
    if not isinstance(settings, dict):          # a typed settings row (the self-check's)
        settings = settings.to_dict() if hasattr(settings, "to_dict") else {}
    meta = {"command": command_line(ctx), "lstmcheck": __version__}
    for key in ("dtype", "backend", "seed"):
        value = ctx.params.get(key)
        meta[key] = value if value is not None else settings.get(key, "default")
    meta.update(extra)
    meta["options"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in ctx.params.items()
                       if k != "json_path"}
    return meta


def write_report_folder(report, out, force, meta):
    """Write a study's report atomically, with a progress bar over its files."""
    from .report import write_report

    with progress(len(report.figures) + 1, "writing report") as advance:
        path = write_report(report, out, force=force, meta=meta, progress=advance)
    note(f"report written to {path / 'index.html'}")
    return path


def run_study(study_fn, n_steps, label, **kwargs):
    """Call a study with a progress bar advancing once per section."""
    with progress(n_steps, label) as advance:
        return study_fn(progress=advance, **kwargs)


# --------------------------------------------------------------------------- --json
def emit_json(data, path) -> None:
    """Write ``data`` (dicts, arrays, objects with to_dict) as JSON to ``path`` or '-' (stdout)."""
    if not path:
        return
    from .jsonio import dumps

    text = dumps(data, indent=1) + "\n"
    if path == "-":
        click.echo(text, nl=False)
        click.get_current_context().meta["lstmcheck.quiet"] = True  # keep stdout pure JSON
        return
    from .report.writer import OutputError

    tmp = f"{path}.partial-{os.getpid()}"
    try:  # written beside and renamed: an interrupted run never leaves a truncated file
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write --json {path}: {exc.strerror or exc}; any earlier "
                          f"file there is unchanged.") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
