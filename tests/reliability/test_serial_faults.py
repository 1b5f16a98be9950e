"""Serial faults between the host firmware (over a real pty) and the daemon: every corrupt
and every lost frame is counted exactly, the daemon never crashes, and it reconnects."""
from __future__ import annotations

import pytest

from spikeedge.soak import serial_phase

pytestmark = pytest.mark.firmware


def check(r):
    assert r["crashes"] == 0 and r["exit_code"] == 0, r
    assert r["relay_error"] is None and "stuck" not in r, r
    assert r["relay"]["inexact_unplugs"] == 0, r
    assert r["detected_errors"] == r["relay"]["expected_errors"], r
    assert r["detected_dropped_frames"] == r["relay"]["expected_dropped_frames"], r


def test_every_fault_kind_once_counts_exactly(fw_binary, tmp_path):
    kinds = ["garbage", "bitflip", "truncate", "drop", "unplug", "stall", "baud", "version"]
    r = serial_phase(tmp_path, faults=kinds, stall_s=2.5, timeout_s=1.0,
                     garbage_bytes=20_000, binary=fw_binary, seed=1)
    check(r)
    inj = r["relay"]["injected"]
    assert inj["bits_flipped"] > 0 and inj["frames_truncated"] > 0
    assert inj["frames_dropped"] > 0 and inj["bad_version_headers"] >= 1
    assert r["reconnects"] >= 3          # unplug, stall, version
    assert r["gap_events"] > 0
    # the wrong protocol version is named in the status the daemon reports
    assert "version" in (r["last_error"] or ""), r["last_error"]


@pytest.mark.slow
def test_repeated_unplugs_and_a_garbage_flood(fw_binary, tmp_path):
    kinds = ["unplug"] * 8 + ["garbage"] * 4 + ["bitflip", "truncate", "drop", "unplug"]
    r = serial_phase(tmp_path, faults=kinds, stall_s=2.5, timeout_s=1.0,
                     garbage_bytes=64_000, binary=fw_binary, seed=2)
    check(r)
    assert r["reconnects"] == 9
    assert r["relay"]["injected"]["garbage_bytes"] == 256_000
