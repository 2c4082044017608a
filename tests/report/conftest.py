"""Replay outputs of the bundled captures, made once per session, for the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.api import replay
from pipeline.replay import ReplayConfig

GUESTS_3 = ["g1=10.99.0.11", "g2=10.99.0.12", "g3=10.99.0.13"]


@pytest.fixture(scope="session")
def run_1500(bundled_traces, tmp_path_factory) -> Path:
    """One guest, host = the receiver (RX data, TX ACKs), all four architectures."""
    out = tmp_path_factory.mktemp("r1500")
    replay((bundled_traces / "iperf3_mtu1500_snap96.pcap").resolve(), out, ReplayConfig(hosts=["10.99.0.2"]))
    return out


@pytest.fixture(scope="session")
def run_3g(bundled_traces, tmp_path_factory) -> Path:
    """Three guests on one host."""
    out = tmp_path_factory.mktemp("r3g")
    replay((bundled_traces / "iperf3_mtu1500_3guests_snap96.pcap").resolve(), out, ReplayConfig(guests=GUESTS_3))
    return out


@pytest.fixture(scope="session")
def run_1500_override(bundled_traces, tmp_path_factory) -> Path:
    """As run_1500 with one xen-only parameter changed (netback_rx_per_packet halved-ish)."""
    out = tmp_path_factory.mktemp("r1500o")
    replay((bundled_traces / "iperf3_mtu1500_snap96.pcap").resolve(), out,
           ReplayConfig(hosts=["10.99.0.2"], param_overrides={"netback_rx_per_packet": 12000.0}))
    return out


@pytest.fixture(scope="session")
def report_both(run_1500, run_3g, tmp_path_factory) -> dict[str, Path]:
    """A two-trace report in both formats."""
    from pipeline.report import make_report

    out = tmp_path_factory.mktemp("report") / "report"
    return make_report([run_1500, run_3g], out, "both")
