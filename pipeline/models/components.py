"""The fixed vocabularies of the cost model: components, contexts, directions, batching levels.

These are closed sets by design (DESIGN.md section 2): reports stack cycles by component, CPUs are
assigned per context. Index order is part of the Parquet schema (``cycles_<component>`` columns).
"""

from __future__ import annotations

#: Cost components, in report order.
COMPONENTS: tuple[str, ...] = (
    "interrupt",        # hardware IRQ entry/exit, NAPI poll entry, virtual IRQ / upcall delivery
    "descriptor",       # NIC driver descriptor handling: RX refill, TX setup/doorbell, TX clean
    "bridge",           # forwarding lookup: Linux bridge fdb (dom0) or DBNet's MAC->domain table (VMM)
    "segment_switch",   # x86 segment/privilege switch between VMM and the isolated driver segment
    "domain_switch",    # a CPU changing from one domain to another (address space, scheduler)
    "hypercall_event",  # hypercalls, event-channel send/deliver, netback/netfront ring handling
    "grant_copy",       # page flip, grant map/unmap, grant copy, or other per-byte copies
    "stack",            # IP/TCP stack and socket copy in the receiving/sending OS
)
COMPONENT_INDEX: dict[str, int] = {c: i for i, c in enumerate(COMPONENTS)}

#: Execution contexts. ``kernel`` is native Linux; ``guest`` is one context per guest at run time.
CONTEXTS: tuple[str, ...] = ("kernel", "vmm", "dom0", "guest")
CONTEXT_INDEX: dict[str, int] = {c: i for i, c in enumerate(CONTEXTS)}

#: Packet directions relative to the modeled host. -1 in a direction column: not the host's packet.
DIRECTIONS: tuple[str, ...] = ("rx", "tx")
DIRECTION_INDEX: dict[str, int] = {d: i for i, d in enumerate(DIRECTIONS)}
DIR_NONE = -1

#: Batching levels at which a stage's per-batch cost is charged (DESIGN.md section 3):
#: ``nic`` = one NIC interrupt / NAPI poll batch; ``backend`` = one netback (or VMM bridge) batch
#: towards one guest; ``guest`` = one notification (event / virtual interrupt) to one guest.
BATCH_LEVELS: tuple[str, ...] = ("nic", "backend", "guest")
BATCH_LEVEL_INDEX: dict[str, int] = {b: i for i, b in enumerate(BATCH_LEVELS)}
