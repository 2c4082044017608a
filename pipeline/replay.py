"""Replay a trace through the architectures' cost models: the library entry the API and CLI call.

Interface (ReplayConfig and resolve_models live in :mod:`pipeline.config`, re-exported here)::

    @dataclass
    class ReplayConfig:            # everything resolved; to_dict() is JSON-safe (Parquet metadata)
        archs: list[str] = ["linux", "xen", "dbnet", "xen1"]
        params: str = "xeon-2.4ghz-e1000"       # bundled parameter set name or a TOML path
        param_overrides: str | dict | None = None  # --params FILE (or {name: value}): overrides any value
        arch_files: list[str] = []               # --arch-file: extra / replacement architectures
        hosts: list[str] = []                    # --host ADDR|CIDR|MAC
        guests: list[str] = []                   # --guest NAME=ADDR|CIDR|MAC
        n_guests: int | None = None              # --guests N
        segments: str = "captured"               # "captured" | "mss" (split TSO/GRO super-segments)
        mtu: int = 1500                          # frame size limit for segments="mss"
        link_bps: float = 1e9
        placement: str = "shared"                # "shared" | "split" | "per-guest"
        ring_size: int | None = None             # None: the parameter set's ring_size (e1000: 256)
        chunk_packets: int = 1 << 20
        saturation: bool = True
        saturation_tol: float = 0.02             # relative width of the final saturation bracket
        cache_packets: int = 4_000_000           # keep prepared packets in memory up to this many
        threads: int | None = None               # kernel threads (None: min(2, CPUs), one fewer with a packet_sink); results do not depend on it

    run_replay(trace: str | Path | PacketChunk | Iterable[PacketChunk], config: ReplayConfig, *,
               packet_sink: Callable[[str, dict[str, np.ndarray]], None] | None = None,
               progress: Callable[[str, int], None] | None = None,
               on_mapping: Callable[[Mapping], None] | None = None,
               mapping: Mapping | None = None, trace_sha256: Future | None = None) -> ReplayResult
    # on_mapping(mapping) is called once, when the host/guest mapping is resolved (before any sink
    # call): mapping.guest_names, mapping.explanation, mapping.to_dict()
    # trace_sha256: a Future of the trace file's SHA-256 computed elsewhere (ingest.source.
    # sha256_in_background, which the CLI starts before its imports): the reader then does not hash
    # mapping: a pre-resolved mapping (anything with classify(chunk), n_guests, guest_names,
    # explanation, to_dict()) used instead of config.hosts/guests/n_guests, e.g. several traces as
    # guests (pipeline.batch.guests). An iterator of chunks is read into a list (re-read by the
    # saturation passes); any other iterable is iterated once per pass.
    # progress(stage, packets_done): "replay" after each chunk of the main pass, "saturation" after
    # each chunk of a saturation pass (host packets; each pass starts again from 0)

    ReplayResult: summary (DataFrame, SUMMARY_COLUMNS + cpu_util_cpu<i>; built on first access from
                  summary_rows, the same rows as dicts), mapping (dict: host, guests,
                  n_guests, guest_names, explanation (one line for the CLI), inferred), config (dict),
                  params (list of dicts with provenance, the parameters the chosen archs use),
                  trace (dict: the ingest's TraceInfo.to_dict() + first/last ts, span, host/left-out
                  packet counts), warnings (list[str]), saturation (dict arch -> {factor, limited_by,
                  passes, link_factor}), guest_names (list[str]), kernel_ns_per_packet (dict arch -> CPU ns of
                  the main pass's kernel per host packet, per-packet outputs included)

    comparison_rows(summary_rows) -> list[dict]  # the compact per-arch table the CLI prints (no pandas)
    comparison_table(summary) -> DataFrame   # the same rows, from the summary DataFrame
    prepare_chunk(chunk, mapping, segments, mtu) -> (HostPackets, n_left_out)
    resolve_models(config) -> (ParamSet, architectures, compiled architectures)   # no kernel runs

Related (pipeline.models): registry.list_architectures(), get_architecture(name), load_arch_file(path),
resolve_architectures(names, arch_files) (what run_replay uses: user files first, nothing registered),
Architecture.describe_rows() (``pipeline archs``), registry.param_rows(params, arch=None) and
params.load_params(name_or_path, overrides) (``pipeline params``), fit.validation_rows() (held-out
published results for the validation report).

Per-arch work runs on ``threads`` threads (numba kernels release the GIL; in the main pass one fewer
with a per-packet sink and the default threads: the writer gets a core); the result is the same for
any thread count and any chunk size. The main pass is pipelined: the next chunk is read and decoded
on a background thread while the current one is in the kernels, and the sink receives chunk i-1
while the kernels run chunk i (two output buffer sets per arch, or the sink's own buffers). With the packets cached in memory,
each saturation simulation (arch, factor) is one job over all chunks, scheduled dynamically.

``packet_sink(arch, columns)`` receives per-packet results chunk by chunk (PACKET_RESULT_COLUMNS).
The arrays are reused for the next chunk (fresh arrays per chunk cost more in page faults than the
model): consume or copy them before returning. A sink with a method ``out_buffers(n)`` (returning
an object whose ``get(n)`` gives (cycles[components, n], completion[n], dropped[n]) arrays) provides
those arrays itself, a fresh set per (chunk, arch), and is called ``packet_sink(arch, columns,
out=that object)``: the kernels write into the sink's own buffers, with no copy
(store.packets.PacketResultsWriter does this). Columns:
packet_index (int64, index in the trace), ts_ns (int64), direction (int8: 0 rx, 1 tx), guest (int32,
index into ReplayResult.guest_names), cycles_<component> (float64 each; float32 if the sink has an
attribute ``cycles_dtype = numpy.float32``: the kernel then writes them so, sparing a conversion),
completion_ns (int64, -1 when dropped), dropped (bool). Only the modeled host's packets appear.
cycles_*, completion_ns and dropped are the reused buffers; packet_index, ts_ns, direction and guest
are the chunk's own arrays, never modified afterwards.

Metrics (one summary row per arch x guest (names and "all") x direction (rx, tx, all)): packets,
frames (NIC frames: > packets with segments="mss"), wire_bytes, payload_bytes, cycles_total,
cycles_per_packet, cycles_per_byte (per wire byte), cycles_<component>, cpu_util (cycles / (clock x
trace span), fraction of one CPU), cpu_util_<context>, cpu_util_cpu<i>, delivered_bps (wire bits of
delivered packets / span), saturation_bps (this row's wire bits x the saturation factor / span),
cpu_bound_bps (this row's delivered wire bits per second when the replay at the trace's own timing
is time-compressed until its busiest CPU is 100 % busy, with the cycles and batching of the trace's
own timing, ignoring drops and the link: what the CPUs alone sustain for this traffic mix, the
quantity a CPU-bound closed-loop sender such as ttcp/netperf measures; the open-loop, no-drop
saturation_bps is usually lower. Under overload at the trace's own timing (drops > 0) batches are
fuller than at the CPU-bound point, so it is optimistic there), drops, latency_p50_ns, latency_p99_ns (log-binned histogram: bins 2**(1/8), about 9 %, wide; the reported bin centre is within
about 4.4 % of any latency in the bin).

Saturation: the trace is replayed compressed by factors k (arrival times divided by k). A factor is
feasible when nothing is dropped and no CPU is busy more than the compressed span. The link cap
(link_bps over the busier direction's wire rate) bounds the search. Where the own-timing run says the
link binds first (no drop, the busiest CPU's cycles fit at the link rate), the first pass tries the
cap alone (one simulation); otherwise the cap tops a first grid. Each pass then brackets the largest
feasible factor with 3 factors, each its own simulation in the same pass over the trace (a factor is
abandoned as soon as it is infeasible), until the bracket is narrower than ``saturation_tol``; the
feasible end is reported with what limited it (link, cpu, drops). Three factors per pass: a pass
costs about one full simulation of wall time on two cores whatever its size (infeasible factors die
early), and 3 reaches the 2 % bracket from a 3x one in three passes (on the 2M-packet benchmark
trace the search took 0.42 s with 8 factors per pass, 0.34 s with 2 (five passes), 0.16 s with 3).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import ReplayConfig, resolve_models
from pipeline.errors import OptionError, TraceError
from pipeline.ingest.columns import PacketChunk
from pipeline.kernels.host_packets import compact_host_packets
from pipeline.kernels.replay_kernel import (
    LAT_SUB,
    ROW_CYCLES,
    ROW_DELIVERED_WIRE,
    ROW_DROPS,
    ROW_FRAMES,
    ROW_PACKETS,
    ROW_PAYLOAD,
    ROW_WIRE,
    KernelState,
    run_kernel,
)
from pipeline.models.components import COMPONENTS, CONTEXTS, DIRECTION_INDEX
from pipeline.models.mapping import Mapping, resolve_mapping
from pipeline.models.params import ParamSet, load_params
from pipeline.models.registry import HOST_PARAMS, CompiledArch, resolve_architectures

if TYPE_CHECKING:  # pandas is imported when the summary is built (start-up time; see api.replay)
    import pandas as pd

PACKET_RESULT_COLUMNS: tuple[str, ...] = (
    ("packet_index", "ts_ns", "direction", "guest")
    + tuple(f"cycles_{c}" for c in COMPONENTS) + ("completion_ns", "dropped"))
_SAT_GRID = 3  # factors per saturation pass (module docstring)
_SAT_MAX_THREADS = 16  # saturation simulations run at once (time-sliced), threads=None


@dataclass
class ReplayResult:
    summary_rows: list[dict[str, Any]]  # the summary, one dict per row in order (no pandas needed)
    mapping: dict[str, Any]
    config: dict[str, Any]
    params: list[dict[str, Any]]
    trace: dict[str, Any]
    warnings: list[str]
    saturation: dict[str, dict[str, Any]]
    guest_names: list[str]
    kernel_ns_per_packet: dict[str, float]
    _summary_frame: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def summary(self) -> pd.DataFrame:
        """The summary as a DataFrame, built on first use (the CLI never needs pandas: ~0.2 s)."""
        if self._summary_frame is None:
            import pandas as pd

            self._summary_frame = pd.DataFrame(self.summary_rows)
        return self._summary_frame


@dataclass
class HostPackets:
    """The modeled host's packets of one chunk, as the kernel's inputs."""

    index: np.ndarray        # int64, packet index in the trace
    ts_ns: np.ndarray        # int64
    direction: np.ndarray    # int8
    guest: np.ndarray        # int32
    wire_bytes: np.ndarray   # float64 (all frames when split)
    payload_bytes: np.ndarray  # float64
    nseg: np.ndarray         # int64 frames per packet
    remote_key: np.ndarray   # uint64

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])


def prepare_chunk(chunk: PacketChunk, mapping: Mapping, segments: str, mtu: int) -> tuple[HostPackets, int]:
    """Map a chunk to the host's packets (and the number left out).

    With ``segments="mss"`` a TCP super-segment becomes ceil(payload / mss) frames of at most ``mtu``
    bytes of IP packet (pipeline.kernels.host_packets; one numba pass).
    """
    direction, guest, remote_key = mapping.classify(chunk)
    direction = np.asarray(direction, np.int8)
    n = int(np.count_nonzero(direction >= 0))
    hp = HostPackets(index=np.empty(n, np.int64), ts_ns=np.empty(n, np.int64), direction=np.empty(n, np.int8),
                     guest=np.empty(n, np.int32), wire_bytes=np.empty(n, np.float64),
                     payload_bytes=np.empty(n, np.float64), nseg=np.empty(n, np.int64),
                     remote_key=np.empty(n, np.uint64))
    compact_host_packets(direction, np.asarray(guest, np.int32), np.asarray(remote_key, np.uint64), chunk.ts_ns,
                         chunk.wire_len, chunk.payload_len, chunk.ip_total_len, chunk.ip_proto,
                         int(chunk.first_index), segments == "mss", int(mtu),
                         hp.index, hp.ts_ns, hp.direction, hp.guest, hp.wire_bytes, hp.payload_bytes, hp.nseg,
                         hp.remote_key)
    return hp, int(len(chunk) - n)


def _prepare_chunk_numpy(chunk: PacketChunk, mapping: Mapping, segments: str, mtu: int) -> tuple[HostPackets, int]:
    """:func:`prepare_chunk` in numpy (the reference the kernel is tested against)."""
    direction, guest, remote_key = mapping.classify(chunk)
    keep = direction >= 0
    wire = chunk.wire_len[keep].astype(np.float64)
    payload = chunk.payload_len[keep].astype(np.float64)
    nseg = np.ones(int(keep.sum()), np.int64)
    if segments == "mss":
        # a TCP super-segment becomes ceil(payload / mss) frames of at most mtu bytes of IP packet
        hdr_ip = chunk.ip_total_len[keep].astype(np.float64) - payload  # IP + TCP header bytes
        mss = np.maximum(float(mtu) - hdr_ip, 1.0)
        tcp = (chunk.ip_proto[keep] == 6) & (payload > mss)
        frames = np.where(tcp, np.ceil(payload / mss), 1.0)
        hdr_wire = np.maximum(wire - payload, 0.0)
        wire = np.where(tcp, payload + frames * hdr_wire, wire)
        nseg = frames.astype(np.int64)
    idx = np.flatnonzero(keep).astype(np.int64) + int(chunk.first_index)
    hp = HostPackets(index=idx, ts_ns=chunk.ts_ns[keep].astype(np.int64), direction=direction[keep],
                     guest=guest[keep], wire_bytes=wire, payload_bytes=payload, nseg=nseg,
                     remote_key=remote_key[keep])
    return hp, int(len(chunk) - len(hp))


class _Source:
    """Re-iterable source of PacketChunks: a path (re-read per pass) or chunks in memory."""

    def __init__(self, trace: Any, chunk_packets: int, sha256: Future | None = None) -> None:
        self.trace = trace
        self.chunk_packets = chunk_packets
        # the file's hash, computed elsewhere or by the first pass's reader: later passes do not hash
        self.sha256 = sha256
        self.info: dict[str, Any] = {}
        self.warnings: list[str] = []

    def chunks(self, progress: Callable[[str, int], None] | None = None) -> Iterator[PacketChunk]:
        t = self.trace
        if isinstance(t, PacketChunk):
            self.info = {"path": None, "packets": len(t)}
            yield t
            return
        if isinstance(t, str | Path):
            from pipeline.ingest import open_trace

            with open_trace(t, chunk_packets=self.chunk_packets, sha256=self.sha256 is None) as reader:
                for ch in reader:
                    yield ch
                self.info = reader.info.to_dict()
                self.warnings = list(reader.info.warnings)
            if self.sha256 is None:  # hashed by this first pass: the saturation passes need not hash again
                self.sha256 = Future()
                self.sha256.set_result(self.info["sha256"])
            else:
                try:
                    self.info["sha256"] = self.sha256.result()
                except OSError as e:
                    raise TraceError(t, f"cannot be read to hash it ({e.strerror or e})") from None
            return
        n = 0
        for ch in t:
            n += len(ch)
            yield ch
        self.info = {"path": None, "packets": n}


def _prefetched(chunks: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``chunks`` on a background thread, up to ``depth`` items ahead.

    Reading and decoding the next chunk then overlaps the kernels of the current one (the numba
    framing and the replay kernels release the GIL). Exceptions reach the consumer; stopping early
    (an error downstream, Ctrl-C) stops the producer and closes ``chunks``. (batch.guests.GuestTraces
    keeps its last 8 chunks for the sink's lookups: a read-ahead near that would need more.)
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for ch in chunks:
                if not put((ch, None)):
                    return
            put((end, None))
        except BaseException as e:  # handed to the consumer
            put((end, e))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    th = threading.Thread(target=produce, name="replay-ingest", daemon=True)
    th.start()
    try:
        while True:
            ch, err = q.get()
            if ch is end:
                if err is not None:
                    raise err
                return
            yield ch
    finally:
        stop.set()
        th.join()


@dataclass
class _Host:
    clock_hz: float
    itr_interval_ns: float
    nic_delay_ns: np.ndarray
    budget: float
    ring_size: int
    n_cpus: int
    ctx_cpu: np.ndarray


def _host_setup(params: ParamSet, config: ReplayConfig, n_guests: int) -> _Host:
    clock = params.number("clock_hz")
    itr = params.number("itr_per_s")
    rx_delay = max(params.number("rx_delay_ns"), 0.0)
    rx_abs = params.number("rx_abs_delay_ns")
    rx_delay = min(rx_delay, rx_abs) if rx_abs > 0 else rx_delay
    ring = int(config.ring_size if config.ring_size is not None else params.number("ring_size"))
    if config.placement == "shared":
        cpus = [0, 0, 0] + [0] * n_guests
    elif config.placement == "split":
        cpus = [0, 0, 0] + [1] * n_guests
    else:
        cpus = [0, 0, 0] + [1 + g for g in range(n_guests)]
    return _Host(clock_hz=clock, itr_interval_ns=1e9 / itr if itr > 0 else 0.0,
                 nic_delay_ns=np.array([rx_delay, params.number("tx_delay_ns")], np.float64),
                 budget=params.number("napi_budget"), ring_size=ring, n_cpus=max(cpus) + 1,
                 ctx_cpu=np.array(cpus, np.int64))


def _timed_detail_runs(jobs: list[tuple]) -> list[tuple[dict[str, np.ndarray] | None, float]]:
    """The own-timing runs of one chunk for some architectures, one after the other: (per-packet
    columns, CPU seconds) each."""
    done = []
    for arch, host, st, hp, t0, link_bps, n_guests, out in jobs:
        # the thread's CPU time, not wall time: the kernel's own cost, whatever else runs meanwhile
        t_start = time.thread_time()
        cols = _run(arch, host, st, hp, t0, link_bps, n_guests, detail=True, out=out)
        done.append((cols, time.thread_time() - t_start))
    return done


def _results_by_arch(futures: list, arch_groups: list[list[int]]) -> list:
    """The results of one chunk's kernel jobs (one future per group of architectures), in arch order."""
    by_arch = {}
    for f, group in zip(futures, arch_groups, strict=True):
        by_arch.update(zip(group, f.result(), strict=True))
    return [by_arch[ai] for ai in range(len(by_arch))]


class _OutBuffers:
    """Per-packet output arrays of one architecture, reused from chunk to chunk.

    Fresh multi-megabyte arrays per chunk cost more in page faults than the model itself, so the
    arrays handed to ``packet_sink`` are views into these buffers: valid until the sink returns.
    """

    def __init__(self, cycles_dtype: Any = np.float64) -> None:
        self.cap = 0
        self.cycles_dtype = cycles_dtype

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if n > self.cap:
            self.cap = n
            self.cycles = np.empty((len(COMPONENTS), n), self.cycles_dtype)
            self.completion = np.empty(n, np.int64)
            self.dropped = np.empty(n, np.bool_)
        return self.cycles[:, :n], self.completion[:n], self.dropped[:n]


# float32 like the CLI's sink's cycles (one kernel signature for a whole `pipeline replay`)
_NO_OUT = (np.empty((len(COMPONENTS), 0), np.float32), np.empty(0, np.int64), np.empty(0, np.bool_))


def _run(arch: CompiledArch, host: _Host, st: KernelState, hp: HostPackets, t0_ns: int, link_bps: float,
         n_guests: int, detail: bool, out: _OutBuffers | None = None) -> dict[str, np.ndarray] | None:
    n = len(hp)
    cyc, comp, drop = out.get(n) if out is not None else _NO_OUT
    run_kernel(arch, st, ts_ns=hp.ts_ns, direction=hp.direction, guest=hp.guest, wire_bytes=hp.wire_bytes,
               payload_bytes=hp.payload_bytes, nseg=hp.nseg, remote_key=hp.remote_key,
               ctx_cpu=host.ctx_cpu, clock_hz=host.clock_hz, itr_interval_ns=host.itr_interval_ns,
               nic_delay_ns=host.nic_delay_ns, budget=host.budget, link_ns_per_byte=8e9 / link_bps,
               n_ports=n_guests + 1, t0_ns=t0_ns, detail=detail, write_out=out is not None, out_cycles=cyc,
               out_completion=comp, out_dropped=drop)
    if out is None:
        return None
    cols: dict[str, np.ndarray] = {
        "packet_index": hp.index, "ts_ns": hp.ts_ns, "direction": hp.direction, "guest": hp.guest}
    for ci, c in enumerate(COMPONENTS):
        cols[f"cycles_{c}"] = cyc[ci]
    cols["completion_ns"] = comp
    cols["dropped"] = drop
    return cols


def _percentile(hist: np.ndarray, q: float) -> float:
    """Latency at quantile q from the kernel's log-binned histogram: the bin's (geometric) centre,
    within ~4.4 % of any latency in that ~9 %-wide bin."""
    total = hist.sum()
    if total <= 0:
        return float("nan")
    c = np.cumsum(hist)
    b = int(np.searchsorted(c, q * total))
    return float(2.0 ** ((b + 0.5) / LAT_SUB) - 1.0)


def _feasible(st: KernelState, clock_hz: float, span_ns: float) -> np.ndarray:
    scaled_s = span_ns / st.factors / 1e9
    util = st.acc_cpu_cycles / clock_hz / scaled_s[:, None]
    return (st.dead == 0) & (st.acc_drops == 0) & (util.max(axis=1) <= 1.0)


def _merge_states(sts: list[KernelState]) -> KernelState:
    """The factor-wise results of several saturation states, concatenated (for _feasible)."""
    if len(sts) == 1:
        return sts[0]
    m = KernelState(np.concatenate([s.factors for s in sts]), sts[0].cpu_busy.shape[1], 1, 1, 1)
    m.acc_cpu_cycles = np.concatenate([s.acc_cpu_cycles for s in sts])
    m.acc_drops = np.concatenate([s.acc_drops for s in sts])
    m.dead = np.concatenate([s.dead for s in sts])
    return m


def _sat_state(factors: np.ndarray, host: _Host, n_guests: int, arch: CompiledArch, span_ns: float) -> KernelState:
    st = KernelState(factors, host.n_cpus, n_guests, host.ring_size, arch.bridge_capacity)
    st.stop_infeasible = True
    st.cap_cycles = host.clock_hz * (span_ns / st.factors / 1e9)
    return st


def run_replay(trace: str | Path | PacketChunk | Iterable[PacketChunk], config: ReplayConfig, *,
               packet_sink: Callable[[str, dict[str, np.ndarray]], None] | None = None,
               progress: Callable[[str, int], None] | None = None,
               on_mapping: Callable[[Mapping], None] | None = None,
               mapping: Mapping | None = None, trace_sha256: Future | None = None) -> ReplayResult:
    """Replay ``trace`` through every architecture of ``config`` (see the module docstring)."""
    n_threads = config.threads or min(2, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return _run_replay(trace, config, packet_sink, progress, on_mapping, pool, n_threads,
                           given_mapping=mapping, trace_sha256=trace_sha256)


def _run_replay(trace, config: ReplayConfig, packet_sink, progress, on_mapping, pool: ThreadPoolExecutor,
                n_threads: int, given_mapping: Mapping | None = None,
                trace_sha256: Future | None = None) -> ReplayResult:
    params, archs, compiled = resolve_models(config)
    warnings: list[str] = []
    source = _Source(trace, config.chunk_packets, trace_sha256)
    if isinstance(trace, Iterator):
        trace = list(trace)  # re-iterable for the saturation passes
        source.trace = trace

    mapping: Mapping | None = None
    host: _Host | None = None
    states: list[KernelState] = []
    outs: list[_OutBuffers | None] = []
    cache: list[HostPackets] | None = []
    cached_packets = 0
    t0: int | None = None
    first_ts = None
    last_ts = None
    left_out = 0
    total_packets = 0
    kernel_s = np.zeros(len(compiled))
    kernel_packets = 0
    wire_dir = np.zeros(2)
    n_guests = 1
    pending: tuple[int, list, list] | None = None  # (packets read, futures, output buffers) of the chunk in the kernels
    # the main pass's kernel jobs per chunk (architectures split among them); with a per-packet sink
    # and the default threads, one fewer than the threads: the sink (the Parquet writer thread, ~0.45 s
    # of CPU for 4 x 2M rows) is the pass's longest stage and gets a core of its own rather than
    # time-slicing with the kernels (2M packets, 4 archs, 2 CPUs: `pipeline replay` 1.33 -> 1.22 s)
    n_jobs = n_threads if config.threads or packet_sink is None else max(1, n_threads - 1)
    arch_groups = [list(range(len(compiled)))[j::n_jobs] for j in range(min(n_jobs, len(compiled)))]
    parity = 0

    # a sink with out_buffers(n) gives the kernels the arrays to write per-packet results into (no copy)
    sink_buffers = getattr(packet_sink, "out_buffers", None)

    def deliver(packets_read: int, done: list, outs_used: list) -> None:
        for ai, (cols, dt) in enumerate(done):
            kernel_s[ai] += dt
            if sink_buffers is not None:
                packet_sink(compiled[ai].name, cols, out=outs_used[ai])
            elif packet_sink is not None:
                packet_sink(compiled[ai].name, cols)
        if progress is not None:
            progress("replay", packets_read)

    for chunk in _prefetched(source.chunks()):
        total_packets += len(chunk)
        if mapping is None:
            if len(chunk) == 0:
                continue
            mapping = given_mapping or resolve_mapping(config.hosts, config.guests, config.n_guests, chunk)
            if on_mapping is not None:
                on_mapping(mapping)
            n_guests = mapping.n_guests
            host = _host_setup(params, config, n_guests)
            states = [KernelState(np.array([1.0]), host.n_cpus, n_guests, host.ring_size, a.bridge_capacity)
                      for a in compiled]
            # two output buffer sets per arch (unless the sink gives them): the kernels of chunk i fill
            # one while the sink consumes chunk i-1's from the other
            cycles_dtype = getattr(packet_sink, "cycles_dtype", np.float64)
            outs = [(_OutBuffers(cycles_dtype), _OutBuffers(cycles_dtype))
                    if packet_sink is not None and sink_buffers is None else (None, None) for _ in compiled]
            t0 = int(chunk.ts_ns[0])
        hp, out = prepare_chunk(chunk, mapping, config.segments, config.mtu)
        left_out += out
        if len(hp) == 0:
            continue
        ts_min, ts_max = int(hp.ts_ns.min()), int(hp.ts_ns.max())
        first_ts = ts_min if first_ts is None else min(first_ts, ts_min)
        last_ts = ts_max if last_ts is None else max(last_ts, ts_max)
        wire_dir += np.bincount(hp.direction.astype(np.int64), weights=hp.wire_bytes, minlength=2)
        if cache is not None:
            cache.append(hp)
            cached_packets += len(hp)
            if cached_packets > config.cache_packets:
                cache = None
        # chunk i's kernels start as soon as chunk i-1's are done (each arch's state is sequential);
        # chunk i-1's outputs go to the sink meanwhile, and the next chunk is read ahead (_prefetched)
        done = _results_by_arch(pending[1], arch_groups) if pending is not None else None
        pending_done = pending
        used = ([sink_buffers(len(hp)) for _ in compiled] if sink_buffers is not None
                else [o[parity] for o in outs])
        pending = (total_packets, [pool.submit(_timed_detail_runs,
                                               [(compiled[ai], host, states[ai], hp, t0, config.link_bps,
                                                 n_guests, used[ai]) for ai in group])
                                   for group in arch_groups], used)
        parity ^= 1
        kernel_packets += len(hp)
        if done is not None:
            deliver(pending_done[0], done, pending_done[2])
    if pending is not None:
        deliver(pending[0], _results_by_arch(pending[1], arch_groups), pending[2])
    warnings += source.warnings
    if mapping is None:
        raise OptionError("the trace has no packets to replay")
    if first_ts is None:
        raise OptionError(f"no packet of the trace touches the modeled host ({mapping.explanation})")
    if left_out:
        warnings.append(f"{left_out:,} of {total_packets:,} packets touch neither the host nor a guest: "
                        "left out")
    span_ns = float(last_ts - first_ts)

    # ---- saturation search
    sat: dict[str, dict[str, Any]] = {}
    k_link = (config.link_bps * span_ns / 1e9 / (8.0 * wire_dir.max())) if span_ns > 0 and wire_dir.max() > 0 \
        else float("nan")
    if config.saturation and span_ns > 0:
        sat = _saturation_search(compiled, host, states, source, cache, mapping, config, t0, span_ns, k_link,
                                 n_guests, pool, n_threads, progress)
    else:
        for a in compiled:
            sat[a.name] = {"factor": float("nan"), "limited_by": "not searched" if span_ns > 0 else
                           "trace span is 0", "passes": 0, "link_factor": k_link}
        if span_ns <= 0:
            warnings.append("trace span is 0 ns: utilisation, throughput and saturation are undefined")

    summary_rows = _summary_rows(compiled, states, host, mapping, span_ns, sat)
    trace_info = dict(source.info)
    trace_info.update({"first_ts_ns": first_ts, "last_ts_ns": last_ts, "span_ns": span_ns,
                       "host_packets": int(states[0].acc_rows[:, :, ROW_PACKETS].sum()),
                       "left_out_packets": left_out})
    arch_params = sorted({p for a in archs for p in a.param_names()} | set(HOST_PARAMS))
    return ReplayResult(
        summary_rows=summary_rows, mapping=mapping.to_dict(), config=config.to_dict(),
        params=params.rows([p for p in arch_params if p in params]), trace=trace_info, warnings=warnings,
        saturation=sat, guest_names=list(mapping.guest_names),
        kernel_ns_per_packet={a.name: (1e9 * kernel_s[i] / kernel_packets if kernel_packets else float("nan"))
                              for i, a in enumerate(compiled)})


def _saturation_search(compiled, host, states, source, cache, mapping, config, t0, span_ns, k_link,
                       n_guests, pool, n_threads, progress=None) -> dict[str, dict[str, Any]]:
    n_arch = len(compiled)
    lo = np.zeros(n_arch)
    hi = np.zeros(n_arch)
    done = np.zeros(n_arch, bool)
    link_first = np.zeros(n_arch, bool)
    result: dict[str, dict[str, Any]] = {}
    for ai, a in enumerate(compiled):
        st = states[ai]
        # estimate: the factor at which the busiest CPU would be full, had every packet been delivered
        util = st.acc_cpu_cycles[0].max() / host.clock_hz / (span_ns / 1e9)
        offered = st.acc_rows[:, :, ROW_PACKETS].sum()
        dropped = st.acc_rows[:, :, ROW_DROPS].sum()
        delivered = offered - dropped
        if delivered > 0:
            util *= offered / delivered
        k_est = min(k_link, 1.0 / util if util > 0 else k_link)
        # the link is expected to bind first: no drop at the trace's own timing, CPUs not full at the link rate
        link_first[ai] = dropped == 0 and util * k_link < 1.0
        lo[ai], hi[ai] = k_est / 2.0, min(k_est * 2.0, k_link)
        result[a.name] = {"factor": float("nan"), "limited_by": "", "passes": 0, "link_factor": float(k_link)}

    def chunks():
        if cache is not None:
            return iter(cache)
        return (prepare_chunk(c, mapping, config.segments, config.mtu)[0]
                for c in _prefetched(source.chunks()))

    def run_pass(grids: dict[int, np.ndarray]) -> dict[int, KernelState]:
        if cache is not None:
            return run_pass_cached(grids)
        # each architecture's factors are split in parts (one state each) so the threads share the work
        parts: list[tuple[int, KernelState]] = []
        for ai, g in grids.items():
            n_parts = max(1, min(len(g), -(-n_threads * 2 // max(len(grids), 1))))
            for sub in np.array_split(g, n_parts):
                if len(sub):
                    parts.append((ai, _sat_state(sub, host, n_guests, compiled[ai], span_ns)))
        done_packets = 0
        for hp in chunks():
            if len(hp) == 0:
                continue
            list(pool.map(lambda p, hp=hp: _run(compiled[p[0]], host, p[1], hp, t0, config.link_bps, n_guests,
                                                 detail=False), parts))
            done_packets += len(hp)
            if progress is not None:
                progress("saturation", done_packets)
        for ai in grids:
            result[compiled[ai].name]["passes"] += 1
        return {ai: _merge_states([st for a2, st in parts if a2 == ai]) for ai in grids}

    def run_pass_cached(grids: dict[int, np.ndarray]) -> dict[int, KernelState]:
        # packets in memory: one job per (architecture, factor), each over every chunk, scheduled
        # dynamically on the pool (no barrier per chunk; a factor that turns infeasible frees its
        # thread at once). Factors are independent simulations, so the results are the same.
        def job(ai: int, st: KernelState) -> None:
            for hp in cache:
                if st.dead[0]:
                    break
                if len(hp):
                    _run(compiled[ai], host, st, hp, t0, config.link_bps, n_guests, detail=False)

        parts = [(ai, _sat_state(g[j:j + 1], host, n_guests, compiled[ai], span_ns))
                 for ai, g in grids.items() for j in range(len(g))]
        if config.threads is None:
            # all simulations of the pass at once, time-sliced by the OS: a pass ends when its work is
            # done (total / CPUs), not after whole rounds of `threads` simulations (5 feasible
            # factors on 2 threads: 3 rounds, one of them on one CPU). An explicit `threads` is kept.
            with ThreadPoolExecutor(max_workers=min(len(parts), _SAT_MAX_THREADS)) as sat_pool:
                for f in [sat_pool.submit(job, ai, st) for ai, st in parts]:
                    f.result()
        else:
            for f in [pool.submit(job, ai, st) for ai, st in parts]:
                f.result()
        if progress is not None:
            done_packets = 0
            for hp in cache:
                done_packets += len(hp)
                progress("saturation", done_packets)
        for ai in grids:
            result[compiled[ai].name]["passes"] += 1
        return {ai: _merge_states([st for a2, st in parts if a2 == ai]) for ai in grids}

    # pass 0 includes the link cap itself: alone where the link is expected to bind first (the common
    # case at 1 Gb/s: one simulation), else as the top of a first bracketing grid under it
    lo_known = np.zeros(n_arch, bool)   # lo is known feasible
    hi_known = np.zeros(n_arch, bool)   # hi is known infeasible
    for _pass in range(17):
        active = [ai for ai in range(n_arch) if not done[ai]]
        if not active:
            break
        grids = {}
        for ai in active:
            if _pass == 0:
                grids[ai] = (np.array([k_link]) if link_first[ai]
                             else np.geomspace(min(lo[ai], k_link / 2.0), k_link, _SAT_GRID + 2)[1:])
                continue
            g = np.geomspace(lo[ai], hi[ai], _SAT_GRID + 2)
            grids[ai] = g[int(lo_known[ai]):len(g) - int(hi_known[ai])]
        sts = run_pass(grids)
        for ai in active:
            a = compiled[ai]
            feas = _feasible(sts[ai], host.clock_hz, span_ns)
            g = grids[ai]
            bad = np.flatnonzero(~feas)
            if len(bad) == 0:
                lo[ai], lo_known[ai] = g[-1], True
                if not hi_known[ai]:
                    hi[ai] = min(g[-1] * 4.0, k_link)
                    hi_known[ai] = hi[ai] == k_link
            else:
                st = sts[ai]
                b = bad[0]
                util = (st.acc_cpu_cycles[b] / host.clock_hz / (span_ns / st.factors[b] / 1e9)).max()
                result[a.name]["limited_by"] = "cpu" if util > 1.0 else "drops"
                hi[ai], hi_known[ai] = g[b], True
                if b > 0:
                    lo[ai], lo_known[ai] = g[b - 1], True
                elif not lo_known[ai]:
                    lo[ai] = g[0] / 4.0
                    if hi[ai] < 1e-6:
                        lo[ai] = 0.0
                        done[ai] = True
                        result[a.name]["limited_by"] = "infeasible at any rate"
                        continue
            if lo_known[ai] and lo[ai] >= k_link:
                done[ai] = True
                result[a.name]["limited_by"] = "link"
            if lo_known[ai] and hi_known[ai] and hi[ai] / lo[ai] <= 1.0 + config.saturation_tol:
                done[ai] = True
    for ai, a in enumerate(compiled):
        result[a.name]["factor"] = float(lo[ai])
        if not done[ai]:
            result[a.name]["limited_by"] += " (search did not converge)"
    return result


def _summary_rows(compiled, states, host, mapping, span_ns, sat) -> list[dict[str, Any]]:
    span_s = span_ns / 1e9 if span_ns > 0 else float("nan")
    out = []
    names = mapping.guest_names
    G = mapping.n_guests
    for ai, a in enumerate(compiled):
        st = states[ai]
        k_sat = sat[a.name]["factor"]
        busiest_cpu_cycles = float(st.acc_cpu_row.sum(axis=(0, 1)).max())
        for gsel in list(range(G)) + ["all"]:
            for dsel in ["rx", "tx", "all"]:
                gs = list(range(G)) if gsel == "all" else [gsel]
                ds = [0, 1] if dsel == "all" else [DIRECTION_INDEX[dsel]]
                acc = st.acc_rows[gs][:, ds].sum(axis=(0, 1))
                packets = acc[ROW_PACKETS]
                wire = acc[ROW_WIRE]
                cyc = acc[ROW_CYCLES:ROW_CYCLES + len(COMPONENTS)]
                total = cyc.sum()
                row = {"arch": a.name, "guest": names[gsel] if gsel != "all" else "all", "direction": dsel,
                       "packets": int(packets), "frames": int(acc[ROW_FRAMES]), "wire_bytes": int(wire),
                       "payload_bytes": int(acc[ROW_PAYLOAD]), "cycles_total": float(total),
                       "cycles_per_packet": float(total / packets) if packets else float("nan"),
                       "cycles_per_byte": float(total / wire) if wire else float("nan")}
                for ci, c in enumerate(COMPONENTS):
                    row[f"cycles_{c}"] = float(cyc[ci])
                row["cpu_util"] = float(total / host.clock_hz / span_s)
                ctx = st.acc_ctx[gs][:, ds].sum(axis=(0, 1))
                for ci, c in enumerate(CONTEXTS):
                    row[f"cpu_util_{c}"] = float(ctx[ci] / host.clock_hz / span_s)
                cpu = st.acc_cpu_row[gs][:, ds].sum(axis=(0, 1))
                for c in range(host.n_cpus):
                    row[f"cpu_util_cpu{c}"] = float(cpu[c] / host.clock_hz / span_s)
                row["delivered_bps"] = float(8.0 * acc[ROW_DELIVERED_WIRE] / span_s)
                row["saturation_bps"] = float(8.0 * wire * k_sat / span_s)
                row["cpu_bound_bps"] = (float(8.0 * acc[ROW_DELIVERED_WIRE] * host.clock_hz / busiest_cpu_cycles)
                                        if busiest_cpu_cycles > 0 else float("nan"))
                row["drops"] = int(acc[ROW_DROPS])
                hist = st.lat_hist[gs][:, ds].sum(axis=(0, 1))
                row["latency_p50_ns"] = _percentile(hist, 0.50)
                row["latency_p99_ns"] = _percentile(hist, 0.99)
                out.append(row)
    return out


SUMMARY_COLUMNS: tuple[str, ...] = (
    ("arch", "guest", "direction", "packets", "frames", "wire_bytes", "payload_bytes", "cycles_total",
     "cycles_per_packet", "cycles_per_byte")
    + tuple(f"cycles_{c}" for c in COMPONENTS) + ("cpu_util",) + tuple(f"cpu_util_{c}" for c in CONTEXTS)
    + ("delivered_bps", "saturation_bps", "cpu_bound_bps", "drops", "latency_p50_ns", "latency_p99_ns"))
"""Summary columns, in order (plus cpu_util_cpu<i> for each CPU of the placement, after cpu_util_guest)."""


def comparison_rows(summary_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The compact per-architecture comparison the CLI prints, from ReplayResult.summary_rows (no
    pandas): one dict per arch, its guest "all" / direction "all" row (columns: see
    :func:`comparison_table`)."""
    out = []
    for s in summary_rows:
        if s["guest"] != "all" or s["direction"] != "all":
            continue
        packets = s["packets"]
        row = {"arch": s["arch"], "packets": packets, "saturation_mbps": s["saturation_bps"] / 1e6,
               "cpu_bound_mbps": s["cpu_bound_bps"] / 1e6,
               "delivered_mbps": s["delivered_bps"] / 1e6, "cpu_util_pct": 100.0 * s["cpu_util"],
               "cycles_per_packet": s["cycles_per_packet"], "cycles_per_byte": s["cycles_per_byte"],
               "drops": s["drops"]}
        for c in COMPONENTS:
            row[c] = s[f"cycles_{c}"] / packets if packets > 0 else float("nan")
        out.append(row)
    return out


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The compact per-architecture comparison (guest "all", direction "all"): :func:`comparison_rows`
    of a summary DataFrame, as a DataFrame.

    Columns: arch, packets, saturation_mbps, cpu_bound_mbps, delivered_mbps, cpu_util_pct,
    cycles_per_packet, cycles_per_byte, drops, then one cycles-per-packet column per component (short
    names).
    """
    import pandas as pd

    return pd.DataFrame(comparison_rows(summary.to_dict("records")))


def sensitivity_rows(trace: str | Path | PacketChunk | Iterable[PacketChunk], config: ReplayConfig,
                     param_names: list[str] | None = None) -> pd.DataFrame:
    """How the comparison moves across the parameters' plausible ranges (DESIGN.md section 3).

    Replays ``trace`` once with the configured values and once with each parameter of
    ``param_names`` (default: every non-published numeric parameter the archs use) at its ``low``
    and its ``high``. One row per (param, end, arch): saturation_bps, cycles_per_packet and cpu_util
    of the guest "all" / direction "all" row, with the baseline values beside them.
    """
    import pandas as pd

    if not isinstance(trace, str | Path | PacketChunk):
        trace = list(trace)
    params = load_params(config.params, config.param_overrides)
    if param_names is None:
        used = {p for a in resolve_architectures(config.archs, config.arch_files) for p in a.param_names()}
        param_names = sorted(n for n in used if n in params and params.get(n).status != "published"
                             and not isinstance(params.get(n).value, str))
    if isinstance(config.param_overrides, str | Path):
        raise OptionError("sensitivity_rows needs param_overrides as a dict (or none)")
    base_over = config.param_overrides or {}

    def table(cfg: ReplayConfig) -> pd.DataFrame:
        return pd.DataFrame(comparison_rows(run_replay(trace, cfg).summary_rows)).set_index("arch")

    base = table(config)
    rows = []
    for name in param_names:
        p = params.get(name)
        for end in ("low", "high"):
            value = getattr(p, end)
            cfg = ReplayConfig(**{**config.to_dict(), "param_overrides": {**base_over, name: value}})
            t = table(cfg)
            for arch in t.index:
                rows.append({"param": name, "end": end, "value": value, "arch": arch,
                             "saturation_mbps": t.loc[arch, "saturation_mbps"],
                             "base_saturation_mbps": base.loc[arch, "saturation_mbps"],
                             "cycles_per_packet": t.loc[arch, "cycles_per_packet"],
                             "base_cycles_per_packet": base.loc[arch, "cycles_per_packet"],
                             "cpu_util_pct": t.loc[arch, "cpu_util_pct"]})
    return pd.DataFrame(rows)
