"""The Python protocol code against the shared vectors (the C tests check the same files)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from spikeedge.sensors import protocol as P
from spikeedge.sensors.fake_serial import signal_value

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def _packet(v: dict) -> P.Packet:
    f = dict(v["fields"])
    if v["type"] == "DataFrame":
        samples = np.array(f.pop("samples"), dtype=np.int64).reshape(f["n"], f["channels"])
        return P.DataFrame(data=P.pack_samples(samples, f["format"]), **f)
    return getattr(P, v["type"])(**f)


def test_crc32(vectors):
    assert P.crc32(b"123456789") == 0xCBF43926
    for v in vectors["crc32"]:
        assert P.crc32(bytes.fromhex(v["data"])) == v["crc"]


def test_cobs(vectors):
    for v in vectors["cobs"]:
        raw, enc = bytes.fromhex(v["raw"]), bytes.fromhex(v["encoded"])
        assert P.cobs_encode(raw) == enc, v["name"]
        assert P.cobs_decode(enc) == raw, v["name"]
        assert 0 not in enc


def test_packets_encode_and_decode(vectors):
    for v in vectors["packets"]:
        packet = _packet(v)
        assert P.encode_payload(packet).hex() == v["payload"], v["name"]
        assert P.encode(packet).hex() == v["wire"], v["name"]
        dec = P.Decoder()
        assert dec.feed(bytes.fromhex(v["wire"])) == [packet], v["name"]
        assert dec.packets == 1


def test_bad_vectors_are_counted_not_raised(vectors):
    counter = {"cobs": "cobs_errors", "crc": "crc_errors", "malformed": "malformed"}
    for v in vectors["bad"]:
        dec = P.Decoder()
        assert dec.feed(bytes.fromhex(v["wire"]) + b"\x00") == [], v["name"]
        counts = dec.counters()
        assert counts[counter[v["error"]]] == 1, (v["name"], counts)
        assert counts["cobs_errors"] + counts["crc_errors"] + counts["malformed"] == 1
        assert dec.last_error


def test_signals_match_c(vectors):
    for v in vectors["signals"]:
        got = [
            [
                signal_value(v["kind"], v["format"], v["period"], v["amplitude"], v["start"] + i, c)
                for c in range(v["channels"])
            ]
            for i in range(len(v["values"]))
        ]
        assert got == v["values"], v


def test_vectors_are_up_to_date():
    try:
        gen = importlib.import_module("spikeedge.tools.gen_fw_vectors")
    except ImportError as exc:
        pytest.skip(f"spikeedge.tools not importable here: {exc}")
    for name, text in gen.render().items():
        path = FIRMWARE / "test_vectors" / name
        assert path.read_text() == text, (
            f"{path} is stale: run python -m spikeedge.tools.gen_fw_vectors"
        )
