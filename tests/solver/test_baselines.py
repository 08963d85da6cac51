"""Ranking baselines and ranking comparisons (METHOD §3; acceptance test A12)."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import pearsonr, spearmanr

from solver.baselines import (
    block_precision,
    brute_force_loo,
    compare_rankings,
    correlation_ordering,
    spearman,
    topk_overlap,
)
from solver.exact import exact_path
from solver.exceptions import PSMDInputError
from solver.preprocessing import prepare
from solver.synthetic import planted_pair


def assignment_cost(cost):
    """λ(1) with uniform weights via an assignment on replicated units.

    With n_x rows and n_y columns, each row is copied n_y times and each
    column n_x times: a square assignment whose optimum divided by n_x * n_y
    is balanced OT with weights 1/n_x and 1/n_y.
    """
    n_x, n_y = cost.shape
    big = np.repeat(np.repeat(cost, n_y, axis=0), n_x, axis=1)
    rows, cols = linear_sum_assignment(big)
    return big[rows, cols].sum() / (n_x * n_y)


def naive_loo(cost):
    full = assignment_cost(cost)
    return np.array(
        [full - assignment_cost(np.delete(cost, i, axis=0)) for i in range(len(cost))]
    )


# --- brute force ----------------------------------------------------------------------


def test_brute_force_matches_assignment_reference(rng):
    X = rng.normal(size=(40, 5))
    Y = X + rng.uniform(0.1, 2.0, 5) * rng.normal(size=(40, 5))
    cost = prepare(X, Y).cost
    # Equal sizes: the full problem is a plain assignment divided by N.
    rows, cols = linear_sum_assignment(cost)
    assert assignment_cost(cost) == pytest.approx(cost[rows, cols].sum() / 5, abs=1e-14)
    delta, ranking = brute_force_loo(cost, side="x")
    np.testing.assert_allclose(delta, naive_loo(cost), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ranking, np.argsort(naive_loo(cost)))
    delta_y, ranking_y = brute_force_loo(cost, side="y")
    np.testing.assert_allclose(delta_y, naive_loo(cost.T), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ranking_y, np.argsort(naive_loo(cost.T)))


def test_brute_force_puts_the_cleanest_copies_first_for_both_costs(rng):
    X = rng.normal(size=(300, 8))
    noise = np.linspace(0.1, 3.0, 8)
    order = rng.permutation(8)
    Y = X[:, order] + noise[order] * rng.normal(size=(300, 8))
    for cost in ("correlation", "sqeuclidean"):
        _, ranking = brute_force_loo(prepare(X, Y, cost).cost, side="y")
        # Y's unit j holds X's unit order[j] with noise noise[order[j]].
        assert spearman(ranking, np.argsort(noise[order])) >= 0.9, cost


def test_a12_entry_mass_ranking_agrees_with_brute_force():
    pair = planted_pair(seed=0)
    cost = prepare(pair.X, pair.Y).cost
    path = exact_path(cost)
    delta, brute = brute_force_loo(cost, side="y")
    assert spearman(path.ranking_y, brute) >= 0.95
    assert set(path.ranking_y[:100]) == set(np.flatnonzero(pair.signal_y))
    # Brute force agrees on which units are signal.
    assert set(brute[:100]) == set(np.flatnonzero(pair.signal_y))
    assert delta[pair.signal_y].max() < delta[~pair.signal_y].min()


# --- correlation ordering -------------------------------------------------------------


def test_correlation_ordering_matches_pearson_per_column(rng):
    X = rng.normal(size=(50, 4))
    Y = rng.normal(size=(50, 6))
    plan = rng.uniform(size=(4, 6))
    score_x, score_y, ranking_x, ranking_y = correlation_ordering(X, Y, plan)
    proj_y, proj_x = X @ plan, Y @ plan.T
    ref_y = [pearsonr(proj_y[:, j], Y[:, j])[0] for j in range(6)]
    ref_x = [pearsonr(proj_x[:, i], X[:, i])[0] for i in range(4)]
    np.testing.assert_allclose(score_y, ref_y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(score_x, ref_x, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ranking_y, np.argsort(-np.array(ref_y)))
    np.testing.assert_array_equal(ranking_x, np.argsort(-np.array(ref_x)))


def test_correlation_ordering_ranks_units_without_mass_last(rng):
    X = rng.normal(size=(30, 3))
    Y = np.c_[X[:, [2, 0]] + 0.2 * rng.normal(size=(30, 2)), rng.normal(size=30)]
    plan = np.zeros((3, 3))
    plan[2, 0] = plan[0, 1] = 1 / 3  # unit 2 of Y and unit 1 of X get no mass
    score_x, score_y, ranking_x, ranking_y = correlation_ordering(X, Y, plan)
    assert np.isnan(score_y[2]) and np.isnan(score_x[1])
    assert ranking_y[-1] == 2 and ranking_x[-1] == 1
    assert score_y[0] > 0.9 and score_y[1] > 0.9


# --- comparing rankings ---------------------------------------------------------------


def test_spearman_and_topk_against_scipy_and_sets(rng):
    for n in (2, 7, 50):
        a, b = rng.permutation(n), rng.permutation(n)
        pos_a, pos_b = np.argsort(a), np.argsort(b)
        assert spearman(a, b) == pytest.approx(spearmanr(pos_a, pos_b)[0], abs=1e-12)
        for k in (1, n // 2 or 1, n):
            ref = len(set(a[:k]) & set(b[:k])) / k
            assert topk_overlap(a, b, k) == pytest.approx(ref, abs=1e-15)
    assert spearman([2, 0, 1], [2, 0, 1]) == 1.0


def test_compare_rankings_tables(rng):
    rankings = {name: rng.permutation(20) for name in ("partial", "brute", "corr")}
    out = compare_rankings(rankings, k=5)
    assert out["k"] == 5
    for a in rankings:
        assert out["spearman"][a][a] == 1.0 and out["topk_overlap"][a][a] == 1.0
        for b in rankings:
            assert out["spearman"][a][b] == spearman(rankings[a], rankings[b])
            assert out["topk_overlap"][a][b] == topk_overlap(
                rankings[a], rankings[b], 5
            )


# --- block precision ------------------------------------------------------------------


def test_block_precision_on_a_hand_made_plan():
    plan = np.array(
        [
            [0.10, 0.05, 0.00],
            [0.00, 0.20, 0.05],
            [0.10, 0.00, 0.30],
        ]
    )
    labels_x = ["V1", "V1", "V2"]
    labels_y = ["V1", "V1", "V2"]
    # Same-label mass: 0.10 + 0.05 + 0.20 + 0.30 = 0.65 of 0.80.
    assert block_precision(plan, labels_x, labels_y) == pytest.approx(0.65 / 0.8)
    assert block_precision(plan, [0, 1, 2], [0, 1, 2]) == pytest.approx(0.6 / 0.8)
    assert np.isnan(block_precision(np.zeros((3, 3)), labels_x, labels_y))


# --- every error message --------------------------------------------------------------


def test_baseline_errors(rng):
    cost = rng.uniform(size=(4, 5))
    with pytest.raises(PSMDInputError, match="side='z' is not known"):
        brute_force_loo(cost, side="z")
    with pytest.raises(PSMDInputError, match="cost holds NaN or Inf"):
        brute_force_loo(np.full((4, 4), np.nan))
    with pytest.raises(PSMDInputError, match="side y has 2 unit"):
        brute_force_loo(rng.uniform(size=(4, 2)), side="y")
    with pytest.raises(PSMDInputError, match="cost has 1 dimension"):
        brute_force_loo(np.ones(4))
    X, Y = rng.normal(size=(10, 3)), rng.normal(size=(10, 4))
    with pytest.raises(PSMDInputError, match="shapes do not fit"):
        correlation_ordering(X, Y, np.ones((4, 3)))
    with pytest.raises(PSMDInputError, match="must be finite"):
        correlation_ordering(X, Y, np.full((3, 4), np.inf))
    with pytest.raises(PSMDInputError, match="1-D integer array"):
        spearman([0.0, 1.0], [0, 1])
    with pytest.raises(PSMDInputError, match=r"permutation of 0\.\.2"):
        spearman([0, 1, 1], [0, 1, 2])
    with pytest.raises(PSMDInputError, match="rank_a has 3 units and rank_b 2"):
        spearman([0, 1, 2], [0, 1])
    with pytest.raises(PSMDInputError, match="k=0 is out of range"):
        topk_overlap([0, 1, 2], [0, 1, 2], 0)
    with pytest.raises(PSMDInputError, match="at least 2 are needed"):
        compare_rankings({"a": [0, 1]}, k=1)
    with pytest.raises(PSMDInputError, match="one label per unit"):
        block_precision(np.ones((2, 2)), [0], [0, 1])
    with pytest.raises(PSMDInputError, match="finite and non-negative"):
        block_precision(-np.ones((2, 2)), [0, 1], [0, 1])
