"""Security defaults: nothing listens beyond the machine unless asked, Unix sockets are 0660,
model and checkpoint files never go through pickle, config paths are checked, and MQTT
credentials come from the config or the environment and are never logged or reported."""
from __future__ import annotations

import io
import logging
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from spikeedge.checkpoint import MAGIC, CheckpointError, read_checkpoint
from spikeedge.config import SINK_SCHEMA, ConfigError, parse_sink_spec, validate
from spikeedge.daemon import load_program
from spikeedge.errors import SpikeEdgeError
from spikeedge.modelfile import load_model
from spikeedge.sinks import SinkError, make_sink


def test_tcp_defaults_to_loopback():
    assert SINK_SCHEMA["tcp"]["host"].default == "127.0.0.1"
    sink = make_sink(parse_sink_spec("tcp:0"))
    try:
        assert sink.address[0] == "127.0.0.1"
    finally:
        sink.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "board.example"])
def test_non_local_bind_needs_an_explicit_setting(host):
    with pytest.raises(ConfigError, match="allow_remote"):
        validate({"sinks": [{"type": "tcp", "host": host, "port": 0}]}, "c.toml")
    cfg = validate({"sinks": [{"type": "tcp", "host": host, "port": 0,
                               "allow_remote": True}]}, "c.toml")
    assert cfg["sinks"][0]["allow_remote"] is True
    for local in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        validate({"sinks": [{"type": "tcp", "host": local, "port": 0}]}, "c.toml")


def test_unix_socket_mode_is_0660(tmp_path):
    sink = make_sink(parse_sink_spec(f"unix:{tmp_path / 'r.sock'}"))
    try:
        mode = os.stat(tmp_path / "r.sock").st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    finally:
        sink.close()


def _object_npz(extra: dict, name: str = "evil") -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **extra, **{name: np.array([{"x": 1}], dtype=object)})
    return buf.getvalue()


def test_model_files_never_unpickle(tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(_object_npz({"__header__": np.frombuffer(b"{}", np.uint8)}))
    with pytest.raises(SpikeEdgeError):
        load_model(p)


def test_checkpoints_never_unpickle(tmp_path):
    import hashlib
    body = _object_npz({"__meta__": np.frombuffer(b'{"model_id": "m"}', np.uint8)}, "state/w")
    p = tmp_path / "c.ckpt"
    p.write_bytes(MAGIC + hashlib.sha256(body).digest() + body)
    with pytest.raises(CheckpointError, match="unreadable payload"):
        read_checkpoint(str(p))


def test_config_paths_are_validated(tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    for bad, why in ((tmp_path, "not a regular file"), (fifo, "not a regular file"),
                     (tmp_path / "missing.npz", "cannot read")):
        with pytest.raises(ConfigError, match=why):     # a FIFO would block for ever
            load_program(str(bad))
    from spikeedge.checkpoint import Checkpointer
    with pytest.raises(CheckpointError, match="does not exist"):
        Checkpointer(str(tmp_path / "no" / "such" / "dir" / "c.ckpt"), "m")
    with pytest.raises(ConfigError, match="builtin"):
        load_program("builtin:../../etc/passwd")


SECRET = "s3cr3t-Pa55"


def test_mqtt_password_is_never_logged_or_reported(tmp_path, caplog):
    pytest.importorskip("paho.mqtt.client")
    caplog.set_level(logging.DEBUG, logger="spikeedge")
    cfg = validate({"sinks": [{"type": "mqtt", "host": "127.0.0.1", "port": 1,
                               "username": "u", "password": SECRET}]}, "c.toml")
    sink = make_sink(cfg["sinks"][0], "dev")
    try:
        sink.emit('{"type":"health"}\n', {"type": "health"})
        text = repr(sink.status()) + sink.name
    finally:
        sink.client.loop_stop()
        sink.client.disconnect()
    assert SECRET not in text and SECRET not in caplog.text
    # errors about a bad value or a bad --sink never echo it either
    with pytest.raises(ConfigError) as e:
        parse_sink_spec(f"mqtt://u:{SECRET}@host:99999/t")
    assert SECRET not in str(e.value)
    with pytest.raises(ConfigError) as e:
        validate({"sinks": [{"type": "mqtt", "password": 12345}]}, "c.toml")
    assert "12345" not in str(e.value)


def test_mqtt_password_from_the_environment(monkeypatch):
    pytest.importorskip("paho.mqtt.client")
    cfg = validate({"sinks": [{"type": "mqtt", "port": 1, "username": "u",
                               "password_env": "SPIKEEDGE_TEST_MQTT_PW"}]}, "c.toml")
    monkeypatch.delenv("SPIKEEDGE_TEST_MQTT_PW", raising=False)
    with pytest.raises(SinkError, match="SPIKEEDGE_TEST_MQTT_PW"):
        make_sink(cfg["sinks"][0], "dev")
    monkeypatch.setenv("SPIKEEDGE_TEST_MQTT_PW", SECRET)
    sink = make_sink(cfg["sinks"][0], "dev")
    try:
        assert sink.client._password == SECRET.encode()
    finally:
        sink.client.loop_stop()
        sink.client.disconnect()


def test_check_output_does_not_print_the_password(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(f'[[sinks]]\ntype = "mqtt"\nport = 1\nusername = "u"\npassword = "{SECRET}"\n')
    r = subprocess.run([sys.executable, "-m", "spikeedge.cli", "run", "--config", str(p),
                        "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr
