"""The library API behind the CLI: each command is one function here, usable from Python.

The CLI (:mod:`pipeline.cli`) only parses options, calls these and prints; everything a script
needs (results as dicts / DataFrames, files written atomically) is available without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import OptionError
from pipeline.ingest import open_trace
from pipeline.ingest.stats import TraceStats

if TYPE_CHECKING:  # pandas-heavy: imported lazily so `pipeline inspect` starts fast
    from pipeline.replay import ReplayConfig, ReplayResult

ProgressFn = Callable[[int, int], None]


def inspect_trace(path: str | os.PathLike, *, top: int = 10, progress: ProgressFn | None = None,
                  chunk_packets: int = 1 << 20) -> dict[str, Any]:
    """A capinfos-like summary of one capture, as a JSON-safe dict.

    Keys include ``packets``, ``wire_bytes``, ``captured_bytes``, ``first_ts_ns``, ``last_ts_ns``
    (earliest and latest timestamp), ``link_types``, ``format``, ``truncated``, ``warnings``, plus
    container details (byte order, timestamp resolution, snaplen, interfaces), L3/L4 counts,
    distinct hosts, the top flows by wire bytes, and whether timestamps are in order.
    """
    stats = TraceStats()
    with open_trace(path, chunk_packets=chunk_packets, progress=progress) as reader:
        for chunk in reader:
            stats.add(chunk)
        info = reader.info.to_dict()
    summary = stats.to_dict(top=top)
    out: dict[str, Any] = {"path": str(path)}
    out.update(info)
    out.update(summary)
    out["link_types"] = info.get("linktypes", [])
    out["truncated"] = bool(info.get("truncated", False))
    out["warnings"] = list(info.get("warnings", []))
    return out


# --- replay --------------------------------------------------------------------------------------

#: Files a replay writes into its output directory.
SUMMARY_FILE = "summary.parquet"
PACKETS_FILE = "packets.parquet"


def _packet_schema(guest_names: list[str]):
    import pyarrow as pa

    from pipeline.models.components import COMPONENTS

    # no column has nulls: required fields spare the writer the definition levels (~10 % of its time)
    fields = [
        pa.field("arch", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("packet_index", pa.int64(), nullable=False),
        pa.field("ts_ns", pa.int64(), nullable=False),
        pa.field("direction", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("guest", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    ]
    fields += [pa.field(f"cycles_{c}", pa.float32(), nullable=False) for c in COMPONENTS]
    fields += [pa.field("completion_ns", pa.int64(), nullable=False), pa.field("dropped", pa.bool_(), nullable=False)]
    return pa.schema(fields)


class _PacketWriter:
    """Per-packet results into one Parquet file, encoded on a background thread.

    The replay engine reuses its cycle/completion/dropped arrays for the next chunk, so the sink call
    (engine thread) only copies those into a recycled block (cycles as float32, which the kernel
    writes directly: 7 significant digits are plenty for one packet's cycles); opening the file,
    building the Arrow table (from numpy buffers: pa.array() would import pandas) and encoding
    happen on the writer thread (pyarrow releases the GIL while encoding). The queue and the blocks
    are bounded, so memory stays bounded.

    Encoding, chosen by measurement (8M rows x 14 columns, ../shared/perf-notes.md): required
    (non-null) columns, pages of up to 8 MiB, dictionary encoding only for arch/direction/guest,
    DELTA_BINARY_PACKED for the int64 time/index columns, LZ4 only for the cycle columns, min/max
    statistics only for packet_index and ts_ns. That is ~0.4 s of one core and ~76 MB for 4 x 2M
    packets, against ~1.2 s and 57 MB with zstd, dictionary tries, definition levels and statistics
    on every column (float statistics, definition levels and dictionary hashing were most of it).
    """

    #: ParquetWriter options (see the class docstring); columns not named in UNCOMPRESSED are LZ4
    WRITER_OPTIONS: dict[str, Any] = {
        "use_dictionary": ["arch", "direction", "guest"],
        "write_statistics": ["packet_index", "ts_ns"],
        "column_encoding": {c: "DELTA_BINARY_PACKED" for c in ("packet_index", "ts_ns", "completion_ns")},
        "data_page_size": 8 << 20,
    }
    #: already compact (delta- or dictionary/RLE-encoded): LZ4 would cost ~15 % of the writer's time
    #: for ~20 % of the file size
    UNCOMPRESSED = ("arch", "packet_index", "ts_ns", "direction", "guest", "completion_ns", "dropped")

    def __init__(self, path, archs: list[str]) -> None:
        import queue
        import threading

        self.path = path
        self.archs = archs
        self.writer = None
        self.guest_names: list[str] | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=self.QUEUE_CHUNKS)
        # copies of the engine's reused arrays, recycled once written: fresh multi-megabyte arrays per
        # chunk cost page faults; QUEUE_CHUNKS + 2 of them at most (in the queue, being written, being
        # filled), so memory stays bounded
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._n_blocks = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="packets-writer", daemon=True)
        self.thread.start()

    #: chunks queued for the writer thread at most
    QUEUE_CHUNKS = 8

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if item[0] == "open":
                try:
                    self._open(item[1])
                except BaseException as e:  # surfaced in the next call or in close()
                    self.error = e
                continue
            block = item[-1]
            try:
                if self.error is None:
                    table = self._table(*item)
                    self.writer.write(table)
                    del table  # the table's arrays are views of block: drop them before reuse
            except BaseException as e:  # surfaced in the next call or in close()
                self.error = e
            finally:
                self._free.put(block)

    def open(self, guest_names: list[str]) -> None:
        """Start the file (on the writer thread: pyarrow.parquet may still be importing)."""
        self.guest_names = list(guest_names)
        self.queue.put(("open", self.guest_names))

    def _open(self, guest_names: list[str]) -> None:
        from pipeline.models.components import DIRECTIONS
        from pipeline.store import AtomicParquetWriter

        self.schema = _packet_schema(guest_names)
        self._dicts = (_arrow_strings(self.archs), _arrow_strings(list(DIRECTIONS)),
                       _arrow_strings(list(guest_names)))
        compression = {n: ("none" if n in self.UNCOMPRESSED else "lz4") for n in self.schema.names}
        self.writer = AtomicParquetWriter(self.path, self.schema, compression=compression, **self.WRITER_OPTIONS)

    def _table(self, arch_idx: int, index, ts_ns, direction, guest, n: int, block: _Block):
        """The Arrow table of one chunk (writer thread); its cycle/completion/dropped arrays are views
        of ``block``."""
        import pyarrow as pa

        archs, dirs, guests = self._dicts
        arrays = [
            pa.DictionaryArray.from_arrays(_arrow(np.full(n, arch_idx, np.int8), pa.int8()), archs),
            _arrow(index, pa.int64()), _arrow(ts_ns, pa.int64()),
            pa.DictionaryArray.from_arrays(_arrow(direction.astype(np.int8, copy=False), pa.int8()), dirs),
            pa.DictionaryArray.from_arrays(_arrow(guest.astype(np.int32, copy=False), pa.int32()), guests),
        ]
        arrays += [_arrow(block.cycles[c, :n], pa.float32()) for c in range(block.cycles.shape[0])]
        arrays += [_arrow(block.completion[:n], pa.int64()), _arrow(block.dropped[:n], pa.bool_())]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _block(self, n: int) -> _Block:
        """A free copy buffer for n packets (waits for the writer thread when all are in use)."""
        import queue

        try:
            block = self._free.get_nowait()
        except queue.Empty:
            if self._n_blocks < self.QUEUE_CHUNKS + 2:
                self._n_blocks += 1
                return _Block(n)
            block = self._free.get()
        return block if block.cap >= n else _Block(n)

    def __call__(self, arch: str, cols: dict[str, np.ndarray]) -> None:
        from pipeline.models.components import COMPONENTS

        n = len(cols["packet_index"])
        if n == 0:
            return
        if self.error is not None:
            raise self.error
        # packet_index, ts_ns, direction and guest are the chunk's own arrays (never modified by the
        # engine); the others are the engine's reused buffers: copied (float32) into a block
        block = self._block(n)
        for ci, c in enumerate(COMPONENTS):
            np.copyto(block.cycles[ci, :n], cols[f"cycles_{c}"], casting="same_kind")
        np.copyto(block.completion[:n], cols["completion_ns"])
        np.copyto(block.dropped[:n], cols["dropped"])
        self.queue.put((self.archs.index(arch), cols["packet_index"], cols["ts_ns"], cols["direction"],
                        cols["guest"], n, block))

    def close(self, metadata: dict | None, commit: bool) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.writer is not None:
            if commit and self.error is None:
                if metadata is not None:
                    self.writer.add_metadata(metadata)
                self.writer.commit()
            else:
                self.writer.discard()
        if self.error is not None:
            raise self.error


class _Block:
    """Copies of one chunk's reused per-packet arrays (float32 cycles, completion, dropped)."""

    def __init__(self, n: int) -> None:
        from pipeline.models.components import COMPONENTS

        self.cap = n
        self.cycles = np.empty((len(COMPONENTS), n), np.float32)
        self.completion = np.empty(n, np.int64)
        self.dropped = np.empty(n, np.bool_)


def _import_for_results() -> None:
    """Import the output side's heavy module (run on a background thread by :func:`replay`)."""
    try:
        import pyarrow.parquet  # noqa: F401
    except Exception:  # noqa: S110 - the main thread's own import reports any problem
        pass


# pyarrow's pa.array() imports pandas (~0.2 s) to check for pandas objects; the replay outputs are
# built from numpy buffers instead, so a `pipeline replay` process never imports pandas.

def _arrow(values: np.ndarray, typ) -> Any:
    """A pyarrow array of type ``typ`` over the numpy array ``values`` (zero-copy but for bools,
    which Arrow stores as bits)."""
    import pyarrow as pa

    if typ == pa.bool_():
        return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(np.packbits(values, bitorder="little"))])
    values = np.ascontiguousarray(values, dtype=_NUMPY_OF_ARROW[str(typ)])
    return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])


_NUMPY_OF_ARROW = {"int8": np.int8, "int32": np.int32, "int64": np.int64, "float": np.float32, "double": np.float64}


def _arrow_strings(strings: list[str], large: bool = False) -> Any:
    """A pyarrow (large_)string array of ``strings``."""
    import pyarrow as pa

    encoded = [s.encode() for s in strings]
    offsets = np.zeros(len(encoded) + 1, np.int64 if large else np.int32)
    offsets[1:] = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    typ = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(typ, len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _summary_table(rows: list[dict[str, Any]]) -> Any:
    """The summary rows as the Arrow table pandas would make of them (large_string, int64, double)."""
    import pyarrow as pa

    names = list(rows[0])
    arrays = []
    for name in names:
        values = [r[name] for r in rows]
        if all(isinstance(v, str) for v in values):
            arrays.append(_arrow_strings(values, large=True))
        elif all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            arrays.append(_arrow(np.array(values, np.int64), pa.int64()))
        else:
            arrays.append(_arrow(np.array(values, np.float64), pa.float64()))
    return pa.Table.from_arrays(arrays, names=names)


def replay(trace: str | os.PathLike, out_dir: str | os.PathLike | None, config: ReplayConfig, *,
           write_packets: bool = True, progress: Callable[[str, int], None] | None = None) -> ReplayResult:
    """Replay one capture through the configured architectures and write the results.

    Writes ``out_dir/summary.parquet`` (one row per arch x guest x direction) and, unless
    ``write_packets`` is False, ``out_dir/packets.parquet`` (one row per arch x host packet). Each
    file's schema metadata (key ``pipeline``) holds the resolved configuration, the parameters with
    provenance, the direction/guest mapping, the trace's summary and SHA-256, warnings, the tool
    version and a ``run_id`` shared by the files of one run. Files appear only complete (atomic
    rename); an interrupted run leaves the previous results, if any, untouched.
    With ``out_dir=None`` nothing is written (the result is returned only).
    """
    import threading
    import uuid

    from pipeline.replay import run_replay

    config.validate()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise OptionError(f"--out {out}: exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
    archs = list(dict.fromkeys(config.archs))
    writer = _PacketWriter(out / PACKETS_FILE, archs) if (out is not None and write_packets) else None

    def sink(arch: str, cols: dict[str, np.ndarray]) -> None:
        if writer.guest_names is None:
            writer.open(_guest_names_hint[0])
        writer(arch, cols)

    sink.cycles_dtype = np.float32  # the kernel writes float32 cycles (stored so): no conversion here

    _guest_names_hint: list[list[str]] = [[]]

    def on_mapping(m) -> None:
        _guest_names_hint[0] = list(m.guest_names)
        # pyarrow.parquet and pandas (~0.2 s of imports, needed only for the outputs) load on a
        # background thread while the kernels run; started only now, once the first chunk is
        # decoded, so that they do not hold up the start (both imports and numba's cache loading
        # need the GIL)
        threading.Thread(target=_import_for_results, name="import-results", daemon=True).start()
    ok = False
    try:
        result = run_replay(trace, config, packet_sink=sink if writer is not None else None,
                            progress=progress, on_mapping=on_mapping)
        ok = True
    finally:
        if writer is not None and not ok:
            writer.close(None, commit=False)
    run_id = uuid.uuid4().hex
    metadata = {
        "kind": "replay",
        "run_id": run_id,
        "config": result.config,
        "params": result.params,
        "mapping": result.mapping,
        "trace": result.trace,
        "trace_sha256": result.trace.get("sha256"),
        "warnings": result.warnings,
        "saturation": result.saturation,
        "guest_names": result.guest_names,
        "kernel_ns_per_packet": result.kernel_ns_per_packet,
    }
    if out is not None:

        from pipeline.store import write_table_atomic

        if writer is not None:
            writer.close(metadata, commit=True)
        write_table_atomic(_summary_table(result.summary_rows), out / SUMMARY_FILE, metadata)
    return result
