"""The fit as code: it reproduces the bundled fitted values, and the held-out results check it."""

from __future__ import annotations

import pytest

from pipeline.models.fit import GROUPS, fit_parameters, synthetic_bulk_trace, validation_rows
from pipeline.models.params import load_params


@pytest.mark.parametrize("direction", ["rx", "tx"])
def test_synthetic_trace_shape(direction):
    ch = synthetic_bulk_trace(direction, 500, n_data=100)
    data = ch.payload_len > 0
    assert int(data.sum()) == 100 and int((~data).sum()) == 50
    assert set(ch.payload_len[data].tolist()) == {460} and set(ch.wire_len[data].tolist()) == {514}
    host_sends = (ch.src_ip_lo & 0xFFFFFFFF) == 0x0A000001
    assert bool((host_sends == data).all()) == (direction == "tx")


def test_every_fitted_parameter_has_a_target_and_is_marked_fitted():
    ps = load_params()
    fitted = {name for name, p in ps.params.items() if p.status == "fitted"}
    targets = {t.param for g in GROUPS for t in g}
    assert fitted == targets
    for g in GROUPS:
        for t in g:
            assert t.label.split()[0] in ps.get(t.param).fitted_to


@pytest.mark.slow
def test_fit_reproduces_bundled_values():
    values = fit_parameters()
    ps = load_params()
    for name, v in values.items():
        assert v == pytest.approx(ps.number(name), rel=0.01, abs=2.0), name


@pytest.mark.slow
def test_held_out_results():
    rows = validation_rows()
    assert {r["id"] for r in rows} == {"V1", "V2", "V15", "V21"}
    bad = [r for r in rows if not r["ok"]]
    assert not bad, bad
