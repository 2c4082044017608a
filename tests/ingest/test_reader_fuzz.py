"""Damaged input never crashes the reader: it yields packets with warnings or raises TraceError.

Seeded mutations (byte flips, cuts, inserted garbage) of small real pcap and pcapng captures,
plain and compressed. Every outcome must be one of the two the damage policy allows, and what is
returned must be self-consistent (packet data inside the buffer, counts matching).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import TraceError
from pipeline.ingest import open_trace

SEEDS = ["linktypes/ppp_pcapng_2if_sll_eth.pcapng", "linktypes/scapy_pfcp_big_endian.pcapng",
         "linktypes/ppp_many_interfaces.pcapng", "mixed/tcpreplay_test.pcap",
         "linktypes/ppp_nanosecs_big_endian.pcap"]


def _mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(raw)
    kind = int(rng.integers(4))
    if kind == 0:  # flip a few bytes, biased to the start where headers are
        for _ in range(int(rng.integers(1, 8))):
            i = int(min(len(b) - 1, rng.exponential(400)))
            b[i] = int(rng.integers(256))
    elif kind == 1:  # cut anywhere
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == 2:  # insert garbage
        i = int(rng.integers(0, len(b)))
        b[i:i] = rng.bytes(int(rng.integers(1, 40)))
    else:  # overwrite a 4-byte field with an extreme value
        i = int(rng.integers(0, max(1, len(b) - 4))) & ~3
        b[i:i + 4] = [0xFF, 0xFF, 0xFF, 0x7F] if rng.random() < 0.5 else [0, 0, 0, 0]
    return bytes(b)


@pytest.mark.parametrize("rel", SEEDS)
def test_mutated_captures_never_crash(rel: str, shared_traces: Path, tmp_path: Path) -> None:
    raw = (shared_traces / rel).read_bytes()
    rng = np.random.default_rng(SEEDS.index(rel))
    outcomes = {"ok": 0, "truncated": 0, "error": 0}
    for k in range(60):
        data = _mutate(raw, rng)
        if k % 5 == 4:
            data = gzip.compress(data)
        p = tmp_path / f"m{k}.cap"
        p.write_bytes(data)
        try:
            with open_trace(p, block_size=int(rng.choice([64, 1000, 1 << 20])),
                            chunk_packets=int(rng.choice([3, 1 << 20]))) as r:
                n = 0
                for b in r.iter_frames():
                    assert (b.data_off >= 0).all()
                    assert (b.data_off + b.cap_len <= b.buf.shape[0]).all()
                    n += len(b)
                info = r.info
        except TraceError as e:
            assert "\n" not in str(e) and str(e).startswith(str(p))
            outcomes["error"] += 1
            continue
        assert info.complete and info.packets == n
        assert all("\n" not in w for w in info.warnings) and len(info.warnings) <= 12
        outcomes["truncated" if info.truncated else "ok"] += 1
    assert outcomes["error"] + outcomes["truncated"] > 0  # the mutations did damage something
