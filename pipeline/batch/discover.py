"""Find the captures under the batch's inputs, by magic bytes, and give each a stable trace id.

A file is a capture when its first bytes are a pcap magic (``a1b2c3d4`` / ``a1b23c4d``, either byte
order: micro- and nanosecond), a pcapng section header (``0a0d0d0a``), or a gzip / zstd stream whose
first decompressed bytes are one of those. File names and extensions do not matter; ``--glob``
narrows the search (matched against the path relative to the input directory, and against the
file name). Hidden files and directories (``.name``) are not searched. A file named directly on the
command line is always an input, capture or not (so a bad one is reported, not silently ignored).

Trace ids are ``<sanitised relative path>-<8 hex digits>``: readable, valid as a hive partition
value (``[a-z0-9_.-]``, no ``=`` or ``/``), unique (the hash is of the absolute path) and
stable across runs from any working directory as long as the file stays where it is.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import OptionError
from pipeline.ingest.magic import sniff_format
from pipeline.ingest.source import GZIP_MAGIC, ZSTD_MAGIC

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
_MAX_READABLE = 80  # characters of the readable part of a trace id


@dataclass(frozen=True)
class CaptureFile:
    """One input capture: where it is and what the batch calls it."""

    path: Path          # absolute (normalised; symlinks not resolved)
    rel_path: str       # relative to the input it was found under (posix), or the name for a file input
    size: int           # bytes on disk
    mtime_ns: int
    trace_id: str

    def to_dict(self) -> dict:
        return {"path": str(self.path), "rel_path": self.rel_path, "size": self.size,
                "mtime_ns": self.mtime_ns, "trace_id": self.trace_id}


def sanitise(text: str) -> str:
    """Lower-case ``text`` with every run of characters outside ``[a-z0-9_.-]`` turned into ``_``."""
    s = _UNSAFE.sub("_", text.lower()).strip("_.")
    return s or "trace"


def make_trace_id(readable: str, key: str) -> str:
    """``sanitise(readable)`` (at most 80 characters) plus ``-`` and 8 hex digits of SHA-256(key)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{sanitise(readable)[-_MAX_READABLE:].lstrip('_.-') or 'trace'}-{digest}"


def capture_kind(path: str | os.PathLike) -> str | None:
    """``"pcap"`` or ``"pcapng"`` (possibly gzip/zstd-compressed) from the file's first bytes, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:2] == GZIP_MAGIC:
                f.seek(0)
                try:
                    with gzip.GzipFile(fileobj=f) as g:
                        head = g.read(4)
                except (OSError, EOFError):
                    return None
            elif head == ZSTD_MAGIC:
                import zstandard

                f.seek(0)
                try:
                    head = zstandard.ZstdDecompressor().stream_reader(f).read(4)
                except zstandard.ZstdError:
                    return None
    except OSError:
        return None
    return sniff_format(head)


def _capture(path: Path, rel: str) -> CaptureFile:
    st = path.stat()
    where = Path(os.path.abspath(path))  # symlinks kept: a trace is where the user keeps it
    return CaptureFile(path=where, rel_path=rel, size=int(st.st_size), mtime_ns=int(st.st_mtime_ns),
                       trace_id=make_trace_id(rel, str(where)))


def discover_captures(inputs: list[str | os.PathLike], glob: str | None = None, *,
                      exclude: list[str | os.PathLike] = ()) -> tuple[list[CaptureFile], int]:
    """The captures under ``inputs`` (directories searched recursively, files taken as they are).

    Returns (captures sorted by path, number of regular files looked at and skipped as not captures).
    ``exclude``: directories never searched (the output dataset when it lies inside an input).
    Raises :class:`OptionError` for an input that does not exist.
    """
    excluded = {Path(e).resolve() for e in exclude}
    found: dict[Path, CaptureFile] = {}
    not_captures = 0
    for inp in inputs:
        p = Path(inp)
        if not p.exists():
            raise OptionError(f"{p}: no such file or directory")
        if p.is_file():
            cf = _capture(p, p.name)
            found.setdefault(cf.path, cf)
            continue
        if not p.is_dir():
            raise OptionError(f"{p}: not a file or directory")
        root_name = Path(os.path.abspath(p)).name
        for dirpath, dirnames, filenames in os.walk(p):
            d = Path(dirpath)
            dirnames[:] = sorted(n for n in dirnames if not n.startswith(".")
                                 and (d / n).resolve() not in excluded)
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                f = d / name
                rel = f.relative_to(p).as_posix()
                if glob and not (fnmatch.fnmatch(rel, glob) or fnmatch.fnmatch(name, glob)):
                    continue
                if not f.is_file():
                    continue
                if capture_kind(f) is None:
                    not_captures += 1
                    continue
                cf = _capture(f, f"{root_name}/{rel}")
                found.setdefault(cf.path, cf)
    return sorted(found.values(), key=lambda c: str(c.path)), not_captures
