"""Synthetic pairs of representations with a known correspondence.

``planted_pair`` is the paper's spurious-neuron generator (METHOD §4.1) with
an explicit seed; ``model_selection_triplet`` builds X, Y_a and Y_b of §4.2;
``noisy_copies`` builds large pairs where a share of Y's units are noisy
copies of X's units (used by benchmarks at thousands of units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlantedPair:
    """Two representations and the ground truth that links them.

    Attributes
    ----------
    X, Y : ndarray of shape (n_stimuli, n_x), (n_stimuli, n_y)
    signal_x, signal_y : ndarray of bool of shape (n_x,), (n_y,)
        True for signal units, False for pure-noise units.
    partner_x : ndarray of int of shape (n_x,)
        Index in Y of the unit sharing unit i's support, -1 for none.
    """

    X: np.ndarray
    Y: np.ndarray
    signal_x: np.ndarray
    signal_y: np.ndarray
    partner_x: np.ndarray


def _factors(rng: np.random.Generator, n_stimuli: int, n_factors: int) -> np.ndarray:
    """Orthonormal (n_stimuli, n_factors) basis from the QR of a Gaussian."""
    Q, _ = np.linalg.qr(rng.standard_normal((n_stimuli, n_factors)))
    return Q


def _signal(rng, F, support) -> np.ndarray:
    """Responses F (S * W) with fresh Gaussian weights on a fixed support."""
    W = rng.standard_normal(support.shape)
    return F @ (support * W)


def planted_pair(
    n_signal: int = 100,
    n_noise_x: int = 20,
    n_noise_y: int = 90,
    *,
    n_stimuli: int = 1000,
    n_factors: int = 50,
    threshold: float = 0.9,
    seed: int = 0,
) -> PlantedPair:
    """Draw the spurious-neuron pair of the paper (METHOD §4.1).

    Signal unit i of X and of Y share a random sparse support over
    ``n_factors`` orthonormal latent factors, each with its own Gaussian
    weights; noise units are i.i.d. N(0, 1) columns appended after the signal
    units. The ideal transported mass is ``n_signal / (n_signal + n_noise_y)``
    when Y has more noise than X.

    Parameters
    ----------
    n_signal, n_noise_x, n_noise_y : int
        Unit counts; default=100, 20, 90 as in the paper.
    n_stimuli : int, default=1000
    n_factors : int, default=50
    threshold : float, default=0.9
        A factor enters a unit's support where a standard normal draw exceeds
        this value (about 18% of factors for 0.9). The paper's code calls it
        "sparsity" although it is a threshold, not a share of zeros.
    seed : int, default=0

    Returns
    -------
    PlantedPair

    Examples
    --------
    >>> p = planted_pair(seed=1)
    >>> p.X.shape, p.Y.shape, int(p.signal_y.sum())
    ((1000, 120), (1000, 190), 100)
    """
    rng = np.random.default_rng(seed)
    F = _factors(rng, n_stimuli, n_factors)
    support = (rng.standard_normal((n_factors, n_signal)) > threshold).astype(float)
    X = np.hstack(
        [_signal(rng, F, support), rng.standard_normal((n_stimuli, n_noise_x))]
    )
    Y = np.hstack(
        [_signal(rng, F, support), rng.standard_normal((n_stimuli, n_noise_y))]
    )
    partner = np.r_[np.arange(n_signal), -np.ones(n_noise_x, dtype=int)]
    return PlantedPair(
        X=X,
        Y=Y,
        signal_x=np.r_[np.ones(n_signal, bool), np.zeros(n_noise_x, bool)],
        signal_y=np.r_[np.ones(n_signal, bool), np.zeros(n_noise_y, bool)],
        partner_x=partner,
    )


def model_selection_triplet(
    *,
    n_stimuli: int = 1000,
    n_factors: int = 50,
    threshold: float = 0.9,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw X, Y_a and Y_b of the model-selection experiment (METHOD §4.2).

    X has 100 signal units. Y_a has the same 100 supports plus 60 noise units
    (the right model). Y_b has only supports 20-99 (80 units) plus 20 noise.

    Returns
    -------
    X, Y_a, Y_b : ndarray of shape (n_stimuli, 100), (n_stimuli, 160),
        (n_stimuli, 100)
    """
    rng = np.random.default_rng(seed)
    F = _factors(rng, n_stimuli, n_factors)
    support = (rng.standard_normal((n_factors, 100)) > threshold).astype(float)
    X = _signal(rng, F, support)
    Y_a = np.hstack([_signal(rng, F, support), rng.standard_normal((n_stimuli, 60))])
    Y_b = np.hstack(
        [_signal(rng, F, support[:, 20:]), rng.standard_normal((n_stimuli, 20))]
    )
    return X, Y_a, Y_b


def noisy_copies(
    n_units: int,
    *,
    n_stimuli: int = 1000,
    copy_fraction: float = 0.25,
    noise: float = 1.0,
    seed: int = 0,
) -> PlantedPair:
    """Draw a large pair where a share of Y's units are noisy copies of X's.

    Both sides have ``n_units`` units. The first ``copy_fraction * n_units``
    units of Y are X's first units plus Gaussian noise of standard deviation
    ``noise``; every other unit of either side is independent noise. This is
    the planted instance the benchmarks share with ``ANCHORS.md``.

    Examples
    --------
    >>> p = noisy_copies(40, n_stimuli=50, seed=0)
    >>> p.X.shape, int(p.signal_y.sum())
    ((50, 40), 10)
    """
    rng = np.random.default_rng(seed)
    k = int(round(copy_fraction * n_units))
    X = rng.standard_normal((n_stimuli, n_units))
    Y = rng.standard_normal((n_stimuli, n_units))
    Y[:, :k] = X[:, :k] + noise * rng.standard_normal((n_stimuli, k))
    signal = np.zeros(n_units, bool)
    signal[:k] = True
    partner = np.where(signal, np.arange(n_units), -1)
    return PlantedPair(
        X=X, Y=Y, signal_x=signal, signal_y=signal.copy(), partner_x=partner
    )
