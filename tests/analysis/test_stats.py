"""Error bars of correlated series against an AR(1) process, whose answers are exact."""

import numpy as np
import pytest

from bornfield.analysis.stats import autocorr_time, block_average, block_bootstrap


def ar1(phi: float, n: int, seed: int = 0) -> np.ndarray:
    """x_t = φ x_{t−1} + ε_t, unit-variance ε, started in its stationary distribution."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(size=n)
    x = np.empty(n)
    x[0] = eps[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + eps[t]
    return x


def test_autocorrelation_time_of_ar1():
    """τ_int = (1 + φ)/(1 − φ): 19 at φ = 0.9, 1 for white noise; a table takes its worst column."""
    x = ar1(0.9, 200_000)
    assert autocorr_time(x) == pytest.approx(19.0, rel=0.1)
    white = np.random.default_rng(1).normal(size=len(x))
    assert autocorr_time(white) == pytest.approx(1.0, abs=0.1)
    assert autocorr_time(np.stack([white, x], axis=1)) == autocorr_time(x)
    assert autocorr_time(np.ones(100)) == 1.0


def test_block_errors_of_ar1_mean():
    """The standard error of the mean of n correlated samples is √(σ² τ / n), σ² = 1/(1 − φ²):
    block averaging and the block bootstrap find it; naive √(σ²/n) is √19 ≈ 4.4× too small."""
    n, phi = 200_000, 0.9
    x = ar1(phi, n, seed=2)
    exact = np.sqrt(19.0 / (1 - phi**2) / n)
    mean, sem, block = block_average(x)
    assert block >= 4 * 17  # 4 τ
    assert abs(mean) < 4 * exact
    assert sem == pytest.approx(exact, rel=0.15)
    _, boot = block_bootstrap(x, lambda s: s.mean(axis=0), block=block, n_resamples=300)
    assert boot == pytest.approx(exact, rel=0.2)
    assert x.std() / np.sqrt(n) < exact / 4


def test_too_few_blocks_give_no_error():
    x = ar1(0.9, 1000)
    _, sem, _ = block_average(x, block=300)  # 3 blocks
    _, boot = block_bootstrap(x, np.mean, block=300)
    assert np.isnan(sem) and np.isnan(boot)
