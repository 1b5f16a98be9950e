"""Overload: the firmware streams at 3x the model's rate into a daemon whose stdout is a small
pipe read slowly. The source queue stays bounded, drops are counted by the policy, no record
is lost, and resident memory stays flat."""
from __future__ import annotations

import pytest

from spikeedge.soak import overload_phase

pytestmark = pytest.mark.firmware


@pytest.mark.parametrize("policy", ["drop-oldest", pytest.param("drop-newest",
                                                                marks=pytest.mark.slow)])
def test_three_times_real_time_with_a_slow_sink(fw_binary, tmp_path, policy):
    r = overload_phase(tmp_path, 12.0, policy=policy, binary=fw_binary)
    assert r["crashes"] == 0 and r["exit_code"] == 0, r
    assert r["dropped_blocks"] > 0 and r["dropped_samples"] > 0, r
    assert r["queue_max"] == 32 and r["queue_peak"] <= 32, r
    assert r["records_lost"] == 0 and r["stdout_records"] > 5, r
    assert r["rss_end"] - r["rss_start"] < 10e6, r["rss_curve"]
