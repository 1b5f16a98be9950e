"""The spike-train metrics on hand-made rasters (NumPy only; no Brian2 needed)."""
import numpy as np
import pytest

from spikeedge.tools.validate import metrics


def raster(T, n, rate, seed):
    return (np.random.default_rng(seed).random((T, n)) < rate).astype(np.uint8)


def test_identical_trains_are_perfect():
    a = raster(5000, 8, 0.02, 1)
    g, c = metrics.gamma_factor(a, a)
    assert np.allclose(g, 1.0) and c.sum() == a.sum()
    assert metrics.van_rossum(a, a, 1e-3) == 0.0
    assert metrics.first_mismatch("spikes", a, a) is None
    m = metrics.population_metrics(a, a, 1e-3)
    assert m["rate_error"] == 0.0 and m["count_agreement"] == 1.0 and m["gamma"] == 1.0


def test_shift_by_one_step_is_a_coincidence_and_two_is_not():
    a = np.zeros((1000, 1), np.uint8)
    a[100::100] = 1
    one, two = np.roll(a, 1, axis=0), np.roll(a, 2, axis=0)
    assert metrics.gamma_factor(one, a)[0][0] == pytest.approx(1.0)
    assert metrics.gamma_factor(two, a)[0][0] < 0
    assert 0 < metrics.van_rossum(one, a, 1e-3) < metrics.van_rossum(two, a, 1e-3) < 1
    assert metrics.spike_time_differences(two, a).tolist() == [2] * int(a.sum() - 0)


def test_independent_poisson_trains_have_gamma_near_zero_and_distance_near_one():
    a, b = raster(200_000, 4, 0.01, 2), raster(200_000, 4, 0.01, 3)
    g, _ = metrics.gamma_factor(a, b)
    assert np.all(np.abs(g) < 0.05)
    # far-apart spikes: van Rossum distance near 1 (normalised), shrinking when trains overlap
    assert metrics.van_rossum(a, b, 1e-3, tau=1e-3) > 0.9


def test_first_mismatch_names_variable_step_and_index():
    a = np.zeros((5, 3, 4), np.int32)
    b = a.copy()
    b[3, 1, 2] = 7
    b[4, 0, 0] = 1
    m = metrics.first_mismatch("i_syn", a, b, step0=100)
    assert m == {"variable": "i_syn", "step": 103, "index": [1, 2], "engine": 0, "brian2": 7}


def test_divergence_and_isi_cv():
    a = raster(4000, 20, 0.02, 4)
    b = a.copy()
    b[2000:] = raster(2000, 20, 0.02, 5)
    d = metrics.divergence(a, b, 1e-3)
    assert d["first_difference_s"] == pytest.approx(2.0, abs=0.01)
    assert d["decorrelated_s"] == pytest.approx(2.0, abs=0.06)
    regular = np.zeros((1000, 1), np.uint8)
    regular[::10] = 1
    assert metrics.isi_cv(regular) == pytest.approx(0.0)
    assert metrics.isi_cv(raster(100_000, 3, 0.01, 6)) == pytest.approx(1.0, abs=0.1)
