"""Fixtures for the batch tests: small directories of real captures (symlinks, never copies of the
shared captures into the repository), good and bad, and helpers to read a dataset back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.batch import read_dataset
from pipeline.replay import ReplayConfig

#: Real captures that replay cleanly with an inferred host (bundled + shared), a few MB in all.
GOOD = [
    ("bundled", "iperf3_mtu1500_snap96.pcap"),
    ("bundled", "iperf3_mtu1500_tso_snap96.pcap"),
    ("shared", "bulk_tcp/suricata_1flowB.pcap"),
    ("shared", "bulk_tcp/zeek_irc_dcc_send.pcapng"),
    ("shared", "linktypes/ppp_nanosecs_big_endian.pcap"),
]
#: Captures (by magic) that cannot be replayed: each must become a failed record, not stop the batch.
BAD = {
    "malformed/derived_short_file_header.pcap": "header cut short",
    "malformed/tcpdump_empty_header_only.pcap": "no packets",
    "malformed/ndpi_fuzz_nsec_bogus_caplen.pcap": "bogus caplen",
}


def link(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dest)
    return dest


@pytest.fixture
def good_dir(tmp_path, bundled_traces, shared_traces) -> Path:
    d = tmp_path / "in"
    for where, rel in GOOD:
        src = (bundled_traces if where == "bundled" else shared_traces) / rel
        link(src, d / ("sub" if where == "shared" else "") / Path(rel).name)
    return d


@pytest.fixture
def mixed_dir(good_dir, shared_traces) -> Path:
    for rel in BAD:
        link(shared_traces / rel, good_dir / "bad" / Path(rel).name)
    return good_dir


@pytest.fixture
def fast_config() -> ReplayConfig:
    """Two architectures and no saturation search: keeps each replay at a few milliseconds."""
    return ReplayConfig(archs=["linux", "dbnet"], saturation=False)


def replace_input(dest: Path, src: Path) -> None:
    """Give the input ``dest`` (a symlink) new content, a copy of ``src``: unlinked first, so the
    capture it points to is never overwritten."""
    dest.unlink()
    shutil.copy(src, dest)


def read_table(dataset: Path, table: str) -> pd.DataFrame:
    """A dataset table (:func:`pipeline.batch.read_dataset`), categoricals as str, in a canonical row order."""
    df = read_dataset(dataset, table)
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
    keys = ["trace", "arch", "guest", "direction"] + (["packet_index"] if table == "packets" else [])
    return df.sort_values(keys).reset_index(drop=True)[sorted(df.columns)]
