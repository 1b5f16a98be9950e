"""The Cortex-M3 build under qemu-system-arm (mps2-an385), UART0 on a pty, read by SerialSource.

Marked ``firmware`` and ``slow``: needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and
qemu-system-arm; skipped with the reason when they are missing.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from spikeedge.sensors.errors import SensorError
from spikeedge.sensors.fake_serial import signal_block
from spikeedge.sensors.serial_link import SerialSource

pytestmark = [pytest.mark.firmware, pytest.mark.slow]


def _stream_from_qemu(arm_firmware):
    """Boot the firmware in qemu and read 8 blocks from its UART; (blocks, status, rate,
    channels). The source gives up after 15 s without data instead of waiting for ever."""
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
            match.group(1), baud=115200, raw=True, block_size=96, header_timeout=10.0,
            timeout=15.0, max_reconnects=1,
        )
        with src:
            blocks = [src.read() for _ in range(8)]  # about 2 s of signal at 360 Hz
            st = src.status()
        return blocks, st, src.rate, src.channels
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_qemu_streams_the_builtin_ecg_exactly(arm_firmware):
    # A qemu boot whose UART never delivers (seen once on a loaded machine, with the host
    # polling an idle pty) is retried, and so is one whose stream came with a gap flag. That
    # was seen once in CI under load with every sample exact and nothing dropped: the first
    # START went unanswered while the autostarted stream's frames arrived, and the retry of
    # the open counted them as lost. The source no longer does (tests/firmware/
    # test_fw_serial_source.py, test_fw_host.py: the start races); a gap here now means a
    # real loss (a firmware overrun on a starved CPU), which a boot on a less loaded moment
    # does not have. One of 3 boots must give an exact stream without any gap.
    errors = []
    for _attempt in range(3):
        try:
            blocks, st, rate, channels = _stream_from_qemu(arm_firmware)
        except SensorError as e:
            errors.append(repr(e))
            continue
        if not any(b.gap for b in blocks):
            break
        errors.append(f"gap flags {[b.gap for b in blocks]}, infos "
                      f"{[b.info for b in blocks if b.gap]}, status {st}")
    else:
        pytest.fail(f"no gap-free stream from the firmware in 3 qemu boots: {errors}")
    assert rate == 360.0 and channels == 2
    assert st["device"]["name"] == "spikeedge-mps2-an385"
    got = np.concatenate([b.samples for b in blocks])
    # START restarted the stream, so sample 0 of the source is sample 0 of the signal.
    np.testing.assert_array_equal(got, signal_block("ecg", 2, 288, 1000, 0, got.shape[0], 2))
    assert st["dropped_frames"] == 0 and st["crc_errors"] == 0 and not any(b.gap for b in blocks)
