"""Where the daemon's records go: stdout, a file with rotation, TCP and Unix sockets, MQTT.

Every sink takes one record at a time as a JSON line (``emit(line, record)``), never blocks the
pipeline for long, and counts what it sent, dropped and failed (``status()``). A sink that
cannot keep up drops, by a stated policy, and counts:

* ``stdout``, ``file``: written and flushed synchronously (a file is cheap; a closed stdout
  pipe disables the sink and is counted);
* ``tcp``, ``unix``: a listener thread accepts several clients; each client has a bounded
  send buffer, and a client that reads too slowly loses its oldest lines (counted);
* ``mqtt``: paho-mqtt's network thread publishes at QoS 1 and reconnects with backoff; while
  the broker is away up to ``queue_max`` messages wait, newer ones are dropped and counted.

Nothing listens beyond the machine unless configured: TCP binds 127.0.0.1 by default.
"""
from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import stat
import sys
import threading
import time
from collections import deque

from .errors import SpikeEdgeError

__all__ = ["SinkError", "Sink", "StdoutSink", "FileSink", "SocketSink", "MqttSink", "SinkSet",
           "make_sink", "to_json_line"]

log = logging.getLogger("spikeedge.daemon")


class SinkError(SpikeEdgeError):
    """A sink cannot be set up (address in use, unreadable certificate, missing paho-mqtt)."""


def _default(o):
    import numpy as np
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json_line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), default=_default) + "\n"


class Sink:
    """Base: counters, the record filter, and the interface."""

    kind = "sink"

    def __init__(self, config: dict):
        self.config = dict(config)
        self.records = config.get("records", "all")
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return self.kind

    def accepts(self, rtype: str) -> bool:
        if self.records == "all":
            return True
        return (self.records == "decisions") == (rtype == "decision")

    def emit(self, line: str, record: dict) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def queue_depth(self) -> int:
        return 0

    def _error(self, exc) -> None:
        self.errors += 1
        self.last_error = str(exc)
        if self.errors <= 5:
            log.warning("sink %s: %s", self.name, exc)

    def status(self) -> dict:
        return {"sent": self.sent, "dropped": self.dropped, "errors": self.errors,
                "queue": self.queue_depth(), "last_error": self.last_error}


class StdoutSink(Sink):
    kind = "stdout"

    def __init__(self, config: dict, stream=None):
        super().__init__(config)
        self.stream = stream
        self.broken = False

    def emit(self, line, record):
        if self.broken:
            self.dropped += 1
            return
        stream = self.stream or sys.stdout
        try:
            stream.write(line)
            stream.flush()
            self.sent += 1
        except BrokenPipeError as exc:
            self.broken = True
            self.dropped += 1
            self._error(f"stdout closed ({exc}); further records dropped")
        except (OSError, ValueError) as exc:
            self.dropped += 1
            self._error(exc)

    def flush(self):
        try:
            (self.stream or sys.stdout).flush()
        except (OSError, ValueError):
            pass


class FileSink(Sink):
    """Append JSON lines to ``path``; at ``max_bytes`` rotate PATH -> PATH.1 -> ... PATH.N."""

    kind = "file"

    def __init__(self, config: dict):
        super().__init__(config)
        self.path = config["path"]
        self.max_bytes = int(config.get("max_bytes", 0))
        self.backups = int(config.get("backups", 3))
        self.fsync = bool(config.get("fsync", False))
        self.rotations = 0
        d = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(d):
            raise SinkError(f"file sink {self.path}: directory {d} does not exist")
        self._f = self._open()

    @property
    def name(self):
        return f"file:{self.path}"

    def _open(self):
        try:
            return open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"file sink {self.path}: cannot open it ({exc.strerror})") from None

    def _rotate(self):
        self._f.close()
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                src = f"{self.path}.{i}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        else:
            os.truncate(self.path, 0)
        self.rotations += 1
        self._f = self._open()

    def emit(self, line, record):
        try:
            if self.max_bytes and self._f.tell() + len(line) > self.max_bytes and \
                    self._f.tell() > 0:
                self._rotate()
            self._f.write(line)
            self._f.flush()
            if self.fsync:
                os.fsync(self._f.fileno())
            self.sent += 1
        except (OSError, ValueError) as exc:
            self.dropped += 1
            self._error(exc)
            try:
                self._f.close()
                self._f = self._open()
            except (OSError, SinkError):
                pass

    def flush(self):
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        except (OSError, ValueError):
            pass

    def close(self):
        self.flush()
        try:
            self._f.close()
        except OSError:
            pass

    def status(self):
        return {**super().status(), "rotations": self.rotations}


class _Client:
    __slots__ = ("sock", "buf", "nbytes", "peer")

    def __init__(self, sock, peer):
        self.sock, self.peer = sock, peer
        self.buf: deque[bytes] = deque()
        self.nbytes = 0


class SocketSink(Sink):
    """JSON lines to every client of a TCP or Unix listening socket (several at once).

    A listener thread accepts clients and writes their buffers; ``emit`` only appends to each
    client's bounded buffer (oldest lines dropped beyond ``client_buffer_bytes``) and wakes it.
    """

    def __init__(self, config: dict):
        super().__init__(config)
        self.kind = config["type"]
        self.max_clients = int(config.get("max_clients", 16))
        self.buf_limit = int(config.get("client_buffer_bytes", 1_000_000))
        self.clients: dict[int, _Client] = {}
        self.accepted = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = False
        self.path = None
        if self.kind == "unix":
            self.path = config["path"]
            if os.path.exists(self.path):
                if not stat.S_ISSOCK(os.stat(self.path).st_mode):
                    raise SinkError(f"unix sink {self.path}: exists and is not a socket")
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(self.path)
                    probe.close()
                    raise SinkError(f"unix sink {self.path}: another process is listening "
                                    "there")
                except OSError:
                    os.unlink(self.path)  # stale socket of a previous run
                finally:
                    probe.close()
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                lsock.bind(self.path)
                os.chmod(self.path, int(config.get("mode", 0o660)))
            except OSError as exc:
                lsock.close()
                raise SinkError(f"unix sink {self.path}: cannot listen ({exc.strerror})") \
                    from None
            self.address = self.path
        else:
            host, port = config.get("host", "127.0.0.1"), int(config.get("port", 0))
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                           flags=socket.AI_PASSIVE)
            except socket.gaierror as exc:
                raise SinkError(f"tcp sink {host}:{port}: cannot resolve {host!r} ({exc})") \
                    from None
            family, _, _, _, addr = infos[0]
            lsock = socket.socket(family, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                lsock.bind(addr)
            except OSError as exc:
                lsock.close()
                raise SinkError(f"tcp sink {host}:{port}: cannot listen ({exc.strerror})") \
                    from None
            self.address = lsock.getsockname()[:2]
            self.port = self.address[1]
        lsock.listen(8)
        lsock.setblocking(False)
        self._lsock = lsock
        self._sel.register(lsock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name=f"sink-{self.kind}",
                                        daemon=True)
        self._thread.start()
        log.info("%s sink listening on %s", self.kind, self.address)

    @property
    def name(self):
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"tcp:{self.address[0]}:{self.address[1]}"

    def emit(self, line, record):
        data = line.encode()
        with self._lock:
            if not self.clients:
                self.sent += 1  # nobody listening is not a loss
                return
            for c in self.clients.values():
                c.buf.append(data)
                c.nbytes += len(data)
                while c.nbytes > self.buf_limit and len(c.buf) > 1:
                    c.nbytes -= len(c.buf.popleft())
                    self.dropped += 1
            self.sent += 1
        self._wake()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def queue_depth(self):
        with self._lock:
            return sum(len(c.buf) for c in self.clients.values())

    def _update_interest(self):
        for fd, c in self.clients.items():
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.buf else 0)
            try:
                self._sel.modify(c.sock, ev, fd)
            except (KeyError, ValueError, OSError):
                pass

    def _drop_client(self, fd):
        c = self.clients.pop(fd, None)
        if c is not None:
            try:
                self._sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()

    def _loop(self):
        while not self._stop:
            with self._lock:
                self._update_interest()
            for key, ev in self._sel.select(timeout=0.5):
                if key.data == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                elif key.data == "listen":
                    try:
                        sock, peer = self._lsock.accept()
                    except OSError:
                        continue
                    with self._lock:
                        if len(self.clients) >= self.max_clients:
                            self.refused += 1
                            sock.close()
                            continue
                        sock.setblocking(False)
                        fd = sock.fileno()
                        self.clients[fd] = _Client(sock, peer)
                        self._sel.register(sock, selectors.EVENT_READ, fd)
                        self.accepted += 1
                else:
                    fd = key.data
                    with self._lock:
                        c = self.clients.get(fd)
                        if c is None:
                            continue
                        if ev & selectors.EVENT_READ:
                            try:
                                if not c.sock.recv(4096):
                                    self._drop_client(fd)
                                    continue
                            except BlockingIOError:
                                pass
                            except OSError:
                                self._drop_client(fd)
                                continue
                        if ev & selectors.EVENT_WRITE:
                            self._send(fd, c)

    def _send(self, fd, c):
        while c.buf:
            data = c.buf[0]
            try:
                n = c.sock.send(data)
            except BlockingIOError:
                return
            except OSError:
                self._drop_client(fd)
                return
            if n < len(data):
                c.buf[0] = data[n:]
                c.nbytes -= n
                return
            c.buf.popleft()
            c.nbytes -= n

    def flush(self, timeout: float = 1.0):
        """Wait (bounded) until every client's buffer is written."""
        deadline = time.monotonic() + timeout
        while self.queue_depth() and time.monotonic() < deadline:
            self._wake()
            time.sleep(0.005)

    def close(self):
        self.flush()
        self._stop = True
        self._wake()
        self._thread.join(timeout=2.0)
        with self._lock:
            for fd in list(self.clients):
                self._drop_client(fd)
        self._lsock.close()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def status(self):
        return {**super().status(), "clients": len(self.clients), "accepted": self.accepted,
                "refused": self.refused}


class MqttSink(Sink):
    """Publish records to an MQTT broker with paho-mqtt: ``TOPIC/decision``, ``TOPIC/health``
    (and ``TOPIC/event``), QoS from the config (1 by default), automatic reconnect with backoff
    (1 s to 30 s), a retained ``TOPIC/status`` of ``online`` and a last will of ``offline``."""

    kind = "mqtt"

    def __init__(self, config: dict, device: str = "spikeedge"):
        super().__init__(config)
        try:
            import paho.mqtt.client as mqtt
        except ModuleNotFoundError:
            raise SinkError("mqtt sink: paho-mqtt is not installed (pip install 'paho-mqtt>=2')")\
                from None
        self._mqtt = mqtt
        self.host, self.port = config["host"], int(config["port"])
        self.topic = config["topic"].replace("{device}", device).rstrip("/")
        self.qos = int(config["qos"])
        self.queue_max = int(config["queue_max"])
        self.connected = False
        self._closing = False
        self.connects = 0
        self.disconnects = 0
        cid = config.get("client_id") or f"spikeedge-{device}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                        protocol=mqtt.MQTTv311)
        user = config.get("username") or None
        password = config.get("password") or None
        if config.get("password_file"):
            try:
                with open(config["password_file"], encoding="utf-8") as f:
                    password = f.read().strip()
            except OSError as exc:
                raise SinkError(f"mqtt sink: cannot read password_file "
                                f"{config['password_file']} ({exc.strerror})") from None
        if config.get("password_env"):
            password = os.environ.get(config["password_env"])
            if password is None:
                raise SinkError(f"mqtt sink: environment variable {config['password_env']} "
                                "(password_env) is not set")
        if user:
            c.username_pw_set(user, password)
        self.tls = bool(config.get("tls"))
        if self.tls:
            for key in ("ca_file", "cert_file", "key_file"):
                path = config.get(key)
                if path and not os.path.isfile(path):
                    raise SinkError(f"mqtt sink: {key} = {path!r} is not a readable file")
            try:
                c.tls_set(ca_certs=config.get("ca_file") or None,
                          certfile=config.get("cert_file") or None,
                          keyfile=config.get("key_file") or None)
                # the chain is always verified; tls_insecure only skips the host name check
                c.tls_insecure_set(bool(config.get("tls_insecure")))
            except (OSError, ValueError) as exc:
                which = ", ".join(f"{k} = {config[k]!r}" for k in ("ca_file", "cert_file",
                                                                    "key_file") if config.get(k))
                raise SinkError(f"mqtt sink: TLS setup failed ({exc}; {which or 'system CAs'})")\
                    from None
        c.will_set(f"{self.topic}/status", "offline", qos=1, retain=True)
        c.max_queued_messages_set(self.queue_max)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        self.client = c
        try:
            c.connect_async(self.host, self.port, keepalive=int(config["keepalive_s"]))
        except (OSError, ValueError) as exc:
            raise SinkError(f"mqtt sink {self.host}:{self.port}: {exc}") from None
        c.loop_start()

    @property
    def name(self):
        return f"mqtt:{self.host}:{self.port}/{self.topic}"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._error(f"broker refused the connection: {reason_code}")
            return
        self.connected = True
        self.connects += 1
        log.info("mqtt sink connected to %s:%s", self.host, self.port)
        client.publish(f"{self.topic}/status", "online", qos=1, retain=True)

    def _on_connect_fail(self, client, userdata):
        # paho calls this from inside its ``except OSError`` around the connect, so the
        # exception being handled says why (a refused port, an untrusted certificate, ...)
        exc = sys.exc_info()[1]
        self._error(self._why(exc))

    def _why(self, exc) -> str:
        import ssl
        where = f"{self.host}:{self.port}"
        if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code in (62, 64):
            # X509_V_ERR_HOSTNAME_MISMATCH / _IP_ADDRESS_MISMATCH: a good chain, another name
            return (f"TLS: the broker's certificate is not for {self.host} "
                    f"({exc.verify_message}); set host to a name in the certificate "
                    "(tls_insecure = true skips this check, for testing only)")
        if isinstance(exc, ssl.SSLCertVerificationError):
            ca = self.config.get("ca_file") or "the system CAs"
            return (f"TLS: the broker {where} presented a certificate that {ca} does not "
                    f"verify ({exc.verify_message or exc.reason}); check ca_file")
        if isinstance(exc, ssl.SSLError):
            return f"TLS handshake with {where} failed ({exc.reason or exc})"
        if exc is None:
            return f"cannot connect to {where}"
        return f"cannot connect to {where} ({exc.strerror or exc})" \
            if isinstance(exc, OSError) else f"cannot connect to {where} ({exc})"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self.connected and not self._closing:
            self.disconnects += 1
            log.warning("mqtt sink: lost the broker (%s); reconnecting", reason_code)
        self.connected = False

    def emit(self, line, record):
        topic = f"{self.topic}/{record.get('type', 'record')}"
        info = self.client.publish(topic, line.rstrip("\n"), qos=self.qos)
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
        elif info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
            self.dropped += 1
            self._error(f"publish failed: {self._mqtt.error_string(info.rc)}")
        else:
            self.sent += 1

    def queue_depth(self):
        try:
            return len(self.client._out_messages)
        except AttributeError:  # pragma: no cover - paho internals changed
            return 0

    def flush(self, timeout: float = 3.0):
        deadline = time.monotonic() + timeout
        while self.connected and self.queue_depth() and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self):
        self.flush()
        self._closing = True
        if self.connected:
            info = self.client.publish(f"{self.topic}/status", "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def status(self):
        return {**super().status(), "connected": self.connected, "connects": self.connects,
                "disconnects": self.disconnects}


def make_sink(config: dict, device: str = "spikeedge", stdout=None) -> Sink:
    t = config["type"]
    if t == "stdout":
        return StdoutSink(config, stdout)
    if t == "file":
        return FileSink(config)
    if t in ("tcp", "unix"):
        return SocketSink(config)
    if t == "mqtt":
        return MqttSink(config, device)
    raise SinkError(f"unknown sink type {t!r}")


class SinkSet:
    """The configured sinks; ``emit(record)`` serialises once and hands the line to each."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = list(sinks)

    @classmethod
    def build(cls, configs: list[dict], device: str, stdout=None,
              reuse: SinkSet | None = None) -> SinkSet:
        """Make the sinks of ``configs``; sinks of ``reuse`` with the same config are kept (a
        reload does not drop socket clients or reconnect MQTT). On failure every sink made
        here is closed again and the error raised."""
        old = {} if reuse is None else {_key(s.config): s for s in reuse.sinks}
        made, out = [], []
        try:
            for c in configs:
                s = old.pop(_key(c), None)
                if s is None:
                    s = make_sink(c, device, stdout)
                    made.append(s)
                out.append(s)
        except Exception:
            for s in made:
                s.close()
            raise
        return cls(out)

    def emit(self, record: dict) -> None:
        line = to_json_line(record)
        rtype = record.get("type", "")
        for s in self.sinks:
            if s.accepts(rtype):
                s.emit(line, record)

    def flush(self):
        for s in self.sinks:
            s.flush()

    def close(self, keep: SinkSet | None = None):
        keep_ids = set() if keep is None else {id(s) for s in keep.sinks}
        for s in self.sinks:
            if id(s) not in keep_ids:
                try:
                    s.close()
                except Exception as exc:  # a sink failing to close must not stop shutdown
                    log.warning("closing sink %s: %s", s.name, exc)

    def status(self) -> dict:
        out = {}
        for s in self.sinks:
            name = s.name
            while name in out:
                name += "'"
            out[name] = s.status()
        return out


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)
