"""Latency and accuracy of ``fsdd-digits`` in the daemon, with its live utterance detector.

    python -m spikeedge.tools.fsdd_live --data ../shared/data/fsdd/recordings [--json]
        [--speakers george,jackson,nicolas,theo,yweweler] [--index 1] [--block-ms 10]
        [--noise-dbfs -61] [--model builtin:fsdd-digits]

``spikeedge eval`` scores one file as one utterance and decides at its end; the daemon finds
the utterances in a stream itself and decides each once ``gap_s`` of quiet has followed it
(docs/daemon.md). This builds one stream from FSDD recordings (recording INDEX of every digit of
each speaker, 0.5 s apart, with white room noise at NOISE_DBFS, default -61 dBFS, under the
whole stream), runs ``spikeedge run``
on it (file source, as fast as possible, BLOCK_MS blocks, file sink) and reports over the
decisions: the signal time from the detected end (the last voiced frame, the record's
``sensor_time``) and from the recording's true end to the decision (``decided_at``), the
compute from the block's arrival (``latency_ms``), their sums, and how many decisions name the
recording's digit. Exit status 2 on bad arguments or missing recordings.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

from spikeedge.apps.tasks import FSDD_NAME

SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")


def check_noise_dbfs(level: float) -> float:
    """The room noise level in dB full scale: within -120..0, else ValueError."""
    if not np.isfinite(level) or not -120 <= level <= 0:
        raise ValueError(f"noise level {level!r} dBFS: must be within -120..0")
    return level


def build_stream(files, out: Path, gap_s: float = 0.5, noise_dbfs: float = -61.0,
                 seed: int = 0) -> list[tuple[float, float]]:
    """Write the recordings ``files`` (mono 16-bit WAV at one rate) into one WAV at ``out``,
    ``gap_s`` apart (and ``gap_s`` before the first and after the last), with white noise at
    ``noise_dbfs`` (RMS) under the whole stream, as a room under a microphone: the recordings'
    own noise floors differ, and silence between them at a level some recordings go below
    would be a room no microphone hears. Returns each recording's (start, end) in seconds of
    the stream."""
    check_noise_dbfs(noise_dbfs)
    rng = np.random.default_rng(seed)
    parts, spans, rate, t = [], [], None, 0.0
    for p in files:
        with wave.open(str(p)) as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise ValueError(f"{p}: not mono 16-bit PCM")
            if rate is not None and w.getframerate() != rate:
                raise ValueError(f"{p}: {w.getframerate()} Hz, the others {rate} Hz")
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        gap = int(round(gap_s * rate))
        parts += [np.zeros(gap), x.astype(np.float64)]
        t += gap / rate
        spans.append((t, t + len(x) / rate))
        t += len(x) / rate
    if rate is None:
        raise ValueError("no recordings")
    parts.append(np.zeros(int(round(gap_s * rate))))
    y = np.concatenate(parts)
    y += rng.standard_normal(len(y)) * 32768.0 * 10 ** (noise_dbfs / 20)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(y), -32768, 32767).astype(np.int16).tobytes())
    return spans


def _pct(a) -> dict:
    """The daemon's p50 / p99 / max (``spikeedge.daemon.percentiles``) and the minimum."""
    from spikeedge.daemon import percentiles
    return percentiles(a) | {"min": round(float(np.min(a)), 4)}


def measure(files, digits, block_ms: float = 10.0, workdir: Path | None = None,
            noise_dbfs: float = -61.0, model: str = "builtin:fsdd-digits") -> dict:
    """Run the daemon with ``model`` on the stream of ``files`` (true digits ``digits``; room
    noise at ``noise_dbfs``) and summarise."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        wav, sink = work / "stream.wav", work / "decisions.jsonl"
        spans = build_stream(files, wav, noise_dbfs=noise_dbfs)
        sink.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "spikeedge.cli", "run", "--model-path",
               model, "--source-url", f"wav:{wav}", "--source-block-ms",
               str(block_ms), "--sink", f"file:{sink}", "--log-level", "WARNING"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"spikeedge run failed ({r.returncode}): {r.stderr.strip()}")
        recs = [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
    dec = [d for d in recs if d.get("type") == "decision"]
    mids = np.array([(a + b) / 2 for a, b in spans])
    sig_det, sig_true, comp, right = [], [], [], 0
    speaker = [m.group(2) if (m := FSDD_NAME.match(Path(f).name)) else "?" for f in files]
    by_speaker = {s: {"recordings": speaker.count(s), "decisions": 0, "correct": 0}
                  for s in dict.fromkeys(speaker)}
    for d in dec:
        i = int(np.argmin(np.abs(mids - (d["window_start"] + d["sensor_time"]) / 2)))
        sig_det.append((d["decided_at"] - d["sensor_time"]) * 1e3)
        sig_true.append((d["decided_at"] - spans[i][1]) * 1e3)
        comp.append(d["latency_ms"])
        ok = int(d["class"]) == int(digits[i])
        right += ok
        by_speaker[speaker[i]]["decisions"] += 1
        by_speaker[speaker[i]]["correct"] += ok
    out = {"recordings": len(files), "decisions": len(dec), "correct": right,
           "block_ms": block_ms, "noise_dbfs": noise_dbfs, "by_speaker": by_speaker}
    if dec:
        c = np.array(comp)
        out |= {"from_detected_end_ms": _pct(sig_det), "from_true_end_ms": _pct(sig_true),
                "compute_ms": _pct(c), "total_from_detected_end_ms": _pct(np.add(sig_det, c)),
                "total_from_true_end_ms": _pct(np.add(sig_true, c))}
    return out


def _indices(text: str) -> list[int]:
    """``--index``: ``1``, ``0,2,4`` or ``0-4`` (recording indices within 0-49)."""
    out = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out += range(int(lo), int(hi if hi else lo) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: indices such as 1, 0,2 or 0-4") from None
    if not out or any(not 0 <= i <= 49 for i in out) or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"{text!r}: distinct indices within 0-49")
    return out


def _noise_arg(text: str) -> float:
    """``--noise-dbfs``: a level accepted by :func:`check_noise_dbfs`."""
    try:
        return check_noise_dbfs(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m spikeedge.tools.fsdd_live",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--speakers", default=",".join(SPEAKERS),
                    help="comma-separated speaker names (default: the five of the dataset's "
                         "training speakers)")
    ap.add_argument("--index", type=_indices, default=[1], help="recording indices 0-49: one, "
                    "a comma-separated list or a range such as 0-4 (default 1: "
                    "in the dataset's test split, which the shipped model was not fitted on)")
    ap.add_argument("--model", default="builtin:fsdd-digits",
                    help="model file or builtin:NAME (default %(default)s)")
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--noise-dbfs", type=_noise_arg, default=-61.0,
                    help="level of the white room noise under the whole stream, dB full scale "
                    "(default -61)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    a.speakers = [s.strip() for s in a.speakers.split(",") if s.strip()]
    if not a.speakers:
        ap.error("--speakers: no speaker named")
    if not (np.isfinite(a.block_ms) and 1.0 <= a.block_ms <= 1000.0):
        ap.error(f"--block-ms {a.block_ms:g}: must be within 1-1000")
    return a


def main(argv=None) -> int:
    a = _args(sys.argv[1:] if argv is None else argv)
    folder = Path(a.data)
    files = [folder / f"{d}_{s}_{i}.wav" for i in a.index for s in a.speakers for d in range(10)]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        print(f"fsdd_live: error: {len(missing)} recording(s) missing in {folder}: "
              f"{', '.join(missing[:5])}", file=sys.stderr)
        return 2
    try:
        res = measure(files, [d for _ in a.index for _ in a.speakers for d in range(10)],
                      a.block_ms, noise_dbfs=a.noise_dbfs, model=a.model)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"fsdd_live: error: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{res['decisions']} decisions for {res['recordings']} recordings, "
              f"{res['correct']} correct ("
              + ", ".join(f"{k} {v['correct']}/{v['recordings']}"
                          for k, v in res["by_speaker"].items()) + ")")
        for k in ("from_detected_end_ms", "from_true_end_ms", "compute_ms",
                  "total_from_true_end_ms"):
            if k in res:
                print(f"{k:24} " + "  ".join(f"{q} {v:g}" for q, v in res[k].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
