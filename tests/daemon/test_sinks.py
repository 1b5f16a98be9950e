"""Sinks: stdout, file rotation, TCP and Unix sockets with several clients, MQTT (real broker)."""
from __future__ import annotations

import io
import json
import os
import socket
import threading
import time

import pytest
from daemonutil import make_cfg, run_daemon

from spikeedge.sinks import FileSink, SinkError, SinkSet, SocketSink, StdoutSink, to_json_line


def _rec(i, t="decision"):
    return {"type": t, "seq": i, "class": "N"}


def test_stdout_sink_filters_records():
    buf = io.StringIO()
    s = SinkSet([StdoutSink({"type": "stdout", "records": "decisions"}, buf)])
    s.emit(_rec(0))
    s.emit(_rec(1, "health"))
    s.emit(_rec(2))
    assert [json.loads(x)["seq"] for x in buf.getvalue().splitlines()] == [0, 2]


def test_file_sink_rotates_and_keeps_backups(tmp_path):
    p = tmp_path / "r.jsonl"
    line = to_json_line(_rec(0))
    s = FileSink({"type": "file", "path": str(p), "max_bytes": 5 * len(line), "backups": 2})
    for i in range(23):
        s.emit(to_json_line(_rec(i)), _rec(i))
    s.close()
    files = sorted(os.listdir(tmp_path))
    assert files == ["r.jsonl", "r.jsonl.1", "r.jsonl.2"]
    seqs = [json.loads(x)["seq"] for f in ("r.jsonl.2", "r.jsonl.1", "r.jsonl")
            for x in (tmp_path / f).read_text().splitlines()]
    assert seqs == list(range(seqs[0], 23)) and seqs[0] > 0  # the oldest rotated away
    assert s.rotations >= 4 and s.sent == 23
    assert all(os.path.getsize(tmp_path / f) <= 5 * len(line) for f in files)
    with pytest.raises(SinkError, match="does not exist"):
        FileSink({"type": "file", "path": str(tmp_path / "no" / "x.jsonl")})


def _read_lines(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while data.count(b"\n") < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return [json.loads(x) for x in data.splitlines()]


def _wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cond()


def test_tcp_sink_serves_several_clients_on_localhost():
    s = SocketSink({"type": "tcp", "host": "127.0.0.1", "port": 0, "max_clients": 2})
    try:
        assert s.address[0] == "127.0.0.1"
        a = socket.create_connection(s.address)
        b = socket.create_connection(s.address)
        c = socket.create_connection(s.address)  # over max_clients: refused (closed)
        _wait(lambda: s.accepted == 2 and s.refused == 1)
        for i in range(50):
            s.emit(to_json_line(_rec(i)), _rec(i))
        assert [r["seq"] for r in _read_lines(a, 50)] == list(range(50))
        assert [r["seq"] for r in _read_lines(b, 50)] == list(range(50))
        c.settimeout(2)
        assert c.recv(10) == b""
        a.close()
        _wait(lambda: s.status()["clients"] == 1)
        s.emit(to_json_line(_rec(99)), _rec(99))
        assert _read_lines(b, 1)[0]["seq"] == 99
        b.close()
        c.close()
    finally:
        s.close()


def test_slow_socket_client_loses_oldest_lines_not_memory(tmp_path):
    path = str(tmp_path / "r.sock")
    s = SocketSink({"type": "unix", "path": path, "client_buffer_bytes": 2000})
    try:
        cl = socket.socket(socket.AF_UNIX)
        cl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        cl.connect(path)
        _wait(lambda: s.accepted == 1)
        big = {"type": "decision", "pad": "x" * 500}
        for _ in range(2000):  # ~1 MB, far beyond socket buffers + 2000 bytes
            s.emit(to_json_line(big), big)
        assert s.dropped > 0
        assert s.queue_depth() * 500 <= 2000 + 600
        cl.close()
    finally:
        s.close()
    assert not os.path.exists(path)


def test_unix_sink_refuses_a_live_socket_and_replaces_a_stale_one(tmp_path):
    path = str(tmp_path / "r.sock")
    s = SocketSink({"type": "unix", "path": path})
    with pytest.raises(SinkError, match="another process is listening"):
        SocketSink({"type": "unix", "path": path})
    s.close()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()                      # the file stays, nobody listens
    s2 = SocketSink({"type": "unix", "path": path})
    s2.close()


def test_daemon_streams_to_a_tcp_client(tmp_path):
    port_holder = {}
    cfg = make_cfg("fake:ecg?seed=2&duration=12", sinks=[
        {"type": "tcp", "host": "127.0.0.1", "port": 0, "max_clients": 4,
         "client_buffer_bytes": 10**6, "records": "decisions"}])
    from spikeedge.daemon import Daemon
    from spikeedge.sensors import VirtualClock
    d = Daemon(cfg, clock=VirtualClock())
    port_holder["addr"] = d.c.sinks.sinks[0].address
    cl = socket.create_connection(port_holder["addr"])
    _wait(lambda: d.c.sinks.sinks[0].accepted == 1)
    t = threading.Thread(target=d.run)
    t.start()
    t.join(60)
    lines = _read_lines(cl, 10**6, timeout=3)
    cl.close()
    assert lines and all(r["type"] == "decision" for r in lines)
    assert len(lines) == d.decisions


@pytest.mark.mqtt
def test_mqtt_sink_publishes_qos1_to_a_real_broker(mqtt_port):
    import paho.mqtt.client as mqtt
    got, ready = [], threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="spikeedge-test-sub")
    sub.on_connect = lambda c, u, f, rc, p: (c.subscribe("se-test/#", qos=1), ready.set())
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload.decode(), m.qos,
                                                 m.retain))
    sub.connect("127.0.0.1", mqtt_port)
    sub.loop_start()
    try:
        assert ready.wait(5)
        time.sleep(0.3)
        cfg = make_cfg("fake:ecg?seed=2&duration=10", sinks=[
            {"type": "mqtt", "host": "127.0.0.1", "port": mqtt_port, "topic": "se-test/{device}",
             "qos": 1, "client_id": "", "username": "", "password": "", "password_file": "",
             "tls": False, "ca_file": "", "cert_file": "", "key_file": "", "keepalive_s": 30,
             "queue_max": 1000, "records": "all"}], health={"interval_s": 2.0},
            source={"realtime": True})
        from spikeedge.sensors import VirtualClock
        d, recs = run_daemon(cfg, clock=VirtualClock())
        n_dec = sum(r["type"] == "decision" for r in recs)
        _wait(lambda: sum(t == "se-test/test/decision" for t, *_ in got) == n_dec, 10)
        dec = [json.loads(p) for t, p, q, r in got if t == "se-test/test/decision"]
        assert [r["seq"] for r in dec] == list(range(n_dec))
        assert all(q == 1 for t, p, q, r in got if t.endswith("/decision"))
        assert any(t == "se-test/test/health" for t, *_ in got)
        _wait(lambda: ("se-test/test/status", "offline") in [(t, p) for t, p, *_ in got])
        st = d.c.sinks.status()
        (name, s), = st.items()
        assert s["connects"] >= 1 and s["dropped"] == 0
    finally:
        sub.loop_stop()
        sub.disconnect()


@pytest.mark.mqtt
def test_mqtt_sink_queues_while_the_broker_is_away_and_reconnects(tmp_path):
    """A private broker is stopped and restarted: records published meanwhile arrive."""
    import shutil
    import subprocess

    from spikeedge.sinks import MqttSink
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    import paho.mqtt.client as mqtt
    with socket.socket() as s0:
        s0.bind(("127.0.0.1", 0))
        port = s0.getsockname()[1]
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")

    def start():
        p = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return p
            except OSError:
                time.sleep(0.05)
        p.kill()
        pytest.fail("mosquitto did not start")

    broker = start()
    sink = None
    try:
        sink = MqttSink({"type": "mqtt", "host": "127.0.0.1", "port": port, "topic": "rc",
                         "qos": 1, "client_id": "se-rc", "keepalive_s": 5, "queue_max": 100,
                         "records": "all"}, "dev")
        _wait(lambda: sink.connected)
        broker.terminate()
        broker.wait(5)
        _wait(lambda: not sink.connected)
        for i in range(5):
            sink.emit(to_json_line(_rec(i)), _rec(i))
        got = []
        broker = start()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="se-rc-sub")
        sub.on_message = lambda c, u, m: got.append(json.loads(m.payload)["seq"])
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("rc/decision", qos=1)
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        time.sleep(0.5)
        _wait(lambda: sink.connected, 40)      # paho's backoff is 1..30 s
        for i in range(5, 8):
            sink.emit(to_json_line(_rec(i)), _rec(i))
        _wait(lambda: 7 in got, 10)
        sub.loop_stop()
        sub.disconnect()
        assert sink.status()["disconnects"] >= 1 and sink.status()["connects"] >= 2
        assert set(range(5, 8)) <= set(got)
    finally:
        if sink is not None:
            sink.close()
        broker.terminate()
        broker.wait(5)
