"""``run_sweep``: every point of a grid through an executor, each record appended to the results
file as it finishes, finished points resumed."""
from __future__ import annotations

from .. import jsonio
from .. import validate as V
from .executors import make_executor
from .grid import expand_grid
from .measures import measure_name
from .points import run_point
from .results import ResultsFile, _NoFile, check_out, point_key


@V.keywords
def run_sweep(grid, measure="gradient_flow", *, executor=None, workers=None, scheduler=None,
              out=None, resume=True, progress=None, connect_timeout=5.0) -> list[dict]:
    """Run ``measure`` at every point of ``grid``; one record per point, in grid order.

    measure: a name in :data:`MEASURES`, a callable ``f(study) -> dict`` (module-level, so that
        worker processes can import it), or a list of these (their fields are merged).
    executor: 'inprocess' | 'process' | 'dask'; by default Dask when ``scheduler`` is given, a
        local process pool when ``workers > 1``, else in-process. With executor='dask' and no
        scheduler a LocalCluster of ``workers`` processes is started and closed.
    scheduler: address of a running Dask scheduler, 'tcp://HOST:PORT'; unreachable within
        ``connect_timeout`` seconds -> BackendError.
    out: folder of the append-only results file; with ``resume`` its finished points are reused.
    progress: ``f(done, total)`` called as points finish (resumed points count as done).

    Every random draw of a point comes from its seed, so the records are the same on every
    executor and in any order of completion.
    """
    points = expand_grid(grid)
    name = measure_name(measure)
    if out is not None:
        check_out(out)          # a file, or a path under one, before any work
    ex = make_executor(executor, workers=workers, scheduler=scheduler,
                       connect_timeout=connect_timeout)   # bad options fail before any work
    keys = [point_key(p, name) for p in points]
    records: dict = {}
    results = ResultsFile(out) if out is not None else None
    if results is not None and resume:
        done = results.load()
        records = {k: done[k] for k in keys if k in done}
    todo = [i for i, k in enumerate(keys) if k not in records]
    # Equal points (e.g. a repeated value) are computed once.
    first, copies = {}, {}
    for i in todo:
        first.setdefault(keys[i], i)
        copies[keys[i]] = copies.get(keys[i], 0) + 1
    jobs = list(first.values())
    total = len(points)
    finished = total - len(todo)
    if progress is not None:
        progress(finished, total)
    if jobs:
        with ex, (results if results is not None else _NoFile()) as sink:
            for j, rec in ex.imap(run_point, [(measure, points[i]) for i in jobs]):
                rec = jsonio.loads(jsonio.dumps(rec))   # exactly what a resumed run reads back
                k = keys[jobs[j]]
                sink.append(k, rec)
                records[k] = rec
                finished += copies[k]
                if progress is not None:
                    progress(finished, total)
    return [dict(records[k]) for k in keys]
