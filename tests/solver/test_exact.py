"""Exact partial OT: the whole path and single masses (METHOD §1.4-1.9, A1-A4,
A10, A13, A18), checked against POT, scipy and brute-force properties.

The numba kernel compiles on first use (tens of seconds on a cold cache);
later runs load it from disk.
"""

import numpy as np
import ot
import pytest
from scipy.optimize import linear_sum_assignment

from solver import exact, synthetic
from solver.exact import exact_path, solve_exact
from solver.exceptions import PSMDConvergenceWarning, PSMDInputError
from solver.preprocessing import prepare

SHAPES = [(30, 45), (60, 90), (17, 23), (40, 40)]
SHAPE_IDS = [f"{n_x}x{n_y}" for n_x, n_y in SHAPES]


def random_cost(rng, n_x, n_y, n_stimuli=200):
    """1 - Pearson r between independent Gaussian units."""
    X = rng.normal(size=(n_stimuli, n_x))
    Y = rng.normal(size=(n_stimuli, n_y))
    return prepare(X, Y, warn=False).cost


def planted_cost(seed=0):
    """Cost of the paper's spurious-neuron pair, scaled down (40+8 vs 40+20)."""
    pair = synthetic.planted_pair(40, 8, 20, n_stimuli=300, n_factors=20, seed=seed)
    return prepare(pair.X, pair.Y, warn=False).cost


def uniform(n):
    return np.full(n, 1.0 / n)


def pot_value(cost, mass):
    """POT's exact partial-OT value with uniform weights."""
    n_x, n_y = cost.shape
    if mass >= 1 - 1e-12:
        return ot.emd2(uniform(n_x), uniform(n_y), cost)
    return ot.partial.partial_wasserstein2(uniform(n_x), uniform(n_y), cost, m=mass)


def assert_feasible(plan, mass, a, b, tol=1e-12):
    assert plan.min() >= -tol
    assert abs(plan.sum() - mass) <= tol
    assert (plan.sum(axis=1) <= a + tol).all()
    assert (plan.sum(axis=0) <= b + tol).all()


@pytest.mark.parametrize(("n_x", "n_y"), SHAPES, ids=SHAPE_IDS)
def test_path_equals_pot_at_every_breakpoint(rng, n_x, n_y):
    cost = random_cost(rng, n_x, n_y)
    path = exact_path(cost)
    assert path.masses[0] == 0 and path.masses[-1] == 1
    for mass, value in zip(path.masses[1:], path.costs[1:], strict=True):
        ref = pot_value(cost, mass)
        assert abs(value - ref) <= 1e-9 * ref


def test_more_augmentations_than_units_unequal_sizes():
    """Regression: the log of paths grew its index array too late.

    With unequal sizes a path can need more than n_x + n_y augmentations;
    the simulated voxels (260 x 210) take about 1000, and the kernel used to
    write past the end of its path index (heap corruption, a crash of the
    app's background job). The path must equal POT wherever it is asked.
    """
    from sample_data import load

    view = load("fmri-sim").views["V1-like"]
    cost = np.ascontiguousarray(prepare(view.X, view.Y).cost[:260, :210])
    path = exact_path(cost)
    assert path.n_augmentations > sum(cost.shape) + 16
    for mass in (0.2, 0.55, 0.9, 1.0):
        ref = pot_value(cost, mass)
        assert abs(path.cost_at(mass) - ref) <= 1e-9 * ref
    assert_feasible(path.plan_at(0.9), 0.9, uniform(260), uniform(210))


@pytest.mark.parametrize(("n_x", "n_y"), SHAPES, ids=SHAPE_IDS)
def test_single_mass_equals_pot(rng, n_x, n_y):
    """A18: the value equals partial_wasserstein2 and partial_wasserstein's plan."""
    cost = random_cost(rng, n_x, n_y)
    a, b = uniform(n_x), uniform(n_y)
    for mass in (0.05, 0.3, 0.5, 0.77, 0.999):
        res = solve_exact(cost, mass)
        plan_pot = ot.partial.partial_wasserstein(a, b, cost, m=mass)
        value_pot = ot.partial.partial_wasserstein2(a, b, cost, m=mass)
        assert abs(res.transport_cost - value_pot) <= 1e-9 * value_pot
        assert abs(res.transport_cost - np.sum(plan_pot * cost)) <= 1e-9 * value_pot
        assert_feasible(res.plan, mass, a, b)


def test_general_weights_equal_pot(rng):
    cost = random_cost(rng, 25, 35)
    a = rng.dirichlet(np.ones(25))
    b = 1.3 * rng.dirichlet(np.ones(35))
    for mass in (0.1, 0.6, 0.999999):
        res = solve_exact(cost, mass, a=a, b=b)
        ref = ot.partial.partial_wasserstein2(a, b, cost, m=mass)
        assert abs(res.transport_cost - ref) <= 1e-9 * ref
        assert_feasible(res.plan, mass, a, b)
        assert res.converged
    # The whole of the smaller side: every unit of X is fully sent.
    res = solve_exact(cost, 1.0, a=a, b=b)
    np.testing.assert_allclose(res.plan.sum(axis=1), a, atol=1e-12)


def test_equal_scaled_uniform_weights_use_the_path_kernel(rng):
    cost = random_cost(rng, 12, 18)
    res = solve_exact(cost, 0.2, a=np.full(12, 0.5 / 12), b=np.full(18, 0.5 / 18))
    ref = ot.partial.partial_wasserstein2(uniform(12), uniform(18), cost, m=0.4)
    assert res.n_iter > 0
    assert abs(res.transport_cost - 0.5 * ref) <= 1e-9 * ref
    assert_feasible(res.plan, 0.2, np.full(12, 0.5 / 12), np.full(18, 0.5 / 18))


@pytest.mark.parametrize(("n_x", "n_y"), SHAPES, ids=SHAPE_IDS)
def test_plan_at_is_feasible_and_costs_cost_at(rng, n_x, n_y):
    cost = random_cost(rng, n_x, n_y)
    path = exact_path(cost)
    a, b = uniform(n_x), uniform(n_y)
    for mass in np.r_[np.linspace(0, 1, 11), 0.123456789, path.masses[3]]:
        plan = path.plan_at(mass)
        assert_feasible(plan, mass, a, b)
        assert abs(np.sum(plan * cost) - path.cost_at(mass)) <= 1e-12


def test_a1_full_mass_is_balanced_ot(rng):
    """A1: s = 1 equals ot.emd, with exact marginals (M=600, 60 vs 90 units)."""
    cost = random_cost(rng, 60, 90, n_stimuli=600)
    a, b = uniform(60), uniform(90)
    ref = ot.emd2(a, b, cost)
    for plan in (solve_exact(cost, 1.0).plan, exact_path(cost).plan_at(1.0)):
        assert abs(np.sum(plan * cost) - ref) <= 1e-10
        np.testing.assert_allclose(plan.sum(axis=1), a, rtol=0, atol=1e-12)
        np.testing.assert_allclose(plan.sum(axis=0), b, rtol=0, atol=1e-12)


def test_a2_equal_sizes_reduce_to_assignment(rng):
    cost = random_cost(rng, 50, 50)
    rows, cols = linear_sum_assignment(cost)
    ref = cost[rows, cols].sum() / 50
    assert abs(exact_path(cost).cost_at(1.0) - ref) <= 1e-10
    assert abs(solve_exact(cost, 1.0).transport_cost - ref) <= 1e-10
    # A vertex plan: a permutation matrix divided by N.
    plan = solve_exact(cost, 1.0).plan
    np.testing.assert_allclose(np.sort(plan.ravel())[-50:], 1 / 50, atol=1e-15)


def test_a3_zero_mass_gives_zero_plan(rng):
    cost = random_cost(rng, 10, 14)
    for res in (solve_exact(cost, 0.0), solve_exact(cost, 0.0, a=np.arange(1, 11.0))):
        assert res.plan.shape == (10, 14) and not res.plan.any()
    assert not exact_path(cost).plan_at(0.0).any()


@pytest.mark.parametrize("n", [2, 3, 7, 100, 120, 594, 2000])
def test_a3_full_mass_never_raises(n):
    """POT refuses m=1 for sizes such as 100, 120, 594; we do not."""
    cost = np.random.default_rng(n).random((n, n))
    res = solve_exact(cost, 1.0)
    np.testing.assert_allclose(res.plan.sum(axis=1), 1 / n, rtol=0, atol=1e-12)
    if n <= 594:
        # The network-simplex route, with weights given explicitly.
        w = np.random.default_rng(n + 1).dirichlet(np.ones(n))
        res = solve_exact(cost, 1.0, a=w, b=w[::-1])
        assert abs(res.transport_cost - ot.emd2(w, w[::-1], cost)) <= 1e-10


def test_a4_monotone_and_convex(rng):
    cost = planted_cost()
    path = exact_path(cost)
    s = np.linspace(0, 1, 41)
    lam = path.cost_at(s)
    assert (np.diff(lam) >= -1e-10).all()
    assert (np.diff(lam, 2) >= -1e-10).all()
    assert (np.diff(lam[1:] / s[1:]) >= -1e-10).all()
    assert (np.diff(1 - lam) <= 1e-10).all()
    assert (np.diff(path.slopes) >= -1e-12).all()
    # Values from separate single-mass solves agree with the path.
    for mass in s[::8]:
        assert abs(solve_exact(cost, mass).transport_cost - path.cost_at(mass)) < 1e-12


def test_a10_outliers_are_excluded_first(rng):
    X = rng.normal(size=(600, 60))
    Y = np.c_[X + 0.5 * rng.normal(size=(600, 60)), rng.normal(size=(600, 30))]
    path = exact_path(prepare(X, Y, warn=False).cost)
    for mass in np.r_[np.linspace(0, 60 / 90, 31), 60 / 90]:
        assert path.plan_at(mass)[:, 60:].sum() <= 1e-12
    for mass in np.linspace(60 / 90 + 1e-3, 1, 10):
        assert path.plan_at(mass)[:, 60:].sum() > 0
    assert path.entry_mass_y[60:].min() >= 60 / 90 - 1e-12
    assert set(path.ranking_y[:60]) == set(range(60))


def test_a13_nested_supports():
    path = exact_path(planted_cost(seed=3))
    active_before_x = np.zeros(path.n_x, bool)
    active_before_y = np.zeros(path.n_y, bool)
    for mass in np.linspace(0, 1, 101):
        plan = path.plan_at(mass)
        active_x, active_y = plan.sum(axis=1) > 0, plan.sum(axis=0) > 0
        assert not (active_before_x & ~active_x).any()
        assert not (active_before_y & ~active_y).any()
        active_before_x, active_before_y = active_x, active_y
    assert active_x.all() and active_y.all()


def test_entry_masses_match_plans(rng):
    path = exact_path(random_cost(rng, 17, 23))
    half = 0.5 / path.total_flow
    for side, entries in ((1, path.entry_mass_x), (0, path.entry_mass_y)):
        assert (entries >= 0).all() and (entries < 1).all()
        for unit, entry in enumerate(entries):
            after = path.plan_at(entry + half).sum(axis=side)[unit]
            assert after > 0
            if entry > 0:
                assert path.plan_at(entry - half).sum(axis=side)[unit] == 0
    np.testing.assert_array_equal(path.ranking_x, np.argsort(path.entry_mass_x))


def test_ranking_finds_the_signal_units():
    """A12 (second half): the paper's pair; the top 100 of Y are its signal units."""
    pair = synthetic.planted_pair(seed=2)
    prepared = prepare(pair.X, pair.Y, warn=False)
    path = exact_path(prepared.cost)
    top = prepared.keep_y[path.ranking_y[:100]]
    assert set(top) == set(np.flatnonzero(pair.signal_y))


@pytest.mark.parametrize(("n_x", "n_y"), [(17, 23), (30, 30)], ids=["17x23", "30x30"])
def test_symmetry_under_transpose(rng, n_x, n_y):
    cost = random_cost(rng, n_x, n_y)
    path, path_t = exact_path(cost), exact_path(cost.T)
    masses = np.union1d(path.masses, path_t.masses)
    np.testing.assert_allclose(path.cost_at(masses), path_t.cost_at(masses), atol=1e-12)
    np.testing.assert_allclose(path.entry_mass_x, path_t.entry_mass_y, atol=1e-12)


def test_breakpoints_merge_equal_slopes():
    """Four identical pairs at cost 0.25 and zero elsewhere: one segment."""
    cost = np.ones((4, 4)) - 0.75 * np.eye(4)
    path = exact_path(cost)
    assert path.n_augmentations == 4
    np.testing.assert_allclose(path.masses, [0, 1])
    np.testing.assert_allclose(path.costs, [0, 0.25])


def dual_objective(f, g, a, b, mass):
    return a @ f[:-1] + (b.sum() - mass) * f[-1] + b @ g[:-1] + (a.sum() - mass) * g[-1]


def assert_duals_certify(res, a, b, tol=1e-10):
    """Dual feasibility for the dummy-extended problem and a zero duality gap."""
    f, g, cost = res.f, res.g, res.cost
    assert (f[:-1, None] + g[None, :-1] <= cost + tol).all()
    assert (f[:-1] + g[-1] <= tol).all() and (f[-1] + g[:-1] <= tol).all()
    gap = dual_objective(f, g, a, b, res.mass) - res.transport_cost
    assert abs(gap) <= tol
    assert (res.dual_score_x >= -tol).all() and (res.dual_score_y >= -tol).all()


@pytest.mark.parametrize(("n_x", "n_y"), [(17, 23), (25, 25)], ids=["17x23", "25x25"])
def test_duals_certify_optimality(rng, n_x, n_y):
    cost = random_cost(rng, n_x, n_y)
    path = exact_path(cost)
    a, b = uniform(n_x), uniform(n_y)
    for mass in (0.0, 0.2, path.masses[5], 0.61, 1.0):
        res = path.result_at(mass)
        assert abs(res.transport_cost - path.cost_at(mass)) <= 1e-12
        assert_duals_certify(res, a, b)
        assert_duals_certify(solve_exact(cost, mass), a, b)
    w = rng.dirichlet(np.ones(n_x))
    assert_duals_certify(solve_exact(cost, 0.4, a=w, b=b), w, b)
    assert path.result_at(0.5, duals=False).f is None


def test_float32_kernel_is_close(rng):
    cost = random_cost(rng, 60, 80)
    ref, path = exact_path(cost), exact_path(cost, dtype=np.float32)
    assert path.dtype == "float32"
    masses = np.linspace(0, 1, 21)
    np.testing.assert_allclose(path.cost_at(masses), ref.cost_at(masses), rtol=1e-6)


def test_emd_warning_is_surfaced(rng, monkeypatch):
    cost = random_cost(rng, 5, 6)

    def fake_emd(a, b, M, numItermax, log):
        assert numItermax >= 10_000_000
        u, v = np.zeros(len(a)), np.zeros(len(b))
        return np.zeros(M.shape), {"warning": "numItermax reached", "u": u, "v": v}

    monkeypatch.setattr(ot, "emd", fake_emd)
    with pytest.warns(PSMDConvergenceWarning, match="numItermax reached"):
        res = solve_exact(cost, 0.5, a=np.arange(1, 6.0) / 15)
    assert not res.converged


def test_cost_errors(rng):
    cost = random_cost(rng, 4, 5)
    bad = cost.copy()
    bad[1, 2] = np.nan
    with pytest.raises(PSMDInputError, match="1 NaN or infinite value"):
        exact_path(bad)
    with pytest.raises(PSMDInputError, match=r"cost has shape \(5,\)"):
        solve_exact(np.ones(5), 0.5)
    with pytest.raises(PSMDInputError, match="cost has dtype <U1"):
        exact_path(np.array([["a", "b"]]))
    with pytest.raises(PSMDInputError, match="dtype=int32 is not supported"):
        exact_path(cost, dtype=np.int32)


def test_mass_errors(rng):
    cost = random_cost(rng, 4, 5)
    with pytest.raises(PSMDInputError, match=r"mass=-0.1 is outside \[0, 1\]"):
        solve_exact(cost, -0.1)
    with pytest.raises(PSMDInputError, match=r"mass=1.5 is outside \[0, 1\]"):
        solve_exact(cost, 1.5)
    with pytest.raises(PSMDInputError, match="not a finite number"):
        solve_exact(cost, np.nan)
    with pytest.raises(PSMDInputError, match="at most min"):
        solve_exact(cost, 0.6, a=np.full(4, 0.125))
    with pytest.raises(PSMDInputError, match=r"mass=1.01 is outside \[0, 1\]"):
        exact_path(cost).cost_at([0.5, 1.01])
    with pytest.raises(PSMDInputError, match=r"mass=-1.0 is outside \[0, 1\]"):
        exact_path(cost).plan_at(-1.0)


def test_weight_errors(rng):
    cost = random_cost(rng, 4, 5)
    with pytest.raises(PSMDInputError, match=r"a has shape \(3,\)"):
        solve_exact(cost, 0.5, a=np.ones(3))
    with pytest.raises(PSMDInputError, match="b must be finite and non-negative"):
        solve_exact(cost, 0.5, b=np.array([1.0, -1, 1, 1, 1]))


def test_mass_tolerance_constant():
    """Masses a hair above the bound are accepted; visible excess is not."""
    cost = np.random.default_rng(0).random((3, 3))
    assert solve_exact(cost, 1 + 0.5 * exact.MASS_TOL).mass == 1.0
    with pytest.raises(PSMDInputError, match="outside"):
        solve_exact(cost, 1 + 1e-9)
