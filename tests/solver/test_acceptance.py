"""METHOD.md acceptance tests A5-A9 on the exact solver.

A1-A4, A10, A13 and A18 live in test_exact.py; A11, A12, A14, A16 and A17 in
test_selection.py and test_baselines.py; A15 in test_preprocessing.py.
"""

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from solver.exact import exact_path, solve_exact
from solver.preprocessing import prepare

MASSES = [0.1, 0.3, 0.5, 0.8, 1.0]


def _lam(X, Y, s, cost="correlation"):
    return solve_exact(prepare(X, Y, cost, warn=False).cost, s).transport_cost


@pytest.fixture
def pair(rng):
    X = rng.normal(size=(200, 25))
    Y = np.c_[X[:, :15] + 0.5 * rng.normal(size=(200, 15)), rng.normal(size=(200, 12))]
    return X, Y


@pytest.mark.parametrize("s", MASSES)
def test_a5_identity(rng, s):
    X = rng.normal(size=(100, 20))
    r = solve_exact(prepare(X, X).cost, s)
    assert r.raw_score == pytest.approx(1.0, abs=1e-9)
    assert r.normalized_score == pytest.approx(1.0, abs=1e-9)
    C = prepare(X, X, "sqeuclidean").cost
    assert solve_exact(C, s).transport_cost <= 1e-9 * C.mean()


def test_a6_permutation_invariance(pair, rng):
    X, Y = pair
    perm = rng.permutation(Y.shape[1])
    C = prepare(X, Y).cost
    Cp = prepare(X, Y[:, perm]).cost
    for s in MASSES:
        r, rp = solve_exact(C, s), solve_exact(Cp, s)
        assert rp.transport_cost == pytest.approx(r.transport_cost, abs=1e-10)
        # Continuous random data have no LP ties: the plan follows the columns.
        np.testing.assert_allclose(rp.plan, r.plan[:, perm], atol=1e-10)


def test_a7_symmetry(pair):
    X, Y = pair
    for s in MASSES:
        assert _lam(X, Y, s) == pytest.approx(_lam(Y, X, s), abs=1e-10)
    px, py = exact_path(prepare(X, Y).cost), exact_path(prepare(Y, X).cost)
    np.testing.assert_allclose(px.entry_mass_x, py.entry_mass_y, atol=1e-12)


def test_a8_correlation_invariances(pair, rng):
    X, Y = pair
    scaled = Y * rng.uniform(0.1, 10, size=Y.shape[1]) + rng.normal(size=Y.shape[1])
    flipped = Y.copy()
    flipped[:, 0] *= -1
    for s in MASSES:
        base = _lam(X, Y, s)
        assert _lam(X, scaled, s) == pytest.approx(base, abs=1e-10)
    assert abs(_lam(X, flipped, 1.0) - _lam(X, Y, 1.0)) > 1e-4


def test_a9_rotation_sensitivity(rng):
    """Sparse axis-aligned units lose alignment under a Haar rotation."""
    n_stim, n = 500, 40
    X = rng.normal(size=(n_stim, n)) * (rng.random((n_stim, n)) < 0.1)
    Y = X + 0.1 * rng.normal(size=(n_stim, n))
    C = prepare(X, Y).cost
    for seed in range(5):
        Q = special_ortho_group.rvs(n, random_state=seed)
        Cq = prepare(X, Y @ Q).cost
        for s in (0.3, 0.66, 1.0):
            native = solve_exact(C, s).normalized_score
            rotated = solve_exact(Cq, s).normalized_score
            assert native > rotated, (seed, s, native, rotated)
