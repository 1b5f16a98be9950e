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


#: CI sizes of the mutation fuzzer (the soak runs 100,000 each); model and WFDB cases cost
#: ~10 ms (numpy's zip reader, the wfdb library's header parser), the others well under 1 ms
CI_CASES = {"decoder": 3000, "model": 1000, "checkpoint": 2000, "config": 3000, "wav": 2000,
            "wfdb": 1000, "csv": 3000}


@pytest.mark.parametrize("target", FUZZ_TARGETS)
def test_mutation_fuzzer_finds_no_escape(tmp_path, target):
    r = fuzz(target, CI_CASES[target], tmp_path, seed=7)
    assert r["cases"] == CI_CASES[target]
    assert r["escaped"] == 0, r["escapes"]
    # the seeds are valid and the mutations reach both outcomes: refused with our error
    # (message naming the file, checked in _run_case) and accepted
    assert 0 < r["refused"] < r["cases"], r


def test_seeds_are_valid_inputs(seeds, tmp_path):
    for target, data in seeds.items():
        assert _run_case(target, data, tmp_path) is False, target


def test_model_member_that_is_not_an_array_is_refused(seeds, tmp_path):
    """Found by the structure-aware fuzzer: a member not stored as .npy came back from
    numpy as raw bytes and the loader raised AttributeError."""
    import io
    import zipfile

    from spikeedge.modelfile import ModelFormatError, load_model
    src = zipfile.ZipFile(io.BytesIO(seeds["model"]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n in src.namelist():
            if n == "prog/alpha_m.npy":     # no .npy suffix and no npy magic: raw bytes
                z.writestr("prog/alpha_m", b"not an array")
            else:
                z.writestr(n, src.read(n))
    p = tmp_path / "m.npz"
    p.write_bytes(out.getvalue())
    with pytest.raises(ModelFormatError, match=r"m\.npz.*'prog/alpha_m' is not a \.npy"):
        load_model(p)


@pytest.mark.parametrize("meta, why", [(b"[1, 2]", "not a JSON object"),
                                       (b'{"model_id": "m", "step": "x"}', "step"),
                                       (None, "state/w is not a .npy array")])
def test_planted_checkpoint_with_a_valid_checksum_is_refused(tmp_path, meta, why):
    """A well-formed, correctly hashed checkpoint whose content the restore cannot use (a
    planted file) is refused with CheckpointError and the previous file is tried."""
    import hashlib
    import io
    import zipfile

    import numpy as np

    from spikeedge.checkpoint import MAGIC, Checkpointer, CheckpointError, read_checkpoint
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        m = io.BytesIO()
        np.save(m, np.frombuffer(meta or b'{"model_id": "m"}', np.uint8))
        z.writestr("__meta__.npy", m.getvalue())
        if meta is None:
            z.writestr("state/w", b"raw bytes, not an array")
    body = out.getvalue()
    p = tmp_path / "c.ckpt"
    p.write_bytes(MAGIC + hashlib.sha256(body).digest() + body)
    with pytest.raises(CheckpointError, match=why):
        read_checkpoint(str(p))
    ck = Checkpointer(str(p), "m")
    assert ck.load() is None and ck.corrupt_found == 1
