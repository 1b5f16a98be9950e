"""The compiled kernel's hand-written loops against the golden reference, bit for bit.

The hypothesis property tests draw populations of at most 12 neurons, too small for the 16
lanes of the AVX-512 fused pass, and rarely meet its conditions (no membrane clamp needed);
these cases are built to run every variant of it (1 or 2 channels, with and without
refractoriness, both reset modes, population sizes around the vector widths) at every
instruction-set level this CPU has (``LifKernel.limit_isa``), and the additive STDP loops
(columns four at a time over blocks of rows, one-sided clips when the weights are known to lie
in [w_min, w_max], rows in int16 lanes and their int32 fallback) on their edge cases.
"""
import numpy as np
import pytest

from spikeedge import INPUT, STDP, Engine, Network, Population, Projection, quantize
from spikeedge.kernels import AVAILABLE
from spikeedge.nets import clamp_case
from spikeedge.program import PL_A_POST, PL_A_PRE, PL_W_MAX, PL_W_MIN

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")


def _levels():
    """The hand-written loop levels of this CPU (0 = plain C), from the kernel itself."""
    p = quantize(Network(1, [Population("a", 1)], [Projection(INPUT, "a", np.ones((1, 1)))]))
    return list(range(Engine(p, "compiled")._kernel.paths["isa"] + 1))


LEVELS = _levels()


def _check(program, inp, level, state=None):
    """Run the reference and the compiled kernel limited to ``level``; assert the same spikes,
    state and recorded currents. Returns (kernel paths, spikes)."""
    ref = Engine(program, "reference")
    fast = Engine(program, "compiled")
    assert fast._kernel.limit_isa(level) == level
    st_r = program.initial_state() if state is None else state.copy()
    st_c = program.initial_state() if state is None else state.copy()
    s_r, st_r, rec_r = ref.run_chunk(inp, st_r, record=True)
    s_c, st_c, rec_c = fast.run_chunk(inp, st_c, record=True)
    assert np.array_equal(s_r, s_c)
    assert st_r.equals(st_c)
    assert np.array_equal(rec_r["v"], rec_c["v"]) and np.array_equal(rec_r["i_syn"],
                                                                      rec_c["i_syn"])
    # the unrecorded call, in chunks: the weights' range is checked once per call of 16 or
    # more steps, not at all in shorter ones
    for chunk in (37, 5):
        st_u = program.initial_state() if state is None else state.copy()
        parts = [fast.run_chunk(inp[a:a + chunk], st_u)[0].copy()
                 for a in range(0, len(inp), chunk)]
        assert np.array_equal(np.concatenate(parts), s_r) and st_u.equals(st_r)
    return fast._kernel.paths, s_r


def _pop_net(n, K, t_ref, reset, seed):
    """One population of n neurons fed by 6 inputs and itself; bias 0 and time constants
    for which the membrane update needs no clamp."""
    rng = np.random.default_rng(seed)
    taus = (8e-3, 3e-3)[:K]
    pop = Population("p", n, tau_m=20e-3, tau_s=taus, v_th=1.0, v_reset=0.1, t_ref=t_ref,
                     reset=reset, v_init=rng.uniform(-0.5, 1.2, n))
    projs = [Projection(INPUT, "p", rng.normal(0.5, 0.6, (6, n)), channel=0),
             Projection("p", "p", rng.normal(0.0, 0.5, (n, n)), channel=K - 1)]
    prog = quantize(Network(6, [pop], projs, dt=1e-3))
    if K == 2:
        # two channels always give A_m + B_1 + B_2 > 2^24 here (as in cuba); lower B_2 in the
        # program so that the no-clamp variant with two channels runs too
        prog.beta[1] = max(0, 2**24 - int(prog.alpha_m[0]) - int(prog.beta[0, 0]))
    return prog


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("t_ref", [0.0, 2e-3])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_fused_pass_every_variant_and_level(level, K, t_ref, reset):
    inp = (np.random.default_rng(1).random((250, 6)) < 0.35).astype(np.uint8)
    total = 0
    for n in (5, 8, 15, 16, 17, 31, 40, 100):
        paths, spikes = _check(_pop_net(n, K, t_ref, reset, seed=n), inp, level)
        assert paths["specialised"] and paths["nosat"] == [True]
        total += int(spikes.sum())
    assert total > 500                          # spikes, resets and refractory periods happen


@pytest.mark.parametrize("level", LEVELS)
def test_fused_pass_with_refractory_counters_running_at_the_start(level):
    p = _pop_net(40, 1, 3e-3, "zero", seed=2)
    st = p.initial_state()
    st.ref[::3] = 2
    inp = (np.random.default_rng(3).random((120, 6)) < 0.4).astype(np.uint8)
    _check(p, inp, level, st)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("t_ref", [0.0, 2e-3])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("bias", [0.05, -0.3])
def test_fused_pass_with_bias_and_clamp(level, K, t_ref, reset, bias):
    clamped = 0
    for n in (5, 16, 17, 40):
        # membranes and currents at the int32 extremes: the first steps saturate
        p, inp, st = clamp_case(K, reset, t_ref, bias, n=n, seed=n, steps=120)
        lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
        paths, _ = _check(p, inp, level, st)
        assert paths["specialised"] and paths["nosat"] == [False]
        assert paths["vecok"] == [True]
        # the first step's membrane update before its clamp (docs/fixed_point.md, step 1)
        tot = st.v.astype(object) * int(p.alpha_m[0]) + int(p.bias[0]) * 2**24
        for c in range(K):
            tot = tot + st.i_syn[c].astype(object) * int(p.beta[c, 0])
        free = [(int(x) + 2**23) >> 24 for x in tot]
        clamped += sum(not lo <= x <= hi for x in free)
    assert clamped > 0                          # the clamp acted


def _stdp_net(n_in, n_post, seed, w_lo=0.0, w_hi=1.0, a_pre=0.05, a_post=-0.06,
              w_init=None, v_th=6.0):
    rng = np.random.default_rng(seed)
    w = rng.uniform(w_lo, w_hi, (n_in, n_post)) if w_init is None else w_init
    rule = STDP(tau_pre=20e-3, tau_post=20e-3, a_pre=a_pre, a_post=a_post, w_min=w_lo,
                w_max=w_hi)
    pop = Population("out", n_post, tau_m=10e-3, tau_s=(5e-3,), v_th=v_th,
                     v_reset=0.0)
    return quantize(Network(n_in, [pop], [Projection(INPUT, "out", w, stdp=rule)], dt=1e-3))


def _poisson(T, n, p, seed):
    return (np.random.default_rng(seed).random((T, n)) < p).astype(np.uint8)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_stdp_columns_many_post_spikes_and_row_blocks(level, sign):
    """300 presynaptic rows (two row blocks), up to 24 postsynaptic spikes in one step (six
    passes of four columns), weights inside [w_min, w_max] (one-sided clips: the upper one
    for a_pre > 0, the lower one for a_pre < 0)."""
    p = _stdp_net(300, 24, seed=4, v_th=15.0, a_pre=0.05 * sign, a_post=-0.06 * sign)
    _, spikes = _check(p, _poisson(200, 300, 0.05, 5), level)
    per_step = spikes.sum(1)
    assert per_step.max() >= 9 and (per_step == 1).any()


def test_stdp_rows_wider_than_a_block():
    """300 postsynaptic columns: the presynaptic rows' int16 pass works in two blocks."""
    p = _stdp_net(20, 300, seed=6, v_th=6.0)
    _, spikes = _check(p, _poisson(200, 20, 0.2, 7), LEVELS[-1])
    assert spikes.sum() > 100


def test_stdp_weights_outside_the_range_and_mixed_signs():
    """Initial weights outside [w_min, w_max] (full clips until the call ends), and traces of
    both signs (a_pre < 0 and a_post > 0 too)."""
    rng = np.random.default_rng(8)
    w0 = rng.uniform(-0.5, 1.5, (60, 30))
    for a_pre, a_post in ((0.05, -0.06), (-0.05, 0.06), (0.05, 0.06)):
        p = _stdp_net(60, 30, seed=9, w_init=w0, a_pre=a_pre, a_post=a_post, v_th=6.0)
        _, spikes = _check(p, _poisson(150, 60, 0.1, 10), LEVELS[-1])
        assert spikes.sum() > 50


def test_stdp_extreme_traces_and_bounds():
    """Trace steps of hundreds of thousands of weight units (the rows' int16 translation does
    not fit: int32 fallback; the column changes saturate the clip), bounds at the int16 limits,
    and w_min > w_max."""
    base = _stdp_net(40, 20, seed=11, v_th=6.0)
    inp = _poisson(120, 40, 0.15, 12)
    cases = [(None, None, 2**30, -2**30), (-32768, 32767, 2**29, -2**29),
             (-32768, 32767, 3000, -3000), (500, 100, 4000, -4000), (-40000, 40000, 256, -256)]
    for lo, hi, a_pre, a_post in cases:
        p = _stdp_net(40, 20, seed=11, v_th=6.0)
        if lo is not None:
            p.plast[0, PL_W_MIN], p.plast[0, PL_W_MAX] = lo, hi
        p.plast[0, PL_A_PRE], p.plast[0, PL_A_POST] = a_pre, a_post
        _check(p, inp, LEVELS[-1])
    assert base.plast.shape[0] == 1


def test_stdp_two_rules_on_one_projection():
    """Two additive rules with different bounds on the same weights: neither may assume that
    the weights stay inside its own bounds."""
    p = _stdp_net(50, 20, seed=13, v_th=6.0)
    row = p.plast[0].copy()
    n_pre, n_post = p.trace_sizes()
    from spikeedge.program import PL_XPOST_OFF, PL_XPRE_OFF
    row[PL_XPRE_OFF], row[PL_XPOST_OFF] = n_pre, n_post
    lo, hi = int(p.plast[0, PL_W_MIN]), int(p.plast[0, PL_W_MAX])
    row[PL_W_MIN], row[PL_W_MAX] = lo - 300, (lo + hi) // 2
    row[PL_A_PRE] = row[PL_A_PRE] * 3
    p.plast = np.vstack([p.plast, row])
    _, spikes = _check(p, _poisson(150, 50, 0.15, 14), LEVELS[-1])
    assert spikes.sum() > 50


@pytest.mark.parametrize("level", LEVELS)
def test_stdp_traces_of_both_signs_from_the_state(level):
    """Traces of both signs in one row block (set in the state): weights known to be in range
    still need the two-sided clip there."""
    p = _stdp_net(300, 24, seed=15, v_th=15.0)
    st = p.initial_state()
    rng = np.random.default_rng(16)
    st.x_pre[:] = rng.integers(-2**20, 2**20, st.x_pre.shape)
    st.x_post[:] = rng.integers(-2**20, 2**20, st.x_post.shape)
    _, spikes = _check(p, _poisson(60, 300, 0.05, 17), level, st)
    assert spikes.sum() > 20


# ---------------------------------------------------------------------------- dense rows
def _rows_net(n_post, n_in, shift, seed, extreme):
    """n_in inputs into one population of n_post through a dense projection whose int16
    weights are redrawn (at the extremes -32768 / 32767 when ``extreme``) with ``shift``, and a
    dense recurrent projection: the direct path's row sums (AVX-512: se_rows_avx512's
    interleaved pairs; other levels: lif_ops.h), with odd and even spike counts and widths
    around the vector lanes."""
    from spikeedge.program import PJ_KIND, PJ_N_POST, PJ_N_PRE, PJ_SHIFT, PJ_W_OFF
    rng = np.random.default_rng(seed)
    pop = Population("p", n_post, tau_m=20e-3, tau_s=5e-3, v_th=1.0, v_reset=0.0,
                     v_init=rng.uniform(-0.5, 0.9, n_post))
    net = Network(n_in, [pop], [Projection(INPUT, "p", rng.normal(0, 0.3, (n_in, n_post))),
                                Projection("p", "p", rng.normal(0, 0.2, (n_post, n_post)))],
                  dt=1e-3)
    prog = quantize(net)
    row = prog.proj[0]
    assert row[PJ_KIND] == 0 and row[PJ_N_POST] == n_post
    a, b = row[PJ_W_OFF], row[PJ_W_OFF] + row[PJ_N_PRE] * n_post
    if extreme:
        prog.weights[a:b] = rng.choice(np.array([-32768, 32767], np.int16), b - a)
    else:
        prog.weights[a:b] = rng.integers(-32768, 32768, b - a).astype(np.int16)
    prog.proj[0, PJ_SHIFT] = shift
    return prog


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n_post", [1, 15, 16, 17, 31, 32, 33, 100, 257])
def test_dense_row_sums_every_width_and_level(level, n_post):
    rng = np.random.default_rng(n_post)
    for seed, (n_in, shift, extreme, p) in enumerate([(9, 0, True, 0.5), (40, 3, False, 0.3),
                                                      (7, 12, False, 0.6)]):
        prog = _rows_net(n_post, n_in, shift, seed, extreme)
        inp = (rng.random((60, n_in)) < p).astype(np.uint8)
        inp[0] = 1                      # every row at once
        inp[1] = 0
        inp[2, :3] = 1                  # 3 spikes: one pair and an odd row
        inp[3, :] = 0
        inp[3, 0:2] = 1                 # exactly 2
        paths, _ = _check(prog, inp, level)
        assert paths["specialised"]
