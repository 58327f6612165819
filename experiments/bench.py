"""Timing and result files shared by the benchmark scripts."""

import json
import time
from pathlib import Path

from experiments.provenance import machine_info


def median_ms(fn, repeats, warmup=True):
    """Median wall time of ``fn()`` over ``repeats`` calls, in milliseconds (after one untimed call if ``warmup``)."""
    if warmup:
        fn()  # first call: allocations, and the operator cache where there is one
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1e3 * times[len(times) // 2]


def write_json(path, rows, **settings):
    """Write ``rows`` with the machine and the settings they were measured with; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine_info(),
               "settings": settings, "rows": rows}
    path.write_text(json.dumps(payload, indent=2))
    return path
