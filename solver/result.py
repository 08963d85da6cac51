"""The result of one partial-OT solve, shared by every solver."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# A unit "carries mass" when n * rowsum exceeds this (relative, METHOD §6 item 7).
ACTIVE_TOL = 1e-6


@dataclass(frozen=True)
class PartialResult:
    """Plan and diagnostics of a partial-OT solve at one transported mass.

    Attributes
    ----------
    plan : ndarray of shape (n_x, n_y)
        Transport plan, float64, non-negative; row sums <= a, column sums <= b.
    cost : ndarray of shape (n_x, n_y)
        The cost matrix the plan was solved for.
    mass : float
        Requested transported mass s (the unmatched mass is ``1 - mass`` for
        uniform weights).
    method : str
        ``"exact"`` or ``"sinkhorn"``.
    converged : bool
        Whether the solver reached its tolerance (always True for exact).
    marginal_error : float
        Achieved L1 error of the marginal constraints (0 for exact).
    n_iter : int
        Iterations (Sinkhorn) or augmentations (exact path).
    f, g : ndarray or None
        Dual potentials of rows and columns, each with the dummy unit last
        (shapes (n_x + 1,) and (n_y + 1,)); None when unavailable.
    reg : float or None
        Entropic regularisation (Sinkhorn only).
    device : str
        Where it was solved (``"cpu"``, ``"cuda"``, ...).
    time_s : float
        Wall time of the solve.
    errors : ndarray
        Marginal error at each check (Sinkhorn); empty for exact.
    """

    plan: np.ndarray
    cost: np.ndarray
    mass: float
    method: str
    converged: bool = True
    marginal_error: float = 0.0
    n_iter: int = 0
    f: np.ndarray | None = None
    g: np.ndarray | None = None
    reg: float | None = None
    device: str = "cpu"
    time_s: float = 0.0
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_x(self) -> int:
        """Number of units of X."""
        return self.plan.shape[0]

    @property
    def n_y(self) -> int:
        """Number of units of Y."""
        return self.plan.shape[1]

    @property
    def unmatched(self) -> float:
        """Unmatched mass ``1 - mass`` (the users' epsilon)."""
        return 1.0 - self.mass

    @property
    def row_marginal(self) -> np.ndarray:
        """Mass sent by each unit of X, shape (n_x,)."""
        return self.plan.sum(axis=1)

    @property
    def col_marginal(self) -> np.ndarray:
        """Mass received by each unit of Y, shape (n_y,)."""
        return self.plan.sum(axis=0)

    @property
    def transported_mass(self) -> float:
        """Total mass the plan actually moves."""
        return float(self.plan.sum())

    @property
    def transport_cost(self) -> float:
        """``<plan, cost>``, the partial-OT objective (lower is better)."""
        return float(np.sum(self.plan * self.cost))

    @property
    def raw_score(self) -> float:
        """The paper's score ``1 - <plan, cost>``.

        Unmatched mass counts as perfect agreement, so this tends to 1 as the
        mass tends to 0 (METHOD §1.7). Kept to reproduce the paper.
        """
        return 1.0 - self.transport_cost

    @property
    def normalized_score(self) -> float:
        """Mass-weighted mean similarity of matched pairs, ``1 - <plan, cost> / s``.

        For the correlation cost this is the mean Pearson r of matched pairs.
        NaN when nothing is transported.
        """
        s = self.transported_mass
        return float("nan") if s <= 0 else 1.0 - self.transport_cost / s

    @property
    def matched_fraction_x(self) -> np.ndarray:
        """Fraction of each X unit's own weight that is matched, in [0, 1]."""
        return np.clip(self.row_marginal * self.n_x, 0.0, 1.0)

    @property
    def matched_fraction_y(self) -> np.ndarray:
        """Fraction of each Y unit's own weight that is matched, in [0, 1]."""
        return np.clip(self.col_marginal * self.n_y, 0.0, 1.0)

    @property
    def coverage_x(self) -> float:
        """Share of X's units carrying mass (relative threshold ``ACTIVE_TOL``)."""
        return float(np.mean(self.matched_fraction_x > ACTIVE_TOL))

    @property
    def coverage_y(self) -> float:
        """Share of Y's units carrying mass (relative threshold ``ACTIVE_TOL``)."""
        return float(np.mean(self.matched_fraction_y > ACTIVE_TOL))

    @property
    def dual_score_x(self) -> np.ndarray | None:
        """Per-unit score of X from the dual potentials (higher = better aligned).

        ``-(f_i + g_dummy)``: how much cheaper unit i's matches are than
        leaving it unmatched. None when the solver gave no potentials.
        """
        if self.f is None or self.g is None:
            return None
        return -(self.f[: self.n_x] + self.g[-1])

    @property
    def dual_score_y(self) -> np.ndarray | None:
        """Per-unit score of Y from the dual potentials (higher = better aligned)."""
        if self.f is None or self.g is None:
            return None
        return -(self.g[: self.n_y] + self.f[-1])

    def ranking(self, side: str = "x") -> np.ndarray:
        """Unit indices of one side, best aligned first.

        Sorted by matched fraction, ties broken by the dual score when
        available, else by the mean cost of the unit's matches.
        """
        frac = self.matched_fraction_x if side == "x" else self.matched_fraction_y
        dual = self.dual_score_x if side == "x" else self.dual_score_y
        if dual is None:
            dual = -(self.cost.min(axis=1) if side == "x" else self.cost.min(axis=0))
        return np.lexsort((-dual, -np.round(frac, 9)))
