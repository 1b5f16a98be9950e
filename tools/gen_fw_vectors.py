"""Generate the protocol test vectors shared by the C firmware tests and the Python tests.

    python -m spikeedge.tools.gen_fw_vectors            # rewrite firmware/test_vectors/
    python -m spikeedge.tools.gen_fw_vectors --check    # exit 1 if the checked-in files differ

Writes ``protocol_vectors.json`` (read by tests/firmware/) and ``protocol_vectors.h`` (included
by firmware/tests/test_vectors.c) from the same data, built with the Python encoder in
:mod:`spikeedge.sensors.protocol`; the C tests check that the C encoder produces the same bytes
and the C parser the same fields, so both implementations are held to one specification.
Never edit the generated files by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from spikeedge.sensors import protocol as P
from spikeedge.sensors.fake_serial import signal_value

OUT_DIR = Path(__file__).resolve().parent.parent / "firmware" / "test_vectors"


def _cobs_cases() -> list[tuple[str, bytes]]:
    return [
        ("empty", b""),
        ("one_zero", b"\x00"),
        ("two_zeros", b"\x00\x00"),
        ("zero_inside", bytes.fromhex("11220033")),
        ("no_zero", bytes.fromhex("11223344")),
        ("trailing_zeros", bytes.fromhex("11000000")),
        ("run_253", bytes(range(1, 254))),
        ("run_254", bytes(range(1, 255))),
        ("run_255", bytes(range(1, 256))),
        ("zero_then_254", b"\x00" + bytes(range(1, 255))),
        ("run_254_then_zero", bytes(range(1, 255)) + b"\x00"),
        ("run_600_mixed", bytes((i * 7 + 1) % 256 for i in range(600))),
    ]


def _data(stream, seq, index, fmt, samples, flags=0, t_us=None, rate=1000):
    arr = np.asarray(samples, dtype=np.int64)
    arr = arr.reshape(len(arr), -1) if arr.size else arr.reshape(0, 1)
    n, ch = arr.shape
    if t_us is None:
        t_us = index * 1_000_000 // rate
    return P.DataFrame(stream, seq, index, t_us, fmt, ch, n, P.pack_samples(arr, fmt), flags)


def _packets() -> list[tuple[str, P.Packet]]:
    rng = np.random.default_rng(5)
    big = rng.integers(-32768, 32768, size=(256, 2))
    return [
        (
            "header_ecg",
            P.Header(
                stream=1,
                format=P.SampleFormat.S16,
                channels=2,
                rate_hz=360,
                samples_per_frame=32,
                device_id=0x5E000001,
                offset=1024,
                gain_milli=200000,
                name="mitbih-208",
            ),
        ),
        (
            "header_noname",
            P.Header(
                stream=255,
                format=P.SampleFormat.S8,
                channels=8,
                rate_hz=200,
                samples_per_frame=16,
                device_id=0,
                offset=-5,
                gain_milli=0,
                name="",
            ),
        ),
        ("data_s16_mono", _data(1, 0, 0, P.SampleFormat.S16, [[0], [1], [-1], [32767], [-32768]])),
        (
            "data_s16_stereo",
            _data(1, 7, 224, P.SampleFormat.S16, [[100, -100], [0, 256], [512, -512]], rate=360),
        ),
        (
            "data_s8_myo",
            _data(
                3,
                41,
                656,
                P.SampleFormat.S8,
                [[-128, 127, 0, 1, -1, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8]],
                rate=200,
            ),
        ),
        (
            "data_s32",
            _data(
                2,
                0xFFFFFFFF,
                0xFFFFFFF0,
                P.SampleFormat.S32,
                [[-(2**31)], [2**31 - 1], [0]],
                t_us=2**40 + 3,
            ),
        ),
        (
            "data_end_empty",
            _data(1, 9, 288, P.SampleFormat.S16, np.zeros((0, 1)), flags=P.FLAG_END),
        ),
        ("data_overrun", _data(1, 10, 400, P.SampleFormat.S16, [[5], [6]], flags=P.FLAG_OVERRUN)),
        ("data_zeros", _data(1, 0, 0, P.SampleFormat.S16, np.zeros((40, 1)))),
        ("data_full", _data(4, 1234, 315904, P.SampleFormat.S16, big, rate=16000)),
        ("command_start", P.Command(token=1, opcode=P.Opcode.START)),
        ("command_stop", P.Command(token=2, opcode=P.Opcode.STOP)),
        ("command_set_rate", P.Command(token=3, opcode=P.Opcode.SET_RATE, arg=8000)),
        ("command_identify", P.Command(token=0, opcode=P.Opcode.IDENTIFY)),
        ("ack_start", P.Ack(token=1, opcode=P.Opcode.START, status=P.AckStatus.OK, value=360)),
        (
            "ack_bad_rate",
            P.Ack(token=3, opcode=P.Opcode.SET_RATE, status=P.AckStatus.BAD_ARGUMENT, value=360),
        ),
    ]


def _bad_cases() -> list[tuple[str, bytes, str]]:
    """Wire bytes (without delimiter) that must be rejected, and the error class."""
    good = P.encode(P.Command(1, P.Opcode.START))[:-1]
    flipped = bytearray(good)
    flipped[2] ^= 0x10
    cases = [
        ("crc_bitflip", bytes(flipped), "crc"),
        ("cobs_code_past_end", bytes([0x09, 1, 2, 3]), "cobs"),
        ("too_short", P.cobs_encode(b"\x10\x01"), "crc"),
        ("unknown_type", P.frame_payload(b"\x7f\x01\x02")[:-1], "malformed"),
        (
            "data_bad_length",
            P.frame_payload(P.encode_data(_data(1, 0, 0, P.SampleFormat.S16, [[1], [2]]))[:-1])[
                :-1
            ],
            "malformed",
        ),
        (
            "data_bad_format",
            P.frame_payload(bytes([2, 1, 0, 9, 1, 0, 0, 0]) + bytes(16))[:-1],
            "malformed",
        ),
        (
            "header_bad_version",
            P.frame_payload(b"\x01\x07" + P.encode_header(P.Header(1, 2, 1, 360, 32, 1))[2:])[:-1],
            "malformed",
        ),
        ("command_bad_length", P.frame_payload(b"\x10\x05\x03\x01")[:-1], "malformed"),
        ("ack_bad_length", P.frame_payload(b"\x11\x01\x01\x00")[:-1], "malformed"),
    ]
    return cases


def _signal_cases() -> list[dict]:
    cases = []
    for kind, fmt, period, amp, start, channels in [
        ("ramp", P.SampleFormat.S16, 8, 0, 32760, 2),
        ("ramp", P.SampleFormat.S8, 8, 0, 120, 1),
        ("sine", P.SampleFormat.S16, 100, 1000, 0, 2),
        ("sine", P.SampleFormat.S16, 37, -3000, 1000, 1),
        ("ecg", P.SampleFormat.S16, 288, 1000, 0, 2),
        ("ecg", P.SampleFormat.S16, 320, 2000, 100000, 1),
    ]:
        n = 64 if kind != "ecg" else period
        values = [
            [signal_value(kind, int(fmt), period, amp, start + i, c) for c in range(channels)]
            for i in range(n)
        ]
        cases.append(
            {
                "kind": kind,
                "format": int(fmt),
                "period": period,
                "amplitude": amp,
                "start": start,
                "channels": channels,
                "values": values,
            }
        )
    return cases


def _fields(packet: P.Packet) -> dict:
    if isinstance(packet, P.DataFrame):
        return {
            "stream": packet.stream,
            "seq": packet.seq,
            "sample_index": packet.sample_index,
            "t_us": packet.t_us,
            "format": packet.format,
            "channels": packet.channels,
            "n": packet.n,
            "flags": packet.flags,
            "samples": packet.samples.tolist(),
        }
    if isinstance(packet, P.Header):
        return {
            "stream": packet.stream,
            "format": packet.format,
            "channels": packet.channels,
            "rate_hz": packet.rate_hz,
            "samples_per_frame": packet.samples_per_frame,
            "device_id": packet.device_id,
            "offset": packet.offset,
            "gain_milli": packet.gain_milli,
            "name": packet.name,
            "version": packet.version,
        }
    if isinstance(packet, P.Command):
        return {"token": packet.token, "opcode": packet.opcode, "arg": packet.arg}
    return {
        "token": packet.token,
        "opcode": packet.opcode,
        "status": packet.status,
        "value": packet.value,
    }


def build() -> dict:
    return {
        "comment": "generated by tools/gen_fw_vectors.py; do not edit",
        "protocol_version": P.PROTOCOL_VERSION,
        "crc32": [
            {"data": d.hex(), "crc": P.crc32(d)}
            for d in [b"", b"123456789", b"\x00", b"\xff" * 4, bytes(range(256))]
        ],
        "cobs": [
            {"name": n, "raw": raw.hex(), "encoded": P.cobs_encode(raw).hex()}
            for n, raw in _cobs_cases()
        ],
        "packets": [
            {
                "name": n,
                "type": type(p).__name__,
                "fields": _fields(p),
                "payload": P.encode_payload(p).hex(),
                "wire": P.encode(p).hex(),
            }
            for n, p in _packets()
        ],
        "bad": [{"name": n, "wire": w.hex(), "error": e} for n, w, e in _bad_cases()],
        "signals": _signal_cases(),
    }


def _c_bytes(name: str, hexstr: str) -> str:
    data = bytes.fromhex(hexstr)
    if not data:
        return f"static const uint8_t {name}[1] = {{0}};\n"
    items = [f"0x{b:02x}" for b in data]
    lines = [",".join(items[i : i + 16]) for i in range(0, len(items), 16)]
    return f"static const uint8_t {name}[] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def to_c(v: dict) -> str:
    out = [
        "/* Generated by tools/gen_fw_vectors.py from the Python encoder; do not edit. */",
        "#ifndef PROTOCOL_VECTORS_H",
        "#define PROTOCOL_VECTORS_H",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        '#include "se_proto.h"',
        '#include "se_signal.h"',
        "",
        "typedef struct { const uint8_t *data; size_t len; uint32_t crc; } crc_vector;",
        "typedef struct { const char *name; const uint8_t *raw; size_t raw_len;",
        "                 const uint8_t *enc; size_t enc_len; } cobs_vector;",
        "typedef struct { const char *name; uint8_t type; const uint8_t *payload;",
        "                 size_t payload_len; const uint8_t *wire; size_t wire_len;",
        "                 se_header header; se_data data; const int32_t *samples;",
        "                 se_command command; se_ack ack; } packet_vector;",
        "typedef struct { const char *name; const uint8_t *wire; size_t wire_len;",
        "                 int error; } bad_vector;",
        "typedef struct { uint8_t kind; uint8_t format; uint32_t period; int32_t amplitude;",
        "                 uint32_t start; uint8_t channels; size_t n; const int32_t *values; }"
        " signal_vector;",
        "",
    ]
    for i, c in enumerate(v["crc32"]):
        out.append(_c_bytes(f"crc_{i}", c["data"]))
    out.append("static const crc_vector CRC_VECTORS[] = {")
    for i, c in enumerate(v["crc32"]):
        out.append(f"    {{crc_{i}, {len(c['data']) // 2}u, 0x{c['crc']:08x}u}},")
    out.append("};\n")
    for c in v["cobs"]:
        out.append(_c_bytes(f"cobs_{c['name']}_raw", c["raw"]))
        out.append(_c_bytes(f"cobs_{c['name']}_enc", c["encoded"]))
    out.append("static const cobs_vector COBS_VECTORS[] = {")
    for c in v["cobs"]:
        n = c["name"]
        out.append(
            f'    {{"{n}", cobs_{n}_raw, {len(c["raw"]) // 2}u, cobs_{n}_enc, '
            f"{len(c['encoded']) // 2}u}},"
        )
    out.append("};\n")
    types = {
        "Header": "SE_PKT_HEADER",
        "DataFrame": "SE_PKT_DATA",
        "Command": "SE_PKT_COMMAND",
        "Ack": "SE_PKT_ACK",
    }
    for p in v["packets"]:
        out.append(_c_bytes(f"pkt_{p['name']}_payload", p["payload"]))
        out.append(_c_bytes(f"pkt_{p['name']}_wire", p["wire"]))
        if p["type"] == "DataFrame":
            flat = [x for row in p["fields"]["samples"] for x in row] or [0]
            body = ",".join(f"{x}" if x != -(2**31) else "INT32_MIN" for x in flat)
            out.append(f"static const int32_t pkt_{p['name']}_samples[] = {{{body}}};\n")
    out.append("static const packet_vector PACKET_VECTORS[] = {")
    for p in v["packets"]:
        n, f = p["name"], p["fields"]
        hdr = data = cmd = ack = "{0}"
        samples = "NULL"
        if p["type"] == "Header":
            name = f["name"]
            hdr = (
                f"{{{f['version']}u, {f['stream']}u, {f['format']}u, {f['channels']}u, "
                f"{f['samples_per_frame']}u, 0x{f['device_id']:08x}u, {f['rate_hz']}u, "
                f'{f["offset"]}, {f["gain_milli"]}u, {len(name)}u, "{name}"}}'
            )
        elif p["type"] == "DataFrame":
            data = (
                f"{{{f['stream']}u, {f['flags']}u, {f['format']}u, {f['channels']}u, "
                f"{f['n']}u, 0x{f['seq']:08x}u, 0x{f['sample_index']:08x}u, "
                f"0x{f['t_us']:016x}ull, pkt_{n}_payload + SE_DATA_FIXED_LEN}}"
            )
            samples = f"pkt_{n}_samples"
        elif p["type"] == "Command":
            cmd = f"{{{f['token']}u, {f['opcode']}u, {f['arg']}u}}"
        else:
            ack = f"{{{f['token']}u, {f['opcode']}u, {f['status']}u, {f['value']}u}}"
        out.append(
            f'    {{"{n}", {types[p["type"]]}, pkt_{n}_payload, {len(p["payload"]) // 2}u,'
            f" pkt_{n}_wire, {len(p['wire']) // 2}u,\n     {hdr},\n     {data},\n"
            f"     {samples}, {cmd}, {ack}}},"
        )
    out.append("};\n")
    errors = {"cobs": "SE_ERR_COBS", "crc": "SE_ERR_CRC", "malformed": "SE_ERR_MALFORMED"}
    for b in v["bad"]:
        out.append(_c_bytes(f"bad_{b['name']}", b["wire"]))
    out.append("static const bad_vector BAD_VECTORS[] = {")
    for b in v["bad"]:
        out.append(
            f'    {{"{b["name"]}", bad_{b["name"]}, {len(b["wire"]) // 2}u, {errors[b["error"]]}}},'
        )
    out.append("};\n")
    kinds = {"ramp": "SE_SIG_RAMP", "sine": "SE_SIG_SINE", "ecg": "SE_SIG_ECG"}
    for i, s in enumerate(v["signals"]):
        flat = ",".join(str(x) for row in s["values"] for x in row)
        out.append(f"static const int32_t sig_{i}_values[] = {{{flat}}};")
    out.append("\nstatic const signal_vector SIGNAL_VECTORS[] = {")
    for i, s in enumerate(v["signals"]):
        out.append(
            f"    {{{kinds[s['kind']]}, {s['format']}u, {s['period']}u, {s['amplitude']},"
            f" {s['start']}u, {s['channels']}u, {len(s['values'])}u, sig_{i}_values}},"
        )
    out.append("};\n")
    out += [
        "#define N_VECTORS(a) (sizeof(a) / sizeof((a)[0]))",
        "",
        "#endif /* PROTOCOL_VECTORS_H */",
        "",
    ]
    return "\n".join(out)


def render() -> dict[str, str]:
    v = build()
    return {"protocol_vectors.json": json.dumps(v, indent=1) + "\n", "protocol_vectors.h": to_c(v)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python -m spikeedge.tools.gen_fw_vectors): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
