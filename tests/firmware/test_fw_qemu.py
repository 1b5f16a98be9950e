"""The Cortex-M3 build under qemu-system-arm (mps2-an385), UART0 on a pty, read by SerialSource.

Marked ``firmware`` and ``slow``: needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and
qemu-system-arm; skipped with the reason when they are missing.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from spikeedge.sensors.fake_serial import signal_block
from spikeedge.sensors.serial_link import SerialSource

pytestmark = [pytest.mark.firmware, pytest.mark.slow]


def test_qemu_streams_the_builtin_ecg_exactly(arm_firmware):
    proc = subprocess.Popen(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an385",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "pty",
            "-kernel",
            str(arm_firmware),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"(/dev/pts/\d+)", line)
        assert match, f"qemu did not report its pty: {line!r}"
        src = SerialSource(
            match.group(1), baud=115200, raw=True, block_size=96, header_timeout=10.0
        )
        with src:
            blocks = [src.read() for _ in range(8)]  # about 2 s of signal at 360 Hz
            st = src.status()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert src.rate == 360.0 and src.channels == 2
    assert st["device"]["name"] == "spikeedge-mps2-an385"
    got = np.concatenate([b.samples for b in blocks])
    # START restarted the stream, so sample 0 of the source is sample 0 of the signal.
    np.testing.assert_array_equal(got, signal_block("ecg", 2, 288, 1000, 0, got.shape[0], 2))
    assert st["dropped_frames"] == 0 and st["crc_errors"] == 0 and not any(b.gap for b in blocks)
