"""The batch dataset's bookkeeping: the run manifest, the configuration hash, the lock.

``DATASET/manifest.json`` (written atomically: temporary file, fsync, ``os.replace``)::

    {"format": "pipeline-batch-manifest", "manifest_version": 1, "tool_version": ..., "schema_version": 1,
     "config": {...resolved configuration...}, "config_hash": "<sha256>", "layout": {...},
     "runs": [{"started", "finished", "inputs", "glob", "jobs", "scheduler", "as_guests", "ok", "failed",
               "skipped", "seconds"}, ...],                         # the last 20 runs
     "traces": {"<trace id>": {"status": "ok" | "failed" | "skipped", "reason": one line or null,
                               "inputs": [{"path", "rel_path", "size", "mtime_ns", "sha256"}],
                               "sha256": <of the input, or of the members' hashes for a guest group>,
                               "config_hash", "started", "finished", "seconds", "packets", "host_packets",
                               "wire_bytes", "warnings": [...], "partitions": ["summary/arch=a/trace=t", ...],
                               "guests": [...member trace ids...] (guest groups only), "run": n}}}

``ok`` and ``skipped`` both mean the trace's partitions are in the dataset and complete (``skipped``:
this run found them up to date); ``failed`` traces have no partitions; ``replacing`` (seen only after
a run was killed while committing a new version of a trace) means incomplete: cleaned up and redone.

The lock is ``fcntl.flock`` on ``DATASET/.lock``: held for the whole run, released by the kernel
when the process dies (so ``kill -9`` never leaves a stale lock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.errors import OptionError, ResultsError
from pipeline.ingest.source import file_sha256
from pipeline.store import SCHEMA_VERSION, atomic_output
from pipeline.store.layout import MANIFEST_FILE

LOCK_FILE = ".lock"
MANIFEST_FORMAT = "pipeline-batch-manifest"
MANIFEST_VERSION = 1
COMPLETE = ("ok", "skipped")
_KEEP_RUNS = 20

#: ReplayConfig fields that change speed or memory but never results (left out of the hash).
PERFORMANCE_ONLY = ("threads", "chunk_packets", "cache_packets")


def combined_sha256(hashes: list[str]) -> str:
    """One SHA-256 standing for several inputs (a guest group): of their hashes, in order."""
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def resolved_config(replay_config: dict[str, Any], *, write_packets: bool, as_guests: bool) -> dict[str, Any]:
    """The configuration that determines a batch's results, JSON-safe.

    The replay configuration without performance-only fields, the output and grouping choices, the
    tool and schema versions, and the SHA-256 of every file the configuration names (``--params``,
    ``--arch-file``, a parameter-set file), so editing such a file counts as a change.
    """
    replay = {k: v for k, v in replay_config.items() if k not in PERFORMANCE_ONLY}
    files: dict[str, str] = {}
    named = list(replay.get("arch_files") or [])
    for key in ("params", "param_overrides"):
        v = replay.get(key)
        if isinstance(v, str) and (v.endswith(".toml") or os.sep in v) and Path(v).is_file():
            named.append(v)
    for f in named:
        try:
            files[str(f)] = file_sha256(f)
        except OSError as e:
            raise OptionError(f"{f}: cannot be read ({e.strerror or e})") from None
    return {"replay": replay, "write_packets": bool(write_packets), "as_guests": bool(as_guests),
            "files": files, "tool_version": __version__, "schema_version": SCHEMA_VERSION}


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a resolved configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as JSON to ``path`` so that readers see the old or the new file, never a part
    (:func:`pipeline.store.atomic_output`, plus an fsync before the rename)."""
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def new_manifest() -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "manifest_version": MANIFEST_VERSION, "tool_version": __version__,
            "schema_version": SCHEMA_VERSION, "config": None, "config_hash": None, "runs": [], "traces": {}}


def load_manifest(dataset: Path) -> dict[str, Any] | None:
    """The dataset's manifest, or None when there is none. Raises ResultsError when unusable."""
    path = dataset / MANIFEST_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ResultsError(f"{path}: unreadable batch manifest ({e}); move the dataset aside or delete it") \
            from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise ResultsError(f"{path}: not a pipeline batch manifest")
    if doc.get("manifest_version") != MANIFEST_VERSION:
        raise ResultsError(f"{path}: manifest version {doc.get('manifest_version')} is not supported "
                           f"(this tool writes {MANIFEST_VERSION})")
    doc.setdefault("traces", {})
    doc.setdefault("runs", [])
    return doc


def save_manifest(dataset: Path, doc: dict[str, Any]) -> None:
    doc["tool_version"] = __version__
    doc["runs"] = doc.get("runs", [])[-_KEEP_RUNS:]
    write_json_atomic(dataset / MANIFEST_FILE, doc)


class DatasetLock:
    """Exclusive lock on a dataset directory (``fcntl.flock`` on ``DATASET/.lock``).

    ``acquire`` raises :class:`OptionError` (exit code 2) naming the holder's pid when another
    process holds it. The kernel releases it when the holder exits, however it exits.
    """

    def __init__(self, dataset: Path) -> None:
        self.path = dataset / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> DatasetLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 64, 0).decode().strip()
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder})" if holder else ""
                raise OptionError(f"{self.path.parent}: another pipeline batch is writing this dataset{who}; "
                                  "wait for it to finish or use another --out") from None
            raise OptionError(f"{self.path}: cannot lock ({e.strerror or e})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None

    def __enter__(self) -> DatasetLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
