"""``--report DIR``: PNG figures and an index.html that links them (readable without Python).

raster.png            engine vs Brian2 float twin spikes over the first second
membrane.png          membrane traces of a few recorded neurons, both twins, with threshold
spike_time_diff.png   histogram of (engine - Brian2) spike-time offsets, in steps
stdp_weight_error.png RMS and max weight error / w range over time (open and closed loop)
stdp_window.png       the STDP window: engine, Brian2 and analytic weight change per lag
stdp_dt.png           weight error against the exact event-driven rule as dt shrinks
"""
from __future__ import annotations

import html
import json
import pathlib

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_report(out_dir, doc: dict, traces: dict | None, prog) -> pathlib.Path:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    figs = []
    dt = doc["dt"]
    if traces and traces.get("spikes_brian2") is not None:
        figs.append(_raster(plt, out, traces, prog, dt))
        figs.append(_membrane(plt, out, traces, prog, dt))
    ft = doc.get("float_twin")
    if ft:
        figs.append(_hist(plt, out, ft["spike_time_diff_steps"]))
    st = doc.get("stdp")
    if st:
        figs.append(_weights(plt, out, st))
        if "window" in st:
            figs.append(_window(plt, out, st["window"]))
            figs.append(_dt(plt, out, st["dt_convergence"]))
    index = out / "index.html"
    index.write_text(_html(doc, [f for f in figs if f]), encoding="utf-8")
    return index


def _raster(plt, out, tr, prog, dt):
    T = tr["spikes_engine"].shape[0]
    n = min(T, int(round(1.0 / dt)))
    a, b = tr["spikes_engine"][:n], tr["spikes_brian2"][:n]
    fig, ax = plt.subplots(figsize=(10, 5))
    N = a.shape[1]
    stride = max(1, N // 300)
    cols = np.arange(0, N, stride)
    tb, ib = np.nonzero(b[:, cols])
    ta, ia = np.nonzero(a[:, cols])
    ax.scatter(tb * dt, cols[ib], s=14, facecolors="none", edgecolors="tab:blue", lw=0.6,
               label="Brian2 float twin")
    ax.scatter(ta * dt, cols[ia], s=2, c="tab:red", label="engine (fixed point)")
    for g in prog.pop_start[1:]:
        ax.axhline(g - 0.5, color="0.7", lw=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("neuron" + (f" (every {stride}th)" if stride > 1 else ""))
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Spike rasters, first second")
    return _save(plt, fig, out, "raster.png", "Raster overlay: engine (dots) inside Brian2's "
                 "float twin (circles).")


def _membrane(plt, out, tr, prog, dt):
    names = list(tr["v_engine"])
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.6 * len(names)), squeeze=False)
    T = tr["spikes_engine"].shape[0]
    n = min(T, int(round(0.3 / dt)))
    t = np.arange(n) * dt
    for ax, name in zip(axes[:, 0], names, strict=True):
        pop = prog.network.population(name)
        ve, vb = tr["v_engine"][name], tr["v_brian2"][name]
        for c, k in enumerate(range(min(3, ve.shape[1]))):
            ax.plot(t, vb[:n, k], color=f"C{c}", lw=2.5, alpha=0.35)
            ax.plot(t, ve[:n, k], color=f"C{c}", lw=0.8,
                    label=f"neuron {int(tr['rec_idx'][name][k])}")
        ax.axhline(pop.v_th - pop.v_rest, color="k", ls=":", lw=0.8)
        ax.set_ylabel(f"{name}: v - v_rest")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle("Membrane: engine (thin) over Brian2 float twin (thick); dotted: threshold")
    return _save(plt, fig, out, "membrane.png", "Membrane traces, first 300 ms.")


def _hist(plt, out, h):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(h["offsets"], h["counts"], width=0.9)
    ax.set_yscale("symlog")
    ax.set_xlabel("engine spike - nearest Brian2 float spike (steps)")
    ax.set_ylabel("spikes")
    ax.set_title("Spike-time differences")
    return _save(plt, fig, out, "spike_time_diff.png", "Histogram of spike-time offsets "
                 "(nearest engine spike of the same neuron within 20 steps).")


def _weights(plt, out, st):
    fig, ax = plt.subplots(figsize=(8, 4))
    for pname, r in st["open_loop"].items():
        t = [c["t_s"] for c in r["checkpoints"]]
        ax.plot(t, [c["rms"] for c in r["checkpoints"]], "o-", label=f"{pname} open loop RMS")
        ax.plot(t, [c["max"] for c in r["checkpoints"]], "s--", label=f"{pname} open loop max")
        ax.plot(t, [c["mean"] for c in r["checkpoints"]], "^:", label=f"{pname} open loop mean")
    for pname, r in st.get("closed_loop", {}).items():
        t = [c["t_s"] for c in r["checkpoints"]]
        ax.plot(t, [c["rms"] for c in r["checkpoints"]], "x-", label=f"{pname} closed loop RMS")
    ax.axhline(0.01, color="k", ls=":", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("weight error / (w_max - w_min)")
    ax.legend(fontsize=7)
    ax.set_title("STDP weight error against Brian2")
    return _save(plt, fig, out, "stdp_weight_error.png", "Weight error curves (dotted: 1 %).")


def _window(plt, out, w):
    fig, ax = plt.subplots(figsize=(7, 4))
    lags = np.asarray(w["lags_s"]) * 1e3
    ax.plot(lags, w["dw_analytic"], "k-", lw=0.8, label="analytic")
    if w["dw_brian2"] is not None:
        ax.plot(lags, w["dw_brian2"], "o", mfc="none", ms=8, label="Brian2")
    ax.plot(lags, w["dw_engine"], ".", c="tab:red", label="engine")
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_xlabel("t_post - t_pre (ms)")
    ax.set_ylabel("weight change")
    ax.legend(fontsize=8)
    ax.set_title(f"STDP window (sign test {'passed' if w['sign_ok'] else 'FAILED'})")
    return _save(plt, fig, out, "stdp_window.png", "STDP window, one pair per synapse.")


def _dt(plt, out, c):
    fig, ax = plt.subplots(figsize=(6, 4))
    dts = [r["dt"] * 1e3 for r in c["rows"]]
    for key, lab in (("rms_engine", "engine vs exact"), ("rms_float_dt", "float, same grid, "
                     "vs exact"), ("rms_fixed_point", "engine vs float on the same grid")):
        ax.loglog(dts, [max(r[key], 1e-9) for r in c["rows"]], "o-", label=lab)
    ax.set_xlabel("dt (ms)")
    ax.set_ylabel("RMS weight error / w range")
    ax.legend(fontsize=8)
    ax.set_title(f"STDP dt convergence ({'passed' if c['passed'] else 'FAILED'})")
    return _save(plt, fig, out, "stdp_dt.png", "Convergence as dt shrinks.")


def _save(plt, fig, out, name, caption):
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name, caption


def _html(doc, figs) -> str:
    e = html.escape
    rows = "".join(
        f"<tr class={'pass' if c['passed'] else 'fail'}><td>{'PASS' if c['passed'] else 'FAIL'}"
        f"</td><td>{e(c['name'])}</td><td>{e(str(c['value']))}</td><td>{e(c['op'])} "
        f"{e(str(c['limit']))}</td></tr>" for c in doc["checks"])
    pops = ""
    ft = doc.get("float_twin")
    if ft:
        keys = ["n", "spikes_engine", "spikes_brian2", "rate_error", "gamma", "van_rossum",
                "membrane_rmse", "isi_cv_engine", "isi_cv_brian2"]
        pops = "<h2>Float twin per population</h2><table><tr><th>population</th>" + "".join(
            f"<th>{k}</th>" for k in keys) + "</tr>" + "".join(
            f"<tr><td>{e(n)}</td>" + "".join(f"<td>{_fmt(m[k])}</td>" for k in keys) + "</tr>"
            for n, m in ft["populations"].items()) + "</table>"
    imgs = "".join(f"<figure><img src='{e(n)}' alt='{e(n)}'><figcaption>{e(c)}</figcaption>"
                   f"</figure>" for n, c in figs)
    verdict = "PASSED" if doc["passed"] else "FAILED"
    summary = {k: doc[k] for k in ("net", "duration_s", "dt", "steps", "engine_backend",
                                   "brian2_version", "brian2_target", "recurrent", "plastic")}
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>spikeedge validate: {e(str(doc['net']))}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
td,th{{border:1px solid #ccc;padding:2px 6px}}table{{border-collapse:collapse}}
.pass td:first-child{{color:green}}.fail td:first-child{{color:#b00;font-weight:bold}}
img{{max-width:100%}}</style></head><body>
<h1>spikeedge validate: {e(str(doc['net']))} — {verdict}</h1>
<pre>{e(json.dumps(summary, indent=1))}</pre>
<h2>Checks</h2><table><tr><th></th><th>check</th><th>value</th><th>limit</th></tr>{rows}</table>
{pops}<h2>Figures</h2>{imgs}
<p>Wall time (s): {e(json.dumps({k: round(v, 2) for k, v in doc['wall_s'].items()}))}</p>
<p>Method and tolerances: docs/validation.md in the spikeedge source.</p></body></html>
"""


def _fmt(v):
    return f"{v:.5g}" if isinstance(v, float) else str(v)
