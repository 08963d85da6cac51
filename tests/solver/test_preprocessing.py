"""Validation, unit masks, centring and costs (METHOD §1.2-1.3, A15)."""

import numpy as np
import pytest

from solver.costs import compute_cost, correlation_cost, sqeuclidean_cost
from solver.exceptions import PSMDInputError
from solver.preprocessing import prepare, unit_mask


def test_correlation_cost_is_one_minus_pearson(rng):
    X = rng.normal(size=(50, 4))
    Y = rng.normal(size=(50, 3))
    p = prepare(X, Y)
    expected = 1 - np.corrcoef(X.T, Y.T)[:4, 4:]
    np.testing.assert_allclose(p.cost, expected, atol=1e-12)


def test_sqeuclidean_direct_and_clamped(rng):
    X = rng.normal(size=(30, 5))
    Xc = X - X.mean(0)
    C = sqeuclidean_cost(Xc, Xc)
    ref = ((Xc[:, :, None] - Xc[:, None, :]) ** 2).sum(0)
    np.testing.assert_allclose(C, ref, atol=1e-10)
    assert (C >= 0).all() and np.isfinite(C).all()
    assert np.allclose(np.diag(C), 0, atol=1e-10)


def test_unknown_cost_is_refused(rng):
    with pytest.raises(PSMDInputError, match="cost='cosine' is not known"):
        compute_cost(rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), "cosine")


def test_degenerate_units_are_excluded_and_reported(rng):
    """A15: constant, all-zero and NaN columns are excluded, the cost is finite."""
    X = rng.normal(size=(40, 6))
    Y = rng.normal(size=(40, 5))
    X[:, 1] = 3.0  # constant, non-zero
    X[:, 4] = 0.0  # all zero
    Y[7, 2] = np.nan
    Y[3, 0] = np.inf
    with pytest.warns(UserWarning, match="excluded 2 unit"):
        p = prepare(X, Y)
    assert [e.index for e in p.excluded_x] == [1, 4]
    assert [e.index for e in p.excluded_y] == [0, 2]
    assert "constant" in p.excluded_x[0].reason
    assert "non-finite" in p.excluded_y[0].reason
    assert p.keep_x.tolist() == [0, 2, 3, 5] and p.keep_y.tolist() == [1, 3, 4]
    assert np.isfinite(p.cost).all() and p.cost.shape == (4, 3)
    assert (p.n_x_in, p.n_y_in) == (6, 5)


def test_relative_tolerance_for_constant_units(rng):
    X = rng.normal(size=(40, 3)) * 1e6
    X[:, 2] = 1.0 + 1e-9 * rng.normal(size=40)  # tiny next to the others
    keep, excluded = unit_mask(X)
    assert keep.tolist() == [True, True, False]


def test_centring(rng):
    X = rng.normal(size=(20, 3)) + 5
    p = prepare(X, X, warn=False)
    np.testing.assert_allclose(p.X.mean(0), 0, atol=1e-12)


@pytest.mark.parametrize(
    ("X", "Y", "match"),
    [
        (np.zeros((5, 2, 2)), np.ones((5, 2)), "3 dimension"),
        (np.arange(5.0), np.ones((5, 2)), "1 dimension"),
        (np.ones((5, 3)), np.ones((6, 3)), "X has 5 stimuli .* Y has 6"),
        (np.ones((1, 3)), np.ones((1, 3)), "at least 2 are required"),
        (
            np.array([[1, "a"], [2, "b"]], dtype=object),
            np.ones((2, 2)),
            "Python objects",
        ),
        (np.array([["a", "b"], ["c", "d"]]), np.ones((2, 2)), "numeric"),
    ],
    ids=["3d", "1d", "stimuli-differ", "one-stimulus", "object", "strings"],
)
def test_bad_inputs_have_one_line_messages(X, Y, match):
    with pytest.raises(PSMDInputError, match=match) as err:
        prepare(X, Y)
    assert "\n" not in str(err.value)


def test_too_few_usable_units(rng):
    X = np.c_[rng.normal(size=10), np.ones(10)]
    with pytest.raises(PSMDInputError, match="X has 1 usable unit"):
        prepare(X, rng.normal(size=(10, 3)), warn=False)


def test_correlation_cost_range(rng):
    X = rng.normal(size=(10, 30))
    C = correlation_cost(X - X.mean(0), X - X.mean(0))
    assert C.min() >= 0 and C.max() <= 2
