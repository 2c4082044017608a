"""Command-line interface (thin: parse options, call :mod:`pipeline.api`, print).

Bad input or options end with one line on stderr and exit code 2 (no traceback); see
:mod:`pipeline.errors`.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline import __version__
from pipeline.errors import PipelineError

try:  # typer >= 0.20 vendors click as typer._click; older ones use click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

app = typer.Typer(
    name="pipeline",
    help="Trace-driven replay of network I/O virtualization costs (linux, xen, dbnet, xen1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Wide enough for addresses and numbers when piped (rich falls back to 80 columns otherwise).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        print(f"pipeline {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Trace-driven replay of network I/O virtualization costs."""


@contextmanager
def progress_bar(label: str, enabled: bool = True):
    """A rich progress bar on stderr (bytes read), only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as prog:
        task = prog.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total or None)

        yield update


def _fmt_ts(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "-"
    import datetime as dt

    secs, frac = divmod(int(ts_ns), 1_000_000_000)
    try:
        stamp = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        stamp = f"{secs} s"
    return f"{stamp}.{frac:09d} UTC"


def _rate(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:,.2f} {prefix}{unit}"
    return f"{v:,.2f} {unit}"


@app.command()
def inspect(
    trace: Annotated[Path, typer.Argument(help="Capture file (pcap, pcapng; gzip/zstd ok).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    top: Annotated[int, typer.Option(min=0, help="How many top flows to list.")] = 10,
) -> None:
    """A capinfos-like summary of a capture."""
    from pipeline.api import inspect_trace

    with progress_bar(f"reading {trace.name}", enabled=not as_json or True) as update:
        summary = inspect_trace(trace, top=top, progress=update)
    for w in summary["warnings"]:
        err.print(f"warning: {w}", markup=False)
    if as_json:
        print(json.dumps(summary, default=str))
        return
    t = Table(title=f"{trace}", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    s = summary
    rows = [
        ("Format", f"{s.get('format')} ({s.get('compression') or 'uncompressed'}), "
                   f"{s.get('byte_order')}-endian, version {s.get('version')}"),
        ("Timestamp resolution", str(s.get("ts_resolution"))),
        ("Link types", ", ".join(s["link_types"]) or "-"),
        ("Interfaces", str(len(s.get("interfaces") or []))),
        ("Snaplen", str(s.get("snaplen"))),
        ("Packets", f"{s['packets']:,}"),
        ("Wire bytes", f"{s['wire_bytes']:,}"),
        ("Captured bytes", f"{s['captured_bytes']:,}"),
        ("Snaplen-truncated packets", f"{s['snap_truncated_packets']:,}"),
        ("First packet", _fmt_ts(s["first_ts_ns"])),
        ("Last packet", _fmt_ts(s["last_ts_ns"])),
        ("Duration", f"{s['duration_s']:.6f} s"),
        ("Average rate", f"{_rate(s['avg_bit_rate_bps'], 'bit/s')}, {_rate(s['avg_packet_rate_pps'], 'pkt/s')}"),
        ("Average packet size", "-" if s["avg_packet_size_bytes"] is None else f"{s['avg_packet_size_bytes']:.1f} B"),
        ("IPv4 / IPv6 / non-IP", f"{s['ipv4_packets']:,} / {s['ipv6_packets']:,} / {s['non_ip_packets']:,}"),
        ("TCP / UDP / ICMP / other", f"{s['tcp_packets']:,} / {s['udp_packets']:,} / {s['icmp_packets']:,} / "
                                     f"{s['other_l4_packets']:,}"),
        ("VLAN-tagged packets", f"{s['vlan_tagged_packets']:,}"),
        ("Distinct hosts / flows", f"{s['distinct_hosts']:,} / {s['distinct_flows']:,}"),
        ("Timestamps in order", "yes" if s["timestamps_in_order"]
         else f"no ({s['non_monotonic_timestamps']} steps back)"),
        ("Damage", "truncated (good packets kept)" if s["truncated"] else "none found"),
        ("SHA-256", str(s.get("sha256"))),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    if s["top_flows"]:
        ft = Table(title="Top flows by wire bytes")
        for col in ("src", "dst", "proto", "packets", "wire bytes", "payload bytes", "duration s"):
            ft.add_column(col, justify="right" if col not in ("src", "dst") else "left")
        for f in s["top_flows"]:
            ft.add_row(f"{f['src']}:{f['src_port']}", f"{f['dst']}:{f['dst_port']}", str(f["proto"]),
                       f"{f['packets']:,}", f"{f['wire_bytes']:,}", f"{f['payload_bytes']:,}",
                       f"{f['duration_s']:.3f}")
        out.print(ft)


def _fast_exit(code: int) -> None:
    """Exit without interpreter teardown (saves ~0.1-0.2 s of module finalisation per run).

    Only after a command finished: every output file is already closed and renamed into place.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning user errors into one line and an exit code."""
    try:
        rv = app(args=argv, standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if argv is None:
            _fast_exit(code)
        sys.exit(code)
    except PipelineError as e:
        err.print(f"pipeline: error: {e}", markup=False)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except click_exc.NoArgsIsHelpError as e:
        if e.ctx is not None:
            print(e.ctx.get_help())
        sys.exit(0 if argv is None and len(sys.argv) <= 1 else 2)
    except click_exc.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else "pipeline"
        err.print(f"pipeline: error: {e.format_message()} (see '{cmd} --help')", markup=False)
        sys.exit(2)
    except click_exc.ClickException as e:
        err.print(f"pipeline: error: {e.format_message()}", markup=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("pipeline: interrupted", markup=False)
        sys.exit(130)
    except BrokenPipeError:
        os._exit(0)
    except MemoryError:
        err.print("pipeline: error: out of memory", markup=False)
        sys.exit(1)
    except Exception as e:  # a bug, not bad input: one line, traceback only on request
        if os.environ.get("PIPELINE_DEBUG"):
            raise
        err.print(f"pipeline: internal error: {type(e).__name__}: {e} (set PIPELINE_DEBUG=1 for a traceback)",
                  markup=False)
        sys.exit(1)
