"""Parameter sets with provenance: every cost number in one place, with where it comes from.

A parameter set is a TOML file of named tables (pvlib-style), one per parameter::

    [stack_rx_per_packet]
    value = 11834.0            # number (or a string for modes such as rx_mode)
    unit = "cycles/packet"
    source = "paper, table/page"
    status = "fitted"          # published | derived | assumed | fitted
    low = 5000.0               # plausible range, used for robustness checks
    high = 20000.0
    note = "..."               # optional
    fitted_to = "V3 RX"        # optional, for status = fitted

plus an optional ``[meta]`` table (``name``, ``description``, ``inherits`` = another set's name).
Bundled sets live in ``pipeline/models/params/``; ``load_params`` takes a bundled name or a path,
and ``overrides`` (a TOML file or a dict) replaces any value (an override only needs ``value``; the
rest of the entry is kept and its status becomes ``override``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import OptionError

PARAMS_DIR = Path(__file__).with_name("params")
DEFAULT_PARAMS = "xeon-2.4ghz-e1000"
STATUSES: tuple[str, ...] = ("published", "derived", "assumed", "fitted", "override")


@dataclass(frozen=True)
class Param:
    """One parameter value with its provenance."""

    name: str
    value: float | str
    unit: str
    source: str
    status: str
    low: float | None = None
    high: float | None = None
    note: str = ""
    fitted_to: str = ""

    def as_row(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "status": self.status,
                "low": self.low, "high": self.high, "source": self.source, "note": self.note,
                "fitted_to": self.fitted_to}


@dataclass
class ParamSet:
    """A named set of :class:`Param` (``name`` of the set, ``origin`` = file(s) it came from)."""

    name: str
    params: dict[str, Param]
    description: str = ""
    origin: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> float | str:
        return self.get(key).value

    def __contains__(self, key: str) -> bool:
        return key in self.params

    def get(self, key: str) -> Param:
        try:
            return self.params[key]
        except KeyError:
            raise OptionError(f"parameter set {self.name!r} has no parameter {key!r}") from None

    def number(self, key: str) -> float:
        v = self.get(key).value
        if isinstance(v, str):
            raise OptionError(f"parameter {key!r} of set {self.name!r} must be a number, not {v!r}")
        return float(v)

    def rows(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """All parameters (or those in ``names``) as dicts, sorted by name: for ``pipeline params``."""
        keys = sorted(self.params) if names is None else sorted(set(names))
        return [self.get(k).as_row() for k in keys]


def _parse_entry(name: str, raw: Any, where: str) -> Param:
    if not isinstance(raw, dict):
        raise OptionError(f"{where}: parameter {name!r} must be a table with value, unit, source, status")
    if "value" not in raw:
        raise OptionError(f"{where}: parameter {name!r} has no value")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise OptionError(f"{where}: parameter {name!r} value must be a number or a string, not {value!r}")
    if not isinstance(value, str):
        value = float(value)
    for key in ("unit", "source", "status"):
        if key not in raw:
            raise OptionError(f"{where}: parameter {name!r} has no {key}")
    status = str(raw["status"])
    if status not in STATUSES:
        raise OptionError(f"{where}: parameter {name!r} has status {status!r}; expected one of "
                          f"{', '.join(STATUSES)}")
    low = raw.get("low")
    high = raw.get("high")
    if not isinstance(value, str):
        if low is None or high is None:
            raise OptionError(f"{where}: numeric parameter {name!r} needs low and high")
        if not float(low) <= float(high):
            raise OptionError(f"{where}: parameter {name!r} has low {low} > high {high}")
    return Param(name=name, value=value, unit=str(raw["unit"]), source=str(raw["source"]),
                 status=status, low=None if low is None else float(low),
                 high=None if high is None else float(high), note=str(raw.get("note", "")),
                 fitted_to=str(raw.get("fitted_to", "")))


def read_toml(path: Path, what: str = "parameter file") -> dict[str, Any]:
    """A TOML file as a dict; one-line :class:`OptionError` naming the file when it cannot be used."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise OptionError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise OptionError(f"{path}: cannot read: {exc.strerror}") from None


def list_param_sets() -> list[str]:
    """Names of the bundled parameter sets."""
    return sorted(p.stem for p in PARAMS_DIR.glob("*.toml"))


def _resolve_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    bundled = PARAMS_DIR / f"{name_or_path}.toml"
    if bundled.exists():
        return bundled
    raise OptionError(f"unknown parameter set {str(name_or_path)!r}; bundled sets: "
                      f"{', '.join(list_param_sets())} (or give a .toml path)")


def _load_set(name_or_path: str | Path, depth: int = 0) -> ParamSet:
    if depth > 8:
        raise OptionError(f"parameter set {name_or_path!r}: 'inherits' chain too deep")
    path = _resolve_path(name_or_path)
    raw = read_toml(path)
    meta = raw.pop("meta", {}) or {}
    base: ParamSet | None = None
    if meta.get("inherits"):
        base = _load_set(str(meta["inherits"]), depth + 1)
    params: dict[str, Param] = dict(base.params) if base else {}
    for name, entry in raw.items():
        params[name] = _parse_entry(name, entry, str(path))
    origin = (base.origin if base else []) + [str(path)]
    return ParamSet(name=str(meta.get("name", path.stem)), params=params,
                    description=str(meta.get("description", base.description if base else "")),
                    origin=origin)


def load_params(name_or_path: str | Path = DEFAULT_PARAMS,
                overrides: str | Path | dict[str, Any] | None = None) -> ParamSet:
    """Load a bundled parameter set by name, or a TOML file, then apply ``overrides``.

    ``overrides`` is a TOML path (tables like the set's, or plain ``name = value`` pairs) or a dict
    ``{name: value | {value=..., ...}}``. Every overridden parameter must exist in the set, and its
    status becomes ``override`` unless the override gives full provenance (unit, source, status).
    """
    ps = _load_set(name_or_path)
    if overrides is None:
        return ps
    if isinstance(overrides, str | Path):
        where = str(overrides)
        raw = read_toml(Path(overrides))
        raw.pop("meta", None)
    else:
        where = "overrides"
        raw = dict(overrides)
    params = dict(ps.params)
    for name, entry in raw.items():
        if name not in params:
            raise OptionError(f"{where}: unknown parameter {name!r} (not in set {ps.name!r})")
        old = params[name]
        if isinstance(entry, dict) and {"unit", "source", "status"} <= set(entry):
            merged = {**old.as_row(), **entry}
            params[name] = _parse_entry(name, merged, where)
            continue
        value = entry.get("value") if isinstance(entry, dict) else entry
        if value is None:
            raise OptionError(f"{where}: override of {name!r} has no value")
        if isinstance(old.value, str) != isinstance(value, str) or isinstance(value, bool):
            raise OptionError(f"{where}: override of {name!r} must be a "
                              f"{'string' if isinstance(old.value, str) else 'number'}, not {value!r}")
        note = f"overridden from {where} (was {old.value!r})"
        params[name] = replace(old, value=value if isinstance(value, str) else float(value),
                               status="override", note=note)
    return ParamSet(ps.name, params, ps.description, ps.origin + [where])
