"""Latency and accuracy of ``fsdd-digits`` in the daemon, with its live utterance detector.

    python -m spikeedge.tools.fsdd_live --data ../shared/data/fsdd/recordings [--json]
        [--speakers george,jackson,nicolas,theo,yweweler] [--index 1] [--block-ms 10]

``spikeedge eval`` scores one file as one utterance and decides at its end; the daemon finds
the utterances in a stream itself and decides each once ``gap_s`` of quiet has followed it
(docs/daemon.md). This builds one stream from FSDD recordings (recording INDEX of every digit of
each speaker, 0.5 s of -61 dBFS white noise before each and at the end), runs ``spikeedge run``
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

SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")


def build_stream(files, out: Path, gap_s: float = 0.5, noise_dbfs: float = -61.0,
                 seed: int = 0) -> list[tuple[float, float]]:
    """Write the recordings ``files`` (mono 16-bit WAV at one rate) into one WAV at ``out``,
    ``gap_s`` of white noise at ``noise_dbfs`` (RMS) before each and after the last; returns
    each recording's (start, end) in seconds of the stream."""
    rng = np.random.default_rng(seed)
    amp = 32768.0 * 10 ** (noise_dbfs / 20)
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
        parts += [(rng.standard_normal(gap) * amp).astype(np.int16), x]
        t += gap / rate
        spans.append((t, t + len(x) / rate))
        t += len(x) / rate
    if rate is None:
        raise ValueError("no recordings")
    parts.append((rng.standard_normal(int(round(gap_s * rate))) * amp).astype(np.int16))
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(parts).tobytes())
    return spans


def _pct(a) -> dict:
    """The daemon's p50 / p99 / max (``spikeedge.daemon.percentiles``) and the minimum."""
    from spikeedge.daemon import percentiles
    return percentiles(a) | {"min": round(float(np.min(a)), 4)}


def measure(files, digits, block_ms: float = 10.0, workdir: Path | None = None) -> dict:
    """Run the daemon on the stream of ``files`` (true digits ``digits``) and summarise."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        wav, sink = work / "stream.wav", work / "decisions.jsonl"
        spans = build_stream(files, wav)
        sink.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "spikeedge.cli", "run", "--model-path",
               "builtin:fsdd-digits", "--source-url", f"wav:{wav}", "--source-block-ms",
               str(block_ms), "--sink", f"file:{sink}", "--log-level", "WARNING"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"spikeedge run failed ({r.returncode}): {r.stderr.strip()}")
        recs = [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]
    dec = [d for d in recs if d.get("type") == "decision"]
    mids = np.array([(a + b) / 2 for a, b in spans])
    sig_det, sig_true, comp, right = [], [], [], 0
    for d in dec:
        i = int(np.argmin(np.abs(mids - (d["window_start"] + d["sensor_time"]) / 2)))
        sig_det.append((d["decided_at"] - d["sensor_time"]) * 1e3)
        sig_true.append((d["decided_at"] - spans[i][1]) * 1e3)
        comp.append(d["latency_ms"])
        right += int(d["class"]) == int(digits[i])
    out = {"recordings": len(files), "decisions": len(dec), "correct": right,
           "block_ms": block_ms}
    if dec:
        c = np.array(comp)
        out |= {"from_detected_end_ms": _pct(sig_det), "from_true_end_ms": _pct(sig_true),
                "compute_ms": _pct(c), "total_from_detected_end_ms": _pct(np.add(sig_det, c)),
                "total_from_true_end_ms": _pct(np.add(sig_true, c))}
    return out


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m spikeedge.tools.fsdd_live",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the FSDD recordings folder")
    ap.add_argument("--speakers", default=",".join(SPEAKERS),
                    help="comma-separated speaker names (default: the five of the dataset's "
                         "training speakers)")
    ap.add_argument("--index", type=int, default=1, help="recording index 0-49 (default 1: "
                    "in the dataset's test split, which the shipped model was not fitted on)")
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    a.speakers = [s.strip() for s in a.speakers.split(",") if s.strip()]
    if not a.speakers:
        ap.error("--speakers: no speaker named")
    if not 0 <= a.index <= 49:
        ap.error(f"--index {a.index}: must be within 0-49")
    if not (np.isfinite(a.block_ms) and 1.0 <= a.block_ms <= 1000.0):
        ap.error(f"--block-ms {a.block_ms:g}: must be within 1-1000")
    return a


def main(argv=None) -> int:
    a = _args(sys.argv[1:] if argv is None else argv)
    folder = Path(a.data)
    files = [folder / f"{d}_{s}_{a.index}.wav" for s in a.speakers for d in range(10)]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        print(f"fsdd_live: error: {len(missing)} recording(s) missing in {folder}: "
              f"{', '.join(missing[:5])}", file=sys.stderr)
        return 2
    try:
        res = measure(files, [d for _ in a.speakers for d in range(10)], a.block_ms)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"fsdd_live: error: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{res['decisions']} decisions for {res['recordings']} recordings, "
              f"{res['correct']} correct")
        for k in ("from_detected_end_ms", "from_true_end_ms", "compute_ms",
                  "total_from_true_end_ms"):
            if k in res:
                print(f"{k:24} " + "  ".join(f"{q} {v:g}" for q, v in res[k].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
