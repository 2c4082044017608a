"""Architectures as data: ordered stages per direction, loaded from TOML, compiled to flat arrays.

An architecture TOML file (bundled ones in ``pipeline/models/archs/``; users add their own with
``--arch-file``)::

    name = "myarch"
    description = "..."
    [bridge]                    # optional: the MAC learning table shared by the arch's bridge stages
    learn = "bridge_learn_cycles"               # cycles to learn a new (or moved / aged) source
    flood_per_port = "bridge_flood_per_port_cycles"  # cycles per port when the destination is unknown
    ageing_ns = "bridge_ageing_ns"
    capacity = "bridge_capacity"
    [[rx]]                      # stages in order, per direction ("rx", "tx")
    name = "nic_irq"
    component = "interrupt"     # one of pipeline.models.components.COMPONENTS
    context = "kernel"          # kernel | vmm | dom0 | guest
    bridge = false              # true: this stage does the bridge table's learn + lookup
    when = { rx_mode = "flip" } # optional: stage only present when string parameters match
    terms = [ { per = "batch", level = "nic", param = "irq_cycles", count = 1 },
              { per = "packet", param = "..." }, { per = "byte", bytes = "payload", param = "..." } ]

Each cost term names a parameter of the parameter set (so costs carry provenance in one place) and
multiplies it by ``count`` (e.g. 2 segment switches per batch). ``per = "batch"`` terms are charged
once per batch of the given level (``nic``, ``backend``, ``guest``; components.BATCH_LEVELS).
A domain switch (component ``domain_switch``) is charged automatically, parameter
``domain_switch_cycles`` (or the file's ``domain_switch`` key), when a CPU changes domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import OptionError
from pipeline.models.components import (
    BATCH_LEVEL_INDEX,
    BATCH_LEVELS,
    COMPONENT_INDEX,
    COMPONENTS,
    CONTEXT_INDEX,
    CONTEXTS,
    DIRECTIONS,
)
from pipeline.models.params import ParamSet, read_toml

ARCHS_DIR = Path(__file__).with_name("archs")
#: The architectures run when the user names none.
DEFAULT_ARCHS: tuple[str, ...] = ("linux", "xen", "dbnet", "xen1")
TERM_KINDS: tuple[str, ...] = ("packet", "byte", "batch")
BYTE_KINDS: tuple[str, ...] = ("wire", "payload")
#: columns of CompiledArch.stage_cost
COST_COLUMNS: tuple[str, ...] = ("packet", "byte_wire", "byte_payload", "batch_nic", "batch_backend",
                                 "batch_guest")


@dataclass(frozen=True)
class CostTerm:
    """``count`` x parameter ``param``, charged per packet, per byte or per batch of ``level``."""

    per: str
    param: str
    count: float = 1.0
    level: str = ""      # batch terms only
    bytes: str = "wire"  # byte terms only


@dataclass(frozen=True)
class Stage:
    name: str
    component: str
    context: str
    terms: tuple[CostTerm, ...]
    bridge: bool = False
    when: tuple[tuple[str, str], ...] = ()


@dataclass
class Architecture:
    name: str
    description: str
    stages: dict[str, tuple[Stage, ...]]  # direction -> stages in order
    bridge: dict[str, str] = field(default_factory=dict)
    domain_switch_param: str = "domain_switch_cycles"
    origin: str = ""

    def param_names(self) -> list[str]:
        names = {t.param for stages in self.stages.values() for s in stages for t in s.terms}
        names |= set(self.bridge.values())
        if self.has_domains():
            names.add(self.domain_switch_param)
        names |= {k for stages in self.stages.values() for s in stages for k, _ in s.when}
        return sorted(names)

    def has_domains(self) -> bool:
        return any(s.context in ("dom0", "guest") for st in self.stages.values() for s in st)

    def components(self) -> set[str]:
        """Components this architecture can charge (stages plus domain_switch when it has domains)."""
        comps = {s.component for st in self.stages.values() for s in st}
        if self.has_domains():
            comps.add("domain_switch")
        return comps

    def describe_rows(self) -> list[dict[str, Any]]:
        """One row per stage, for ``pipeline archs``."""
        rows = []
        for d in DIRECTIONS:
            for i, s in enumerate(self.stages[d]):
                terms = ", ".join(
                    f"{'' if t.count == 1 else f'{t.count:g} x '}{t.param}/"
                    f"{t.per if t.per != 'batch' else t.level + ' batch'}"
                    + (f" ({t.bytes} bytes)" if t.per == "byte" else "") for t in s.terms)
                rows.append({"arch": self.name, "direction": d, "order": i, "stage": s.name,
                             "component": s.component, "context": s.context,
                             "bridge": s.bridge, "when": ",".join(f"{k}={v}" for k, v in s.when),
                             "terms": terms})
        return rows


def _err(where: str, msg: str) -> OptionError:
    return OptionError(f"{where}: {msg}")


def _parse_term(raw: Any, where: str) -> CostTerm:
    if not isinstance(raw, dict):
        raise _err(where, "a cost term must be a table {per, param, ...}")
    per = raw.get("per")
    if per not in TERM_KINDS:
        raise _err(where, f"cost term 'per' must be one of {', '.join(TERM_KINDS)}, not {per!r}")
    param = raw.get("param")
    if not isinstance(param, str) or not param:
        raise _err(where, "cost term has no 'param' (a parameter name)")
    count = raw.get("count", 1.0)
    if isinstance(count, bool) or not isinstance(count, int | float) or count < 0:
        raise _err(where, f"cost term count must be a number >= 0, not {count!r}")
    level = ""
    if per == "batch":
        level = raw.get("level", "nic")
        if level not in BATCH_LEVELS:
            raise _err(where, f"unknown batch level {level!r}; expected one of {', '.join(BATCH_LEVELS)}")
    nbytes = "wire"
    if per == "byte":
        nbytes = raw.get("bytes", "wire")
        if nbytes not in BYTE_KINDS:
            raise _err(where, f"byte term 'bytes' must be one of {', '.join(BYTE_KINDS)}, not {nbytes!r}")
    unknown = set(raw) - {"per", "param", "count", "level", "bytes"}
    if unknown:
        raise _err(where, f"unknown cost term key(s): {', '.join(sorted(unknown))}")
    return CostTerm(per=per, param=param, count=float(count), level=level, bytes=nbytes)


def _parse_stage(raw: Any, where: str) -> Stage:
    if not isinstance(raw, dict):
        raise _err(where, "a stage must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _err(where, "stage has no name")
    where = f"{where} stage {name!r}"
    comp = raw.get("component")
    if comp not in COMPONENTS:
        raise _err(where, f"unknown component {comp!r}; expected one of {', '.join(COMPONENTS)}")
    if comp == "domain_switch":
        raise _err(where, "domain_switch is charged automatically when a CPU changes domain; "
                          "it cannot be a stage")
    ctx = raw.get("context")
    if ctx not in CONTEXTS:
        raise _err(where, f"unknown context {ctx!r}; expected one of {', '.join(CONTEXTS)}")
    terms_raw = raw.get("terms", [])
    if not isinstance(terms_raw, list):
        raise _err(where, "terms must be a list of tables")
    terms = tuple(_parse_term(t, where) for t in terms_raw)
    when_raw = raw.get("when", {})
    if not isinstance(when_raw, dict) or not all(isinstance(v, str) for v in when_raw.values()):
        raise _err(where, "when must be a table of parameter = \"string value\"")
    unknown = set(raw) - {"name", "component", "context", "terms", "bridge", "when"}
    if unknown:
        raise _err(where, f"unknown stage key(s): {', '.join(sorted(unknown))}")
    return Stage(name=name, component=comp, context=ctx, terms=terms, bridge=bool(raw.get("bridge", False)),
                 when=tuple(sorted(when_raw.items())))


def parse_architecture(raw: dict[str, Any], where: str) -> Architecture:
    """Validate a decoded TOML document as an architecture (one-line OptionError on any problem)."""
    name = raw.get("name")
    if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise _err(where, f"architecture needs a name of letters, digits, '-' or '_', not {name!r}")
    stages: dict[str, tuple[Stage, ...]] = {}
    for d in DIRECTIONS:
        lst = raw.get(d, [])
        if not isinstance(lst, list):
            raise _err(where, f"{d} must be an array of tables [[{d}]]")
        stages[d] = tuple(_parse_stage(s, f"{where} {d}") for s in lst)
    if not any(stages.values()):
        raise _err(where, "architecture has no stages ([[rx]] / [[tx]])")
    bridge = raw.get("bridge", {}) or {}
    if not isinstance(bridge, dict):
        raise _err(where, "bridge must be a table")
    needs = {"learn", "flood_per_port", "ageing_ns", "capacity"}
    uses_bridge = any(s.bridge for st in stages.values() for s in st)
    if uses_bridge and set(bridge) != needs:
        raise _err(where, f"a bridge stage needs a [bridge] table with exactly {', '.join(sorted(needs))}")
    if bridge and not uses_bridge:
        raise _err(where, "[bridge] table given but no stage has bridge = true")
    unknown = set(raw) - {"name", "description", "rx", "tx", "bridge", "domain_switch"}
    if unknown:
        raise _err(where, f"unknown key(s): {', '.join(sorted(unknown))}")
    return Architecture(name=name, description=str(raw.get("description", "")), stages=stages,
                        bridge={k: str(v) for k, v in bridge.items()},
                        domain_switch_param=str(raw.get("domain_switch", "domain_switch_cycles")),
                        origin=where)


def load_arch_file(path: str | Path) -> Architecture:
    """Load and validate one architecture TOML file."""
    p = Path(path)
    return parse_architecture(read_toml(p, "architecture file"), str(p))


_BUNDLED: dict[str, Architecture] = {}
_USER: dict[str, Architecture] = {}


def _bundled() -> dict[str, Architecture]:
    if not _BUNDLED:
        for p in sorted(ARCHS_DIR.glob("*.toml")):
            a = load_arch_file(p)
            _BUNDLED[a.name] = a
    return _BUNDLED


def register_architecture(arch: Architecture) -> None:
    """Make ``arch`` available by name (a user file may replace a bundled one of the same name)."""
    _USER[arch.name] = arch


def list_architectures() -> list[str]:
    """Names of all registered architectures (bundled first, in default order, then the rest)."""
    names = [n for n in DEFAULT_ARCHS if n in _bundled() or n in _USER]
    names += sorted((set(_bundled()) | set(_USER)) - set(names))
    return names


def get_architecture(name: str) -> Architecture:
    if name in _USER:
        return _USER[name]
    if name in _bundled():
        return _bundled()[name]
    raise OptionError(f"unknown architecture {name!r}; known: {', '.join(list_architectures())} "
                      "(add one with --arch-file)")


@dataclass
class CompiledArch:
    """An architecture with parameter values resolved into flat arrays for the numba kernel."""

    name: str
    n_stages: np.ndarray       # int64[2]
    stage_comp: np.ndarray     # int64[2, S] component index
    stage_cost: np.ndarray     # float64[2, S, 6] cycles, see COST_COLUMNS
    domain_switch_cycles: float
    bridge_learn_cycles: float
    bridge_flood_cycles: float
    bridge_ageing_ns: float
    bridge_capacity: int
    stage_names: dict[str, list[str]]
    # runs: maximal consecutive stages with the same context, split after the release stage; the
    # kernel schedules a run as one step (same CPU, same domain: identical timing, fewer steps)
    n_runs: np.ndarray = None        # int64[2]
    run_ctx: np.ndarray = None       # int64[2, R]
    run_cost: np.ndarray = None      # float64[2, R, 6] summed stage costs
    run_bridge: np.ndarray = None    # int64[2, R] 1 if the run has a bridge stage
    # int64[2] run ending with the release stage (the last descriptor stage: its end frees the NIC
    # descriptor (RX) / hands to the link (TX))
    run_release: np.ndarray = None
    comp_cost: np.ndarray = None     # float64[2, n_components, 6]: stage costs summed per component
    bridge_comp: int = 0             # component charged for bridge learn/flood cycles


def _runs(n_stages, ctx, brg, cost, release):
    n_max = max(1, int(n_stages.max()))
    n_runs = np.zeros(2, np.int64)
    end = np.zeros((2, n_max), np.int64)  # one past the run's last stage
    rctx = np.zeros((2, n_max), np.int64)
    rcost = np.zeros((2, n_max, cost.shape[2]), np.float64)
    rbr = np.zeros((2, n_max), np.int64)
    rrel = np.zeros(2, np.int64)
    for d in range(2):
        r = -1
        for s in range(int(n_stages[d])):
            if r < 0 or ctx[d, s] != rctx[d, r] or end[d, r] - 1 == release[d]:
                r += 1
                rctx[d, r] = ctx[d, s]
            end[d, r] = s + 1
            rcost[d, r] += cost[d, s]
            if brg[d, s]:
                rbr[d, r] = 1
            if s == release[d]:
                rrel[d] = r
        n_runs[d] = r + 1
    return n_runs, rctx, rcost, rbr, rrel


def compile_architecture(arch: Architecture, params: ParamSet) -> CompiledArch:
    """Resolve every cost term against ``params`` (OptionError naming a missing parameter)."""

    def num(pname: str, what: str) -> float:
        if pname not in params:
            raise OptionError(f"architecture {arch.name!r} {what} needs parameter {pname!r}, "
                              f"missing from parameter set {params.name!r}")
        v = params.get(pname).value
        if isinstance(v, str):
            raise OptionError(f"architecture {arch.name!r} {what}: parameter {pname!r} is {v!r}, not a number")
        return float(v)

    active: dict[str, list[Stage]] = {}
    for d in DIRECTIONS:
        kept = []
        for s in arch.stages[d]:
            ok = True
            for k, v in s.when:
                if k not in params:
                    raise OptionError(f"architecture {arch.name!r} stage {s.name!r} needs parameter {k!r}, "
                                      f"missing from parameter set {params.name!r}")
                ok &= str(params[k]) == v
            if ok:
                kept.append(s)
        active[d] = kept
    n_max = max(1, max(len(v) for v in active.values()))
    n_stages = np.zeros(2, np.int64)
    comp = np.zeros((2, n_max), np.int64)
    ctx = np.zeros((2, n_max), np.int64)
    brg = np.zeros((2, n_max), np.int64)
    cost = np.zeros((2, n_max, len(COST_COLUMNS)), np.float64)
    release = np.zeros(2, np.int64)
    for di, d in enumerate(DIRECTIONS):
        n_stages[di] = len(active[d])
        last_desc = -1
        for si, s in enumerate(active[d]):
            comp[di, si] = COMPONENT_INDEX[s.component]
            ctx[di, si] = CONTEXT_INDEX[s.context]
            brg[di, si] = int(s.bridge)
            if s.component == "descriptor":
                last_desc = si
            for t in s.terms:
                v = t.count * num(t.param, f"stage {d}/{s.name}")
                if t.per == "packet":
                    cost[di, si, 0] += v
                elif t.per == "byte":
                    cost[di, si, 1 if t.bytes == "wire" else 2] += v
                else:
                    cost[di, si, 3 + BATCH_LEVEL_INDEX[t.level]] += v
        release[di] = max(last_desc, 0)
    if arch.bridge:
        learn = num(arch.bridge["learn"], "bridge")
        flood = num(arch.bridge["flood_per_port"], "bridge")
        ageing = num(arch.bridge["ageing_ns"], "bridge")
        cap = int(num(arch.bridge["capacity"], "bridge"))
    else:
        learn, flood, ageing, cap = 0.0, 0.0, 0.0, 1
    cap_pow2 = 1
    while cap_pow2 < max(cap, 1):
        cap_pow2 *= 2
    ds = num(arch.domain_switch_param, "domain switch") if arch.has_domains() else 0.0
    for d in DIRECTIONS:
        if sum(s.bridge for s in active[d]) > 1:
            raise OptionError(f"architecture {arch.name!r}: at most one bridge stage per direction")
    runs = _runs(n_stages, ctx, brg, cost, release)
    comp_cost = np.zeros((2, len(COMPONENTS), len(COST_COLUMNS)), np.float64)
    bridge_comp = COMPONENT_INDEX["bridge"]
    for di in range(2):
        for si in range(int(n_stages[di])):
            comp_cost[di, comp[di, si]] += cost[di, si]
            if brg[di, si]:
                bridge_comp = int(comp[di, si])
    return CompiledArch(
        name=arch.name, n_stages=n_stages, stage_comp=comp,
        stage_cost=cost, domain_switch_cycles=ds, bridge_learn_cycles=learn,
        bridge_flood_cycles=flood, bridge_ageing_ns=ageing, bridge_capacity=cap_pow2,
        stage_names={d: [s.name for s in active[d]] for d in DIRECTIONS},
        n_runs=runs[0], run_ctx=runs[1], run_cost=runs[2], run_bridge=runs[3], run_release=runs[4],
        comp_cost=comp_cost, bridge_comp=bridge_comp)


def param_rows(params: ParamSet, arch: str | None = None) -> list[dict[str, Any]]:
    """Every parameter with provenance, as rows (for ``pipeline params [--arch A] [--json]``).

    With ``arch``, only the parameters that architecture uses (plus the host/NIC ones every replay
    uses); each row also lists, under ``archs``, the registered architectures that use it.
    """
    users: dict[str, list[str]] = {}
    for name in list_architectures():
        for p in get_architecture(name).param_names():
            users.setdefault(p, []).append(name)
    names = sorted(params.params)
    if arch is not None:
        wanted = set(get_architecture(arch).param_names()) | set(HOST_PARAMS)
        names = [n for n in names if n in wanted]
    rows = params.rows(names)
    for r in rows:
        r["archs"] = ",".join(users.get(r["name"], [])) or ("all" if r["name"] in HOST_PARAMS else "")
    return rows


#: Host and NIC parameters every replay uses, whatever the architecture.
HOST_PARAMS: tuple[str, ...] = ("clock_hz", "itr_per_s", "rx_delay_ns", "rx_abs_delay_ns", "tx_delay_ns",
                                "napi_budget", "ring_size")


def resolve_architectures(names: list[str], arch_files: list[str | Path] = ()) -> list[Architecture]:
    """The architectures ``names`` (duplicates dropped), looked up first in ``arch_files`` (a user's
    TOML files, which may replace a bundled architecture of the same name), then in the registry.
    Nothing is registered globally, so one replay's files do not leak into the next."""
    user = {a.name: a for a in (load_arch_file(f) for f in arch_files)}
    return [user[n] if n in user else get_architecture(n) for n in dict.fromkeys(names)]
