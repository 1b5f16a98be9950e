"""Spike-train and trace metrics on step rasters (NumPy only, no Brian2).

Rasters are uint8/bool [T, n] (step x neuron), ``dt`` in seconds. ``a`` is the engine (the
model under test), ``b`` the reference (Brian2's float twin).
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def first_mismatch(name: str, a: np.ndarray, b: np.ndarray, step0: int = 0):
    """None when equal, else {"variable", "step", "index", "engine", "brian2"} of the first
    differing element in step order (index is the neuron, or (channel, neuron) for i_syn)."""
    if a.shape != b.shape:
        return {"variable": name, "step": step0, "index": None,
                "engine": f"shape {a.shape}", "brian2": f"shape {b.shape}"}
    diff = a.astype(np.int64) != b.astype(np.int64)
    if not diff.any():
        return None
    flat = np.flatnonzero(diff.reshape(diff.shape[0], -1).any(axis=1))
    t = int(flat[0])
    where = np.argwhere(diff[t])[0]
    idx = tuple(int(x) for x in where)
    return {"variable": name, "step": step0 + t,
            "index": idx[0] if len(idx) == 1 else list(idx),
            "engine": int(a[t][idx]), "brian2": int(b[t][idx])}


def gamma_factor(a: np.ndarray, b: np.ndarray, window: int = 1):
    """Coincidence factor Gamma (Kistler et al. 1997) per neuron, with coincidences counted
    within +-``window`` steps: Gamma = (N_coinc - <N_coinc>) / (0.5 (N_a + N_b)) / (1 - p),
    where p = (2 window + 1) * N_b / T is the chance that a Poisson train at b's rate falls
    into one coincidence window, and <N_coinc> = p * N_a. A reference spike coincides when a
    spike of ``a`` is within the window (each ``a`` spike matched at most once, greedily in time
    order). Returns (gamma [n] with NaN where neither train has spikes, coincidences [n])."""
    T, n = a.shape
    gam = np.full(n, np.nan)
    coinc = np.zeros(n, np.int64)
    na, nb = a.sum(0, dtype=np.int64), b.sum(0, dtype=np.int64)
    for j in range(n):
        if na[j] + nb[j] == 0:
            continue
        ta, tb = np.flatnonzero(a[:, j]), np.flatnonzero(b[:, j])
        c = _match(ta, tb, window)
        coinc[j] = c
        p = min((2 * window + 1) * nb[j] / T, 0.999999)
        expected = p * na[j]
        gam[j] = (c - expected) / (0.5 * (na[j] + nb[j])) / (1.0 - p)
    return gam, coinc


def _match(ta: np.ndarray, tb: np.ndarray, window: int) -> int:
    """Greedy one-to-one matching of sorted spike steps within +-window."""
    i = j = c = 0
    while i < ta.size and j < tb.size:
        d = ta[i] - tb[j]
        if abs(d) <= window:
            c += 1
            i += 1
            j += 1
        elif d < 0:
            i += 1
        else:
            j += 1
    return c


def van_rossum(a: np.ndarray, b: np.ndarray, dt: float, tau: float = 10e-3) -> float:
    """Normalised van Rossum distance pooled over neurons: f = (a - b) filtered by
    exp(-t/tau) on the step grid, D^2 = sum f^2 / (E1 (N_a + N_b)) where E1 is the energy of one
    isolated spike. 0: identical trains; 1: no spike of one train near one of the other; two
    spikes one step apart contribute about 2 dt / tau each."""
    n_total = int(a.sum(dtype=np.int64) + b.sum(dtype=np.int64))
    if n_total == 0:
        return 0.0
    decay = np.exp(-dt / tau)
    # the discrete kernel's energy, so that one isolated spike contributes exactly 1
    unit = 1.0 / (1.0 - decay * decay)
    energy = 0.0
    for c in range(0, a.shape[1], 256):
        d = a[:, c:c + 256].astype(np.float64) - b[:, c:c + 256].astype(np.float64)
        if not d.any():
            continue
        f = lfilter([1.0], [1.0, -decay], d, axis=0)
        energy += float(np.sum(f * f))
    return float(np.sqrt(energy / unit / n_total))


def spike_time_differences(a: np.ndarray, b: np.ndarray, max_lag: int = 20) -> np.ndarray:
    """For every reference spike, the signed offset (steps) to the nearest engine spike of the
    same neuron within +-max_lag (others are left out)."""
    out = []
    for j in range(a.shape[1]):
        ta, tb = np.flatnonzero(a[:, j]), np.flatnonzero(b[:, j])
        if ta.size == 0 or tb.size == 0:
            continue
        pos = np.clip(np.searchsorted(ta, tb), 1, max(ta.size - 1, 1))
        cand = np.stack([ta[pos - 1], ta[np.minimum(pos, ta.size - 1)]])
        d = cand - tb[None, :]
        best = d[np.argmin(np.abs(d), axis=0), np.arange(tb.size)]
        out.append(best[np.abs(best) <= max_lag])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def isi_cv(raster: np.ndarray) -> float:
    """Mean coefficient of variation of inter-spike intervals over neurons with >= 3 spikes
    (NaN when none)."""
    cvs = []
    for j in range(raster.shape[1]):
        t = np.flatnonzero(raster[:, j])
        if t.size >= 3:
            isi = np.diff(t).astype(np.float64)
            cvs.append(isi.std() / isi.mean())
    return float(np.mean(cvs)) if cvs else float("nan")


def divergence(a: np.ndarray, b: np.ndarray, dt: float, window_s: float = 0.05,
               gamma_floor: float = 0.5) -> dict:
    """When the two rasters part: the first step where any spike differs, and the start of the
    first window (``window_s``) whose Gamma falls below ``gamma_floor`` (decorrelated)."""
    diff = np.flatnonzero((a != b).any(axis=1))
    first = int(diff[0]) if diff.size else None
    w = max(1, int(round(window_s / dt)))
    decor = None
    for s in range(0, a.shape[0] - w + 1, w):
        g, _ = gamma_factor(a[s:s + w], b[s:s + w])
        if np.isfinite(g).any() and np.nanmean(g) < gamma_floor:
            decor = s
            break
    return {"first_difference_s": None if first is None else first * dt,
            "decorrelated_s": None if decor is None else decor * dt,
            "window_s": w * dt, "gamma_floor": gamma_floor}


def population_metrics(a: np.ndarray, b: np.ndarray, dt: float, window: int = 1,
                       tau_vr: float = 10e-3) -> dict:
    """Counts, rates, Gamma, van Rossum, ISI CV for one population's rasters."""
    T, n = a.shape
    dur = T * dt
    na, nb = a.sum(0, dtype=np.int64), b.sum(0, dtype=np.int64)
    gam, coinc = gamma_factor(a, b, window)
    rate_a, rate_b = na.sum() / (n * dur), nb.sum() / (n * dur)
    return {
        "n": n, "spikes_engine": int(na.sum()), "spikes_brian2": int(nb.sum()),
        "count_agreement": float(1.0 - np.abs(na - nb).sum() / max(int(nb.sum()), 1)),
        "rate_engine_hz": float(rate_a), "rate_brian2_hz": float(rate_b),
        "rate_error": float(abs(rate_a - rate_b) / rate_b) if rate_b > 0 else
        (0.0 if rate_a == 0 else float("inf")),
        "gamma": float(np.nanmean(gam)) if np.isfinite(gam).any() else 1.0,
        "gamma_min": float(np.nanmin(gam)) if np.isfinite(gam).any() else 1.0,
        "coincidences": int(coinc.sum()),
        "van_rossum": van_rossum(a, b, dt, tau_vr),
        "isi_cv_engine": isi_cv(a), "isi_cv_brian2": isi_cv(b),
    }
