"""Ranking agreement (METHOD §3): do the cheap rankings match brute force?

Units of each side are ranked four ways: by the mass at which they enter the
exact path (one solve); by a sweep of 20 masses (exact plans, and entropic
Sinkhorn plans), entry on the grid with ties broken by the area under the
unit's participation curve; by brute-force leave-one-out refits of full soft
matching (one solve per unit); and by correlation ordering (each unit
against the other side projected through the full soft-matching plan).
A naive ranking by each unit's best single correlation is added for scale.
Rankings are compared by Spearman correlation and top-k overlap, on the
planted pair and on the three layer pairs of the digit CNNs.

    python -m examples.ranking_agreement --out examples/_out/ranking_agreement
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

import sample_data
from examples import _common
from solver import baselines, synthetic
from solver.exceptions import PSMDConvergenceWarning
from solver.sinkhorn import SinkhornSolver

NAME = "ranking_agreement"
METHODS = (
    "exact_path",
    "sweep_exact",
    "sweep_sinkhorn",
    "brute_force",
    "correlation",
    "best_partner",
)
REFERENCE = "brute_force"
SWEEP = np.linspace(0.05, 1.0, 20)
SINKHORN_ACTIVE = 1e-3


def _sweep_ranking(fractions: np.ndarray, threshold: float) -> np.ndarray:
    """Rank units by first grid mass at which they are active, then by area.

    ``fractions`` has shape (n_masses, n_units): each unit's matched share of
    its weight at each grid mass (ascending).
    """
    active = fractions > threshold
    first = np.where(active.any(axis=0), np.argmax(active, axis=0), len(fractions))
    area = fractions.mean(axis=0)
    return np.lexsort((-area, first))


def _exact_sweep(path) -> tuple[np.ndarray, np.ndarray]:
    """Participation of every unit at each sweep mass, from exact plans."""
    plans = [path.plan_at(float(s)) for s in SWEEP]
    fx = np.stack([p.sum(axis=1) * path.n_x for p in plans])
    fy = np.stack([p.sum(axis=0) * path.n_y for p in plans])
    return fx, fy


def _sinkhorn_sweep(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Participation at each sweep mass from one batched Sinkhorn solve.

    The tolerance is the app's for its sweeps (1e-4 marginal error).
    """
    solver = SinkhornSolver(device="cpu", tol=1e-4, max_iter=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PSMDConvergenceWarning)
        results = solver.solve_many(cost, SWEEP)
    fx = np.stack([r.matched_fraction_x for r in results])
    fy = np.stack([r.matched_fraction_y for r in results])
    report = {
        "converged": all(r.converged for r in results),
        "max_marginal_error": max(r.marginal_error for r in results),
        "not_converged_masses": [
            float(m) for m, r in zip(SWEEP, results, strict=True) if not r.converged
        ],
        "reg": float(results[0].reg),
    }
    return fx, fy, report


def rankings(X, Y) -> tuple[dict, dict, dict]:
    """Every ranking of both sides of one pair, plus solver facts.

    Returns
    -------
    ranks_x, ranks_y : dict of str to ndarray of int
        Unit indices best aligned first, one entry per name in ``METHODS``.
    facts : dict
        Timings in seconds and whether Sinkhorn converged.
    """
    facts = {}
    t = time.perf_counter()
    prepared, path = _common.solve(X, Y)
    facts["exact_path_s"] = time.perf_counter() - t
    ranks_x = {"exact_path": path.ranking_x}
    ranks_y = {"exact_path": path.ranking_y}
    fx, fy = _exact_sweep(path)
    ranks_x["sweep_exact"] = _sweep_ranking(fx, 1e-6)
    ranks_y["sweep_exact"] = _sweep_ranking(fy, 1e-6)
    t = time.perf_counter()
    fx, fy, facts["sinkhorn"] = _sinkhorn_sweep(prepared.cost)
    facts["sinkhorn_sweep_s"] = time.perf_counter() - t
    ranks_x["sweep_sinkhorn"] = _sweep_ranking(fx, SINKHORN_ACTIVE)
    ranks_y["sweep_sinkhorn"] = _sweep_ranking(fy, SINKHORN_ACTIVE)
    t = time.perf_counter()
    ranks_x["brute_force"] = baselines.brute_force_loo(prepared.cost, "x")[1]
    ranks_y["brute_force"] = baselines.brute_force_loo(prepared.cost, "y")[1]
    facts["brute_force_s"] = time.perf_counter() - t
    corr = baselines.correlation_ordering(prepared.X, prepared.Y, path.plan_at(1.0))
    ranks_x["correlation"], ranks_y["correlation"] = corr[2], corr[3]
    # The naive ranking: each unit's single best correlation with the other side.
    ranks_x["best_partner"] = np.argsort(prepared.cost.min(axis=1), kind="stable")
    ranks_y["best_partner"] = np.argsort(prepared.cost.min(axis=0), kind="stable")
    return ranks_x, ranks_y, facts


def _compare(ranks: dict, k: int, signal: np.ndarray | None) -> dict:
    """Spearman and top-k tables, and (planted) whether the top set is signal."""
    out = baselines.compare_rankings(ranks, k)
    out["n_units"] = int(len(ranks[REFERENCE]))
    if signal is not None:
        n = int(signal.sum())
        out["top_n_signal_is_signal_set"] = {
            name: bool(np.all(signal[r[:n]])) for name, r in ranks.items()
        }
        out["signal_share_of_top_n_signal"] = {
            name: float(signal[r[:n]].mean()) for name, r in ranks.items()
        }
    return out


def _datasets(n_stimuli: int, layers: tuple[str, ...]) -> list[dict]:
    """The planted pair and the requested digit-CNN layers."""
    pair = synthetic.planted_pair(n_stimuli=n_stimuli, seed=0)
    out = [
        {
            "name": "planted",
            "X": pair.X,
            "Y": pair.Y,
            "k_x": int(pair.signal_x.sum()),
            "k_y": int(pair.signal_y.sum()),
            "signal_x": pair.signal_x,
            "signal_y": pair.signal_y,
        }
    ]
    if layers:
        digits = sample_data.load("digits-cnn")
        for layer in layers:
            v = digits.views[layer]
            n = v.X.shape[1]
            out.append(
                {
                    "name": f"digits-cnn {layer}",
                    "X": v.X,
                    "Y": v.Y,
                    "k_x": n // 4,
                    "k_y": v.Y.shape[1] // 4,
                    "images": digits.images,
                }
            )
    return out


def _figure(results: dict, path: Path) -> Path:
    """Spearman and top-k overlap with brute force for every pair and side."""
    plt = _common.pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(11, 7.5), layout="constrained")
    groups = [(d, side) for d in results["datasets"] for side in ("x", "y")]
    others = [m for m in METHODS if m != REFERENCE]
    labels = [
        f"{d['name']}\nside {side.upper()} (k={d[side]['k']})" for d, side in groups
    ]
    width = 0.8 / len(others)
    for ax, table, title in (
        (axes[0], "spearman", "Spearman correlation with brute-force leave-one-out"),
        (axes[1], "topk_overlap", "Top-k overlap with brute-force leave-one-out"),
    ):
        for m, method in enumerate(others):
            vals = [d[side][table][method][REFERENCE] for d, side in groups]
            x = np.arange(len(groups)) + (m - (len(others) - 1) / 2) * width
            ax.bar(x, vals, width=width, label=method.replace("_", " "))
        ax.set_xticks(np.arange(len(groups)), labels, fontsize=8)
        ax.set(ylim=(min(0, ax.get_ylim()[0]), 1.18), title=title)
        ax.axhline(0, color="k", lw=0.6)
    axes[0].legend(ncol=len(others), fontsize=8, loc="upper center")
    axes[1].set_title(
        "Top-k overlap with brute-force leave-one-out (chance: k/n, 0.25 for the CNNs)"
    )
    return _common.save_figure(fig, path)


def run(
    *,
    n_stimuli: int = 1000,
    layers: tuple[str, ...] = ("conv1", "conv2", "conv3"),
    out_dir: Path | None = None,
) -> dict:
    """Compare the rankings on the planted pair and the digit-CNN layers.

    Parameters
    ----------
    n_stimuli : int, default=1000
        Stimuli of the planted pair (seed 0; 1000 is the shipped ``planted``).
    layers : tuple of str, default=("conv1", "conv2", "conv3")
        Digit-CNN layers to include; empty for the planted pair only.
    out_dir : Path or None, default=None
        Where to write ``results.json``, ``figure.png`` and one pair file per
        dataset (``pair_planted.npz``, ``pair_digits_<layer>.npz``).

    Returns
    -------
    dict
        Per dataset and side: the Spearman and top-k overlap tables between
        all rankings (``k`` a quarter of the units for the CNNs, the signal
        count for the planted pair) and timings.
    """
    start = time.perf_counter()
    entries = []
    for data in _datasets(n_stimuli, tuple(layers)):
        ranks_x, ranks_y, facts = rankings(data["X"], data["Y"])
        entry = {
            "name": data["name"],
            "n_x": data["X"].shape[1],
            "n_y": data["Y"].shape[1],
            "facts": facts,
        }
        entry["x"] = _compare(ranks_x, data["k_x"], data.get("signal_x"))
        entry["y"] = _compare(ranks_y, data["k_y"], data.get("signal_y"))
        entries.append(entry)
        if out_dir is not None:
            _write_pair(Path(out_dir), data)
    results = {
        "experiment": NAME,
        "sizes": {
            "n_stimuli_planted": n_stimuli,
            "layers": list(layers),
            "sweep_masses": SWEEP,
        },
        "seeds": [0],
        "methods": list(METHODS),
        "reference": REFERENCE,
        "datasets": entries,
        "versions": _common.versions(),
    }
    if out_dir is not None:
        _figure(results, Path(out_dir) / "figure.png")
    results["run_time_s"] = time.perf_counter() - start
    if out_dir is not None:
        _common.write_results(Path(out_dir), results)
    return results


def _write_pair(out_dir: Path, data: dict) -> None:
    """One pair file per dataset; the planted one names signal and noise units."""
    if data["name"] == "planted":
        labels = np.array(["noise", "signal"])
        _common.save_pair(
            out_dir / "pair_planted.npz",
            data["X"],
            data["Y"],
            names_x=_common.unit_names("x", labels[data["signal_x"].astype(int)]),
            names_y=_common.unit_names("y", labels[data["signal_y"].astype(int)]),
        )
        return
    layer = data["name"].split()[-1]
    _common.save_pair(
        out_dir / f"pair_digits_{layer}.npz",
        data["X"],
        data["Y"],
        images=data["images"],
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: run the comparison and print Spearman with brute force."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=1000)
    parser.add_argument("--layers", nargs="*", default=["conv1", "conv2", "conv3"])
    _common.out_dir_argument(parser, NAME)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = run(n_stimuli=args.stimuli, layers=tuple(args.layers), out_dir=args.out)
    for d in res["datasets"]:
        for side in ("x", "y"):
            rho = d[side]["spearman"]
            cells = ", ".join(
                f"{m} {rho[m][REFERENCE]:.3f}" for m in METHODS if m != REFERENCE
            )
            print(
                f"{d['name']} side {side.upper()}: Spearman with brute force: {cells}"
            )
    print(f"wrote {args.out} in {res['run_time_s']:.1f} s")


if __name__ == "__main__":
    main()
