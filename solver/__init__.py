r"""Partial soft-matching distance between two neural representations.

Given responses ``X`` (n_stimuli × n_x) and ``Y`` (n_stimuli × n_y) to the
same stimuli, and a cost ``C[i, j]`` between unit i of X and unit j of Y
(by default ``1 - Pearson r``), partial optimal transport with unit weights
``a_i = 1/n_x`` and ``b_j = 1/n_y`` solves

.. math::

    \lambda(s) = \min_{P \ge 0} \langle P, C \rangle
    \quad\text{s.t.}\quad P\mathbf{1} \le a,\; P^\top\mathbf{1} \le b,\;
    \mathbf{1}^\top P \mathbf{1} = s .

``s`` is the transported ``mass``; ``unmatched = 1 - s`` (the ε of the app)
is left without a partner, so noisy or foreign units stay out of the match.
Scores: ``transport_cost`` λ(s); the paper's ``raw_score`` 1 − λ(s); the
``normalized_score`` 1 − λ(s)/s (mean correlation of matched pairs).

Public entry points are imported lazily so that ``import solver`` stays
cheap (torch and numba load only when a solver needs them).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "prepare": "solver.preprocessing",
    "Prepared": "solver.preprocessing",
    "PartialResult": "solver.result",
    "PSMDConvergenceWarning": "solver.exceptions",
    "PSMDInputError": "solver.exceptions",
    "solve_exact": "solver.exact",
    "exact_path": "solver.exact",
    "PartialPath": "solver.exact",
    "SinkhornSolver": "solver.sinkhorn",
    "compare": "solver.api",
    "path": "solver.api",
    "PartialSoftMatching": "solver.api",
    "load_pair": "solver.validation",
    "check_pair": "solver.validation",
    "load_representation": "solver.io",
    "load_matrix": "solver.io",
    "pair_from_models": "solver.models",
    "read_manifest": "solver.manifest",
    "run_batch": "solver.batch",
    "read_batch": "solver.batch",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'solver' has no attribute {name!r}")
