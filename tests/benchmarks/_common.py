"""Helpers shared by the benchmark scripts: child-process timing with peak RSS, medians, tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChildRun:
    """One finished child process: wall time (s), CPU time (user + system, s, including the child's
    own waited-for children such as worker processes), peak RSS (bytes), exit code, stdout, stderr."""

    wall_s: float
    cpu_s: float
    max_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


def run_child(argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> ChildRun:
    """Run ``argv`` to completion; wall time and the child's own peak RSS (``os.wait4``'s ru_maxrss).

    stdout/stderr go to temporary files (not pipes), so nothing blocks while we wait on the pid.
    ru_maxrss is in KiB on Linux.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=cwd)
        _pid, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(wall, ru.ru_utime + ru.ru_stime, int(ru.ru_maxrss) * 1024, p.returncode,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def pipeline_argv(*args: str) -> list[str]:
    """The whole ``pipeline`` CLI as a child process (same interpreter as the benchmark)."""
    return [sys.executable, "-m", "pipeline", *args]


def warm_bytecode() -> None:
    """Compile the ``pipeline`` package's bytecode caches (``__pycache__/*.pyc``), as any first run
    does, so that the timed child processes import rather than compile it.

    Python writes these caches on first import, unless PYTHONDONTWRITEBYTECODE is set, as it is in
    this project's sandbox: there every ``pipeline`` process would compile its ~10,000 lines again
    (measured +0.05 s per ``pipeline replay``), which a user's installed tool does not do.
    Like the warm numba cache, a warm bytecode cache is the steady state being measured.
    """
    import compileall

    import pipeline

    compileall.compile_dir(str(Path(pipeline.__file__).parent), quiet=1)


def warm_page_cache(path: Path) -> None:
    """Read the file once so every timed run starts with it in the page cache."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def host_info() -> dict:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "machine": platform.machine()}


def print_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def write_json(path: Path | None, results: dict) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    print(f"\nresults written to {path}")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def finish(res: dict, targets: dict, problems: list[str], json_out: Path | None, width: int = 40) -> int:
    """Print the targets with their verdicts and any problems, write the JSON; return the exit code
    (1 when there were problems, not when a target is missed)."""
    for name, t in targets.items():
        print(f"{name:{width}s} {t['value']:8.2f}   target {t['target']:7s} {verdict(t['met'])}")
    res["targets"] = targets
    res["problems"] = problems
    if problems:
        print("\nproblems:")
        for p in problems:
            print(f"  - {p}")
    write_json(json_out, res)
    return 1 if problems else 0
