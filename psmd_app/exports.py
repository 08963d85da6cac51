"""Exports: ranking CSV, plan NPZ and a settings-and-provenance JSON.

Pure functions of a problem, a result and (optionally) the ε-curves; the
callbacks only hand their output to ``dcc.Download``.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time

import numpy as np

from psmd_app.data import Problem
from psmd_app.settings import Settings
from psmd_app.state import Curves
from solver.result import PartialResult

CSV_COLUMNS = (
    "side",
    "unit",
    "label",
    "rank",
    "entry_mass",
    "entry_unmatched",
    "matched_fraction",
    "best_match",
    "best_match_tuning_r",
)


def best_matches(result: PartialResult, side: str) -> np.ndarray:
    """Kept unit of the other side receiving most of each unit's mass.

    Units without mass fall back to the one with the lowest cost.
    """
    plan = result.plan if side == "x" else result.plan.T
    cost = result.cost if side == "x" else result.cost.T
    best = plan.argmax(axis=1)
    empty = plan.max(axis=1) <= 0
    best[empty] = cost[empty].argmin(axis=1)
    return best


def tuning_r(problem: Problem, side: str, unit: int, partner: int) -> float:
    """Pearson correlation between a kept unit and a kept unit of the other side."""
    p = problem.prepared
    a = (p.X if side == "x" else p.Y)[:, unit]
    b = (p.Y if side == "x" else p.X)[:, partner]
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _tuning_rs(problem: Problem, side: str, partners: np.ndarray) -> np.ndarray:
    p = problem.prepared
    A, B = (p.X, p.Y) if side == "x" else (p.Y, p.X)
    A = A / np.linalg.norm(A, axis=0)
    B = B / np.linalg.norm(B, axis=0)
    return np.einsum("ij,ij->j", A, B[:, partners])


def ranking_csv(problem: Problem, result: PartialResult, curves: Curves | None) -> str:
    """Both sides' units with rank, entry mass, matched share and best match.

    Unit and best-match numbers are column indices in the dataset (before
    degenerate units were excluded). Entry columns are empty when no
    ε-curves are available yet.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    keep = problem.keep
    for side in ("x", "y"):
        other = "y" if side == "x" else "x"
        if curves is not None:
            ranking = curves.ranking_x if side == "x" else curves.ranking_y
            entry = curves.entry_mass_x if side == "x" else curves.entry_mass_y
        else:
            ranking, entry = result.ranking(side), None
        rank_of = np.empty(ranking.size, dtype=int)
        rank_of[ranking] = np.arange(ranking.size)
        frac = result.matched_fraction_x if side == "x" else result.matched_fraction_y
        best = best_matches(result, side)
        rs = _tuning_rs(problem, side, best)
        labels = problem.labels_x if side == "x" else problem.labels_y
        for pos in ranking:
            writer.writerow(
                [
                    side,
                    int(keep[side][pos]),
                    labels[pos],
                    int(rank_of[pos]),
                    "" if entry is None else f"{entry[pos]:.6g}",
                    "" if entry is None else f"{1 - entry[pos]:.6g}",
                    f"{frac[pos]:.6g}",
                    int(keep[other][best[pos]]),
                    f"{rs[pos]:.6g}",
                ]
            )
    return buffer.getvalue()


def plan_npz(problem: Problem, result: PartialResult) -> bytes:
    """The plan over kept units with the unit indices and the scores, as NPZ."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        plan=result.plan,
        keep_x=problem.prepared.keep_x,
        keep_y=problem.prepared.keep_y,
        mass=np.float64(result.mass),
        unmatched=np.float64(result.unmatched),
        transport_cost=np.float64(result.transport_cost),
        raw_score=np.float64(result.raw_score),
        normalized_score=np.float64(result.normalized_score),
        method=np.str_(result.method),
        cost=np.str_(problem.cost_name),
    )
    return buffer.getvalue()


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def provenance(
    problem: Problem,
    result: PartialResult,
    settings: Settings,
    *,
    result_key: str,
    curves: Curves | None,
    versions: dict,
) -> dict:
    """Settings, scores, solver report, software versions and input hashes."""
    return {
        "settings": settings.to_dict(),
        "dataset": {
            "name": problem.dataset,
            "view": problem.view,
            "sha256_x": problem.digest_x,
            "sha256_y": problem.digest_y,
            "n_x": problem.n_x,
            "n_y": problem.n_y,
            "excluded_x": [e.index for e in problem.prepared.excluded_x],
            "excluded_y": [e.index for e in problem.prepared.excluded_y],
        },
        "scores": {
            "mass": result.mass,
            "unmatched": result.unmatched,
            "transport_cost": result.transport_cost,
            "raw_score": result.raw_score,
            "normalized_score": _finite(result.normalized_score),
            "coverage_x": result.coverage_x,
            "coverage_y": result.coverage_y,
        },
        "solver": {
            "method": result.method,
            "device": result.device,
            "reg": result.reg,
            "n_iter": result.n_iter,
            "converged": bool(result.converged),
            "marginal_error": result.marginal_error,
            "time_s": result.time_s,
        },
        "curves": None
        if curves is None
        else {
            "source": curves.source,
            "detail": curves.detail,
            "elbow_mass": curves.elbow_mass,
            "elbow_message": curves.elbow_message,
        },
        "cache_keys": {"problem": problem.key, "result": result_key},
        "versions": {**versions, "python": platform.python_version()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def provenance_json(*args, **kwargs) -> str:
    """:func:`provenance` as indented JSON text."""
    return json.dumps(provenance(*args, **kwargs), indent=2, default=str)
