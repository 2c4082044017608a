"""Load replay results for reports: one loader for single replay directories and batch datasets.

Two layouts are read, and both come back as the same :class:`RunResults` (one per trace):

- a ``pipeline replay --out DIR`` directory: ``DIR/summary.parquet`` (+ ``DIR/packets.parquet``), or
  the ``summary.parquet`` file itself;
- a ``pipeline batch --out DATASET`` hive-partitioned dataset:
  ``DATASET/summary/arch=<a>/trace=<id>/part-*.parquet`` (+ the same under ``DATASET/packets/``),
  one :class:`RunResults` per ``trace=<id>``.

Everything a report cannot use is refused with a one-line :class:`~pipeline.errors.ResultsError`
saying which file and what to do: a missing path, no results in it, an empty summary, results of
another ``schema_version``, files without the tool's provenance metadata, a summary and per-packet
file from different runs, and partitions of one trace written with different configurations.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.errors import ResultsError
from pipeline.store import SCHEMA_VERSION, read_metadata
from pipeline.store.layout import (
    MANIFEST_FILE,
    PACKETS_FILE,
    PART_FILE,
    SUMMARY_FILE,
    TABLES,
    partition_values,
)

#: Summary columns a report needs (the rest are optional).
REQUIRED_SUMMARY_COLUMNS: tuple[str, ...] = (
    "arch", "guest", "direction", "packets", "wire_bytes", "cycles_total", "cycles_per_packet", "cpu_util",
    "delivered_bps", "saturation_bps", "drops")
#: Configuration keys that may differ between the runs of one report (they describe the trace).
TRACE_SPECIFIC_CONFIG = ("hosts", "guests", "n_guests", "chunk_packets", "cache_packets", "threads", "archs")


@dataclass
class RunResults:
    """The results of one replay of one trace (several architectures), as a report reads them.

    ``summary``: the replay's summary rows (one per arch x guest x direction). ``metadata``: the
    provenance document (config, params, mapping, trace, saturation, ...). ``packet_files``: the
    per-packet Parquet files (may be empty: ``--no-packets``). ``label``: a short name for tables.
    """

    label: str
    source: Path
    summary: pd.DataFrame
    metadata: dict[str, Any]
    packet_files: list[Path] = field(default_factory=list)
    trace_id: str = ""   # the batch dataset's trace=<id> partition value ("" for a replay directory)

    @property
    def archs(self) -> list[str]:
        return list(dict.fromkeys(self.summary["arch"].astype(str)))

    @property
    def guest_names(self) -> list[str]:
        names = self.metadata.get("guest_names") or []
        if names:
            return list(names)
        return [g for g in dict.fromkeys(self.summary["guest"].astype(str)) if g != "all"]

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.metadata.get("config") or {})

    @property
    def trace(self) -> dict[str, Any]:
        return dict(self.metadata.get("trace") or {})

    @property
    def trace_name(self) -> str:
        p = self.trace.get("path")
        return Path(p).name if p else self.label

    def iter_packets(self, columns: list[str], batch_rows: int = 1 << 20) -> Iterator[pd.DataFrame]:
        """The per-packet rows, batch by batch (bounded memory), with ``arch`` as a plain string column."""
        for path in self.packet_files:
            pf = pq.ParquetFile(path)
            have = set(pf.schema_arrow.names)
            read = [c for c in columns if c in have]
            part_arch = partition_values(path).get("arch")
            for batch in pf.iter_batches(batch_size=batch_rows, columns=read):
                df = batch.to_pandas()
                if "arch" in columns and "arch" not in df.columns:
                    df["arch"] = part_arch
                if "arch" in df.columns:
                    df["arch"] = df["arch"].astype(str)
                yield df


def _meta(path: Path) -> dict[str, Any]:
    try:
        meta = read_metadata(path)
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) for non-Parquet
        raise ResultsError(f"{path}: not a readable Parquet results file ({e.__class__.__name__}): "
                           "re-run `pipeline replay`") from None
    if not meta:
        raise ResultsError(f"{path}: no pipeline provenance metadata: not written by `pipeline replay`/"
                           "`pipeline batch`")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{path}: results schema version {version}, this tool reads version {SCHEMA_VERSION}: "
                           "re-run `pipeline replay` (or `pipeline batch`) with this version to regenerate them")
    return meta


def _read_summary(path: Path) -> pd.DataFrame:
    try:
        df = pq.read_table(path).to_pandas()
    except (OSError, ValueError) as e:
        raise ResultsError(f"{path}: cannot read ({e.__class__.__name__}): re-run `pipeline replay`") from None
    for c in ("arch", "guest", "direction"):
        if c in df.columns:
            df[c] = df[c].astype(str)
    return df


def _check_summary(df: pd.DataFrame, where: Path) -> None:
    if len(df) == 0:
        raise ResultsError(f"{where}: the summary has no rows (empty results): re-run `pipeline replay`")
    missing = [c for c in REQUIRED_SUMMARY_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"{where}: summary lacks column(s) {', '.join(missing)}: re-run `pipeline replay` "
                           "with this version")


def _load_replay_dir(d: Path) -> RunResults:
    summary_path = d / SUMMARY_FILE
    if not summary_path.is_file():
        raise ResultsError(f"{d}: no {SUMMARY_FILE} (not a `pipeline replay --out` directory or an unfinished "
                           "run): run `pipeline replay TRACE --out DIR` first")
    meta = _meta(summary_path)
    summary = _read_summary(summary_path)
    _check_summary(summary, summary_path)
    packet_files = []
    packets_path = d / PACKETS_FILE
    if packets_path.is_file():
        pmeta = _meta(packets_path)
        if pmeta.get("run_id") and meta.get("run_id") and pmeta["run_id"] != meta["run_id"]:
            raise ResultsError(f"{d}: {SUMMARY_FILE} and {PACKETS_FILE} come from different runs "
                               f"({meta['run_id'][:8]} vs {pmeta['run_id'][:8]}): re-run `pipeline replay` "
                               "into an empty directory")
        packet_files.append(packets_path)
    label = Path(str(meta.get("trace", {}).get("path") or d.name)).stem
    return RunResults(label=label, source=d, summary=summary, metadata=meta, packet_files=packet_files)


def _config_key(meta: dict[str, Any]) -> str:
    cfg = {k: v for k, v in (meta.get("config") or {}).items() if k != "archs"}
    return json.dumps(cfg, sort_keys=True, default=str)


def _files_by_trace(root: Path, table: str) -> dict[str | None, list[Path]]:
    """The visible Parquet files of one dataset table, sorted, grouped by their trace=<id> (None: no such partition)."""
    by_trace: dict[str | None, list[Path]] = {}
    if (root / table).is_dir():
        for f in sorted((root / table).rglob(PART_FILE)):
            if not f.name.startswith("."):
                by_trace.setdefault(partition_values(f.relative_to(root)).get("trace"), []).append(f)
    return by_trace


def _load_dataset(root: Path) -> list[RunResults]:
    summary_table, packets_table = TABLES
    by_trace = _files_by_trace(root, summary_table)
    if not by_trace:
        raise ResultsError(f"{root}: batch dataset without summary partitions (no "
                           "summary/arch=*/trace=*/*.parquet): the batch produced no results; see "
                           f"{root / MANIFEST_FILE}")
    if None in by_trace:
        raise ResultsError(f"{by_trace[None][0]}: not in a trace=<id> partition: not a `pipeline batch` dataset")
    packets_by_trace = _files_by_trace(root, packets_table)
    runs = []
    for trace_id, parts in sorted(by_trace.items()):
        frames, metas = [], []
        for f in parts:
            meta = _meta(f)
            df = _read_summary(f)
            if "arch" not in df.columns:
                df.insert(0, "arch", partition_values(f.relative_to(root)).get("arch", ""))
            frames.append(df)
            metas.append((f, meta))
        keys = {_config_key(m) for _, m in metas}
        if len(keys) > 1:
            raise ResultsError(f"{root}: trace {trace_id} has partitions from different configurations "
                               f"({', '.join(str(f.relative_to(root)) for f, _ in metas)}): re-run "
                               "`pipeline batch` on a fresh dataset")
        summary = pd.concat(frames, ignore_index=True)
        _check_summary(summary, parts[0])
        # architectures in the configured order (partitions come in path order)
        order = [a for a in (metas[0][1].get("config") or {}).get("archs") or [] if a in set(summary.arch)]
        order += sorted(set(summary.arch) - set(order))
        rank = {a: i for i, a in enumerate(order)}
        summary = summary.iloc[np.argsort(summary.arch.map(rank).to_numpy(), kind="stable")].reset_index(drop=True)
        meta = _merge_partition_metadata([m for _, m in metas], list(dict.fromkeys(summary["arch"])))
        path = (meta.get("trace") or {}).get("path")
        runs.append(RunResults(label=Path(str(path)).stem if path else trace_id, source=root, summary=summary,
                               metadata=meta, packet_files=packets_by_trace.get(trace_id, []), trace_id=trace_id))
    return runs


def _merge_partition_metadata(metas: list[dict[str, Any]], archs: list[str]) -> dict[str, Any]:
    """One provenance document for a trace whose architectures were written as separate partitions."""
    out = dict(metas[0])
    sat: dict[str, Any] = {}
    params: dict[str, dict] = {}
    knp: dict[str, Any] = {}
    warnings: list[str] = []
    for m in metas:
        arch = m.get("arch")
        ms, mk = m.get("saturation") or {}, m.get("kernel_ns_per_packet")
        # a partition's document may hold its own arch's values only (batch: "arch" key, flat values)
        sat.update({arch: ms} if arch and "factor" in ms else ms)
        knp.update({arch: mk} if arch and not isinstance(mk, dict) else (mk or {}))
        for p in m.get("params") or []:
            params.setdefault(p["name"], p)
        for w in m.get("warnings") or []:
            if w not in warnings:
                warnings.append(w)
    out["saturation"] = sat
    out["kernel_ns_per_packet"] = knp
    out["params"] = [params[k] for k in sorted(params)]
    out["warnings"] = warnings
    cfg = dict(out.get("config") or {})
    cfg["archs"] = archs
    out["config"] = cfg
    return out


def load_results(path: str | os.PathLike) -> list[RunResults]:
    """The runs at ``path``: a replay directory (or its summary.parquet) -> one run; a batch dataset -> one per trace."""
    p = Path(path)
    if not p.exists():
        raise ResultsError(f"{p}: no such results file or directory")
    if p.is_file():
        if p.name in (SUMMARY_FILE, PACKETS_FILE):
            return [_load_replay_dir(p.parent)]
        raise ResultsError(f"{p}: not a results directory: give the `pipeline replay --out` directory or a "
                           "`pipeline batch` dataset")
    if (p / SUMMARY_FILE).exists():
        return [_load_replay_dir(p)]
    if (p / TABLES[0]).is_dir():
        return _load_dataset(p)
    if (p / MANIFEST_FILE).exists():
        raise ResultsError(f"{p}: batch dataset without results (no summary/ partitions): see "
                           f"{p / MANIFEST_FILE}")
    raise ResultsError(f"{p}: no results here (no {SUMMARY_FILE} and no summary/ dataset): run "
                       "`pipeline replay TRACE --out DIR` or `pipeline batch` first")


def load_many(paths: list[str | os.PathLike]) -> list[RunResults]:
    """Every run of every path, with distinct labels (the trace file stem, suffixed when repeated)."""
    if not paths:
        raise ResultsError("no results given")
    runs: list[RunResults] = []
    for p in paths:
        runs.extend(load_results(p))
    seen: dict[str, int] = {}
    for r in runs:
        n = seen.get(r.label, 0)
        seen[r.label] = n + 1
        if n:
            r.label = f"{r.label} ({n + 1})"
    return runs


def config_differences(a: dict[str, Any], b: dict[str, Any],
                       ignore: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two configuration dicts: key -> (a value, b value)."""
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k), b.get(k)) for k in keys if k not in ignore and a.get(k) != b.get(k)}


def check_compatible(runs: list[RunResults]) -> None:
    """Refuse runs that cannot share one report's cross-trace tables (different models or hosts).

    Runs may differ in their trace and its mapping (hosts, guests) and in the architectures they
    include; the parameter set, overrides, architecture files, placement, link rate, ring size and
    segment handling must agree, or the cross-trace comparison would mix models.
    """
    base = runs[0]
    for r in runs[1:]:
        diff = config_differences(base.config, r.config, ignore=TRACE_SPECIFIC_CONFIG)
        if diff:
            k, (va, vb) = next(iter(diff.items()))
            raise ResultsError(f"results from incompatible configurations: {base.label} has {k}={va!r}, "
                               f"{r.label} has {k}={vb!r}: report them separately, or put two runs side by "
                               "side with `pipeline compare A B`")
        if base.metadata.get("tool_version") != r.metadata.get("tool_version"):
            raise ResultsError(f"results from different tool versions: {base.label} "
                               f"({base.metadata.get('tool_version')}) and {r.label} "
                               f"({r.metadata.get('tool_version')}): re-run them with one version")


def finite(x: Any) -> bool:
    try:
        return bool(np.isfinite(float(x)))
    except (TypeError, ValueError):
        return False
