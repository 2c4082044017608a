"""Errors the user can act on.

Every error raised for bad input or bad options is a :class:`PipelineError` with a one-line
message saying what was wrong and where (file, record number, byte offset). The CLI prints the
message on stderr and exits with ``exit_code`` (2 for unusable input or options), never with a
traceback.
"""

from __future__ import annotations


class PipelineError(Exception):
    """A user-facing error: ``str(err)`` is one line, ``exit_code`` is the process exit code."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        if exit_code is not None:
            self.exit_code = exit_code


class TraceError(PipelineError):
    """A capture that cannot be read at all (not a capture, empty, header cut, ...)."""

    def __init__(self, path: object, problem: str, *, record: int | None = None,
                 offset: int | None = None) -> None:
        where = []
        if record is not None:
            where.append(f"record {record}")
        if offset is not None:
            where.append(f"byte offset {offset}")
        loc = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{path}: {problem}{loc}")
        self.path = path
        self.problem = problem
        self.record = record
        self.offset = offset


class OptionError(PipelineError):
    """An option or configuration value that cannot be used."""


class ResultsError(PipelineError):
    """Results (Parquet files or datasets) that are missing, empty, of another schema or mixed."""
