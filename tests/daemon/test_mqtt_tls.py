"""MQTT over TLS with credentials, against a real Mosquitto broker started by the test.

A throwaway CA and server certificates are made with the openssl command line; the broker has
two TLS listeners (one certificate names 127.0.0.1, the other names another host) and a
password file (mosquitto_passwd). The daemon's MQTT sink must publish over TLS with the user
name and a password taken from the environment, refuse a broker whose certificate another CA
signed (a clear error naming ca_file), refuse a certificate for another host unless
``tls_insecure`` is set, report a wrong password as refused, and never log the password.
"""
from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spikeedge.config import ConfigError, validate
from spikeedge.sinks import SinkError, make_sink

mqtt = pytest.importorskip("paho.mqtt.client")

PASSWORD = "Tls-s3cret-%42"
USER = "spikeedge-board"


def _tool(name: str, *extra: str) -> str:
    path = shutil.which(name) or next((p for p in extra if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install mosquitto openssl; "
                    "mosquitto_passwd comes with the mosquitto package)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run([_tool("openssl"), *args], cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN=spikeedge test {name}", cwd=d)


def _server_cert(d: Path, name: str, ca: str, san: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
             f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A Mosquitto broker with TLS listeners and a password file; yields its settings."""
    mosquitto = _tool("mosquitto", "/usr/sbin/mosquitto")
    passwd = _tool("mosquitto_passwd")
    _tool("openssl")
    d = tmp_path_factory.mktemp("tls")
    _ca(d, "ca")
    _ca(d, "otherca")
    _server_cert(d, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    _server_cert(d, "elsewhere", "ca", "DNS:broker.elsewhere.example")
    for f in d.iterdir():
        f.chmod(0o644)      # the broker may drop to its own user
    d.chmod(0o755)
    r = subprocess.run([passwd, "-b", "-c", str(d / "passwd"), USER, PASSWORD],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    (d / "passwd").chmod(0o644)
    good, other = _free_port(), _free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\n"
        f"password_file {d / 'passwd'}\n"
        f"listener {good} 127.0.0.1\ncafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\n"
        f"keyfile {d / 'server.key'}\n"
        f"listener {other} 127.0.0.1\ncafile {d / 'ca.crt'}\ncertfile {d / 'elsewhere.crt'}\n"
        f"keyfile {d / 'elsewhere.key'}\n")
    log = open(d / "mosquitto.log", "w")
    proc = subprocess.Popen([mosquitto, "-c", str(conf), "-v"], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", good), timeout=0.5).close()
                socket.create_connection(("127.0.0.1", other), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mosquitto did not start: "
                                + (d / "mosquitto.log").read_text()[-2000:])
                time.sleep(0.1)
        yield {"dir": d, "port": good, "other_port": other, "ca": str(d / "ca.crt"),
               "otherca": str(d / "otherca.crt"), "log": d / "mosquitto.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Subscriber:
    """A TLS client with the same credentials that collects what arrives under ``topic``."""

    def __init__(self, broker, topic: str):
        self.got: list[tuple[str, str]] = []
        ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{os.getpid()}")
        c.tls_set(ca_certs=broker["ca"])
        c.username_pw_set(USER, PASSWORD)
        c.on_connect = lambda cl, u, f, rc, p: (cl.subscribe(f"{topic}/#", qos=1),
                                                ready.set())
        c.on_message = lambda cl, u, m: self.got.append((m.topic, m.payload.decode()))
        c.connect("127.0.0.1", broker["port"])
        c.loop_start()
        assert ready.wait(10), "the test subscriber could not connect over TLS"
        time.sleep(0.3)
        self.client = c

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def _wait(pred, timeout=15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _sink_cfg(broker, **kw) -> dict:
    table = {"type": "mqtt", "host": "127.0.0.1", "port": broker["port"], "tls": True,
             "ca_file": broker["ca"], "username": USER, "password_env": "SPIKEEDGE_TEST_TLS_PW",
             "topic": "tls-test/{device}", "keepalive_s": 5, **kw}
    return validate({"sinks": [table]}, "tls.toml")["sinks"][0]


def test_daemon_publishes_over_tls_with_the_password_from_the_environment(broker, tmp_path):
    sub = Subscriber(broker, "tls-test/board7")
    try:
        conf = tmp_path / "c.toml"
        conf.write_text(
            # paced in real time: 4 s of signal spans several 1 s health intervals however
            # fast the machine runs the pipeline (unpaced it can finish within one)
            '[source]\nurl = "fake:ecg?seed=1&duration=4"\nrealtime = true\n'
            '[model]\npath = "builtin:ecg-demo"\n'
            '[health]\ninterval_s = 1.0\n[daemon]\ndevice_id = "board7"\n[log]\n'
            'level = "DEBUG"\n[[sinks]]\ntype = "mqtt"\nhost = "127.0.0.1"\n'
            f'port = {broker["port"]}\ntopic = "tls-test/{{device}}"\ntls = true\n'
            f'ca_file = "{broker["ca"]}"\nusername = "{USER}"\n'
            'password_env = "SPIKEEDGE_TEST_TLS_PW"\n')
        env = {**os.environ, "SPIKEEDGE_TEST_TLS_PW": PASSWORD}
        r = subprocess.run([sys.executable, "-m", "spikeedge.cli", "run", "--config",
                            str(conf)], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert _wait(lambda: ("tls-test/board7/status", "offline") in sub.got), sub.got[-5:]
        topics = {t for t, _ in sub.got}
        assert {"tls-test/board7/health", "tls-test/board7/status"} <= topics, topics
        health = [json.loads(p) for t, p in sub.got if t == "tls-test/board7/health"]
        assert health and health[-1]["device"] == "board7"
        # the daemon logged at DEBUG level: the password is in none of it
        assert "mqtt sink connected" in r.stderr
        assert PASSWORD not in r.stdout + r.stderr
        assert PASSWORD not in json.dumps(sub.got)
    finally:
        sub.close()
    # the broker saw a TLS client authenticated as USER
    assert f"u'{USER}'" in broker["log"].read_text()


def test_a_broker_certificate_from_another_ca_is_refused_clearly(broker, monkeypatch, caplog):
    monkeypatch.setenv("SPIKEEDGE_TEST_TLS_PW", PASSWORD)
    caplog.set_level(logging.DEBUG, logger="spikeedge")
    sink = make_sink(_sink_cfg(broker, ca_file=broker["otherca"]), "b1")
    try:
        assert _wait(lambda: sink.errors > 0), sink.status()
        st = sink.status()
        assert not st["connected"] and st["connects"] == 0
        msg = st["last_error"]
        assert "TLS" in msg and "otherca.crt" in msg and "does not verify" in msg, msg
        assert "certificate verify failed" in msg or "self" in msg or "issuer" in msg, msg
        assert msg in caplog.text        # logged as a warning too
    finally:
        sink.client.loop_stop()
        sink.client.disconnect()
    assert PASSWORD not in caplog.text + json.dumps(st)


def test_a_certificate_for_another_host_needs_tls_insecure(broker, monkeypatch):
    monkeypatch.setenv("SPIKEEDGE_TEST_TLS_PW", PASSWORD)
    assert _sink_cfg(broker)["tls_insecure"] is False      # the default checks the name
    sink = make_sink(_sink_cfg(broker, port=broker["other_port"]), "b2")
    try:
        assert _wait(lambda: sink.errors > 0), sink.status()
        assert sink.connects == 0, sink.status()
        assert "certificate is not for 127.0.0.1" in sink.last_error, sink.last_error
        assert "tls_insecure" in sink.last_error
    finally:
        sink.client.loop_stop()
        sink.client.disconnect()
    sink = make_sink(_sink_cfg(broker, port=broker["other_port"], tls_insecure=True), "b3")
    try:    # only the host name check is skipped
        assert _wait(lambda: sink.connected), sink.status()
    finally:
        sink.close()
    # ... the chain is still verified: another CA is refused even with tls_insecure
    sink = make_sink(_sink_cfg(broker, port=broker["other_port"], tls_insecure=True,
                               ca_file=broker["otherca"]), "b3")
    try:
        assert _wait(lambda: sink.errors > 0), sink.status()
        assert sink.connects == 0 and "does not verify" in sink.last_error, sink.last_error
    finally:
        sink.client.loop_stop()
        sink.client.disconnect()


def test_a_wrong_password_is_refused_and_not_echoed(broker, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="spikeedge")
    wrong = "not-the-Pa55word"
    monkeypatch.setenv("SPIKEEDGE_TEST_TLS_PW", wrong)
    sink = make_sink(_sink_cfg(broker), "b4")
    try:
        assert _wait(lambda: sink.errors > 0), sink.status()
        assert not sink.connected
        assert "refused" in sink.last_error and "authori" in sink.last_error.lower(), \
            sink.last_error
    finally:
        sink.client.loop_stop()
        sink.client.disconnect()
    assert wrong not in caplog.text + json.dumps(sink.status())


def test_tls_settings_are_checked(broker, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEEDGE_TEST_TLS_PW", PASSWORD)
    # a TLS setting without tls = true would silently send the password in clear
    with pytest.raises(ConfigError, match="tls = true"):
        validate({"sinks": [{"type": "mqtt", "ca_file": broker["ca"]}]}, "c.toml")
    with pytest.raises(ConfigError, match="key_file needs cert_file"):
        validate({"sinks": [{"type": "mqtt", "tls": True, "key_file": "k.pem"}]}, "c.toml")
    with pytest.raises(SinkError, match="ca_file = .*missing.crt.* not a readable file"):
        make_sink(_sink_cfg(broker, ca_file=str(tmp_path / "missing.crt")), "b5")
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate\n")
    with pytest.raises(SinkError, match="TLS setup failed.*bad.crt"):
        make_sink(_sink_cfg(broker, ca_file=str(bad)), "b6")
