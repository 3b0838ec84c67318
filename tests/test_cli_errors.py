"""The CLI error-path table: every command, every kind of mistake a user can make.

Each row runs one command line (in-process through click's CliRunner, a few through the real
entry point) in a scratch folder that already holds an earlier report, a golden-vector suite and
assorted good, corrupt, truncated and unreadable files, and asserts the whole contract:
the documented exit code (2 for a usage or input error, 130 for Ctrl-C), exactly one line of
error text on stderr naming the offending option or file, no traceback, nothing on stdout, and
the scratch folder byte-identical afterwards (no half-written report, no temporary left behind,
no earlier report or suite touched).
"""
from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import lstmcheck as lc
from lstmcheck import studies
from lstmcheck.sweep import run as sweep_run   # run_sweep looks run_point up there
from lstmcheck.cli import cli
from lstmcheck.report import atomic, style

REPO = Path(__file__).resolve().parents[1]
TINY = ["--seq-len", "4", "--hidden-size", "3", "--batch", "1"]
HUGE = "100000000"
# A non-terminal stderr gets no progress labels (issue 13): an error is exactly one line there.

IMPL = textwrap.dedent('''
    def raises(*args, **kwargs):
        raise TypeError("my kernel wants 5 arguments")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
''')


# ------------------------------------------------------------------------------- the scratch folder
@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A golden-vector suite (RNN cases only: small), exported once for the module."""
    folder = tmp_path_factory.mktemp("suite") / "suite"
    lc.vectors.export(folder, cells=("rnn",), seed=0)
    return folder


@pytest.fixture
def scratch(tmp_path, template, monkeypatch):
    """The working folder of every row: a fresh copy of the template."""
    folder = tmp_path / "w"
    shutil.copytree(template, folder)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture(scope="module")
def template(tmp_path_factory, suite):
    """An earlier report, a golden-vector suite, and files good, corrupt and truncated."""
    tmp_path = tmp_path_factory.mktemp("template")
    (tmp_path / "errimpl.py").write_text(IMPL)
    rep = tmp_path / "rep"                                   # an earlier report
    (rep / "figures").mkdir(parents=True)
    (rep / "index.html").write_text("<p>earlier report</p>")
    (rep / "results.json").write_text('{"earlier": true}')
    (rep / "figures" / "old.png").write_bytes(b"\x89PNG earlier")
    atomic.write_marker(rep, "report")                      # lstmcheck wrote it: --force may go
    (tmp_path / "precious").mkdir()                          # not a report: never replaced
    (tmp_path / "precious" / "thesis.tex").write_text("keep me")
    (tmp_path / "plain.txt").write_text("just text\n")
    shutil.copytree(suite, tmp_path / "suite")

    model = lc.GRU(3, 4)                                     # trained weights, good and bad
    params = model.init_params(seed=1)
    np.savez(tmp_path / "w.npz", **params)
    good = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    np.savez(tmp_path / "odd.npz", foo=np.zeros(3))
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02garbage")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage that is no protobuf")
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\xff" * 40)
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in params.items()},
              str(tmp_path / "w.safetensors"))
    good = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(good[: len(good) // 2])

    case = sorted((tmp_path / "suite").glob("*.npz"))[0]      # an audit dump, good and bad
    shutil.copy(case, tmp_path / "case.npz")
    good = case.read_bytes()
    (tmp_path / "case_truncated.npz").write_bytes(good[: len(good) // 3])

    (tmp_path / "grid.toml").write_text('cell = ["rnn"]\nseq_len = [4]\n')
    (tmp_path / "bad.toml").write_text("cell = [rnn\n")
    (tmp_path / "truncated.json").write_text('{"cell": ["rnn", "gr')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "wrongtype.toml").write_text('seq_len = ["ten"]\n')
    (tmp_path / "grid.yaml").write_text("cell: [rnn]\n")
    sweep_out = tmp_path / "swept"                            # an earlier sweep, a broken log
    sweep_out.mkdir()
    (sweep_out / "results.jsonl").write_text('{"key": "x", "record": {}}\nnot json at all\n')

    for name, text in {"no_manifest": None, "corrupt_manifest": "{not json",
                       "truncated_manifest": '{"format": "lstmcheck-vectors", "cas',
                       "caseless_manifest": None}.items():
        bad = tmp_path / name              # verify reads the manifest first: no cases needed
        bad.mkdir()
        manifest = bad / "manifest.json"
        shutil.copy(suite / "manifest.json", manifest)
        if name == "no_manifest":
            manifest.unlink()
            shutil.copy(suite / "README.md", bad / "README.md")
        elif name == "caseless_manifest":
            data = json.loads(manifest.read_text())
            data["cases"] = [{"name": "x"}]
            manifest.write_text(json.dumps(data))
        else:
            manifest.write_text(text)
    tampered = tmp_path / "tampered"
    shutil.copytree(suite, tampered)
    for case in tampered.glob("*.npz"):
        case.write_bytes(case.read_bytes()[:-10])
    return tmp_path


def snapshot(folder: Path) -> dict:
    """Every file and folder below ``folder`` with its bytes (folders: None)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*")) if "__pycache__" not in p.parts}


# ------------------------------------------------------------------------------- faults on demand
class _FullDisk:
    """A file whose writes fail with ENOSPC once the shared byte budget is spent (midway)."""

    def __init__(self, fh, budget):
        self._fh, self._budget = fh, budget

    def write(self, data):
        if self._budget[0] < len(data):
            n = max(self._budget[0], 0)
            self._fh.write(data[:n])                         # a partial write, as a real disk
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= len(data)
        return self._fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
        return False

    def __getattr__(self, name):
        return getattr(self._fh, name)


def full_disk(monkeypatch, tmp_path, budget=3000):
    """The lowest write function everything uses (open, also as io.open and Path.open) returns
    files that run out of space after ``budget`` bytes written below ``tmp_path``."""
    real_open, left = builtins.open, [budget]

    def opener(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        inside = isinstance(file, (str, os.PathLike)) and \
            os.path.abspath(file).startswith(str(tmp_path))
        if inside and any(c in mode for c in "wax+"):
            return _FullDisk(fh, left)
        return fh

    monkeypatch.setattr(builtins, "open", opener)
    monkeypatch.setattr(io, "open", opener)


def deny_read(name):
    """Reading ``name`` fails with EACCES (chmod 000 means nothing to root, who runs CI)."""
    def setup(monkeypatch, tmp_path):
        real_open, target = builtins.open, os.path.abspath(tmp_path / name)

        def opener(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == target:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", opener)
        monkeypatch.setattr(io, "open", opener)
    return setup


def no_write_access(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not mode & os.W_OK)


def small_study(monkeypatch, tmp_path):
    """`lstmcheck report` computing a two-figure report at once, so that its write paths (the
    real ones) test in a fraction of a second."""
    from lstmcheck.report import Report

    def tiny_study(progress=None, **kw):
        rep = Report("a tiny study")
        rep.add_row("check", "fine", "pass")
        for name in ("first", "second"):
            fig, (ax,) = style.new_figure(width=2, height=1.5)
            ax.plot([0, 1, 2], [2, 1, 0])
            rep.add_figure(name, f"The {name} figure.", fig)
            if progress is not None:
                progress(name)
        return rep

    monkeypatch.setattr(studies, "default_study", tiny_study)


def ctrl_c_computing(monkeypatch, tmp_path):
    real = studies.default_study

    def interrupted_after_first_section(progress=None, **kw):
        def tick(name):
            raise KeyboardInterrupt
        return real(progress=tick, **kw)

    monkeypatch.setattr(studies, "default_study", interrupted_after_first_section)


def ctrl_c_figures(monkeypatch, tmp_path):
    small_study(monkeypatch, tmp_path)
    real, calls = style.save_figure, []

    def save(*a, **k):                      # the first figure is on disk when Ctrl-C arrives
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(style, "save_figure", save)


def ctrl_c_rename(monkeypatch, tmp_path):
    small_study(monkeypatch, tmp_path)      # the finished folder is about to take its place
    monkeypatch.setenv(atomic.FAULT_ENV, "swap=interrupt")


def ctrl_c_between_renames(monkeypatch, tmp_path):
    small_study(monkeypatch, tmp_path)      # the two-rename swap, the old folder moved aside
    monkeypatch.setenv(atomic.FAULT_ENV, "no-exchange,between=interrupt")


def ctrl_c_after_exchange(monkeypatch, tmp_path):
    small_study(monkeypatch, tmp_path)      # exchanged, not yet settled: all or nothing
    monkeypatch.setenv(atomic.FAULT_ENV, "between=interrupt")


def full_disk_report(monkeypatch, tmp_path):
    small_study(monkeypatch, tmp_path)
    full_disk(monkeypatch, tmp_path, budget=8_000)   # past the first figure, before the last


def ctrl_c_self_check(monkeypatch, tmp_path):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(studies, "run_self_check", interrupted)


def ctrl_c_probing(monkeypatch, tmp_path):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(studies, "probe_study", interrupted)


def ctrl_c_export(monkeypatch, tmp_path):
    real, calls = np.savez, []

    def savez(*a, **k):                     # two cases are on disk when Ctrl-C arrives
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(np, "savez", savez)


def ctrl_c_export_rename(monkeypatch, tmp_path):
    # the new suite is about to take the old one's place
    monkeypatch.setenv(atomic.FAULT_ENV, "swap=interrupt")


def ctrl_c_export_between_renames(monkeypatch, tmp_path):
    monkeypatch.setenv(atomic.FAULT_ENV, "no-exchange,between=interrupt")


def cupy_missing(monkeypatch, tmp_path):
    if "cupy" in lc.backend.available_backends():
        pytest.skip("CuPy works here: --backend cupy is no error")


# ------------------------------------------------------------------------------- the table
def row(id, args, mention, code=2, setup=None, changes=()):
    """One command line, a word its error must contain, its exit code, a fault to set up, and
    the files it may legitimately change (an append-only sweep log)."""
    return pytest.param(args, mention, code, setup, set(changes), id=id)


TABLE = [
    # ---------------------------------------------------------------- the group itself
    row("group-unknown-command", ["bogus"], "bogus"),
    row("group-unknown-option", ["--nope", "info"], "--nope"),
    row("vectors-without-command", ["vectors"], "export, verify"),
    row("vectors-unknown-command", ["vectors", "import"], "import"),
    # ---------------------------------------------------------------- info
    row("info-extra-argument", ["info", "extra"], "extra"),
    row("info-unknown-option", ["info", "--verbose"], "--verbose"),
    row("info-json-without-value", ["info", "--json"], "--json"),
    row("info-json-is-a-folder", ["info", "--json", "precious"], "--json"),
    row("info-json-missing-folder", ["info", "--json", "no/such/env.json"], "--json"),
    row("info-json-under-a-file", ["info", "--json", "plain.txt/env.json"], "--json"),
    row("info-json-unwritable", ["info", "--json", "env.json"], "--json", setup=no_write_access),
    # ---------------------------------------------------------------- gradcheck
    row("gradcheck-unknown-option", ["gradcheck", "--hiden-size", "4"], "--hiden-size"),
    row("gradcheck-text-for-int", ["gradcheck", "--hidden-size", "abc"], "--hidden-size"),
    row("gradcheck-float-for-int", ["gradcheck", "--input-size", "1e3"], "--input-size"),
    row("gradcheck-zero-T", ["gradcheck", "--seq-len", "0"], "--seq-len"),
    row("gradcheck-negative-batch", ["gradcheck", "--batch", "-1"], "--batch"),
    row("gradcheck-zero-layers", ["gradcheck", "--num-layers", "0"], "--num-layers"),
    row("gradcheck-negative-seed", ["gradcheck", "--seed", "-1"], "--seed"),
    row("gradcheck-seed-too-big", ["gradcheck", "--seed", str(2**32)], "--seed"),
    row("gradcheck-elements-text", ["gradcheck", "--elements", "none"], "--elements"),
    row("gradcheck-elements-zero", ["gradcheck", "--elements", "0"], "--elements"),
    row("gradcheck-unknown-cell", ["gradcheck", "--cell", "cnn"], "--cell"),
    row("gradcheck-unknown-variant", ["gradcheck", "--variant", "peephole+nope"], "--variant"),
    row("gradcheck-unknown-method", ["gradcheck", "--method", "guess"], "--method"),
    row("gradcheck-unknown-dtype", ["gradcheck", "--dtype", "float16"], "--dtype"),
    row("gradcheck-huge-hidden", ["gradcheck", "--hidden-size", HUGE], "--hidden-size"),
    row("gradcheck-hours-of-layers", ["gradcheck", "--num-layers", "100000"], "--num-layers"),
    row("gradcheck-variant-without-lstm", ["gradcheck", "--cell", "gru", "--variant", "cifg"],
        "LSTM only"),
    row("gradcheck-force-without-out", ["gradcheck", "--force"], "--force"),
    row("gradcheck-out-is-a-file", ["gradcheck", "--out", "plain.txt"], "plain.txt"),
    row("gradcheck-out-exists", ["gradcheck", "--out", "rep"], "already exists"),
    row("gradcheck-out-not-a-report", ["gradcheck", "--out", "precious", "--force"],
        "not an lstmcheck report"),
    row("gradcheck-out-unwritable", ["gradcheck", "--out", "new"], "not writable",
        setup=no_write_access),
    row("gradcheck-json-is-a-folder", ["gradcheck", "--json", "precious"], "--json"),
    row("gradcheck-cupy-missing", ["gradcheck", "--cell", "rnn", "--backend", "cupy"], "cupy",
        setup=cupy_missing),
    row("gradcheck-ctrl-c", ["gradcheck", "--out", "rep", "--force"], "interrupted", 130,
        ctrl_c_self_check),
    # ---------------------------------------------------------------- audit
    row("audit-missing-target", ["audit"], "TARGET"),
    row("audit-two-colons", ["audit", "a:b:c"], "TARGET"),
    row("audit-no-such-module", ["audit", "no_such_module_xyz:fn"], "no_such_module_xyz"),
    row("audit-no-such-callable", ["audit", "os:no_such_fn"], "no_such_fn"),
    row("audit-not-callable", ["audit", "os:sep", "--layout", "torch", "--cell", "lstm"],
        "TARGET"),
    row("audit-target-raises", ["audit", "errimpl:raises", "--layout", "torch", "--cell", "rnn"],
        "my kernel wants 5 arguments"),
    row("audit-unknown-layout", ["audit", "errimpl:raises", "--layout", "nope", "--cell", "rnn"],
        "nope"),
    row("audit-folder-target", ["audit", "precious"], "precious"),
    row("audit-missing-file", ["audit", "missing.npz"], "missing.npz"),
    row("audit-not-a-dump", ["audit", "plain.txt"], "plain.txt"),
    row("audit-corrupt-npz", ["audit", "corrupt.npz"], "corrupt.npz"),
    row("audit-truncated-npz", ["audit", "case_truncated.npz"], "case_truncated.npz"),
    row("audit-npz-without-dump", ["audit", "odd.npz"], "odd.npz"),
    row("audit-corrupt-onnx", ["audit", "corrupt.onnx"], "corrupt.onnx"),
    row("audit-empty-onnx", ["audit", "empty.onnx"], "empty.onnx"),
    row("audit-cell-contradicts-dump", ["audit", "case.npz", "--cell", "lstm"], "case.npz"),
    row("audit-layout-contradicts-dump", ["audit", "case.npz", "--layout", "keras"], "case.npz"),
    row("audit-unreadable-npz", ["audit", "case.npz"], "case.npz", setup=deny_read("case.npz")),
    row("audit-negative-rtol", ["audit", "case.npz", "--rtol", "-1"], "--rtol"),
    row("audit-nan-atol", ["audit", "case.npz", "--atol", "nan"], "--atol"),
    row("audit-text-rtol", ["audit", "case.npz", "--rtol", "tight"], "--rtol"),
    row("audit-unknown-cell", ["audit", "case.npz", "--cell", "cnn"], "--cell"),
    row("audit-zero-T", ["audit", "case.npz", "--seq-len", "0"], "--seq-len"),
    row("audit-huge-hidden", ["audit", "errimpl:raises", "--layout", "torch", "--cell", "lstm",
                              "--hidden-size", HUGE], "--hidden-size"),
    row("audit-sizes-for-a-file", ["audit", "case.npz", "--hidden-size", "8"], "--hidden-size"),
    row("audit-force-without-out", ["audit", "case.npz", "--force"], "--force"),
    row("audit-out-exists", ["audit", "case.npz", "--out", "rep"], "already exists"),
    row("audit-ctrl-c-in-target", ["audit", "errimpl:ctrl_c", "--layout", "torch", "--cell",
                                   "rnn", "--out", "rep", "--force"], "interrupted", 130),
    # ---------------------------------------------------------------- probe
    row("probe-zero-hidden", ["probe", "--hidden-size", "0"], "--hidden-size"),
    row("probe-text-hidden", ["probe", "--hidden-size", "x"], "--hidden-size"),
    row("probe-negative-T", ["probe", "--seq-len", "-5"], "--seq-len"),
    row("probe-zero-batch", ["probe", "--batch", "0"], "--batch"),
    row("probe-huge-hidden", ["probe", "--hidden-size", "1000000"], "--hidden-size"),
    row("probe-huge-T", ["probe", "--seq-len", HUGE, "--hidden-size", "2"], "--seq-len"),
    row("probe-huge-batch", ["probe", "--batch", HUGE, "--hidden-size", "2", "--seq-len", "2"],
        "--batch"),
    row("probe-negative-seed", ["probe", "--seed", "-5"], "--seed"),
    row("probe-seed-too-big", ["probe", "--seed", str(2**32)], "--seed"),
    row("probe-unknown-task", ["probe", *TINY, "--task", "sorting"], "sorting"),
    row("probe-unknown-init", ["probe", "--init", "xavier"], "--init"),
    row("probe-unknown-probe", ["probe", "--probe", "fourier"], "--probe"),
    row("probe-negative-radius", ["probe", *TINY, "--spectral-radius", "-1"], "spectral_radius"),
    row("probe-nan-radius", ["probe", *TINY, "--spectral-radius", "nan"], "spectral_radius"),
    row("probe-inf-forget-bias", ["probe", *TINY, "--forget-bias", "inf"], "forget_bias"),
    row("probe-text-forget-bias", ["probe", "--forget-bias", "high"], "--forget-bias"),
    row("probe-forget-bias-on-rnn", ["probe", *TINY, "--cell", "rnn", "--forget-bias", "1"],
        "forget_bias"),
    row("probe-variant-on-gru", ["probe", *TINY, "--cell", "gru", "--variant", "cifg"], "cifg"),
    row("probe-layout-without-weights", ["probe", "--layout", "keras"], "--layout"),
    row("probe-weights-and-hidden", ["probe", "--weights", "w.npz", "--hidden-size", "8"],
        "--hidden-size"),
    row("probe-weights-and-init", ["probe", "--weights", "w.npz", "--init", "chrono"], "--init"),
    row("probe-weights-two-cells", ["probe", "--weights", "w.npz", "--cell", "rnn", "--cell",
                                    "gru"], "--cell"),
    row("probe-weights-wrong-cell", ["probe", "--weights", "w.npz", "--cell", "lstm"], "w.npz"),
    row("probe-weights-folder", ["probe", "--weights", "precious"], "--weights"),
    row("probe-weights-missing", ["probe", "--weights", "missing.pt"], "missing.pt"),
    row("probe-weights-unknown-type", ["probe", "--weights", "plain.txt"], "plain.txt"),
    row("probe-weights-corrupt-npz", ["probe", "--weights", "corrupt.npz"], "corrupt.npz"),
    row("probe-weights-truncated-npz", ["probe", "--weights", "truncated.npz"], "truncated.npz"),
    row("probe-weights-foreign-npz", ["probe", "--weights", "odd.npz"], "odd.npz"),
    row("probe-weights-corrupt-safetensors", ["probe", "--weights", "corrupt.safetensors"],
        "corrupt.safetensors"),
    row("probe-weights-truncated-safetensors", ["probe", "--weights", "truncated.safetensors"],
        "truncated.safetensors"),
    row("probe-weights-corrupt-onnx", ["probe", "--weights", "corrupt.onnx"], "corrupt.onnx"),
    row("probe-weights-empty-onnx", ["probe", "--weights", "empty.onnx"], "empty.onnx"),
    row("probe-weights-corrupt-pt", ["probe", "--weights", "corrupt.pt"], "corrupt.pt"),
    row("probe-weights-unreadable", ["probe", "--weights", "w.npz"], "w.npz",
        setup=deny_read("w.npz")),
    row("probe-force-without-out", ["probe", "--force"], "--force"),
    row("probe-out-is-a-file", ["probe", "--out", "plain.txt"], "plain.txt"),
    row("probe-ctrl-c", ["probe", *TINY, "--out", "rep", "--force"], "interrupted", 130,
        ctrl_c_probing),
    # ---------------------------------------------------------------- report
    row("report-unknown-option", ["report", "--cell", "lstm"], "--cell"),
    row("report-negative-hidden", ["report", "--hidden-size", "-3"], "--hidden-size"),
    row("report-zero-T", ["report", "--seq-len", "0"], "--seq-len"),
    row("report-text-batch", ["report", "--batch", "x"], "--batch"),
    row("report-negative-seed", ["report", "--seed", "-1"], "--seed"),
    row("report-unknown-dtype", ["report", "--dtype", "float16"], "--dtype"),
    row("report-unknown-backend", ["report", "--backend", "tpu"], "--backend"),
    row("report-huge-hidden", ["report", "--hidden-size", HUGE], "--hidden-size"),
    row("report-huge-T", ["report", "--seq-len", "1000000000"], "--seq-len"),
    row("report-out-exists", ["report", "--out", "rep"], "already exists"),
    row("report-out-not-a-report", ["report", "--out", "precious", "--force"],
        "not an lstmcheck report"),
    row("report-out-is-a-file", ["report", "--out", "plain.txt"], "plain.txt"),
    row("report-out-under-a-file", ["report", "--out", "plain.txt/rep"], "not a folder"),
    row("report-out-missing-parent", ["report", "--out", "no/such/rep"], "does not exist"),
    row("report-out-unwritable", ["report", "--out", "rep", "--force"], "not writable",
        setup=no_write_access),
    row("report-json-is-a-folder", ["report", "--json", "precious"], "--json"),
    row("report-full-disk", ["report", "--out", "rep", "--force", *TINY], "No space left",
        setup=full_disk_report),
    row("report-full-disk-new-folder", ["report", "--out", "fresh", *TINY], "No space left",
        setup=full_disk_report),
    row("report-ctrl-c-computing", ["report", "--out", "rep", "--force", *TINY], "interrupted",
        130, ctrl_c_computing),
    row("report-ctrl-c-figures", ["report", "--out", "rep", "--force", *TINY], "interrupted",
        130, ctrl_c_figures),
    row("report-ctrl-c-rename", ["report", "--out", "rep", "--force", *TINY], "interrupted",
        130, ctrl_c_rename),
    row("report-ctrl-c-rename-new-folder", ["report", "--out", "fresh", *TINY], "interrupted",
        130, ctrl_c_rename),
    row("report-ctrl-c-between-renames", ["report", "--out", "rep", "--force", *TINY],
        "interrupted", 130, ctrl_c_between_renames),
    row("report-ctrl-c-after-exchange", ["report", "--out", "rep", "--force", *TINY],
        "interrupted", 130, ctrl_c_after_exchange),
    # ---------------------------------------------------------------- sweep
    row("sweep-missing-grid-file", ["sweep", "missing.toml"], "missing.toml"),
    row("sweep-grid-is-a-folder", ["sweep", "precious"], "precious"),
    row("sweep-grid-corrupt-toml", ["sweep", "bad.toml"], "bad.toml"),
    row("sweep-grid-truncated-json", ["sweep", "truncated.json"], "truncated.json"),
    row("sweep-grid-not-a-table", ["sweep", "list.json"], "list"),
    row("sweep-grid-wrong-type", ["sweep", "wrongtype.toml"], "seq_len"),
    row("sweep-grid-yaml", ["sweep", "grid.yaml"], "grid.yaml"),
    row("sweep-grid-unreadable", ["sweep", "grid.toml"], "grid.toml",
        setup=deny_read("grid.toml")),
    row("sweep-param-text-for-int", ["sweep", "--param", "seq_len=abc"], "seq_len"),
    row("sweep-param-negative", ["sweep", "--param", "seq_len=-1"], "seq_len"),
    row("sweep-param-unknown", ["sweep", "--param", "hiden_size=8"], "hiden_size"),
    row("sweep-param-malformed", ["sweep", "--param", "seq_len"], "seq_len"),
    row("sweep-param-huge", ["sweep", "--param", f"hidden_size={HUGE}"], "hidden_size"),
    row("sweep-zero-workers", ["sweep", "--workers", "0"], "--workers"),
    row("sweep-text-workers", ["sweep", "--workers", "many"], "--workers"),
    row("sweep-unknown-measure", ["sweep", "--measure", "accuracy"], "--measure"),
    row("sweep-dask-and-scheduler", ["sweep", "--param", "seq_len=4", "--dask", "--scheduler",
                                     "tcp://127.0.0.1:1"], "--scheduler"),
    row("sweep-scheduler-and-workers", ["sweep", "--param", "seq_len=4", "--workers", "2",
                                        "--scheduler", "tcp://127.0.0.1:1"], "--workers"),
    row("sweep-unknown-axis", ["sweep", "--param", "cell=rnn", "--param", "seq_len=4",
                               "--param", "hidden_size=3", "--x", "rho"], "rho"),
    row("sweep-out-is-a-file", ["sweep", "--param", "seq_len=4", "--out", "plain.txt"],
        "plain.txt"),
    row("sweep-corrupt-results-log", ["sweep", "--param", "seq_len=4", "--out", "swept"],
        "results.jsonl"),
    row("sweep-no-point-can-run", ["sweep", "--param", "cell=rnn", "--param", "forget_bias=1",
                                   "--param", "seq_len=4", "--out", "swept", "--fresh"],
        "forget_bias", changes={"swept/results.jsonl"}),   # points that cannot run are logged
    # ---------------------------------------------------------------- vectors export
    row("export-missing-folder-argument", ["vectors", "export"], "FOLDER"),
    row("export-folder-is-a-file", ["vectors", "export", "plain.txt"], "plain.txt"),
    row("export-folder-exists", ["vectors", "export", "suite"], "already exists"),
    row("export-over-foreign-folder", ["vectors", "export", "precious", "--force"],
        "not a vectors suite"),
    row("export-missing-parent", ["vectors", "export", "no/such/suite"], "does not exist"),
    row("export-negative-seed", ["vectors", "export", "new", "--seed", "-1"], "--seed"),
    row("export-unknown-cell", ["vectors", "export", "new", "--cell", "cnn"], "--cell"),
    row("export-full-disk", ["vectors", "export", "suite", "--force", "--cell", "rnn"],
        "No space left", setup=lambda mp, tmp: full_disk(mp, tmp, budget=20_000)),
    row("export-ctrl-c", ["vectors", "export", "suite", "--force", "--cell", "rnn"],
        "interrupted", 130, ctrl_c_export),
    row("export-ctrl-c-rename", ["vectors", "export", "suite", "--force", "--cell", "rnn"],
        "interrupted", 130, ctrl_c_export_rename),
    row("export-ctrl-c-between-renames", ["vectors", "export", "suite", "--force", "--cell",
                                          "rnn"], "interrupted", 130,
        ctrl_c_export_between_renames),
    # ---------------------------------------------------------------- vectors verify
    row("verify-missing-folder-argument", ["vectors", "verify"], "FOLDER"),
    row("verify-missing-impl", ["vectors", "verify", "suite"], "--impl"),
    row("verify-folder-missing", ["vectors", "verify", "nowhere", "--impl", "os:getcwd"],
        "nowhere"),
    row("verify-folder-is-a-file", ["vectors", "verify", "plain.txt", "--impl", "os:getcwd"],
        "plain.txt"),
    row("verify-no-manifest", ["vectors", "verify", "no_manifest", "--impl", "os:getcwd"],
        "manifest.json"),
    row("verify-corrupt-manifest", ["vectors", "verify", "corrupt_manifest", "--impl",
                                    "os:getcwd"], "manifest.json"),
    row("verify-truncated-manifest", ["vectors", "verify", "truncated_manifest", "--impl",
                                      "os:getcwd"], "manifest.json"),
    row("verify-caseless-manifest", ["vectors", "verify", "caseless_manifest", "--impl",
                                     "os:getcwd"], "manifest.json"),
    row("verify-unreadable-manifest", ["vectors", "verify", "suite", "--impl", "os:getcwd"],
        "manifest.json", setup=deny_read("suite/manifest.json")),
    row("verify-tampered-case", ["vectors", "verify", "tampered", "--impl", "errimpl:raises"],
        "sha256"),
    row("verify-impl-no-colon", ["vectors", "verify", "suite", "--impl", "errimpl"], "--impl"),
    row("verify-impl-no-module", ["vectors", "verify", "suite", "--impl", "nomod_xyz:f"],
        "--impl"),
    row("verify-impl-no-attribute", ["vectors", "verify", "suite", "--impl", "os:nope"],
        "--impl"),
    row("verify-impl-not-callable", ["vectors", "verify", "suite", "--impl", "os:sep"],
        "--impl"),
    row("verify-negative-rtol", ["vectors", "verify", "suite", "--impl", "os:getcwd", "--rtol",
                                 "-1"], "--rtol"),
    row("verify-unknown-case", ["vectors", "verify", "suite", "--impl", "os:getcwd", "--case",
                                "nope"], "nope"),
    row("verify-impl-raises", ["vectors", "verify", "suite", "--impl", "errimpl:raises"],
        "my kernel wants 5 arguments"),
    row("verify-ctrl-c-in-impl", ["vectors", "verify", "suite", "--impl", "errimpl:ctrl_c"],
        "interrupted", 130),
]


def error_line(result, code: int) -> str:
    """The contract of a failed command; returns its one error line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == "", result.stdout
    text = result.stderr.splitlines()
    assert len(text) == 1, result.stderr
    assert text[0].startswith("lstmcheck: error: ")
    assert "Traceback" not in result.stderr and "internal error" not in text[0]
    return text[0]


@pytest.mark.parametrize("args, mention, code, setup, changes", TABLE)
def test_error_table(scratch, monkeypatch, args, mention, code, setup, changes):
    before = snapshot(scratch)
    if setup is not None:
        setup(monkeypatch, scratch)
    result = CliRunner().invoke(cli, args)
    monkeypatch.undo()         # the faults end with the command; the checks below read freely
    line = error_line(result, code)
    assert mention in line, line
    after = snapshot(scratch)
    assert set(after) == set(before)         # nothing half-written or temporary left behind
    assert {p for p in after if after[p] != before[p]} == changes   # nothing earlier destroyed


def test_every_command_has_rows():
    """The table covers every command the CLI has (a new command needs its rows)."""
    names = {f"{g} {c}".strip() if g else c
             for g, grp in (("", cli), ("vectors", cli.commands["vectors"]))
             for c in grp.commands if c != "vectors"}
    covered = {" ".join(p.values[0][:2]) if p.values[0][0] == "vectors" else p.values[0][0]
               for p in TABLE}
    assert names <= covered, names - covered


# ------------------------------------------------------------------------- the real entry point
@pytest.mark.parametrize("args, mention, code", [
    (["gradcheck", "--seed", "-1"], "--seed", 2),
    (["probe", "--weights", "corrupt.npz"], "corrupt.npz", 2),
    (["vectors"], "export, verify", 2),
    (["report", "--out", "rep"], "already exists", 2),
])
def test_real_entry_point_behaves_the_same(scratch, args, mention, code):
    before = snapshot(scratch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "lstmcheck", *args], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcheck: error: "), proc.stderr
    assert mention in lines[0]
    assert snapshot(scratch) == before


def test_sweep_ctrl_c_keeps_finished_points_and_the_earlier_report(scratch, monkeypatch):
    """Ctrl-C mid-sweep: finished points stay in results.jsonl (a rerun resumes), the earlier
    report folder is untouched and no temporary is left behind."""
    out = scratch / "run"
    args = ["sweep", "--param", "cell=rnn", "--param", "seed=0,1,2", "--param", "seq_len=4",
            "--param", "hidden_size=3", "--param", "batch=1", "--out", str(out), "--quiet"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    earlier = snapshot(out / "report")
    (out / "results.jsonl").write_text("".join((out / "results.jsonl").read_text()
                                               .splitlines(keepends=True)[:1]))
    real, calls = sweep_run.run_point, []

    def point(job):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(sweep_run, "run_point", point)
    r = CliRunner().invoke(cli, args)
    assert "interrupted" in error_line(r, 130)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2   # one more point kept
    assert snapshot(out / "report") == earlier
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


SWEEP = ["sweep", "--param", "cell=rnn", "--param", "seed=0,1,2", "--param", "seq_len=4",
         "--param", "hidden_size=3", "--param", "batch=1", "--out", "run", "--quiet"]


def test_sweep_full_disk_mid_log_then_resumes(scratch, monkeypatch):
    """The disk fills while a record is appended: one line naming results.jsonl, the points
    recorded before are kept, and the same command later finishes with whole records only."""
    with monkeypatch.context() as mp:
        full_disk(mp, scratch, budget=1500)              # one record fits, the second does not
        r = CliRunner().invoke(cli, SWEEP)
    line = error_line(r, 2)
    assert "No space left" in line and "results.jsonl" in line
    assert not (scratch / "run" / "report").exists()
    whole, torn = (scratch / "run" / "results.jsonl").read_text().split("\n")
    assert json.loads(whole)["record"] and torn          # the disk filled mid-line
    r = CliRunner().invoke(cli, SWEEP)
    assert r.exit_code == 0, r.output
    lines = (scratch / "run" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3 and lines[0] == whole          # resumed: the cut line was dropped
    assert all(json.loads(line)["record"] for line in lines)


def test_json_output_on_a_full_disk_keeps_the_earlier_file(scratch, monkeypatch):
    (scratch / "env.json").write_text('{"earlier": true}')
    before = snapshot(scratch)
    with monkeypatch.context() as mp:
        full_disk(mp, scratch, budget=100)
        r = CliRunner().invoke(cli, ["info", "--json", "env.json"])
    assert "--json" in error_line(r, 2) and "No space left" in error_line(r, 2)
    assert snapshot(scratch) == before


def test_real_ctrl_c_during_the_study(scratch):
    """SIGINT to the real process while it computes: exit 130, one line, no folder appears.
    stderr is a terminal (a pty) so that the progress bar shows when the work has begun (a
    non-terminal gets none); after Ctrl-C the bar is erased and the error line stands alone."""
    import pty
    import re
    import signal

    before = snapshot(scratch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")])}
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lstmcheck.cli", "report", "--out", "fresh",
                             "--seq-len", "3000"], cwd=scratch, env=env,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        while b"running study" not in seen:    # the work has begun
            seen += os.read(master, 4096)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:                    # EIO: the child's end is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        proc.kill()    # only if something above failed: the process has ended otherwise
        os.close(master)
    assert proc.returncode == 130, seen
    assert out == b""
    after_bar = seen.decode().split("\033[K")[-1]          # what follows the erased bar
    lines = re.sub(r"\033\[[?0-9;]*[A-Za-z]", "", after_bar).replace("\r", "").splitlines()
    assert lines == ["lstmcheck: error: interrupted; nothing half-written was left behind."]
    assert snapshot(scratch) == before


def test_ctrl_c_while_the_replaced_report_is_deleted(scratch, monkeypatch):
    """Ctrl-C after the new report is in place, while the old one is being deleted: exit 130,
    the new report complete, and no hidden leftover of the old one."""
    small_study(monkeypatch, scratch)
    real, calls = shutil.rmtree, []

    def rmtree(path, *a, **k):
        calls.append(path)
        # the replaced report: at the temporary name after the exchange (.rep.old-* where the
        # two-rename fallback runs)
        if os.path.basename(os.fspath(path)).startswith(".rep.") and len(calls) == 1:
            real(os.path.join(path, "figures"))     # half deleted when Ctrl-C arrives
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(atomic.shutil, "rmtree", rmtree)
    r = CliRunner().invoke(cli, ["report", "--out", "rep", "--force", *TINY])
    assert "interrupted" in error_line(r, 130) and calls
    assert json.loads((scratch / "rep" / "results.json").read_text())["meta"]["seed"] == 0
    assert (scratch / "rep" / "index.html").is_file()
    assert not [p for p in scratch.iterdir() if p.name.startswith(".")]
