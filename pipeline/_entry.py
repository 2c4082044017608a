"""The ``pipeline`` command's entry point (console script and ``python -m pipeline``).

Kept apart from :mod:`pipeline.cli` so that what must happen before the CLI's imports can:

- a local ``pipeline batch`` starts its fork server first (:func:`pipeline.batch.forkserver.prestart`),
  so the server's imports and warm-up run on another core while this process imports;
- start-up allocates ~10^5 long-lived objects (typer, rich, numpy, numba): collections during the
  imports cost ~0.05 s and find nothing, so the collector is off while importing, and what was
  imported is then frozen so that later collections do not walk it.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    if sys.argv[1:2] == ["batch"]:  # (importing multiprocessing costs other commands ~0.01 s)
        from pipeline.batch.forkserver import prestart

        prestart(sys.argv[1:])
    gc.disable()
    from pipeline.cli import main as cli_main

    gc.freeze()
    gc.enable()
    cli_main()
