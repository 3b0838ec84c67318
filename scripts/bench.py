#!/usr/bin/env python
"""lstmcheck benchmarks: every figure is a ratio measured in this one run (against PyTorch where it
is installed, against this machine's own GEMM throughput always).

    python scripts/bench.py                 # all sections
    python scripts/bench.py models check    # chosen sections
    python scripts/bench.py --quick         # a smoke run in seconds
    python scripts/bench.py --json out.json
    python scripts/bench.py --load          # each section twice: as the machine is, then beside
                                            # one busy process per CPU (--load N: N of them)
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SECTIONS = ["models", "check", "blas", "probes", "sweep", "gpu"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sections", nargs="*", default=SECTIONS, help=f"any of {', '.join(SECTIONS)}")
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--load", nargs="?", type=int, const=os.cpu_count(), default=None,
                    metavar="N", help="also run every section beside N busy processes "
                                      "(default: one per CPU)")
    args = ap.parse_args(argv)

    from benchmarks import common
    from benchmarks.load import competing_load, describe
    print(f"# lstmcheck bench on {platform.machine()}: {describe()}; Python "
          f"{platform.python_version()}")
    all_rows = []
    passes = [0] + ([args.load] if args.load else [])
    for n_busy in passes:
        with competing_load(n_busy):
            common._GEMM_CACHE.clear()              # the throughput the ratios use, this pass
            label = f"beside {n_busy} busy processes" if n_busy else "as the machine is"
            print(f"\n# pass: {label} ({describe()}); numpy GEMM: "
                  f"{common.gemm_gflops('float64'):.1f} GFLOP/s float64, "
                  f"{common.gemm_gflops('float32'):.1f} GFLOP/s float32")
            for name in args.sections:
                try:
                    mod = importlib.import_module(f"benchmarks.{name}")
                except ModuleNotFoundError as exc:
                    print(f"\n## {name}: not available ({exc})")
                    continue
                print(f"\n## {name} ({label})")
                rows = mod.run(quick=args.quick)
                for r in rows:
                    ratio = "" if r.get("ratio") is None else f"{r['ratio']:8.3f}"
                    print(f"{r['name']:<62} {r['seconds']:9.4f}s {ratio:>9}  {r.get('note', '')}",
                          flush=True)
                    all_rows.append({"section": name, "busy_processes": n_busy, **r})
    if args.json:
        from lstmcheck.jsonio import write
        write(args.json, all_rows, indent=1)


if __name__ == "__main__":
    main()
