"""Daemon configuration: a TOML file (``spikeedge run --config FILE``), every key also a flag.

The schema is one table, :data:`SCHEMA` (section -> key -> :class:`Field`), and the sink types
one more, :data:`SINK_SCHEMA`; the file reference in docs/daemon.md lists the same keys. A
flag is ``--SECTION-KEY`` (underscores become dashes: ``[source] block_ms`` is
``--source-block-ms``); flags override the file. Sinks are an array of tables ``[[sinks]]`` in
the file; ``--sink SPEC`` (repeatable) replaces them from the command line:

    stdout                                   JSON lines on standard output
    file:/var/log/spikeedge/records.jsonl?max_bytes=10000000&backups=3
    tcp:7700  or  tcp:127.0.0.1:7700         JSON lines to every connected TCP client
    unix:/run/spikeedge/records.sock         the same on a Unix socket
    mqtt://user:pass@broker:1883/spikeedge/board1?qos=1&tls=1

Every problem is a :class:`ConfigError` that names where (file and section, or flag), the key,
the value given and what is allowed.
"""
from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import SpikeEdgeError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "Field", "SCHEMA", "SINK_SCHEMA", "load_config", "default_config",
           "apply_overrides", "parse_sink_spec", "add_flags", "flag_overrides", "validate"]


class ConfigError(SpikeEdgeError, ValueError):
    """A configuration file, key or flag is malformed: says where, the key, the value and what
    is allowed."""


@dataclass(frozen=True)
class Field:
    kind: str                       # "str", "int", "float", "bool", "choice"
    default: Any
    help: str
    choices: tuple = ()
    check: Callable[[Any], str | None] | None = None   # returns a complaint or None
    required: bool = False


def _gt0(v):
    return None if v > 0 else "must be > 0"


def _ge0(v):
    return None if v >= 0 else "must be >= 0"


def _unit(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _unit_closed(v):
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _port(v):
    return None if 0 <= v <= 65535 else "must be a TCP port in 0..65535"


def _port1(v):
    return None if 1 <= v <= 65535 else "must be a TCP port in 1..65535"


def _nonempty(v):
    return None if v.strip() else "must not be empty"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

SCHEMA: dict[str, dict[str, Field]] = {
    "source": {
        "url": Field("str", "fake:ecg?duration=inf", "sensor URL (see docs/sensors.md), e.g. "
                     "serial:///dev/ttyACM0, wav:rec.wav, fake:ecg", check=_nonempty),
        "block_ms": Field("float", 10.0, "block size in milliseconds of signal", check=_gt0),
        "realtime": Field("bool", False, "pace file and fake sources at the sensor rate "
                          "(live devices are paced by the device)"),
        "queue_blocks": Field("int", 64, "blocks the reader may queue ahead of processing",
                              check=_gt0),
        "drop_policy": Field("choice", "drop-oldest", "what a full queue drops",
                             choices=("drop-oldest", "drop-newest")),
        "threaded": Field("choice", "auto", "read the source in its own thread (auto: for "
                          "live devices)", choices=("auto", "yes", "no")),
        "timeout_s": Field("float", 5.0, "seconds without samples before the source counts "
                           "as disconnected (0: never)", check=_ge0),
        "max_reconnects": Field("int", -1, "reconnect attempts before giving up (-1: for "
                                "ever)", check=lambda v: None if v >= -1 else "must be >= -1"),
        "backoff_max_s": Field("float", 10.0, "longest wait between reconnect attempts",
                               check=_gt0),
    },
    "encoder": {
        "preset": Field("str", "auto", "encoder preset (auto: the one the model names)",
                        check=_nonempty),
    },
    "model": {
        "path": Field("str", "builtin:ecg-demo", "model file (.npz) or builtin:NAME",
                      check=_nonempty),
        "backend": Field("choice", "auto", "kernel backend",
                         choices=("auto", "compiled", "reference")),
    },
    "decision": {
        "policy": Field("choice", "auto", "per beat (ECG, QRS-triggered) or per window; auto: "
                        "what the model says", choices=("auto", "beat", "window")),
        "window_ms": Field("float", 0.0, "window length for the window policy (0: the "
                           "model's, else 500)", check=_ge0),
        "smoothing": Field("float", 0.0, "window policy: weight of the past in an exponential "
                           "moving average of the scores", check=_unit),
        "min_confidence": Field("float", 0.0, "decisions below this confidence are marked "
                                "uncertain", check=_unit_closed),
        "utterance": Field("choice", "auto", "utterance models: find utterances in the stream "
                           "(live), or decide once at the end of the stream (off); auto: what "
                           "the model says", choices=("auto", "live", "off")),
        "utterance_threshold_db": Field("float", 0.0, "live utterances: dB above the noise "
                                        "floor that makes a frame voiced (0: the model's, "
                                        "else 12)", check=_ge0),
        "utterance_end_threshold_db": Field("float", 0.0, "live utterances: dB above the "
                                            "noise floor that keeps an utterance going once "
                                            "it has started (0: the model's, else 6)",
                                            check=_ge0),
        "utterance_min_dbfs": Field("float", 0.0, "live utterances: quietest voiced frame, dB "
                                    "full scale, < 0 (0: the model's, else -60)",
                                    check=lambda v: None if v <= 0 else "must be < 0 (or 0: "
                                    "the model's)"),
        "utterance_gap_ms": Field("float", 0.0, "live utterances: silence that ends an "
                                  "utterance (0: the model's, else 300)", check=_ge0),
        "utterance_max_s": Field("float", 0.0, "live utterances: longest utterance before it "
                                 "is decided (0: the model's, else 2)", check=_ge0),
    },
    "learning": {
        "enabled": Field("bool", False, "let plastic projections learn (STDP)"),
        "rate": Field("float", 1.0, "learning-rate scale of the STDP increments (0 stops "
                      "weight changes, 1 is the model's rate)", check=_ge0),
        "checkpoint": Field("str", "", "checkpoint file of the learned state (empty: none)"),
        "checkpoint_interval_s": Field("float", 60.0, "seconds between checkpoints",
                                       check=_gt0),
        "restore": Field("bool", True, "restore the learned state from the checkpoint on "
                         "start"),
    },
    "health": {
        "interval_s": Field("float", 10.0, "seconds between health records", check=_gt0),
    },
    "daemon": {
        "device_id": Field("str", "", "name of this board in records and MQTT topics "
                           "(empty: the host name)"),
        "duration_s": Field("float", 0.0, "stop after this many seconds of signal (0: run "
                            "until the source ends or a signal arrives)", check=_ge0),
    },
    "log": {
        "level": Field("choice", "INFO", "log level (logs go to stderr / the journal)",
                       choices=LOG_LEVELS),
    },
}

_COMMON_SINK = {
    "records": Field("choice", "all", "which records this sink gets",
                     choices=("all", "decisions", "health")),
}
SINK_SCHEMA: dict[str, dict[str, Field]] = {
    "stdout": {},
    "file": {
        "path": Field("str", "", "file to append JSON lines to", check=_nonempty,
                      required=True),
        "max_bytes": Field("int", 10_000_000, "rotate when the file reaches this size (0: "
                           "never)", check=_ge0),
        "backups": Field("int", 3, "rotated files kept (PATH.1 .. PATH.N)", check=_ge0),
        "fsync": Field("bool", False, "fsync after every record"),
    },
    "tcp": {
        "host": Field("str", "127.0.0.1", "address to listen on (127.0.0.1: this machine "
                      "only)", check=_nonempty),
        "port": Field("int", 7700, "TCP port (0: any free port, logged)", check=_port),
        "allow_remote": Field("bool", False, "allow a host other than the loopback, so that "
                              "other machines can connect (see docs/security.md)"),
        "max_clients": Field("int", 16, "clients at once", check=_gt0),
        "client_buffer_bytes": Field("int", 1_000_000, "per-client send buffer; a slow client "
                                     "loses its oldest records beyond it", check=_gt0),
    },
    "unix": {
        "path": Field("str", "", "socket path", check=_nonempty, required=True),
        "mode": Field("int", 0o660, "permission bits of the socket file (e.g. 0o660)",
                      check=lambda v: None if 0 <= v <= 0o777 else "must be in 0..0o777"),
        "max_clients": Field("int", 16, "clients at once", check=_gt0),
        "client_buffer_bytes": Field("int", 1_000_000, "per-client send buffer", check=_gt0),
    },
    "mqtt": {
        "host": Field("str", "127.0.0.1", "broker host", check=_nonempty),
        "port": Field("int", 1883, "broker port", check=_port1),
        "topic": Field("str", "spikeedge/{device}", "topic prefix; records go to PREFIX/"
                       "decision and PREFIX/health, availability to PREFIX/status",
                       check=_nonempty),
        "qos": Field("int", 1, "MQTT QoS", check=lambda v: None if v in (0, 1, 2) else
                     "must be 0, 1 or 2"),
        "client_id": Field("str", "", "client id (empty: spikeedge-DEVICE)"),
        "username": Field("str", "", "user name (empty: anonymous)"),
        "password": Field("str", "", "password"),
        "password_file": Field("str", "", "read the password from this file instead"),
        "password_env": Field("str", "", "read the password from this environment variable "
                              "instead"),
        "tls": Field("bool", False, "use TLS"),
        "ca_file": Field("str", "", "CA certificates for TLS (empty: the system's)"),
        "cert_file": Field("str", "", "client certificate for TLS"),
        "key_file": Field("str", "", "client key for TLS"),
        "tls_insecure": Field("bool", False, "do not check that the broker's certificate "
                              "names its host (testing only; the chain is still verified)"),
        "keepalive_s": Field("int", 60, "keepalive", check=_gt0),
        "queue_max": Field("int", 10000, "messages queued while the broker is away; beyond, "
                           "new ones are dropped and counted", check=_gt0),
    },
}


# ---------------------------------------------------------------------------- coercion
def _coerce(field: Field, value: Any, where: str, key: str, from_text: bool) -> Any:
    def bad(what):
        shown = "'***'" if key == "password" else repr(value)   # never echo a password
        raise ConfigError(f"{where}: {key} = {shown}: {what}")

    kind = field.kind
    if kind == "bool":
        if isinstance(value, bool):
            v = value
        elif from_text and str(value).strip().lower() in ("1", "true", "yes", "on"):
            v = True
        elif from_text and str(value).strip().lower() in ("0", "false", "no", "off"):
            v = False
        else:
            bad("expected true or false")
    elif kind == "int":
        if isinstance(value, bool):
            bad("expected an integer")
        if from_text:
            try:
                v = int(str(value), 0)
            except ValueError:
                bad("expected an integer")
        elif isinstance(value, int):
            v = value
        else:
            bad("expected an integer")
    elif kind == "float":
        if isinstance(value, bool):
            bad("expected a number")
        if from_text:
            try:
                v = float(value)
            except ValueError:
                bad("expected a number")
        elif isinstance(value, (int, float)):
            v = float(value)
        else:
            bad("expected a number")
        if not math.isfinite(v):
            bad("expected a finite number")
    elif kind in ("str", "choice"):
        if not isinstance(value, str):
            bad("expected a string" + (f", one of {', '.join(field.choices)}"
                                       if field.choices else ""))
        v = value
        if kind == "choice":
            if field.choices == LOG_LEVELS:
                v = v.upper()
            if v not in field.choices:
                bad(f"allowed: {', '.join(field.choices)}")
    else:  # pragma: no cover - schema bug
        raise AssertionError(kind)
    if field.check is not None:
        complaint = field.check(v)
        if complaint:
            bad(complaint)
    return v


def default_config() -> dict:
    cfg = {sec: {k: f.default for k, f in keys.items()} for sec, keys in SCHEMA.items()}
    cfg["sinks"] = [{"type": "stdout", "records": "all"}]
    return cfg


def _sink(table: Any, where: str, from_text: bool = False) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: each sink must be a table with a 'type' key")
    typ = table.get("type")
    if typ not in SINK_SCHEMA:
        raise ConfigError(f"{where}: type = {typ!r}: allowed: {', '.join(SINK_SCHEMA)}")
    fields = {**_COMMON_SINK, **SINK_SCHEMA[typ]}
    out = {"type": typ}
    for k, v in table.items():
        if k == "type":
            continue
        if k not in fields:
            raise ConfigError(f"{where} (type {typ}): unknown key {k!r}; allowed: "
                              f"{', '.join(['type', *fields])}")
        out[k] = _coerce(fields[k], v, f"{where} (type {typ})", k, from_text)
    for k, f in fields.items():
        if k not in out:
            if f.required:
                raise ConfigError(f"{where} (type {typ}): missing required key {k!r} "
                                  f"({f.help})")
            out[k] = f.default
    return out


def validate(raw: dict, where: str = "config") -> dict:
    """Check a parsed TOML document against the schema and fill in defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    cfg = default_config()
    for sec, body in raw.items():
        if sec == "sinks":
            if not isinstance(body, list):
                raise ConfigError(f"{where}: 'sinks' must be an array of tables ([[sinks]])")
            cfg["sinks"] = [_sink(t, f"{where}: [[sinks]] #{i + 1}") for i, t in
                            enumerate(body)]
            continue
        if sec not in SCHEMA:
            raise ConfigError(f"{where}: unknown section [{sec}]; allowed: "
                              f"{', '.join([*SCHEMA, 'sinks'])}")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: [{sec}] must be a table, got {body!r}")
        for k, v in body.items():
            if k not in SCHEMA[sec]:
                raise ConfigError(f"{where}: unknown key {k!r} in [{sec}]; allowed: "
                                  f"{', '.join(SCHEMA[sec])}")
            cfg[sec][k] = _coerce(SCHEMA[sec][k], v, f"{where}: [{sec}]", k, False)
    _cross_check(cfg, where)
    return cfg


def _is_loopback(host: str) -> bool:
    import ipaddress
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _cross_check(cfg: dict, where: str) -> None:
    seen = set()
    for s in cfg["sinks"]:
        if s["type"] == "tcp" and not s.get("allow_remote") and not _is_loopback(s["host"]):
            raise ConfigError(f"{where}: tcp sink host = {s['host']!r} listens beyond this "
                              "machine; set allow_remote = true in that sink to mean it, or "
                              "use 127.0.0.1 or a unix sink")
        if s["type"] == "mqtt" and not s.get("tls"):
            given = [k for k in ("ca_file", "cert_file", "key_file", "tls_insecure") if s.get(k)]
            if given:   # a TLS setting without TLS would silently send in clear
                raise ConfigError(f"{where}: mqtt sink sets {', '.join(given)} but not "
                                  "tls = true; add tls = true (or remove them)")
        if s["type"] == "mqtt" and s.get("key_file") and not s.get("cert_file"):
            raise ConfigError(f"{where}: mqtt sink key_file needs cert_file (the client "
                              "certificate)")
        key = (s["type"], s.get("path") or (s.get("host"), s.get("port")))
        if s["type"] in ("tcp", "unix", "file") and key in seen and s.get("port") != 0:
            raise ConfigError(f"{where}: two {s['type']} sinks use the same address {key[1]!r}")
        seen.add(key)


def load_config(path: str | os.PathLike | None) -> dict:
    """Read and validate a TOML file (None: the defaults)."""
    if path is None:
        return validate({}, "defaults")
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {exc.start})") from None
    return validate(raw, f"config {path}")


# ---------------------------------------------------------------------------- flags
def _flag(sec: str, key: str) -> str:
    return f"--{sec}-{key}".replace("_", "-")


def _dest(sec: str, key: str) -> str:
    return f"cfg__{sec}__{key}"


def add_flags(parser) -> None:
    """Add ``--SECTION-KEY`` for every schema key and ``--sink SPEC`` to an argparse parser."""
    for sec, keys in SCHEMA.items():
        group = parser.add_argument_group(f"[{sec}]")
        for key, f in keys.items():
            meta = "|".join(f.choices) if f.choices else f.kind.upper()
            group.add_argument(_flag(sec, key), dest=_dest(sec, key), default=None,
                               metavar=meta, help=f"{f.help} (default {f.default!r})")
    parser.add_argument("--sink", dest="cfg_sinks", action="append", default=None,
                        metavar="SPEC", help="stdout | file:PATH | tcp:[HOST:]PORT | "
                        "unix:PATH | mqtt://[USER:PASS@]HOST[:PORT]/TOPIC[?qos=1&tls=1] "
                        "(repeatable; replaces the config's sinks)")


def flag_overrides(args) -> dict:
    """The flags given on the command line, as ``{(section, key): text}`` plus sinks."""
    out = {}
    for sec, keys in SCHEMA.items():
        for key in keys:
            v = getattr(args, _dest(sec, key), None)
            if v is not None:
                out[(sec, key)] = v
    if getattr(args, "cfg_sinks", None):
        out[("sinks", None)] = list(args.cfg_sinks)
    return out


def apply_overrides(cfg: dict, overrides: dict) -> dict:
    """Apply flag values (text) over a validated config; returns a new config."""
    cfg = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in cfg.items()}
    for (sec, key), text in overrides.items():
        if sec == "sinks":
            cfg["sinks"] = [parse_sink_spec(s) for s in text]
            continue
        cfg[sec][key] = _coerce(SCHEMA[sec][key], text, f"flag {_flag(sec, key)}", key, True)
    _cross_check(cfg, "flags")
    return cfg


def parse_sink_spec(spec: str) -> dict:
    """``--sink`` text to a validated sink table."""
    shown = spec
    if isinstance(spec, str) and spec.startswith("mqtt:"):  # never echo a password
        u = urlsplit(spec)
        if u.password:
            shown = spec.replace(f":{u.password}@", ":***@", 1)
    where = f"--sink {shown!r}"
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"{where}: empty sink; use stdout, file:PATH, tcp:PORT, unix:PATH or "
                          "mqtt://HOST/TOPIC")
    if spec == "stdout":
        return _sink({"type": "stdout"}, where)
    typ, _, rest = spec.partition(":")
    if typ not in SINK_SCHEMA or not rest:
        raise ConfigError(f"{where}: unknown sink; allowed forms: stdout, file:PATH, "
                          "tcp:[HOST:]PORT, unix:PATH, mqtt://HOST[:PORT]/TOPIC")
    rest, _, query = rest.partition("?")
    try:
        opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ConfigError(f"{where}: malformed options {query!r}; use ?key=value&key=value") \
            from None
    table: dict[str, Any] = {"type": typ}
    if typ in ("file", "unix"):
        table["path"] = rest
    elif typ == "tcp":
        host, _, port = rest.rpartition(":")
        if host:
            table["host"] = host
        table["port"] = port
    elif typ == "mqtt":
        u = urlsplit("mqtt:" + rest)
        if not u.hostname:
            raise ConfigError(f"{where}: no broker host; use mqtt://HOST[:PORT]/TOPIC")
        table["host"] = u.hostname
        try:
            if u.port:
                table["port"] = str(u.port)
        except ValueError:
            raise ConfigError(f"{where}: bad port; must be a TCP port in 1..65535") from None
        if u.username:
            table["username"] = unquote(u.username)
        if u.password:
            table["password"] = unquote(u.password)
        if u.path.strip("/"):
            table["topic"] = u.path.strip("/")
    for k, v in opts.items():
        if k in table:
            raise ConfigError(f"{where}: option {k!r} given twice")
        table[k] = v
    return _sink(table, where, from_text=True)


def device_id(cfg: dict) -> str:
    return cfg["daemon"]["device_id"] or socket.gethostname() or "spikeedge"
