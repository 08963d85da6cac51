"""Validate, centre and mask two representations before any cost is built.

One unit mask is decided here, once, and every later step (costs, folds of
cross-validation, rankings) uses it. Excluded units are reported as
*excluded (degenerate)*, never as *unmatched*.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from solver.costs import compute_cost
from solver.exceptions import PSMDInputError

# A unit whose standard deviation is below this fraction of the largest
# standard deviation on its side is treated as constant (METHOD §1.2).
REL_STD_TOL = 1e-12


@dataclass(frozen=True)
class Exclusion:
    """One unit left out of the comparison, with the reason."""

    index: int
    reason: str


@dataclass(frozen=True)
class Prepared:
    """Centred, masked inputs and their cost matrix.

    Attributes
    ----------
    X, Y : ndarray of shape (n_stimuli, n_x), (n_stimuli, n_y)
        Centred float64 responses of the kept units only.
    cost : ndarray of shape (n_x, n_y)
        Cost between kept units.
    keep_x, keep_y : ndarray of int
        Original column index of each kept unit.
    excluded_x, excluded_y : list of Exclusion
        Units left out, with the reason.
    cost_name : str
        ``"correlation"`` or ``"sqeuclidean"``.
    n_x_in, n_y_in : int
        Number of units given, kept or not.
    """

    X: np.ndarray
    Y: np.ndarray
    cost: np.ndarray
    keep_x: np.ndarray
    keep_y: np.ndarray
    excluded_x: list[Exclusion] = field(default_factory=list)
    excluded_y: list[Exclusion] = field(default_factory=list)
    cost_name: str = "correlation"
    n_x_in: int = 0
    n_y_in: int = 0

    @property
    def n_x(self) -> int:
        """Number of kept units of X."""
        return int(self.keep_x.size)

    @property
    def n_y(self) -> int:
        """Number of kept units of Y."""
        return int(self.keep_y.size)


def as_numeric(A, name: str) -> np.ndarray:
    """Return ``A`` as a numeric numpy array (any shape) or raise a one-line error.

    Torch tensors are copied to the CPU; object arrays are refused (they can
    hide arbitrary Python objects), and so is text.
    """
    if hasattr(A, "detach"):  # a torch tensor
        A = A.detach().cpu().numpy()
    A = np.asarray(A)
    if A.dtype == object:
        raise PSMDInputError(
            f"{name} holds Python objects; a numeric array is required."
        )
    if A.dtype.kind not in "biuf":
        raise PSMDInputError(
            f"{name} has dtype {A.dtype}; a numeric (int or float) array is required."
        )
    return A


def as_matrix(A, name: str) -> np.ndarray:
    """Return ``A`` as a 2-D float64 array or raise a one-line error."""
    A = as_numeric(A, name)
    if A.ndim != 2:
        raise PSMDInputError(
            f"{name} has {A.ndim} dimension(s) with shape {A.shape}; "
            "a 2-D array of stimuli x units is required."
        )
    return A.astype(np.float64, copy=False)


def unit_mask(A: np.ndarray) -> tuple[np.ndarray, list[Exclusion]]:
    """Find the usable columns of one side.

    A unit is excluded when it holds a NaN or infinite value, or when its
    standard deviation over stimuli is below ``REL_STD_TOL`` times the largest
    one on that side (zero variance after centring).

    Returns
    -------
    keep : ndarray of bool of shape (n_units,)
    excluded : list of Exclusion
    """
    finite = np.isfinite(A).all(axis=0)
    std = np.zeros(A.shape[1])
    if finite.any():
        std[finite] = A[:, finite].std(axis=0)
    top = std.max() if std.size else 0.0
    constant = finite & (std <= REL_STD_TOL * top) if top > 0 else finite.copy()
    excluded = []
    for j in np.flatnonzero(~finite):
        excluded.append(Exclusion(int(j), "non-finite values (NaN or Inf)"))
    for j in np.flatnonzero(constant):
        excluded.append(Exclusion(int(j), "constant over stimuli (zero variance)"))
    excluded.sort(key=lambda e: e.index)
    return finite & ~constant, excluded


def prepare(X, Y, cost: str = "correlation", *, warn: bool = True) -> Prepared:
    """Validate two representations, drop degenerate units, centre, build the cost.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_x)
        Responses of the first system; rows are stimuli, columns units.
    Y : array-like of shape (n_stimuli, n_y)
        Responses of the second system to the same stimuli, same row order.
    cost : {"correlation", "sqeuclidean"}, default="correlation"
        ``1 - Pearson r`` or squared Euclidean distance of centred curves.
    warn : bool, default=True
        Issue a ``UserWarning`` naming how many units were excluded.

    Returns
    -------
    Prepared

    Raises
    ------
    PSMDInputError
        Wrong dimensionality or dtype, different numbers of stimuli, fewer
        than two stimuli, or fewer than two usable units on a side.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 3)); Y = np.c_[X, np.ones(20)]
    >>> p = prepare(X, Y, warn=False)
    >>> p.cost.shape, [e.index for e in p.excluded_y]
    ((3, 3), [3])
    """
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise PSMDInputError(
            f"X has {X.shape[0]} stimuli (rows) and Y has {Y.shape[0]}; "
            "both must hold the same stimuli in the same order."
        )
    if X.shape[0] < 2:
        raise PSMDInputError(
            f"only {X.shape[0]} stimulus (row) given; at least 2 are required."
        )
    masks = []
    for A, name in ((X, "X"), (Y, "Y")):
        keep, excluded = unit_mask(A)
        if keep.sum() < 2:
            raise PSMDInputError(
                f"{name} has {int(keep.sum())} usable unit(s) of {A.shape[1]}; "
                "at least 2 non-constant, finite units (columns) are required."
            )
        masks.append((keep, excluded))
    (kx, ex), (ky, ey) = masks
    if warn and (ex or ey):
        warnings.warn(
            f"excluded {len(ex)} unit(s) of X and {len(ey)} of Y as degenerate "
            "(constant or non-finite); see Prepared.excluded_x / excluded_y.",
            UserWarning,
            stacklevel=2,
        )
    Xc = X[:, kx] - X[:, kx].mean(axis=0)
    Yc = Y[:, ky] - Y[:, ky].mean(axis=0)
    return Prepared(
        X=Xc,
        Y=Yc,
        cost=compute_cost(Xc, Yc, cost),
        keep_x=np.flatnonzero(kx),
        keep_y=np.flatnonzero(ky),
        excluded_x=ex,
        excluded_y=ey,
        cost_name=cost,
        n_x_in=X.shape[1],
        n_y_in=Y.shape[1],
    )
