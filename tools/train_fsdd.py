"""Retrain ``fsdd-digits`` with vocal-tract-length augmentation of the training recordings.

    python -m spikeedge.tools.train_fsdd --data ../shared/data/fsdd --report fsdd.json

The same recipe as ``spikeedge.tools.train_apps fsdd-digits`` (the fixed random reservoir of
``CONFIG["fsdd-digits"]``, its fixed-point streaming features, a logistic readout), except
that the readout is also fitted on warped copies of every *training* recording: the
recording is streamed again through the ``audio-delta`` front end with the 32 log band
energies shifted along the (ERB-spaced) frequency axis by ``s`` bands (linear interpolation,
edge bands repeated) before the send-on-delta spikes. One band is about 0.7 ERB, so a shift
of +-1 band is roughly a vocal tract 10 % shorter or longer. Augmentation is for training
only: the shipped model runs the plain ``audio-delta`` preset and its file is the same
format as before.

``--speeds`` adds speed-perturbed copies (the waveform resampled by a factor and replayed at
the file's rate: tempo, pitch and formants scale together, as for another speaker's vocal
tract and speaking rate) and ``--snrs`` noisy copies (white noise at that SNR; by default 20
and 10 dB, as the shipped model: a microphone hears a room), both through
the ``wavaug:`` training source (:class:`AugmentedWavSource`); a ``--nested`` candidate may
train on a subset of the copies (``"shifts"`` / ``"speeds"`` / ``"snrs"`` lists).

The readout features are a temporal pyramid (``CONFIG["fsdd-digits"]``, tools/train_apps.py):
the sqrt spike rates of each ``hid`` neuron over the whole utterance, its 2 halves, 3 thirds
and 4 quarters (``decision.segments`` ``[1, 2, 3, 4]``).

Protocols (as the model card): leave one speaker out (a held-out speaker's recordings and
their warped copies are never in the fit) and the dataset's own split (train recordings
5-49 and their warped copies, test 0-4 unwarped). ``--float`` repeats them on the float
twin's spikes (slow: a Python loop per step). ``--nested`` chooses between candidate
readout configurations (segment layouts, L2) inside each leave-one-speaker-out fold, by
leave-one-speaker-out over the four training speakers only (:func:`nested_loso`): the
speaker-wise accuracy of the *choice*, not of a configuration picked on all five speakers.

Readouts are fitted with :func:`spikeedge.train.fit_logistic32`: the objective of
:func:`spikeedge.train.fit_logistic` with float32 products (about twice as fast).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from spikeedge import quantize
from spikeedge.apps.stream import (
    AppModelError,
    AppReadout,
    FloatRunner,
    run_stream,
    utterance_features,
    utterance_segments,
)
from spikeedge.apps.tasks import TASKS, DataError, build_network, list_recordings
from spikeedge.sensors import register_scheme
from spikeedge.sensors.encoders import Chain, Transform
from spikeedge.sensors.errors import EncoderConfigError, SourceConfigError
from spikeedge.sensors.readers import WavSource
from spikeedge.train import fit_logistic32, predict, wilson_interval

from .train_apps import (
    CONFIG,
    apply_override,
    metadata,
    pool_map,
    summarise,
    write_model,
    write_report,
)

TASK = "fsdd-digits"
DEFAULT_SHIFTS = (-1.0, -0.5, 0.5, 1.0)
#: white-noise copies of the shipped model (SNR in dB): robustness in a room (eighth session)
DEFAULT_SNRS = (20.0, 10.0)


class BandShift(Transform):
    """Frequency warping of band energies: output band ``j`` is input band ``j + shift``
    (linear interpolation between neighbours; positions outside the bank take the edge band).
    Stateless and causal (row by row)."""

    def __init__(self, in_rate: float, channels: int, shift: float):
        super().__init__(in_rate, channels)
        if not np.isfinite(shift) or abs(shift) >= channels - 1:
            raise EncoderConfigError(f"BandShift: shift must be finite and below "
                                     f"{channels - 1} bands, got {shift}")
        self.shift = float(shift)
        pos = np.clip(np.arange(channels) + self.shift, 0, channels - 1)
        self._lo = np.floor(pos).astype(np.int64)
        self._hi = np.minimum(self._lo + 1, channels - 1)
        self._f = pos - self._lo

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        return x[:, self._lo] * (1.0 - self._f) + x[:, self._hi] * self._f


def warped_encoder(preset: str, rate: float, shift: float, step_hz: float = 1000.0) -> Chain:
    """The ``preset`` audio chain with a :class:`BandShift` before its spike encoder."""
    from spikeedge.sensors import app_encoders  # noqa: F401  (registers the app presets)
    from spikeedge.sensors.presets import make_encoder
    enc = make_encoder(preset, rate, 1, step_hz)
    *front, spk = enc.stages
    return Chain(*front, BandShift(front[-1].out_rate_exact, front[-1].channels_out, shift),
                 spk)


def augment_waveform(x: np.ndarray, speed: float = 1.0, snr_db: float | None = None,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """Speed perturbation and additive noise of a waveform (training copies only).

    ``speed`` > 1 plays the recording faster: it is resampled to ``len(x) / speed`` samples
    (polyphase filter, the ratio as a fraction with a denominator up to 100) and kept at the
    original rate, so tempo *and* every frequency (pitch and formants, i.e. the vocal tract)
    scale by ``speed``. ``snr_db``: white Gaussian noise at that signal-to-noise ratio
    (signal power: the mean square of the whole recording) from ``rng``. Returns float64;
    out-of-range values raise :class:`~spikeedge.sensors.errors.SourceConfigError`."""
    from fractions import Fraction

    from scipy.signal import resample_poly
    x = np.asarray(x, np.float64)
    if not np.isfinite(speed) or not 0.5 <= speed <= 2.0:
        raise SourceConfigError(f"augment_waveform: speed must be within 0.5..2, got {speed}")
    if snr_db is not None and (not np.isfinite(snr_db) or not -20 <= snr_db <= 80):
        raise SourceConfigError(f"augment_waveform: snr must be within -20..80 dB, got {snr_db}")
    if speed != 1.0:
        fr = Fraction(float(speed)).limit_denominator(100)
        x = resample_poly(x, fr.denominator, fr.numerator)
    if snr_db is not None and len(x):
        power = float(np.mean(x * x))
        rng = rng if rng is not None else np.random.default_rng(0)
        x = x + rng.standard_normal(len(x)) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return x


class AugmentedWavSource(WavSource):
    """``wavaug:PATH?speed=S&snr=DB&seed=K``: a mono 16-bit WAV (as ``wav:``) replayed after
    :func:`augment_waveform` at the file's own rate; the noise is seeded by ``seed`` and the
    file name, so a copy is the same in every run and process. Training copies only: the
    shipped model reads plain ``wav:``."""

    scheme = "wavaug"
    OPTIONS = {**WavSource.OPTIONS, "speed": float, "snr": float, "seed": int}

    def __init__(self, path, *, speed: float = 1.0, snr: float | None = None, seed: int = 0,
                 **kw):
        kw.setdefault("name", f"wavaug:{path}")
        if kw.get("resample") is not None:
            raise SourceConfigError(f"wavaug:{path}: resample is not supported here")
        super().__init__(path, **kw)
        augment_waveform(np.zeros(1), speed, snr)        # checks the values
        self.speed, self.snr, self.seed = float(speed), snr, int(seed)

    def _open(self) -> None:
        import wave
        import zlib
        self._pos = 0
        self._avail = None
        with wave.open(str(self.path), "rb") as w:
            x = self._decode(w.readframes(self.n_frames), 0)
        if x.shape[0] < self.n_frames:
            self._truncated(x.shape[0])
        rng = np.random.default_rng([self.seed, zlib.crc32(self.path.name.encode())])
        self._data = augment_waveform(x, self.speed, self.snr, rng)


register_scheme("wavaug", "spikeedge.tools.train_fsdd:AugmentedWavSource")

#: one version of a recording: (band shift, speed factor, SNR in dB or None); (0, 1, None)
#: is the recording as the shipped model hears it
PLAIN = (0.0, 1.0, None)


def version_url(url: str, version) -> str:
    """The source URL of ``version`` of the ``wav:`` recording ``url`` (the band shift is
    applied in the encoder, not here)."""
    _, speed, snr = version
    if speed == 1.0 and snr is None:
        return url
    scheme, _, path = url.partition(":")
    if scheme != "wav" or "?" in path:
        raise DataError(f"{url}: speed / noise copies need a plain wav: recording")
    q = f"speed={speed!r}" + ("" if snr is None else f"&snr={snr!r}")
    return f"wavaug:{path}?{q}"


def version_name(version) -> str:
    shift, speed, snr = version
    parts = ([f"shift {shift:+g}"] if shift else []) + \
        ([f"speed {speed:g}"] if speed != 1.0 else []) + \
        ([f"snr {snr:g} dB"] if snr is not None else [])
    return ", ".join(parts) or "plain"


def _layout_key(segments) -> str:
    k = utterance_segments({"segments": segments}, "--candidates")
    return "+".join(str(j) for j in k)


def _features(args):
    """One recording, one shift (0: the shipped front end) -> feature vectors (one per
    segment layout in ``layouts``), cost."""
    program, meta, url, version, use_float, layouts = args
    shift = version[0]
    url = version_url(url, version)
    program.report["metadata"] = meta
    r = AppReadout.from_program(program, need_weights=False)
    enc = None
    if shift:
        from spikeedge.sensors import open_source
        src = open_source(url)
        src.open()
        rate = src.rate
        src.close()
        enc = warped_encoder(r.encoder, rate, shift, 1.0 / program.dt)
    eng = FloatRunner(program) if use_float else None
    spikes = []
    res = run_stream(program, url, r, engine=eng, encoder=enc,
                     collect=lambda blk, si, s: spikes.append(s[:, r.neurons]))
    (d,) = res["decisions"]
    s = np.concatenate(spikes) if spikes else np.zeros((0, r.n_neurons), np.uint8)
    feats = [d["features"] if lay is None else utterance_features(r, s, lay)
             for lay in layouts]
    return [f.astype(np.float32) for f in feats], res["events"], res["wall_s"]


def collect(program, meta, recs, shifts, use_float=False, jobs=1, log=print, layouts=(None,)):
    """Features ``[len(shifts), n_recs, F]`` (version order as given) for each segment layout
    in ``layouts`` (None: the model's own decision; a tuple of part counts: that pyramid), and
    the cost of the first version (the plain one). ``shifts``: versions ``(shift, speed, snr)``
    or plain band shifts. Returns (list of feature arrays, cost)."""
    layouts = list(layouts)
    versions = [v if isinstance(v, tuple) else (float(v), 1.0, None) for v in shifts]
    work = [(program, meta, rec.url, v, use_float, layouts) for v in versions for rec in recs]
    feats, events, wall = [], [], []
    for f, ev, w in pool_map(_features, work, jobs, chunksize=8, log=log):
        feats.append(f)
        events.append(ev)
        wall.append(w)
    Xs = [np.array([f[j] for f in feats]).reshape(len(shifts), len(recs), -1)
          for j in range(len(layouts))]
    n = len(recs)
    return Xs, {"events": int(np.sum(events[:n])), "wall_s": float(np.sum(wall[:n])),
               "decisions": n}


def protocols(X, y, groups, index, fit, labels, log=print, loso_pred=None) -> dict:
    """X: [1 + n_aug, n, F], X[0] the unwarped features. Leave one speaker out and the
    dataset split; warped copies only ever of training recordings. ``loso_pred``: the
    leave-one-speaker-out predictions when already made (by :func:`nested_loso`)."""
    n_cls = len(labels)
    X0 = X[0]

    def fit_on(train):
        return _fit_aug(X, y, train, n_cls, fit)

    pred = np.full(len(y), -1, np.int64) if loso_pred is None else loso_pred
    for g in np.unique(groups) if loso_pred is None else ():
        test = groups == g
        W, b = fit_on(~test)
        pred[test] = predict(W, b, X0[test])
    out = {"leave_one_group_out": summarise(y, pred, labels),
           "per_group_accuracy": {str(g): float(np.mean(pred[groups == g] == y[groups == g]))
                                  for g in np.unique(groups)}}
    test = index < 5
    W, b = fit_on(~test)
    out["own_split"] = summarise(y[test], predict(W, b, X0[test]), labels)
    out["_split_readout"] = (W, b)     # the shipped readout's fit (popped by main)
    for k in ("leave_one_group_out", "own_split"):
        v = out[k]
        lo, hi = v["accuracy_ci"]
        log(f"  {k}: accuracy {v['accuracy']:.4f} [{lo:.4f}, {hi:.4f}] n={v['n']}", flush=True)
    log("  per speaker: " + ", ".join(f"{g} {a:.3f}" for g, a in
                                      out["per_group_accuracy"].items()), flush=True)
    return out


def deflate_model(path) -> int:
    """Rewrite the model file ``path`` (a ``numpy.savez`` archive) with its members
    deflate-compressed (``numpy.load`` and :func:`spikeedge.load_model` read both); atomic
    (temporary file, fsync, rename). Returns the new size in bytes. The pyramid readout makes
    the stored file 1.13 MB, compressed it stays under the 1 MB of a shipped model."""
    import os
    import zipfile
    path = os.fspath(path)
    tmp = path + ".tmp"
    with zipfile.ZipFile(path) as src, open(tmp, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info.filename))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return os.path.getsize(path)


def _fit_aug(X, y, train, n_cls, fit):
    """Readout fitted on the ``train`` recordings and all their versions (X [V, n, F])."""
    Xt = X[:, train].reshape(-1, X.shape[2])
    yt = np.tile(y[train], X.shape[0])
    return fit_logistic32(Xt, yt, n_cls, **fit)


_FIT_DATA: dict = {}     # the arrays of nested_loso, inherited by forked fit workers


def _fit_job(job):
    """One readout fit of :func:`nested_loso`: candidate ``c`` without speakers ``out``;
    returns (c, out, predictions for the left-out recordings)."""
    c, out, f = job
    Xs, y, groups = _FIT_DATA["Xs"], _FIT_DATA["y"], _FIT_DATA["groups"]
    m = np.isin(groups, out)
    W, b = _fit_aug(Xs[c], y, ~m, len(_FIT_DATA["labels"]), f)
    return c, out, predict(W, b, Xs[c][0][m])


def nested_loso(Xs, y, groups, candidates, fit, n_cls, log=print, jobs=1,
                screen=False) -> dict:
    """Nested speaker-wise choice between readout ``candidates`` (dicts with ``segments`` and
    ``l2``; ``Xs[i]`` the features [V, n, F] of candidate i). For each held-out speaker o, the
    candidate with the best mean accuracy leaving one of the *other* speakers out (fitted on the
    remaining three) is refitted on all four and tested on o. A fit leaving out speakers
    {o, i} serves both outer folds o and i, so each candidate costs one fit per pair of
    speakers plus one per speaker. Returns per-candidate leave-one-speaker-out accuracies,
    the inner scores, the choices and the nested accuracy. ``jobs`` > 1: fits in that many
    forked processes (same results). ``screen``: only each candidate's plain
    leave-one-speaker-out (no pair fits, no choice: no ``folds``, no nested accuracy)."""
    spk = [str(g) for g in np.unique(groups)]
    out_pred: dict = {}
    inner = {}          # (candidate, left-out pair, scored speaker) -> accuracy
    plain = {}          # (candidate, speaker) -> accuracy, predictions
    work = []
    for c, cand in enumerate(candidates):
        f = dict(fit, l2=float(cand.get("l2", fit.get("l2", 1e-3))))
        work += [(c, (g,), f) for g in spk]
        if not screen:
            work += [(c, pair, f) for pair in itertools.combinations(spk, 2)]
    _FIT_DATA.update(Xs=Xs, y=y, groups=groups, labels=range(n_cls))
    pool = None
    t0 = time.time()
    if jobs > 1:
        import multiprocessing
        pool = multiprocessing.get_context("fork").Pool(jobs)
        results = pool.imap_unordered(_fit_job, work)
    else:
        results = map(_fit_job, work)
    try:
        for i, (c, left, p) in enumerate(results):
            m = np.isin(groups, left)
            for g in left:
                acc = float(np.mean(p[groups[m] == g] == y[groups == g]))
                if len(left) == 1:
                    plain[c, g] = (acc, p)
                    out_pred.setdefault(c, np.full(len(y), -1, np.int64))[m] = p
                else:
                    inner[(c, *left, g)] = acc
            score = f" (accuracy {plain[c, left[0]][0]:.3f})" if len(left) == 1 else ""
            log(f"  fit {i + 1}/{len(work)}: candidate {c} without {', '.join(left)}{score}, "
                f"{time.time() - t0:.0f} s", flush=True)
    finally:
        _FIT_DATA.clear()
        if pool is not None:
            pool.close()
            pool.join()
    for c, cand in enumerate(candidates):
        acc = np.mean([plain[c, g][0] for g in spk])
        log(f"  candidate {c} {json.dumps(cand)}: leave one speaker out {acc:.4f} ("
            + ", ".join(f"{g} {plain[c, g][0]:.3f}" for g in spk) + ")", flush=True)
    out = {"candidates": [], "folds": {}}
    for c, cand in enumerate(candidates):
        out["candidates"].append({**cand, "leave_one_speaker_out": float(
            np.mean([plain[c, g][0] for g in spk])), "per_speaker": {
            g: plain[c, g][0] for g in spk}})
    out["predictions"] = out_pred        # candidate -> leave-one-speaker-out predictions
    if screen:
        return out
    pred = np.full(len(y), -1, np.int64)
    for o in spk:
        scores = []
        for c in range(len(candidates)):
            vals = [inner[(c, *sorted((o, i)), i)] for i in spk if i != o]
            scores.append(float(np.mean(vals)))
        best = int(np.argmax(scores))
        pred[groups == o] = plain[best, o][1]
        out["folds"][o] = {"inner_scores": scores, "chosen": best,
                           "accuracy": plain[best, o][0]}
        log(f"  held out {o}: inner scores {[round(v, 4) for v in scores]} -> candidate "
            f"{best}, {plain[best, o][0]:.3f}", flush=True)
    k, n = int(np.sum(pred == y)), len(y)
    out["nested_accuracy"] = k / n
    out["nested_accuracy_ci"] = wilson_interval(k, n)
    log(f"  nested leave one speaker out: {k / n:.4f}", flush=True)
    return out


def _candidates(text: str) -> list[dict]:
    try:
        vals = json.loads(text)
    except ValueError:
        vals = None
    if not isinstance(vals, list) or not vals or not all(isinstance(v, dict) for v in vals):
        raise argparse.ArgumentTypeError(
            "--nested: a JSON list of objects such as "
            "'[{\"segments\": 4}, {\"segments\": [1, 2, 3, 4], \"l2\": 0.03}]'")
    for v in vals:
        bad = sorted(set(v) - {"segments", "l2", "shifts", "speeds", "snrs"})
        for key in ("shifts", "speeds", "snrs"):
            sub = v.get(key, [])
            if not isinstance(sub, list) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in sub):
                bad.append(key)
        l2 = v.get("l2", 1.0)
        if bad or "segments" not in v or isinstance(l2, bool) \
                or not isinstance(l2, (int, float)) or not 0 < l2 < 1e3:
            raise argparse.ArgumentTypeError(
                f"--nested: each candidate needs 'segments' and may have 'l2' (> 0) and "
                f"'shifts' / 'speeds' / 'snrs' (lists of numbers), got {v}")
        try:
            _layout_key(v["segments"])
        except AppModelError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return vals


def _floats(flag: str, text: str, unit: str = "") -> list[float]:
    """The comma-separated numbers of option ``flag`` (a usage error otherwise)."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{flag}: comma-separated numbers{unit}, got {text!r}") from None


def _shifts(text: str) -> list[float]:
    vals = _floats("--shifts", text)
    if any(v == 0 or not np.isfinite(v) or abs(v) > 4 for v in vals):
        raise argparse.ArgumentTypeError("--shifts: nonzero band shifts within +-4")
    return vals


def _speeds(text: str) -> list[float]:
    vals = _floats("--speeds", text)
    if any(v == 1 or not np.isfinite(v) or not 0.5 <= v <= 2 for v in vals):
        raise argparse.ArgumentTypeError("--speeds: speed factors within 0.5..2, not 1")
    return vals


def _snrs(text: str) -> list[float]:
    vals = _floats("--snrs", text, " (dB)")
    if any(not np.isfinite(v) or not -20 <= v <= 80 for v in vals):
        raise argparse.ArgumentTypeError("--snrs: signal-to-noise ratios within -20..80 dB")
    return vals


def candidate_versions(cand: dict, versions: list) -> list[int]:
    """Indices into ``versions`` of the copies a nested candidate trains on: the plain one and
    the band shifts / speeds / SNRs it names (each defaults to all of the command line's)."""
    pick = {}
    for k, pos in (("shifts", 0), ("speeds", 1), ("snrs", 2)):
        allv = {v[pos] for v in versions[1:] if v[pos] != PLAIN[pos]}
        want = cand.get(k)
        want = allv if want is None else {float(x) for x in want}
        if not want <= allv:
            raise argparse.ArgumentTypeError(
                f"--nested: candidate {cand} names {k} {sorted(want - allv)} that are not "
                f"among the command line's ({sorted(allv)})")
        pick[pos] = want
    return [0] + [i for i, v in enumerate(versions) if i and all(
        v[pos] == PLAIN[pos] or v[pos] in pick[pos] for pos in range(3))]


def _collect_cached(path, prog, meta, recs, versions, jobs, layouts):
    """:func:`collect`, read from / written to the ``--cache`` file ``path`` (None: no cache).
    A cache is used only when it was made from the same recordings, versions, segment layouts
    and model (metadata and a hash of the quantized weights, which the seed draws)."""
    key = json.dumps({"urls": [r.url for r in recs], "versions": versions,
                      "layouts": [None if k is None else list(k) for k in layouts],
                      "meta": meta, "weights": hashlib.sha256(
                          np.ascontiguousarray(prog.weights).tobytes()).hexdigest()},
                     sort_keys=True, default=str)
    if path and Path(path).exists():
        with np.load(path) as z:
            if "key" in z and str(z["key"]) == key:
                print(f"features read from {path}", flush=True)
                return ([z[f"X{j}"] for j in range(len(layouts))],
                        json.loads(str(z["cost"])))
        print(f"{path}: made from other settings; streaming again", flush=True)
    Xs, cost = collect(prog, meta, recs, versions, jobs=jobs, layouts=layouts)
    if path:
        np.savez(path, key=key, cost=json.dumps(cost), **{f"X{j}": x for j, x in enumerate(Xs)})
    return Xs, cost


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the FSDD folder in ../shared/data")
    ap.add_argument("--out", default=None, help="model file (default "
                    "runtime/models/fsdd-digits.npz)")
    ap.add_argument("--report", default=None, help="write the protocol results as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shifts", type=_shifts, default=list(DEFAULT_SHIFTS),
                    help="band shifts of the warped training copies, comma-separated "
                    "(default %(default)s)")
    ap.add_argument("--speeds", type=_speeds, default=[],
                    help="speed-perturbed training copies (resampled waveform: tempo and "
                    "frequencies scale together), comma-separated factors, e.g. 0.9,1.1")
    ap.add_argument("--snrs", type=_snrs, default=list(DEFAULT_SNRS),
                    help="noisy training copies (white noise), comma-separated SNRs in dB "
                    "(default %(default)s, the shipped model's; '' for none)")
    ap.add_argument("--float", action="store_true", help="also run the float twin")
    ap.add_argument("--no-cv", action="store_true", help="skip the protocols")
    ap.add_argument("--no-save", action="store_true", help="do not write the model")
    ap.add_argument("--cache", default=None, help="save the fixed-point features (.npz) here; "
                    "an existing file made with the same versions, layouts, config and seed "
                    "is read instead of streaming again")
    ap.add_argument("--screen", action="store_true", help="with --nested: only each "
                    "candidate's leave-one-speaker-out (no inner choice, no shipped-model fits, "
                    "nothing saved)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes for streaming")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                    help="override a CONFIG entry, e.g. fit.l2=0.1")
    ap.add_argument("--fit-jobs", type=int, default=1,
                    help="readout fits of --nested in this many processes")
    ap.add_argument("--nested", type=_candidates, default=None, metavar="JSON",
                    help="also choose between these readout candidates inside each leave-one-"
                    "speaker-out fold, e.g. '[{\"segments\": 4}, {\"segments\": [1, 2, 3, 4]}]' "
                    "(l2 defaults to the config's)")
    args = ap.parse_args(argv)
    cfg = json.loads(json.dumps(CONFIG[TASK]))
    for spec in args.set:
        apply_override(ap, cfg, spec)
    try:
        utterance_segments(cfg["decision"], "--set decision.segments")
    except AppModelError as e:
        ap.error(str(e))
    labels = TASKS[TASK]
    try:
        recs = list_recordings(TASK, args.data)
    except DataError as e:
        ap.error(str(e))
    shifts = [0.0] + list(args.shifts)
    versions = [PLAIN] + [(float(v), 1.0, None) for v in args.shifts] + \
        [(0.0, float(v), None) for v in args.speeds] + [(0.0, 1.0, float(v)) for v in args.snrs]
    try:
        picks = [candidate_versions(c, versions) for c in args.nested or []]
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    print(f"{TASK}: {len(recs)} recordings, versions "
          f"{[version_name(v) for v in versions]}, config {json.dumps(cfg)}", flush=True)
    prog = quantize(build_network(TASK, args.seed, **cfg["net"]))
    meta = metadata(TASK, cfg)
    y = np.array([r.label for r in recs], np.int64)
    groups = np.array([r.group for r in recs])
    index = np.array([r.index for r in recs])
    own = utterance_segments(cfg["decision"])
    layouts = [None] + [k for k in dict.fromkeys(utterance_segments(c)
                                                 for c in args.nested or []) if k != own]
    Xs, cost = _collect_cached(args.cache, prog, meta, recs, versions, args.jobs, layouts)
    X = Xs[0]
    by_layout = {own: X, **dict(zip(layouts[1:], Xs[1:], strict=True))}
    print(f"fixed point: {X.shape[1]} recordings x {X.shape[0]} versions x {X.shape[2]} "
          f"features; events/decision {cost['events'] / cost['decisions']:.0f}", flush=True)
    report = {"task": TASK, "config": cfg, "seed": args.seed, "shifts": shifts,
              "n_recordings": len(recs), "cost": cost}
    if args.speeds or args.snrs:
        report.update(speeds=args.speeds, snrs=args.snrs)
    loso_pred = None
    if args.nested:
        print("nested choice between candidates (fixed point):", flush=True)
        nest = nested_loso([by_layout[utterance_segments(c)][v] if len(v) < len(versions)
                            else by_layout[utterance_segments(c)]
                            for c, v in zip(args.nested, picks, strict=True)],
                           y, groups, args.nested, cfg["fit"], len(labels),
                           jobs=args.fit_jobs, screen=args.screen)
        preds = nest.pop("predictions")
        report["nested"] = nest
        # the shipped configuration among the candidates: its predictions are the protocol's
        for c, cand in enumerate(args.nested):
            if utterance_segments(cand) == own and len(picks[c]) == len(versions) and \
                    float(cand.get("l2", cfg["fit"].get("l2"))) == float(cfg["fit"].get("l2")):
                loso_pred = preds[c]
    del Xs, by_layout
    if not args.no_cv and not args.screen:
        print("shipped configuration:", flush=True)
        report["fixed"] = protocols(X, y, groups, index, cfg["fit"], labels,
                                    loso_pred=loso_pred)
        split_readout = report["fixed"].pop("_split_readout")
    else:
        split_readout = None
    if args.float:
        print("float twin:", flush=True)
        (Xf,), _ = collect(prog, meta, recs, versions, use_float=True, jobs=args.jobs)
        report["float"] = protocols(Xf, y, groups, index, cfg["fit"], labels)
        report["float"].pop("_split_readout")
    if not args.no_save and not args.screen:
        # the dataset's convention: recordings 5-49 (and their warped copies) train, 0-4 test
        sel = index >= 5
        Xt = X[:, sel].reshape(-1, X.shape[2])
        yt = np.tile(y[sel], X.shape[0])
        # the same fit as the dataset-split protocol's
        W, b = split_readout or fit_logistic32(Xt, yt, len(labels), **cfg["fit"])
        train_acc = float(np.mean(predict(W, b, X[0][sel]) == y[sel]))
        meta["training"] = {"data": Path(args.data).name, "examples": int(len(yt)),
                            "recordings": int(sel.sum()), "band_shifts": shifts,
                            "train_accuracy": train_acc, "seed": args.seed, "fit": cfg["fit"]}
        if args.speeds or args.snrs:
            meta["training"].update(speeds=args.speeds, snrs=args.snrs)
        out = write_model(args.out, TASK, prog, meta, W, b, train_acc)
        print(f"compressed {out}: {deflate_model(out)} bytes", flush=True)
    write_report(args.report, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
