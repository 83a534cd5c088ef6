"""Bands: normalisation, feasibility messages and the exact Euclidean projection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.errors import OptimizationError
from engine.optimize import project_onto_bounds, resolve_bounds


@st.composite
def bands_and_point(draw):
    n = draw(st.integers(1, 12))
    lo = draw(arrays(float, n, elements=st.floats(0.0, 0.3)))
    width = draw(arrays(float, n, elements=st.floats(0.0, 0.8)))
    hi = lo + width
    if lo.sum() > 1 or hi.sum() < 1:
        lo = lo / max(lo.sum(), 1.0)
        hi = np.maximum(hi, lo)
        hi = hi + max(0.0, 1.0 - hi.sum()) / n
    v = draw(arrays(float, n, elements=st.floats(-2.0, 2.0)))
    return v, lo, hi


@settings(max_examples=200, deadline=None)
@given(bands_and_point())
def test_projection_is_feasible_and_nearest(case):
    v, lo, hi = case
    w = project_onto_bounds(v, lo, hi)
    assert abs(w.sum() - 1.0) <= 1e-12
    assert (w >= lo).all() and (w <= hi).all()
    # Optimality of a projection: (v - w)'(z - w) <= 0 for every feasible z; check on random feasible z.
    rng = np.random.default_rng(0)
    for _ in range(10):
        z = project_onto_bounds(rng.normal(size=len(v)), lo, hi)
        assert (v - w) @ (z - w) <= 1e-9
    # Projecting a feasible point leaves it where it is.
    np.testing.assert_allclose(project_onto_bounds(w, lo, hi), w, atol=1e-12)


def test_projection_shifts_equally_where_no_band_binds():
    w = project_onto_bounds(np.array([0.5, 0.3, 0.5]), np.zeros(3), np.ones(3))
    np.testing.assert_allclose(w, [0.4, 0.2, 0.4], atol=1e-14)


def test_resolve_bounds_broadcasts_scalars_and_accepts_pairs_of_arrays():
    lo, hi = resolve_bounds((0.0, 0.5), 3)
    np.testing.assert_array_equal(lo, [0, 0, 0])
    np.testing.assert_array_equal(hi, [0.5, 0.5, 0.5])
    lo, hi = resolve_bounds(np.array([[0.1, 0.5], [0.2, 0.6]]), 2)
    np.testing.assert_array_equal(lo, [0.1, 0.2])


def test_bands_of_the_desk_strategies_are_feasible_despite_decimal_rounding():
    # 0.15 + 0.10 + 0.05 * 3 + 0.05 is 0.45 in decimal but not exactly in binary.
    lo = [0.15, 0.10, 0.05, 0.05, 0.05, 0.05]
    hi = [0.35, 0.30, 0.25, 0.25, 0.25, 0.20]
    resolve_bounds((lo, hi), 6)


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((0.4, 1.0), r"minimum weights sum to 1\.2 > 1"),
        ((0.0, 0.3), r"maximum weights sum to 0\.9 < 1"),
        ((-0.1, 1.0), "negative, but portfolios are long-only"),
        (([0.0, 0.5, 0.0], [1.0, 0.4, 1.0]), "asset 1: lower bound 0.5 is above upper bound 0.4"),
        ((0.0, [1.0, 1.0]), "length 3"),
        ((0.0, float("nan")), "finite"),
    ],
)
def test_invalid_bands_are_refused_with_a_clear_message(bounds, message):
    with pytest.raises(OptimizationError, match=message):
        resolve_bounds(bounds, 3)
