"""Click pieces the commands of :mod:`lstmcheck.cli` share: the --quiet/--debug flags, common
options, and callbacks that check a value as it is parsed (one clear line on a bad one)."""
from __future__ import annotations

import importlib

import os
import sys

import click

from .errors import LstmcheckError

DTYPES = ("float64", "float32")
BACKENDS = ("numpy", "cupy", "auto")
SEED_MAX = 2**32 - 1   # the range every generator lstmcheck seeds (NumPy, torch, CuPy) accepts


# --------------------------------------------------------------------------- --quiet, --debug
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


def flag_set(name: str) -> bool:
    """Whether --quiet or --debug (``name``) was given to the group or the command."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(f"lstmcheck.{name}"))


# --------------------------------------------------------------------------- --cell
def importable_here() -> None:
    """Make the current folder importable (module:Class and module:callable name modules there)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


class CellType(click.Choice):
    """A cell: a registered name (the choices --help lists, from the cell registry) or a user's
    cell as module:Class, loaded and checked as it is parsed (one clear line, exit code 2)."""

    name = "cell"

    def __init__(self, registered_only=False):
        from .models.registry import names

        super().__init__(names())
        self.registered_only = registered_only

    def get_metavar(self, param, ctx=None):
        return "[" + "|".join(self.choices) + ("" if self.registered_only else "|MODULE:CLASS") + "]"

    def convert(self, value, param, ctx):
        from .models import registry

        if not isinstance(value, str) or value in self.choices:
            return value
        if ":" in value and not self.registered_only:
            importable_here()
            try:
                registry.resolve(value)
            except LstmcheckError as exc:
                self.fail(str(exc), param, ctx)
            except Exception as exc:  # the module itself fails while being imported
                self.fail(f"loading the cell {value!r} raised {type(exc).__name__}: {exc}.",
                          param, ctx)
            return value
        listed = ", ".join(map(repr, self.choices))
        self.fail(f"{value!r} is not one of {listed}"
                  + ("." if self.registered_only else ", nor a cell of your own named "
                     "module:Class."), param, ctx)


def cell_option(help: str, *, multiple=True, registered_only=False):
    """--cell (repeatable unless ``multiple`` is False)."""
    return click.option("--cell", "cells" if multiple else "cell", multiple=multiple,
                        type=CellType(registered_only), help=help)


def structure_options(what: str, probe=False):
    """--num-layers, --bidirectional and --direction of the models ``what`` builds (with
    ``probe``, --direction is also the half of a bidirectional model the probes analyse)."""
    direction_help = ("Direction of one-way models, and the half of a bidirectional model to "
                      "probe [default: forward]." if probe else
                      "Direction of one-way models [default: forward].")

    def add(f):
        f = click.option("--direction", type=click.Choice(("forward", "reverse")),
                         default=None, help=direction_help)(f)
        f = click.option("--bidirectional", is_flag=True, help=f"{what} bidirectional models.")(f)
        return size_option("num-layers", 1)(f)
    return add


def variant_option(default="vanilla"):
    """--variant of one LSTM model (probe, audit): a name or several joined by '+'."""
    from .models import LSTM_VARIANTS as VARIANTS
    return click.option("--variant", default=default, show_default=default is not None,
                        metavar="VARIANT", callback=check_variants,
                        help=f"LSTM variant: {', '.join(VARIANTS)}, or several joined by '+'"
                             + ("" if default else " [default: vanilla]") + ".")


def cell_options(f):
    """The cell flags a model is built with besides --variant: --reset-after (GRU),
    --nonlinearity (RNN), --proj-size (LSTM). None where not typed: the cell's default."""
    f = click.option("--proj-size", type=click.IntRange(0), default=None,
                     help="LSTM projection size (0: none) [default: 0].")(f)
    f = click.option("--nonlinearity", type=click.Choice(("tanh", "relu", "identity")),
                     default=None, help="RNN nonlinearity [default: tanh].")(f)
    return click.option("--reset-after/--reset-before", "reset_after", default=None,
                        help="GRU: reset gate applied after the recurrent matmul (PyTorch, "
                             "Keras 3) or before it (Cho et al., Keras reset_after=False) "
                             "[default: after].")(f)


def _cells_taking(option: str) -> list:
    """The registered cells whose model takes ``option`` (read off the registry's classes)."""
    import inspect
    from .models.registry import CELLS
    return [n for n, cls in CELLS.items() if option in inspect.signature(cls.__init__).parameters]


def model_flags(cell, **flags) -> dict:
    """The typed cell flags as build() options; one typed for a registered cell that does not
    take it is refused (a user's module:Class cell gets them as given)."""
    from .models.registry import CELLS
    out = {}
    for name, value in flags.items():
        if value is None or not given(name):
            continue
        takers = _cells_taking(name)
        if isinstance(cell, str) and cell in CELLS and cell not in takers:
            raise click.UsageError(f"{option_name(name)} applies to --cell "
                                   f"{' or '.join(takers)}, not {cell}.")
        out[name] = value
    return out


def model_direction(direction, bidirectional) -> str:
    """The direction= of the models built from --direction and --bidirectional."""
    return "bidirectional" if bidirectional else (direction or "forward")


# --------------------------------------------------------------------------- callbacks
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


def check_variants(ctx, param, value):
    """Click callback: LSTM variant names, combinable with '+' as in the Python API."""
    from .models.lstm import parse_variant

    for v in value if isinstance(value, tuple) else (value,):
        if v is None:      # not typed, where the option has no default (audit)
            continue
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


def lengths_list(ctx, param, value):
    """Click callback: sequence lengths as comma-separated positive integers ('5,2')."""
    if value is None:
        return None
    try:
        out = [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"must be comma-separated integers such as 5,2, got {value!r}.") from None
    return positive(ctx, param, tuple(out)) and out


def tolerance(ctx, param, value):
    """Click callback: a tolerance is a finite number >= 0."""
    import math

    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"must be a finite number >= 0, got {value}.")
    return value


def check_elements(ctx, param, value):
    """Click callback: 'all', or a positive number of sampled elements per tensor."""
    if value == "all":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise click.BadParameter(f"must be 'all' or a positive integer, got {value!r}.")
    return n


# --------------------------------------------------------------------------- common options
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
seed_option = click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0,
                           show_default=True,
                           help=f"Seed of every random draw (parameters, inputs, probes); "
                                f"0 to {SEED_MAX}.")


def tolerance_options(default: str):
    """--rtol and --atol: finite numbers >= 0, ``default`` says where they come from otherwise."""
    def add(f):
        for kind, name in (("Absolute", "atol"), ("Relative", "rtol")):
            f = click.option(f"--{name}", type=float, callback=tolerance,
                             help=f"{kind} tolerance [default: {default}].")(f)
        return f
    return add


def size_option(name: str, default, help=None):
    """A positive integer size such as --hidden-size, with its default shown."""
    return click.option(f"--{name}", type=int, default=default, show_default=True,
                        callback=positive, help=help)


# --------------------------------------------------------------------------- what was typed
def option_name(name: str) -> str:
    """The command-line spelling of a Python parameter name: hidden_size -> --hidden-size."""
    return "--" + name.replace("_", "-")


def given(name: str) -> bool:
    """Whether option ``name`` (its Python name) was typed on the command line."""
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def only_with(needed: str, present: bool, names) -> None:
    """Refuse options that mean nothing unless ``needed`` is given (instead of ignoring them)."""
    for name in names:
        if given(name) and not present:
            raise click.UsageError(f"{option_name(name)} only applies with {needed}.")


def refuse_together(names, reason: str) -> None:
    """Refuse each option of ``names`` that was typed: ``reason`` says what it clashes with."""
    for name in names:
        if given(name):
            raise click.UsageError(f"{option_name(name)} {reason}")


def refuse_huge(cells, **sizes) -> None:
    """Refuse sizes whose tape would not fit in memory (naming the sizes typed), before any work."""
    from .studies import SizeError, refuse_huge as refuse

    try:
        refuse(cells, named=[k for k in sizes if given(k)], spell=option_name, **sizes)
    except SizeError as exc:
        raise click.UsageError(str(exc)) from None


def refuse_slow_gradcheck(n_cases, elements, **shape) -> None:
    """Refuse a gradcheck whose finite differences would run for hours."""
    from .studies import SizeError, refuse_slow_gradcheck as refuse

    try:
        refuse(n_cases, elements, spell=option_name, **shape)
    except SizeError as exc:
        raise click.UsageError(str(exc)) from None


def import_object(spec: str, hint: str):
    """'package.module:attr.path' -> the object (the current folder is importable); errors name
    the option or argument ``hint`` it came from."""
    import importlib

    module, _, attr = spec.partition(":")
    if not module or not attr or ":" in attr:
        raise click.BadParameter(f"expected module:callable, got {spec!r}.", param_hint=hint)
    importable_here()
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


def audit_target(spec: str, cell, input_size: int, hidden_size: int, **model_options):
    """A module:callable TARGET of `lstmcheck audit` -> (the object, the model a function is
    tested as: built from --cell, the sizes and ``model_options`` (num_layers, direction and the
    cell flags); None for a torch module or without --cell)."""
    obj = import_object(spec, "TARGET")
    if cell and not hasattr(obj, "state_dict"):  # a function, not a torch module
        from .models import build
        try:
            return obj, build(cell, input_size, hidden_size, **model_options)
        except LstmcheckError as exc:
            raise click.UsageError(str(exc)) from None
    return obj, None


def sweep_grid(grid_file, params, *, x=None, y=None):
    """The grid of `lstmcheck sweep`: GRID_FILE's, with the --param axes overriding it; --x and
    --y must name grid parameters."""
    sw = importlib.import_module("lstmcheck.sweep")   # the package; lc.sweep is the function

    for option, axis in (("--x", x), ("--y", y)):
        if axis is not None and axis not in sw.GRID_KEYS:
            raise click.BadParameter(f"{axis!r} is not a grid parameter; choose one of "
                                     f"{', '.join(sw.GRID_KEYS)}.", param_hint=option)
    importable_here()                                  # cell=module:Class of a module here
    grid = sw.load_grid(grid_file) if grid_file else {}
    extra = dict(sw.parse_param(p) for p in params)
    return [{**g, **extra} for g in grid] if isinstance(grid, list) else {**grid, **extra}


lengths_option = click.option(
    "--lengths", callback=lengths_list, metavar="N,N,...",
    help="Sequence lengths (one per sequence, right padding) for the oracle and the target; an "
         "ONNX graph with a sequence_lens input gets seeded ragged ones without it.")
