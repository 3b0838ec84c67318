#!/usr/bin/env python
"""Regenerate the committed gallery in reports/: the default `lstmcheck report` study.

    python scripts/make_gallery.py            # writes reports/default/

Deterministic: every draw is seeded and the figures carry no dates, so rerunning on the same
versions of lstmcheck, NumPy and matplotlib rewrites identical files. To keep the repository
small the gallery has PNG figures only (`lstmcheck report` also writes SVG).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstmcheck import __version__, studies  # noqa: E402
from lstmcheck.report import write_report  # noqa: E402

GALLERY = ROOT / "reports" / "default"


def main() -> int:
    report = studies.default_study()
    meta = {"command": "lstmcheck report (scripts/make_gallery.py)", "lstmcheck": __version__,
            "seed": 0, "dtype": "float64", "backend": "numpy"}
    path = write_report(report, GALLERY, force=True, meta=meta, formats=("png",))
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"gallery written to {path} ({size / 1024:.0f} KiB); all checks "
          f"{'passed' if report.passed else 'did NOT pass'}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
