"""Nothing lost: --force replaces only what lstmcheck wrote, and no kill or Ctrl-C at any moment of
the folder swap loses the earlier report, the new one, or leaves a temporary folder behind for
good.

Signals are real (SIGKILL and SIGINT sent to a real `lstmcheck` process) and deterministic: the
environment variable LSTMCHECK_TEST_FAULT makes the writer stop at a named stage of the swap
(``stage=wait:PATH``: it creates PATH.reached and waits for PATH) while the test signals it.
``no-exchange`` forces the two-rename fallback that runs where renameat2 is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import lstmcheck as lc
from lstmcheck import LstmcheckError
from lstmcheck.cli import cli
from lstmcheck.report import OutputError, atomic, write_report
from lstmcheck.report.atomic import MARKER, RefusedFolder
from test_cli_errors import REPO, TINY, error_line, small_study, snapshot
from test_report_writer import small_report

EXCHANGE = atomic._libc_renameat2() is not None
MODES = [pytest.param("", id="exchange", marks=pytest.mark.skipif(
             not EXCHANGE, reason="no renameat2 here: only the fallback runs")),
         pytest.param("no-exchange,", id="two-renames")]

# `lstmcheck` itself, with the default study swapped for a one-figure report titled $TITLE, so a
# real process writes a real report in a second or two.
DRIVER = textwrap.dedent('''
    import os, sys
    from lstmcheck import cli, studies
    from lstmcheck.report import Report, style

    def tiny(progress=None, **kw):
        rep = Report(os.environ["TITLE"])
        rep.add_row("check", "fine", "pass")
        fig, (ax,) = style.new_figure(width=2, height=1.5)
        ax.plot([0, 1], [1, 0])
        rep.add_figure("line", "A line.", fig)
        return rep

    studies.default_study = tiny
    sys.argv[0] = "lstmcheck"
    cli.main()
''')


def env(**extra):
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def temps(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A folder holding an earlier report (rep/) written by lstmcheck; the driver beside it."""
    folder = tmp_path / "w"
    folder.mkdir()
    write_report(small_report("earlier"), folder / "rep", formats=("png",))
    (tmp_path / "drive.py").write_text(DRIVER)
    monkeypatch.chdir(folder)
    return folder


def start(work: Path, args, title="newer", **extra):
    return subprocess.Popen([sys.executable, str(work.parent / "drive.py"), *args], cwd=work,
                            env=env(TITLE=title, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc) -> None:
    """Until the writer reached its stage (no timing is asserted: the loop only bounds a hang)."""
    for _ in range(3000):
        if path.exists():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


REPORT = ["report", "--out", "rep", "--force", "--quiet"]


# ------------------------------------------------------------------------------- the cases
def test_report_force_refuses_a_folder_with_an_index_html(tmp_path):
    """mkdir site; echo hi > site/index.html; echo x > site/notes.txt; lstmcheck report --out site
    --force: exit 2, one line, site/ byte-identical (the real entry point)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hi\n")
    (site / "notes.txt").write_text("x\n")
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "lstmcheck", "report", "--out", "site",
                           "--force"], cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcheck: error: "), proc.stderr
    assert str(site) in lines[0] and "not an lstmcheck report" in lines[0]
    assert snapshot(tmp_path) == before


def test_vectors_export_force_refuses_a_foreign_manifest(tmp_path):
    webapp = tmp_path / "webapp"
    webapp.mkdir()
    (webapp / "manifest.json").write_text('{"name": "My App", "start_url": "/"}\n')
    (webapp / "app.js").write_text("console.log(1)\n")
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "lstmcheck", "vectors", "export", "webapp",
                           "--force"], cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcheck: error: "), proc.stderr
    assert str(webapp) in lines[0] and "not a vectors suite" in lines[0]
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------- foreign folders
def _foreign(kind):
    def index_html(p):
        (p / "index.html").write_text("hi")

    def results_json(p):
        (p / "results.json").write_text("{}")

    def manifest(p):
        (p / "manifest.json").write_text('{"format": "lstmcheck-vectors"}')

    def pre_marker_report(p):       # what lstmcheck wrote before the marker: indistinguishable
        (p / "figures").mkdir()
        (p / "index.html").write_text("<p>old</p>")
        (p / "results.json").write_text('{"meta": {}}')
        (p / "summary.md").write_text("old")

    def other_kind(p):
        atomic.write_marker(p, "vectors" if kind == "report" else "report")

    def unknown_kind(p):
        (p / MARKER).write_text('{"kind": "thesis"}')

    def garbage_marker(p):
        (p / MARKER).write_text("not json")

    def marker_without_kind(p):
        (p / MARKER).write_text('{"version": "0.1.0"}')

    def marker_is_a_folder(p):
        (p / MARKER).mkdir()
        (p / MARKER / "x").write_text("x")

    def hidden_file_only(p):
        (p / ".config").write_text("mine")

    return [index_html, results_json, manifest, pre_marker_report, other_kind, unknown_kind,
            garbage_marker, marker_without_kind, marker_is_a_folder, hidden_file_only]


def _write(kind, out, force=True):
    if kind == "report":
        return write_report(small_report("new"), out, force=force, formats=("png",))
    return lc.vectors.export(out, cells=("rnn",), force=force)


@pytest.mark.parametrize("kind", ["report", "vectors"])
@pytest.mark.parametrize("case", range(len(_foreign("report"))),
                         ids=[f.__name__ for f in _foreign("report")])
def test_force_replaces_only_what_lstmcheck_wrote(tmp_path, kind, case):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _foreign(kind)[case](out)
    before = snapshot(tmp_path)
    with pytest.raises(RefusedFolder) as err:
        _write(kind, out)
    assert isinstance(err.value, (OutputError, LstmcheckError)) and str(out) in str(err.value)
    assert "refusing to replace it" in str(err.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["report", "vectors"])
def test_links_and_files_are_never_replaced(tmp_path, kind):
    real = tmp_path / "real"
    _write(kind, real)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    (tmp_path / "file").write_text("data")
    before = snapshot(tmp_path)
    for name, what in (("link", "symbolic link"), ("file", "a file")):
        with pytest.raises(RefusedFolder, match=what):
            _write(kind, tmp_path / name)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["report", "vectors"])
def test_force_replaces_its_own_kind_and_empty_folders(tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    _write(kind, out)                                    # an empty folder may be replaced
    assert json.loads((out / MARKER).read_text())["kind"] == kind
    (out / "stray.txt").write_text("added later")        # still lstmcheck's folder
    _write(kind, out)
    assert not (out / "stray.txt").exists()
    with pytest.raises(RefusedFolder, match="already exists"):
        _write(kind, out, force=False)
    assert temps(tmp_path) == []


def test_committed_gallery_stays_replaceable(tmp_path):
    """scripts/make_gallery.py rewrites reports/default with force: it holds the marker; the
    same folder without it would be refused."""
    gallery = REPO / "reports" / "default"
    assert atomic.read_marker(gallery)["kind"] == "report"
    assert atomic.check_destination(gallery, force=True) == gallery
    copy = tmp_path / "default"
    shutil.copytree(gallery, copy)
    (copy / MARKER).unlink()
    with pytest.raises(RefusedFolder, match="no .lstmcheck marker"):
        atomic.check_destination(copy, force=True)


# ------------------------------------------------------------------------------- real signals
def _earlier(work):
    return snapshot(work / "rep")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stage", ["swap", "between", "delete"])
def test_sigkill_at_each_stage_of_the_swap_loses_nothing(work, tmp_path, mode, stage):
    earlier = _earlier(work)
    go = tmp_path / "go"
    proc = start(work, REPORT, LSTMCHECK_TEST_FAULT=f"{mode}{stage}=wait:{go}")
    wait_for(Path(f"{go}.reached"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # right after the kill: the earlier report intact, at rep/ or (moved aside) beside it
    kept = [p for p in [work / "rep", *work.iterdir()] if p.is_dir() and snapshot(p) == earlier]
    assert kept, temps(work)
    new = [p for p in work.iterdir() if p.is_dir() and "newer" in
           ((p / "index.html").read_text() if (p / "index.html").exists() else "")]
    swapped = stage != "swap" and not (mode and stage == "between")
    if swapped:
        assert new == [work / "rep"]                    # the new report is already in place
        expected = snapshot(work / "rep")
    else:
        expected = earlier
    # the next run against rep/ recovers: without --force it refuses, and leaves rep/ whole
    r = CliRunner().invoke(cli, ["report", "--out", "rep"])
    assert "already exists" in error_line(r, 2)
    assert temps(work) == []
    assert snapshot(work / "rep") == expected


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stage", ["swap", "between"])
def test_real_sigint_during_the_swap(work, tmp_path, mode, stage):
    """Before the swap Ctrl-C keeps the earlier report; once the swap has begun it is finished
    first (SIGINT is held back for its system calls), and the message says which happened."""
    earlier = _earlier(work)
    go = tmp_path / "go"
    proc = start(work, REPORT, LSTMCHECK_TEST_FAULT=f"{mode}{stage}=wait:{go}")
    wait_for(Path(f"{go}.reached"), proc)
    proc.send_signal(signal.SIGINT)
    go.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]   # click echoes an empty line first
    assert len(lines) == 1 and lines[0].startswith("lstmcheck: error: interrupted"), err
    assert temps(work) == []
    if stage == "swap":
        assert lines[0] == "lstmcheck: error: interrupted; nothing half-written was left behind."
        assert snapshot(work / "rep") == earlier
    else:
        assert lines[0] == (f"lstmcheck: error: interrupted after {work / 'rep'} was written in "
                            f"full; nothing half-written was left behind.")
        assert "newer" in (work / "rep" / "index.html").read_text()
        assert (work / "rep" / "figures" / "line.png").is_file()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("exc, action", [(KeyboardInterrupt, "interrupt"), (SystemExit, "exit")])
def test_exceptions_between_the_renames_put_the_old_folder_back(work, monkeypatch, mode, exc,
                                                                action):
    earlier = _earlier(work)
    monkeypatch.setenv(atomic.FAULT_ENV, f"{mode}between={action}")
    with pytest.raises(exc):
        write_report(small_report("newer"), work / "rep", force=True, formats=("png",))
    assert snapshot(work / "rep") == earlier and temps(work) == []
    monkeypatch.delenv(atomic.FAULT_ENV)
    lc.vectors.export(work / "suite", cells=("rnn",), seed=1)
    suite = snapshot(work / "suite")
    monkeypatch.setenv(atomic.FAULT_ENV, f"{mode}between={action}")
    with pytest.raises(exc):
        lc.vectors.export(work / "suite", cells=("rnn",), seed=2)
    assert snapshot(work / "suite") == suite and temps(work) == []


@pytest.mark.parametrize("mode", MODES)
def test_vectors_export_killed_between_the_renames_recovers(work, tmp_path, mode):
    lc.vectors.export(work / "suite", cells=("rnn",), seed=1)
    earlier = snapshot(work / "suite")
    go = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-m", "lstmcheck", "vectors", "export", "suite",
                             "--force", "--cell", "rnn", "--quiet"], cwd=work,
                            env=env(LSTMCHECK_TEST_FAULT=f"{mode}between=wait:{go}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(Path(f"{go}.reached"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert any(snapshot(p) == earlier for p in work.iterdir() if p.is_dir())
    r = CliRunner().invoke(cli, ["vectors", "export", "suite"])   # recovers, then refuses
    assert "already exists" in error_line(r, 2)
    assert temps(work) == []
    if mode:      # killed with the old suite moved aside: it is back
        assert snapshot(work / "suite") == earlier
    assert lc.vectors.load_manifest(work / "suite")["cases"]


def test_ctrl_c_message_names_a_temporary_folder_it_could_not_remove(work, monkeypatch):
    """A second Ctrl-C while the unfinished folder is deleted: the message must not claim that
    nothing was left behind."""
    small_study(monkeypatch, work)

    def rmtree(path, *a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:    # the faults end with the command, the chdir does not
        mp.setenv(atomic.FAULT_ENV, "swap=interrupt")
        mp.setattr(atomic.shutil, "rmtree", rmtree)
        r = CliRunner().invoke(cli, ["report", "--out", "rep", "--force", *TINY])
    line = error_line(r, 130)
    left = temps(work)
    assert len(left) == 1 and str(work / left[0]) in line and "left behind" in line, line
    assert "nothing half-written" not in line
    r = CliRunner().invoke(cli, ["report", "--out", "rep", "--force", *TINY])   # a later run
    assert r.exit_code == 0, r.output                   # in this same, live process: kept
    assert temps(work) == left


# ------------------------------------------------------------------------------- leftovers
def test_stale_temporary_folders_are_removed_and_live_or_foreign_ones_kept(work):
    dead, live = dead_pid(), os.getppid()

    def made(name, marker=True, files=()):
        p = work / name
        p.mkdir()
        if marker:
            atomic.write_marker(p, "report")
        for f in files:
            (p / f).write_text("data")
        return p

    made(f".rep.partial-{dead}-aaaa", files=["index.html"])     # a killed run's: removed
    made(f".rep.partial-{dead}-bbbb", marker=False)             # killed before its marker
    made(f".rep.old-{dead}-cccc", files=["index.html"])         # rep/ exists: a replaced one
    kept = [made(f".rep.partial-{live}-dddd"),                  # a live concurrent run's
            made(f".rep.partial-{dead}-eeee", marker=False, files=["mine.txt"]),  # unproven
            made(f".rep.partial-x{dead}-ffff"),                # not our naming
            made(f".rep.old-{dead}-gggg", files=["i"], marker=False),
            made(f".other.partial-{dead}-hhhh")]                # another destination's
    (work / f".vectors.partial-{dead}-iiii").mkdir()           # a suite's: another kind's name
    kept.append(work / f".vectors.partial-{dead}-iiii")
    before = {p.name: snapshot(p) for p in kept}
    write_report(small_report("newer"), work / "rep", force=True, formats=("png",))
    assert {p.name for p in work.iterdir() if p.name.startswith(".")} == set(before)
    assert {p.name: snapshot(p) for p in kept} == before


def test_a_moved_aside_report_is_put_back_when_its_folder_is_missing(work):
    dead = dead_pid()
    earlier = _earlier(work)
    older = work / f".rep.old-{dead}-aaaa"
    shutil.copytree(work / "rep", older)
    (older / "index.html").write_text("older still")
    os.utime(older, (1, 1))
    os.rename(work / "rep", work / f".rep.old-{dead}-bbbb")     # killed between the renames
    with pytest.raises(RefusedFolder, match="already exists"):  # recovered, then refused
        write_report(small_report("newer"), work / "rep", formats=("png",))
    assert snapshot(work / "rep") == earlier and temps(work) == []


# ------------------------------------------------------------------------------- permissions
CAPSH = shutil.which("capsh")


@pytest.mark.skipif(os.geteuid() != 0 or CAPSH is None, reason="needs root and capsh")
def test_read_only_parent_without_roots_override(work):
    """A real read-only folder: the process runs with CAP_DAC_OVERRIDE and CAP_FOWNER dropped,
    so root obeys the permission bits."""
    parent = work / "ro"
    parent.mkdir()
    write_report(small_report("earlier"), parent / "rep", formats=("png",))
    before = snapshot(work)
    parent.chmod(0o555)
    try:
        cmd = f"exec {sys.executable} -m lstmcheck report --out ro/rep --force"
        proc = subprocess.run([CAPSH, "--drop=cap_dac_override,cap_dac_read_search,cap_fowner",
                               "--", "-c", cmd], cwd=work, env=env(), capture_output=True,
                              text=True, timeout=300)
    finally:
        parent.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "not writable" in lines[0] and str(parent) in lines[0]
    assert snapshot(work) == before


@pytest.mark.parametrize("mode", MODES)
def test_permission_denied_at_the_swap_keeps_the_earlier_report(work, monkeypatch, mode):
    """The check passed, but the rename itself is refused (a folder made read-only meanwhile)."""
    earlier = _earlier(work)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as mp:
        mp.setenv(atomic.FAULT_ENV, mode)
        mp.setattr(atomic, "_renameat2", denied if not mode else lambda *a: False)
        mp.setattr(atomic.os, "rename", denied)
        with pytest.raises(OutputError, match="Permission denied; the earlier report there is "
                                              "unchanged"):
            write_report(small_report("newer"), work / "rep", force=True, formats=("png",))
    assert snapshot(work / "rep") == earlier and temps(work) == []


# ------------------------------------------------------------------------------- concurrency
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("second_force", [True, False])
def test_two_runs_to_the_same_folder(work, tmp_path, mode, second_force):
    """Run A stops just before its swap; run B writes the same folder meanwhile (and leaves A's
    temporary folder alone: A is alive). Then A goes on: with --force it replaces B's report,
    without it it refuses. Either way rep/ is one whole report and no temporary is left."""
    go = tmp_path / "go"
    a_args = ["report", "--out", "rep", "--quiet"] + (["--force"] if second_force else [])
    shutil.rmtree(work / "rep")           # A starts on a new folder; B then creates it
    a = start(work, a_args, title="run A", LSTMCHECK_TEST_FAULT=f"{mode}swap=wait:{go}")
    wait_for(Path(f"{go}.reached"), a)
    b = start(work, ["report", "--out", "rep", "--quiet"], title="run B",
              LSTMCHECK_TEST_FAULT=mode.rstrip(","))
    b_out, b_err = b.communicate(timeout=300)
    assert b.returncode == 0, b_err
    assert len(temps(work)) == 1                         # A's, alive, left alone by B
    go.touch()
    a_out, a_err = a.communicate(timeout=300)
    if second_force:
        assert a.returncode == 0, a_err
        winner = "run A"
    else:
        assert a.returncode == 2
        assert len(a_err.splitlines()) == 1 and "already exists" in a_err
        winner = "run B"
    assert winner in (work / "rep" / "index.html").read_text()
    names = sorted(str(p.relative_to(work / "rep")) for p in (work / "rep").rglob("*"))
    assert names == [MARKER, "figures", "figures/line.csv", "figures/line.pdf", "figures/line.png",
                     "figures/line.svg", "index.html", "results.json", "summary.md"]
    assert temps(work) == []
