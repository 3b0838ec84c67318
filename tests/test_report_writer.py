"""Atomic report folders: complete or absent, never half-written, earlier reports kept."""
import json
import os

import numpy as np
import pytest

from lstmcheck import LstmcheckError
from lstmcheck.report import OutputError, Report, atomic_folder, to_jsonable, write_report
from lstmcheck.report.style import new_figure


def small_report(title="t", status="pass"):
    rep = Report(title)
    rep.add_row("check one", "max error 1e-12", status)
    fig, (ax,) = new_figure(width=3, height=2)
    ax.plot([0, 1, 2], [1, 10, 100])
    ax.set_xlabel("lag (steps)")
    rep.add_figure("line", "A line | with a pipe.", fig)
    rep.results["values"] = np.arange(3.0)
    return rep


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_report_folder_is_complete(tmp_path):
    out = write_report(small_report(), tmp_path / "r", meta={"seed": 0})
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == [".lstmcheck", "figures/line.csv", "figures/line.pdf", "figures/line.png",
                     "figures/line.svg", "index.html", "results.json", "summary.md"]
    # the CSV holds what the figure draws: the line's points, read back from the figure
    assert (out / "figures/line.csv").read_text().splitlines() == [
        "panel,series,x,y", "panel 1,line 1,0,1", "panel 1,line 1,1,10", "panel 1,line 1,2,100"]
    assert (out / "figures/line.pdf").read_bytes().startswith(b"%PDF")
    from PIL import Image
    assert round(Image.open(out / "figures/line.png").info["dpi"][0]) == 300
    assert json.loads((out / ".lstmcheck").read_text())["kind"] == "report"   # replaceable
    data = json.loads((out / "results.json").read_text())
    assert data["results"]["values"] == [0.0, 1.0, 2.0]
    assert data["summary"]["passed"] is True and data["meta"] == {"seed": 0}
    html = (out / "index.html").read_text()
    assert html.index("<table>") < html.index("<img")          # summary table first
    assert 'src="figures/line.png"' in html and "http" not in html  # relative, offline
    assert "A line \\| with a pipe." in (out / "summary.md").read_text()
    assert leftovers(tmp_path) == []


def test_refuses_existing_folder_and_keeps_it(tmp_path):
    out = write_report(small_report("first"), tmp_path / "r")
    with pytest.raises(OutputError, match="already exists"):
        write_report(small_report("second"), out)
    assert "first" in (out / "index.html").read_text()
    write_report(small_report("second"), out, force=True)
    assert "second" in (out / "index.html").read_text()
    assert leftovers(tmp_path) == []


def test_force_never_deletes_a_folder_that_is_not_a_report(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(OutputError, match="not an lstmcheck report"):
        write_report(small_report(), precious, force=True)
    assert (precious / "thesis.tex").read_text() == "x"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interruption_leaves_nothing_and_keeps_earlier_report(tmp_path, exc):
    out = write_report(small_report("earlier"), tmp_path / "r")
    with pytest.raises(exc):
        with atomic_folder(out, force=True) as tmp:
            (tmp / "index.html").write_text("half")
            raise exc()
    assert "earlier" in (out / "index.html").read_text()
    assert leftovers(tmp_path) == []
    with pytest.raises(exc):
        with atomic_folder(tmp_path / "new") as tmp:
            raise exc()
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_unwritable_destinations(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(OutputError, match="not a folder"):
        write_report(small_report(), afile / "r")
    with pytest.raises(OutputError, match="does not exist"):
        write_report(small_report(), tmp_path / "missing" / "r")
    assert isinstance(OutputError("x"), LstmcheckError)


def test_not_writable_parent(tmp_path, monkeypatch):
    # Root may write anywhere, so simulate the permission check failing.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        write_report(small_report(), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_json_conversion():
    data = {"a": np.float32(1.5), "b": np.array([[1, 2]]), "c": float("nan"), "d": (1, np.int64(2)),
            "e": np.dtype("float32"), "f": 1 + 2j}
    assert to_jsonable(data) == {"a": 1.5, "b": [[1, 2]], "c": None, "d": [1, 2], "e": "float32",
                                 "f": {"real": 1.0, "imag": 2.0}}


def test_failed_row_fails_report(tmp_path):
    rep = small_report(status="fail")
    assert not rep.passed
    out = write_report(rep, tmp_path / "r")
    assert "FAILED" in (out / "index.html").read_text()
    with pytest.raises(ValueError):
        rep.add_figure("line", "duplicate", None)
    with pytest.raises(ValueError):
        rep.add_row("x", "y", "maybe")
