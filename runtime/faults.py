"""Fault injection for the reliability tests and ``spikeedge soak``.

* :class:`FaultRelay` sits between the host firmware's pty and a pty of its own that the daemon
  opens through a stable symlink (as udev's ``/dev/serial/by-id/...``). It forwards commands
  unchanged and device packets whole, and injects faults at packet boundaries: unplug/replug
  (the daemon's pty is closed and a new one made), random garbage, bit flips, truncated and
  dropped frames, a stalled sensor, a wrong baud rate (bytes garbled) and a wrong protocol
  version (HEADER rewritten); towards the device, lost and late commands (a device that does
  not hear the host yet, as an emulated board's UART on a slow boot). It keeps exactly the
  counts the daemon must report: ``expected_errors`` (rejected runs between delimiters: the
  daemon's ``source_skipped``) and ``expected_dropped`` (DATA frames that never reached it
  intact: ``source_dropped_frames``).
  Exactness rules: corrupted bytes never become 0x00 (a run stays one run); garbage is closed
  by a delimiter; after every (re)connection the relay forwards nothing until the daemon has
  sent a command (so its port is open and its decoder sees our leading 0x00); an unplug waits
  until the daemon has read everything written so far.
* :class:`DaemonProc` runs ``spikeedge run`` in a subprocess with a file sink and reads its
  records.
* :func:`fuzz` feeds mutated inputs to every reader, loader and parser and collects anything
  that escapes other than our documented error types.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import queue
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from collections import Counter
from pathlib import Path

__all__ = ["FaultRelay", "Firmware", "DaemonProc", "firmware_binary", "fuzz", "fuzz_all",
           "FUZZ_TARGETS", "nonempty_runs"]

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- firmware
def firmware_binary(build: bool = True) -> Path | None:
    """The host firmware of a source checkout (built with ``make host`` if needed), or None
    when there is no checkout or no C toolchain."""
    fw = REPO / "firmware"
    binary = fw / "build" / "host" / "spikeedge-fw-host"
    if not (fw / "Makefile").is_file():
        return None
    if build and (shutil.which("make") and shutil.which("cc")):
        r = subprocess.run(["make", "-C", str(fw), "host"], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"make -C {fw} host failed:\n{r.stdout}\n{r.stderr}")
    return binary if binary.is_file() else None


class Firmware:
    """The host firmware on a pty of its own (``path``); ``stop()`` ends it."""

    def __init__(self, binary: Path, *args: str):
        self.proc = subprocess.Popen([str(binary), "--pty", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"PTY (\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"host firmware did not print its pty: {line!r}")
        self.path = m.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------- relay
def nonempty_runs(data: bytes) -> int:
    """Runs of non-zero bytes in ``data`` (followed by a delimiter): rejected packets."""
    return sum(1 for r in bytes(data).split(b"\x00") if r)


def _classify(run: bytes):
    from spikeedge.sensors.protocol import ProtocolError, parse_payload, unframe
    try:
        return parse_payload(unframe(run))
    except ProtocolError:
        return None


class FaultRelay:
    """A fault-injecting relay between a device tty and the daemon; see the module docstring.

    ``link``: the path the daemon opens (``serial://LINK``). Fault requests are queued and
    applied by the relay thread one at a time, in order; :meth:`wait_idle` waits until all
    have been applied and the link is forwarding again.
    """

    def __init__(self, device_path: str, link: str, seed: int = 0):
        self.device_path = device_path
        self.link = str(link)
        self.rng = random.Random(seed)
        self.injected: Counter = Counter()      # fault kind -> events
        self.expected_errors = 0
        self.expected_dropped = 0
        self.frames_in = 0
        self.frames_out = 0
        self.commands_seen = 0
        self.inexact = 0                        # unplugs that could not wait for a drain
        self.host_retries = 0                   # commands while forwarding (see _host_command)
        self.state = "wait_host"                # forward, draining, unplugged, stalled, wait_host
        self._until = 0.0
        self._cmd_during = False
        self._requests: queue.Queue = queue.Queue()
        self._busy = False
        self._drop = self._truncate = self._garbage = 0
        self._flip_rate, self._flip_until = 0.0, 0.0
        self._baud_until = self._version_until = 0.0
        self._dev_buf = bytearray()
        self._out = bytearray()
        self._cmd_lose, self._cmd_delay = 0, 0.0
        self._held: list = []                   # (due time, bytes) for the device
        self._master = self._slave = None
        self._lock = threading.Lock()
        self._stop = False
        self.error: BaseException | None = None
        self._dev = os.open(device_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._dev)
        self._make_pty()
        self._thread = threading.Thread(target=self._loop, name="fault-relay", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- requests (any thread)
    def unplug(self, down_s: float = 0.5):
        self._requests.put(("unplug", down_s))

    def stall(self, seconds: float):
        self._requests.put(("stall", seconds))

    def garbage(self, nbytes: int):
        self._requests.put(("garbage", nbytes))

    def bitflips(self, rate: float, seconds: float):
        self._requests.put(("bitflip", (rate, seconds)))

    def truncate(self, frames: int):
        self._requests.put(("truncate", frames))

    def drop(self, frames: int):
        self._requests.put(("drop", frames))

    def lose_commands(self, n: int):
        """The daemon's next ``n`` commands never reach the device."""
        with self._lock:
            self._cmd_lose += n

    def delay_commands(self, seconds: float):
        """From now on the daemon's commands reach the device ``seconds`` late."""
        with self._lock:
            self._cmd_delay = seconds

    def wrong_baud(self, seconds: float):
        self._requests.put(("baud", seconds))

    def wrong_version(self, seconds: float, down_s: float = 0.3):
        """HEADERs carry protocol version 2 for ``seconds``; starts with an unplug so that the
        daemon has to reconnect (and read a HEADER) meanwhile."""
        self._requests.put(("version", (seconds, down_s)))

    def idle(self) -> bool:
        with self._lock:
            return (self._requests.empty() and not self._busy and self.state == "forward")

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"fault relay failed: {self.error}") from self.error
            if self.idle():
                return True
            time.sleep(0.02)
        return False

    def wait_frames(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` more DATA frames were forwarded intact."""
        target = self.frames_out + n
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frames_out >= target:
                return True
            time.sleep(0.02)
        return False

    def counts(self) -> dict:
        return {"injected": dict(self.injected), "expected_errors": self.expected_errors,
                "expected_dropped_frames": self.expected_dropped, "frames_in": self.frames_in,
                "frames_out": self.frames_out, "inexact_unplugs": self.inexact,
                "host_retries": self.host_retries}

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self._close_pty()
        for fd in (self._dev,):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---------------------------------------------------------------- pty handling
    def _make_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)
        from spikeedge.sensors.protocol import Decoder
        self._host_dec = Decoder()

    def _close_pty(self) -> None:
        if os.path.lexists(self.link):
            os.unlink(self.link)
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        self._out.clear()

    def _unread(self) -> int:
        buf = bytearray(4)
        fcntl.ioctl(self._slave, termios.FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder)

    # ---------------------------------------------------------------- the relay thread
    def _loop(self) -> None:
        try:
            while not self._stop:
                fds = [self._dev] + ([self._master] if self._master is not None else [])
                r, _, _ = select.select(fds, [], [], 0.01)
                now = time.monotonic()
                if self._master is not None and self._master in r:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self._to_device(data, now)
                        from spikeedge.sensors.protocol import Command
                        if any(isinstance(p, Command) for p in self._host_dec.feed(data)):
                            self._host_command()
                if self._dev in r:
                    try:
                        self._dev_buf += os.read(self._dev, 65536)
                    except BlockingIOError:
                        pass
                    while True:
                        z = self._dev_buf.find(0)
                        if z < 0:
                            break
                        run = bytes(self._dev_buf[:z])
                        del self._dev_buf[:z + 1]
                        self._device_run(run, now)
                while self._held and self._held[0][0] <= now:
                    os.write(self._dev, self._held.pop(0)[1])
                self._tick(now)
                self._flush()
        except BaseException as exc:  # reported by wait_idle and the soak summary
            self.error = exc

    def _to_device(self, data: bytes, now: float) -> None:
        """Host bytes for the device, less the commands to lose, due after the delay."""
        with self._lock:
            while self._cmd_lose and data:
                end = data.find(0)
                data = b"" if end < 0 else data[end + 1:]
                if end >= 0:
                    self._cmd_lose -= 1
                    self.injected["commands_lost"] += 1
            if data:
                self._held.append((now + self._cmd_delay, data))

    def _flush(self) -> None:
        if self._master is None or not self._out:
            return
        try:
            n = os.write(self._master, self._out[:65536])
        except (BlockingIOError, OSError):
            return
        del self._out[:n]

    def _host_command(self) -> None:
        self.commands_seen += 1
        if self.state == "forward":
            # the daemon retried or reconnected on its own (e.g. an ACK later than its
            # header_timeout on a starved machine): bytes it flushed meanwhile are lost to
            # it without the relay knowing, so exact counts are not guaranteed after one
            self.host_retries += 1
        if self.state in ("stalled", "unplugged", "draining"):
            self._cmd_during = True
        elif self.state == "wait_host":
            self.state = "forward"
            self._out += b"\x00"     # the daemon's decoder syncs on it

    def _tick(self, now: float) -> None:
        with self._lock:
            if self.state == "draining":
                if not self._out and self._unread() == 0:
                    self._close_pty()
                    self.state, self._until = "unplugged", now + self._down
                elif now > self._until:
                    self.inexact += 1
                    self._close_pty()
                    self.state, self._until = "unplugged", now + self._down
            elif self.state == "unplugged" and now >= self._until:
                self._make_pty()
                self.state = "wait_host"
            elif self.state == "stalled" and now >= self._until:
                if self._cmd_during:
                    self.state = "wait_host"
                else:
                    self.state = "forward"
                    self._out += b"\x00"
            if self._garbage and self.state == "forward" and len(self._out) < 16384:
                n = min(self._garbage, 4096)
                chunk = self.rng.randbytes(n)
                self._out += chunk + b"\x00"
                self.expected_errors += nonempty_runs(chunk)
                self._garbage -= n
            busy = bool(self._drop or self._truncate or self._garbage or
                        now < max(self._flip_until, self._baud_until, self._version_until))
            if self.state != "forward" or busy:
                self._busy = busy or self.state != "forward"
                return
            try:
                kind, arg = self._requests.get_nowait()
            except queue.Empty:
                self._busy = False
                return
            self._busy = True
            self.injected[kind] += 1
            if kind in ("unplug", "version"):
                if kind == "version":
                    seconds, arg = arg
                    self._version_until = now + seconds
                self._down = float(arg)
                self._cmd_during = False
                self.state, self._until = "draining", now + 2.0
            elif kind == "stall":
                self._cmd_during = False
                self.state, self._until = "stalled", now + float(arg)
            elif kind == "garbage":
                self._garbage = int(arg)
                self.injected["garbage_bytes"] += int(arg)
            elif kind == "bitflip":
                self._flip_rate, seconds = arg
                self._flip_until = now + seconds
            elif kind == "truncate":
                self._truncate = int(arg)
            elif kind == "drop":
                self._drop = int(arg)
            elif kind == "baud":
                self._baud_until = now + float(arg)

    def _device_run(self, run: bytes, now: float) -> None:
        from spikeedge.sensors.protocol import DataFrame, Header, encode_header
        if not run:
            if self.state == "forward":
                self._out += b"\x00"
            return
        pkt = _classify(run)
        data = isinstance(pkt, DataFrame)
        self.frames_in += data
        if self.state != "forward":
            self.expected_dropped += data
            if data:
                self.injected[f"frames_lost_{self.state}"] += 1
            return
        if now < self._baud_until:
            garbled = self.rng.randbytes(len(run) + 1)
            self._out += garbled + b"\x00"
            self.expected_errors += nonempty_runs(garbled)
            self.expected_dropped += data
            self.injected["baud_bytes"] += len(run) + 1
            return
        if isinstance(pkt, Header) and now < self._version_until:
            from spikeedge.sensors.protocol import frame_payload
            payload = bytearray(encode_header(pkt))
            payload[1] = 2               # a protocol version this host does not speak
            self._out += frame_payload(bytes(payload))
            self.expected_errors += 1
            self.injected["bad_version_headers"] += 1
            self.state = "wait_host"   # the daemon gives up on this HEADER and retries
            return
        if data and self._drop:
            self._drop -= 1
            self.expected_dropped += 1
            self.injected["frames_dropped"] += 1
            return
        if data and self._truncate:
            self._truncate -= 1
            self._out += run[:self.rng.randrange(1, len(run))] + b"\x00"
            self.expected_errors += 1
            self.expected_dropped += 1
            self.injected["frames_truncated"] += 1
            return
        if data and now < self._flip_until:
            b = bytearray(run)
            flips = 0
            nbits = 8 * len(b)
            # bit positions with probability rate each (geometric gaps: fast for small rates)
            import math
            lam = -math.log1p(-self._flip_rate)
            pos = -1
            while True:
                pos += 1 + int(-math.log(1.0 - self.rng.random()) / lam)
                if pos >= nbits:
                    break
                i, bit = divmod(pos, 8)
                if b[i] ^ (1 << bit):     # never make a delimiter
                    b[i] ^= 1 << bit
                    flips += 1
            if flips:
                self._out += bytes(b) + b"\x00"
                self.expected_errors += 1
                self.expected_dropped += 1
                self.injected["bits_flipped"] += flips
                self.injected["frames_flipped"] += 1
                return
        self._out += run + b"\x00"
        self.frames_out += data


# ---------------------------------------------------------------------------- daemon
class DaemonProc:
    """``spikeedge run --config CONFIG`` in a subprocess; records go to ``records`` (a file
    sink in the config). ``stdout`` may be a pipe (the overload test reads it slowly)."""

    def __init__(self, config: Path, records: Path, stdout=subprocess.DEVNULL,
                 stderr: Path | None = None, extra: tuple = ()):
        self.records_path = Path(records)
        self._pos = 0
        self.records: list[dict] = []
        err = open(stderr, "ab") if stderr else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spikeedge.cli", "run", "--config", str(config), *extra],
            stdout=stdout, stderr=err, stdin=subprocess.DEVNULL)
        if stderr:
            err.close()

    def poll_records(self) -> list[dict]:
        """Records written since the last call (whole lines only)."""
        new = []
        try:
            with open(self.records_path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return new
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if line.strip():
                new.append(json.loads(line))
        self._pos += end
        self.records.extend(new)
        return new

    def wait_for(self, pred, timeout: float):
        """The first new record with ``pred(record)`` within ``timeout`` s, else None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in self.poll_records():
                if pred(r):
                    return r
            if self.proc.poll() is not None:
                for r in self.poll_records():
                    if pred(r):
                        return r
                return None
            time.sleep(0.02)
        return None

    def last(self, rtype: str) -> dict | None:
        self.poll_records()
        for r in reversed(self.records):
            if r.get("type") == rtype:
                return r
        return None

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.poll_records()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


# ---------------------------------------------------------------------------- fuzzing
def _mutate(rng: random.Random, seed_data: bytes) -> bytes:
    b = bytearray(seed_data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(6)
        if op == 0 and b:       # flip bits
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:     # overwrite a byte with an interesting value
            b[rng.randrange(len(b))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2 and b:     # truncate
            del b[rng.randrange(len(b)):]
        elif op == 3:           # insert random bytes
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randrange(1, 16))
        elif op == 4 and len(b) > 2:  # duplicate a slice
            i = rng.randrange(len(b))
            j = min(len(b), i + rng.randrange(1, 64))
            b[i:i] = b[i:j]
        else:                   # random bytes outright
            b = bytearray(rng.randbytes(rng.randrange(0, 64)))
    return bytes(b)


@functools.lru_cache(maxsize=8)
def _zip_members(data: bytes) -> tuple:
    import io
    import zipfile
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return tuple((n, z.read(n)) for n in z.namelist())


def _mutate_zip(rng: random.Random, data: bytes) -> bytes:
    """Structure-aware: mutate, drop, duplicate-rename or add one member of an ``.npz`` and
    write a valid archive again, so the loader's own checks (not the zip CRC) are exercised."""
    import io
    import warnings
    import zipfile
    members = list(_zip_members(data))
    k = rng.randrange(len(members))
    op = rng.randrange(8)
    name, body = members[k]
    if op == 0:
        del members[k]
    elif op == 1:
        members.append((rng.choice([m for m, _ in members]), body))
    elif op == 2:
        members.append((f"x{rng.randrange(99)}.npy", body))
    elif op == 3:       # same member, another name (a field the loader does not expect)
        members[k] = (rng.choice(["__header__.npy", "__meta__.npy", "a.npy", name[:-1]]), body)
    else:               # most often: the member's bytes (npy header, JSON text, array data)
        members[k] = (name, _mutate(rng, body))
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        warnings.simplefilter("ignore")     # duplicate member names are the point
        for n, b in members:
            z.writestr(n, b)
    return out.getvalue()


def _mutate_target(rng: random.Random, target: str, base: bytes) -> bytes:
    """A mutated input for ``target``: raw byte edits, or for the checksummed formats most of
    the time an edit below the checksum (re-framed, re-zipped, re-hashed) so that it gets
    past the integrity check into the parser."""
    if rng.random() < 0.4 or target not in ("decoder", "model", "checkpoint"):
        return _mutate(rng, base)
    if target == "decoder":
        from spikeedge.sensors.protocol import frame_payload, unframe
        runs = [r for r in base.split(b"\x00") if r]
        out = []
        for r in runs[: rng.randrange(1, 8)]:
            payload = unframe(r)
            out.append(frame_payload(_mutate(rng, payload) if rng.random() < 0.5 else payload))
        return b"\x00" + b"".join(out)
    if target == "model":
        return _mutate_zip(rng, base)
    import hashlib

    from spikeedge.checkpoint import MAGIC
    body = _mutate_zip(rng, base[40:]) if rng.random() < 0.8 else _mutate(rng, base[40:])
    return MAGIC + hashlib.sha256(body).digest() + body


def _seeds(workdir: Path) -> dict:
    """Valid inputs of every target, to mutate."""
    import io
    import wave

    import numpy as np

    from spikeedge import INPUT, STDP, Network, Population, Projection, quantize, save_model
    from spikeedge.sensors.fake_serial import FakeSerialDevice
    from spikeedge.sensors.protocol import Command, Opcode, encode
    dev = FakeSerialDevice(signal="ramp", frame=8, fast=True, timeout=0)
    dev.write(encode(Command(1, Opcode.START)))
    stream = b"".join(dev.read(4096) for _ in range(6))
    net = Network(n_inputs=3, dt=1e-3, populations=[Population("out", 4, tau_m=10e-3)],
                  projections=[Projection(INPUT, "out", np.full((3, 4), 0.5),
                                          stdp=STDP())])
    mpath = workdir / "seed_model.npz"
    save_model(mpath, quantize(net), metadata={"name": "fuzz"})
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.arange(-200, 200, dtype="<i2").tobytes())
    # a valid record named "rec" (what _run_case writes): 2 signals x 400 samples, format 212
    hea = b"rec 2 360 400\nrec.dat 212 200 11 1024 995 -22131 0 MLII\n" \
          b"rec.dat 212 200 11 1024 1011 20052 0 V5\n"
    dat = (np.arange(1200) * 7 % 256).astype(np.uint8).tobytes()
    csv = b"".join(b"%d,%d,%d,%d,%d,%d,%d,%d,%d\n" % (
        *((i * k) % 100 - 50 for k in range(8)), i // 10) for i in range(30))
    cfg = (b'[source]\nurl = "fake:ecg"\nblock_ms = 20\n[learning]\nenabled = true\n'
           b'checkpoint = "/tmp/x.ckpt"\n[[sinks]]\ntype = "tcp"\nport = 7700\n'
           b'[[sinks]]\ntype = "mqtt"\nhost = "h"\npassword = "p"\n')
    return {"decoder": stream, "model": mpath.read_bytes(), "config": cfg,
            "wav": wav.getvalue(), "wfdb": hea + b"\x00" + dat, "csv": csv,
            "checkpoint": _ckpt_seed(workdir)}


def _ckpt_seed(workdir: Path) -> bytes:
    import numpy as np

    from spikeedge.checkpoint import write_checkpoint
    p = workdir / "seed.ckpt"
    write_checkpoint(str(p), {"w": np.arange(10, dtype=np.int16)}, {"model_id": "m", "step": 3})
    return p.read_bytes()


class _FuzzState:
    """The part of an engine state that a checkpoint restore touches (the seed's shape)."""

    def __init__(self):
        import numpy as np
        self.step = 0
        self._w = np.zeros(10, np.int16)

    def arrays(self):
        return {"w": self._w}


def _run_case(target: str, data: bytes, workdir: Path) -> bool:
    """Feed one input to one target: True when it was refused with one of our errors, False
    when it was accepted; raises only what escapes the target."""
    from spikeedge.errors import SpikeEdgeError
    from spikeedge.sensors.errors import SensorError
    if target == "decoder":
        from spikeedge.sensors.protocol import Decoder
        d = Decoder()
        cut = len(data) // 3
        got = d.feed(data[:cut]) + d.feed(data[cut:]) + d.feed(b"\x00")
        # every run between delimiters lands in exactly one counter (the documented contract)
        c = d.counters()
        runs = nonempty_runs(data)
        seen = (c["packets"] + c["cobs_errors"] + c["crc_errors"] + c["malformed"] +
                c["oversize"])
        if seen != runs or len(got) != c["packets"]:
            raise AssertionError(f"decoder counted {seen} runs of {runs} ({c}), returned "
                                 f"{len(got)} packets")
        return seen != c["packets"]      # "refused": at least one run was rejected
    try:
        if target == "model":
            p = workdir / "case.npz"
            p.write_bytes(data)
            from spikeedge.modelfile import load_model
            load_model(p)
        elif target == "checkpoint":
            p = workdir / "case.ckpt"
            p.write_bytes(data)
            from spikeedge.checkpoint import Checkpointer
            # the daemon's path: find the newest intact file and copy it into a state
            ck = Checkpointer(str(p), "m")
            if ck.restore_into(_FuzzState()) is None:
                if ck.corrupt_found:    # refused: logged with the file and the reason
                    return True
        elif target == "config":
            p = workdir / "case.toml"
            p.write_bytes(data)
            from spikeedge.config import load_config
            load_config(p)
        elif target in ("wav", "csv", "wfdb"):
            from spikeedge.sensors import open_source
            if target == "wfdb":
                hea, _, dat = data.partition(b"\x00")
                (workdir / "rec.hea").write_bytes(hea)
                (workdir / "rec.dat").write_bytes(dat)
                url = f"wfdb:{workdir / 'rec'}"
            elif target == "wav":
                (workdir / "case.wav").write_bytes(data)
                url = f"wav:{workdir / 'case.wav'}"
            else:
                (workdir / "case.csv").write_bytes(data)
                # strict: a bad line raises; else it is skipped and counted (both paths)
                url = f"myo:{workdir / 'case.csv'}?strict={len(data) % 2}"
            src = open_source(url, max_reconnects=0)
            try:
                for i, _ in enumerate(src):
                    if i > 200:
                        break
            finally:
                src.close()
        else:
            raise ValueError(f"unknown fuzz target {target!r}")
    except (SpikeEdgeError, SensorError) as exc:
        msg = str(exc)
        if len(msg) < 20 or str(workdir) not in msg:     # what, and where (the file)
            raise AssertionError(f"{type(exc).__name__} without the file or a reason: "
                                 f"{msg!r}") from None
        return True
    return False


FUZZ_TARGETS = ("decoder", "model", "checkpoint", "config", "wav", "wfdb", "csv")


def _fast_dir(workdir: Path) -> Path:
    """A private folder on tmpfs (``/dev/shm``) when there is one, else under ``workdir``:
    the file-based readers then cost no disk I/O per case."""
    import tempfile
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="spikeedge-fuzz-", dir=shm))
    d = Path(workdir) / "cases"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def fuzz_all(targets, cases, workdir: Path, seed: int = 0,
             deadline: float | None = None, batch: int = 500, progress=None) -> dict:
    """Mutation-fuzz every target in ``targets`` round-robin, ``batch`` cases at a time, until
    each has had ``cases`` (a number, or a dict per target) or monotonic ``deadline``. Per
    target: ``{"cases", "escaped", "refused", "escapes" (the first few, with the input),
    "seconds", "rate"}``; plus this process's resident memory at the start and the end (a
    loader that leaks shows here)."""
    import logging
    logging.getLogger("spikeedge").setLevel(logging.CRITICAL)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    fast = _fast_dir(workdir)
    seeds = _seeds(fast)
    rss0 = _rss()
    res = {t: {"cases": 0, "escaped": 0, "refused": 0, "escapes": [], "seconds": 0.0}
           for t in targets}
    rngs = {t: random.Random(f"{seed}:{t}") for t in targets}
    goal = cases if isinstance(cases, dict) else dict.fromkeys(targets, cases)
    try:
        while True:
            todo = [t for t in targets if res[t]["cases"] < goal[t]]
            if not todo or (deadline is not None and time.monotonic() > deadline):
                break
            for t in todo:
                r, rng, base = res[t], rngs[t], seeds[t]
                t0 = time.monotonic()
                for _ in range(min(batch, goal[t] - r["cases"])):
                    data = _mutate_target(rng, t, base)
                    r["cases"] += 1
                    try:
                        r["refused"] += _run_case(t, data, fast)
                    except Exception as exc:  # noqa: BLE001 - anything else is what we look for
                        r["escaped"] += 1
                        if len(r["escapes"]) < 5:
                            r["escapes"].append(f"{type(exc).__name__}: {exc} "
                                                f"(input {data[:120]!r})")
                r["seconds"] += time.monotonic() - t0
                if deadline is not None and time.monotonic() > deadline:
                    break
            if progress:
                progress({t: res[t]["cases"] for t in targets})
    finally:
        if str(fast).startswith("/dev/shm/"):
            shutil.rmtree(fast, ignore_errors=True)
    for r in res.values():
        r["seconds"] = round(r["seconds"], 1)
        r["rate"] = round(r["cases"] / r["seconds"]) if r["seconds"] else None
    return {"targets": res, "rss_start": rss0, "rss_end": _rss(), "cases_goal": cases}


def fuzz(target: str, cases: int, workdir: Path, seed: int = 0,
         deadline: float | None = None) -> dict:
    """Run up to ``cases`` mutated inputs through one ``target`` (stop at monotonic
    ``deadline``); returns ``{"cases", "escaped", "escapes": [the first few], ...}``."""
    return fuzz_all((target,), cases, workdir, seed, deadline)["targets"][target]
