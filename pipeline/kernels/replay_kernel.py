"""The numba replay kernel: one architecture, one chunk of host packets, K time-compression factors.

Model (DESIGN.md section 3), per factor k (arrival time t = (ts - t0) / factor[k], ns relative to t0,
so float64 keeps ns precision):

- NIC queues (0 = RX, 1 = TX completion): a packet joins the open batch of its queue if it arrives no
  later than the batch's fire time and the NAPI budget is not exceeded; otherwise it opens a new batch
  whose fire time is ``max(t + delay[q], last_fire[q] + 1e9 / itr)`` (e1000 throttle + absolute delay),
  or, when the previous batch was closed by the budget, NAPI's next poll at the previous fire time.
  ``nic`` per-batch costs are charged to the batch's first packet. ``backend`` batches: the first
  packet of a guest (and direction) in a NIC batch. ``guest`` batches (event / virtual interrupt):
  a new backend batch that finds the guest's previous packet already completed (an idle guest).
- Descriptor rings: a circular array of the release times of the last R descriptors per queue; an
  RX packet needing n descriptors is dropped (no cycles) if the n-th oldest is still held at time t;
  a TX packet waits for it instead (the sender's queue holds it: backpressure, not loss).
- CPUs are single servers with a busy-until time. RX work starts at the batch's fire time, TX work at
  the packet's own time; each stage starts when both the packet and the stage's CPU are ready.
  A stage in a domain (dom0 = 0, guest g = 1 + g) on a CPU last in another domain charges one domain
  switch, at most once per (CPU, domain, NIC batch).
- Saturation passes (``stop_infeasible``): a factor is abandoned at its first drop or as soon as a
  CPU has been charged more cycles than ``cap_cycles[k]`` (it can no longer be feasible).
- Bridge stages learn the source (remote MAC, or the guest's vif) in an open-addressing MAC table
  with ageing, and flood to all other ports when the destination is unknown.
- The link serialises frames in each direction (``link_ns_per_byte``): an RX frame arrives no earlier
  than the previous one plus its own transmission time (a capture from a faster medium, or a
  compressed replay, cannot deliver frames faster than the modeled NIC's link); a TX frame leaves
  after the previous one, and its descriptor is released when it has left.

All parameters come in as arguments (numba freezes globals). State arrays carry everything between
chunks, so results do not depend on the chunk size. Factors are independent simulations: the kernel
runs them one after the other over the chunk, each with its hot state in local variables (measured
~20-30 % faster than interleaving factors packet by packet through the state arrays; the same
arithmetic, so the same results). With ``detail``, factor 0 also accumulates the
per (guest, direction) sums (``acc_rows``, ``acc_ctx``, ``acc_cpu_row``, ``lat_hist``); with
``write_out`` as well, it writes every element of the per-packet outputs (so they may be reused
``np.empty`` buffers): cycles per component, completion time (absolute ns, -1 when dropped), dropped.

Consecutive stages of one context form a run (registry.CompiledArch): a run is scheduled as one CPU
step, with the same timing as stage by stage; the per-component split is only computed for the
detailed factor.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.kernels.jit import njit_cached

N_COMPONENTS = 8
DOMAIN_SWITCH_COMPONENT = 4  # components.COMPONENT_INDEX["domain_switch"]
GUEST_KEY_BASE = np.uint64(1) << np.uint64(62)
NIC_FIRE, NIC_COUNT, NIC_LAST_FIRE, NIC_BATCH, NIC_FULL = 0, 1, 2, 3, 4
NIC_STATE_WIDTH = 5
#: per (guest, direction) row sums of the detailed factor: acc_rows[g, d, ROW_*]
ROW_PACKETS, ROW_FRAMES, ROW_WIRE, ROW_PAYLOAD, ROW_DELIVERED_WIRE, ROW_DROPS, ROW_CYCLES = 0, 1, 2, 3, 4, 5, 6
ROW_WIDTH = ROW_CYCLES + N_COMPONENTS
#: latency histogram: LAT_SUB bins per octave of (latency_ns + 1), LAT_BINS bins
LAT_SUB = 8
LAT_BINS = LAT_SUB * 64
#: mantissa thresholds 2 ** (q / LAT_SUB), q = 1 .. LAT_SUB - 1, of the latency bins within an octave
LAT_EDGES = 2.0 ** (np.arange(1, LAT_SUB) / LAT_SUB)


@njit_cached(nogil=True, inline="always")
def _hash_slot(key, mask):
    h = key ^ (key >> np.uint64(31))
    h = h * np.uint64(0x9E3779B97F4A7C15)
    h = h ^ (h >> np.uint64(29))
    return np.int64(h & np.uint64(mask))


@njit_cached(nogil=True, inline="always")
def _lat_bin(lat):
    """Histogram bin of a latency (ns; negative counts as 0): floor(log2(lat + 1) * LAT_SUB), capped
    at LAT_BINS - 1, from the binary exponent and LAT_SUB - 1 comparisons of the mantissa.

    Exact (tests/kernels/test_replay_kernel.py checks it against rational arithmetic) except for a
    value equal to a rounded edge (LAT_EDGES) below the true one, which is binned up. The formula it
    replaced, ``np.int64(np.log2(lat + 1.0) * LAT_SUB)``, misbins some values up to ~20 ulps from an
    edge (log2's rounding; seen probing +-200 ulps around every edge up to 2 ** 50) and agrees
    elsewhere; this one was measured ~3 ns per detailed packet cheaper (bench_replay_kernels).
    """
    if lat < 0.0:
        lat = 0.0
    mant, expo = math.frexp(lat + 1.0)
    mant *= 2.0
    b = (expo - 1) * LAT_SUB
    for q in range(LAT_SUB - 1):
        if mant >= LAT_EDGES[q]:
            b += 1
    if b >= LAT_BINS:
        b = LAT_BINS - 1
    return b


@njit_cached(nogil=True, inline="always")
def _close_segment(cpu_busy, acc_cpu_cycles, k, cpu, start, cycles, ns_per_cycle, cap):
    """End a CPU segment of ``cycles`` started at ``start``: the CPU is busy until its end, and its
    cycles are charged. Returns (end time, whether the CPU's charged cycles now exceed ``cap``)."""
    end = start + cycles * ns_per_cycle
    cpu_busy[k, cpu] = end
    acc = acc_cpu_cycles[k, cpu] + cycles
    acc_cpu_cycles[k, cpu] = acc
    return end, acc > cap


@njit_cached(nogil=True)
def _bridge_insert(keys, ports, seen, k, key, port, t, ageing_ns):
    """Insert ``key`` (known to be absent) into an empty or aged-out slot; the slot, or -1 if full."""
    cap = keys.shape[1]
    mask = cap - 1
    slot = _hash_slot(key, mask)
    for _ in range(cap):
        if keys[k, slot] == 0 or (t - seen[k, slot]) > ageing_ns:
            keys[k, slot] = key
            ports[k, slot] = port
            seen[k, slot] = t
            return slot
        slot = (slot + 1) & mask
    return -1


@njit_cached(nogil=True)
def _bridge_find(keys, k, key):
    """The slot holding ``key``, or -1."""
    cap = keys.shape[1]
    mask = cap - 1
    slot = _hash_slot(key, mask)
    for _ in range(cap):
        kk = keys[k, slot]
        if kk == key:
            return slot
        if kk == 0:
            return -1
        slot = (slot + 1) & mask
    return -1


@njit_cached(nogil=True, error_model="numpy")
def replay_kernel(ts_ns, direction, guest, wire_bytes, payload_bytes, nseg, remote_key,
                  comp_cost, bridge_comp,
                  n_runs, run_ctx, run_cost, run_bridge, run_release,
                  ctx_cpu,
                  clock_hz, domain_switch_cycles, itr_interval_ns, nic_delay_ns, budget,
                  link_ns_per_byte, bridge_learn_cycles, bridge_flood_cycles, bridge_ageing_ns, n_ports,
                  factors, t0_ns,
                  nic_state, cpu_busy, cpu_dom, switch_mark, ring_release, ring_head,
                  guest_backend_batch, guest_last_done, link_free, bridge_keys, bridge_ports, bridge_seen,
                  batch_counter,
                  acc_cpu_cycles, acc_drops, acc_last_done, acc_ctx, acc_cpu_row, acc_rows, lat_hist,
                  stop_infeasible, cap_cycles, dead,
                  detail, write_out, out_cycles, out_completion, out_dropped):
    # Factors are independent simulations: each runs over the whole chunk in turn, with its hot
    # per-queue state (link, NIC batch, ring head, counters) in local variables rather than in the
    # state arrays (stores to those arrays forced reloads of everything else: ~2x slower). The
    # arithmetic is the same, operation for operation, as one factor at a time packet by packet.
    n = ts_ns.shape[0]
    n_factors = factors.shape[0]
    ring_size = ring_release.shape[2]
    ns_per_cycle = 1e9 / clock_hz
    delay_rx = nic_delay_ns[0]
    delay_tx = nic_delay_ns[1]
    comp_acc = np.zeros(N_COMPONENTS)
    for k in range(n_factors):
        if dead[k] != 0:
            continue
        inv_factor = 1.0 / factors[k]
        first_detail = detail and k == 0
        cap_k = cap_cycles[k]
        # hot state of factor k (written back after the loop)
        link_rx = link_free[k, 0]
        link_tx = link_free[k, 1]
        fire_rx = nic_state[k, 0, NIC_FIRE]
        count_rx = nic_state[k, 0, NIC_COUNT]
        last_fire_rx = nic_state[k, 0, NIC_LAST_FIRE]
        batch_rx = np.int64(nic_state[k, 0, NIC_BATCH])
        fire_tx = nic_state[k, 1, NIC_FIRE]
        count_tx = nic_state[k, 1, NIC_COUNT]
        last_fire_tx = nic_state[k, 1, NIC_LAST_FIRE]
        batch_tx = np.int64(nic_state[k, 1, NIC_BATCH])
        head_rx = ring_head[k, 0]
        head_tx = ring_head[k, 1]
        n_batches = batch_counter[k]
        drops = acc_drops[k]
        last_done = acc_last_done[k]
        is_dead = False
        for i in range(n):
            if is_dead:
                break
            d = direction[i]
            g = guest[i]
            ns_i = nseg[i]
            wire = wire_bytes[i]
            payload = payload_bytes[i]
            rel_ts = np.float64(ts_ns[i] - t0_ns)
            t = rel_ts * inv_factor
            if d == 0:
                # the NIC cannot receive faster than the link: frames arrive serialised
                t = max(t, link_rx + wire * link_ns_per_byte)
                link_rx = t
                head = head_rx
                fire = fire_rx
                count = count_rx
                bid = batch_rx
            else:
                head = head_tx
                fire = fire_tx
                count = count_tx
                bid = batch_tx
            # ---- descriptor ring
            oldest = head + ns_i - 1
            if oldest >= ring_size:
                oldest -= ring_size
            if d == 1 and ns_i <= ring_size:
                # TX ring full: the sender's queue holds the packet until descriptors free (backpressure)
                t = max(t, ring_release[k, d, oldest])
            if ns_i > ring_size or ring_release[k, d, oldest] > t:
                drops += 1
                if stop_infeasible:
                    is_dead = True
                if first_detail:
                    acc_rows[g, d, ROW_PACKETS] += 1.0
                    acc_rows[g, d, ROW_FRAMES] += ns_i
                    acc_rows[g, d, ROW_WIRE] += wire
                    acc_rows[g, d, ROW_PAYLOAD] += payload
                    acc_rows[g, d, ROW_DROPS] += 1.0
                    if write_out:
                        out_dropped[i] = True
                        out_completion[i] = -1
                        for c in range(N_COMPONENTS):
                            out_cycles[c, i] = 0.0
                continue
            # ---- NIC batch (interrupt moderation, NAPI budget)
            new_nic = True
            if count > 0 and t <= fire and count + ns_i <= budget:
                new_nic = False
                count = count + ns_i
            else:
                if count > 0 and t <= fire:
                    new_fire = fire  # budget exhausted: NAPI polls again, no new interrupt
                elif d == 0:
                    new_fire = max(t + delay_rx, last_fire_rx + itr_interval_ns)
                    last_fire_rx = new_fire
                else:
                    new_fire = max(t + delay_tx, last_fire_tx + itr_interval_ns)
                    last_fire_tx = new_fire
                fire = new_fire
                count = np.float64(ns_i)
                n_batches += 1
                bid = n_batches
            if d == 0:
                fire_rx = fire
                count_rx = count
                batch_rx = bid
            else:
                fire_tx = fire
                count_tx = count
                batch_tx = bid
            new_backend = guest_backend_batch[k, g, d] != bid
            if new_backend:
                guest_backend_batch[k, g, d] = bid
            ready = fire if d == 0 else t
            new_guest = new_backend and ready > guest_last_done[k, g, d]
            release_t = ready
            # consecutive runs on one CPU form a segment: one start = max(ready, busy), then cycles add
            # up (the same times as run by run, without a load/store chain per run)
            seg_cpu = -1
            seg_start = 0.0
            seg_cycles = 0.0
            bridge_extra = 0.0
            switch_cycles = 0.0
            # ---- runs of stages (same context: one CPU step)
            for r in range(n_runs[d]):
                cyc = run_cost[d, r, 0] * ns_i + run_cost[d, r, 1] * wire + run_cost[d, r, 2] * payload
                if new_nic:
                    cyc += run_cost[d, r, 3]
                if new_backend:
                    cyc += run_cost[d, r, 4]
                if new_guest:
                    cyc += run_cost[d, r, 5]
                extra = 0.0
                if run_bridge[d, r] != 0:
                    gkey = GUEST_KEY_BASE | np.uint64(g)
                    if d == 0:
                        src = remote_key[i]
                        src_port = 0
                        dst = gkey
                    else:
                        src = gkey
                        src_port = 1 + g
                        dst = remote_key[i]
                    # learn the source (new, moved or aged out: learn cost) and refresh it
                    slot = _bridge_find(bridge_keys, k, src)
                    if slot >= 0:
                        learned = not ((t - bridge_seen[k, slot]) <= bridge_ageing_ns
                                       and bridge_ports[k, slot] == src_port)
                        bridge_ports[k, slot] = src_port
                        bridge_seen[k, slot] = t
                    else:
                        learned = True
                        _bridge_insert(bridge_keys, bridge_ports, bridge_seen, k, src, src_port, t,
                                       bridge_ageing_ns)
                    if learned:
                        extra += bridge_learn_cycles
                    slot = _bridge_find(bridge_keys, k, dst)
                    if slot < 0 or (t - bridge_seen[k, slot]) > bridge_ageing_ns:
                        extra += bridge_flood_cycles * (n_ports - 1)
                ctx = run_ctx[d, r]
                cpu = ctx_cpu[ctx] if ctx < 3 else ctx_cpu[3 + g]
                ds = 0.0
                if ctx >= 2:
                    dom = 0 if ctx == 2 else 1 + g
                    cd = cpu_dom[k, cpu]
                    if cd != dom:
                        if cd >= 0 and switch_mark[k, cpu, dom] != bid:
                            ds = domain_switch_cycles
                            switch_mark[k, cpu, dom] = bid
                        cpu_dom[k, cpu] = dom
                total = cyc + extra + ds
                if cpu != seg_cpu:
                    if seg_cpu >= 0:
                        ready, over = _close_segment(cpu_busy, acc_cpu_cycles, k, seg_cpu, seg_start,
                                                     seg_cycles, ns_per_cycle, cap_k)
                        if stop_infeasible and over:
                            is_dead = True
                    busy = cpu_busy[k, cpu]
                    seg_start = ready if ready > busy else busy
                    seg_cycles = 0.0
                    seg_cpu = cpu
                seg_cycles += total
                if first_detail:
                    acc_ctx[g, d, ctx] += total
                    acc_cpu_row[g, d, cpu] += total
                    bridge_extra += extra
                    switch_cycles += ds
                if r == run_release[d]:
                    release_t = seg_start + seg_cycles * ns_per_cycle
            if seg_cpu >= 0:
                ready, over = _close_segment(cpu_busy, acc_cpu_cycles, k, seg_cpu, seg_start, seg_cycles,
                                             ns_per_cycle, cap_k)
                if stop_infeasible and over:
                    is_dead = True
            completion = ready
            if d == 1:
                link_start = max(release_t, link_tx)
                link_tx = link_start + wire * link_ns_per_byte
                release_t = link_tx
                completion = max(completion, release_t)
            slot = head
            for _j in range(ns_i):
                ring_release[k, d, slot] = release_t
                slot += 1
                if slot == ring_size:
                    slot = 0
            if d == 0:
                head_rx = slot
            else:
                head_tx = slot
            guest_last_done[k, g, d] = completion
            if completion > last_done:
                last_done = completion
            if first_detail:
                # per-component split: stage costs summed per component (comp_cost) + bridge + switches
                f_nic = 1.0 if new_nic else 0.0
                f_backend = 1.0 if new_backend else 0.0
                f_guest = 1.0 if new_guest else 0.0
                for c in range(N_COMPONENTS):
                    comp_acc[c] = (comp_cost[d, c, 0] * ns_i + comp_cost[d, c, 1] * wire
                                   + comp_cost[d, c, 2] * payload + comp_cost[d, c, 3] * f_nic
                                   + comp_cost[d, c, 4] * f_backend + comp_cost[d, c, 5] * f_guest)
                comp_acc[bridge_comp] += bridge_extra
                comp_acc[DOMAIN_SWITCH_COMPONENT] += switch_cycles
                acc_rows[g, d, ROW_PACKETS] += 1.0
                acc_rows[g, d, ROW_FRAMES] += ns_i
                acc_rows[g, d, ROW_WIRE] += wire
                acc_rows[g, d, ROW_PAYLOAD] += payload
                acc_rows[g, d, ROW_DELIVERED_WIRE] += wire
                for c in range(N_COMPONENTS):
                    acc_rows[g, d, ROW_CYCLES + c] += comp_acc[c]
                lat_hist[g, d, _lat_bin(completion - rel_ts)] += 1
                if write_out:
                    out_completion[i] = np.int64(completion) + t0_ns
                    out_dropped[i] = False
                    for c in range(N_COMPONENTS):
                        out_cycles[c, i] = comp_acc[c]
        # write factor k's hot state back
        link_free[k, 0] = link_rx
        link_free[k, 1] = link_tx
        nic_state[k, 0, NIC_FIRE] = fire_rx
        nic_state[k, 0, NIC_COUNT] = count_rx
        nic_state[k, 0, NIC_LAST_FIRE] = last_fire_rx
        nic_state[k, 0, NIC_BATCH] = batch_rx
        nic_state[k, 1, NIC_FIRE] = fire_tx
        nic_state[k, 1, NIC_COUNT] = count_tx
        nic_state[k, 1, NIC_LAST_FIRE] = last_fire_tx
        nic_state[k, 1, NIC_BATCH] = batch_tx
        ring_head[k, 0] = head_rx
        ring_head[k, 1] = head_tx
        batch_counter[k] = n_batches
        acc_drops[k] = drops
        acc_last_done[k] = last_done
        if is_dead:
            dead[k] = 1


NEG_INF_NS = -1.0e18


class KernelState:
    """State arrays of :func:`replay_kernel` for one architecture and K compression factors."""

    def __init__(self, factors: np.ndarray, n_cpus: int, n_guests: int, ring_size: int,
                 bridge_capacity: int) -> None:
        k = len(factors)
        self.factors = np.asarray(factors, np.float64)
        self.nic_state = np.zeros((k, 2, NIC_STATE_WIDTH), np.float64)
        self.nic_state[:, :, NIC_LAST_FIRE] = NEG_INF_NS
        self.nic_state[:, :, NIC_FIRE] = NEG_INF_NS
        self.cpu_busy = np.full((k, n_cpus), NEG_INF_NS, np.float64)
        self.cpu_dom = np.full((k, n_cpus), -1, np.int64)
        self.switch_mark = np.full((k, n_cpus, 1 + n_guests), -1, np.int64)
        self.ring_release = np.full((k, 2, ring_size), NEG_INF_NS, np.float64)
        self.ring_head = np.zeros((k, 2), np.int64)
        self.guest_backend_batch = np.full((k, n_guests, 2), -1, np.int64)
        self.guest_last_done = np.full((k, n_guests, 2), NEG_INF_NS, np.float64)
        self.link_free = np.full((k, 2), NEG_INF_NS, np.float64)
        self.bridge_keys = np.zeros((k, bridge_capacity), np.uint64)
        self.bridge_ports = np.zeros((k, bridge_capacity), np.int64)
        self.bridge_seen = np.full((k, bridge_capacity), NEG_INF_NS, np.float64)
        self.batch_counter = np.zeros(k, np.int64)
        self.acc_cpu_cycles = np.zeros((k, n_cpus), np.float64)
        self.acc_drops = np.zeros(k, np.int64)
        self.acc_last_done = np.full(k, NEG_INF_NS, np.float64)
        self.acc_ctx = np.zeros((n_guests, 2, 4), np.float64)
        self.acc_cpu_row = np.zeros((n_guests, 2, n_cpus), np.float64)
        self.acc_rows = np.zeros((n_guests, 2, ROW_WIDTH), np.float64)
        self.lat_hist = np.zeros((n_guests, 2, LAT_BINS), np.int64)
        # saturation passes: a factor is abandoned once it is infeasible (a drop, or a CPU's cycles
        # beyond cap_cycles = clock x compressed span)
        self.stop_infeasible = False
        self.cap_cycles = np.full(k, np.inf)
        self.dead = np.zeros(k, np.int8)


def run_kernel(arch, st: KernelState, *, ts_ns, direction, guest, wire_bytes, payload_bytes, nseg,
               remote_key, ctx_cpu, clock_hz, itr_interval_ns, nic_delay_ns, budget, link_ns_per_byte,
               n_ports, t0_ns, detail, write_out, out_cycles, out_completion, out_dropped) -> None:
    """Call :func:`replay_kernel` for ``arch`` (a registry.CompiledArch) with state ``st``."""
    replay_kernel(ts_ns, direction, guest, wire_bytes, payload_bytes, nseg, remote_key,
                  arch.comp_cost, int(arch.bridge_comp),
                  arch.n_runs, arch.run_ctx, arch.run_cost, arch.run_bridge, arch.run_release, ctx_cpu,
                  float(clock_hz), float(arch.domain_switch_cycles), float(itr_interval_ns), nic_delay_ns,
                  float(budget), float(link_ns_per_byte), float(arch.bridge_learn_cycles),
                  float(arch.bridge_flood_cycles), float(arch.bridge_ageing_ns), int(n_ports),
                  st.factors, np.int64(t0_ns),
                  st.nic_state, st.cpu_busy, st.cpu_dom, st.switch_mark, st.ring_release, st.ring_head,
                  st.guest_backend_batch, st.guest_last_done, st.link_free, st.bridge_keys, st.bridge_ports,
                  st.bridge_seen, st.batch_counter,
                  st.acc_cpu_cycles, st.acc_drops, st.acc_last_done, st.acc_ctx, st.acc_cpu_row,
                  st.acc_rows, st.lat_hist, bool(st.stop_infeasible), st.cap_cycles, st.dead,
                  bool(detail), bool(write_out), out_cycles, out_completion, out_dropped)
