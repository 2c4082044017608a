"""Architectures as data: bundled TOML, validation with one-line errors, compilation to arrays."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import OptionError
from pipeline.models.components import COMPONENT_INDEX, COMPONENTS
from pipeline.models.params import load_params
from pipeline.models.registry import (
    compile_architecture,
    get_architecture,
    list_architectures,
    load_arch_file,
)

ARCHS = ["linux", "xen", "dbnet", "xen1"]


def test_bundled_architectures_listed_in_default_order():
    assert list_architectures()[:4] == ARCHS


@pytest.mark.parametrize("name", ARCHS)
def test_bundled_architecture_compiles_with_default_params(name):
    arch = get_architecture(name)
    comp = compile_architecture(arch, load_params())
    assert comp.n_stages[0] > 0 and comp.n_stages[1] > 0
    assert np.all(comp.stage_cost >= 0)
    rows = arch.describe_rows()
    assert {r["direction"] for r in rows} == {"rx", "tx"}
    assert all(r["component"] in COMPONENTS for r in rows)


def test_paths_follow_the_design():
    """Structural facts from DESIGN.md section 2, as data."""
    comps = {a: get_architecture(a).components() for a in ARCHS}
    assert "segment_switch" in comps["dbnet"] and "segment_switch" not in comps["xen"]
    assert comps["linux"] == {"interrupt", "descriptor", "stack"}
    xen = get_architecture("xen")
    assert any(s.bridge and s.context == "dom0" for s in xen.stages["rx"])
    dbnet = get_architecture("dbnet")
    assert not any(s.context == "dom0" for st in dbnet.stages.values() for s in st)  # dom0 off the path
    assert any(s.bridge and s.context == "vmm" for s in dbnet.stages["rx"])
    xen1 = get_architecture("xen1")
    assert "segment_switch" not in xen1.components()


def test_rx_mode_selects_flip_or_copy():
    arch = get_architecture("xen")
    flip = compile_architecture(arch, load_params())
    copy = compile_architecture(arch, load_params(overrides={"rx_mode": "copy"}))
    assert "page_flip" in flip.stage_names["rx"] and "grant_copy" not in flip.stage_names["rx"]
    assert "grant_copy" in copy.stage_names["rx"] and "page_flip" not in copy.stage_names["rx"]
    # the copy mode has a per-wire-byte cost in the grant_copy component
    rx = 0
    gc = [i for i in range(copy.n_stages[rx]) if copy.stage_comp[rx, i] == COMPONENT_INDEX["grant_copy"]]
    assert copy.stage_cost[rx, gc[0], 1] == load_params().number("copy_per_byte")


def test_costs_are_count_times_param():
    ps = load_params()
    comp = compile_architecture(get_architecture("dbnet"), ps)
    rx = 0
    i = comp.stage_names["rx"].index("driver_segment_switch")
    seg = ps.number("segment_switch_cycles")
    assert comp.stage_cost[rx, i, 0] == pytest.approx(2 * seg)   # per packet
    assert comp.stage_cost[rx, i, 3] == pytest.approx(2 * seg)   # per nic batch


GOOD = """
name = "mini"
[[rx]]
name = "irq"
component = "interrupt"
context = "kernel"
terms = [{ per = "batch", level = "nic", param = "irq_cycles" }]
[[tx]]
name = "stack"
component = "stack"
context = "kernel"
terms = [{ per = "packet", param = "stack_tx_per_packet" }]
"""


def test_user_arch_file(tmp_path):
    f = tmp_path / "mini.toml"
    f.write_text(GOOD)
    arch = load_arch_file(f)
    assert arch.name == "mini" and len(arch.stages["rx"]) == 1
    c = compile_architecture(arch, load_params())
    assert c.stage_cost[0, 0, 3] == 1500.0


@pytest.mark.parametrize("edit, msg", [
    (('component = "interrupt"', 'component = "magic"'), "unknown component 'magic'"),
    (('context = "kernel"', 'context = "dom7"'), "unknown context 'dom7'"),
    (('level = "nic"', 'level = "daily"'), "unknown batch level 'daily'"),
    (('per = "packet"', 'per = "flow"'), "'per' must be one of"),
    (('component = "interrupt"', 'component = "domain_switch"'), "charged automatically"),
    (('name = "mini"', 'name = "bad name!"'), "needs a name"),
])
def test_validation_errors_are_one_line(tmp_path, edit, msg):
    f = tmp_path / "bad.toml"
    f.write_text(GOOD.replace(*edit, 1))
    with pytest.raises(OptionError, match=msg) as exc:
        load_arch_file(f)
    assert "\n" not in str(exc.value) and str(f) in str(exc.value)


def test_missing_parameter_is_named(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text(GOOD.replace("stack_tx_per_packet", "warp_drive_cycles"))
    with pytest.raises(OptionError, match="needs parameter 'warp_drive_cycles'"):
        compile_architecture(load_arch_file(f), load_params())


def test_bridge_stage_needs_bridge_table(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text(GOOD.replace('context = "kernel"\nterms = [{ per = "packet"',
                              'context = "kernel"\nbridge = true\nterms = [{ per = "packet"'))
    with pytest.raises(OptionError, match=r"needs a \[bridge\] table"):
        load_arch_file(f)


def test_unknown_architecture():
    with pytest.raises(OptionError, match="unknown architecture 'vhost'"):
        get_architecture("vhost")


def test_param_rows_for_pipeline_params():
    from pipeline.models.registry import HOST_PARAMS, param_rows

    ps = load_params()
    all_rows = param_rows(ps)
    assert len(all_rows) == len(ps.params)
    db = {r["name"]: r for r in param_rows(ps, "dbnet")}
    assert "segment_switch_cycles" in db and "netback_rx_per_packet" not in db
    assert set(HOST_PARAMS) <= set(db)
    assert "dbnet" in db["segment_switch_cycles"]["archs"]
    assert db["stack_rx_per_packet"]["archs"] == "linux,xen,dbnet,xen1"
    for r in all_rows:
        assert {"name", "value", "unit", "status", "low", "high", "source"} <= set(r)
