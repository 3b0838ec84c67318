"""The default study end to end (`lstmcheck report` on defaults, run once), and report pages in a
real headless browser: the page renders and every figure loads from disk."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from click.testing import CliRunner

from lstmcheck import studies
from lstmcheck.cli import cli
from lstmcheck.report import Report, write_report
from lstmcheck.report.style import new_figure

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--virtual-time-budget=10000", "--dump-dom"]

# Appended to a copy of index.html in the same folder, so relative paths resolve as in the
# original: after load it writes [src, complete, naturalWidth] of every <img> into the DOM.
PROBE = """<script>
window.addEventListener('load', function () {
  var rows = Array.prototype.map.call(document.images, function (i) {
    return [i.getAttribute('src'), i.complete, i.naturalWidth]; });
  var pre = document.createElement('pre'); pre.id = 'lstmcheck-probe';
  pre.textContent = JSON.stringify(rows); document.body.appendChild(pre); });
</script></body>"""

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


def render(folder: Path, tmp_path: Path, extra_html: str = ""):
    """(DOM text, [(src, complete, naturalWidth)]) of folder/index.html as Chromium loads it."""
    html = (folder / "index.html").read_text()
    assert "</body>" in html
    probe_page = folder / "browser-probe.html"
    probe_page.write_text(html.replace("</body>", extra_html + PROBE))
    try:
        proc = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                               probe_page.as_uri()], capture_output=True, text=True, timeout=60)
    finally:
        probe_page.unlink()
    m = re.search(r'<pre id="lstmcheck-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"Chromium did not render the page: {proc.stderr[-2000:]}"
    return proc.stdout, json.loads(m.group(1).replace("&quot;", '"'))


def assert_report_renders(folder: Path, tmp_path: Path):
    """Every figure of the report loads (nonzero natural width); the summary table is there."""
    dom, images = render(folder, tmp_path)
    summary = json.loads((folder / "results.json").read_text())["summary"]
    assert "<table>" in dom and "Summary" in dom
    for row in summary["rows"]:
        assert row["check"].replace("&", "&amp;").replace("<", "&lt;") in dom
    assert [src for src, _, _ in images] == [f["png"] for f in summary["figures"]]
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert not broken, f"images that did not load: {broken}"
    return images


@needs_chromium
def test_small_report_renders_and_a_missing_image_is_detected(tmp_path):
    rep = Report("browser test")
    rep.add_row("a check & more", "1e-12", "pass")
    for name in ("one", "two"):
        fig, (ax,) = new_figure(width=3, height=2)
        ax.plot([0, 1], [0, 1])
        rep.add_figure(name, f"figure {name}", fig)
    out = write_report(rep, tmp_path / "r")
    images = assert_report_renders(out, tmp_path)
    assert len(images) == 2
    # The probe can fail: an image that is not there has natural width 0.
    _, images = render(out, tmp_path, '<img src="figures/missing.png" alt="control">')
    assert images[-1][0] == "figures/missing.png" and images[-1][2] == 0
    # The page keeps working once the folder is moved: nothing points outside it.
    moved = shutil.move(str(out), str(tmp_path / "moved"))
    assert_report_renders(Path(moved), tmp_path)


# ----------------------------------------------------------------------------- the default report
EXPECTED_FIGURES = ["gradcheck_errors", "gradcheck_heatmap", "gradient_flow", "jacobian_spectrum",
                    "lyapunov", "horizon", "gate_saturation", "gate_values", "time_constants",
                    "phase_diagram", "timescales"]


@pytest.fixture(scope="module")
def default_report(tmp_path_factory):
    """`lstmcheck report` exactly as the README's first command runs it (once per module)."""
    out = tmp_path_factory.mktemp("default") / "lstmcheck-report"
    r = CliRunner().invoke(cli, ["report", "--out", str(out)])
    return r, out


def test_default_report_is_complete(default_report):
    r, out = default_report
    assert r.exit_code == 0, r.output
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {".lstmcheck", "index.html", "results.json", "summary.md"} | {
        f"figures/{n}.{e}" for n in EXPECTED_FIGURES for e in ("png", "svg", "pdf", "csv")}
    data = json.loads((out / "results.json").read_text())
    summary = data["summary"]
    assert summary["passed"] and [f["name"] for f in summary["figures"]] == EXPECTED_FIGURES
    assert all(f["caption"] and "\n" not in f["caption"] for f in summary["figures"])
    # the oracle's self-check ran every cell and variant with two methods, and passed
    checks = data["results"]["gradcheck"]
    assert len(checks) == 2 * len(studies.self_check_cases()) and all(c["report"]["passed"] for c in checks)
    assert [row["status"] for row in summary["rows"][:2]] == ["pass", "pass"]
    # the numbers behind the figures are there, for every model of the study
    from lstmcheck.models import registry
    labels = {registry.display_name(c) for c in registry.names()} | {"LSTM chrono"}
    for key in ("gradient_norms", "jacobian_spectrum", "lyapunov_spectrum", "gate_statistics"):
        assert set(data["results"][key]) == labels, key
    flow = data["results"]["gradient_norms"]
    # what the study is about: chrono initialisation keeps gradients alive far longer
    assert flow["LSTM chrono"]["decay_rate"] < 0.2 * flow["LSTM"]["decay_rate"]
    # the header reproduces the run: the full command line with every option, and the setup
    meta = data["meta"]
    assert meta["command"].startswith("lstmcheck report --out ") and "--seed 0" in meta["command"]
    assert "--dtype float64" in meta["command"] and "--backend numpy" in meta["command"]
    assert {"lstmcheck", "dtype", "backend", "seed", "options"} <= set(meta)
    phase = data["results"]["phase"]["records"]
    assert len(phase) == len(registry.names()) * len(studies.PHASE_RADII) and \
        not any(p["error"] for p in phase)
    md = (out / "summary.md").read_text()
    assert "All checks passed" in md and "figures/phase_diagram.png" in md


@needs_chromium
def test_default_report_renders_in_browser(default_report, tmp_path):
    r, out = default_report
    assert r.exit_code == 0
    images = assert_report_renders(out, tmp_path)
    assert len(images) == len(EXPECTED_FIGURES)
