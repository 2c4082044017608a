"""The replay kernel on tiny hand-made traces whose cycles and times are computed by hand.

Parameters are overridden to round numbers and clock_hz = 1e9, so one cycle is one nanosecond.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from pipeline.ingest.columns import PacketChunk
from pipeline.kernels.replay_kernel import (
    DOMAIN_SWITCH_COMPONENT,
    LAT_BINS,
    LAT_EDGES,
    LAT_SUB,
    N_COMPONENTS,
    KernelState,
    _lat_bin,
)
from pipeline.models.components import COMPONENT_INDEX, COMPONENTS, CONTEXTS
from pipeline.replay import ReplayConfig, run_replay

HOST = 0x0A000002
V4 = 0xFFFF << 32


def tiny(rows: list[tuple[int, str, int, int, int]], host_mac: int = 0x02_0000_0002) -> PacketChunk:
    """rows: (ts_ns, 'rx'|'tx', wire_len, payload_len, remote id); remote id picks MAC and IP."""
    ch = PacketChunk.empty(len(rows))
    for i, (ts, d, wire, payload, remote) in enumerate(rows):
        rmac, rip = 0x02_0000_1000 + remote, 0x0A010000 + remote
        ch.ts_ns[i] = ts
        ch.wire_len[i] = wire
        ch.cap_len[i] = min(wire, 96)
        ch.linktype[i] = 1
        ch.ethertype[i] = 0x0800
        ch.vlan_id[i] = -1
        ch.ip_version[i] = 4
        ch.ip_proto[i] = 6
        ch.payload_len[i] = payload
        ch.ip_total_len[i] = payload + 40
        src, dst = (rip, HOST) if d == "rx" else (HOST, rip)
        ch.src_ip_lo[i], ch.dst_ip_lo[i] = V4 | src, V4 | dst
        ch.src_mac[i], ch.dst_mac[i] = (rmac, host_mac) if d == "rx" else (host_mac, rmac)
        ch.src_port[i], ch.dst_port[i] = (40000, 5001) if d == "rx" else (5001, 40000)
    return ch


def replay(ch, archs, overrides, **kw):
    packets: dict[str, list[dict]] = {}

    def sink(arch, cols):
        packets.setdefault(arch, []).append({k: np.asarray(v).copy() for k, v in cols.items()})

    cfg = ReplayConfig(archs=archs, hosts=["10.0.0.2"], param_overrides={"clock_hz": 1e9, **overrides},
                       **kw)
    res = run_replay(ch, cfg, packet_sink=sink)
    merged = {a: {k: np.concatenate([c[k] for c in v]) for k in v[0]} for a, v in packets.items()}
    return res, merged


def test_kernel_constants_match_the_vocabularies():
    """numba freezes the kernel's constants (and caches the compiled kernel): they must follow
    pipeline.models.components by hand."""
    assert N_COMPONENTS == len(COMPONENTS)
    assert DOMAIN_SWITCH_COMPONENT == COMPONENT_INDEX["domain_switch"]
    assert CONTEXTS[:3] == ("kernel", "vmm", "dom0")   # the kernel's ctx < 3 / ctx >= 2 tests
    assert KernelState(np.ones(1), 1, 1, 1, 1).acc_ctx.shape[2] == len(CONTEXTS)


def _exact_lat_bin(x: float) -> int:
    """floor(log2(x) * LAT_SUB) in rational arithmetic, for x >= 1."""
    f = Fraction(x)
    e = math.frexp(x)[1] - 1
    return e * LAT_SUB + sum(f ** LAT_SUB >= Fraction(2) ** (LAT_SUB * e + q) for q in range(1, LAT_SUB))


def test_latency_bins_are_floor_log2_exactly():
    # lat + 1 = x: +-20 ulps around every bin edge 2 ** (e + q / LAT_SUB) up to 2 ** 40 ns, and
    # random latencies up to 1000 s
    xs = []
    for e in range(41):
        for q in range(1, LAT_SUB):
            v = 2.0 ** (e + q / LAT_SUB)
            for _ in range(20):
                v = math.nextafter(v, 0.0)
            for _ in range(41):
                xs.append(v)
                v = math.nextafter(v, math.inf)
    xs += (1.0 + np.exp(np.random.default_rng(0).uniform(0.0, math.log(1e12), 2000))).tolist()
    rounded_edges = {float(c) * 2.0 ** e for c in LAT_EDGES for e in range(41)}
    off_by_one = 0
    for x in xs:
        b, exact = _lat_bin(x - 1.0), _exact_lat_bin(x)   # x - 1 + 1 == x exactly below 2 ** 53
        if b != exact:
            assert b == exact + 1 and x in rounded_edges, x   # the rounded edge itself, binned up
            off_by_one += 1
    assert off_by_one < 0.05 * len(xs)
    assert _lat_bin(-5.0) == 0 and _lat_bin(0.0) == 0 and _lat_bin(1.0) == LAT_SUB
    assert _lat_bin(1e300) == LAT_BINS - 1


LINUX = {"irq_cycles": 1000, "driver_rx_per_packet": 100, "stack_rx_per_packet": 2000, "copy_per_byte": 1}


def test_linux_rx_cycles_and_times_by_hand():
    ch = tiny([(0, "rx", 154, 100, 1), (10_000, "rx", 254, 200, 1), (20_000, "rx", 354, 300, 1),
               (1_000_000, "rx", 54, 0, 1)])
    res, pk = replay(ch, ["linux"], LINUX, saturation=False)
    p = pk["linux"]
    # p0 opens a batch firing at once (RxIntDelay 0); p1 must wait for the 8000/s throttle (125 us);
    # p2 arrives before that fire time and joins p1's batch (no interrupt cost); p3 is alone.
    assert p["cycles_interrupt"].tolist() == [1000, 1000, 0, 1000]
    assert p["cycles_descriptor"].tolist() == [100] * 4
    assert p["cycles_stack"].tolist() == [2100, 2200, 2300, 2000]
    assert p["completion_ns"].tolist() == [3200, 125_000 + 3300, 128_300 + 2400, 1_000_000 + 3100]
    for c in ("bridge", "segment_switch", "domain_switch", "hypercall_event", "grant_copy"):
        assert not p[f"cycles_{c}"].any()
    s = res.summary.set_index(["arch", "guest", "direction"])
    row = s.loc[("linux", "all", "all")]
    assert row.cycles_total == 3200 + 3300 + 2400 + 3100
    assert row.cpu_util == pytest.approx(12_000 / 1e9 / 1e-3)   # span 1 ms
    assert row.packets == 4 and row.wire_bytes == 154 + 254 + 354 + 54 and row.payload_bytes == 600
    assert row.delivered_bps == pytest.approx(8 * 816 / 1e-3)
    assert s.loc[("linux", "all", "tx")].packets == 0


XEN = {"trap_bounce_cycles": 10, "irq_cycles": 20, "driver_rx_per_packet": 30, "bridge_lookup_cycles": 40,
       "bridge_learn_cycles": 5, "bridge_flood_per_port_cycles": 7, "netback_rx_per_packet": 50,
       "hypercall_cycles": 60, "page_flip_per_packet": 70, "netfront_per_packet": 80,
       "stack_rx_per_packet": 90, "copy_per_byte": 0, "domain_switch_cycles": 1000,
       "stack_tx_per_packet": 95, "netback_tx_per_packet": 100, "netback_tx_per_byte": 0,
       "grant_map_per_packet": 110, "driver_tx_per_packet": 120}


def test_xen_rx_then_tx_by_hand():
    ch = tiny([(0, "rx", 1514, 1448, 1), (1_000_000, "tx", 1514, 1448, 1)])
    _, pk = replay(ch, ["xen"], XEN, saturation=False)
    p = pk["xen"]
    c = {k: p[f"cycles_{k}"].tolist() for k in COMPONENTS}
    # RX: Xen bounces the IRQ (10) and dom0 takes it (20); driver 30; bridge 40 + learn the sender 5 +
    # flood to the one other port because the guest's MAC is not known yet 7; netback 50 + one
    # backend batch 60; flip 70; event 60 + virq 10 for an idle guest; netfront 80; stack 90; the
    # CPU switches dom0 -> guest once (1000); the first entry into dom0 is free.
    assert c["interrupt"][0] == 10 + 20 + 10
    assert c["descriptor"][0] == 30
    assert c["bridge"][0] == 40 + 5 + 7
    assert c["hypercall_event"][0] == 50 + 60 + 60 + 80
    assert c["grant_copy"][0] == 70
    assert c["stack"][0] == 90
    assert c["domain_switch"][0] == 1000
    assert c["segment_switch"] == [0, 0]
    # TX: guest stack 95, netfront 80, event to dom0 60, dom0 virq 10, netback 100, grant map 110,
    # bridge 40 + learn the guest's vif 5 (the destination was learned from the RX packet: no flood),
    # driver 120, completion IRQ 10 + 20, response event 60, one switch guest -> dom0.
    assert c["stack"][1] == 95
    assert c["hypercall_event"][1] == 80 + 60 + 100 + 60
    assert c["interrupt"][1] == 10 + 10 + 20
    assert c["grant_copy"][1] == 110
    assert c["bridge"][1] == 45
    assert c["descriptor"][1] == 120
    assert c["domain_switch"][1] == 1000


def test_bridge_floods_unknown_destinations_and_learns_sources():
    # TX to 20 distinct remote hosts never seen: every packet floods; to one known host: none does
    many = tiny([(i * 1_000_000, "tx", 100, 46, 100 + i) for i in range(20)])
    known = tiny([(0, "rx", 100, 46, 7)] + [(i * 1_000_000, "tx", 100, 46, 7) for i in range(1, 20)])
    over = {**XEN}
    _, pk_many = replay(many, ["xen", "dbnet"], over, saturation=False, n_guests=3)
    _, pk_known = replay(known, ["xen", "dbnet"], over, saturation=False, n_guests=3)
    xb_many = pk_many["xen"]["cycles_bridge"]
    xb_known = pk_known["xen"]["cycles_bridge"][1:]
    # flood = 7 cycles x (ports - 1) = 7 x 3 (uplink + 2 other guests); the 20 flows go round robin
    # to the 3 guests, whose first packets each learn their vif
    assert xb_many.tolist() == [40 + 5 + 21] * 3 + [40 + 21] * 17
    assert xb_known.tolist() == [40 + 5] + [40] * 18
    db = pk_many["dbnet"]["cycles_bridge"]
    assert (db > pk_known["dbnet"]["cycles_bridge"][1:].mean()).all()


def test_bridge_entries_age_out():
    over = {**XEN, "bridge_ageing_ns": 1e6}
    ch = tiny([(0, "rx", 100, 46, 7), (500_000, "tx", 100, 46, 7), (5_000_000, "tx", 100, 46, 7)])
    _, pk = replay(ch, ["xen"], over, saturation=False)
    b = pk["xen"]["cycles_bridge"].tolist()
    assert b[1] == 40 + 5            # learns the vif, destination known
    assert b[2] == 40 + 5 + 7        # both entries aged out after 1 ms: relearn + flood


def test_ring_full_drops_rx_packets():
    # 10 frames at once (the 1 Gb/s link spaces them 800 ns apart); each takes 100 us of CPU; the
    # descriptor is freed when the driver has handled the packet, so with 4 descriptors p0..p4 fit
    # (p0's is free again at 1.1 us) and p5..p9 find the ring full.
    over = {**LINUX, "stack_rx_per_packet": 100_000}
    ch = tiny([(0, "rx", 100, 46, 1)] * 10)
    res, pk = replay(ch, ["linux"], over, saturation=False, ring_size=4)
    p = pk["linux"]
    assert p["dropped"].tolist() == [False] * 5 + [True] * 5
    assert (p["completion_ns"][5:] == -1).all()
    assert p["cycles_stack"][5:].sum() == 0
    assert res.summary.query("guest == 'all' and direction == 'all'").drops.iloc[0] == 5
    res2, pk2 = replay(ch, ["linux"], over, saturation=False, ring_size=256)
    assert not pk2["linux"]["dropped"].any()


def test_tx_ring_full_waits_instead_of_dropping():
    over = {**LINUX, "stack_tx_per_packet": 10, "driver_tx_per_packet": 10}
    ch = tiny([(0, "tx", 1500, 1446, 1)] * 10)   # 12 us each on a 1 Gb/s link
    _, pk = replay(ch, ["linux"], over, saturation=False, ring_size=2)
    p = pk["linux"]
    assert not p["dropped"].any()
    done = p["completion_ns"]
    assert np.all(np.diff(done) >= 12_000)   # serialised on the link


def test_napi_budget_splits_batches():
    over = {**LINUX, "napi_budget": 4}
    ch = tiny([(0, "rx", 60, 0, 1)] + [(1_000 + i, "rx", 60, 0, 1) for i in range(10)])
    _, pk = replay(ch, ["linux"], over, saturation=False)
    irq = pk["linux"]["cycles_interrupt"]
    # p0 alone; p1..p10 arrive before the throttled fire time: polls of 4, 4, 2
    assert irq.tolist() == [1000, 1000, 0, 0, 0, 1000, 0, 0, 0, 1000, 0]


def test_segments_mss_splits_super_segments():
    over = {**LINUX}
    ch = tiny([(0, "rx", 65226, 65160, 1)])
    _, cap = replay(ch, ["linux"], over, saturation=False, segments="captured")
    r, mss = replay(ch, ["linux"], over, saturation=False, segments="mss", mtu=1500)
    # 65160 bytes at MSS 1460 (IP+TCP headers 40) = 45 frames: per-frame costs x 45, bytes the same
    assert cap["linux"]["cycles_descriptor"][0] == 100
    assert mss["linux"]["cycles_descriptor"][0] == 100 * 45
    assert mss["linux"]["cycles_stack"][0] == 2000 * 45 + 65160
    row = r.summary.query("guest == 'all' and direction == 'rx'").iloc[0]
    assert row.frames == 45 and row.packets == 1
    assert row.wire_bytes == 65160 + 45 * 66


_SCRIPT = r"""
import json, sys
import numpy as np
from pipeline.models.fit import synthetic_bulk_trace
from pipeline.replay import ReplayConfig, run_replay
ch = synthetic_bulk_trace("rx", 1500, n_data=40, data_pps=200_000)
res = run_replay(ch, ReplayConfig(hosts=["10.0.0.1"], n_guests=2, saturation_tol=0.2))
s = res.summary
print(json.dumps({"cycles": s.cycles_total.tolist(), "sat": s.saturation_bps.tolist(),
                  "lat": s.latency_p99_ns.tolist()}))
"""


@pytest.mark.slow
def test_kernels_without_jit_agree_with_compiled():
    out = {}
    for jit in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit)
        r = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env,
                           timeout=600)
        assert r.returncode == 0, r.stderr
        out[jit] = json.loads(r.stdout.strip().splitlines()[-1])
    for k in ("cycles", "sat", "lat"):
        np.testing.assert_allclose(out["0"][k], out["1"][k], rtol=1e-12)
    assert sum(out["0"]["cycles"]) > 0
