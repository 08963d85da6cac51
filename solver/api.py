"""One-call functions and a scikit-learn style estimator for notebooks.

>>> import numpy as np
>>> from solver import compare
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 30)); Y = X[:, ::-1] + 0.1 * rng.normal(size=(200, 30))
>>> c = compare(X, Y, unmatched=0.2)
>>> round(c.result.normalized_score, 2) > 0.9
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.exceptions import PSMDInputError
from solver.preprocessing import Prepared, as_matrix, prepare
from solver.result import PartialResult

METHODS = ("exact", "sinkhorn")


def resolve_mass(unmatched: float | None = None, mass: float | None = None) -> float:
    """Turn the user's ``unmatched`` (ε) or ``mass`` (s) into a transported mass.

    Exactly one may be given; with neither, the full soft-matching mass 1 is
    used.

    Raises
    ------
    PSMDInputError
        Both given, or a value outside its range (0 <= unmatched < 1,
        0 < mass <= 1).
    """
    if unmatched is not None and mass is not None:
        raise PSMDInputError("give either unmatched (ε) or mass (s = 1 - ε), not both.")
    if unmatched is not None:
        if not (np.isfinite(unmatched) and 0.0 <= unmatched < 1.0):
            raise PSMDInputError(
                f"unmatched={unmatched!r} is out of range; allowed: 0 <= unmatched < 1."
            )
        return 1.0 - float(unmatched)
    if mass is not None:
        if not (np.isfinite(mass) and 0.0 < mass <= 1.0):
            raise PSMDInputError(
                f"mass={mass!r} is out of range; allowed: 0 < mass <= 1."
            )
        return float(mass)
    return 1.0


def _original(indices: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Map indices among kept units back to the caller's column indices."""
    return keep[np.asarray(indices, dtype=int)]


def _scatter(values: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """Place per-kept-unit values into an array over all units (NaN elsewhere)."""
    out = np.full(n, np.nan)
    out[keep] = values
    return out


@dataclass(frozen=True)
class Comparison:
    """Outcome of :func:`compare`.

    Attributes
    ----------
    result : PartialResult
        The solve on the kept units (indices there are among kept units).
    prepared : Prepared
        Centred inputs, cost, unit masks and exclusions.
    ranking_x, ranking_y : ndarray of int
        Original column indices of the kept units, best aligned first.
    entry_mass_x, entry_mass_y : ndarray or None
        Mass at which each kept unit enters the plan (exact method only),
        in kept-unit order.
    """

    result: PartialResult
    prepared: Prepared
    ranking_x: np.ndarray
    ranking_y: np.ndarray
    entry_mass_x: np.ndarray | None = None
    entry_mass_y: np.ndarray | None = None

    def plan_full(self) -> np.ndarray:
        """Return the plan over all given units (zeros for excluded ones)."""
        p = self.prepared
        full = np.zeros((p.n_x_in, p.n_y_in))
        full[np.ix_(p.keep_x, p.keep_y)] = self.result.plan
        return full

    def to_dict(self) -> dict:
        """Summarise as JSON-ready numbers (what ``psmd compare --json`` prints)."""
        r, p = self.result, self.prepared
        return {
            "mass": r.mass,
            "unmatched": r.unmatched,
            "transport_cost": r.transport_cost,
            "raw_score": r.raw_score,
            "normalized_score": _json_float(r.normalized_score),
            "coverage_x": r.coverage_x,
            "coverage_y": r.coverage_y,
            "n_x": p.n_x,
            "n_y": p.n_y,
            "cost": p.cost_name,
            "ranking_x": self.ranking_x.tolist(),
            "ranking_y": self.ranking_y.tolist(),
            "excluded_x": [
                {"index": e.index, "reason": e.reason} for e in p.excluded_x
            ],
            "excluded_y": [
                {"index": e.index, "reason": e.reason} for e in p.excluded_y
            ],
            "method": r.method,
            "converged": bool(r.converged),
            "marginal_error": r.marginal_error,
            "n_iter": r.n_iter,
            "reg": r.reg,
            "device": r.device,
            "time_s": r.time_s,
        }


def _json_float(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def compare(
    X,
    Y,
    *,
    unmatched: float | None = None,
    mass: float | None = None,
    cost: str = "correlation",
    method: str = "exact",
    reg: float | None = None,
    device: str = "auto",
) -> Comparison:
    """Compare two representations at one unmatched mass.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_x)
    Y : array-like of shape (n_stimuli, n_y)
    unmatched : float, optional
        ε, the mass left unmatched (0 <= ε < 1). Give this or ``mass``.
    mass : float, optional
        s = 1 - ε, the transported mass (0 < s <= 1). Default 1 when neither
        is given (plain soft matching).
    cost : {"correlation", "sqeuclidean"}, default="correlation"
    method : {"exact", "sinkhorn"}, default="exact"
        ``exact`` solves the whole ε-path once (so rankings come by entry
        mass); ``sinkhorn`` is entropic and scales to larger sizes.
    reg : float, optional
        Entropic regularisation for ``sinkhorn`` (cost units); default
        0.01 × mean cost.
    device : {"auto", "cpu", "cuda", "mps"}, default="auto"
        Where Sinkhorn runs.

    Returns
    -------
    Comparison
    """
    s = resolve_mass(unmatched, mass)
    if method not in METHODS:
        raise PSMDInputError(
            f"method={method!r} is not known; allowed: exact, sinkhorn."
        )
    p = prepare(X, Y, cost)
    if method == "exact":
        from solver.exact import exact_path

        path = exact_path(p.cost)
        result = path.result_at(s)
        return Comparison(
            result=result,
            prepared=p,
            ranking_x=_original(path.ranking_x, p.keep_x),
            ranking_y=_original(path.ranking_y, p.keep_y),
            entry_mass_x=path.entry_mass_x,
            entry_mass_y=path.entry_mass_y,
        )
    from solver.sinkhorn import SinkhornSolver

    result = SinkhornSolver(reg=reg, device=device)(p.cost, s)
    return Comparison(
        result=result,
        prepared=p,
        ranking_x=_original(result.ranking("x"), p.keep_x),
        ranking_y=_original(result.ranking("y"), p.keep_y),
    )


@dataclass(frozen=True)
class PathSummary:
    """Outcome of :func:`path`: the exact ε-path and the chosen elbow."""

    path: object
    prepared: Prepared
    elbow: object
    ranking_x: np.ndarray
    ranking_y: np.ndarray

    def to_dict(self) -> dict:
        """Summarise as JSON-ready numbers (what ``psmd path --json`` prints)."""
        pa, p = self.path, self.prepared
        ex = _scatter(pa.entry_mass_x, p.keep_x, p.n_x_in)
        ey = _scatter(pa.entry_mass_y, p.keep_y, p.n_y_in)
        return {
            "masses": np.asarray(pa.masses).tolist(),
            "costs": np.asarray(pa.costs).tolist(),
            "entry_mass_x": [_json_float(v) for v in ex],
            "entry_mass_y": [_json_float(v) for v in ey],
            "ranking_x": self.ranking_x.tolist(),
            "ranking_y": self.ranking_y.tolist(),
            "elbow": float(self.elbow.mass) if self.elbow.found else None,
            "elbow_message": self.elbow.message,
            "n_x": p.n_x,
            "n_y": p.n_y,
            "cost": p.cost_name,
            "excluded_x": [
                {"index": e.index, "reason": e.reason} for e in p.excluded_x
            ],
            "excluded_y": [
                {"index": e.index, "reason": e.reason} for e in p.excluded_y
            ],
        }


def path(X, Y, *, cost: str = "correlation", n_points: int = 100) -> PathSummary:
    """Solve the whole exact ε-path once and locate the L-curve elbow.

    The elbow is found on the in-sample exact curve λ(s) evaluated on
    ``n_points`` uniform masses in [0, 1) (METHOD §2, ends trimmed); when
    there is no clear elbow ``elbow.found`` is False.
    """
    import warnings

    from solver.exact import exact_path
    from solver.selection import select_mass

    p = prepare(X, Y, cost)
    pa = exact_path(p.cost)
    grid = np.linspace(0.0, 1.0, n_points, endpoint=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        elbow = select_mass(grid, pa.cost_at(grid))
    return PathSummary(
        path=pa,
        prepared=p,
        elbow=elbow,
        ranking_x=_original(pa.ranking_x, p.keep_x),
        ranking_y=_original(pa.ranking_y, p.keep_y),
    )


class PartialSoftMatching:
    """Partial soft-matching between two representations, fit/score style.

    Parameters
    ----------
    unmatched : float, default=0.1
        ε, mass left unmatched (0 <= ε < 1). Ignored when ``mass`` is given.
    mass : float, optional
        s = 1 - ε.
    cost : {"correlation", "sqeuclidean"}, default="correlation"
    method : {"exact", "sinkhorn"}, default="exact"
    reg : float, optional
        Entropic regularisation for Sinkhorn.
    device : str, default="auto"

    Attributes
    ----------
    plan_ : ndarray of shape (n_x_kept, n_y_kept)
    result_ : PartialResult
    keep_x_, keep_y_ : ndarray of int
        Kept unit columns; the same mask is applied in :meth:`score`.
    ranking_x_, ranking_y_ : ndarray of int
        Original column indices, best aligned first.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(300, 20)); Y = X + 0.3 * rng.normal(size=(300, 20))
    >>> m = PartialSoftMatching(unmatched=0.25).fit(X[:200], Y[:200])
    >>> m.score(X[200:], Y[200:]) > 0.8
    True
    """

    def __init__(
        self,
        *,
        unmatched: float = 0.1,
        mass: float | None = None,
        cost: str = "correlation",
        method: str = "exact",
        reg: float | None = None,
        device: str = "auto",
    ) -> None:
        self.unmatched = unmatched
        self.mass = mass
        self.cost = cost
        self.method = method
        self.reg = reg
        self.device = device

    _PARAMS = ("unmatched", "mass", "cost", "method", "reg", "device")

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters (scikit-learn convention; ``clone`` works)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params) -> PartialSoftMatching:
        """Set constructor parameters; unknown names are refused."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise PSMDInputError(
                    f"{name!r} is not a parameter; allowed: {', '.join(self._PARAMS)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"PartialSoftMatching({args})"

    def fit(self, X, Y) -> PartialSoftMatching:
        """Solve for the plan on (X, Y) and store it; returns ``self``.

        Parameters are checked here, not in ``__init__`` (scikit-learn's
        convention), so ``set_params`` and ``clone`` behave.
        """
        c = compare(
            X,
            Y,
            unmatched=None if self.mass is not None else self.unmatched,
            mass=self.mass,
            cost=self.cost,
            method=self.method,
            reg=self.reg,
            device=self.device,
        )
        self.comparison_ = c
        self.result_ = c.result
        self.plan_ = c.result.plan
        self.keep_x_ = c.prepared.keep_x
        self.keep_y_ = c.prepared.keep_y
        self.ranking_x_ = c.ranking_x
        self.ranking_y_ = c.ranking_y
        return self

    def score(self, X, Y, *, kind: str = "normalized") -> float:
        """Score the fitted plan on (possibly held-out) stimuli.

        The fitted unit mask is reused; the new data are centred with their own
        means. ``kind`` is ``"normalized"`` (1 - <P, C> / s, default), ``"raw"``
        (1 - <P, C>) or ``"transport_cost"`` (<P, C>).
        """
        from solver.costs import compute_cost

        if not hasattr(self, "plan_"):
            raise PSMDInputError(
                "this PartialSoftMatching is not fitted; call fit first."
            )
        X = as_matrix(X, "X")[:, self.keep_x_]
        Y = as_matrix(Y, "Y")[:, self.keep_y_]
        if X.shape[0] != Y.shape[0]:
            raise PSMDInputError(
                f"X has {X.shape[0]} stimuli and Y has {Y.shape[0]}; they must match."
            )
        Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            C = compute_cost(Xc, Yc, self.cost)
        # A unit constant on these stimuli has no correlation: count it as r = 0.
        C = np.where(np.isfinite(C), C, 1.0)
        tc = float(np.sum(self.plan_ * C))
        s = float(self.plan_.sum())
        if kind == "transport_cost":
            return tc
        if kind == "raw":
            return 1.0 - tc
        if kind == "normalized":
            return float("nan") if s <= 0 else 1.0 - tc / s
        raise PSMDInputError(
            f"kind={kind!r} is not known; allowed: normalized, raw, transport_cost."
        )

    def fit_score(self, X, Y, *, kind: str = "normalized") -> float:
        """Fit on (X, Y) and score on the same data (in-sample)."""
        return self.fit(X, Y).score(X, Y, kind=kind)
