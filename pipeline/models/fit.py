"""Fit the cost parameters that no source publishes to published end-to-end results, as code.

Deterministic: synthetic ttcp-like bulk TCP traces (``synthetic_bulk_trace``) are replayed through
the model and each fitted parameter is solved (secant on log-throughput, Gauss-Seidel over the
coupled pairs) so that the model's saturation throughput meets its target. Run
``python -m pipeline.models.fit [--params NAME] [--write]`` to print (or write into the TOML) the
values; tests check that this reproduces the bundled fitted values.

Fitted (``status = "fitted"`` in the parameter set), in this order:

1. native Linux, SOSP 2003 Table 6 at MTU 500 (V3, CPU-bound per the paper): ``stack_tx_per_packet``
   to TX 602 Mb/s, ``stack_rx_per_packet`` to RX 544 Mb/s (goodput, 1 Gb/s link);
2. Xen 1.0, SOSP 2003 Table 6 at MTU 500 (V4): ``xen1_demux_per_packet`` to TX 516 Mb/s,
   ``page_flip_per_packet`` (one page exchange per received packet) to RX 467 Mb/s;
3. Xen driver domain, Menon et al. 2006 abstract as ratios to native (V13, derived): guest TX 0.20 x
   native (``netback_tx_per_byte``), guest RX 0.33 x native (``netback_rx_per_packet``), MTU 1500,
   CPU-bound (no link cap: the ratios are read as CPU-bound throughput ratios), one CPU shared.

Held out of the fit (``validation_rows``): V1 (native MTU 1500 link-bound at 1 Gb/s), V2 (Xen 1.0 MTU
1500 within 0-3 % of native), V15 (Xen RX and TX lose more than 50 %, CPU-bound), and DBNet's own
qualitative claims V21 (TX within 5 % of native; RX more throughput than Xen at fewer cycles per
byte) which nothing in the fit touches.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.ingest.columns import PacketChunk
from pipeline.models.params import DEFAULT_PARAMS, PARAMS_DIR, load_params

HOST_IP = 0x0A000001  # 10.0.0.1, the modeled host
PEER_IP = 0x0A000002
HOST_MAC = 0x020000000001
PEER_MAC = 0x020000000002


def synthetic_bulk_trace(direction: str, mtu: int, n_data: int = 3000, data_pps: float = 50_000.0,
                         ack_every: int = 2, n_flows: int = 1, first_ts_ns: int = 1_000_000_000) -> PacketChunk:
    """A ttcp-like bulk TCP transfer as the host's NIC sees it, evenly spaced.

    ``direction`` "tx": the host (10.0.0.1) sends MSS-sized segments (payload mtu - 40, no TCP
    options, as ttcp on Linux 2.4) and receives one pure ACK per ``ack_every`` segments; "rx": the
    reverse. ``n_flows`` flows (distinct peer ports) are interleaved round-robin.
    """
    if direction not in ("rx", "tx"):
        raise ValueError("direction must be rx or tx")
    payload = mtu - 40
    data_wire = payload + 54
    gap = 1e9 / data_pps
    n_ack = n_data // ack_every
    n = n_data + n_ack
    ts = np.empty(n, np.int64)
    is_data = np.zeros(n, bool)
    flow = np.zeros(n, np.int64)
    j = 0
    for i in range(n_data):
        ts[j] = first_ts_ns + int(round(i * gap))
        is_data[j] = True
        flow[j] = i % n_flows
        j += 1
        if (i + 1) % ack_every == 0:
            ts[j] = first_ts_ns + int(round(i * gap + gap / 2))
            flow[j] = i % n_flows
            j += 1
    ch = PacketChunk.empty(n)
    ch.ts_ns[:] = ts
    host_sends = is_data if direction == "tx" else ~is_data
    ch.wire_len[:] = np.where(is_data, data_wire, 60)
    ch.cap_len[:] = np.minimum(ch.wire_len, 96)
    ch.linktype[:] = 1
    ch.ethertype[:] = 0x0800
    ch.vlan_id[:] = -1
    ch.ip_version[:] = 4
    v4 = np.uint64(0xFFFF << 32)
    ch.src_mac[:] = np.where(host_sends, HOST_MAC, PEER_MAC)
    ch.dst_mac[:] = np.where(host_sends, PEER_MAC, HOST_MAC)
    ch.src_ip_lo[:] = np.where(host_sends, HOST_IP, PEER_IP).astype(np.uint64) | v4
    ch.dst_ip_lo[:] = np.where(host_sends, PEER_IP, HOST_IP).astype(np.uint64) | v4
    ch.ip_proto[:] = 6
    host_port = 5001
    peer_port = 40000 + flow
    ch.src_port[:] = np.where(host_sends, host_port, peer_port)
    ch.dst_port[:] = np.where(host_sends, peer_port, host_port)
    ch.tcp_flags[:] = np.where(is_data, 0x18, 0x10)
    ch.ip_total_len[:] = np.where(is_data, payload + 40, 40)
    ch.payload_len[:] = np.where(is_data, payload, 0)
    return ch


def saturation_goodput_bps(arch: str, direction: str, mtu: int, params: str = DEFAULT_PARAMS,
                           overrides: dict | None = None, link_bps: float = 1e9, placement: str = "shared",
                           n_guests: int = 1, tol: float = 0.0005) -> float:
    """The model's saturation goodput (payload bits/s of the data direction) on a synthetic trace."""
    from pipeline.replay import ReplayConfig, run_replay

    trace = synthetic_bulk_trace(direction, mtu, n_flows=max(n_guests, 1))
    cfg = ReplayConfig(archs=[arch], params=params, param_overrides=overrides or None, hosts=["10.0.0.1"],
                       n_guests=n_guests if n_guests > 1 else None, link_bps=link_bps, placement=placement,
                       saturation_tol=tol)
    res = run_replay(trace, cfg)
    s = res.summary
    row = s[(s.guest == "all") & (s.direction == direction)].iloc[0]
    return float(row.saturation_bps * row.payload_bytes / row.wire_bytes)


@dataclass(frozen=True)
class Target:
    param: str
    arch: str
    direction: str
    mtu: int
    goodput_bps: float | None = None   # absolute target
    ratio_to_linux: float | None = None  # or a ratio to the native model, CPU-bound
    link_bps: float = 1e9
    label: str = ""


GROUPS: tuple[tuple[Target, ...], ...] = (
    (Target("stack_tx_per_packet", "linux", "tx", 500, goodput_bps=602e6, label="V3 TX"),
     Target("stack_rx_per_packet", "linux", "rx", 500, goodput_bps=544e6, label="V3 RX")),
    (Target("xen1_demux_per_packet", "xen1", "tx", 500, goodput_bps=516e6, label="V4 TX"),
     Target("page_flip_per_packet", "xen1", "rx", 500, goodput_bps=467e6, label="V4 RX")),
    (Target("netback_tx_per_byte", "xen", "tx", 1500, ratio_to_linux=0.20, link_bps=1e12,
            label="V13 guest TX"),
     Target("netback_rx_per_packet", "xen", "rx", 1500, ratio_to_linux=0.33, link_bps=1e12,
            label="V13 guest RX")),
)


def _solve_1d(f, x0: float, lo: float, hi: float, rel_tol: float = 0.001, max_iter: int = 30) -> float:
    """Root of the decreasing function f (log throughput error) on [lo, hi]: secant with bisection."""
    a, b = lo, hi
    fa, fb = f(a), f(b)
    if fa < 0:
        return a
    if fb > 0:
        return b
    x = min(max(x0, a), b)
    fx = f(x)
    for _ in range(max_iter):
        if abs(fx) < rel_tol:
            return x
        if fx > 0:
            a, fa = x, fx
        else:
            b, fb = x, fx
        # secant in log x between the bracket ends; bisection when it falls outside the bracket
        la, lb = math.log(a), math.log(b)
        lx = la - fa * (lb - la) / (fb - fa) if fb != fa else 0.5 * (la + lb)
        if not (la < lx < lb):
            lx = 0.5 * (la + lb)
        x = math.exp(lx)
        fx = f(x)
    return x


def _round(x: float) -> float:
    """Whole cycles for per-packet values, 3 significant digits below 100."""
    return float(round(x)) if x >= 100 else float(f"{x:.3g}")


def fit_parameters(params: str = DEFAULT_PARAMS, rounds: int = 4, verbose: bool = False) -> dict[str, float]:
    """Solve every fitted parameter (rounded by :func:`_round`), in the order of GROUPS."""
    ps = load_params(params)
    # fixed start (geometric middle of each parameter's plausible range), so the result does not
    # depend on the values currently written in the file
    values: dict[str, float] = {}
    for g in GROUPS:
        for t in g:
            p = ps.get(t.param)
            values[t.param] = math.sqrt(float(p.low) * float(p.high))
    native: dict[tuple[str, int, float], float] = {}
    for group in GROUPS:
        for _ in range(rounds):
            changed = False
            for t in group:
                if t.ratio_to_linux is not None:
                    key = (t.direction, t.mtu, t.link_bps)
                    if key not in native:
                        native[key] = saturation_goodput_bps("linux", t.direction, t.mtu, params, dict(values),
                                                             link_bps=t.link_bps)
                    target = t.ratio_to_linux * native[key]
                else:
                    target = float(t.goodput_bps)

                def err(x: float, t: Target = t, target: float = target) -> float:
                    ov = dict(values)
                    ov[t.param] = x
                    return math.log(saturation_goodput_bps(t.arch, t.direction, t.mtu, params, ov,
                                                           link_bps=t.link_bps) / target)

                x = _round(_solve_1d(err, values[t.param], 1e-3, 400_000.0))
                if verbose:
                    print(f"  {t.param} ({t.label}): {x}", file=sys.stderr)
                if abs(x - values[t.param]) > 0.002 * x:
                    changed = True
                values[t.param] = float(x)
            if not changed:
                break
    return values


def validation_rows(params: str = DEFAULT_PARAMS, overrides: dict | None = None) -> list[dict]:
    """Held-out checks: published results not used by the fit, model against published."""
    rows = []

    def g(arch, d, mtu, link=1e9, n=1):
        return saturation_goodput_bps(arch, d, mtu, params, overrides, link_bps=link, n_guests=n)

    for d, pub in (("tx", 897e6), ("rx", 897e6)):
        lin = g("linux", d, 1500)
        x1 = g("xen1", d, 1500)
        wire_cap = 1e9 * 1460 / 1514
        rows.append({"id": "V1", "what": f"native Linux {d.upper()} MTU 1500 is link-bound", "published": pub,
                     "model": lin, "ok": lin >= 0.99 * wire_cap})
        rows.append({"id": "V2", "what": f"Xen 1.0 / native {d.upper()} MTU 1500 (published -0%)",
                     "published": 1.0, "model": x1 / lin, "ok": x1 / lin >= 0.97})
    for d in ("tx", "rx"):
        lin = g("linux", d, 1500, link=1e12)
        xen = g("xen", d, 1500, link=1e12)
        rows.append({"id": "V15", "what": f"Xen / native {d.upper()} CPU-bound (published: loss > 50%)",
                     "published": 0.5, "model": xen / lin, "ok": xen / lin < 0.5})
    lin_tx = g("linux", "tx", 1500)
    db_tx = g("dbnet", "tx", 1500)
    rows.append({"id": "V21", "what": "DBNet / native TX, one guest, MTU 1500 (thesis: almost the same)",
                 "published": 1.0, "model": db_tx / lin_tx, "ok": abs(db_tx / lin_tx - 1) <= 0.05})
    xen_rx = g("xen", "rx", 1500)
    db_rx = g("dbnet", "rx", 1500)
    rows.append({"id": "V21", "what": "DBNet / Xen RX, one guest, MTU 1500 (thesis: more throughput)",
                 "published": float("nan"), "model": db_rx / xen_rx, "ok": db_rx > xen_rx})
    return rows


def write_values(values: dict[str, float], params: str = DEFAULT_PARAMS) -> Path:
    """Write fitted values into the bundled parameter TOML (only the ``value =`` lines change)."""
    path = PARAMS_DIR / f"{params}.toml"
    text = path.read_text()
    for name, v in values.items():
        pat = re.compile(rf"(^\[{re.escape(name)}\]\n(?:(?!^\[).*\n)*?value = )([^\n]*)", re.M)
        text, n = pat.subn(lambda m, v=v: m.group(1) + repr(float(v)), text)
        if n != 1:
            raise RuntimeError(f"parameter {name} not found in {path}")
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=DEFAULT_PARAMS)
    ap.add_argument("--write", action="store_true", help="write the fitted values into the bundled TOML")
    ap.add_argument("--validate", action="store_true", help="also print the held-out checks")
    a = ap.parse_args(argv)
    values = fit_parameters(a.params, verbose=True)
    for k, v in values.items():
        print(f"{k} = {v!r}")
    if a.write:
        print(f"written to {write_values(values, a.params)}")
    if a.validate:
        for r in validation_rows(a.params):
            print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
