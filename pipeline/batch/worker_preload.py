"""What the batch's fork server imports once, so every local worker starts ready to replay.

The fork server (``multiprocessing`` "forkserver" context, see :mod:`pipeline.batch.runner`) imports
this module before it forks any worker. With ``PIPELINE_FORKSERVER=1`` in its environment
(:func:`pipeline.batch.forkserver.start_forkserver` sets it for the fork server only), importing it also:

- imports what a worker needs (:mod:`pipeline.batch.task`, the replay engine and its kernels,
  ``pyarrow.parquet``; not pandas, which a worker never needs) and warms up: a tiny synthetic
  capture replayed through every default architecture into Parquet files in a scratch directory,
  so numba's start-up (~0.1 s), the loading (or, on a cold cache, the compiling) of every kernel
  signature a replay uses and the writer's first-use costs happen once, in the fork server; workers
  forked from it inherit all that instead of paying ~0.2 s each on their first trace;
- keeps the garbage collector off while it imports and warms up (its collections found nothing and
  cost ~0.035 s of the fork server's ~0.29 s), then freezes what is loaded (``gc.freeze``): a
  worker's collections never walk those objects, nor write to (and so copy) the pages they share
  with the fork server;
- makes the fork server's own exit skip interpreter teardown (``os._exit`` at exit; it has no
  files to flush), which the coordinator otherwise waits ~0.1 s for.

A failure here is swallowed: the workers then load their kernels themselves. Forking after the
warm-up is safe: it leaves no thread running (the replay joins its threads) and uses no numba
threading layer (no ``parallel=True`` kernel).
"""

from __future__ import annotations

import atexit
import gc
import os
import struct
import tempfile
from pathlib import Path

from pipeline.batch.forkserver import ENV_FLAG


def tiny_pcap(path: Path, n: int = 96) -> None:
    """A small Ethernet/IPv4/TCP capture, both directions between 10.0.0.1 and 10.0.0.2."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(n):
        tx = i % 3 == 0
        src, dst = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02") if tx else (b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x01")
        payload = 0 if tx else 1448
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40 + payload, i, 0, 64, 6, 0, src, dst)
        tcp = struct.pack(">HHIIBBHHH", 5201 if not tx else 40000 + i % 4, 40000 + i % 4 if not tx else 5201,
                          i, 0, 0x50, 0x10, 65535, 0, 0)
        eth = (b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01") if tx else \
              (b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02")
        frame = eth + b"\x08\x00" + ip + tcp
        out.append(struct.pack("<IIII", 1, 20 * i, len(frame), len(frame) + payload) + frame)
    path.write_bytes(b"".join(out))


def warm_up() -> None:
    """Import what a worker needs, load (or compile) every kernel signature a batch replay uses and
    pay the first-use costs of the Parquet writer: a tiny capture replayed with two guests and the
    saturation search into per-architecture Parquet files in a scratch directory. (Without the
    writer, a worker's first trace took ~0.05 s longer than the next; without the saturation
    search, ~0.07 s.)"""
    import pyarrow.parquet  # noqa: F401

    import pipeline.batch.manifest  # noqa: F401
    import pipeline.batch.task  # noqa: F401
    import pipeline.store.packets  # noqa: F401
    import pipeline.store.parquet  # noqa: F401
    from pipeline.replay import ReplayConfig, run_replay
    from pipeline.store.packets import PacketResultsWriter

    cfg = ReplayConfig(hosts=["10.0.0.1"], n_guests=2)
    with tempfile.TemporaryDirectory(prefix="pipeline-warm-") as d:
        p = Path(d) / "warm.pcap"
        tiny_pcap(p)
        w = PacketResultsWriter(lambda arch: Path(d) / f"{arch}.parquet", list(cfg.archs), arch_column=False)
        run_replay(p, cfg, packet_sink=w, on_mapping=lambda m: w.open(list(m.guest_names)))
        w.close(lambda arch: {"warm": True}, commit=True)


def _prepare_fork_server() -> None:
    gc.disable()  # the imports allocate ~10^5 long-lived objects: collections then find nothing
    try:
        warm_up()
    except Exception:  # noqa: BLE001, S110 - workers then load their kernels themselves
        pass
    finally:
        gc.freeze()  # what is loaded now lives as long as the process: its workers' collections skip it
        gc.enable()
    atexit.register(os._exit, 0)


if os.environ.get(ENV_FLAG) == "1":
    _prepare_fork_server()
