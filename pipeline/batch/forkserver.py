"""The fork server local batch workers are forked from: started first thing, stopped at the end.

A light module (no numpy, numba or pipeline imports), so ``pipeline batch`` can start the fork
server before its own heavy imports: the server's imports and numba warm-up
(:mod:`pipeline.batch.worker_preload`, ~0.5 s) then run on another core while this process imports,
locks, discovers and plans. Workers forked from it start with every kernel loaded.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os

#: The module the fork server imports once (imports and numba warm-up for every worker it forks).
PRELOAD = ["pipeline.batch.worker_preload"]
#: Set in the fork server's environment only: importing PRELOAD there warms up.
ENV_FLAG = "PIPELINE_FORKSERVER"


def start_forkserver() -> multiprocessing.context.BaseContext:
    """The fork server context, its server started now if it is not running (idempotent).

    Its environment adds :data:`ENV_FLAG` and, unless set, ``OPENBLAS_NUM_THREADS=1`` (as the CLI
    does for itself, but the server starts before the CLI's imports): a worker does no linear
    algebra, and OpenBLAS's own thread per core otherwise spins beside the pinned worker after the
    few small numpy products a replay makes (1.3 % of a batch's CPU samples under ``perf``)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    from multiprocessing import forkserver

    server_env = {ENV_FLAG: "1", "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    old = {k: os.environ.get(k) for k in server_env}
    os.environ.update(server_env)  # the fork server inherits this environment
    try:
        forkserver.ensure_running()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return ctx


def stop_forkserver() -> None:
    """Stop the fork server and reap it, so its workers' CPU time counts as this process's children's
    (``time``, ``wait4``) and nothing outlives the batch. The next local batch starts a new one."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        with contextlib.suppress(Exception):
            stop()


def prestart(argv: list[str]) -> None:
    """Start the fork server at once when ``argv`` (the command line after the program name) is a
    local ``pipeline batch`` run: called before the CLI's own imports (~0.05 s of typer and rich),
    so the server's warm-up starts that much earlier. Anything else (another command, ``--help``,
    a Dask scheduler) starts nothing; the batch command itself starts the server if this did not.
    A batch command line that fails before :func:`pipeline.batch.run_batch` (a usage error) does not
    stop the server: it finishes its warm-up and exits by itself once it sees this process gone
    (stopping it, which waits for the server to exit, would hold the exit until the warm-up is done)."""
    if (argv[:1] == ["batch"] and not any(a in ("--help", "--scheduler") or a.startswith("--scheduler=")
                                          for a in argv)
            and not os.environ.get("DASK_SCHEDULER_ADDRESS")):
        start_forkserver()
