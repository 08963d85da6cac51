"""Cost matrices between the units of two representations.

Both costs take *centred* representations (see :mod:`solver.preprocessing`)
of shape (n_stimuli, n_x) and (n_stimuli, n_y) and return a float64 array of
shape (n_x, n_y).
"""

from __future__ import annotations

import numpy as np

from solver.exceptions import PSMDInputError

COSTS = ("correlation", "sqeuclidean")


def correlation_cost(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Return ``1 - Pearson r`` between every unit of X and every unit of Y.

    Parameters
    ----------
    X : ndarray of shape (n_stimuli, n_x)
        Column-centred responses; no column may have zero norm.
    Y : ndarray of shape (n_stimuli, n_y)
        Column-centred responses; no column may have zero norm.

    Returns
    -------
    cost : ndarray of shape (n_x, n_y)
        Values in [0, 2].

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> correlation_cost(X, X).round(6).tolist()
    [[0.0, 2.0], [2.0, 0.0]]
    """
    Xn = X / np.linalg.norm(X, axis=0, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=0, keepdims=True)
    # Clipping removes round-off outside [-1, 1] so the cost stays in [0, 2].
    r = np.clip(Xn.T @ Yn, -1.0, 1.0)
    return 1.0 - r


def sqeuclidean_cost(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Return the squared Euclidean distance between unit tuning curves.

    Computed directly from norms and inner products and clamped at 0, so
    near-identical units never produce a negative value or NaN.

    Parameters
    ----------
    X : ndarray of shape (n_stimuli, n_x)
    Y : ndarray of shape (n_stimuli, n_y)

    Returns
    -------
    cost : ndarray of shape (n_x, n_y)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0], [0.0]]); Y = np.array([[0.0], [2.0]])
    >>> float(sqeuclidean_cost(X, Y)[0, 0])
    5.0
    """
    sx = np.einsum("ij,ij->j", X, X)
    sy = np.einsum("ij,ij->j", Y, Y)
    d = sx[:, None] + sy[None, :] - 2.0 * (X.T @ Y)
    return np.maximum(d, 0.0)


def compute_cost(X: np.ndarray, Y: np.ndarray, cost: str = "correlation") -> np.ndarray:
    """Dispatch to the cost named ``cost`` (one of :data:`COSTS`)."""
    if cost == "correlation":
        return correlation_cost(X, Y)
    if cost == "sqeuclidean":
        return sqeuclidean_cost(X, Y)
    raise PSMDInputError(f"cost={cost!r} is not known; allowed: {', '.join(COSTS)}.")
