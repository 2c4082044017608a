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
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline import __version__
from pipeline.errors import OptionError, PipelineError

# The CLI does no linear algebra: one BLAS thread is enough (OpenBLAS otherwise starts a thread per
# core when numpy is imported, which then spin; ~0.05 s of CPU per `pipeline replay`).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

if TYPE_CHECKING:
    from concurrent.futures import Future

    from pipeline.config import ReplayConfig
    from pipeline.replay import ReplayResult

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
    from pipeline.ingest.columns import format_ts_ns

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
        ("First packet", format_ts_ns(s["first_ts_ns"])),
        ("Last packet", format_ts_ns(s["last_ts_ns"])),
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


# --- replay options, shared by `replay` and `batch` ----------------------------------------------

ArchOpt = Annotated[list[str] | None, typer.Option(
    "--arch", help="Architecture to model (repeatable; default: linux, xen, dbnet, xen1). See `pipeline archs`.")]
ArchFileOpt = Annotated[list[Path] | None, typer.Option(
    "--arch-file", help="TOML file defining or replacing an architecture (repeatable).")]
ParamSetOpt = Annotated[str, typer.Option(
    "--param-set", help="Parameter set: a bundled name (see `pipeline params --sets`) or a TOML file.")]
ParamsOpt = Annotated[Path | None, typer.Option(
    "--params", help="TOML file overriding any parameter value ([name] value = ... or name = value).")]
HostOpt = Annotated[list[str] | None, typer.Option(
    "--host", help="The modeled host: ADDR, CIDR or MAC (repeatable). Default: inferred and printed.")]
GuestOpt = Annotated[list[str] | None, typer.Option(
    "--guest", help="A guest of the host: NAME=ADDR|CIDR|MAC (repeatable).")]
GuestsOpt = Annotated[int | None, typer.Option(
    "--guests", min=1, help="Spread the host's flows over N guests (round-robin in order of first appearance).")]
SegmentsOpt = Annotated[str, typer.Option(
    "--segments", help="TSO/GRO super-segments: 'captured' (as the capture shows them) or 'mss' (split).")]
MtuOpt = Annotated[int, typer.Option("--mtu", min=68, help="MTU for --segments mss (bytes).")]
LinkOpt = Annotated[float, typer.Option("--link-bps", help="Link rate capping saturation throughput (bit/s).")]
PlacementOpt = Annotated[str, typer.Option(
    "--placement", help="CPUs: 'shared' (all contexts on one CPU), 'split' (VMM/dom0 on CPU0, guests on "
                        "CPU1) or 'per-guest' (one CPU per guest).")]
RingOpt = Annotated[int | None, typer.Option("--ring-size", min=1, help="Descriptor ring entries (default: "
                                                                         "the parameter set's, 256).")]
NoSatOpt = Annotated[bool, typer.Option("--no-saturation", help="Skip the saturation-throughput search.")]
NoPacketsOpt = Annotated[bool, typer.Option("--no-packets", help="Do not write per-packet results.")]


def replay_config(arch: list[str] | None, arch_file: list[Path] | None, param_set: str, params: Path | None,
                  host: list[str] | None, guest: list[str] | None, guests: int | None, segments: str,
                  mtu: int, link_bps: float, placement: str, ring_size: int | None,
                  no_saturation: bool) -> ReplayConfig:
    """One place that turns the CLI's replay options into a validated ReplayConfig."""
    from pipeline.config import ReplayConfig

    for f in (arch_file or []) + ([params] if params else []):
        if not f.is_file():
            raise OptionError(f"{f}: no such file")
    cfg = ReplayConfig(params=param_set, param_overrides=str(params) if params else None,
                       arch_files=[str(f) for f in arch_file or []], hosts=list(host or []),
                       guests=list(guest or []), n_guests=guests, segments=segments, mtu=mtu, link_bps=link_bps,
                       placement=placement, ring_size=ring_size, saturation=not no_saturation)
    if arch:
        cfg.archs = list(dict.fromkeys(arch))
    cfg.validate()
    return cfg


def _print_comparison(result: ReplayResult) -> None:
    from pipeline.models.components import COMPONENTS
    from pipeline.replay import comparison_rows

    table = comparison_rows(result.summary_rows)  # pandas-free: the CLI never imports pandas
    linux = [r for r in table if r["arch"] == "linux"]
    base = float(linux[0]["saturation_mbps"]) if linux else 0.0
    t = Table(title="Architecture comparison (all guests, both directions)")
    for h in ("arch", "saturation Mb/s", "vs linux", "limited by", "CPU-bound Mb/s", "delivered Mb/s", "CPU %",
              "cycles/pkt", "cycles/byte", "drops"):
        t.add_column(h, justify="left" if h in ("arch", "limited by") else "right")
    for r in table:
        sat = result.saturation.get(r["arch"], {})
        ratio = f"{r['saturation_mbps'] / base:.2f}x" if base > 0 else "-"
        t.add_row(r["arch"], f"{r['saturation_mbps']:,.1f}", ratio, str(sat.get("limited_by", "")),
                  f"{r['cpu_bound_mbps']:,.1f}", f"{r['delivered_mbps']:,.1f}", f"{r['cpu_util_pct']:.1f}", f"{r['cycles_per_packet']:,.0f}",
                  f"{r['cycles_per_byte']:.2f}", f"{int(r['drops']):,}")
    out.print(t)
    short = {"interrupt": "irq", "descriptor": "desc", "bridge": "bridge", "segment_switch": "seg sw",
             "domain_switch": "dom sw", "hypercall_event": "hcall/evt", "grant_copy": "grant/copy",
             "stack": "stack"}
    t = Table(title="Cycles per packet by component")
    t.add_column("arch")
    for c in COMPONENTS:
        t.add_column(short.get(c, c), justify="right")
    t.add_column("total", justify="right")
    for r in table:
        t.add_row(r["arch"], *[f"{r[c]:,.0f}" for c in COMPONENTS], f"{r['cycles_per_packet']:,.0f}")
    out.print(t)


@app.command()
def replay(
    trace: Annotated[Path, typer.Argument(help="Capture file (pcap, pcapng; gzip/zstd ok).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory for summary.parquet and "
                                                        "packets.parquet.")],
    arch: ArchOpt = None, arch_file: ArchFileOpt = None, param_set: ParamSetOpt = "xeon-2.4ghz-e1000",
    params: ParamsOpt = None, host: HostOpt = None, guest: GuestOpt = None, guests: GuestsOpt = None,
    segments: SegmentsOpt = "captured", mtu: MtuOpt = 1500, link_bps: LinkOpt = 1e9,
    placement: PlacementOpt = "shared", ring_size: RingOpt = None, no_saturation: NoSatOpt = False,
    no_packets: NoPacketsOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary rows as JSON instead of a table.")]
    = False,
) -> None:
    """Replay a capture through per-packet CPU cost models of each architecture."""
    import gc

    from pipeline.ingest.source import sha256_in_background

    # the trace's SHA-256 (provenance), hashed on the idle core while this process imports
    digest = sha256_in_background(trace) if trace.is_file() else None

    # little cyclic garbage is made here, but the imports' allocations trigger collections (~0.05 s,
    # and a full one of everything imported if enabled again before printing): off for the command
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        _replay_command(trace, out_dir, replay_config(arch, arch_file, param_set, params, host, guest, guests,
                                                      segments, mtu, link_bps, placement, ring_size,
                                                      no_saturation), no_packets, as_json, digest)
    finally:
        if gc_enabled:
            gc.enable()


def _replay_command(trace: Path, out_dir: Path, cfg: ReplayConfig, no_packets: bool, as_json: bool,
                    digest: Future | None = None) -> None:
    from pipeline.api import replay as api_replay

    if not trace.exists():
        raise OptionError(f"{trace}: no such file")
    try:
        result = api_replay(trace, out_dir, cfg, write_packets=not no_packets, trace_sha256=digest)
    except OptionError as e:  # say which file, as for unreadable input
        if str(trace) in str(e) or str(e).startswith("--"):  # names its file/option already
            raise
        raise OptionError(f"{trace}: {e}") from None
    for w in result.warnings:
        err.print(f"warning: {w}", markup=False)
    if as_json:
        print(result.summary.to_json(orient="records"))
        return
    err.print(f"mapping: {result.mapping.get('explanation', '')}", markup=False)
    _print_comparison(result)
    out.print(f"wrote {out_dir / 'summary.parquet'}" + ("" if no_packets else f" and {out_dir / 'packets.parquet'}"))


@app.command()
def batch(
    inputs: Annotated[list[Path], typer.Argument(metavar="DIR", help="Directories (searched recursively) or "
                                                                        "capture files.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset directory (hive-partitioned Parquet + "
                                                        "manifest.json); re-running resumes it.")],
    arch: ArchOpt = None, arch_file: ArchFileOpt = None, param_set: ParamSetOpt = "xeon-2.4ghz-e1000",
    params: ParamsOpt = None, host: HostOpt = None, guest: GuestOpt = None, guests: GuestsOpt = None,
    segments: SegmentsOpt = "captured", mtu: MtuOpt = 1500, link_bps: LinkOpt = 1e9,
    placement: PlacementOpt = "shared", ring_size: RingOpt = None, no_saturation: NoSatOpt = False,
    no_packets: NoPacketsOpt = False,
    glob: Annotated[str | None, typer.Option("--glob", help="Only files whose relative path or name matches "
                                                            "this pattern (e.g. '*.pcap').")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", min=1, help="Local worker processes (default: the "
                                                                   "CPUs available).")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler address (default: "
                                                  "$DASK_SCHEDULER_ADDRESS; unset: local processes).")] = None,
    as_guests: Annotated[bool, typer.Option("--as-guests", help="Replay the captures of each directory "
                                            "together as concurrent guests of one host.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-trace lines.")] = False,
) -> int:
    """Replay every capture under DIR... into one results dataset (resumable; exit 1 if any trace failed)."""
    from pipeline.batch import run_batch  # (the fork server is already starting: pipeline._entry)

    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    cfg = replay_config(arch, arch_file, param_set, params, host, guest, guests, segments, mtu, link_bps,
                        placement, ring_size, no_saturation)
    with _batch_progress(enabled=not quiet) as update:
        res = run_batch(inputs, out_dir, cfg, glob=glob, jobs=jobs, scheduler=scheduler, as_guests=as_guests,
                        write_packets=not no_packets, progress=update)
    for r in res.failed:
        where = ", ".join(i["path"] for i in r["inputs"])
        reason = str(r["reason"])
        err.print(f"failed: {reason if reason.startswith(where) else f'{where}: {reason}'}", markup=False)
    line = (f"{len(res.ok)} replayed, {len(res.skipped)} up to date, {len(res.failed)} failed "
            f"in {res.seconds:.1f} s -> {res.dataset}")
    if not quiet or res.failed:
        err.print(line, markup=False)
    return res.exit_code


@contextmanager
def _batch_progress(enabled: bool = True):
    """One rich progress bar on stderr (traces done, packets, bytes, failures), only on a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=err, transient=True) as prog:
        task = prog.add_task("batch", total=None, stats="")

        def update(p) -> None:
            stats = f"{p.packets:,} packets, {p.bytes / 1e6:,.1f}/{p.total_bytes / 1e6:,.1f} MB"
            if p.failed:
                stats += f", [red]{p.failed} failed[/red]"
            if p.skipped:
                stats += f", {p.skipped} up to date"
            prog.update(task, completed=p.done, total=p.total, stats=stats)

        yield update


@app.command()
def archs(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    arch_file: ArchFileOpt = None,
) -> None:
    """List the architectures and their stages (per direction, in order)."""
    from pipeline.models.registry import (
        get_architecture,
        list_architectures,
        load_arch_file,
        register_architecture,
    )

    for f in arch_file or []:
        register_architecture(load_arch_file(f))
    rows = []
    for name in list_architectures():
        a = get_architecture(name)
        rows.append({"name": a.name, "description": a.description, "stages": a.describe_rows()})
    if as_json:
        print(json.dumps(rows))
        return
    for a in rows:
        t = Table(title=f"{a['name']}: {a['description']}")
        for h in ("dir", "#", "stage", "component", "context", "cost terms"):
            t.add_column(h)
        for s in a["stages"]:
            when = f" [{s['when']}]" if s["when"] else ""
            t.add_row(s["direction"], str(s["order"]), s["stage"] + when, s["component"], s["context"], s["terms"])
        out.print(t)


@app.command()
def params(
    arch: Annotated[str | None, typer.Option("--arch", help="Only the parameters this architecture uses.")] = None,
    param_set: ParamSetOpt = "xeon-2.4ghz-e1000",
    overrides: ParamsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    sets: Annotated[bool, typer.Option("--sets", help="List the bundled parameter sets.")] = False,
) -> None:
    """Every cost parameter with its value, range and provenance (source, status)."""
    from pipeline.models.params import list_param_sets, load_params
    from pipeline.models.registry import param_rows

    if sets:
        names = list_param_sets()
        print(json.dumps(names) if as_json else "\n".join(names))
        return
    ps = load_params(param_set, str(overrides) if overrides else None)
    rows = param_rows(ps, arch)
    if as_json:
        print(json.dumps({"param_set": ps.name, "origin": ps.origin, "params": rows}, default=str))
        return
    t = Table(title=f"Parameter set {ps.name}" + (f" (used by {arch})" if arch else ""))
    for h in ("name", "value", "unit", "status", "low", "high", "source", "used by"):
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(r["name"], f"{r['value']:g}" if isinstance(r["value"], float) else str(r["value"]), r["unit"],
                  r["status"], "" if r["low"] is None else f"{r['low']:g}",
                  "" if r["high"] is None else f"{r['high']:g}", r["source"], r["archs"])
    out.print(t)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    out.print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


# --- reports (pipeline.report) -------------------------------------------------------------------

FormatOpt = Annotated[str, typer.Option("--format", help="html (self-contained page), md (Markdown + PNG files "
                                                         "beside it) or both.")]


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="Replay output directories and/or batch datasets.")],
    out_path: Annotated[Path, typer.Option("--out", help="Report path without suffix (writes PATH.html, PATH.md, "
                                                         "PATH_files/).")],
    fmt: FormatOpt = "both",
    interval: Annotated[float | None, typer.Option("--interval", help="Seconds per interval of the cycles-over-time "
                                                                      "graph (default: about 100 intervals).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many flows in the top-flows table.")] = 10,
    no_sweep: Annotated[bool, typer.Option("--no-sweep", help="Skip the offered-load sweep.")] = False,
    no_sensitivity: Annotated[bool, typer.Option("--no-sensitivity", help="Skip the parameter-range runs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines on stderr.")] = False,
) -> None:
    """A self-contained HTML and/or Markdown report from replay results."""
    from pipeline.report import make_report

    paths = make_report(results, out_path, fmt, interval_s=interval, sweep=not no_sweep,
                        sensitivity=not no_sensitivity, top_flows=top,
                        log=None if quiet else (lambda m: err.print(m, markup=False)))
    out.print("wrote " + ", ".join(str(p) for k, p in paths.items()))


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Run A: a replay output directory (or DATASET#TRACE_ID).")],
    b: Annotated[str, typer.Argument(help="Run B, the same way.")],
    out_path: Annotated[Path | None, typer.Option("--out", help="Also write an HTML/Markdown comparison here.")]
    = None,
    fmt: FormatOpt = "both",
    threshold: Annotated[float, typer.Option("--threshold", min=0.0, help="Highlight metrics that moved by at "
                                                                          "least this many percent.")] = 5.0,
    all_rows: Annotated[bool, typer.Option("--all", help="Print every metric, not only the changed ones.")]
    = False,
) -> None:
    """Two runs side by side (traces, parameter sets or architectures), differences highlighted."""
    from pipeline.report.compare import make_comparison, metric_rows

    cmp, paths = make_comparison(a, b, out_path, fmt, threshold)
    if len(cmp.differences):
        t = Table(title="What differs")
        for h in ("what", cmp.label_a, cmp.label_b):
            t.add_column(h, overflow="fold")
        for _, r in cmp.differences.iterrows():
            t.add_row(r.what, r.a, r.b)
        out.print(t)
    rows = metric_rows(cmp)
    hl = cmp.metrics.highlight.to_numpy()
    t = Table(title=f"Metrics (B - A; highlighted: moved >= {threshold:g} %)")
    for i, h in enumerate(rows.columns):
        t.add_column(h, justify="left" if i < 2 else "right")
    shown = 0
    for i, r in enumerate(rows.itertuples(index=False)):
        if not (all_rows or hl[i]):
            continue
        style = "bold yellow" if hl[i] else None
        t.add_row(*[str(v) for v in r], style=style)
        shown += 1
    if shown:
        out.print(t)
    else:
        out.print(f"no metric moved by {threshold:g} % or more (--all prints every metric)")
    if paths:
        out.print("wrote " + ", ".join(str(p) for p in paths.values()))


@app.command()
def validate(
    out_path: Annotated[Path, typer.Option("--out", help="Markdown report to write (figures beside it).")]
    = Path("reports/validation.md"),
    traces_dir: Annotated[Path, typer.Option("--traces", help="The bundled captures.")] = Path("traces"),
    check: Annotated[bool, typer.Option("--check", help="Do not write: exit 1 if the report on disk differs "
                                                        "from what would be written.")] = False,
) -> None:
    """Regenerate reports/validation.md: the model against every published result it can be held to."""
    from pipeline.report.validation import make_validation_report

    changed, path = make_validation_report(out_path, traces_dir, check=check)
    if check:
        out.print(f"{path}: {'differs from' if changed else 'matches'} what `pipeline validate` produces")
        if changed:
            raise typer.Exit(1)
        return
    out.print(f"wrote {path}")


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
