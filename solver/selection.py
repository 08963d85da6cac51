"""Choose the transported mass: the L-curve elbow and cross-validated scores.

The L-curve is λ(s) = ⟨plan(s), cost⟩ against the transported mass s on a
uniform grid. Where the matchable units run out, the marginal cost of
matching more mass (the slope of λ) jumps; :func:`select_mass` looks for that
jump and says plainly when there is none. :func:`cross_validated_score` fits
plans on training stimuli and scores them on held-out stimuli, with one unit
mask for every fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solver.costs import compute_cost
from solver.exceptions import PSMDInputError
from solver.preprocessing import REL_STD_TOL, Exclusion, as_matrix, prepare

RULES = ("second_difference", "curvature", "two_segment")

# Defaults of the no-elbow test, measured on 100-point grids (in-sample exact
# curves and 5-fold CV curves). At the kink of the spurious-neuron pair of
# METHOD §4.1 (12 seeds; also on 50- and 200-point grids) the slope of λ rose
# by 0.18-0.37 of its mean slope, and by 0.16-0.54 at the kinks of §4.2.
# For X against noisy copies of itself (3 noise levels) and against pure
# noise (40 curves) the rise stayed <= 0.09, while |Δ²λ| still reached 20x
# its median (the exact curve is piecewise linear, so single steps are
# lumpy). The slope rise therefore decides, with its threshold near the
# geometric middle of 0.09 and 0.18; the ratio only rejects one-step blips.
MIN_RATIO = 3.0
MIN_JUMP = 0.12


@dataclass(frozen=True)
class ElbowResult:
    """The chosen mass and the evidence for it.

    Attributes
    ----------
    mass : float
        The elbow mass s₀ when ``found``, else the fallback mass.
    found : bool
        Whether a clear elbow was detected.
    rule : str
        The rule that placed the candidate elbow.
    profile : ndarray of shape (n_points,)
        Second differences Δ²λ_i = λ_{i+1} − 2λ_i + λ_{i−1} aligned with the
        grid; NaN at the two end points.
    score : float
        The largest |Δ²λ| over the untrimmed interior points divided by their
        median |Δ²λ|.
    jump : float
        Rise of the slope of λ across that largest |Δ²λ| (mean slope over a
        window after it minus over a window before it), as a share of the
        mean slope of the whole curve.
    candidate : float
        Where the rule put the elbow, whether or not it was accepted.
    message : str
        The verdict in plain words.
    """

    mass: float
    found: bool
    rule: str
    profile: np.ndarray
    score: float
    jump: float
    candidate: float
    message: str


def _check_curve(masses, costs) -> tuple[np.ndarray, np.ndarray]:
    """Validate an L-curve: 1-D, equal length, finite, uniform increasing grid."""
    m = np.asarray(masses, dtype=np.float64)
    lam = np.asarray(costs, dtype=np.float64)
    if m.ndim != 1 or lam.shape != m.shape:
        raise PSMDInputError(
            f"masses {m.shape} and costs {lam.shape} must be 1-D of equal length."
        )
    if m.size < 5:
        raise PSMDInputError(
            f"the L-curve has {m.size} point(s); at least 5 are required."
        )
    if not (np.isfinite(m).all() and np.isfinite(lam).all()):
        raise PSMDInputError("masses and costs must be finite (no NaN or Inf).")
    steps = np.diff(m)
    if steps[0] <= 0 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0.0):
        raise PSMDInputError(
            "masses must be a uniform, increasing grid (e.g. np.linspace)."
        )
    return m, lam


def _check_options(rule, trim, window, min_ratio, min_jump, fallback) -> None:
    if rule not in RULES:
        raise PSMDInputError(
            f"rule={rule!r} is not known; allowed: {', '.join(RULES)}."
        )
    if not (0.0 <= trim < 0.5):
        raise PSMDInputError(
            f"trim={trim!r} is out of range; allowed: 0 <= trim < 0.5."
        )
    if not (0.0 < window < 0.5):
        raise PSMDInputError(
            f"window={window!r} is out of range; allowed: 0 < window < 0.5."
        )
    if not (min_ratio >= 0.0 and min_jump >= 0.0):
        raise PSMDInputError(
            f"min_ratio={min_ratio!r} and min_jump={min_jump!r} must be >= 0."
        )
    if not (np.isfinite(fallback) and 0.0 <= fallback <= 1.0):
        raise PSMDInputError(
            f"fallback={fallback!r} is out of range; allowed: 0 <= fallback <= 1."
        )


def _candidates(m: np.ndarray, trim: float) -> np.ndarray:
    """Interior grid indices outside the first and last ``trim`` share of the span."""
    span = m[-1] - m[0]
    slack = 1e-9 * span
    lo, hi = m[0] + trim * span - slack, m[-1] - trim * span + slack
    idx = np.arange(1, m.size - 1)
    idx = idx[(m[idx] >= lo) & (m[idx] <= hi)]
    if idx.size == 0:
        raise PSMDInputError(
            f"trim={trim} leaves no interior grid point; use more points or less trim."
        )
    return idx


def _pick_second_difference(m, lam, d2, cand) -> int:
    return int(cand[np.argmax(np.abs(d2[cand]))])


def _pick_curvature(m, lam, d2, cand) -> int:
    # Curvature of the parametric curve (1 - s, λ(s)) with s as parameter:
    # x' = -1, x'' = 0, so κ = |λ''| / (1 + λ'^2)^(3/2).
    h = m[1] - m[0]
    slope = (lam[cand + 1] - lam[cand - 1]) / (2.0 * h)
    kappa = np.abs(d2[cand] / h**2) / (1.0 + slope**2) ** 1.5
    return int(cand[np.argmax(kappa)])


def _pick_two_segment(m, lam, d2, cand) -> int:
    # Least-squares lines on points [0, k] and [k, n-1]; prefix sums give the
    # residual sum of squares of every split at once.
    def sse(lo, hi):
        n = hi - lo
        sx, sy = cx[hi] - cx[lo], cy[hi] - cy[lo]
        sxx = cxx[hi] - cxx[lo] - sx**2 / n
        sxy = cxy[hi] - cxy[lo] - sx * sy / n
        syy = cyy[hi] - cyy[lo] - sy**2 / n
        return syy - sxy**2 / np.where(sxx > 0, sxx, 1.0)

    x = (m - m[0]) / (m[-1] - m[0])
    zero = np.zeros(1)
    cx, cy = np.r_[zero, np.cumsum(x)], np.r_[zero, np.cumsum(lam)]
    cxx, cxy = np.r_[zero, np.cumsum(x * x)], np.r_[zero, np.cumsum(x * lam)]
    cyy = np.r_[zero, np.cumsum(lam * lam)]
    total = sse(np.zeros_like(cand), cand + 1) + sse(cand, np.full_like(cand, m.size))
    return int(cand[np.argmin(total)])


_PICK = {
    "second_difference": _pick_second_difference,
    "curvature": _pick_curvature,
    "two_segment": _pick_two_segment,
}


def _slope_jump(m, lam, i: int, cand: np.ndarray, window: float) -> float:
    """Rise of the mean slope across grid point ``i``, relative to the mean slope.

    Only slopes between candidate points count, so the steep ends excluded by
    ``trim`` cannot fake a rise. With fewer than half a window of slopes on
    one side, the point is too close to the ends to judge and the rise is 0.
    """
    w = max(1, int(round(window * (m.size - 1))))
    slope = np.diff(lam) / np.diff(m)
    mean_slope = (lam[-1] - lam[0]) / (m[-1] - m[0])
    before = slope[max(i - w, cand[0]) : i]
    after = slope[i : min(i + w, cand[-1])]
    flat = abs(mean_slope) <= 1e-12 * max(np.abs(lam).max(), 1e-300)
    if flat or min(before.size, after.size) < (w + 1) // 2:
        return 0.0
    return float((after.mean() - before.mean()) / abs(mean_slope))


def select_mass(
    masses,
    costs,
    *,
    rule: str = "second_difference",
    trim: float = 0.05,
    window: float = 0.05,
    min_ratio: float = MIN_RATIO,
    min_jump: float = MIN_JUMP,
    fallback: float = 1.0,
) -> ElbowResult:
    """Locate the elbow of the L-curve λ(s), or report that there is none.

    Parameters
    ----------
    masses : array-like of shape (n_points,)
        Uniform, increasing grid of transported masses, e.g.
        ``np.linspace(0, 1, 100, endpoint=False)``.
    costs : array-like of shape (n_points,)
        λ(s) on that grid: in-sample (:func:`l_curve`) or cross-validated
        (:func:`cv_l_curve`).
    rule : {"second_difference", "curvature", "two_segment"}, \
default="second_difference"
        ``second_difference``: largest |Δ²λ| (the paper's rule).
        ``curvature``: largest curvature of the curve (1 − s, λ(s)).
        ``two_segment``: the break of the best two-segment least-squares fit.
    trim : float, default=0.05
        Share of the mass span excluded at each end from the search.
    window : float, default=0.05
        Share of the span over which slopes are averaged on each side of the
        largest jump for the slope-rise test (only slopes inside the
        untrimmed range are used).
    min_ratio : float, default=3.0
        Least ``score``: the largest |Δ²λ| in units of the median |Δ²λ|.
    min_jump : float, default=0.12
        Least ``jump``: rise of the slope across the largest |Δ²λ|, as a
        share of the mean slope (a persistent change, not a one-step blip).
    fallback : float, default=1.0
        Mass returned when no clear elbow is found.

    Returns
    -------
    ElbowResult

    Raises
    ------
    PSMDInputError
        Mismatched, too short, non-finite or non-uniform curve, an unknown
        rule, or an option out of range.

    Warns
    -----
    UserWarning
        When no clear elbow is found and ``fallback`` is returned.

    Notes
    -----
    Whether an elbow exists is a property of the curve, decided the same way
    for every rule at the largest |Δ²λ|: both ``score >= min_ratio`` and
    ``jump >= min_jump``. The rule only decides where the elbow lies, so a
    rule other than ``second_difference`` may place it away from the largest
    jump (``two_segment`` sits 0.05-0.2 low on the method's synthetic data).
    Only a rise of the slope counts (λ is convex in-sample, so its elbow
    bends upwards). An elbow closer than half a ``window`` to the trimmed
    ends cannot be confirmed (with the defaults: outside about
    0.075 <= s <= 0.925).

    The verdict is a heuristic, tuned on the method's synthetic pairs with
    100 grid points (see ``MIN_JUMP``), not a guarantee:

    - When fold noise moves the largest |Δ²λ| of a cross-validated curve away
      from a weak kink, the verdict rejects that point and the fallback is
      returned, even though a kink exists elsewhere (3 of 8 seeds of the
      model-selection Y_b). Try the in-sample curve or a coarser grid.
    - A pair without unmatched units whose matches vary smoothly in quality
      (every unit has a partner, some much better than others) has a
      steadily rising slope. Fold noise on its cross-validated curve can
      pass for a kink (rises of 0.14-0.24 were seen), so an elbow found on
      a cross-validated curve alone deserves a look at the whole
      ``profile`` and at the in-sample curve.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.linspace(0, 1, 100, endpoint=False)
    >>> lam = 0.3 * s + 0.7 * np.maximum(s - 0.6, 0)
    >>> round(select_mass(s, lam).mass, 2)
    0.6
    """
    _check_options(rule, trim, window, min_ratio, min_jump, fallback)
    m, lam = _check_curve(masses, costs)
    cand = _candidates(m, trim)
    d2 = np.full(m.size, np.nan)
    d2[1:-1] = np.diff(lam, 2)
    i = _PICK[rule](m, lam, d2, cand)

    # Whether the curve has an elbow at all is judged at its largest jump,
    # whichever rule then places the elbow.
    k = _pick_second_difference(m, lam, d2, cand)
    median = float(np.median(np.abs(d2[cand])))
    top = abs(d2[k])
    score = top / median if median > 0 else (np.inf if top > 0 else 0.0)
    jump = _slope_jump(m, lam, k, cand, window)
    found = bool(score >= min_ratio and jump >= min_jump)
    evidence = (
        f"at the largest jump (mass {m[k]:.3f}) the slope of λ rises by "
        f"{jump:.0%} of its mean (need {min_jump:.0%}) and |Δ²λ| is "
        f"{score:.1f}× its median (need {min_ratio:g})"
    )
    if found:
        mass = float(m[i])
        message = f"elbow at mass {mass:.3f} (unmatched {1 - mass:.3f}); {evidence}."
    else:
        mass = float(fallback)
        message = f"no clear elbow: {evidence}; using the fallback mass {mass:g}."
        warnings.warn(message, UserWarning, stacklevel=2)
    return ElbowResult(mass, found, rule, d2, float(score), jump, float(m[i]), message)


def _grid(n_points) -> np.ndarray:
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)):
        raise PSMDInputError(f"n_points={n_points!r} must be an integer >= 5.")
    if n_points < 5:
        raise PSMDInputError(f"n_points={n_points} is too small; at least 5 required.")
    return np.linspace(0.0, 1.0, int(n_points), endpoint=False)


def l_curve(cost_or_path, n_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate the in-sample exact L-curve λ(s) on a uniform grid in [0, 1).

    Parameters
    ----------
    cost_or_path : ndarray of shape (n_x, n_y) or PartialPath
        A cost matrix (the exact path is solved once) or an already solved
        path.
    n_points : int, default=100
        Grid size; the grid is ``np.linspace(0, 1, n_points, endpoint=False)``.

    Returns
    -------
    masses, costs : ndarray of shape (n_points,)

    Raises
    ------
    PSMDInputError
        ``n_points`` is not an integer of at least 5.

    Examples
    --------
    >>> import numpy as np
    >>> s, lam = l_curve(np.array([[0.0, 1.0], [1.0, 0.5]]), n_points=5)
    >>> s.round(3).tolist(), lam.round(3).tolist()
    ([0.0, 0.2, 0.4, 0.6, 0.8], [0.0, 0.0, 0.0, 0.05, 0.15])
    """
    grid = _grid(n_points)
    path = cost_or_path
    if not hasattr(path, "cost_at"):
        from solver.exact import exact_path

        path = exact_path(np.asarray(cost_or_path, dtype=np.float64))
    return grid, np.asarray(path.cost_at(grid), dtype=np.float64)


@dataclass(frozen=True)
class CVResult:
    """Cross-validated transport cost and scores at one mass or along a grid.

    Every fold uses the same unit mask, decided once on the full data. When
    ``mass`` was one number, per-fold arrays have shape (n_splits,) and the
    means are floats; for a grid of n_masses masses they have shape
    (n_splits, n_masses) and (n_masses,).

    Attributes
    ----------
    masses : ndarray of shape () or (n_masses,)
        The masses asked for.
    fold_transport_cost : ndarray of shape (n_splits,) or (n_splits, n_masses)
        ⟨plan fitted on the training rows, cost of the test rows⟩.
    cost_name : str
        ``"correlation"`` or ``"sqeuclidean"``.
    train_index, test_index : tuple of ndarray of int
        Stimulus rows of each fold.
    keep_x, keep_y : ndarray of int
        Original columns of the kept units (the one mask of all folds).
    excluded_x, excluded_y : list of Exclusion
        Units left out of every fold, with the reason.
    fold_paths : tuple of PartialPath
        The exact path of each training fold (one solve serves every mass).
    full_path : PartialPath
        The exact path on all stimuli; rankings come from it, not from a fold.
    """

    masses: np.ndarray
    fold_transport_cost: np.ndarray
    cost_name: str
    train_index: tuple
    test_index: tuple
    keep_x: np.ndarray
    keep_y: np.ndarray
    excluded_x: list[Exclusion]
    excluded_y: list[Exclusion]
    fold_paths: tuple
    full_path: object

    @property
    def n_splits(self) -> int:
        """Number of folds."""
        return len(self.train_index)

    @property
    def fold_raw_score(self) -> np.ndarray:
        """Per-fold ``1 - λ`` (correlation cost; NaN for a distance cost)."""
        if self.cost_name != "correlation":
            return np.full_like(self.fold_transport_cost, np.nan)
        return 1.0 - self.fold_transport_cost

    @property
    def fold_normalized_score(self) -> np.ndarray:
        """Per-fold ``1 - λ / s`` (NaN at s = 0 and for a distance cost)."""
        if self.cost_name != "correlation":
            return np.full_like(self.fold_transport_cost, np.nan)
        s = np.broadcast_to(self.masses, self.fold_transport_cost.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s > 0, 1.0 - self.fold_transport_cost / s, np.nan)

    @property
    def transport_cost(self):
        """Mean over folds of the test transport cost (float or (n_masses,))."""
        return _mean(self.fold_transport_cost)

    @property
    def raw_score(self):
        """Mean over folds of the raw score ``1 - λ``."""
        return _mean(self.fold_raw_score)

    @property
    def normalized_score(self):
        """Mean over folds of the normalized score ``1 - λ / s``."""
        return _mean(self.fold_normalized_score)

    def fold_plan(self, fold: int, mass: float | None = None) -> np.ndarray:
        """Plan of shape (n_x, n_y) fitted on training fold ``fold`` at ``mass``."""
        return np.asarray(self.fold_paths[fold].plan_at(self._one_mass(mass)))

    @property
    def fold_plans(self) -> list[np.ndarray]:
        """Training-fold plans at the single mass asked for, one per fold."""
        return [self.fold_plan(k) for k in range(self.n_splits)]

    def full_result(self, mass: float | None = None):
        """PartialResult on all stimuli at ``mass`` (default: the mass asked for)."""
        return self.full_path.result_at(self._one_mass(mass))

    @property
    def full_plan(self) -> np.ndarray:
        """Plan of shape (n_x, n_y) on all stimuli at the single mass asked for."""
        return np.asarray(self.full_path.plan_at(self._one_mass(None)))

    def _one_mass(self, mass: float | None) -> float:
        if mass is not None:
            return float(mass)
        if self.masses.ndim != 0:
            raise PSMDInputError(
                "this result holds a grid of masses; pass mass=... explicitly."
            )
        return float(self.masses)


def _mean(a: np.ndarray):
    out = np.mean(a, axis=0)
    return float(out) if np.ndim(out) == 0 else out


def _check_masses(mass) -> np.ndarray:
    m = np.asarray(mass, dtype=np.float64)
    if m.ndim > 1 or m.size == 0:
        raise PSMDInputError(
            f"mass must be one number or a 1-D sequence; got shape {m.shape}."
        )
    if not (np.isfinite(m).all() and (m >= 0).all() and (m <= 1).all()):
        raise PSMDInputError("mass values must lie in [0, 1] (0 <= mass <= 1).")
    return m


def _folds(n_stimuli: int, n_splits: int, seed, folds) -> list:
    """Training and test rows of each fold (KFold over stimuli unless given)."""
    if folds is None:
        from sklearn.model_selection import KFold

        if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)):
            raise PSMDInputError(f"n_splits={n_splits!r} must be an integer >= 2.")
        if not (2 <= n_splits <= n_stimuli // 2):
            raise PSMDInputError(
                f"n_splits={n_splits} is out of range; allowed: 2 to "
                f"{n_stimuli // 2} (each test fold needs at least 2 stimuli)."
            )
        kfold = KFold(n_splits=int(n_splits), shuffle=True, random_state=seed)
        folds = kfold.split(np.zeros((n_stimuli, 1)))
    out = []
    for train, test in folds:
        train, test = np.asarray(train, dtype=int), np.asarray(test, dtype=int)
        for rows in (train, test):
            if rows.ndim != 1 or rows.size < 2:
                raise PSMDInputError(
                    "each fold needs at least 2 train and 2 test rows."
                )
            if rows.min() < 0 or rows.max() >= n_stimuli:
                raise PSMDInputError(
                    f"fold rows must lie in 0..{n_stimuli - 1} (the stimuli)."
                )
        out.append((train, test))
    if not out:
        raise PSMDInputError("folds is empty; give at least one (train, test) pair.")
    return out


def fold_cost(X: np.ndarray, Y: np.ndarray, cost: str = "correlation") -> np.ndarray:
    """Centre the rows given and build the cost, safe for fold-constant units.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_x)
        Raw responses of the kept units on the rows of one fold.
    Y : ndarray of shape (n_rows, n_y)
    cost : {"correlation", "sqeuclidean"}, default="correlation"

    Returns
    -------
    cost : ndarray of shape (n_x, n_y)

    Notes
    -----
    A unit that is constant within these rows (though not on all stimuli) has
    zero norm after centring. For the correlation cost its Pearson r is taken
    as 0, so its cost is 1 against every unit, never NaN. "Zero" means a norm
    at most ``REL_STD_TOL`` times the largest norm on that side.
    """
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    if cost != "correlation":
        return compute_cost(Xc, Yc, cost)
    r = np.clip(_unit_columns(Xc).T @ _unit_columns(Yc), -1.0, 1.0)
    return 1.0 - r


def _unit_columns(A: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(A, axis=0, keepdims=True)
    zero = norm <= REL_STD_TOL * norm.max() if norm.size else norm > 0
    return np.where(zero, 0.0, A / np.where(zero, 1.0, norm))


def _test_costs(path, masses: np.ndarray, cost_test: np.ndarray) -> np.ndarray:
    """⟨plan_train(s), cost_test⟩ for every mass of a 1-D grid."""
    return np.array([np.sum(path.plan_at(float(s)) * cost_test) for s in masses])


def cross_validated_score(
    X,
    Y,
    mass,
    *,
    cost: str = "correlation",
    n_splits: int = 5,
    seed: int | None = 0,
    folds: Sequence | None = None,
) -> CVResult:
    """K-fold cross-validated partial soft-matching over stimuli.

    For each fold the plan is fitted on the training rows (centred with the
    training means) and scored against the cost of the test rows (centred
    with the test-fold means, natural for a Pearson cost).

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_x)
    Y : array-like of shape (n_stimuli, n_y)
    mass : float or sequence of float
        Transported mass(es) s in [0, 1]. One exact path per fold serves a
        whole grid, so a curve costs about as much as one mass.
    cost : {"correlation", "sqeuclidean"}, default="correlation"
    n_splits : int, default=5
        Folds of ``sklearn.model_selection.KFold(shuffle=True)``.
    seed : int or None, default=0
        ``random_state`` of the fold shuffle.
    folds : sequence of (train_rows, test_rows), optional
        Explicit folds; overrides ``n_splits`` and ``seed``.

    Returns
    -------
    CVResult

    Raises
    ------
    PSMDInputError
        Bad inputs (see :func:`solver.preprocessing.prepare`), a mass outside
        [0, 1], ``n_splits`` out of range, or a fold with fewer than 2 rows.

    Warns
    -----
    UserWarning
        When degenerate units are excluded on the full data.

    Notes
    -----
    The unit mask comes from the full data only (constant or non-finite
    units), so every fold has the same shape. A unit constant within one fold
    gets cost 1 (r = 0) in that fold, see :func:`fold_cost`. Test-fold costs
    are evaluated as dense plans at each mass: O(n_masses · n_x · n_y) work
    per fold.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 12)); Y = X + 0.5 * rng.normal(size=(200, 12))
    >>> cv = cross_validated_score(X, Y, 0.5)
    >>> cv.fold_transport_cost.shape, cv.normalized_score > 0.7
    ((5,), True)
    """
    from solver.exact import exact_path

    masses = _check_masses(mass)
    prepared = prepare(X, Y, cost)
    Xk = as_matrix(X, "X")[:, prepared.keep_x]
    Yk = as_matrix(Y, "Y")[:, prepared.keep_y]
    splits = _folds(Xk.shape[0], n_splits, seed, folds)
    grid = masses.reshape(-1)

    paths, fold_costs = [], []
    for train, test in splits:
        path = exact_path(fold_cost(Xk[train], Yk[train], cost))
        cost_test = fold_cost(Xk[test], Yk[test], cost)
        paths.append(path)
        fold_costs.append(_test_costs(path, grid, cost_test))
    return CVResult(
        masses=masses,
        fold_transport_cost=np.array(fold_costs).reshape((len(splits),) + masses.shape),
        cost_name=cost,
        train_index=tuple(tr for tr, _ in splits),
        test_index=tuple(te for _, te in splits),
        keep_x=prepared.keep_x,
        keep_y=prepared.keep_y,
        excluded_x=prepared.excluded_x,
        excluded_y=prepared.excluded_y,
        fold_paths=tuple(paths),
        full_path=exact_path(prepared.cost),
    )


def cv_l_curve(
    X,
    Y,
    masses=100,
    *,
    cost: str = "correlation",
    n_splits: int = 5,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated L-curve: the mean over folds of the test-fold λ(s).

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_x)
    Y : array-like of shape (n_stimuli, n_y)
    masses : int or sequence of float, default=100
        The grid, or its size for ``np.linspace(0, 1, masses, endpoint=False)``.
    cost, n_splits, seed
        As in :func:`cross_validated_score`.

    Returns
    -------
    masses, costs : ndarray of shape (n_points,)

    Raises
    ------
    PSMDInputError
        As in :func:`cross_validated_score`, or an integer grid size below 5.
    """
    grid = (
        _grid(masses)
        if isinstance(masses, (int, np.integer)) and not isinstance(masses, bool)
        else _check_masses(masses).reshape(-1)
    )
    cv = cross_validated_score(X, Y, grid, cost=cost, n_splits=n_splits, seed=seed)
    return grid, np.asarray(cv.transport_cost)
