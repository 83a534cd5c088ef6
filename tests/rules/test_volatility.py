"""The rolling volatility equals the standard deviation of the last N returns, and stays exact."""

from __future__ import annotations

import numpy as np
import pytest

from engine.rules.volatility import Volatility


def test_sigma_matches_numpy_over_each_window_and_after_resyncs() -> None:
    rng = np.random.default_rng(3)
    mids = 1.1 * np.cumprod(1 + rng.normal(0, 1e-4, 5000))
    vol = Volatility((5, 100))
    assert vol.sigma() == {}
    for k, mid in enumerate(mids):
        vol.update(mid, mid)
        if k in (5, 99, 100, 2500, 4999):
            r = mids[1 : k + 1] / mids[:k] - 1
            got = vol.sigma()
            assert got[5] == pytest.approx(r[-5:].std(), rel=1e-9)
            if k >= 100:
                assert got[100] == pytest.approx(r[-100:].std(), rel=1e-9)
            else:
                assert 100 not in got


def test_arrays_give_the_windows_with_enough_history_and_their_sigma() -> None:
    vol = Volatility((3, 6))
    for mid in (1.0, 1.01, 1.0, 1.02, 0.99):
        vol.update(mid, mid)
    windows, values = vol.arrays()
    assert windows.tolist() == [3] and values.tolist() == [vol.sigma()[3]]
    vol.update(1.0, 1.0)
    vol.update(1.01, 1.01)
    windows, values = vol.arrays()
    assert windows.tolist() == [3, 6] and values.tolist() == [vol.sigma()[3], vol.sigma()[6]]
