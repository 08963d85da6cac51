"""Ranking baselines and ways to compare rankings.

The partial plan ranks units by when they enter it (the exact path's entry
mass). Two baselines from the method description rank them otherwise:
brute-force leave-one-out refits of balanced soft matching, and the
correlation of each unit with its projection through the plan. Rankings are
always index orders, best aligned first, and are compared by Spearman
correlation and top-k overlap.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from solver.exceptions import PSMDInputError
from solver.preprocessing import as_matrix


def _balanced_cost(cost: np.ndarray) -> float:
    """λ(1) of balanced OT with uniform weights, by POT's network simplex."""
    import ot

    n_x, n_y = cost.shape
    a = np.full(n_x, 1.0 / n_x)
    b = np.full(n_y, 1.0 / n_y)
    plan = ot.emd(a, b, cost, numItermax=max(10**6, 100 * n_x * n_y))
    return float(np.sum(plan * cost))


def _check_cost(cost) -> np.ndarray:
    C = as_matrix(cost, "cost")
    if not np.isfinite(C).all():
        raise PSMDInputError("cost holds NaN or Inf; a finite matrix is required.")
    return C


def brute_force_loo(cost, side: str = "x") -> tuple[np.ndarray, np.ndarray]:
    """Rank the units of one side by leave-one-out refits of balanced OT.

    With S = 1 − λ(1) the balanced soft-matching score (uniform weights),
    ``delta[i] = S(without unit i) − S(all units)``. Removing a well-aligned
    unit forces the others into worse matches, so its delta is the most
    negative; the ranking sorts delta ascending (best aligned first).

    Parameters
    ----------
    cost : array-like of shape (n_x, n_y)
        Cost between kept units, e.g. ``Prepared.cost``.
    side : {"x", "y"}, default="x"
        Whose units are left out in turn (rows for "x", columns for "y").

    Returns
    -------
    delta : ndarray of shape (n_x,) or (n_y,)
        Score change when each unit is removed.
    ranking : ndarray of int of the same shape
        Unit indices, best aligned first.

    Raises
    ------
    PSMDInputError
        Unknown side, non-finite cost, or fewer than 3 units on that side.

    Notes
    -----
    ``delta`` equals ``λ(all) − λ(without i)`` whatever the cost. For the
    correlation cost this is the paper's change of ``1 − ⟨P, C⟩``; for a
    distance cost (sqeuclidean) the same sign convention keeps "most negative
    first = best aligned", which avoids the reversed sort of the authors'
    Euclidean variant. Each refit re-spreads uniform weights over the
    remaining units. This takes one balanced solve per unit (POT's
    ``ot.emd``): meant for a few hundred units, not thousands.

    Examples
    --------
    >>> import numpy as np
    >>> C = np.array([[0.0, 1.0, 1.0], [1.0, 0.1, 1.0], [1.0, 1.0, 0.9]])
    >>> brute_force_loo(C)[1].tolist()
    [0, 1, 2]
    """
    if side not in ("x", "y"):
        raise PSMDInputError(f"side={side!r} is not known; allowed: x, y.")
    C = _check_cost(cost)
    if side == "y":
        C = C.T
    n = C.shape[0]
    if n < 3:
        raise PSMDInputError(
            f"side {side} has {n} unit(s); leave-one-out needs at least 3."
        )
    full = _balanced_cost(C)
    keep = np.ones(n, dtype=bool)
    delta = np.empty(n)
    for i in range(n):
        keep[i] = False
        delta[i] = full - _balanced_cost(C[keep])
        keep[i] = True
    return delta, np.argsort(delta, kind="stable")


def _pearson_columns(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of A and B; NaN for a constant column."""
    Ac = A - A.mean(axis=0)
    Bc = B - B.mean(axis=0)
    denom = np.linalg.norm(Ac, axis=0) * np.linalg.norm(Bc, axis=0)
    num = np.einsum("ij,ij->j", Ac, Bc)
    scale = np.abs(A).max(initial=0.0) * np.abs(B).max(initial=0.0) * A.shape[0]
    ok = denom > 1e-12 * max(scale, 1e-300)
    return np.where(ok, num / np.where(ok, denom, 1.0), np.nan)


def correlation_ordering(
    X, Y, plan
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank units by how well the plan's projection of the other side fits them.

    Unit j of Y is scored by the Pearson r between ``Y[:, j]`` and column j of
    ``X @ plan`` (X projected into Y's unit space); unit i of X by the r
    between ``X[:, i]`` and column i of ``Y @ plan.T``.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_x)
    Y : array-like of shape (n_stimuli, n_y)
    plan : array-like of shape (n_x, n_y)
        Usually the balanced soft-matching plan (s = 1) on the same units.

    Returns
    -------
    score_x : ndarray of shape (n_x,)
    score_y : ndarray of shape (n_y,)
    ranking_x : ndarray of int of shape (n_x,)
        Best aligned (highest r) first.
    ranking_y : ndarray of int of shape (n_y,)

    Raises
    ------
    PSMDInputError
        Shapes that do not fit together, or non-finite values.

    Notes
    -----
    A unit whose projection is constant (no mass reaches it, as for unmatched
    units of a partial plan) has no defined correlation: its score is NaN and
    it is ranked last. This baseline only scores units; the refit on the kept
    subset that the paper reports is left to the caller.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 3)); Y = X[:, ::-1] + 0.1 * rng.normal(size=(50, 3))
    >>> plan = np.fliplr(np.eye(3)) / 3
    >>> bool(correlation_ordering(X, Y, plan)[1].min() > 0.9)
    True
    """
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y")
    P = as_matrix(plan, "plan")
    if X.shape[0] != Y.shape[0] or P.shape != (X.shape[1], Y.shape[1]):
        raise PSMDInputError(
            f"shapes do not fit: X {X.shape}, Y {Y.shape}, plan {P.shape}; "
            "need plan of shape (n_x, n_y) and the same stimuli in X and Y."
        )
    if not (np.isfinite(X).all() and np.isfinite(Y).all() and np.isfinite(P).all()):
        raise PSMDInputError("X, Y and plan must be finite (no NaN or Inf).")
    score_y = _pearson_columns(X @ P, Y)
    score_x = _pearson_columns(Y @ P.T, X)
    return score_x, score_y, _best_first(score_x), _best_first(score_y)


def _best_first(score: np.ndarray) -> np.ndarray:
    """Indices by descending score, NaN last, ties in index order."""
    key = np.where(np.isnan(score), np.inf, -score)
    return np.argsort(key, kind="stable")


def _positions(ranking, name: str) -> np.ndarray:
    """Position of each unit in a best-first index order."""
    r = np.asarray(ranking)
    n = r.size
    if r.ndim != 1 or r.dtype.kind not in "iu" or n < 2:
        raise PSMDInputError(
            f"{name} must be a 1-D integer array of unit indices (at least 2)."
        )
    if not np.array_equal(np.sort(r), np.arange(n)):
        raise PSMDInputError(
            f"{name} must be a permutation of 0..{n - 1} (each unit exactly once)."
        )
    pos = np.empty(n, dtype=np.float64)
    pos[r] = np.arange(n)
    return pos


def _check_pair(rank_a, rank_b) -> tuple[np.ndarray, np.ndarray]:
    pa, pb = _positions(rank_a, "rank_a"), _positions(rank_b, "rank_b")
    if pa.size != pb.size:
        raise PSMDInputError(
            f"rank_a has {pa.size} units and rank_b {pb.size}; they must match."
        )
    return pa, pb


def spearman(rank_a, rank_b) -> float:
    """Spearman correlation between two rankings of the same units.

    Parameters
    ----------
    rank_a, rank_b : array-like of int of shape (n,)
        Unit indices, best first (each a permutation of 0..n-1).

    Returns
    -------
    float
        In [-1, 1]; 1 for identical orders.

    Raises
    ------
    PSMDInputError
        Not permutations of the same 0..n-1.

    Examples
    --------
    >>> spearman([0, 1, 2, 3], [3, 2, 1, 0])
    -1.0
    """
    pa, pb = _check_pair(rank_a, rank_b)
    n = pa.size
    return float(1.0 - 6.0 * np.sum((pa - pb) ** 2) / (n * (n * n - 1.0)))


def topk_overlap(rank_a, rank_b, k: int) -> float:
    """Share of the top ``k`` units that two rankings have in common.

    Parameters
    ----------
    rank_a, rank_b : array-like of int of shape (n,)
        Unit indices, best first.
    k : int
        1 <= k <= n.

    Returns
    -------
    float
        ``|top_k(a) ∩ top_k(b)| / k`` in [0, 1].

    Raises
    ------
    PSMDInputError
        Not permutations of the same 0..n-1, or ``k`` out of range.

    Examples
    --------
    >>> topk_overlap([0, 1, 2, 3], [1, 0, 3, 2], 2)
    1.0
    """
    pa, pb = _check_pair(rank_a, rank_b)
    n = pa.size
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise PSMDInputError(f"k={k!r} is out of range; allowed: integer 1 to {n}.")
    return float(np.sum((pa < k) & (pb < k)) / k)


def compare_rankings(rankings: dict[str, np.ndarray], k: int) -> dict:
    """Pairwise Spearman correlation and top-k overlap between named rankings.

    Parameters
    ----------
    rankings : dict of str to array-like of int of shape (n,)
        At least two rankings of the same n units, best first.
    k : int
        Size of the top set for the overlap.

    Returns
    -------
    dict
        ``{"spearman": {a: {b: float}}, "topk_overlap": {a: {b: float}},
        "k": k}``: full symmetric tables (1 on the diagonal), JSON-ready.

    Raises
    ------
    PSMDInputError
        Fewer than two rankings, or as in :func:`spearman` /
        :func:`topk_overlap`.

    Examples
    --------
    >>> out = compare_rankings({"a": [0, 1, 2], "b": [0, 2, 1]}, k=1)
    >>> out["spearman"]["a"]["b"], out["topk_overlap"]["b"]["a"]
    (0.5, 1.0)
    """
    if len(rankings) < 2:
        raise PSMDInputError(
            f"got {len(rankings)} ranking(s); at least 2 are needed to compare."
        )
    names = list(rankings)
    rho = {a: {a: 1.0} for a in names}
    top = {a: {a: 1.0} for a in names}
    for a, b in combinations(names, 2):
        rho[a][b] = rho[b][a] = spearman(rankings[a], rankings[b])
        top[a][b] = top[b][a] = topk_overlap(rankings[a], rankings[b], k)
    return {"spearman": rho, "topk_overlap": top, "k": int(k)}


def block_precision(plan, labels_x, labels_y) -> float:
    """Share of the transported mass that stays within same-label blocks.

    Parameters
    ----------
    plan : array-like of shape (n_x, n_y)
    labels_x : array-like of shape (n_x,)
        A label per unit of X (e.g. brain region, or "signal"/"noise").
    labels_y : array-like of shape (n_y,)

    Returns
    -------
    float
        Mass on pairs with ``labels_x[i] == labels_y[j]`` divided by the total
        mass; NaN when the plan carries no mass.

    Raises
    ------
    PSMDInputError
        Label lengths that do not match the plan, or a negative or
        non-finite plan.

    Notes
    -----
    Mass-based, so it does not depend on any threshold (the count-based
    precision of the authors' code double-counted one block). Pairs whose
    labels coincide count as correct, so give the noise units of each side
    distinct labels when noise-to-noise mass should count as wrong.

    Examples
    --------
    >>> import numpy as np
    >>> plan = np.array([[0.3, 0.1], [0.0, 0.4]])
    >>> round(block_precision(plan, ["a", "b"], ["a", "b"]), 3)
    0.875
    """
    P = as_matrix(plan, "plan")
    lx, ly = np.asarray(labels_x), np.asarray(labels_y)
    if lx.shape != (P.shape[0],) or ly.shape != (P.shape[1],):
        raise PSMDInputError(
            f"labels_x {lx.shape} and labels_y {ly.shape} must be 1-D with one "
            f"label per unit of the plan {P.shape}."
        )
    if not np.isfinite(P).all() or (P < 0).any():
        raise PSMDInputError("plan must be finite and non-negative.")
    total = P.sum()
    if total <= 0:
        return float("nan")
    same = lx[:, None] == ly[None, :]
    return float(P[same].sum() / total)
