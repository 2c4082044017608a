"""Per-packet replay results to Parquet: one writer for ``pipeline replay`` and ``pipeline batch``.

``pipeline replay`` writes every architecture into one file with an ``arch`` column; ``pipeline
batch`` writes one file per architecture into a hive partition (``arch=...``), without the column.
Both go through :class:`PacketResultsWriter`, so the two layouts have the same columns, types and
encoding.

The replay engine's kernels write each chunk's cycle/completion/dropped arrays straight into a
recycled block of this writer (:meth:`PacketResultsWriter.out_buffers`; cycles as float32: 7
significant digits are plenty for one packet's cycles); a sink call without a block (a caller with
its own arrays) copies them into one. Opening files, building the Arrow tables (from numpy buffers:
``pa.array()`` would import pandas) and encoding happen on the writer thread (pyarrow releases the
GIL while encoding). The queue and the blocks are bounded, so memory stays bounded.

Encoding, chosen by measurement (8M rows x 14 columns, ../shared/perf-notes.md): required (non-null)
columns, pages of up to 8 MiB, dictionary encoding only for arch/direction/guest, DELTA_BINARY_PACKED
for the int64 time/index columns, LZ4 only for the cycle columns, min/max statistics only for
packet_index and ts_ns. That was ~0.4 s of one core and ~76 MB for 4 x 2M packets, against ~1.2 s and
57 MB with zstd, dictionary tries, definition levels and statistics on every column.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.models.components import COMPONENTS, DIRECTIONS

if TYPE_CHECKING:
    from pipeline.store.parquet import AtomicParquetWriter

#: ParquetWriter options (module docstring); ``use_dictionary`` loses ``arch`` when there is no such column.
WRITER_OPTIONS: dict[str, Any] = {
    "use_dictionary": ["arch", "direction", "guest"],
    "write_statistics": ["packet_index", "ts_ns"],
    "column_encoding": {c: "DELTA_BINARY_PACKED" for c in ("packet_index", "ts_ns", "completion_ns")},
    "data_page_size": 8 << 20,
}
#: already compact (delta- or dictionary/RLE-encoded): LZ4 would cost ~15 % of the writer's time for
#: ~20 % of the file size; every other column is LZ4
UNCOMPRESSED = ("arch", "packet_index", "ts_ns", "direction", "guest", "completion_ns", "dropped")
#: chunks queued for the writer thread at most
QUEUE_CHUNKS = 8


def packet_schema(guest_names: list[str], *, arch_column: bool = True):
    """The per-packet results schema (``arch`` first unless ``arch_column`` is False)."""
    import pyarrow as pa

    # no column has nulls: required fields spare the writer the definition levels (~10 % of its time)
    fields = [pa.field("arch", pa.dictionary(pa.int8(), pa.string()), nullable=False)] if arch_column else []
    fields += [
        pa.field("packet_index", pa.int64(), nullable=False),
        pa.field("ts_ns", pa.int64(), nullable=False),
        pa.field("direction", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("guest", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    ]
    fields += [pa.field(f"cycles_{c}", pa.float32(), nullable=False) for c in COMPONENTS]
    fields += [pa.field("completion_ns", pa.int64(), nullable=False), pa.field("dropped", pa.bool_(), nullable=False)]
    return pa.schema(fields)


class _Block:
    """One chunk's per-packet arrays of one architecture (float32 cycles, completion, dropped): the
    engine's kernel writes into them directly (:meth:`PacketResultsWriter.out_buffers`), or the sink
    copies the engine's reused arrays into them."""

    def __init__(self, n: int) -> None:
        self.cap = n
        self.cycles = np.empty((len(COMPONENTS), n), np.float32)
        self.completion = np.empty(n, np.int64)
        self.dropped = np.empty(n, np.bool_)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views for n packets (the engine's output-buffer interface)."""
        return self.cycles[:, :n], self.completion[:n], self.dropped[:n]


class PacketResultsWriter:
    """A ``packet_sink`` for :func:`pipeline.replay.run_replay` that writes Parquet atomically.

    ``path_for(arch)`` names the file of an architecture (the same path for all: one file with an
    ``arch`` column; ``arch_column=False``: one file per architecture). ``translate`` (optional) maps
    the engine's packet indices to (guest index, packet index) arrays, for merged guest groups.
    Call :meth:`open` with the guest names before the first packet (``on_mapping``), then
    :meth:`close` to commit (or discard) every file.
    """

    cycles_dtype = np.float32  # asks the engine for float32 cycles: no conversion in the sink

    def __init__(self, path_for: Callable[[str], Path], archs: list[str], *, arch_column: bool = True,
                 translate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        self.path_for = path_for
        self.archs = list(archs)
        self.arch_column = arch_column
        self.translate = translate
        self.guest_names: list[str] | None = None
        self.writers: dict[Path, AtomicParquetWriter] = {}
        self.paths: dict[str, Path] = {}
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        # blocks, recycled once written (fresh multi-megabyte arrays per chunk cost page faults); at
        # most max(QUEUE_CHUNKS + 2, 2 x archs + 1) of them: queued, being written, being filled
        # (see out_buffers)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._n_blocks = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="packets-writer", daemon=True)
        self.thread.start()

    def open(self, guest_names: list[str]) -> None:
        """Set the guest names (the dictionary of the ``guest`` column); the files open on first write."""
        self.guest_names = list(guest_names)
        self.queue.put(("open", self.guest_names))

    # -- writer thread ----------------------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if item[0] == "open":
                try:
                    self._prepare(item[1])
                except BaseException as e:  # surfaced in the next call or in close()
                    self.error = e
                continue
            block = item[-1]
            try:
                if self.error is None:
                    arch = self.archs[item[0]]
                    table = self._table(*item)
                    self._writer(arch).write(table)
                    del table  # the table's arrays are views of block: drop them before reuse
            except BaseException as e:  # surfaced in the next call or in close()
                self.error = e
            finally:
                self._free.put(block)

    def _prepare(self, guest_names: list[str]) -> None:
        self.schema = packet_schema(guest_names, arch_column=self.arch_column)
        self._dicts = (arrow_strings(self.archs), arrow_strings(list(DIRECTIONS)), arrow_strings(guest_names))
        self._compression = {n: ("none" if n in UNCOMPRESSED else "lz4") for n in self.schema.names}
        self._options = dict(WRITER_OPTIONS)
        self._options["use_dictionary"] = [c for c in WRITER_OPTIONS["use_dictionary"] if c in self.schema.names]

    def _writer(self, arch: str) -> AtomicParquetWriter:
        path = self.paths.get(arch)
        if path is None:
            path = self.paths[arch] = Path(self.path_for(arch))
        w = self.writers.get(path)
        if w is None:
            from pipeline.store.parquet import AtomicParquetWriter  # pyarrow: imported on this thread

            w = self.writers[path] = AtomicParquetWriter(path, self.schema, compression=self._compression,
                                                          **self._options)
        return w

    def _table(self, arch_idx: int, index, ts_ns, direction, guest, n: int, block: _Block):
        """The Arrow table of one chunk; its cycle/completion/dropped arrays are views of ``block``."""
        import pyarrow as pa

        archs, dirs, guests = self._dicts
        arrays = [pa.DictionaryArray.from_arrays(arrow_array(np.full(n, arch_idx, np.int8), pa.int8()), archs)] \
            if self.arch_column else []
        arrays += [
            arrow_array(index, pa.int64()), arrow_array(ts_ns, pa.int64()),
            pa.DictionaryArray.from_arrays(arrow_array(direction.astype(np.int8, copy=False), pa.int8()), dirs),
            pa.DictionaryArray.from_arrays(arrow_array(guest.astype(np.int32, copy=False), pa.int32()), guests),
        ]
        arrays += [arrow_array(block.cycles[c, :n], pa.float32()) for c in range(block.cycles.shape[0])]
        arrays += [arrow_array(block.completion[:n], pa.int64()), arrow_array(block.dropped[:n], pa.bool_())]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    # -- engine thread ----------------------------------------------------------------------------
    def out_buffers(self, n: int) -> _Block:
        """A free block for n packets, for the engine's kernel to write one architecture's chunk into
        (then passed back as ``out`` to :meth:`__call__`: no copy). Waits for the writer thread when
        every block is in use: that is the backpressure bounding memory."""
        # the engine holds one chunk's blocks in its kernels while it hands the previous chunk's
        # to this sink: at least two chunks' worth, or it would wait on itself
        limit = max(QUEUE_CHUNKS + 2, 2 * len(self.archs) + 1)
        try:
            block = self._free.get_nowait()
        except queue.Empty:
            if self._n_blocks < limit:
                self._n_blocks += 1
                return _Block(n)
            block = self._free.get()
        return block if block.cap >= n else _Block(n)

    def __call__(self, arch: str, cols: dict[str, np.ndarray], out: _Block | None = None) -> None:
        """Queue one architecture's chunk for writing. ``out``: the block (from :meth:`out_buffers`)
        the engine's kernel wrote cols' cycles/completion/dropped into; without it those arrays (the
        engine's reused ones) are copied into a block first."""
        n = len(cols["packet_index"])
        if self.error is not None:
            if out is not None:
                self._free.put(out)
            raise self.error
        if n == 0:
            if out is not None:
                self._free.put(out)
            return
        if self.translate is not None:
            guest, index = self.translate(cols["packet_index"])
        else:  # the chunk's own arrays: never modified by the engine
            guest, index = cols["guest"], cols["packet_index"]
        block = out
        if block is None:  # the engine's reused buffers are copied (float32) into a block
            block = self.out_buffers(n)
            for ci, c in enumerate(COMPONENTS):
                np.copyto(block.cycles[ci, :n], cols[f"cycles_{c}"], casting="same_kind")
            np.copyto(block.completion[:n], cols["completion_ns"])
            np.copyto(block.dropped[:n], cols["dropped"])
        self.queue.put((self.archs.index(arch), index, cols["ts_ns"], cols["direction"], guest, n, block))

    def close(self, metadata_for: Callable[[str], dict[str, Any]] | None, commit: bool) -> dict[str, Path]:
        """Commit every file with ``metadata_for(arch)`` (the first architecture's, for a shared file)
        or discard them all; returns arch -> path of the files committed. A writer error is re-raised
        when committing (when discarding, the caller is already handling a failure)."""
        self.queue.put(None)
        self.thread.join()
        ok = commit and self.error is None
        first_arch = {}
        for arch, path in self.paths.items():
            first_arch.setdefault(path, arch)
        for path, w in self.writers.items():
            if ok:
                if metadata_for is not None:
                    w.add_metadata(metadata_for(first_arch[path]))
                w.commit()
            else:
                w.discard()
        if self.error is not None and commit:
            raise self.error
        return dict(self.paths) if ok else {}


# pyarrow's pa.array() imports pandas (~0.2 s) to check for pandas objects; the outputs are built
# from numpy buffers instead, so a `pipeline replay` process never imports pandas.

def arrow_array(values: np.ndarray, typ) -> Any:
    """A pyarrow array of type ``typ`` over the numpy array ``values`` (zero-copy but for bools,
    which Arrow stores as bits)."""
    import pyarrow as pa

    if typ == pa.bool_():
        return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(np.packbits(values, bitorder="little"))])
    values = np.ascontiguousarray(values, dtype=_NUMPY_OF_ARROW[str(typ)])
    return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])


_NUMPY_OF_ARROW = {"int8": np.int8, "int32": np.int32, "int64": np.int64, "float": np.float32, "double": np.float64}


def arrow_strings(strings: list[str], large: bool = False) -> Any:
    """A pyarrow (large_)string array of ``strings``."""
    import pyarrow as pa

    encoded = [s.encode() for s in strings]
    offsets = np.zeros(len(encoded) + 1, np.int64 if large else np.int32)
    offsets[1:] = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    typ = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(typ, len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def rows_table(rows: list[dict[str, Any]]) -> Any:
    """Summary rows (dicts with the same keys) as the Arrow table pandas would make of them
    (large_string, int64, double columns), without importing pandas."""
    import pyarrow as pa

    names = list(rows[0])
    arrays = []
    for name in names:
        values = [r[name] for r in rows]
        if all(isinstance(v, str) for v in values):
            arrays.append(arrow_strings(values, large=True))
        elif all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            arrays.append(arrow_array(np.array(values, np.int64), pa.int64()))
        else:
            arrays.append(arrow_array(np.array(values, np.float64), pa.float64()))
    return pa.Table.from_arrays(arrays, names=names)
