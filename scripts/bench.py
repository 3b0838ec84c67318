#!/usr/bin/env python
"""lstmcheck benchmarks: every figure is a ratio measured in this one run (against PyTorch where it
is installed, against this machine's own GEMM throughput always).

    python scripts/bench.py                 # all sections
    python scripts/bench.py models check    # chosen sections
    python scripts/bench.py --quick         # a smoke run in seconds
    python scripts/bench.py --json out.json
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SECTIONS = ["models", "check", "probes", "sweep", "gpu"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sections", nargs="*", default=SECTIONS, help=f"any of {', '.join(SECTIONS)}")
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)

    from benchmarks.common import gemm_gflops
    print(f"# lstmcheck bench on {platform.machine()} with {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; numpy GEMM: {gemm_gflops('float64'):.1f} GFLOP/s float64, "
          f"{gemm_gflops('float32'):.1f} GFLOP/s float32")
    all_rows = []
    for name in args.sections:
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"\n## {name}: not available ({exc})")
            continue
        print(f"\n## {name}")
        rows = mod.run(quick=args.quick)
        for r in rows:
            ratio = "" if r.get("ratio") is None else f"{r['ratio']:8.3f}"
            print(f"{r['name']:<62} {r['seconds']:9.4f}s {ratio:>9}  {r.get('note', '')}")
            all_rows.append({"section": name, **r})
    if args.json:
        from lstmcheck.jsonio import write
        write(args.json, all_rows, indent=1)


if __name__ == "__main__":
    main()
