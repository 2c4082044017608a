"""pipeline.ingest.columns helpers."""

from __future__ import annotations

import numpy as np

from pipeline.ingest.columns import format_ts_ns


def test_format_ts_ns() -> None:
    assert format_ts_ns(None) == "-"
    assert format_ts_ns(1_700_000_000_123_456_789) == "2023-11-14 22:13:20.123456789 UTC"
    assert format_ts_ns(0) == "1970-01-01 00:00:00.000000000 UTC"
    # the reader's clamp for timestamps past year 2262 (int64 maximum) is still a date
    assert format_ts_ns(int(np.iinfo(np.int64).max)) == "2262-04-11 23:47:16.854775807 UTC"
    # a value beyond any date (not from the reader, e.g. a hand-edited metadata file): seconds
    assert format_ts_ns(10**30) == f"{10**21} s.000000000 UTC"
