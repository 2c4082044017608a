"""Byte sources: open a capture file, undo gzip/zstd compression, hash the raw bytes.

A :class:`ByteSource` hands out the (decompressed) byte stream through ``readinto`` into a caller's
buffer, so memory stays bounded by that buffer whatever the file size: plain files are read block
by block (no mmap, no whole-file reads), gzip (magic ``1f 8b``) through :mod:`gzip`, zstd (magic
``28 b5 2f fd``) through ``zstandard``'s streaming decompressor; both are recognised by magic, not
by file name.

The SHA-256 (only when asked for: ``ByteSource(path, sha256=True)``) is of the raw file bytes as
stored (compressed bytes for a compressed file), computed while streaming. It is opt-in because it
is provenance, not ingest: SHA-256 runs at ~2.1 GB/s here, so hashing a 204 MB file costs 0.1 s of
CPU, about as much as framing and decoding it (tests/benchmarks/bench_ingest.py). For plain files
the hash of each block runs in a helper thread (hashlib releases the GIL) while the numba kernels
frame and decode the same block; :meth:`ByteSource.sync` waits for it and must be called before
the caller overwrites the buffer.

A damaged compressed stream (bad gzip CRC, cut zstd frame) ends the stream early: ``readinto``
returns 0 from there and ``stream_error`` says what happened, so the reader can keep the packets
before it and report a truncated trace. Limitation: python-zstandard's stream reader ends a cut
zstd frame silently, so a cut zstd file shows up only as a cut final record (which the reader
reports), not as a stream error; gzip reports a cut stream itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import TraceError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _HashingRaw(io.RawIOBase):
    """Raw file wrapper that feeds every byte read into a hash (for compressed inputs)."""

    def __init__(self, f: BinaryIO, h) -> None:
        self._f = f
        self._h = h

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            self._h.update(memoryview(b)[:n])
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._h.update(data)
        return data

    def tell(self) -> int:
        return self._f.tell()


class ByteSource:
    """The decompressed byte stream of one capture file.

    Attributes: ``path``, ``file_size`` (bytes on disk), ``compression`` (None, "gzip", "zstd").
    """

    def __init__(self, path: str | os.PathLike, *, sha256: bool = False) -> None:
        self.path = Path(path)
        p = self.path
        try:
            if p.is_dir():
                raise TraceError(p, "is a directory, not a capture file")
            self._file = open(p, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise TraceError(p, "no such file") from None
        except PermissionError:
            raise TraceError(p, "cannot be read (permission denied)") from None
        except IsADirectoryError:
            raise TraceError(p, "is a directory, not a capture file") from None
        except OSError as e:
            raise TraceError(p, f"cannot be opened ({e.strerror or e})") from None
        try:
            self.file_size = os.fstat(self._file.fileno()).st_size
            head = self._file.read(4)
            self._file.seek(0)
        except OSError as e:
            self._file.close()
            raise TraceError(p, f"cannot be read ({e.strerror or e})") from None
        self._hash = hashlib.sha256() if sha256 else None
        self._hash_thread: threading.Thread | None = None
        self._stream: BinaryIO | None = None
        self.stream_error: str | None = None
        self.bytes_out = 0  # decompressed bytes handed out so far
        if head[:2] == GZIP_MAGIC:
            self.compression: str | None = "gzip"
            self._stream = gzip.GzipFile(fileobj=io.BufferedReader(self._raw_for_stream(),
                                                                   buffer_size=1 << 20), mode="rb")
        elif head[:4] == ZSTD_MAGIC:
            import zstandard
            self.compression = "zstd"
            dctx = zstandard.ZstdDecompressor()
            self._stream = dctx.stream_reader(self._raw_for_stream(), read_size=1 << 20,
                                              read_across_frames=True)
        else:
            self.compression = None

    def _raw_for_stream(self) -> BinaryIO:
        """The raw file for a decompressor, hashing what it reads when a hash was asked for."""
        return _HashingRaw(self._file, self._hash) if self._hash is not None else self._file

    # -- reading ---------------------------------------------------------------------------------
    def raw_position(self) -> int:
        """Bytes of the file on disk consumed so far (for progress)."""
        try:
            return self._file.tell()
        except (OSError, ValueError):
            return self.file_size

    def readinto(self, mv: memoryview) -> int:
        """Fill ``mv`` as far as the stream allows; return bytes written (0 only at end of stream)."""
        total = 0
        while total < len(mv):
            if self.compression is None:
                try:
                    n = self._file.readinto(mv[total:])
                except OSError as e:
                    raise TraceError(self.path, f"read failed ({e.strerror or e})",
                                     offset=self.bytes_out + total) from None
                if not n:
                    break
                self._hash_async(mv[total:total + n])
            else:
                if self._stream is None:  # ended early by damage
                    break
                try:
                    n = self._stream.readinto(mv[total:])
                except Exception as e:  # noqa: BLE001 - gzip/zlib/zstandard errors share no base class
                    self.stream_error = (f"{self.compression} stream damaged after "
                                         f"{self.bytes_out + total} decompressed bytes "
                                         f"({type(e).__name__}: {' '.join(str(e).split())})")
                    self._stream = None
                    break
                if not n:
                    break
            total += n
        self.bytes_out += total
        return total

    def _hash_async(self, mv: memoryview) -> None:
        if self._hash is None:
            return
        self.sync()
        if len(mv) < (1 << 20):
            self._hash.update(mv)
            return
        t = threading.Thread(target=self._hash.update, args=(mv,), daemon=True)
        t.start()
        self._hash_thread = t

    def sync(self) -> None:
        """Wait for background hashing of the last block (call before overwriting the buffer)."""
        t = self._hash_thread
        if t is not None:
            t.join()
            self._hash_thread = None

    def finish_hash(self) -> str | None:
        """SHA-256 hex digest of the whole raw file (None when no hash was asked for): every raw
        byte read so far is already hashed (plain reads, or ``_HashingRaw`` under a decompressor),
        so only the rest is read here (bytes the framing never needed: damage, or data after a
        compressed stream's end)."""
        if self._hash is None:
            return None
        self.sync()
        while chunk := self._file.read(8 << 20):
            self._hash.update(chunk)
        return self._hash.hexdigest()

    def close(self) -> None:
        self.sync()
        try:
            if self._stream is not None:
                self._stream.close()
        except Exception:  # noqa: BLE001 - closing a damaged decompressor must not mask results
            pass
        self._file.close()

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, streamed (hashlib releases the GIL: fine in threads)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_in_background(path: str | os.PathLike) -> Future:
    """Start hashing ``path`` on a daemon thread now; the Future gives :func:`file_sha256`'s digest
    (or its OSError). ``pipeline replay`` starts it before its own imports (~0.35 s on one core),
    so the 0.1 s of SHA-256 for a 204 MB capture runs on the otherwise idle core instead of beside
    the replay's kernels; the reader then reads without hashing."""
    fut: Future = Future()

    def run() -> None:
        try:
            fut.set_result(file_sha256(path))
        except BaseException as e:  # noqa: BLE001 - handed to whoever asks for the result
            fut.set_exception(e)

    threading.Thread(target=run, name="sha256", daemon=True).start()
    return fut
