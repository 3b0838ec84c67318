"""The `lstmcheck` command line: parse, call the Python API, print, set the exit code.

Every command is one small function; the work happens in the library (lstmcheck.check,
lstmcheck.probes, lstmcheck.audit, lstmcheck.vectors, lstmcheck.studies, lstmcheck.report).
Shared options and parse-time callbacks live in lstmcheck.cli_options; the exit codes, the
error handling and the output helpers (stdout, stderr, progress bars) in lstmcheck.cli_output,
which also documents the exit codes.
"""
from __future__ import annotations

import importlib
import os

import click

from . import __version__
from .check.api import METHODS as CHECK_METHODS
from .cli_options import (BACKENDS, DTYPES, audit_target, backend_option, cell_option, given,
                          check_elements, check_variants, common, dtype_option, force_option,
                          import_object, json_option, lengths_option, model_direction, only_with,
                          out_option, positive, refuse_huge, refuse_slow_gradcheck,
                          refuse_together, seed_option, size_option, structure_options,
                          variant_option, cell_options, model_flags,
                          sweep_grid, tolerance_options)
from .cli_output import (EXIT_PASS, LstmcheckGroup, emit_json, exit_code, note, progress,
                         progress_count, report_meta, run_one, run_study, say, say_report,
                         write_report_folder)
from .models import LSTM_VARIANTS

SWEEP_INITS = ("pytorch", "orthogonal", "gaussian", "chrono")
PROBES = ("flow", "jacobian", "lyapunov", "horizon", "gates")

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
    from .report.environment import environment, environment_text

    env = environment()
    emit_json(env, json_path)
    say(environment_text(env))
    return EXIT_PASS


# --------------------------------------------------------------------------- report
DEFAULT_REPORT_DIR = "lstmcheck-report"


@cli.command()
@out_option
@force_option
@json_option
@backend_option
@dtype_option
@seed_option
@size_option("seq-len", 100,
              help="Sequence length T of the gradient-flow probes.")
@size_option("hidden-size", 32,
              help="Hidden size of every model.")
@size_option("batch", 8,
              help="Sequences per probe (medians are over the batch).")
@common
def report(out, force, json_path, backend, dtype, seed, seq_len, hidden_size, batch):
    """The full default study as a report folder (default ./lstmcheck-report).

    The oracle's gradient check, RNN vs LSTM vs GRU gradient flow with theory overlays, the
    effective horizon, gate statistics and a spectral-radius sweep: index.html, figures as PNG
    and SVG, results.json and summary.md. Exit code 1 when a gradient check fails.
    """
    from . import studies
    from .report.environment import environment
    from .report.writer import check_destination

    out = out or DEFAULT_REPORT_DIR
    check_destination(out, force)  # fail before minutes of work, not after
    refuse_huge(studies.DEFAULTS["cells"], hidden_size=hidden_size, seq_len=seq_len, batch=batch)
    rep = run_study(studies.default_study, len(studies.DEFAULT_SECTIONS), "running study",
                    seq_len=seq_len, hidden_size=hidden_size, batch=batch, seed=seed, dtype=dtype,
                    backend=backend)
    path = write_report_folder(rep, out, force,
                               report_meta(rep, environment=environment(gpu=False)))
    emit_json({"report": str(path), "passed": rep.passed, "rows": rep.rows,
               "results": rep.results}, json_path)
    say_report(rep)
    return exit_code(rep.passed)


# --------------------------------------------------------------------------- gradcheck
@cli.command()
@cell_option("Cell to check, or module:Class of your own (repeat for several) [default: all].")
@click.option("--variant", "variants", multiple=True, metavar="VARIANT", callback=check_variants,
              help=f"LSTM variant: {', '.join(LSTM_VARIANTS)}, or several joined by '+' "
                   f"(repeat for several) [default: all].")
@click.option("--dtype", "dtypes", multiple=True, type=click.Choice(DTYPES),
              help="Precision (repeat for several) [default: float64].")
@click.option("--backend", "backends", multiple=True, type=click.Choice(BACKENDS),
              help="Backend (repeat for several) [default: numpy].")
@click.option("--method", "methods", multiple=True, type=click.Choice(CHECK_METHODS),
              help="Numerical method (repeat for several) [default: auto].")
@size_option("input-size", 3)
@size_option("hidden-size", 4)
@size_option("seq-len", 5)
@size_option("batch", 2)
@structure_options("Check")
@click.option("--elements", default="all", show_default=True, callback=check_elements,
              help="'all', or how many sampled elements per tensor.")
@seed_option
@out_option
@force_option
@json_option
@common
def gradcheck(cells, variants, dtypes, backends, methods, input_size, hidden_size, seq_len,
              batch, num_layers, bidirectional, direction, elements, seed, out, force, json_path):
    """Self-check the oracle's backward against numerical derivatives.

    Every chosen cell, variant, dtype, backend and method; exit code 1 if any check fails.
    A check is INCONCLUSIVE when nothing disagreed but its method or precision could not
    resolve a wrong element (e.g. --method taylor in float32); that is printed with the
    reason and keeps exit code 0.
    """
    from . import studies
    from .report.writer import check_destination

    only_with("--out", bool(out), ["force"])
    if out:
        check_destination(out, force)
    cases = studies.self_check_cases(cells or None, variants or None, dtypes or ("float64",),
                                     backends or ("numpy",), methods or ("auto",))
    settings = studies.SelfCheckSettings(input_size, hidden_size, seq_len, batch, num_layers,
                                         bidirectional, elements, seed, direction or "forward")
    refuse_huge({case.cell for case in cases}, batch=batch, **settings.shape)
    refuse_slow_gradcheck(len(cases), elements, **settings.shape)
    with progress(len(cases), "checking") as advance:
        results = studies.run_self_check(cases, elements=elements, seed=seed, progress=advance,
                                         **settings.sizes)
    rep = studies.self_check_report(results, settings)
    emit_json({"passed": rep.passed, "verdict": rep.verdict, "checks": rep.results["gradcheck"],
               "settings": settings}, json_path)
    if out:
        write_report_folder(rep, out, force, report_meta(rep))
    say_report(rep)
    for case, r in results:
        if r.verdict != "passed":   # its table starts FAILED or INCONCLUSIVE with the reason
            say(f"\n{case.label}:\n{r.to_text()}")
    say(studies.self_check_tally(results))
    return exit_code(rep.passed)


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

    sw = importlib.import_module("lstmcheck.sweep")   # the package; lc.sweep is the function
    from .errors import OptionError
    from .report.sweep import sweep_report

    if use_dask and scheduler:
        raise click.UsageError("--dask starts a local cluster and --scheduler names a running "
                               "one; give only one of them.")
    if scheduler and workers:
        raise click.UsageError("--workers sizes a local pool or --dask cluster; a --scheduler's "
                               "cluster has its own workers, so give only one of them.")
    grid = sweep_grid(grid_file, params, x=x_axis, y=y_axis)  # before the work, not after it
    total = len(sw.expand_grid(grid))
    with progress_count(total, "sweeping") as tick:
        records = sw.run_sweep(grid, list(measures) or "gradient_flow", workers=workers,
                               scheduler=scheduler, executor="dask" if use_dask else None,
                               out=out, resume=not fresh, progress=tick)
    failed = [r for r in records if r.get("error")]
    if len(failed) == len(records):
        raise OptionError(f"none of the {total} grid points could run; the first says: "
                          f"{failed[0]['error']}")
    rep = sweep_report(records, x=x_axis, y=y_axis)
    setup = {k: ", ".join(sorted({str(r.get(k)) for r in records})) for k in
             ("dtype", "backend", "seed")}      # the grid's, not an option's
    write_report_folder(rep, Path(out) / "report", True, report_meta(rep, **setup))
    emit_json({"results": str(Path(out) / sw.RESULTS_FILE), "records": records}, json_path)
    say(f"{total} points ({len(failed)} could not run); records in {Path(out) / sw.RESULTS_FILE}")
    return EXIT_PASS


# --------------------------------------------------------------------------- probe
@cli.command()
@cell_option("Cell to probe, or module:Class of your own (repeat for several) [default: lstm].")
@variant_option()
@click.option("--weights", type=click.Path(dir_okay=False), multiple=True,
              help="Probe trained weights from a .pt/.npz/.safetensors/.onnx file instead "
                   "(repeat for several, e.g. checkpoints across training: one figure).")
@click.option("--layout", help="Layout of --weights: torch, keras, tf, onnx, cudnn [default: detect].")
@size_option("hidden-size", 32)
@structure_options("Probe", probe=True)
@click.option("--layer", type=click.IntRange(0), default=0, show_default=True,
              help="Layer whose recurrence the probes analyse.")
@size_option("seq-len", 100)
@size_option("batch", 8)
@click.option("--init", type=click.Choice(SWEEP_INITS), default="pytorch", show_default=True,
              help="Initialisation (chrono: Tallec & Ollivier, T_max = seq_len + 2).")
@click.option("--spectral-radius", type=float, help="Rescale W_hh's gate blocks to this radius.")
@click.option("--forget-bias", type=float, help="LSTM forget-gate (GRU update-gate) bias.")
@click.option("--task", default="noise", show_default=True,
              help="Input workload: noise, adding, copy_memory, temporal_order.")
@click.option("--probe", "probes", multiple=True, type=click.Choice(PROBES),
              help="Probe to run (repeat for several) [default: all].")
@click.option("--loss", type=click.Choice(("last", "sum")), default="last", show_default=True,
              help="The probe's loss: last = <v, h_T> (how far back the end reaches); sum = "
                   "sum over t of <v, h_t> (every step's output).")
@click.option("--truncate", type=click.IntRange(1), default=None,
              help="Truncated BPTT in chunks of this many steps (the flow figure also shows "
                   "full BPTT for comparison).")
@click.option("--clip-norm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Clip the parameter gradient to this global norm (Pascanu et al. 2013).")
@backend_option
@dtype_option
@seed_option
@out_option
@force_option
@json_option
@common
def probe(cells, variant, weights, layout, hidden_size, num_layers, bidirectional, direction,
          layer, seq_len, batch, init, spectral_radius, forget_bias, task, probes, loss,
          truncate, clip_norm, backend, dtype, seed, out, force, json_path):
    """Gradient-flow probes: gradient norms, Jacobian and Lyapunov spectra, horizon, gates.

    For models built from the options, or for trained weights loaded with --weights.
    """
    from . import studies
    from .report.writer import check_destination

    only_with("--out", bool(out), ["force"])
    only_with("--weights", bool(weights), ["layout"])
    if weights:  # the file fixes the model: options that build one would be silently ignored
        refuse_together(("hidden_size", "variant", "init", "spectral_radius", "forget_bias",
                         "num_layers", "bidirectional"),
                        "builds a model, but --weights gives one; leave out one of them.")
    if out:
        check_destination(out, force)
    refuse_huge(cells or ("lstm",), hidden_size=1 if weights else hidden_size, seq_len=seq_len,
                batch=batch, num_layers=1 if weights else num_layers)
    if weights and cells and len(cells) > 1:
        raise click.BadParameter("give at most one --cell with --weights.", param_hint="--cell")
    subjects = studies.probe_subjects(
        cells, weights=list(weights), layout=layout, variant=variant, hidden_size=hidden_size,
        seq_len=seq_len, batch=batch, init=init, spectral_radius=spectral_radius,
        forget_bias=forget_bias, task=task, seed=seed,
        dtype=dtype if not weights or given("dtype") else None, backend=backend,
        num_layers=num_layers, model_direction=model_direction(direction, bidirectional),
        layer=layer, direction=direction if bidirectional or weights else None)
    sections = probes or studies.PROBE_SECTIONS
    rep = run_study(studies.probe_study, len(sections), "probing", subjects=subjects,
                    sections=sections, seed=seed, truncate=truncate, clip_norm=clip_norm,
                    loss=loss)
    emit_json({"rows": rep.rows, "results": rep.results}, json_path)
    if out:
        write_report_folder(rep, out, force, report_meta(rep))
    say_report(rep)
    return EXIT_PASS


# --------------------------------------------------------------------------- audit
@cli.command()
@click.argument("target")
@click.option("--layout", help="Layout of the target's tensors (torch, keras, tf, onnx, cudnn).")
@cell_option("Cell of the target (when not recorded).", multiple=False)
@tolerance_options("derived from the dtype")
@size_option("input-size", 3,
              help="Input size of the model a callable TARGET is tested as (with --cell).")
@size_option("hidden-size", 4,
              help="Hidden size of the model a callable TARGET is tested as (with --cell).")
@variant_option(default=None)
@structure_options("Audit as")
@cell_options
@size_option("seq-len", 5)
@size_option("batch", 2)
@lengths_option
@click.option("--no-fd", is_flag=True, help="Skip the finite-difference check of the target.")
@seed_option
@out_option
@force_option
@json_option
@common
def audit(target, layout, cell, rtol, atol, input_size, hidden_size, variant, num_layers,
          bidirectional, direction, reset_after, nonlinearity, proj_size, seq_len, batch, lengths,
          no_fd, seed, out, force, json_path):
    """Audit a foreign implementation against the oracle.

    TARGET is module:callable (a function with --layout, or a torch module object), or the path
    of an .npz dump or an .onnx model. Exit code 1 when it disagrees. The verdict reads
    INCONCLUSIVE (exit code 0) when nothing disagreed but the finite-difference check of some
    tensor could not resolve a wrong element.
    """
    audit_module = importlib.import_module("lstmcheck.audit")   # the package (lc.audit: the function)
    from .report.writer import check_destination
    from .studies import audit_report

    only_with("--out", bool(out), ["force"])
    is_callable = not os.path.exists(target) and ":" in target
    shape_opts = ["input_size", "hidden_size", "variant", "num_layers", "bidirectional",
                  "direction", "reset_after", "nonlinearity", "proj_size"]
    only_with("a module:callable TARGET", is_callable, shape_opts)
    if is_callable and not cell:   # the model is built from --cell: without it they'd be ignored
        only_with("--cell", False, shape_opts)
    model_options = {}
    if is_callable and cell:
        model_options = {"num_layers": num_layers,
                         "direction": model_direction(direction, bidirectional),
                         **model_flags(cell, variant=variant, reset_after=reset_after,
                                       nonlinearity=nonlinearity, proj_size=proj_size)}
    if out:
        check_destination(out, force)
    refuse_huge([cell or "lstm"], input_size=input_size, hidden_size=hidden_size,
                seq_len=seq_len, batch=batch)
    obj, model = (audit_target(target, cell, input_size, hidden_size, **model_options)
                  if is_callable else (target, None))
    result = run_one("auditing", audit_module.audit, obj, layout=layout, cell=cell, model=model,
                     rtol=rtol, atol=atol, seq_len=seq_len, batch=batch, seed=seed, fd=not no_fd,
                     lengths=lengths)
    emit_json(result, json_path)
    if out:
        rep = audit_report(result)
        write_report_folder(rep, out, force, report_meta(rep))
    say(result.to_text())
    return exit_code(result.passed)


# --------------------------------------------------------------------------- vectors
@cli.group()
@common
def vectors():
    """Golden vectors: export a conformance suite, or verify an implementation against one."""


@vectors.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@cell_option("Cells to include (repeat for several) [default: all].", registered_only=True)
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
    manifest = run_one("exporting", vectors_module.export, folder, cells=cells or vectors_module.CELLS,
                       seed=seed)
    emit_json(manifest, json_path)
    note(f"{len(manifest['cases'])} cases written to {folder}")
    return EXIT_PASS


@vectors.command("verify")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--impl", required=True, metavar="MODULE:CALLABLE",
              help="impl(config, params, x, state) -> (y, final_state[, grads]).")
@click.option("--case", "cases", multiple=True, help="Only this case (repeat for several).")
@tolerance_options("derived")
@json_option
@common
def vectors_verify(folder, impl, cases, rtol, atol, json_path):
    """Run an implementation against the suite in FOLDER; exit code 1 if a case fails."""
    from . import vectors as vectors_module

    fn = import_object(impl, "--impl")
    result = run_one("verifying", vectors_module.verify, folder, fn, cases=list(cases) or None,
                     rtol=rtol, atol=atol)
    emit_json(result, json_path)
    say(result.to_text())
    return exit_code(result.passed)


if __name__ == "__main__":  # python -m lstmcheck.cli
    main()
