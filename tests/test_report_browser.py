"""index.html in a real headless browser: the page renders and every figure loads from disk."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
