"""A competing load: busy processes beside the benchmark, as other users of a shared machine are.

Each process spins in pure Python (no BLAS, no memory traffic to speak of): it takes a core's
time slices from whatever lstmcheck or PyTorch runs, which is what makes idle BLAS workers spin
and lose. Started before a pass and killed after it, whatever happens in between.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time


def cpu_model() -> str:
    """The CPU's name with its family/model/stepping and flags digest (the kernel cache's
    identity of it: two machines of one name can differ)."""
    from lstmcheck.models.kernels import _cpu_identity
    return _cpu_identity().strip() or "unknown CPU"


def describe() -> str:
    try:
        load = "load average %.2f" % os.getloadavg()[0]
    except OSError:
        load = "load average unknown"
    return f"{cpu_model()}, {os.cpu_count()} CPUs, {load}"


@contextlib.contextmanager
def competing_load(n: int):
    """``n`` busy processes for the duration of the block (0: none)."""
    # each spinner also stops when its parent is gone (a bench killed by a signal skips finally)
    spin = f"import os\nwhile os.getppid() == {os.getpid()}: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)          # let the scheduler see them
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
