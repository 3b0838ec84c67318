"""index.html: one self-contained page (inline CSS, no scripts, no network) that opens from disk.
Figures are referenced by relative paths, so the folder can be moved or zipped as a whole."""
from __future__ import annotations

from html import escape

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1000px;
margin:2em auto;padding:0 1em;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} .meta{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:1em 0;width:100%}
th,td{border:1px solid #ccc;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.status{font-weight:600;white-space:nowrap}
td.pass{color:#006d2c} td.fail{color:#b2182b} td.inconclusive{color:#8a5a00} td.info{color:#555}
.verdict{font-size:1.1em;font-weight:600;padding:.4em .7em;border-radius:4px;display:inline-block}
.verdict.pass{background:#e5f5e0;color:#006d2c} .verdict.fail{background:#fde0dd;color:#b2182b}
.verdict.inconclusive,.verdict.warn{background:#fff3d6;color:#8a5a00}
.verdict.info{background:#eeeeee;color:#333333}
figure{margin:2em 0;border-top:1px solid #e5e5e5;padding-top:1em}
figure img{max-width:100%;height:auto;display:block}
figcaption{margin-top:.4em} figcaption a{font-size:.85em;color:#555}
"""

_MARK = {"pass": "✓ pass", "fail": "✗ FAIL", "inconclusive": "? INCONCLUSIVE", "info": "·"}
_VERDICT_CLASS = {"passed": "pass", "failed": "fail", "inconclusive": "inconclusive",
                  "no checks": "info"}


def render_html(report, meta: dict | None = None, formats=("png", "svg")) -> str:
    """The page for a :class:`~lstmcheck.report.document.Report` (summary table first)."""
    e = escape
    verdict = _VERDICT_CLASS[report.verdict]
    if report.warnings and verdict in ("pass", "info"):
        verdict = "warn"           # something went wrong outside the checks: not green
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(report.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{e(report.title)}</h1>",
    ]
    if meta:
        parts.append('<p class="meta">' + " · ".join(f"{e(str(k))}: {e(str(v))}"
                                                      for k, v in meta.items()) + "</p>")
    parts.append(f'<p class="verdict {verdict}">{e(report.headline)}</p>')
    parts += ["<h2>Summary</h2>", "<table>",
              "<thead><tr><th>Check</th><th>Result</th><th>Status</th></tr></thead>", "<tbody>"]
    for r in report.rows:
        parts.append(f"<tr><td>{e(r.check)}</td><td>{e(r.result)}</td>"
                     f'<td class="status {r.status}">{_MARK[r.status]}</td></tr>')
    parts += ["</tbody>", "</table>"]
    parts += [f"<p>{e(n)}</p>" for n in report.notes]
    if report.figures:
        parts.append("<h2>Figures</h2>")
    for i, f in enumerate(report.figures, 1):
        files = {ext: f"figures/{f.name}.{ext}" for ext in formats}
        big = files.get("svg", files["png"])   # the click-through: vector when there is one
        links = " ".join(f'<a href="{e(path)}">[{ext.upper()}]</a>'
                         for ext, path in {**files, "csv": f"figures/{f.name}.csv"}.items())
        parts.append(
            f'<figure id="{e(f.name)}"><a href="{e(big)}"><img src="{e(files["png"])}" '
            f'alt="{e(f.caption)}"></a><figcaption><b>Figure {i}.</b> {e(f.caption)} {links}'
            f"</figcaption></figure>")
    parts += ['<p class="meta">Numbers behind every figure: <a href="results.json">results.json</a>'
              ' · plain-text summary: <a href="summary.md">summary.md</a></p>', "</body>", "</html>"]
    return "\n".join(parts) + "\n"
