"""Golden vectors: a conformance suite for RNN/LSTM/GRU implementations in any language.

    manifest = lc.vectors.export(folder)          # npz files + manifest.json + README.md
    report = lc.vectors.verify(folder, impl)      # run an implementation against them

Every case is one configuration (cell, LSTM variant, layers, direction, projection, clip,
activations, layout and its options) with per-gate-distinct float64 weights, T = 4 >= 3 time
steps, batch 2, a non-zero initial state, and the expected outputs and gradients of

    L = sum(dy * y) + sum(dhn * h_T) (+ sum(dcn * c_T))

for fixed seeded cotangents. Each case file uses the audit dump format (see lstmcheck.audit):

    meta          JSON text: {"layout", "cell", "options", "config", "time_reversed"}
    param/<name>  weights in the case's layout (torch cases: PyTorch state_dict names)
    x             (T, B, input_size), time-major        h0, c0   (layers*dirs, B, H_out / H)
    y             (T, B, dirs*H_out)                    hn, cn   final state
    dy, dhn, dcn  the cotangents defining L
    grad/<name>   dL/d<name> for every weight (layout names) and grad/x, grad/h0, grad/c0
    lengths       (B,) int64, only in the variable-length cases (right padding; y = 0 there)

so ``lc.audit(case_file)`` re-checks it, and a C++/CUDA/Rust test reads it with any npz reader.
ONNX cases with direction "reverse" are direction='reverse' models (parameters ``*_reverse``),
whose outputs are what an ONNX runtime returns; ``time_reversed`` (a dump of the model run on
flipped time) is false for every case and kept for older readers. manifest.json lists every case: name, file, cell, layout,
layout_options (the ONNX attributes, TF forget_bias, Keras reset_after, ...), config (the
oracle's constructor arguments), seq_len, batch, sha256.

``verify(folder, impl)`` calls ``impl(config, params, x, state)`` per case, where config is the
manifest entry (cell, layout, layout_options, config), params the layout tensors, x and state as
above (state: h0, or (h0, c0) for LSTM); it returns ``(y, final_state)``. When impl also takes
``dy`` and ``dstate`` keywords it may return ``(y, final_state, grads)`` with grads keyed like
the grad/ entries; those are compared too. Raising NotImplementedError skips a case. A case
with ``lengths`` (also in its manifest entry) passes them as a ``lengths=`` keyword, and is
skipped for an impl that takes none. Tolerances follow the precision of what impl returns
(float32 outputs are held to float32 tolerances against the float64 expectations).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .audit import (AuditRow, GradientMap, _row, _row_phrase, _where_state, call_target, compare,
                    exposing_params, oracle_run, random_cotangents, random_inputs, read_dump,
                    tolerances)
from .audit.tolerances import check_tolerance, output_dtype, real_output
from . import validate as V
from .errors import FileFormatError, OptionError, ShapeError
from .jsonio import dumps, to_jsonable
from .layouts import torch as torch_layout
from .models.registry import names as registered_cells

FORMAT = "lstmcheck-vectors"
VERSION = 1
CELLS = tuple(c for c in registered_cells() if c in torch_layout.CELLS)   # what a case can hold
D, H, T, B = 3, 4, 4, 2


# =============================================================================== the catalogue
def _case(name, cell, layout="torch", layout_options=None, lengths=None, **config):
    return {"name": name, "cell": cell, "layout": layout,
            "dump_options": dict(layout_options or {}), "lengths": lengths,
            "config": {"input_size": D, "hidden_size": H, **config}}


def catalogue(cells=CELLS) -> list:
    """Every case: structure (layers x directions) per cell in the canonical layout, every LSTM
    variant and option, and each foreign layout with its options."""
    from .models import LSTM_VARIANTS
    cases = []
    for cell in cells:
        for L in (1, 2):
            for bi in (False, True):
                cases.append(_case(f"{cell}_l{L}_{'bi' if bi else 'uni'}", cell, num_layers=L,
                                   bidirectional=bi))
    if "rnn" in cells:
        cases += [_case("rnn_relu", "rnn", nonlinearity="relu"),
                  _case("rnn_identity", "rnn", nonlinearity="identity")]
    if "lstm" in cells:
        cases += [_case(f"lstm_{v}", "lstm", variant=v) for v in LSTM_VARIANTS if v != "vanilla"]
        cases += [_case("lstm_peephole_cifg", "lstm", variant="peephole+cifg"),
                  _case("lstm_proj_l2_bi", "lstm", num_layers=2, bidirectional=True, proj_size=2),
                  _case("lstm_clip", "lstm", clip=0.6),
                  _case("lstm_cell_clip", "lstm", cell_clip=0.3),
                  _case("lstm_activations", "lstm", activations=("hard_sigmoid", "softsign", "elu")),
                  # foreign layouts and their options
                  _case("keras_lstm", "lstm", "keras"),
                  _case("onnx_lstm", "lstm", "onnx"),
                  _case("onnx_lstm_peephole_bi", "lstm", "onnx", variant="peephole", bidirectional=True),
                  _case("onnx_lstm_input_forget", "lstm", "onnx", variant="cifg"),
                  _case("onnx_lstm_clip", "lstm", "onnx", clip=0.6),
                  _case("onnx_lstm_reverse", "lstm", "onnx", direction="reverse"),
                  _case("onnx_lstm_l2", "lstm", "onnx", num_layers=2),
                  _case("tf_basic_lstm", "lstm", "tf", {"cell_type": "BasicLSTMCell", "forget_bias": 1.0}),
                  _case("tf_block_lstm", "lstm", "tf", {"cell_type": "LSTMBlockCell", "forget_bias": 0.5},
                        variant="peephole", cell_clip=0.8),
                  _case("cudnn_lstm_bi", "lstm", "cudnn", bidirectional=True)]
    if "gru" in cells:
        cases += [_case("gru_reset_before", "gru", reset_after=False),
                  _case("gru_reset_before_l2_bi", "gru", reset_after=False, num_layers=2, bidirectional=True),
                  _case("keras_gru_reset_after", "gru", "keras", reset_after=True),
                  _case("keras_gru_reset_before", "gru", "keras", reset_after=False),
                  _case("onnx_gru_lbr0", "gru", "onnx", reset_after=False),
                  _case("onnx_gru_lbr1_bi", "gru", "onnx", reset_after=True, bidirectional=True),
                  _case("cudnn_gru", "gru", "cudnn")]
    if "cwrnn" in cells:       # T = 4: periods short enough that every module updates twice
        cases += [_case("cwrnn_periods_1_3", "cwrnn", periods=[1, 3]),
                  _case("cwrnn_periods_l2_bi", "cwrnn", num_layers=2, bidirectional=True, periods=[1, 2])]
    if "dglstm" in cells:
        cases += [_case("dglstm_l3", "dglstm", num_layers=3)]
    if "gridlstm" in cells:
        cases += [_case("gridlstm_l3_bi", "gridlstm", num_layers=3, bidirectional=True)]
    if "rnn" in cells:
        cases += [_case("keras_rnn", "rnn", "keras"), _case("onnx_rnn_relu", "rnn", "onnx", nonlinearity="relu"),
                  _case("cudnn_rnn_l2", "rnn", "cudnn", num_layers=2)]
    # variable-length batches (right padding): PyTorch packed sequences, ONNX sequence_lens
    if "lstm" in cells:
        cases += [_case("lstm_lengths", "lstm", lengths=[T, 2]),
                  _case("onnx_lstm_reverse_lengths", "lstm", "onnx", direction="reverse",
                        lengths=[2, T])]
    if "gru" in cells:
        cases.append(_case("gru_lengths_bi", "gru", bidirectional=True, lengths=[3, 1]))
    return cases


# =============================================================================== export
def _build_case(case, seed):
    """(entry for the manifest, arrays for the npz) of one catalogue case."""
    from . import layouts
    from .models import build
    model = build(case["cell"], **case["config"])
    params = exposing_params(model, seed)
    x, state = random_inputs(model, T, B, seed)
    dy, dstate = random_cotangents(model, T, B, seed)
    lengths = case.get("lengths")
    y, fin, grads = oracle_run(model, params, x, state, dy, dstate,
                               lengths=None if lengths is None else np.asarray(lengths))
    layout = case["layout"]
    tensors = layouts.dump(layout, model, params, **case["dump_options"])
    options = to_jsonable(layouts.options(layout, model, **case["dump_options"]))
    gmap = GradientMap(layout, tensors, model.kind, options)
    g_layout = gmap.pullback(grads)
    names = ("h0", "c0")[:len(state)]
    arrays = {"x": x, "y": y, "dy": dy,
              **({} if lengths is None else {"lengths": np.asarray(lengths, np.int64)})}
    for n, a, f, d, dn in zip(names, state, fin, dstate, ("hn", "cn")):
        arrays[n], arrays[dn], arrays["d" + dn] = a, f, d
    arrays.update({f"param/{n}": np.asarray(a, np.float64) for n, a in tensors.items()})
    arrays.update({f"grad/{n}": g for n, g in g_layout.items()})
    arrays.update({f"grad/{n}": grads[n] for n in ("x", *names)})
    entry = {"name": case["name"], "file": case["name"] + ".npz", "cell": model.kind,
             "layout": layout, "layout_options": options, "config": to_jsonable(model.config()),
             "time_reversed": False, "seq_len": T, "batch": B, "params": list(tensors),
             **({} if lengths is None else {"lengths": list(lengths)})}
    entry["config"].pop("backend", None)
    return entry, arrays


@V.keywords
def export(folder, *, cells=CELLS, seed=0, force=True) -> dict:
    """Write the suite into ``folder`` and return the manifest.

    The folder is created; with ``force`` (the default) an earlier suite there, or an empty
    folder, is replaced atomically. Anything else there (a folder lstmcheck did not write as a
    suite) is refused with an OutputError, and so is an existing folder without ``force``.
    """
    from .report.atomic import atomic_folder

    try:
        cells = tuple(V.names("cells", cells))     # "rnn" is one cell, not three letters
    except OptionError:
        raise OptionError(f"cells must be one or several of {', '.join(CELLS)}, got "
                          f"{cells!r}.") from None
    bad = [c for c in cells if c not in CELLS]
    if bad:
        raise OptionError(f"cells must be chosen from {', '.join(CELLS)}, got {list(cells)!r}.")
    seed = V.seed(seed)                            # before the temporary folder exists
    with atomic_folder(os.fspath(folder), force, kind="vectors") as tmp:
        cases = []
        for case in catalogue(cells):
            entry, arrays = _build_case(case, seed)
            meta = dumps({"layout": entry["layout"], "cell": entry["cell"],
                               "options": entry["layout_options"], "config": entry["config"],
                               "time_reversed": entry["time_reversed"]})
            path = os.path.join(tmp, entry["file"])
            np.savez(path, meta=np.array(meta), **arrays)
            with open(path, "rb") as fh:
                entry["sha256"] = hashlib.sha256(fh.read()).hexdigest()
            cases.append(entry)
        manifest = {"format": FORMAT, "version": VERSION, "seed": seed, "dtype": "float64",
                    "loss": "sum(dy*y) + sum(dhn*hn) + sum(dcn*cn)", "cases": cases}
        with open(os.path.join(tmp, "manifest.json"), "w") as fh:
            fh.write(dumps(manifest, indent=1))
        with open(os.path.join(tmp, "README.md"), "w") as fh:
            fh.write("# lstmcheck golden vectors\n\n" + __doc__)
    return manifest


# =============================================================================== verify
def _suite_folder(folder) -> str:
    """``folder`` as a path that names an existing folder (a file, or a path under one, is one
    sentence naming it rather than NotADirectoryError on manifest.json)."""
    if not isinstance(folder, (str, os.PathLike)):
        raise OptionError(f"folder must be a path, got {type(folder).__name__}.")
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        what = "is a file" if os.path.exists(folder) else "does not exist"
        parent = os.path.dirname(os.path.abspath(folder))
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if what == "does not exist" and os.path.exists(parent) and not os.path.isdir(parent):
            what = f"is under {parent}, which is a file"
        raise FileFormatError(f"the vectors folder {folder} {what}; give the folder "
                              f"lc.vectors.export wrote.")
    return folder


# each manifest entry field and its type; a wrong one would fail later as a TypeError
ENTRY_FIELDS = (("name", str), ("file", str), ("cell", str), ("layout", str),
                ("layout_options", dict), ("config", dict), ("time_reversed", bool),
                ("seq_len", int), ("batch", int))
_TYPE_NAMES = {str: "a string", dict: "a JSON object", bool: "true or false", int: "an integer"}


def _check_entry(path, n, e) -> None:
    if not isinstance(e, dict):
        raise FileFormatError(f"{path}: case {n} is a {type(e).__name__}, not an object; export "
                              f"the suite again.")
    label = e["name"] if isinstance(e.get("name"), str) else f"number {n}"
    for key, typ in ENTRY_FIELDS:
        if key not in e:
            raise FileFormatError(f"{path}: case {label} lacks the field {key!r}; export the "
                                  f"suite again.")
        v = e[key]
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise FileFormatError(f"{path}: case {label} has {key} = {v!r}, not "
                                  f"{_TYPE_NAMES[typ]}; "
                                  f"export the suite again."[:400])
    if os.path.basename(e["file"]) != e["file"] or e["file"] in ("", ".", ".."):
        raise FileFormatError(f"{path}: case {label} names the file {e['file']!r}, which is not "
                              f"a file name inside the suite.")


def load_manifest(folder) -> dict:
    path = os.path.join(_suite_folder(folder), "manifest.json")
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise FileFormatError(f"{os.fspath(folder)} holds no manifest.json; write the suite with "
                              f"lc.vectors.export first.") from None
    except ValueError:
        raise FileFormatError(f"{path} is not valid JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not an lstmcheck vectors manifest.")
    cases = manifest.get("cases")
    if not isinstance(cases, list):
        raise FileFormatError(f"{path} lists its cases wrongly ('cases' must be a list); export "
                              f"the suite again.")
    for n, e in enumerate(cases):
        _check_entry(path, n, e)
    return manifest


def read_case(folder, entry) -> dict:
    """The arrays of one case (checked against the manifest's sha256)."""
    path = os.path.join(os.fspath(folder), entry["file"])
    if not os.path.exists(path):
        raise FileFormatError(f"case file {entry['file']} listed in the manifest is missing.")
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    want = entry.get("sha256")
    if not isinstance(want, str) or not want:
        raise FileFormatError(f"case {entry.get('name', entry['file'])} has no sha256 in the "
                              f"manifest, so its file {entry['file']} cannot be trusted; export the "
                              f"suite again.")
    if digest != want:
        raise FileFormatError(f"case file {entry['file']} does not match its sha256 in the "
                              f"manifest (changed or corrupt).")
    return read_dump(path)


@dataclass
class VectorsReport:
    """One row per case: name, passed, skipped, failures (rows as in AuditReport)."""

    folder: str
    cases: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        run = [c for c in self.cases if not c["skipped"]]
        return bool(run) and all(c["passed"] for c in run)

    @property
    def summary(self) -> str:
        run = [c for c in self.cases if not c["skipped"]]
        bad = [c["name"] for c in run if not c["passed"]]
        skipped = len(self.cases) - len(run)
        tail = f" ({skipped} skipped)" if skipped else ""
        if not run:
            return f"no case of {self.folder} was run{tail}."
        if not bad:
            return f"all {len(run)} cases of {self.folder} pass{tail}."
        return (f"{len(bad)} of {len(run)} cases fail{tail}: {', '.join(bad[:6])}"
                f"{' ...' if len(bad) > 6 else ''}; first: {bad[0]}: "
                f"{_row_phrase(next(c for c in run if not c['passed'])['failures'][0])}.")

    def to_dict(self) -> dict:
        return to_jsonable({"folder": self.folder, "passed": self.passed,
                                 "summary": self.summary, "cases": self.cases})

    def to_text(self) -> str:
        lines = [("PASSED  " if self.passed else "FAILED  ") + self.summary, ""]
        for c in self.cases:
            state = "skip" if c["skipped"] else ("ok" if c["passed"] else "FAIL")
            lines.append(f"  {state:<5}{c['name']}")
            for r in c["failures"]:
                lines.append(f"         {_row_phrase(r)}")
        return "\n".join(lines)

    def __str__(self):
        return self.to_text()


def _unpack(out, n_state, name):
    """impl's return value -> (y, final state tuple, grads or None)."""
    if isinstance(out, dict):
        fin = tuple(out.get(k, out.get(k.replace("_", ""))) for k in ("h_n", "c_n")[:n_state])
        y, grads = out.get("y"), out.get("grads")
    elif not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
        raise ShapeError(f"the implementation returned a {type(out).__name__} for case {name}; "
                         f"return (y, final_state) or (y, final_state, grads).")
    else:
        fin = tuple(out[1]) if isinstance(out[1], (tuple, list)) else (out[1],)
        y, grads = out[0], (out[2] if len(out) == 3 else None)
    if len(fin) != n_state or any(a is None for a in fin):
        want = "the pair (h_n, c_n)" if n_state == 2 else "h_n alone"
        got = f"{len(fin)} array(s)" if all(a is not None for a in fin) else "None for a part"
        raise ShapeError(f"the implementation returned a final state of {got} for "
                         f"case {name}; its final_state must be {want}.")
    return y, fin, grads


@V.keywords
def verify(folder, impl, *, cases=None, rtol=None, atol=None) -> VectorsReport:
    """Run ``impl`` on every case of the suite in ``folder`` (or those named in ``cases``)."""
    if not callable(impl):
        raise OptionError(f"impl must be a callable, got {type(impl).__name__}.")
    rtol, atol = check_tolerance("rtol", rtol), check_tolerance("atol", atol)
    cases = V.names("cases", cases, allow_none=True)   # one name is one case, not its letters
    manifest = load_manifest(folder)
    entries = manifest["cases"]
    if cases is not None:
        names = {e["name"] for e in entries}
        unknown = [c for c in cases if c not in names]
        if unknown:
            raise OptionError(f"the suite has no case {unknown[0]!r}.")
        entries = [e for e in entries if e["name"] in set(cases)]
    try:
        sig = inspect.signature(impl).parameters
        any_kw = any(p.kind == p.VAR_KEYWORD for p in sig.values())
        wants_grads = "dy" in sig or any_kw
        takes_lengths = "lengths" in sig or any_kw
    except (TypeError, ValueError):
        wants_grads = takes_lengths = False
    report = VectorsReport(folder=os.fspath(folder))
    for e in entries:
        d = read_case(folder, e)
        n_state = 2 if "c0" in d else 1          # the case holds the cell's state parts
        tensors = {k[len("param/"):]: v for k, v in d.items() if k.startswith("param/")}
        state = tuple(d[k] for k in ("h0", "c0")[:n_state])
        dstate = tuple(d[k] for k in ("dhn", "dcn")[:n_state])
        config = {k: e[k] for k in ("name", "cell", "layout", "layout_options", "config", "time_reversed")}
        st = state if n_state == 2 else state[0]
        what = f"the implementation, on case {e['name']},"
        kw = {}
        if e.get("lengths") is not None:
            if not takes_lengths:   # it would run the padding: skipped, and the report says why
                report.cases.append({"name": e["name"], "passed": True, "skipped": True,
                                     "failures": [], "reason": "the implementation takes no "
                                                               "lengths keyword"})
                continue
            kw["lengths"] = np.asarray(e["lengths"], np.int64)
        try:
            if wants_grads:
                out = call_target(what, impl, config, tensors, d["x"], st, dy=d["dy"],
                                         dstate=dstate if n_state == 2 else dstate[0], **kw)
            else:
                out = call_target(what, impl, config, tensors, d["x"], st, **kw)
        except NotImplementedError:
            report.cases.append({"name": e["name"], "passed": True, "skipped": True, "failures": []})
            continue
        y, fin, grads = _unpack(out, n_state, e["name"])
        report.cases.append(_check_case(e, d, y, fin, grads, rtol, atol))
    return report


def _check_case(entry, d, y, fin, grads, rtol, atol):
    from .models import build
    cfg = {k: v for k, v in entry["config"].items()
           if k not in ("act_f", "act_g", "act_h", "dtype", "batch_first")}
    model = build(**cfg, **_activations(entry["config"]))
    # the implementation's own precision: a float32 kernel is held to float32 tolerances
    dt = output_dtype(y, *fin, *(grads or {}).values())
    tol = tolerances(dt, entry["seq_len"], model.num_layers,
                            max(model.layer_input_size(k) for k in range(model.num_layers)) + model.output_size)
    if rtol is not None or atol is not None:
        fixed = {"rtol": rtol or 0.0, "atol": atol or 0.0}
        tol = {"forward": fixed, "gradient": fixed}
    rows = []

    def check(kind, name, got, want, where_name):
        got = real_output(f"the implementation's {name} for case {entry['name']}", got)
        if got.shape != want.shape:
            rows.append(AuditRow(kind, name, False, float("inf"), float("inf"), float("inf"), {},
                                 note=f"shape {got.shape}, expected {want.shape}"))
            return
        c = compare(got, want, **tol[kind])
        where = _where_state(model, where_name, c) if where_name else {"index": list(c["worst"] or [])}
        rows.append(_row(kind, name, c, tol[kind], where))

    check("forward", "y", y, d["y"], "y")
    for name, got, key in zip(("h_n", "c_n"), fin, ("hn", "cn")):
        if got is not None:
            check("forward", name, got, d[key], name)
    for name, g in (grads or {}).items():
        key = f"grad/{name}"
        if key in d and g is not None:
            check("gradient", name, g, d[key], "x" if name == "x" else (name if name in ("h0", "c0") else None))
    return {"name": entry["name"], "passed": all(r["passed"] for r in rows), "skipped": False,
            "failures": [r for r in rows if not r["passed"]], "checked": len(rows)}


def _activations(config):
    """Manifests written before configurations carried 'activations' name them one by one."""
    acts = [config.get(k) for k in ("act_f", "act_g", "act_h")]
    if not any(acts):
        return {}
    from .models.lstm import parse_variant
    fl = parse_variant(config.get("variant", "vanilla"))
    return {"activations": tuple(a or getattr(fl, k) for a, k in zip(acts, ("act_f", "act_g", "act_h")))}
