"""Offline supervised training: surrogate-gradient backpropagation through time (PyTorch).

Trains the networks the runtime runs — layers of current-based LIF neurons, feed-forward and
optionally recurrent, dense or sparse (a fixed random mask) — with the neuron dynamics of the
fixed-point contract (``spikeedge.contract``), not an approximation of them:

* exact-integration decay from ``tau_m``, ``tau_s`` and ``dt`` (``v' = A_m v + B I + (1 - A_m)
  bias``, ``I' = A_s I``, the membrane using the currents from before this step's decay);
* strict threshold ``v > v_th``, reset to ``v_reset`` or by subtraction, refractory counter;
* one step of delay per layer: a spike at step t reaches the next layer's current at the end of
  step t and its membrane from step t+1 on.

The spike's derivative is replaced by a fast-sigmoid surrogate ``1 / (1 + k |v - v_th|)^2``
(``k = slope``, volts relative to the threshold distance). The reset is not differentiated.

Two forward modes share the code:

* ``quant=False``: float64 physical units, the map of :class:`spikeedge.float_twin.FloatTwin`;
* ``quant=True`` (quantization-aware training, QAT): the integer map of the contract, computed
  in float64 integer units (exact below 2**53): weights ``round(w S / 2**shift)`` clipped to
  ``weight_bits`` with the quantizer's shift, decay constants rounded to Q0.24, state rounded
  half up after each product and saturated to int32. Rounding uses a straight-through estimator
  (gradient 1). Run without gradients, this forward gives the fixed-point Engine's spikes bit
  for bit (``tests/test_sgtrain.py`` checks it), so QAT optimises the network that ships.

Readouts (``readout=``): ``"counts"`` — the last layer has one neuron per class and the logits
are its spike counts; ``"linear"`` — a trained affine map of the last layer's per-segment spike
rates (the ``utterance`` features of :mod:`spikeedge.apps.stream`, so the result exports as an
application model); ``"membrane"`` — the last layer never spikes (threshold far above its
input) and the logits are its mean membrane potential.

    from spikeedge.sgtrain import LayerSpec, SGNet, fit, evaluate_engine
    net = SGNet(n_in=64, layers=[LayerSpec(128, recurrent=True), LayerSpec(10)], dt=1e-3)
    fit(net, X_train, y_train, epochs=10)                  # float
    fit(net, X_train, y_train, epochs=2, quant=True)       # QAT fine-tuning
    prog = net.to_program()                                # spikeedge.quantize of the export
    acc_fixed = evaluate_engine(net, prog, X_test, y_test)["accuracy"]

``X`` is a list of uint8/bool spike arrays ``[T_i, n_in]`` (lengths may differ), ``y`` the class
of each. PyTorch is an optional dependency (the ``train`` extra).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import contract as C
from .errors import SpikeEdgeError
from .network import INPUT, Network, Population, Projection

__all__ = ["SGTrainError", "LayerSpec", "SGNet", "fit", "evaluate_torch", "evaluate_engine",
           "engine_logits", "utterance_edges", "torch_available", "READOUTS", "TRANSFORMS"]

READOUTS = ("counts", "linear", "membrane")
TRANSFORMS = ("none", "sqrt", "log1p")
#: threshold of a "membrane" readout layer, in multiples of the input it can receive: it never
#: spikes, so its membrane is a leaky integral of the layer below
MEMBRANE_VTH = 1e4
_SQRT_EPS = 1e-4


class SGTrainError(SpikeEdgeError, ValueError):
    """Surrogate-gradient training cannot run: PyTorch missing, bad options or data."""


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch():
    try:
        import torch
    except ImportError:
        raise SGTrainError("surrogate-gradient training needs PyTorch (install the 'train' "
                           "extra: pip install 'spikeedge[train]')") from None
    return torch


@dataclass
class LayerSpec:
    """One LIF layer: ``n`` neurons fed by the layer below (or the input), optionally by
    itself (``recurrent``). ``density`` < 1 keeps that fraction of the feed-forward weights
    (a fixed random mask; exported as a sparse CSR projection), ``rec_density`` the same for
    the recurrent weights. ``bias`` makes a per-neuron bias trainable."""

    n: int
    tau_m: float = 20e-3
    tau_s: float = 10e-3
    v_th: float = 1.0
    v_reset: float = 0.0
    reset: str = "zero"
    t_ref: float = 0.0
    recurrent: bool = False
    density: float = 1.0
    rec_density: float = 1.0
    bias: bool = False
    name: str = ""

    def check(self, where: str) -> None:
        if not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise SGTrainError(f"{where}: n must be a positive integer, got {self.n!r}")
        for k in ("tau_m", "tau_s"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise SGTrainError(f"{where}: {k} must be a positive finite number, got {v!r}")
        if self.reset not in C.RESET_MODES:
            raise SGTrainError(f"{where}: reset must be one of {C.RESET_MODES}")
        if not self.v_th > self.v_reset:
            raise SGTrainError(f"{where}: v_th must be above v_reset")
        for k in ("density", "rec_density"):
            v = getattr(self, k)
            if not 0 < v <= 1:
                raise SGTrainError(f"{where}: {k} must be in (0, 1], got {v!r}")
        if self.t_ref < 0:
            raise SGTrainError(f"{where}: t_ref must be >= 0")


def utterance_edges(active: np.ndarray, length: int, segments: int) -> np.ndarray:
    """Segment edges (absolute steps, ``segments + 1``) of :class:`UtteranceFeaturizer`: the
    span from the first to the last step where any readout neuron spiked, cut into equal parts
    (rounded like numpy). ``active``: bool [T] (any readout spike per step)."""
    idx = np.flatnonzero(active[:length])
    if not idx.size:
        return np.zeros(segments + 1, np.int64)
    a, b = int(idx[0]), int(idx[-1]) + 1
    return a + np.linspace(0, b - a, segments + 1).round().astype(np.int64)


def _transform_np(x, transform):
    if transform == "sqrt":
        return np.sqrt(x)
    if transform == "log1p":
        return np.log1p(x)
    return x


class SGNet:
    """A stack of LIF layers with trainable weights (torch float64 tensors), a readout, and
    the export to a :class:`~spikeedge.network.Network` / quantized Program."""

    def __init__(self, n_in: int, layers: list, dt: float = 1e-3, readout: str = "counts",
                 n_classes: int | None = None, segments: int = 1, transform: str = "none",
                 feature_scale: float = 10.0, slope: float = 10.0, weight_bits: int = 16,
                 seed: int = 0, gain: float = 1.0, name: str = "sgnet"):
        torch = _torch()
        if not isinstance(n_in, (int, np.integer)) or n_in < 1:
            raise SGTrainError(f"n_in must be a positive integer, got {n_in!r}")
        if not layers:
            raise SGTrainError("need at least one layer")
        if not (dt > 0 and math.isfinite(dt)):
            raise SGTrainError(f"dt must be positive, got {dt!r}")
        if readout not in READOUTS:
            raise SGTrainError(f"readout must be one of {READOUTS}, got {readout!r}")
        if transform not in TRANSFORMS:
            raise SGTrainError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
        if not 2 <= weight_bits <= C.W_BITS_MAX:
            raise SGTrainError(f"weight_bits must be in 2..{C.W_BITS_MAX}")
        self.layers = [LayerSpec(**vars(s)) if isinstance(s, LayerSpec) else LayerSpec(**s)
                       for s in layers]
        for i, s in enumerate(self.layers):
            s.check(f"layer {i}")
            s.name = s.name or f"l{i}"
        if len({s.name for s in self.layers}) != len(self.layers):
            raise SGTrainError("layer names must be unique")
        if readout == "linear":
            if not n_classes or n_classes < 2:
                raise SGTrainError("readout 'linear' needs n_classes >= 2")
        else:
            n_classes = self.layers[-1].n
            if n_classes < 2:
                raise SGTrainError(f"readout {readout!r}: the last layer is the output and needs "
                                   "one neuron per class (>= 2)")
        if readout == "membrane":
            last = self.layers[-1]
            last.v_th, last.v_reset, last.t_ref, last.recurrent = MEMBRANE_VTH, 0.0, 0.0, False
        self.n_in, self.dt, self.readout, self.n_classes = int(n_in), float(dt), readout, \
            int(n_classes)
        self.segments, self.transform = int(segments), transform
        self.feature_scale, self.slope, self.weight_bits = float(feature_scale), float(slope), \
            int(weight_bits)
        self.name = name
        g = torch.Generator().manual_seed(int(seed))
        rng = np.random.default_rng(seed)
        f64 = torch.float64
        self.W, self.M, self.R, self.RM, self.bias = [], [], [], [], []
        n_prev = self.n_in
        for s in self.layers:
            # fan-in scaled init: about one threshold of drive from the expected active inputs
            std = gain * s.v_th / math.sqrt(max(1.0, n_prev * s.density)) * 2.0
            if readout == "membrane" and s is self.layers[-1]:
                std = 1.0 / math.sqrt(n_prev)
            w = torch.randn(n_prev, s.n, generator=g, dtype=f64) * std
            m = torch.from_numpy((rng.random((n_prev, s.n)) < s.density).astype(np.float64))
            self.W.append((w * m).requires_grad_())
            self.M.append(m if s.density < 1 else None)
            if s.recurrent:
                r = torch.randn(s.n, s.n, generator=g, dtype=f64) * (0.5 * std)
                rm = torch.from_numpy((rng.random((s.n, s.n)) < s.rec_density)
                                      .astype(np.float64))
                self.R.append((r * rm).requires_grad_())
                self.RM.append(rm if s.rec_density < 1 else None)
            else:
                self.R.append(None)
                self.RM.append(None)
            self.bias.append(torch.zeros(s.n, dtype=f64, requires_grad=True) if s.bias else None)
            n_prev = s.n
        self.ro_w = self.ro_b = None
        if readout == "linear":
            nf = self.layers[-1].n * self.segments
            self.ro_w = (torch.randn(self.n_classes, nf, generator=g, dtype=f64)
                         / math.sqrt(nf)).requires_grad_()
            self.ro_b = torch.zeros(self.n_classes, dtype=f64, requires_grad=True)
        self.out_scale = 1.0     # counts readout: logits = counts * out_scale

    # ------------------------------------------------------------------ parameters
    def parameters(self) -> list:
        ps = list(self.W) + [r for r in self.R if r is not None] + \
            [b for b in self.bias if b is not None]
        if self.ro_w is not None:
            ps += [self.ro_w, self.ro_b]
        return ps

    def state_dict(self) -> dict:
        return {"W": [w.detach().clone() for w in self.W],
                "R": [None if r is None else r.detach().clone() for r in self.R],
                "bias": [None if b is None else b.detach().clone() for b in self.bias],
                "ro_w": None if self.ro_w is None else self.ro_w.detach().clone(),
                "ro_b": None if self.ro_b is None else self.ro_b.detach().clone()}

    def load_state_dict(self, sd: dict) -> None:
        torch = _torch()
        with torch.no_grad():
            for dst, src in zip(self.W + [r for r in self.R if r is not None] +
                                [b for b in self.bias if b is not None],
                                sd["W"] + [r for r in sd["R"] if r is not None] +
                                [b for b in sd["bias"] if b is not None], strict=True):
                dst.copy_(src)
            if self.ro_w is not None:
                self.ro_w.copy_(sd["ro_w"])
                self.ro_b.copy_(sd["ro_b"])

    def _masked(self, i):
        w = self.W[i] if self.M[i] is None else self.W[i] * self.M[i]
        r = self.R[i]
        if r is not None and self.RM[i] is not None:
            r = r * self.RM[i]
        return w, r

    # ------------------------------------------------------------------ constants
    def _consts(self, s: LayerSpec) -> dict:
        dt = self.dt
        am, a_s = math.exp(-dt / s.tau_m), math.exp(-dt / s.tau_s)
        S = float(2 ** C.V_FRAC_BITS) / max(abs(s.v_th), abs(s.v_reset))
        return {"am": am, "as": a_s, "b": C.coupling_exact(dt, s.tau_m, s.tau_s), "S": S,
                "Am": float(C.decay_constant(dt, s.tau_m)),
                "As": float(C.decay_constant(dt, s.tau_s)),
                "B": float(C.coupling_constant(dt, s.tau_m, s.tau_s)),
                "theta_q": float(C.sat32(int(np.rint(s.v_th * S)))),
                "reset_q": float(C.sat32(int(np.rint(s.v_reset * S)))),
                "ref": int(round(s.t_ref / dt))}

    def _quant_weights(self, w, S):
        """Fake-quantized weight in integer state units: round(w S / 2**shift) * 2**shift,
        clipped to weight_bits, the shift chosen as the quantizer does (straight-through)."""
        from .quantize import choose_shift
        qmax = 2 ** (self.weight_bits - 1) - 1
        wu = w * S
        max_abs = float(wu.detach().abs().max()) if wu.numel() else 0.0
        shift = choose_shift(max_abs, self.weight_bits)
        x = wu / 2.0 ** shift
        q = x + (x.round() - x).detach()         # numpy rint and torch round: ties to even
        q = q.clamp(-qmax, qmax)
        return q * 2.0 ** shift

    # ------------------------------------------------------------------ forward
    def forward(self, x, lengths=None, quant: bool = False, record: bool = False):
        """Run a batch ``x`` [B, T, n_in] (0/1) through the layers. Returns a dict with
        ``spikes`` (list per layer, [B, T, n]), ``v_last`` [B, T, n] (membrane readout or
        ``record``) and ``logits`` [B, n_classes]. ``quant=True`` is the fixed-point map."""
        torch = _torch()
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise SGTrainError(f"input must be [batch, steps, {self.n_in}], got "
                               f"{tuple(x.shape)}")
        B, T, _ = x.shape
        lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
        k = self.slope
        L = len(self.layers)
        consts = [self._consts(s) for s in self.layers]
        W, Rw, bias_t = [], [], []
        for i, c in enumerate(consts):
            w, r = self._masked(i)
            if quant:
                w = self._quant_weights(w, c["S"])
                r = None if r is None else self._quant_weights(r, c["S"])
            W.append(w)
            Rw.append(r)
            b = self.bias[i]
            if b is not None:
                b = b * (1.0 - c["am"])
                if quant:
                    b = b * c["S"]
                    b = b + (b.round() - b).detach()
            bias_t.append(b)
        hi, lo = float(C.INT32_MAX), float(C.INT32_MIN)
        # input drive of layer 0 for all steps at once; unbind (not indexing) so that the
        # backward pass does not build a full-size gradient per step
        ff0 = (x @ W[0]).unbind(1)
        v = [torch.zeros(B, s.n, dtype=torch.float64) for s in self.layers]
        cur = [torch.zeros(B, s.n, dtype=torch.float64) for s in self.layers]
        ref = [torch.zeros(B, s.n, dtype=torch.int64) if c["ref"] > 0 else None
               for s, c in zip(self.layers, consts, strict=True)]
        spikes = [[] for _ in range(L)]
        vrec = []
        keep_v = record or self.readout == "membrane"
        for t in range(T):
            st = []
            for i, (s, c) in enumerate(zip(self.layers, consts, strict=True)):
                if quant:
                    y = (v[i] * c["Am"] + cur[i] * c["B"]) / C.DECAY_ONE + 0.5
                    vn = y + (y.floor() - y).detach()
                    if bias_t[i] is not None:
                        vn = vn + bias_t[i]
                    vn = vn.clamp(lo, hi)
                    yi = cur[i] * c["As"] / C.DECAY_ONE + 0.5
                    cur[i] = yi + (yi.floor() - yi).detach()
                    th, rs = c["theta_q"], c["reset_q"]
                    scale = c["S"] * s.v_th
                else:
                    vn = v[i] * c["am"] + cur[i] * c["b"]
                    if bias_t[i] is not None:
                        vn = vn + bias_t[i]
                    cur[i] = cur[i] * c["as"]
                    th, rs = s.v_th, s.v_reset
                    scale = s.v_th
                if ref[i] is not None:
                    ref[i] = (ref[i] - 1).clamp(min=0)
                    active = (ref[i] == 0)
                    vn = torch.where(active, vn, v[i])
                z = (vn - th) / scale
                sg = z / (1.0 + k * z.abs())
                spk = (z > 0).to(torch.float64)
                if ref[i] is not None:
                    spk = spk * active
                    sg = sg * active
                s_out = spk + (sg - sg.detach())
                sd = spk.detach()
                if s.reset == "zero":
                    vn = vn * (1.0 - sd) + rs * sd
                else:
                    vn = vn - sd * (th - rs)
                    if quant:
                        vn = vn.clamp(lo, hi)
                if ref[i] is not None:
                    ref[i] = torch.where(sd > 0, torch.full_like(ref[i], c["ref"]), ref[i])
                v[i] = vn
                st.append(s_out)
                spikes[i].append(s_out)
            if keep_v:
                vrec.append(v[-1] / (consts[-1]["S"] if quant else 1.0))
            # propagation: this step's input and layer spikes, into the currents
            for i in range(L):
                add = ff0[t] if i == 0 else st[i - 1] @ W[i]
                if Rw[i] is not None:
                    add = add + st[i] @ Rw[i]
                c = cur[i] + add
                cur[i] = c.clamp(lo, hi) if quant else c
        spk = [torch.stack(s, 1) for s in spikes]
        out = {"spikes": spk}
        if keep_v:
            out["v_last"] = torch.stack(vrec, 1)
        valid = torch.as_tensor(np.arange(T)[None, :] < lengths[:, None], dtype=torch.float64)
        out["logits"] = self._logits(spk[-1], out.get("v_last"), valid, lengths)
        return out

    def features(self, s_last, valid, lengths):
        """Utterance features of the last layer (``readout='linear'``): [B, segments*n]."""
        torch = _torch()
        B, T, n = s_last.shape
        s = s_last * valid[:, :, None]
        act = (s.detach().sum(2) > 0).numpy()
        memb = np.zeros((B, T, self.segments))
        for j in range(B):
            e = utterance_edges(act[j], int(lengths[j]), self.segments)
            for q in range(self.segments):
                if e[q + 1] > e[q]:
                    memb[j, e[q]:e[q + 1], q] = 1.0 / (e[q + 1] - e[q])
        f = torch.einsum("btn,btk->bkn", s, torch.from_numpy(memb)).reshape(B, -1)
        if self.transform == "sqrt":
            f = torch.sqrt(f + _SQRT_EPS) - math.sqrt(_SQRT_EPS)
        elif self.transform == "log1p":
            f = torch.log1p(f)
        return f

    def _logits(self, s_last, v_last, valid, lengths):
        torch = _torch()
        if self.readout == "counts":
            return (s_last * valid[:, :, None]).sum(1) * self.out_scale
        if self.readout == "membrane":
            n = torch.as_tensor(np.maximum(lengths, 1), dtype=torch.float64)[:, None]
            return (v_last * valid[:, :, None]).sum(1) / n * self.feature_scale
        f = self.features(s_last, valid, lengths) * self.feature_scale
        return f @ self.ro_w.T + self.ro_b

    # ------------------------------------------------------------------ export
    def to_network(self) -> Network:
        """The trained network in physical units (biases, weights; sparse layers as CSR)."""
        pops, projs = [], []
        prev = INPUT
        for i, s in enumerate(self.layers):
            b = 0.0 if self.bias[i] is None else self.bias[i].detach().numpy().copy()
            pops.append(Population(s.name, int(s.n), tau_m=s.tau_m, tau_s=(s.tau_s,),
                                   v_th=s.v_th, v_reset=s.v_reset, reset=s.reset,
                                   t_ref=s.t_ref, bias=b))
            w, r = self._masked(i)
            projs.append(self._projection(prev, s.name, w, self.M[i], f"{prev}->{s.name}"))
            if r is not None:
                projs.append(self._projection(s.name, s.name, r, self.RM[i],
                                              f"{s.name}-rec"))
            prev = s.name
        return Network(n_inputs=self.n_in, populations=pops, projections=projs, dt=self.dt,
                       name=self.name).validate()

    @staticmethod
    def _projection(src, tgt, w, mask, name):
        w = w.detach().numpy().astype(np.float64)
        if mask is None:
            return Projection(src, tgt, w, name=name)
        m = mask.numpy() > 0
        rows, cols = np.nonzero(m)
        indptr = np.concatenate([[0], np.cumsum(m.sum(1))]).astype(np.int64)
        return Projection(src, tgt, w[rows, cols], indptr=indptr, indices=cols.astype(np.int64),
                          name=name)

    def to_program(self, **kw):
        """``spikeedge.quantize`` of :meth:`to_network` at this net's ``weight_bits``."""
        from .quantize import quantize
        kw.setdefault("weight_bits", self.weight_bits)
        return quantize(self.to_network(), **kw)

    def readout_arrays(self):
        """(readout_w [C, F] float32, readout_b [C]) in the convention of application model
        files (``scores = readout_w @ features + readout_b``), the feature scale folded in."""
        if self.readout != "linear":
            raise SGTrainError("only the 'linear' readout has readout weights")
        w = self.ro_w.detach().numpy() * self.feature_scale
        return w.astype(np.float32), self.ro_b.detach().numpy().astype(np.float32)


# ---------------------------------------------------------------------------- training
def _bar(progress: bool, **kw):
    """A tqdm progress bar on stderr, or None (progress off, or tqdm not installed)."""
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    import sys
    return tqdm(file=sys.stderr, leave=False, **kw)


def _check_data(net: SGNet, X, y):
    if len(X) != len(y) or len(X) == 0:
        raise SGTrainError(f"need as many labels as examples (> 0), got {len(X)} and {len(y)}")
    y = np.asarray(y, np.int64)
    if y.min() < 0 or y.max() >= net.n_classes:
        raise SGTrainError(f"labels must lie in 0..{net.n_classes - 1}")
    for i, x in enumerate(X):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != net.n_in or x.shape[0] < 1:
            raise SGTrainError(f"example {i}: spikes must be [steps >= 1, {net.n_in}], got "
                               f"{x.shape}")
    return y


def _batches(lengths, batch_size, rng, shuffle=True):
    """Batches of similar length (less padding): sort by length, cut, shuffle the batches."""
    order = np.argsort(lengths + (rng.random(len(lengths)) if shuffle else 0), kind="stable")
    bs = [order[a:a + batch_size] for a in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(bs)
    return bs


def _pad(X, idx, n_in):
    lens = np.array([len(X[i]) for i in idx])
    out = np.zeros((len(idx), int(lens.max()), n_in), np.float64)
    for j, i in enumerate(idx):
        out[j, :lens[j]] = X[i]
    return out, lens


def fit(net: SGNet, X, y, epochs: int = 10, batch_size: int = 32, lr: float = 2e-3,
        quant: bool = False, weight_decay: float = 0.0, rate_reg: float = 0.0,
        target_rate: float = 0.02, input_dropout: float = 0.0, augment=None, seed: int = 0,
        progress: bool = True, log=None, clip: float = 5.0) -> list:
    """Train with Adam and cross-entropy, BPTT through every step. ``quant=True`` trains the
    fixed-point forward (QAT). ``rate_reg`` penalises the squared distance of each hidden
    layer's mean rate (spikes per step) above ``target_rate``. ``input_dropout`` drops that
    fraction of input spikes (augmentation); ``augment(x, rng) -> x`` (optional) transforms
    each training example (spikes [T, n_in]) before batching. Returns per-epoch dicts (loss,
    train accuracy, wall seconds)."""
    torch = _torch()
    y = _check_data(net, X, y)
    if epochs < 0 or batch_size < 1 or not lr > 0:
        raise SGTrainError("epochs >= 0, batch_size >= 1 and lr > 0 are required")
    rng = np.random.default_rng(seed)
    lengths = np.array([len(x) for x in X])
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    hist = []
    bar = _bar(progress, total=epochs * math.ceil(len(X) / batch_size), unit="batch",
               desc="QAT" if quant else "train")
    for ep in range(epochs):
        t0 = time.time()
        tot = correct = 0
        loss_sum = 0.0
        for idx in _batches(lengths, batch_size, rng):
            if augment is not None:
                xa = {int(i): np.asarray(augment(np.asarray(X[i]), rng)) for i in idx}
                xb, lb = _pad(xa, idx, net.n_in)
            else:
                xb, lb = _pad(X, idx, net.n_in)
            if input_dropout > 0:
                xb = xb * (rng.random(xb.shape) >= input_dropout)
            out = net.forward(xb, lb, quant=quant)
            yb = torch.as_tensor(y[idx])
            loss = torch.nn.functional.cross_entropy(out["logits"], yb)
            if rate_reg > 0:
                valid = torch.as_tensor(np.arange(xb.shape[1])[None, :] < lb[:, None],
                                        dtype=torch.float64)
                for s in out["spikes"][:-1] if net.readout != "linear" else out["spikes"]:
                    r = (s * valid[:, :, None]).sum((0, 1)) / valid.sum()
                    loss = loss + rate_reg * torch.relu(r - target_rate).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            pred = out["logits"].detach().argmax(1).numpy()
            correct += int((pred == y[idx]).sum())
            tot += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(ep=ep + 1, loss=f"{loss_sum / tot:.3f}", acc=f"{correct / tot:.3f}")
        sched.step()
        h = {"epoch": ep + 1, "loss": loss_sum / tot, "train_accuracy": correct / tot,
             "wall_s": time.time() - t0, "quant": quant}
        hist.append(h)
        if log:
            log(f"{'QAT' if quant else 'float'} epoch {ep + 1}/{epochs}: loss {h['loss']:.4f} "
                f"train acc {h['train_accuracy']:.4f} ({h['wall_s']:.0f} s)")
    if bar is not None:
        bar.close()
    return hist


def evaluate_torch(net: SGNet, X, y, quant: bool = False, batch_size: int = 64) -> dict:
    """Accuracy of the torch forward (float or fixed-point map) without gradients."""
    torch = _torch()
    y = _check_data(net, X, y)
    lengths = np.array([len(x) for x in X])
    pred = np.zeros(len(X), np.int64)
    with torch.no_grad():
        for idx in _batches(lengths, batch_size, np.random.default_rng(0), shuffle=False):
            xb, lb = _pad(X, idx, net.n_in)
            pred[idx] = net.forward(xb, lb, quant=quant)["logits"].argmax(1).numpy()
    return {"accuracy": float(np.mean(pred == y)), "pred": pred, "n": len(y)}


def engine_logits(net: SGNet, program, x, engine=None) -> np.ndarray:
    """Logits of one example computed from the fixed-point Engine's run of ``program`` (the
    export of ``net``), with the readout of ``net`` applied in numpy exactly as the
    application featurizers do."""
    from .engine import Engine
    eng = engine or Engine(program)
    x = np.asarray(x).astype(np.uint8)
    rec = net.readout == "membrane"
    spikes, _, r = eng.run_chunk(x, eng.initial_state(), record=rec)
    sl = program.pop_slice(net.layers[-1].name)
    s = spikes[:, sl].astype(np.float64)
    if net.readout == "counts":
        return s.sum(0)
    if net.readout == "membrane":
        g = program.pop_names.index(net.layers[-1].name)
        return r["v"][:, sl].astype(np.float64).mean(0) / program.scales[g] * net.feature_scale
    e = utterance_edges(s.any(1), len(s), net.segments)
    f = np.zeros((net.segments, s.shape[1]))
    for q in range(net.segments):
        if e[q + 1] > e[q]:
            f[q] = s[e[q]:e[q + 1]].sum(0) / (e[q + 1] - e[q])
    w, b = net.readout_arrays()
    return w.astype(np.float64) @ _transform_np(f.ravel(), net.transform) + b


def evaluate_engine(net: SGNet, program, X, y, progress: bool = False) -> dict:
    """Fixed-point accuracy: every example run by the real Engine on ``program``."""
    from .engine import Engine
    y = _check_data(net, X, y)
    eng = Engine(program)
    bar = _bar(progress, total=len(X), unit="ex", desc="engine")
    pred = np.zeros(len(X), np.int64)
    for i in range(len(X)):
        pred[i] = int(np.argmax(engine_logits(net, program, X[i], eng)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {"accuracy": float(np.mean(pred == y)), "pred": pred, "n": len(y)}
