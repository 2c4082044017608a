"""The replay configuration (:class:`ReplayConfig`) and the models it names (:func:`resolve_models`).

Kept apart from :mod:`pipeline.replay` (whose numba kernels cost ~0.15 s of imports) so that the
``pipeline batch`` coordinator can check a configuration (exit 2 before any work is fanned out) and
ship it to its workers without importing numba or pyarrow: while it plans, its fork server imports
and warms up on the other core, and any CPU the coordinator spends then slows that (the two share
the machine: a concurrent process importing numba slowed the fork server by ~0.04-0.06 s on the
2-core benchmark machine). ``pipeline.replay`` re-exports both names. Fields: see the interface in
:mod:`pipeline.replay`'s docstring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.errors import OptionError
from pipeline.models.params import DEFAULT_PARAMS, ParamSet, load_params
from pipeline.models.registry import DEFAULT_ARCHS, CompiledArch, compile_architecture, resolve_architectures

SEGMENT_MODES = ("captured", "mss")
PLACEMENTS = ("shared", "split", "per-guest")


@dataclass
class ReplayConfig:
    """Everything a replay needs, resolved (the fields: :mod:`pipeline.replay`'s docstring)."""

    archs: list[str] = field(default_factory=lambda: list(DEFAULT_ARCHS))
    params: str = DEFAULT_PARAMS
    param_overrides: str | dict[str, Any] | None = None
    arch_files: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    guests: list[str] = field(default_factory=list)
    n_guests: int | None = None
    segments: str = "captured"
    mtu: int = 1500
    link_bps: float = 1e9
    placement: str = "shared"
    ring_size: int | None = None
    chunk_packets: int = 1 << 20
    saturation: bool = True
    saturation_tol: float = 0.02
    cache_packets: int = 4_000_000
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arch_files"] = [str(p) for p in self.arch_files]
        po = self.param_overrides
        d["param_overrides"] = None if po is None else (dict(po) if isinstance(po, dict) else str(po))
        d["params"] = str(self.params)
        return d

    def validate(self) -> None:
        if self.segments not in SEGMENT_MODES:
            raise OptionError(f"--segments must be one of {', '.join(SEGMENT_MODES)}, not {self.segments!r}")
        if self.placement not in PLACEMENTS:
            raise OptionError(f"--placement must be one of {', '.join(PLACEMENTS)}, not {self.placement!r}")
        if not self.link_bps > 0:
            raise OptionError(f"--link-bps must be > 0, not {self.link_bps}")
        if self.ring_size is not None and self.ring_size < 1:
            raise OptionError(f"--ring-size must be >= 1, not {self.ring_size}")
        if self.mtu < 68:
            raise OptionError(f"--mtu must be >= 68, not {self.mtu}")
        if self.chunk_packets < 1:
            raise OptionError(f"chunk_packets must be >= 1, not {self.chunk_packets}")
        if not self.archs:
            raise OptionError("no architecture selected")
        if self.threads is not None and self.threads < 1:
            raise OptionError(f"threads must be >= 1, not {self.threads}")
        if not 0 < self.saturation_tol < 1:
            raise OptionError(f"saturation_tol must be in (0, 1), not {self.saturation_tol}")


def resolve_models(config: ReplayConfig) -> tuple[ParamSet, list[Any], list[CompiledArch]]:
    """The parameter set, architectures and compiled architectures ``config`` names (no kernel runs):
    what a replay uses, and how ``pipeline batch`` checks a configuration before fanning out.
    Raises PipelineError (exit 2) for an unknown architecture or parameter, or a bad TOML file."""
    config.validate()
    params = load_params(config.params, config.param_overrides)
    archs = resolve_architectures(config.archs, config.arch_files)
    return params, archs, [compile_architecture(a, params) for a in archs]
