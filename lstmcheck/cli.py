"""The `lstmcheck` command line: parse, call the Python API, print, set the exit code.

Every command is one small function; the work happens in the library (lstmcheck.check,
lstmcheck.probes, lstmcheck.audit, lstmcheck.vectors, lstmcheck.study, lstmcheck.report).
Shared pieces (options, JSON output, progress bars, exit codes) live at the top of this file.

Exit codes: 0 no check failed (all passed, or some were inconclusive); 1 a check failed; 2 usage
or input error (one line on stderr, ``--debug`` adds the traceback); 3 internal error (a bug in
lstmcheck); 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback

import click

from . import __version__
from .check.api import METHODS as CHECK_METHODS
from .errors import LstmcheckError
from .models import LSTM_VARIANTS

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

CELLS = ("rnn", "lstm", "gru")
SWEEP_INITS = ("pytorch", "orthogonal", "gaussian", "chrono")
PROBES = ("flow", "jacobian", "lyapunov", "horizon", "gates")
DTYPES = ("float64", "float32")
BACKENDS = ("numpy", "cupy", "auto")

EXAMPLES = """\b
Examples:
  lstmcheck report                        # default study -> ./lstmcheck-report/index.html
  lstmcheck report --out study --force    # replace an earlier report in ./study
  lstmcheck gradcheck --cell lstm --variant peephole --dtype float32
  lstmcheck probe --cell lstm --seq-len 200 --forget-bias 1 --out flow
  lstmcheck audit mymod:lstm_forward --layout torch --cell lstm   # your function vs the oracle
  lstmcheck audit exported.onnx --json audit.json                 # an ONNX model or .npz dump
  lstmcheck vectors export vectors/ && lstmcheck vectors verify vectors/ --impl mymod:impl
  lstmcheck info                          # versions, backends, GPU seen or not and why

\b
Exit codes: 0 pass (or inconclusive), 1 a check failed, 2 usage or input error,
3 internal error, 130 interrupted.
"""


# --------------------------------------------------------------------------- the group and errors
class LstmcheckGroup(click.Group):
    """A click group whose ``main`` turns every outcome into one of the documented exit codes."""

    group_class = type   # subgroups (``vectors``) are LstmcheckGroups too

    def parse_args(self, ctx, args):
        if not args and self.no_args_is_help:   # click would put the whole help in the error
            raise click.UsageError(f"missing a command; choose one of "
                                   f"{', '.join(sorted(self.commands))}.", ctx)
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or bool(os.environ.get("LSTMCHECK_DEBUG"))
        from .report import atomic
        written = atomic.mark()   # what this invocation leaves, for an honest Ctrl-C message
        try:  # the program's name, also in CliRunner (which would say 'cli')
            rv = super().main(argv, "lstmcheck", complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else EXIT_PASS
        except (KeyboardInterrupt, click.Abort):
            code = _fail(EXIT_INTERRUPTED, atomic.interrupted_message(written), debug)
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
            code = _fail(EXIT_BUG, f"internal error {type(exc).__name__}: {exc} "
                         f"(rerun with --debug for the traceback and please report it).", debug)
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(code: int, message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    click.echo("lstmcheck: error: " + " ".join(str(message).split()), err=True)
    return code


# --------------------------------------------------------------------------- shared options
def _store_flag(ctx, param, value):
    if value:
        ctx.meta[f"lstmcheck.{param.name}"] = True


def _flag(name: str, help: str):
    return click.option(f"--{name}", is_flag=True, expose_value=False, callback=_store_flag,
                        help=help)


quiet_option = _flag("quiet", "No progress bars or messages (errors and --json - still print).")
debug_option = _flag("debug", "Show the traceback of an error.")


def common(f):
    """--quiet and --debug, accepted by the group and by every command."""
    return quiet_option(debug_option(f))


def _flag_set(name: str) -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(f"lstmcheck.{name}"))


def _json_destination(ctx, param, value):
    """Refuse a --json PATH that cannot be written before any work is done."""
    if value and value != "-":
        folder = os.path.dirname(os.path.abspath(value))
        if not os.path.isdir(folder):
            raise click.BadParameter(f"cannot write {value}: the folder {folder} does not exist "
                                     f"or is not a folder.")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise click.BadParameter(f"cannot write {value}: the folder {folder} is not writable.")
    return value


json_option = click.option(
    "--json", "json_path", metavar="PATH", type=click.Path(dir_okay=False, allow_dash=True),
    callback=_json_destination,
    help="Also write everything behind the result as JSON to PATH ('-' for stdout).")
out_option = click.option(
    "--out", metavar="DIR", type=click.Path(file_okay=False),
    help="Write a report folder (index.html, figures, results.json, summary.md) to DIR.")
force_option = click.option("--force", is_flag=True,
                            help="Replace an existing report folder at --out.")
backend_option = click.option("--backend", type=click.Choice(BACKENDS), default="numpy",
                              show_default=True, help="Array backend (cupy needs a GPU).")
dtype_option = click.option("--dtype", type=click.Choice(DTYPES), default="float64",
                            show_default=True, help="Floating-point precision.")
SEED_MAX = 2**32 - 1   # the range every generator lstmcheck seeds (NumPy, torch, CuPy) accepts
seed_option = click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0,
                           show_default=True,
                           help=f"Seed of every random draw (parameters, inputs, probes); "
                                f"0 to {SEED_MAX}.")


def _variants(ctx, param, value):
    """Click callback: LSTM variant names, combinable with '+' as in the Python API."""
    from .models.lstm import parse_variant

    for v in value if isinstance(value, tuple) else (value,):
        try:
            parse_variant(v)
        except LstmcheckError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def positive(ctx, param, value):
    """Click callback: refuse zero and negative sizes with one clear line."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is not None and v < 1:
            raise click.BadParameter(f"must be a positive integer, got {v}.")
    return value


def tolerance(ctx, param, value):
    """Click callback: a tolerance is a finite number >= 0."""
    import math

    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"must be a finite number >= 0, got {value}.")
    return value


def given(name: str) -> bool:
    """Whether option ``name`` (its Python name) was typed on the command line."""
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def only_with(needed: str, present: bool, names) -> None:
    """Refuse options that mean nothing unless ``needed`` is given (instead of ignoring them)."""
    for name in names:
        if given(name) and not present:
            raise click.UsageError(f"--{name.replace('_', '-')} only applies with {needed}.")


def refuse_huge(cells, *, hidden_size, seq_len, batch, input_size=4, num_layers=1,
                directions=1) -> None:
    """Refuse sizes whose tape alone would not fit in this machine's memory, before any work
    (a clear sentence instead of a MemoryError, or the OOM killer minutes later)."""
    from .sweep import format_bytes, memory_estimate, physical_memory

    have = physical_memory()
    need = max(memory_estimate(c, input_size, hidden_size, seq_len, batch, num_layers,
                               directions) for c in cells)
    if have and need > have:
        sizes = {"--hidden-size": hidden_size, "--seq-len": seq_len, "--batch": batch,
                 "--input-size": input_size, "--num-layers": num_layers}
        named = [f"{k} {v}" for k, v in sizes.items() if given(k[2:].replace("-", "_"))]
        named = named or [f"{k} {v}" for k, v in sizes.items()]
        raise click.UsageError(f"{', '.join(named)} would need at least about "
                               f"{format_bytes(need)} of memory, more than this machine's "
                               f"{format_bytes(have)}; choose smaller sizes.")


# --------------------------------------------------------------------------- shared output
def say(text: str = "") -> None:
    """The human-readable result on stdout; silent with --quiet or after --json -."""
    if not _flag_set("quiet"):
        click.echo(text)


def note(text: str) -> None:
    """A message about what was done (not the result) on stderr; silent with --quiet."""
    if not _flag_set("quiet"):
        click.echo(text, err=True)


def emit_json(data, path) -> None:
    """Write ``data`` (dicts, arrays, objects with to_dict) as JSON to ``path`` or '-' (stdout)."""
    if not path:
        return
    from .report.writer import to_jsonable

    text = json.dumps(to_jsonable(data), indent=1, allow_nan=False) + "\n"
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


@contextlib.contextmanager
def progress(total: int, label: str):
    """A progress bar on stderr (silent with --quiet); yields ``advance(label)``."""
    if _flag_set("quiet") or total <= 0:
        yield lambda item=None: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr,
                           item_show_func=lambda s: s, show_eta=False) as bar:
        yield lambda item=None: bar.update(1, item)


def exit_code(passed: bool) -> int:
    return EXIT_PASS if passed else EXIT_FAIL


# --------------------------------------------------------------------------- the group
@click.group(cls=LstmcheckGroup, epilog=EXAMPLES,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="lstmcheck",
                      message="%(prog)s %(version)s")
@common
def cli():
    """Verify recurrent-network gradients and analyse vanishing/exploding gradient flow.

    An exact NumPy/CuPy oracle of RNN, LSTM and GRU forward and backward, gradient checks,
    gradient-flow probes, audits of foreign implementations, and plot reports.
    """


main = cli  # the console-script entry point (pyproject: lstmcheck.cli:main)


# --------------------------------------------------------------------------- info
@cli.command()
@json_option
@common
def info(json_path):
    """Versions, available backends, and whether a GPU is seen (and why not)."""
    from .report.environment import environment

    env = environment()
    emit_json(env, json_path)
    say(f"lstmcheck {env['lstmcheck']}  (Python {env['python']}, {env['platform']})")
    for group in ("required", "optional"):
        say(f"{group} packages:")
        for name, version in env[group].items():
            say(f"  {name:<14} {version or 'not installed'}")
    say("backends:  " + ", ".join(env["backends"]))
    gpu = env["gpu"]
    if gpu["available"]:
        say(f"GPU:       {gpu['device']} (CuPy {gpu['cupy']}, {gpu['devices']} device(s))")
    else:
        say(f"GPU:       none usable: {gpu['reason']}")
    return EXIT_PASS


# --------------------------------------------------------------------------- report
DEFAULT_REPORT_DIR = "lstmcheck-report"


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


@cli.command()
@out_option
@force_option
@json_option
@backend_option
@dtype_option
@seed_option
@click.option("--seq-len", type=int, default=100, show_default=True, callback=positive,
              help="Sequence length T of the gradient-flow probes.")
@click.option("--hidden-size", type=int, default=32, show_default=True, callback=positive,
              help="Hidden size of every model.")
@click.option("--batch", type=int, default=8, show_default=True, callback=positive,
              help="Sequences per probe (medians are over the batch).")
@common
def report(out, force, json_path, backend, dtype, seed, seq_len, hidden_size, batch):
    """The full default study as a report folder (default ./lstmcheck-report).

    The oracle's gradient check, RNN vs LSTM vs GRU gradient flow with theory overlays, the
    effective horizon, gate statistics and a spectral-radius sweep: index.html, figures as PNG
    and SVG, results.json and summary.md. Exit code 1 when a gradient check fails.
    """
    from . import study
    from .report.environment import environment
    from .report.markdown import render_text
    from .report.writer import check_destination

    out = out or DEFAULT_REPORT_DIR
    check_destination(out, force)  # fail before minutes of work, not after
    refuse_huge(study.DEFAULTS["cells"], hidden_size=hidden_size, seq_len=seq_len, batch=batch)
    rep = run_study(study.default_study, len(study.DEFAULT_SECTIONS), "running study",
                    seq_len=seq_len, hidden_size=hidden_size, batch=batch, seed=seed, dtype=dtype,
                    backend=backend)
    meta = {"command": "lstmcheck report", "lstmcheck": __version__, "seed": seed,
            "dtype": dtype, "backend": backend}
    path = write_report_folder(rep, out, force, {**meta, "environment": environment(gpu=False)})
    emit_json({"report": str(path), "passed": rep.passed, "rows": rep.rows,
               "results": rep.results}, json_path)
    say(render_text(rep))
    return exit_code(rep.passed)


# --------------------------------------------------------------------------- gradcheck
def _elements(ctx, param, value):
    if value == "all":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise click.BadParameter(f"must be 'all' or a positive integer, got {value!r}.")
    return n


@cli.command()
@click.option("--cell", "cells", multiple=True, type=click.Choice(CELLS),
              help="Cell to check (repeat for several) [default: all].")
@click.option("--variant", "variants", multiple=True, metavar="VARIANT", callback=_variants,
              help=f"LSTM variant: {', '.join(LSTM_VARIANTS)}, or several joined by '+' "
                   f"(repeat for several) [default: all].")
@click.option("--dtype", "dtypes", multiple=True, type=click.Choice(DTYPES),
              help="Precision (repeat for several) [default: float64].")
@click.option("--backend", "backends", multiple=True, type=click.Choice(BACKENDS),
              help="Backend (repeat for several) [default: numpy].")
@click.option("--method", "methods", multiple=True, type=click.Choice(CHECK_METHODS),
              help="Numerical method (repeat for several) [default: auto].")
@click.option("--input-size", type=int, default=3, show_default=True, callback=positive)
@click.option("--hidden-size", type=int, default=4, show_default=True, callback=positive)
@click.option("--seq-len", type=int, default=5, show_default=True, callback=positive)
@click.option("--batch", type=int, default=2, show_default=True, callback=positive)
@click.option("--num-layers", type=int, default=1, show_default=True, callback=positive)
@click.option("--bidirectional", is_flag=True, help="Check bidirectional models.")
@click.option("--elements", default="all", show_default=True, callback=_elements,
              help="'all', or how many sampled elements per tensor.")
@seed_option
@out_option
@force_option
@json_option
@common
def gradcheck(cells, variants, dtypes, backends, methods, input_size, hidden_size, seq_len,
              batch, num_layers, bidirectional, elements, seed, out, force, json_path):
    """Self-check the oracle's backward against numerical derivatives.

    Every chosen cell, variant, dtype, backend and method; exit code 1 if any check fails.
    A check is INCONCLUSIVE when nothing disagreed but its method or precision could not
    resolve a wrong element (e.g. --method taylor in float32); that is printed with the
    reason and keeps exit code 0.
    """
    from . import study
    from .report import Report
    from .report.markdown import render_text
    from .report.writer import check_destination

    only_with("--out", bool(out), ["force"])
    if out:
        check_destination(out, force)
    cases = study.self_check_cases(cells or CELLS, variants or None, dtypes or ("float64",),
                                   backends or ("numpy",), methods or ("auto",))
    sizes = dict(input_size=input_size, hidden_size=hidden_size, seq_len=seq_len, batch=batch,
                 num_layers=num_layers, bidirectional=bidirectional)
    shape = dict(input_size=input_size, hidden_size=hidden_size, seq_len=seq_len,
                 num_layers=num_layers, directions=2 if bidirectional else 1)
    refuse_huge(cells or CELLS, batch=batch, **shape)
    refuse_slow_gradcheck(len(cases), elements, **shape)
    with progress(len(cases), "checking") as advance:
        results = study.run_self_check(cases, elements=elements, seed=seed, progress=advance,
                                       **sizes)
    rep = Report("lstmcheck gradcheck: the oracle against numerical derivatives")
    study.add_self_check(rep, results)
    rep.results["settings"] = {**sizes, "elements": elements, "seed": seed}
    passed = rep.passed
    emit_json({"passed": passed, "verdict": rep.verdict, "checks": rep.results["gradcheck"],
               "settings": rep.results["settings"]}, json_path)
    if out:
        write_report_folder(rep, out, force, {"command": "lstmcheck gradcheck", "seed": seed})
    say(render_text(rep))
    for case, r in results:
        if r.verdict != "passed":   # its table starts FAILED or INCONCLUSIVE with the reason
            say(f"\n{case.label}:\n{r.to_text()}")
    counts = {v: sum(r.verdict == v for _, r in results) for v in ("passed", "inconclusive")}
    say(f"{counts['passed']} of {len(results)} checks passed"
        + (f", {counts['inconclusive']} inconclusive (exit code 0: nothing disagreed)"
           if counts["inconclusive"] else "") + ".")
    return exit_code(passed)


GRADCHECK_STEP_LIMIT = 10**9   # cell steps; at ~10 us each, hours of work


def refuse_slow_gradcheck(n_cases, elements, *, input_size, hidden_size, seq_len, num_layers,
                          directions):
    """Refuse a check whose finite differences would run for hours (each checked element costs
    two runs of the model over every step, layer and direction); suggest sampling instead."""
    from .sweep import GATES

    k = num_layers * directions
    n_params = k * max(GATES.values()) * hidden_size * (
        max(input_size, hidden_size * directions) + hidden_size + 2)
    checked = n_params if elements == "all" else min(n_params, elements * 5 * k)
    steps = n_cases * 2 * checked * seq_len * k
    if steps > GRADCHECK_STEP_LIMIT:
        raise click.UsageError(
            f"checking {checked:,} elements of {n_cases} model(s) with --num-layers {num_layers}, "
            f"--hidden-size {hidden_size} and --seq-len {seq_len} would run about {steps:.1e} "
            f"cell steps (hours); sample with --elements or choose smaller sizes.")


# --------------------------------------------------------------------------- sweep
DEFAULT_SWEEP_DIR = "lstmcheck-sweep"
SWEEP_MEASURES = ("gradient_flow", "lyapunov", "gates", "gradcheck")


@cli.command()
@click.argument("grid_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--param", "params", multiple=True, metavar="NAME=V1,V2,...",
              help="A grid axis, e.g. seq_len=10,100 or seed=0:5 (repeatable; overrides the file).")
@click.option("--measure", "measures", multiple=True, type=click.Choice(SWEEP_MEASURES),
              help="What to measure at every point (repeatable) [default: gradient_flow].")
@click.option("--workers", type=int, default=None, callback=positive,
              help="Worker processes on this machine (with --dask: LocalCluster workers).")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Run on the Dask cluster of this scheduler.")
@click.option("--dask", "use_dask", is_flag=True,
              help="Start a local Dask cluster of --workers processes.")
@click.option("--out", metavar="DIR", type=click.Path(file_okay=False), default=DEFAULT_SWEEP_DIR,
              show_default=True, help="Folder of results.jsonl (a rerun resumes from it) and of "
                                      "the report/ subfolder.")
@click.option("--fresh", is_flag=True, help="Recompute every point, ignoring results in --out.")
@click.option("--x", "x_axis", metavar="NAME", help="Grid parameter along the heatmaps' x axis.")
@click.option("--y", "y_axis", metavar="NAME", help="Grid parameter along the heatmaps' y axis.")
@json_option
@common
def sweep(grid_file, params, measures, workers, scheduler, use_dask, out, fresh, x_axis, y_axis,
          json_path):
    """Gradient flow over a grid of models, here or on a Dask cluster.

    The grid comes from GRID_FILE (TOML or JSON, parameter = [values]) and/or --param. Records
    are appended to DIR/results.jsonl as points finish, so rerunning the same command resumes an
    interrupted sweep. Heatmaps and the vanishing/exploding phase diagram go to DIR/report/.

    \b
    Grid keys: cell, variant, input_size, hidden_size, num_layers, seq_len, batch, init
    (pytorch, orthogonal, gaussian, chrono), spectral_radius, forget_bias, task (noise, adding,
    copy_memory, temporal_order), dtype, backend, seed.
    Example: lstmcheck sweep --param cell=rnn,lstm --param spectral_radius=0.5,1,1.5 \\
               --param init=orthogonal --param seed=0:4 --workers 2 --out runs/rho
    """
    from pathlib import Path

    from . import sweep as sw
    from .errors import OptionError
    from .report.sweep import sweep_report

    if use_dask and scheduler:
        raise click.UsageError("--dask starts a local cluster and --scheduler names a running "
                               "one; give only one of them.")
    if scheduler and workers:
        raise click.UsageError("--workers sizes a local pool or --dask cluster; a --scheduler's "
                               "cluster has its own workers, so give only one of them.")
    for option, axis in (("--x", x_axis), ("--y", y_axis)):  # before the work, not after it
        if axis is not None and axis not in sw.GRID_KEYS:
            raise click.BadParameter(f"{axis!r} is not a grid parameter; choose one of "
                                     f"{', '.join(sw.GRID_KEYS)}.", param_hint=option)
    grid = sw.load_grid(grid_file) if grid_file else {}
    extra = dict(sw.parse_param(p) for p in params)
    grid = [{**g, **extra} for g in grid] if isinstance(grid, list) else {**grid, **extra}
    total = len(sw.expand_grid(grid))
    with progress(total, "sweeping") as advance:
        done = [0]

        def tick(n, _total):
            for _ in range(n - done[0]):
                advance()
            done[0] = n

        records = sw.run_sweep(grid, list(measures) or "gradient_flow", workers=workers,
                               scheduler=scheduler, executor="dask" if use_dask else None,
                               out=out, resume=not fresh, progress=tick)
    failed = [r for r in records if r.get("error")]
    if len(failed) == len(records):
        raise OptionError(f"none of the {total} grid points could run; the first says: "
                          f"{failed[0]['error']}")
    rep = sweep_report(records, x=x_axis, y=y_axis)
    write_report_folder(rep, Path(out) / "report", True, {"command": "lstmcheck sweep"})
    emit_json({"results": str(Path(out) / sw.RESULTS_FILE), "records": records}, json_path)
    say(f"{total} points ({len(failed)} could not run); records in {Path(out) / sw.RESULTS_FILE}")
    return EXIT_PASS


# --------------------------------------------------------------------------- probe
@cli.command()
@click.option("--cell", "cells", multiple=True, type=click.Choice(CELLS),
              help="Cell to probe (repeat for several) [default: lstm].")
@click.option("--variant", default="vanilla", show_default=True, metavar="VARIANT",
              callback=_variants, help=f"LSTM variant: {', '.join(LSTM_VARIANTS)}, or several "
                                       f"joined by '+'.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Probe trained weights from a .pt/.npz/.safetensors/.onnx file instead.")
@click.option("--layout", help="Layout of --weights: torch, keras, tf, onnx, cudnn [default: detect].")
@click.option("--hidden-size", type=int, default=32, show_default=True, callback=positive)
@click.option("--seq-len", type=int, default=100, show_default=True, callback=positive)
@click.option("--batch", type=int, default=8, show_default=True, callback=positive)
@click.option("--init", type=click.Choice(SWEEP_INITS), default="pytorch", show_default=True,
              help="Initialisation (chrono: Tallec & Ollivier, T_max = seq_len + 2).")
@click.option("--spectral-radius", type=float, help="Rescale W_hh's gate blocks to this radius.")
@click.option("--forget-bias", type=float, help="LSTM forget-gate (GRU update-gate) bias.")
@click.option("--task", default="noise", show_default=True,
              help="Input workload: noise, adding, copy_memory, temporal_order.")
@click.option("--probe", "probes", multiple=True, type=click.Choice(PROBES),
              help="Probe to run (repeat for several) [default: all].")
@backend_option
@dtype_option
@seed_option
@out_option
@force_option
@json_option
@common
def probe(cells, variant, weights, layout, hidden_size, seq_len, batch, init, spectral_radius,
          forget_bias, task, probes, backend, dtype, seed, out, force, json_path):
    """Gradient-flow probes: gradient norms, Jacobian and Lyapunov spectra, horizon, gates.

    For models built from the options, or for trained weights loaded with --weights.
    """
    from . import study
    from .report.markdown import render_text
    from .report.writer import check_destination

    only_with("--out", bool(out), ["force"])
    only_with("--weights", bool(weights), ["layout"])
    if weights:  # the file fixes the model: options that build one would be silently ignored
        for name in ("hidden_size", "variant", "init", "spectral_radius", "forget_bias", "dtype"):
            if given(name):
                raise click.UsageError(f"--{name.replace('_', '-')} builds a model, but "
                                       f"--weights gives one; leave out one of them.")
    if out:
        check_destination(out, force)
    refuse_huge(cells or ("lstm",), hidden_size=1 if weights else hidden_size, seq_len=seq_len,
                batch=batch)
    if weights:
        if cells and len(cells) > 1:
            raise click.BadParameter("give at most one --cell with --weights.", param_hint="--cell")
        subjects = [study.subject_from_weights(weights, layout=layout, cell=cells[0] if cells
                                               else None, seq_len=seq_len, batch=batch,
                                               task=task, seed=seed, backend=backend)]
    else:
        grid = {"cell": list(cells or ("lstm",)), "hidden_size": hidden_size, "seq_len": seq_len,
                "batch": batch, "init": init, "spectral_radius": spectral_radius,
                "forget_bias": forget_bias, "task": task, "seed": seed, "dtype": dtype,
                "backend": backend}
        if variant != "vanilla":
            grid["variant"] = variant
        subjects = study.subjects_from_grid(grid)
    sections = probes or study.PROBE_SECTIONS
    rep = run_study(study.probe_study, len(sections), "probing", subjects=subjects,
                    sections=sections, seed=seed)
    emit_json({"rows": rep.rows, "results": rep.results}, json_path)
    if out:
        write_report_folder(rep, out, force, {"command": "lstmcheck probe", "seed": seed})
    say(render_text(rep))
    return EXIT_PASS


# --------------------------------------------------------------------------- audit
def import_object(spec: str, hint: str):
    """'package.module:attr.path' -> the object (the current folder is importable); errors name
    the option or argument ``hint`` it came from."""
    import importlib

    module, _, attr = spec.partition(":")
    if not module or not attr or ":" in attr:
        raise click.BadParameter(f"expected module:callable, got {spec!r}.", param_hint=hint)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module!r}: {exc}.", param_hint=hint) from None
    except Exception as exc:  # the module itself fails while being imported
        raise click.BadParameter(f"importing {module!r} raised {type(exc).__name__}: {exc}.",
                                 param_hint=hint) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.BadParameter(f"{module!r} has no attribute {attr!r}.",
                                     param_hint=hint) from None
    if not callable(obj):
        raise click.BadParameter(f"{spec} is a {type(obj).__name__}, not a callable.",
                                 param_hint=hint)
    return obj


@cli.command()
@click.argument("target")
@click.option("--layout", help="Layout of the target's tensors (torch, keras, tf, onnx, cudnn).")
@click.option("--cell", type=click.Choice(CELLS), help="Cell of the target (when not recorded).")
@click.option("--rtol", type=float, callback=tolerance,
              help="Relative tolerance [default: derived from the dtype].")
@click.option("--atol", type=float, callback=tolerance,
              help="Absolute tolerance [default: derived from the dtype].")
@click.option("--input-size", type=int, default=3, show_default=True, callback=positive,
              help="Input size of the model a callable TARGET is tested as (with --cell).")
@click.option("--hidden-size", type=int, default=4, show_default=True, callback=positive,
              help="Hidden size of the model a callable TARGET is tested as (with --cell).")
@click.option("--seq-len", type=int, default=5, show_default=True, callback=positive)
@click.option("--batch", type=int, default=2, show_default=True, callback=positive)
@click.option("--no-fd", is_flag=True, help="Skip the finite-difference check of the target.")
@seed_option
@out_option
@force_option
@json_option
@common
def audit(target, layout, cell, rtol, atol, input_size, hidden_size, seq_len, batch, no_fd, seed,
          out, force, json_path):
    """Audit a foreign implementation against the oracle.

    TARGET is module:callable (a function with --layout, or a torch module object), or the path
    of an .npz dump or an .onnx model. Exit code 1 when it disagrees. The verdict reads
    INCONCLUSIVE (exit code 0) when nothing disagreed but the finite-difference check of some
    tensor could not resolve a wrong element.
    """
    from . import audit as audit_module
    from .report import Report, fig_check
    from .report.writer import check_destination

    only_with("--out", bool(out), ["force"])
    is_callable = not os.path.exists(target) and ":" in target
    only_with("a module:callable TARGET", is_callable, ["input_size", "hidden_size"])
    if out:
        check_destination(out, force)
    refuse_huge([cell or "lstm"], input_size=input_size, hidden_size=hidden_size,
                seq_len=seq_len, batch=batch)
    obj, model = target, None
    if is_callable:
        obj = import_object(target, "TARGET")
        if cell and not hasattr(obj, "state_dict"):  # a function, not a torch module
            from .models import build
            model = build(cell, input_size, hidden_size)
    with progress(1, "auditing") as advance:
        result = audit_module.audit(obj, layout=layout, cell=cell, model=model, rtol=rtol,
                                    atol=atol, seq_len=seq_len, batch=batch, seed=seed,
                                    fd=not no_fd)
        advance("done")
    emit_json(result, json_path)
    if out:
        rep = Report(f"lstmcheck audit: {result.target}")
        for r in result.rows:
            rep.add_row(f"{r['check']}: {r['tensor']}", f"max |diff| {r['max_abs']:.3g}, "
                        f"{r['ratio']:.3g} × tolerance",
                        "fail" if not r["passed"] else
                        ("inconclusive" if r.get("inconclusive") else "pass"))
        rep.notes += [result.summary, *result.diagnosis, *result.notes]
        if result.rows:
            rep.add_figure("audit", "Worst difference from the oracle per compared tensor, in "
                           "units of its tolerance (≤ 1 passes).",
                           fig_check.audit_bars(result.rows))
        rep.results["audit"] = result.to_dict()
        write_report_folder(rep, out, force, {"command": "lstmcheck audit", "seed": seed})
    say(result.to_text())
    return exit_code(result.passed)


# --------------------------------------------------------------------------- vectors
@cli.group()
@common
def vectors():
    """Golden vectors: export a conformance suite, or verify an implementation against one."""


@vectors.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--cell", "cells", multiple=True, type=click.Choice(CELLS),
              help="Cells to include (repeat for several) [default: all].")
@seed_option
@force_option
@json_option
@common
def vectors_export(folder, cells, seed, force, json_path):
    """Write the golden-vector suite (npz cases, manifest.json, README.md) to FOLDER."""
    from . import vectors as vectors_module
    from .report.writer import check_destination

    empty = os.path.isdir(folder) and not os.path.islink(folder) and not os.listdir(folder)
    # before any work: a killed run's leftovers recovered, a folder lstmcheck did not write refused
    check_destination(folder, force or empty, kind="vectors")
    with progress(1, "exporting") as advance:
        manifest = vectors_module.export(folder, cells=cells or CELLS, seed=seed)
        advance("done")
    emit_json(manifest, json_path)
    note(f"{len(manifest['cases'])} cases written to {folder}")
    return EXIT_PASS


@vectors.command("verify")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--impl", required=True, metavar="MODULE:CALLABLE",
              help="impl(config, params, x, state) -> (y, final_state[, grads]).")
@click.option("--case", "cases", multiple=True, help="Only this case (repeat for several).")
@click.option("--rtol", type=float, callback=tolerance,
              help="Relative tolerance [default: derived].")
@click.option("--atol", type=float, callback=tolerance,
              help="Absolute tolerance [default: derived].")
@json_option
@common
def vectors_verify(folder, impl, cases, rtol, atol, json_path):
    """Run an implementation against the suite in FOLDER; exit code 1 if a case fails."""
    from . import vectors as vectors_module

    fn = import_object(impl, "--impl")
    with progress(1, "verifying") as advance:
        result = vectors_module.verify(folder, fn, cases=list(cases) or None, rtol=rtol, atol=atol)
        advance("done")
    emit_json(result, json_path)
    say(result.to_text())
    return exit_code(result.passed)


if __name__ == "__main__":  # python -m lstmcheck.cli
    main()
