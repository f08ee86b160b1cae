"""Processes that start together: fresh interpreters (not forks of the test process, whose
connection pools run threads), each waiting on one barrier until all are ready, each putting one
result on a queue."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any


def run_together(target: Callable[..., None], each: Sequence[tuple], timeout: float) -> list[Any]:
    """`target(*args, ready, out)` in one process per `args` of `each`; the results, in the order
    they arrived. `target` must be importable (a module-level function)."""
    ctx = multiprocessing.get_context("spawn")
    out, ready = ctx.Queue(), ctx.Barrier(len(each))
    procs = [ctx.Process(target=target, args=(*args, ready, out)) for args in each]
    for p in procs:
        p.start()
    results = [out.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return results
