"""The three shipped applications: their data folders, networks and ground truth.

A task knows how to list the recordings of a data folder (with a group for leave-one-group-out
validation), build the reservoir network, and turn the decisions of :func:`~.stream.run_stream`
on one recording into (true class, predicted class) pairs.

* ``fsdd-digits``: Free Spoken Digit Dataset WAV files ``<digit>_<speaker>_<index>.wav``;
  one decision per file (utterance); groups are speakers.
* ``mitbih-beats``: WFDB records with ``.atr`` beat annotations (MLII lead); one decision per
  detected beat, matched to the reference within 150 ms (AAMI EC57); groups are records.
* ``myo-gestures``: Myo sessions ``<participant>-<session>/<g>.txt``; one decision per window,
  true class the majority label of its samples; groups are sessions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SpikeEdgeError

__all__ = ["DataError", "Recording", "TASKS", "list_recordings", "build_network",
           "truth_and_predictions", "AAMI"]

AAMI = ["N", "S", "V", "F", "Q"]
DIGITS = [str(d) for d in range(10)]
GESTURES = ["rest", "flexion", "extension", "radial", "ulnar", "pronation", "supination",
            "fist"]
TASKS = {"fsdd-digits": DIGITS, "mitbih-beats": AAMI, "myo-gestures": GESTURES}
#: an FSDD file name: digit, speaker, recording index
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


class DataError(SpikeEdgeError, ValueError):
    """A data folder does not hold recordings of the kind the model's task needs."""


@dataclass
class Recording:
    url: str
    group: str              # speaker / record / session
    label: int | None       # per-file class (FSDD); None when labels come from the data
    name: str
    index: int = 0          # FSDD recording index (0-4 is the dataset's test split)


# ---------------------------------------------------------------------------- listing
def _fsdd(folder: Path) -> list[Recording]:
    if (folder / "recordings").is_dir():
        folder = folder / "recordings"
    out = []
    for p in sorted(folder.glob("*.wav")):
        m = FSDD_NAME.match(p.name)
        if m:
            out.append(Recording(f"wav:{p}", m.group(2), int(m.group(1)), p.stem,
                                 int(m.group(3))))
    if not out:
        raise DataError(f"{folder}: no FSDD-named WAV files (<digit>_<speaker>_<index>.wav); "
                        "the fsdd-digits model needs a folder of spoken-digit recordings")
    return out


def _mitbih(folder: Path) -> list[Recording]:
    import wfdb
    out = []
    for hea in sorted(folder.glob("*.hea")):
        if not hea.with_suffix(".atr").exists():
            continue
        names = wfdb.rdheader(str(hea.with_suffix(""))).sig_name or []
        ch = names.index("MLII") if "MLII" in names else 0
        out.append(Recording(f"wfdb:{hea.with_suffix('')}?channel={ch}", hea.stem, None,
                             hea.stem))
    if not out:
        raise DataError(f"{folder}: no WFDB records with .atr annotations (*.hea + *.atr); "
                        "the mitbih-beats model needs a folder of annotated ECG records")
    return out


def _myo(folder: Path) -> list[Recording]:
    sessions = [folder] if any(folder.glob("[0-7].txt")) else \
        sorted(d for d in folder.iterdir() if d.is_dir() and any(d.glob("[0-7].txt")))
    out = []
    for s in sessions:
        for g in range(8):
            p = s / f"{g}.txt"
            if p.exists():
                out.append(Recording(f"myo:{p}", s.name, None, f"{s.name}/{g}"))
    if not out:
        raise DataError(f"{folder}: no Myo sessions (folders holding 0.txt .. 7.txt); the "
                        "myo-gestures model needs a folder of Myo armband sessions")
    return out


def list_recordings(task: str, folder) -> list[Recording]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    if task == "fsdd-digits":
        return _fsdd(folder)
    if task == "mitbih-beats":
        return _mitbih(folder)
    if task == "myo-gestures":
        return _myo(folder)
    raise DataError(f"model task {task!r} is not one of {', '.join(TASKS)}")


# ---------------------------------------------------------------------------- networks
def _sparse(source: str, target: str, w: np.ndarray):
    """A projection of the nonzero entries of the dense ``w`` [n_pre, n_post] (CSR), so that a
    spike costs one synaptic event per real synapse, not one per target neuron."""
    from .. import Projection
    rows, cols = np.nonzero(w)
    indptr = np.concatenate([[0], np.cumsum(np.count_nonzero(w, axis=1))]).astype(np.int64)
    return Projection(source, target, w[rows, cols], indptr=indptr,
                      indices=cols.astype(np.int64))


def _coincidence(n_ch: int, n_tot: int):
    """Coincidence neurons for the ``emg-lif-sign`` inputs: one per pair of sign inputs of two
    different electrodes (ON-ON, OFF-OFF, ON-OFF, OFF-ON; an electrode's own ON and OFF never
    fire together), weight 20 from each, 1 ms membrane and current at the 5 ms step. After
    quantization a neuron fires exactly one step after both of its inputs spiked in the same
    step and never otherwise (15-25 do; 12 never fires, 30 fires on one input): its count over
    a window is how often the two signals were beyond their thresholds together."""
    from .. import INPUT, Population
    pairs = [(a, b) for a in range(2 * n_ch) for b in range(a + 1, 2 * n_ch)
             if a % n_ch != b % n_ch]
    w = np.zeros((n_tot, len(pairs)))
    for k, (a, b) in enumerate(pairs):
        w[n_ch + a, k] = w[n_ch + b, k] = 20.0
    return (Population("pair", len(pairs), tau_m=1e-3, tau_s=(1e-3,), v_th=1.0, t_ref=0.0),
            _sparse(INPUT, "pair", w))


def build_network(task: str, seed: int = 0, **kw):
    """The fixed random LIF reservoir of each task (its readout is trained; nothing else)."""
    from .. import INPUT, Network, Population, Projection
    rng = np.random.default_rng(seed)
    if task == "fsdd-digits":
        n_in, n = kw.get("n_in", 64), kw.get("n_hid", 256)
        w = rng.normal(0.0, 1.0, (n_in, n)) * (rng.random((n_in, n)) < 0.25)
        w = w * kw.get("w_scale", 0.6)
        return Network(n_inputs=n_in, dt=1e-3, name=task, populations=[
            Population("hid", n, tau_m=20e-3, tau_s=(10e-3,), v_th=1.0, t_ref=2e-3)],
            projections=[Projection(INPUT, "hid", w)])
    if task == "mitbih-beats":
        n_in, n = 2, kw.get("n_hid", 48)
        taus = kw.get("taus", (5e-3, 20e-3, 60e-3))
        gains = kw.get("gains", (4.0, 2.5, 2.0))
        per = n // len(taus)
        pops, projs = [], []
        for i, (tm, gain) in enumerate(zip(taus, gains, strict=True)):
            name = f"h{i}"
            pops.append(Population(name, per, tau_m=tm, tau_s=(5e-3,), v_th=1.0,
                                   t_ref=5e-3))
            # ON/OFF weights: mostly excitatory, some neurons inhibited by the other polarity
            w = rng.normal(0.6, 0.5, (n_in, per)) * gain * kw.get("w_scale", 1.0)
            projs.append(Projection(INPUT, name, w))
        return Network(n_inputs=n_in, dt=1.0 / 360, name=task, populations=pops,
                       projections=projs)
    if task == "myo-gestures":
        n_in, n = kw.get("n_in", 16), kw.get("n_hid", 128)
        w = rng.normal(0.3, 0.5, (n_in, n)) * (rng.random((n_in, n)) < 0.5)
        relay, sign = kw.get("relay", False), kw.get("sign", False)
        for opt, val in (("relay", relay), ("sign", sign)):
            if not isinstance(val, bool):
                raise DataError(f"myo-gestures: net option {opt} must be true or false, got "
                                f"{val!r}")
        # sign: the encoder is emg-lif-sign, n_in rate inputs then n_in ON and n_in OFF sign
        # inputs; the reservoir sees the rates only (the same weights as without)
        n_tot = 3 * n_in if sign else n_in
        w = np.vstack([w, np.zeros((n_tot - n_in, n))])
        pops = [Population("hid", n, tau_m=50e-3, tau_s=(20e-3,), v_th=1.0, t_ref=5e-3)]
        # sparse: a spike costs one event per nonzero weight (half the rate inputs' synapses
        # are zero, and the sign inputs have none into the reservoir)
        projs = [_sparse(INPUT, "hid", w * kw.get("w_scale", 1.0))]
        if relay:
            # one relay neuron per input (one-to-one weight 4, no refractory time, fast
            # membrane): after quantization it repeats its input's spikes exactly, one step
            # later (weights 3 and 4 do; 2 or 16 do not), so the readout also sees the
            # encoder's per-channel rates
            pops.append(Population("relay", n_tot, tau_m=5e-3, tau_s=(5e-3,), v_th=1.0,
                                   t_ref=0.0))
            projs.append(_sparse(INPUT, "relay", np.eye(n_tot) * 4.0))
        if sign:
            pop, proj = _coincidence(n_in, n_tot)
            pops.append(pop)
            projs.append(proj)
        return Network(n_inputs=n_tot, dt=5e-3, name=task, populations=pops,
                       projections=projs)
    raise DataError(f"unknown task {task!r}")


# ---------------------------------------------------------------------------- truth
def _match_beats(det: np.ndarray, ref: np.ndarray, tol: float) -> list[tuple[int, int]]:
    """One-to-one matching of detections to reference beats within ``tol`` samples (the
    closer detection wins), as :func:`spikeedge.sensors.qrs.score_beats`."""
    pairs, i, j = [], 0, 0
    while i < len(ref) and j < len(det):
        diff = det[j] - ref[i]
        if abs(diff) <= tol:
            if j + 1 < len(det) and abs(det[j + 1] - ref[i]) < abs(diff):
                j += 1
                continue
            pairs.append((j, i))
            i += 1
            j += 1
        elif diff < 0:
            j += 1
        else:
            i += 1
    return pairs


def truth_and_predictions(task: str, rec: Recording, result: dict, tolerance_s: float = 0.150):
    """(true class [k], index of the decision [k], extra counts) for one recording.

    ECG: reference beats (AAMI classes) matched one-to-one to detected beats; unmatched
    reference beats are counted in ``missed`` per class, unmatched detections in ``extra``."""
    dec = result["decisions"]
    if task == "fsdd-digits":
        return np.array([rec.label] * len(dec)), np.arange(len(dec)), {}
    if task == "myo-gestures":
        lab = result["labels"]
        rate = result["rate"]
        y, keep = [], []
        for k, d in enumerate(dec):
            a, b = int(round(d["t0"] * rate)), int(round(d["t1"] * rate))
            seg = lab[a:b]
            if len(seg) == 0:
                continue
            vals, cnt = np.unique(seg, return_counts=True)
            if cnt.max() < 0.8 * len(seg):      # window straddles a label change
                continue
            y.append(int(vals[np.argmax(cnt)]))
            keep.append(k)
        return np.array(y, np.int64), np.array(keep, np.int64), {}
    if task == "mitbih-beats":
        from ..sensors.readers import AAMI_CLASSES
        ann = result["annotations"]
        if ann is None:
            raise DataError(f"{rec.name}: no .atr beat annotations")
        mask = np.array([s in AAMI_CLASSES for s in ann["symbol"]], bool)
        # with max_seconds, score only beats the stream had time to decide
        mask &= np.asarray(ann["sample"]) < result["n_samples"] - int(1.5 * result["rate"])
        ref = np.asarray(ann["sample"])[mask]
        cls = np.array([AAMI.index(AAMI_CLASSES[s]) for s in np.asarray(ann["symbol"])[mask]],
                       np.int64)
        det = np.array([d["beat_sample"] for d in dec], np.int64)
        keep_d = det < result["n_samples"] - int(1.5 * result["rate"]) + tolerance_s * \
            result["rate"]
        dec_idx = np.flatnonzero(keep_d)
        det = det[keep_d]
        pairs = _match_beats(det, ref, tolerance_s * result["rate"])
        jd = np.array([p[0] for p in pairs], np.int64)
        ir = np.array([p[1] for p in pairs], np.int64)
        missed = np.ones(len(ref), bool)
        missed[ir] = False
        return cls[ir], dec_idx[jd], {"missed": np.bincount(cls[missed], minlength=len(AAMI)),
                             "extra": len(det) - len(pairs), "reference": len(ref)}
    raise DataError(f"unknown task {task!r}")
