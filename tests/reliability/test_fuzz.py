"""Bad input everywhere: property-based fuzzing of the frame decoder, the model-file and
checkpoint loaders, the config parser and the WAV/WFDB/CSV readers. Only our documented error
types may escape, each with a message; the decoder never raises at all."""
from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeedge.config import ConfigError, validate
from spikeedge.faults import FUZZ_TARGETS, _run_case, _seeds, fuzz
from spikeedge.sensors.protocol import Decoder

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seeds(tmp_path_factory.mktemp("seeds"))


@st.composite
def mutated(draw, base: bytes):
    """A valid input with random edits: bit flips, overwrites, cuts and insertions."""
    b = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        if op == 0 and b:
            i = draw(st.integers(0, len(b) - 1))
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and b:
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        elif op == 2 and b:
            del b[draw(st.integers(0, len(b) - 1)):]
        else:
            i = draw(st.integers(0, len(b)))
            b[i:i] = draw(st.binary(min_size=1, max_size=32))
    return bytes(b)


@SETTINGS
@given(data=st.data())
def test_decoder_never_raises_and_counts_every_run(seeds, data):
    stream = data.draw(st.one_of(st.binary(max_size=3000), mutated(seeds["decoder"])))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    d = Decoder()
    got = []
    prev = 0
    for c in [*cuts, len(stream)]:
        got += d.feed(stream[prev:c])
        prev = c
    got += d.feed(b"\x00")
    runs = sum(1 for r in stream.split(b"\x00") if r)
    c = d.counters()
    assert c["packets"] + c["cobs_errors"] + c["crc_errors"] + c["malformed"] + \
        c["oversize"] == runs
    assert len(got) == c["packets"]


@pytest.mark.parametrize("target", [t for t in FUZZ_TARGETS if t != "decoder"])
def test_loaders_and_readers_raise_only_our_errors(seeds, tmp_path, target):
    @SETTINGS
    @given(data=st.one_of(mutated(seeds[target]), st.binary(max_size=512)))
    def case(data):
        _run_case(target, data, tmp_path)   # raises AssertionError/other on an escape
    case()


toml_values = st.recursive(
    st.none().map(lambda _: "") | st.booleans() | st.integers(-2**40, 2**40) |
    st.floats(allow_nan=True) | st.text(string.printable, max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["url", "type", "path", "host", "port", "mode", "x", "enabled",
                         "checkpoint", "block_ms", "password", "allow_remote", "tls"]),
        inner, max_size=4),
    max_leaves=12)


@SETTINGS
@given(doc=st.dictionaries(
    st.sampled_from(["source", "model", "learning", "sinks", "health", "daemon", "log", "x"]),
    toml_values, max_size=4))
def test_config_validation_raises_only_config_error(doc):
    try:
        validate(doc, "fuzz.toml")
    except ConfigError as exc:
        assert "fuzz.toml" in str(exc)


@SETTINGS
@given(text=st.text(max_size=300))
def test_config_text_raises_only_config_error(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    from spikeedge.config import load_config
    try:
        load_config(p)
    except ConfigError as exc:
        assert str(p) in str(exc)


@pytest.mark.parametrize("target", FUZZ_TARGETS)
def test_mutation_fuzzer_finds_no_escape(tmp_path, target):
    r = fuzz(target, 300, tmp_path, seed=7)
    assert r["escaped"] == 0, r["escapes"]
