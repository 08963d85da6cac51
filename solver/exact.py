"""Exact partial optimal transport: one mass, or the whole path at once.

:func:`exact_path` returns the exact transport cost lambda(s) for *every*
transported mass s in [0, 1] with uniform unit weights, in one solve: a
parametric min-cost flow by successive shortest augmenting paths (see
:mod:`solver._ssp`). With ``g = gcd(n_x, n_y)`` each unit of X has integer
capacity ``n_y / g`` and each unit of Y ``n_x / g``, so unequal sizes are
exact; the plan is the flow divided by ``L = n_x * n_y / g``. Each augmentation
moves flow along one path whose cost per unit is the slope of lambda(s), so
the slopes never decrease (lambda is convex) and the plan at any mass follows
by replaying the augmentations.

:func:`solve_exact` solves one mass; with general weights it calls POT's
network simplex on the problem extended by one dummy unit on each side.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from math import gcd

import numpy as np

from solver import _ssp
from solver.exceptions import PSMDConvergenceWarning, PSMDInputError
from solver.result import PartialResult

# Masses this far above the largest feasible one are taken as that one, so
# that ``mass=1`` works whatever the float round-off of ``sum(1/n)``.
MASS_TOL = 1e-12

# Relative tolerance under which two consecutive slopes count as one segment.
SLOPE_RTOL = 1e-12


def _check_cost(cost) -> np.ndarray:
    """Return ``cost`` as a C-contiguous float64 matrix or raise."""
    if hasattr(cost, "detach"):  # a torch tensor
        cost = cost.detach().cpu().numpy()
    cost = np.asarray(cost)
    if cost.dtype.kind not in "biuf":
        raise PSMDInputError(
            f"cost has dtype {cost.dtype}; a real-valued numeric array is required."
        )
    if cost.ndim != 2 or cost.shape[0] < 1 or cost.shape[1] < 1:
        raise PSMDInputError(
            f"cost has shape {cost.shape}; a 2-D array (n_x, n_y) with at least "
            "one unit on each side is required."
        )
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if not np.isfinite(cost).all():
        raise PSMDInputError(
            f"cost holds {int((~np.isfinite(cost)).sum())} NaN or infinite "
            "value(s); every entry must be finite."
        )
    return cost


def _check_mass(mass, total: float) -> float:
    """Return ``mass`` clipped to ``[0, total]`` or raise when it lies outside."""
    mass = np.asarray(mass, dtype=np.float64)
    if mass.ndim != 0 or not np.isfinite(mass):
        raise PSMDInputError(
            f"mass={mass!r} is not a finite number; a float in [0, {total:.17g}] "
            "is required."
        )
    mass = float(mass)
    if mass < 0 or mass > total + MASS_TOL * max(1.0, total):
        raise PSMDInputError(
            f"mass={mass!r} is outside [0, {total:.17g}]; the transported mass "
            "must be at least 0 and at most min(a.sum(), b.sum())."
        )
    return min(mass, total)


def _check_weights(w, n: int, name: str) -> np.ndarray:
    """Return weights ``w`` (uniform when None) as float64 or raise."""
    if w is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,):
        raise PSMDInputError(
            f"{name} has shape {w.shape}; a 1-D array of length {n} matching the "
            "cost is required."
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise PSMDInputError(
            f"{name} must be finite and non-negative with a positive sum; "
            f"got min {w.min():.3g} and sum {w.sum():.3g}."
        )
    return w


def _capacities(n_x: int, n_y: int) -> tuple[int, int, int]:
    """Integer capacities of rows and columns, and the total flow."""
    g = gcd(n_x, n_y)
    return n_y // g, n_x // g, n_x * n_y // g


def _path_slopes(cost, delta, path_ptr, path_rows, path_cols) -> np.ndarray:
    """Cost per unit of flow of each augmenting path, from the float64 cost."""
    forward = cost[path_rows, path_cols]
    first = np.zeros(path_rows.size, bool)
    first[path_ptr[:-1]] = True
    previous = np.roll(path_cols, 1)
    backward = np.where(first, 0.0, cost[path_rows, previous])
    return np.add.reduceat(forward - backward, path_ptr[:-1]) if delta.size else delta


def _breakpoints(delta, slopes, total_flow):
    """Masses and costs where the slope of lambda(s) changes."""
    flows = np.cumsum(delta)
    values = np.cumsum(delta * slopes) / total_flow
    scale = np.abs(slopes).max() if slopes.size else 0.0
    gap = np.abs(np.diff(slopes))
    tol = SLOPE_RTOL * np.maximum(
        np.maximum(np.abs(slopes[1:]), np.abs(slopes[:-1])), scale
    )
    keep = np.r_[gap > tol, True]
    masses = np.r_[0.0, flows[keep] / total_flow]
    costs = np.r_[0.0, values[keep]]
    masses[-1] = 1.0
    return masses, costs


def _potentials_to_duals(pr, pc, p_source, supply):
    """Map flow potentials to ``f``, ``g`` with the dummy unit last.

    ``f_i + g_j <= C[i, j]`` (tight on the plan's support), ``g_dummy = 0`` and
    ``f_dummy = p_source``; a unit that keeps unmatched mass has dual score 0.
    """
    row = np.where(supply > 0, p_source, pr)
    f = np.r_[p_source - row, p_source]
    g = np.r_[pc - p_source, 0.0]
    return f, g


def _run_kernel(cost, stop_flow: int, dtype) -> tuple:
    """Run the successive-shortest-path kernel on ``cost`` cast to ``dtype``."""
    n_x, n_y = cost.shape
    cap_row, cap_col, _ = _capacities(n_x, n_y)
    kernel_cost = np.ascontiguousarray(cost, dtype=dtype)
    return _ssp.ssp_path(kernel_cost, cap_row, cap_col, stop_flow, _ssp.N_CANDIDATES)


@dataclass(frozen=True, eq=False)
class PartialPath:
    """The exact partial-OT path lambda(s) for every mass s in [0, 1].

    Built by :func:`exact_path`; uniform weights ``1/n_x`` and ``1/n_y``.

    Attributes
    ----------
    cost : ndarray of shape (n_x, n_y)
        The cost matrix (float64).
    masses : ndarray of shape (n_breaks,)
        Masses where the slope of lambda changes, from 0 to 1.
    costs : ndarray of shape (n_breaks,)
        lambda at each of ``masses``; linear in between.
    flow_per_augmentation : ndarray of int of shape (n_augmentations,)
        Flow moved by each augmentation, in units of ``1 / total_flow`` mass.
    slopes : ndarray of shape (n_augmentations,)
        Cost per unit mass of each augmentation (non-decreasing).
    path_ptr : ndarray of int of shape (n_augmentations + 1,)
        Augmentation k walks rows ``path_rows[path_ptr[k]:path_ptr[k + 1]]``
        and columns ``path_cols[...]`` alike: forward arcs ``(R_t, K_t)``,
        backward arcs ``(R_t, K_{t-1})``.
    path_rows, path_cols : ndarray of int
    total_flow : int
        ``n_x * n_y / gcd(n_x, n_y)``; plan = flow / total_flow.
    entry_mass_x, entry_mass_y : ndarray of shape (n_x,), (n_y,)
        Transported mass at which each unit first receives mass.
    first_partner_x, first_partner_y : ndarray of int of shape (n_x,), (n_y,)
        The unit each one is first matched to.
    f, g : ndarray of shape (n_x + 1,), (n_y + 1,)
        Dual potentials at mass 1, dummy unit last (see :func:`solve_exact`).
    dtype : str
        Precision the kernel compared costs in (``"float64"`` or ``"float32"``).
    time_s : float
        Wall time of the solve.
    """

    cost: np.ndarray
    masses: np.ndarray
    costs: np.ndarray
    flow_per_augmentation: np.ndarray
    slopes: np.ndarray
    path_ptr: np.ndarray
    path_rows: np.ndarray
    path_cols: np.ndarray
    total_flow: int
    entry_mass_x: np.ndarray
    entry_mass_y: np.ndarray
    first_partner_x: np.ndarray
    first_partner_y: np.ndarray
    f: np.ndarray
    g: np.ndarray
    dtype: str = "float64"
    time_s: float = 0.0

    @property
    def n_x(self) -> int:
        """Number of units of X."""
        return self.cost.shape[0]

    @property
    def n_y(self) -> int:
        """Number of units of Y."""
        return self.cost.shape[1]

    @property
    def n_augmentations(self) -> int:
        """Number of augmenting paths in the solve."""
        return int(self.flow_per_augmentation.size)

    @property
    def segment_slopes(self) -> np.ndarray:
        """Slope of lambda on each segment between ``masses``, shape (n_breaks - 1,)."""
        return np.diff(self.costs) / np.diff(self.masses)

    @property
    def ranking_x(self) -> np.ndarray:
        """Units of X, best aligned first: ascending entry mass.

        Ties (none arise from one solve, but kept for safety) go to the unit
        with the cheaper first partner.
        """
        tie = self.cost[np.arange(self.n_x), self.first_partner_x]
        return np.lexsort((tie, self.entry_mass_x))

    @property
    def ranking_y(self) -> np.ndarray:
        """Units of Y, best aligned first: ascending entry mass."""
        tie = self.cost[self.first_partner_y, np.arange(self.n_y)]
        return np.lexsort((tie, self.entry_mass_y))

    def _masses(self, mass) -> np.ndarray:
        """Validate masses (scalar or array) and clip round-off above 1."""
        m = np.asarray(mass, dtype=np.float64)
        bad = ~np.isfinite(m) | (m < 0) | (m > 1 + MASS_TOL)
        if bad.any():
            raise PSMDInputError(
                f"mass={float(np.ravel(m)[bad.ravel()][0])!r} is outside [0, 1]; "
                "the transported mass of the path must lie in [0, 1]."
            )
        return np.minimum(m, 1.0)

    def cost_at(self, mass):
        """Return lambda(mass), interpolating linearly between breakpoints.

        Parameters
        ----------
        mass : float or array-like
            Transported mass(es) in [0, 1].

        Returns
        -------
        float or ndarray
            Same shape as ``mass``.
        """
        m = self._masses(mass)
        out = np.interp(m, self.masses, self.costs)
        return float(out) if np.ndim(out) == 0 else out

    def _locate(self, mass: float) -> tuple[int, float]:
        """Number of whole augmentations below ``mass`` and the extra flow."""
        target = mass * self.total_flow
        flows = np.r_[0, np.cumsum(self.flow_per_augmentation)]
        n_full = int(np.searchsorted(flows, target, side="right")) - 1
        n_full = min(n_full, self.n_augmentations)
        return n_full, max(0.0, target - float(flows[n_full]))

    def plan_at(self, mass: float) -> np.ndarray:
        """Return the exact plan at ``mass``, shape (n_x, n_y), float64.

        Replays the augmentations (cheap: no new solve); the last one is
        taken in part.
        """
        n_full, extra = self._locate(float(self._masses(mass)))
        flow = _ssp.replay_plan(
            self.n_x,
            self.n_y,
            self.flow_per_augmentation,
            self.path_ptr,
            self.path_rows,
            self.path_cols,
            n_full,
            extra,
        )
        flow /= self.total_flow  # in place: the plan may be n_x * n_y * 8 bytes
        return flow

    def result_at(self, mass: float, *, duals: bool = True) -> PartialResult:
        """Return the exact :class:`~solver.result.PartialResult` at ``mass``.

        Parameters
        ----------
        mass : float
            Transported mass in [0, 1].
        duals : bool, default=True
            Also return dual potentials ``f``, ``g``. They are not stored along
            the path, so this re-runs the solver up to ``mass`` (at most the
            cost of one path solve); pass False for the plan alone.

        Returns
        -------
        PartialResult
            ``method="exact"``, ``n_iter`` = augmentations used.
        """
        mass = float(self._masses(mass))
        start = time.perf_counter()
        plan = self.plan_at(mass)
        f = g = None
        if duals:
            stop = min(int(np.ceil(mass * self.total_flow)), self.total_flow)
            out = _run_kernel(self.cost, stop, np.dtype(self.dtype))
            f, g = _potentials_to_duals(out[9], out[10], out[11], out[12])
        n_full, extra = self._locate(mass)
        return PartialResult(
            plan=plan,
            cost=self.cost,
            mass=mass,
            method="exact",
            converged=True,
            n_iter=n_full + (extra > 0),
            f=f,
            g=g,
            time_s=time.perf_counter() - start,
        )


def exact_path(cost: np.ndarray, *, dtype: type | str = np.float64) -> PartialPath:
    """Solve exact partial OT for every transported mass at once.

    Uniform weights ``a = 1/n_x`` and ``b = 1/n_y``. One run of successive
    shortest augmenting paths gives the whole convex, piecewise-linear
    lambda(s), the plan at any mass and the mass at which each unit enters
    the match.

    Parameters
    ----------
    cost : array-like of shape (n_x, n_y)
        Finite costs (any sign).
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Precision in which the kernel compares costs. float32 halves the
        memory of the kernel's copy of ``cost``; slopes and lambda are still
        summed from the float64 cost.

    Returns
    -------
    PartialPath

    Raises
    ------
    PSMDInputError
        ``cost`` not a finite 2-D numeric array, or an unsupported ``dtype``.

    Notes
    -----
    Time is dominated by Dijkstra searches that grow in the late, noisy part
    of the path; on planted data (1000 stimuli, 1 - r cost) a path takes about
    0.3 s at 2000 units and 6 s at 10,000 on one CPU core. The kernel is
    compiled by numba on first use (tens of seconds) and cached on disk.
    Memory: the cost (8 n_x n_y bytes, plus a copy in float32 mode) and small
    per-unit arrays; the augmentation log is usually a few times n_x + n_y.
    With float32, the chosen plans are optimal for the rounded costs, so
    lambda may exceed the float64 optimum by about 1e-7 relative and the
    slopes may dip by as much; it needs a float32 copy of the cost and was
    not faster than float64 in our measurements. ``plan_at`` and
    ``result_at`` build a dense (n_x, n_y) plan (800 MB at 10,000 units).

    Examples
    --------
    >>> import numpy as np
    >>> path = exact_path(np.array([[0.0, 1.0], [1.0, 0.5]]))
    >>> path.masses.tolist(), path.costs.tolist()
    ([0.0, 0.5, 1.0], [0.0, 0.0, 0.25])
    >>> path.cost_at(0.5), path.ranking_x.tolist()
    (0.0, [0, 1])
    """
    start = time.perf_counter()
    cost = _check_cost(cost)
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise PSMDInputError(
            f"dtype={dtype} is not supported; allowed: float64, float32."
        )
    n_x, n_y = cost.shape
    _, _, total_flow = _capacities(n_x, n_y)
    out = _run_kernel(cost, -1, dtype)
    delta, _, path_ptr, path_rows, path_cols = out[:5]
    entry_x, entry_y, first_col, first_row = out[5:9]
    slopes = _path_slopes(cost, delta, path_ptr, path_rows, path_cols)
    masses, costs = _breakpoints(delta, slopes, total_flow)
    f, g = _potentials_to_duals(out[9], out[10], out[11], out[12])
    return PartialPath(
        cost=cost,
        masses=masses,
        costs=costs,
        flow_per_augmentation=delta,
        slopes=slopes,
        path_ptr=path_ptr,
        path_rows=path_rows,
        path_cols=path_cols,
        total_flow=total_flow,
        entry_mass_x=entry_x / total_flow,
        entry_mass_y=entry_y / total_flow,
        first_partner_x=first_col,
        first_partner_y=first_row,
        f=f,
        g=g,
        dtype=dtype.name,
        time_s=time.perf_counter() - start,
    )


def _is_uniform(w, n: int) -> bool:
    """Whether weights ``w`` are None or all equal."""
    return w is None or (np.ndim(w) == 1 and len(w) == n and np.ptp(w) == 0)


def _solve_uniform(cost, mass: float, scale: float) -> PartialResult:
    """One mass with uniform weights of total ``scale``, by the kernel."""
    start = time.perf_counter()
    n_x, n_y = cost.shape
    _, _, total_flow = _capacities(n_x, n_y)
    fraction = min(mass / scale, 1.0)
    stop = min(int(np.ceil(fraction * total_flow)), total_flow)
    out = _run_kernel(cost, stop, np.float64)
    delta, _, path_ptr, path_rows, path_cols = out[:5]
    flows = np.r_[0, np.cumsum(delta)]
    target = fraction * total_flow
    n_full = min(int(np.searchsorted(flows, target, side="right")) - 1, delta.size)
    extra = max(0.0, target - float(flows[n_full]))
    flow = _ssp.replay_plan(
        n_x, n_y, delta, path_ptr, path_rows, path_cols, n_full, extra
    )
    f, g = _potentials_to_duals(out[9], out[10], out[11], out[12])
    return PartialResult(
        plan=np.multiply(flow, scale / total_flow, out=flow),
        cost=cost,
        mass=mass,
        method="exact",
        n_iter=int(delta.size),
        f=f,
        g=g,
        time_s=time.perf_counter() - start,
    )


def _emd(a, b, M):
    """POT's network simplex with a large iteration cap; warnings surfaced."""
    import ot

    n_iter_max = max(10_000_000, 50 * M.size)
    with warnings.catch_warnings():
        # POT warns on its own; the same message is re-issued below, once.
        warnings.simplefilter("ignore", UserWarning)
        plan, log = ot.emd(a, b, M, numItermax=n_iter_max, log=True)
    message = log.get("warning")
    if message:
        warnings.warn(
            f"network simplex did not certify optimality: {message}",
            PSMDConvergenceWarning,
            stacklevel=4,
        )
    return plan, log, not message


def _solve_general(cost, mass: float, a, b, total: float) -> PartialResult:
    """One mass with general weights: balanced or dummy-extended ``ot.emd``."""
    start = time.perf_counter()
    n_x, n_y = cost.shape
    balanced = abs(a.sum() - b.sum()) <= MASS_TOL * total
    if balanced and mass >= total - MASS_TOL * max(1.0, total):
        plan, log, ok = _emd(a, b * (a.sum() / b.sum()), cost)
        u, v = log["u"], log["v"]
        f = np.r_[u, -v.max()]
        g = np.r_[v, -u.max()]
    else:
        big = 2.0 * np.abs(cost).max() + 1.0
        M = np.zeros((n_x + 1, n_y + 1))
        M[:n_x, :n_y] = cost
        M[n_x, n_y] = big
        a_ext = np.r_[a, max(b.sum() - mass, 0.0)]
        b_ext = np.r_[b, max(a.sum() - mass, 0.0)]
        full, log, ok = _emd(a_ext, b_ext, M)
        plan = full[:n_x, :n_y]
        f, g = log["u"], log["v"]
    return PartialResult(
        plan=np.ascontiguousarray(plan),
        cost=cost,
        mass=mass,
        method="exact",
        converged=ok,
        f=f,
        g=g,
        time_s=time.perf_counter() - start,
    )


def solve_exact(
    cost: np.ndarray,
    mass: float,
    *,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
) -> PartialResult:
    """Solve exact partial OT at one transported mass.

    Minimises ``<plan, cost>`` over plans with row sums <= a, column sums <= b
    and total ``mass``.

    Parameters
    ----------
    cost : array-like of shape (n_x, n_y)
        Finite costs.
    mass : float
        Transported mass, ``0 <= mass <= min(a.sum(), b.sum())``; a value at
        most 1e-12 above that bound (round-off of ``sum(1/n)``) is taken as
        the bound, so ``mass=1`` works with uniform weights for every size.
    a : array-like of shape (n_x,), optional
        Weights of X's units; default uniform ``1/n_x``.
    b : array-like of shape (n_y,), optional
        Weights of Y's units; default uniform ``1/n_y``.

    Returns
    -------
    PartialResult
        ``method="exact"``. ``f``, ``g`` are LP dual potentials with the dummy
        unit last: ``f_i + g_j <= cost[i, j]``, tight where the plan is
        positive; ``-(f_i + g_dummy) >= 0`` is how much cheaper unit i's
        matches are than leaving it unmatched (0 for units with unmatched
        mass).

    Raises
    ------
    PSMDInputError
        Bad ``cost``, weights of the wrong shape or sign, or ``mass`` outside
        ``[0, min(a.sum(), b.sum())]``.

    Warns
    -----
    PSMDConvergenceWarning
        POT's network simplex stopped without certifying optimality
        (general weights only); the result has ``converged=False``.

    Notes
    -----
    Equal (or absent) weights on each side with equal totals use the
    successive-shortest-path kernel of :func:`exact_path`, stopped at
    ``mass``. Other weights use ``ot.emd`` on the problem extended by a dummy
    unit on each side (mass ``b.sum() - mass`` and ``a.sum() - mass``, cost 0
    to real units), or plain balanced ``ot.emd`` when the mass is the whole
    of equal totals.

    Examples
    --------
    >>> import numpy as np
    >>> res = solve_exact(np.array([[0.0, 1.0], [1.0, 0.5]]), 1.0)
    >>> round(res.transport_cost, 12), float(res.plan.sum())
    (0.25, 1.0)
    """
    cost = _check_cost(cost)
    n_x, n_y = cost.shape
    a_w = _check_weights(a, n_x, "a")
    b_w = _check_weights(b, n_y, "b")
    total = min(a_w.sum(), b_w.sum())
    if a is None and b is None:
        total = 1.0
    mass = _check_mass(mass, total)
    uniform = _is_uniform(a, n_x) and _is_uniform(b, n_y)
    if uniform and abs(a_w.sum() - b_w.sum()) <= MASS_TOL * total:
        return _solve_uniform(cost, mass, 1.0 if a is None and b is None else total)
    if mass == 0.0:
        return PartialResult(
            plan=np.zeros((n_x, n_y)), cost=cost, mass=0.0, method="exact"
        )
    return _solve_general(cost, mass, a_w, b_w, total)
