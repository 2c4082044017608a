"""Parameter sets: provenance on every value, bundled sets, inheritance, overrides, errors."""

from __future__ import annotations

import pytest

from pipeline.errors import OptionError
from pipeline.models.params import STATUSES, list_param_sets, load_params


@pytest.mark.parametrize("name", ["xeon-2.4ghz-e1000", "p4-1.7ghz-e1000"])
def test_bundled_sets_have_full_provenance(name):
    ps = load_params(name)
    assert len(ps.params) >= 30
    for row in ps.rows():
        assert row["source"] and row["unit"] and row["status"] in STATUSES
        if not isinstance(row["value"], str):
            assert row["low"] <= row["high"]
        if row["status"] == "fitted":
            assert row["fitted_to"], row["name"]


def test_list_param_sets():
    assert {"xeon-2.4ghz-e1000", "p4-1.7ghz-e1000"} <= set(list_param_sets())


def test_published_numbers_match_calibration_sources():
    ps = load_params()
    assert ps.number("clock_hz") == 2.4e9
    assert ps.number("itr_per_s") == 8000
    assert ps.number("rx_abs_delay_ns") == 128 * 1024
    assert ps.number("tx_delay_ns") == 64 * 1024
    assert ps.number("ring_size") == 256
    assert ps.number("trap_bounce_cycles") == 816  # 0.34 us x 2.4 GHz
    assert ps.get("trap_bounce_cycles").status == "derived"
    seg = ps.get("segment_switch_cycles")
    assert seg.low <= seg.value <= seg.high and seg.status == "derived"


def test_p4_inherits_costs_but_not_clock():
    xeon = load_params("xeon-2.4ghz-e1000")
    p4 = load_params("p4-1.7ghz-e1000")
    assert p4.number("clock_hz") == 1.7e9
    assert p4.number("stack_rx_per_packet") == xeon.number("stack_rx_per_packet")
    assert p4.name == "p4-1.7ghz-e1000"


def test_dict_override_keeps_provenance_and_marks_it():
    ps = load_params(overrides={"irq_cycles": 1234})
    p = ps.get("irq_cycles")
    assert p.value == 1234.0 and p.status == "override" and "was 1500" in p.note
    assert p.unit == "cycles/interrupt"


def test_file_override(tmp_path):
    f = tmp_path / "o.toml"
    f.write_text('copy_per_byte = 2.0\n[rx_mode]\nvalue = "copy"\n')
    ps = load_params("xeon-2.4ghz-e1000", f)
    assert ps.number("copy_per_byte") == 2.0
    assert ps["rx_mode"] == "copy"
    assert str(f) in ps.origin


@pytest.mark.parametrize("override, msg", [
    ({"no_such_param": 1}, "unknown parameter 'no_such_param'"),
    ({"irq_cycles": "fast"}, "must be a number"),
    ({"rx_mode": 3}, "must be a string"),
])
def test_bad_overrides(override, msg):
    with pytest.raises(OptionError, match=msg):
        load_params(overrides=override)


def test_unknown_set():
    with pytest.raises(OptionError, match="unknown parameter set"):
        load_params("no-such-machine")


@pytest.mark.parametrize("text, msg", [
    ("[x]\nvalue = 1\n", "has no unit"),
    ("[x\n", "not valid TOML"),
    ('[x]\nvalue = 1\nunit = "u"\nsource = "s"\nstatus = "guessed"\nlow = 0\nhigh = 2\n', "status 'guessed'"),
    ('[x]\nvalue = 1\nunit = "u"\nsource = "s"\nstatus = "assumed"\n', "needs low and high"),
])
def test_bad_files(tmp_path, text, msg):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(OptionError, match=msg):
        load_params(bad)
