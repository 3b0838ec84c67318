"""The oracle's self-check: which cases `lstmcheck gradcheck` and the report's gradcheck section
run, running them, and what a report holds about them (rows, figures, typed result rows)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..report import Report


@dataclass(frozen=True)
class Case:
    """One self-check: a cell with its options, in one dtype, backend and method."""

    cell: str
    options: tuple = ()          # sorted (name, value) pairs, e.g. (("variant", "cifg"),)
    dtype: str = "float64"
    backend: str = "numpy"
    method: str = "auto"

    @property
    def model_label(self) -> str:
        from ..models.registry import display_name
        return " ".join([display_name(self.cell), *(f"{k}={v}" if isinstance(v, bool) else str(v)
                                              for k, v in self.options)])

    @property
    def label(self) -> str:
        return f"{self.model_label} {self.dtype} {self.backend} {self.method}"

    def to_dict(self):
        return {"cell": self.cell, **dict(self.options), "dtype": self.dtype,
                "backend": self.backend, "method": self.method}


def _builtin_options(name, variants) -> list | None:
    """What the self-check covers of a built-in cell beyond its defaults (its variants).
    TODO(registry): this belongs in each cell's file as ``check_options``; until then a cell
    without it (every other cell) is checked in its default configuration."""
    from ..models import LSTM_VARIANTS
    from ..models.rnn import NONLINEARITIES

    return {
        "rnn": lambda: [(("nonlinearity", n),) for n in NONLINEARITIES if n != "identity"],
        "lstm": lambda: [(("variant", v),) for v in (variants or LSTM_VARIANTS)],
        "gru": lambda: [(("reset_after", True),), (("reset_after", False),)],
    }.get(name, lambda: None)()


def cell_check_options(cell, variants=None) -> list:
    """The option sets the self-check runs a cell with: the cell's own ``check_options()`` (a
    list of {option: value}) when it defines one, a built-in cell's variants, else its defaults."""
    from ..models import registry

    hook = getattr(registry.cell_type(cell), "check_options", None)
    if hook is not None:
        return [tuple(sorted(dict(o).items())) for o in hook()]
    if isinstance(cell, str) and cell in registry.names():
        found = _builtin_options(cell, variants)
        if found is not None:
            return found
    return [()]


def self_check_cases(cells=None, variants=None, dtypes=("float64",), backends=("numpy",),
                     methods=("auto",)) -> list:
    """Every combination; ``cells`` None means every registered cell, ``variants`` None every
    LSTM variant, and the RNN nonlinearities and both GRU reset conventions come along. A cell
    is a registered name or a user's 'module:Class'."""
    from ..errors import OptionError
    from ..models import registry

    cells = [registry.canonical(c) for c in (registry.names() if cells is None else cells)]
    takers = registry.accepting("variant")
    if variants and not any(c in takers for c in cells):
        raise OptionError(f"variants apply to {'/'.join(map(registry.display_name, takers))} "
                          f"only; add --cell {takers[0]}.")
    return [Case(c, opts, dt, be, m) for c in cells for opts in cell_check_options(c, variants)
            for dt in dtypes for be in backends for m in methods]


@dataclass(frozen=True)
class SelfCheckSettings:
    """The sizes and sampling every case of one self-check shares."""

    input_size: int = 3
    hidden_size: int = 4
    seq_len: int = 5
    batch: int = 2
    num_layers: int = 1
    bidirectional: bool = False
    elements: object = "all"     # 'all' or how many sampled elements per tensor
    seed: int = 0
    direction: str = "forward"   # of a one-way model: 'forward' or 'reverse'

    @property
    def sizes(self) -> dict:
        """The model and input sizes :func:`run_self_check` takes."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "seq_len": self.seq_len, "batch": self.batch, "num_layers": self.num_layers,
                "bidirectional": self.bidirectional, "direction": self.direction}

    @property
    def shape(self) -> dict:
        """The model's shape as the estimates (:mod:`lstmcheck.studies.estimates`) take it."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "seq_len": self.seq_len, "num_layers": self.num_layers,
                "directions": 2 if self.bidirectional else 1}

    def to_dict(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "seq_len": self.seq_len, "batch": self.batch, "num_layers": self.num_layers,
                "bidirectional": self.bidirectional, "direction": self.direction,
                "elements": self.elements, "seed": self.seed}


def run_self_check(cases, *, input_size=3, hidden_size=4, seq_len=5, batch=2, num_layers=1,
                   bidirectional=False, direction="forward", elements="all", seed=0,
                   progress=None) -> list:
    """``lc.gradcheck`` of the oracle itself for every case: [(case, GradcheckReport)].
    ``bidirectional`` overrides ``direction`` (of one-way models: forward or reverse)."""
    from .. import tasks
    from ..check import gradcheck
    from ..models import build

    out = []
    for case in cases:
        model = build(case.cell, input_size, hidden_size, num_layers=num_layers,
                      direction="bidirectional" if bidirectional else direction,
                      dtype=case.dtype, backend=case.backend,
                      **dict(case.options))
        params = model.init_params(seed)
        x = tasks.noise(seq_len, batch, input_size, seed=seed, dtype=case.dtype,
                        backend=case.backend).x
        out.append((case, gradcheck(model, params, x, method=case.method, elements=elements,
                                    seed=seed)))
        if progress is not None:
            progress(case.label)
    return out


@dataclass(frozen=True)
class SelfCheckRow:
    """One case's outcome as results.json and `gradcheck --json` hold it."""

    case: Case
    report: object               # its GradcheckReport

    @property
    def verdict(self) -> str:
        return self.report.verdict

    def to_dict(self):
        """The report without the worst-element list when it passed (that list only matters for
        a failure, and it dominates the size of results.json)."""
        d = self.report.to_dict()
        if self.report.passed:
            d.pop("worst", None)
        return {"case": self.case.to_dict(), "verdict": self.report.verdict,
                "resolution": self.report.resolution, "report": d}


TENSOR_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peep", "weight_hr",
                "x", "h0", "c0")
ROW_STATUS = {"passed": "pass", "failed": "fail", "inconclusive": "inconclusive"}


def _tensor_kind(name):
    return name.split("_l")[0] if "_l" in name else name


def _method_rows(report, results, methods):
    """One summary row per numerical method over every case (the default study's table)."""
    for m in methods:
        rs = [(c, r) for c, r in results if c.method == m]
        failed = [c.label for c, r in rs if r.verdict == "failed"]
        unsure = [c.label for c, r in rs if r.verdict == "inconclusive"]
        worst = max((t["max_rel_err"] or 0.0) for _, r in rs for t in r.tensors)
        done = rs[0][1].method if rs else m
        report.add_row(f"oracle gradient check ({done})",
                       f"{len(rs) - len(failed) - len(unsure)} of {len(rs)} models pass; "
                       f"largest relative error of a tensor {worst:.2g}"
                       + (f"; INCONCLUSIVE: {', '.join(unsure)}" if unsure else "")
                       + (f"; FAILED: {', '.join(failed)}" if failed else ""),
                       "fail" if failed else ("inconclusive" if unsure else "pass"))


def add_self_check(report, results, *, one_row_per_case=True):
    """Summary rows, the error histogram, the per-tensor error heatmap and the raw reports."""
    from ..report import fig_check

    methods = list(dict.fromkeys(c.method for c, _ in results))
    if one_row_per_case:
        for case, r in results:
            report.add_row(f"gradcheck {case.label}", r.summary, ROW_STATUS[r.verdict])
    else:
        _method_rows(report, results, methods)
    groups = []
    for m in methods:
        errs = [t["max_rel_err"] for c, r in results if c.method == m for t in r.tensors
                if t.get("max_rel_err") is not None]
        name = next(r.method for c, r in results if c.method == m)
        groups.append({"label": name, "errors": np.array(errs, dtype=float)})
    if any(g["errors"].size for g in groups):
        report.add_figure(
            "gradcheck_errors", "Largest relative error of each checked tensor (every model, "
            "layer and input), by numerical method.",
            fig_check.error_histogram(groups, xlabel="largest relative error per tensor",
                                      unit="tensors"))
    first = [(c, r) for c, r in results if c.method == methods[0]]
    seen = list(dict.fromkeys(_tensor_kind(t["name"]) for _, r in first for t in r.tensors))
    kinds = [k for k in TENSOR_KINDS if k in seen] + [k for k in seen if k not in TENSOR_KINDS]
    matrix = np.full((len(first), len(kinds)), np.nan)
    for i, (_, r) in enumerate(first):
        for t in r.tensors:
            if t.get("max_rel_err") is not None and _tensor_kind(t["name"]) in kinds:
                j = kinds.index(_tensor_kind(t["name"]))
                matrix[i, j] = np.nanmax([matrix[i, j], t["max_rel_err"]])
    if first and kinds:
        report.add_figure(
            "gradcheck_heatmap", f"Largest relative error per model and tensor "
            f"({first[0][1].method}); n/a: the model has no such tensor.",
            fig_check.error_heatmap(matrix, [f"{c.model_label} {c.dtype}" for c, _ in first],
                                    kinds, xlabel="tensor", title="Gradient-check errors"))
    report.results["gradcheck"] = [SelfCheckRow(c, r) for c, r in results]


def self_check_report(results, settings: SelfCheckSettings) -> Report:
    """The report of `lstmcheck gradcheck`: one row per case, the figures, the settings."""
    report = Report("lstmcheck gradcheck: the oracle against numerical derivatives")
    add_self_check(report, results)
    report.results["settings"] = settings
    return report


def self_check_tally(results) -> str:
    """The closing line of `lstmcheck gradcheck`: how many checks passed, how many were
    inconclusive."""
    counts = {v: sum(r.verdict == v for _, r in results) for v in ("passed", "inconclusive")}
    return (f"{counts['passed']} of {len(results)} checks passed"
            + (f", {counts['inconclusive']} inconclusive (exit code 0: nothing disagreed)"
               if counts["inconclusive"] else "") + ".")


def section_gradcheck(report, ctx):
    """The oracle checks itself: every cell and variant, complex step and central differences."""
    cells = list(dict.fromkeys(s.cell for s in ctx.subjects))
    cases = self_check_cases(cells, methods=("auto", "central"))
    add_self_check(report, run_self_check(cases, seed=ctx.settings.get("seed", 0)),
                   one_row_per_case=False)
