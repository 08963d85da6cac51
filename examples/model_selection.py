"""Model selection (METHOD §4.2): which score picks the model holding all of X?

X has 100 signal units. Y_a holds the same 100 supports plus 60 noise units
(the right model, planted mass 100/160 = 0.625); Y_b holds only supports
20-99 plus 20 noise units (planted mass 0.8). Over many seeds this example
counts how often each criterion prefers Y_a: full soft matching (mass 1);
the partial score, raw (1 − λ) and normalized (1 − λ/s), each at the pair's
own L-curve elbow; and the score of both pairs at a common mass. It does so
for in-sample curves and for 5-fold cross-validated ones, and reports the
numbers whatever they show. A pure-noise Y is added as a control.

    python -m examples.model_selection --out examples/_out/model_selection
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from examples import _common
from solver import synthetic
from solver.selection import cross_validated_score

NAME = "model_selection"
MODELS = ("a", "b", "noise")
IDEAL = {"a": 100 / 160, "b": 0.8}
CRITERIA = ("full_sm", "raw_at_elbow", "normalized_at_elbow", "common_mass")
GRID = np.linspace(0.0, 1.0, _common.N_POINTS, endpoint=False)
COMMON_GRID = np.round(np.arange(0.05, 1.0, 0.05), 2)


def _curves_in_sample(X, Y) -> tuple[np.ndarray, np.ndarray]:
    """λ on the grid and at mass 1 (last entry), from one exact path."""
    _, path = _common.solve(X, Y)
    masses = np.r_[GRID, 1.0]
    return masses, np.asarray(path.cost_at(masses))


def _curves_cv(X, Y, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean test-fold λ on the grid and at mass 1, from one path per fold."""
    masses = np.r_[GRID, 1.0]
    cv = cross_validated_score(X, Y, masses, n_splits=folds, seed=0)
    return masses, np.asarray(cv.transport_cost)


def _model_numbers(masses: np.ndarray, lam: np.ndarray) -> dict:
    """Elbow, scores at it and at mass 1, and λ at the common-mass grid."""
    found = _common.quiet_elbow(masses[:-1], lam[:-1])
    s0 = found.mass
    lam0 = float(np.interp(s0, masses, lam))
    return {
        "elbow_mass": s0,
        "elbow_found": found.found,
        "raw_at_elbow": 1.0 - lam0,
        "normalized_at_elbow": 1.0 - lam0 / s0,
        "full_sm": 1.0 - float(lam[-1]),
        "lam": lam,
    }


def _choices(a: dict, b: dict, masses: np.ndarray) -> dict:
    """Which model each criterion prefers (True: Y_a, the right one)."""
    common = min(a["elbow_mass"], b["elbow_mass"])
    lam_a = float(np.interp(common, masses, a["lam"]))
    lam_b = float(np.interp(common, masses, b["lam"]))
    out = {key: bool(a[key] > b[key]) for key in CRITERIA[:3]}
    out["common_mass"] = bool(lam_a < lam_b)
    out["common_mass_value"] = common
    fixed_a = np.interp(COMMON_GRID, masses, a["lam"])
    fixed_b = np.interp(COMMON_GRID, masses, b["lam"])
    out["a_wins_at_fixed_mass"] = fixed_a < fixed_b
    return out


def _one_seed(seed: int, n_stimuli: int, folds: int) -> dict:
    """Both curve kinds for Y_a, Y_b and a pure-noise Y of one seed."""
    X, Y_a, Y_b = synthetic.model_selection_triplet(n_stimuli=n_stimuli, seed=seed)
    noise = np.random.default_rng(10_000 + seed).standard_normal(Y_a.shape)
    ys = {"a": Y_a, "b": Y_b, "noise": noise}
    out = {"seed": seed}
    for kind in ("in_sample", "cv") if folds else ("in_sample",):
        numbers = {}
        for model, Y in ys.items():
            curve = (
                _curves_in_sample(X, Y)
                if kind == "in_sample"
                else _curves_cv(X, Y, folds)
            )
            numbers[model] = _model_numbers(*curve)
        masses = np.r_[GRID, 1.0]
        numbers["picks_a"] = _choices(numbers["a"], numbers["b"], masses)
        for model in MODELS:
            numbers[model].pop("lam")
        out[kind] = numbers
    return out


def _aggregate(per_seed: list[dict], kind: str, tol: float) -> dict:
    """Fractions of seeds each criterion picks Y_a, and the elbows and scores."""
    rows = [r[kind] for r in per_seed]
    n = len(rows)
    agg = {"n_seeds": n}
    agg["fraction_picking_a"] = {
        c: sum(r["picks_a"][c] for r in rows) / n for c in CRITERIA
    }
    both = [r for r in rows if r["a"]["elbow_found"] and r["b"]["elbow_found"]]
    agg["n_seeds_both_elbows_found"] = len(both)
    agg["fraction_picking_a_both_elbows_found"] = {
        c: sum(r["picks_a"][c] for r in both) / len(both) if both else None
        for c in CRITERIA
    }
    wins = np.array([r["picks_a"]["a_wins_at_fixed_mass"] for r in rows])
    agg["fraction_a_wins_at_fixed_mass"] = {
        "mass": COMMON_GRID,
        "fraction": wins.mean(axis=0),
    }
    agg["common_mass"] = _common.summary(
        [r["picks_a"]["common_mass_value"] for r in rows]
    )
    for model in MODELS:
        m = {
            key: _common.summary([r[model][key] for r in rows])
            for key in ("elbow_mass", "raw_at_elbow", "normalized_at_elbow", "full_sm")
        }
        m["elbow_found"] = sum(r[model]["elbow_found"] for r in rows)
        if model in IDEAL:
            elbows = np.array([r[model]["elbow_mass"] for r in rows])
            m["elbow_within_tol"] = int(np.sum(np.abs(elbows - IDEAL[model]) <= tol))
        # raw = (1 - s0) + s0 * normalized: the credit for unmatched mass.
        m["unmatched_credit"] = _common.summary(
            [1 - r[model]["elbow_mass"] for r in rows]
        )
        agg[model] = m
    return agg


def _figure(results: dict, path: Path) -> Path:
    """Pick rates, wins against common mass, the score/mass confound, elbows."""
    plt = _common.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    kinds = [k for k in ("in_sample", "cv") if k in results["aggregate"]]
    labels = [
        "full SM\n(s = 1)",
        "raw 1 − λ\nown elbow",
        "normalized\nown elbow",
        "common mass\nmin(s₀ᵃ, s₀ᵇ)",
    ]
    ax = axes[0, 0]
    for k, kind in enumerate(kinds):
        frac = [results["aggregate"][kind]["fraction_picking_a"][c] for c in CRITERIA]
        x = np.arange(4) + 0.4 * k - 0.2
        ax.bar(x, frac, width=0.4, label=kind.replace("_", "-"))
        for xi, f in zip(x, frac, strict=True):
            ax.text(xi, f + 0.01, f"{f:.2f}", ha="center", fontsize=8)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xticks(np.arange(4), labels)
    ax.set(ylabel="fraction of seeds picking Y_a (right)", ylim=(0, 1.05))
    ax.set_title(f"Which criterion picks the right model ({results['n_seeds']} seeds)")
    ax.legend()

    ax = axes[0, 1]
    for kind in kinds:
        w = results["aggregate"][kind]["fraction_a_wins_at_fixed_mass"]
        ax.plot(w["mass"], w["fraction"], "o-", ms=3, label=kind.replace("_", "-"))
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set(
        xlabel="common transported mass s",
        ylim=(-0.03, 1.03),
        ylabel="fraction of seeds with Y_a better",
    )
    ax.set_title("Both pairs scored at the same mass")
    ax.legend()

    ax = axes[1, 0]
    s = np.linspace(0.05, 1, 50)
    for model, color in zip(
        MODELS, ("tab:blue", "tab:orange", "tab:gray"), strict=True
    ):
        e = [r["in_sample"][model]["elbow_mass"] for r in results["per_seed"]]
        raw = [r["in_sample"][model]["raw_at_elbow"] for r in results["per_seed"]]
        ax.scatter(e, raw, s=12, color=color, label=f"Y_{model}", alpha=0.7)
    for rbar in (0.0, 0.45):
        ax.plot(s, (1 - s) + s * rbar, color="k", lw=0.7, ls="--")
    ax.set(xlabel="elbow mass s₀ (in-sample)", ylabel="raw score 1 − λ(s₀)")
    ax.set_title("Raw score = (1 − s₀) + s₀·r̄ (dashed: r̄ = 0, 0.45)")
    ax.legend()

    ax = axes[1, 1]
    bins = np.linspace(0, 1, 51)
    for model, color in zip(("a", "b"), ("tab:blue", "tab:orange"), strict=True):
        for kind, style in zip(kinds, ("stepfilled", "step"), strict=False):
            e = [r[kind][model]["elbow_mass"] for r in results["per_seed"]]
            ax.hist(
                e,
                bins=bins,
                histtype=style,
                color=color,
                alpha=0.5 if style == "stepfilled" else 1,
                label=f"Y_{model}, {kind.replace('_', '-')}",
            )
        ax.axvline(IDEAL[model], color=color, ls="--", lw=1)
    ax.set(xlabel="elbow mass s₀ (1.0: no clear elbow, fallback)", ylabel="seeds")
    ax.set_title("Where the elbows land (dashed: planted masses)")
    ax.legend(fontsize=8)
    return _common.save_figure(fig, path)


def run(
    n_seeds: int = 50,
    *,
    n_stimuli: int = 1000,
    cv_folds: int = 5,
    tol: float = 0.02,
    out_dir: Path | None = None,
) -> dict:
    """Run the model-selection experiment over seeds ``0 .. n_seeds - 1``.

    Parameters
    ----------
    n_seeds : int, default=50
    n_stimuli : int, default=1000
    cv_folds : int, default=5
        Folds of the cross-validated curves; 0 runs the in-sample ones only.
    tol : float, default=0.02
        How close to the planted mass an elbow must be to count as right.
    out_dir : Path or None, default=None
        Where to write ``results.json``, ``figure.png`` and the pair files
        ``pair_Ya.npz`` and ``pair_Yb.npz`` (seed 0); None writes nothing.

    Returns
    -------
    dict
        ``per_seed`` numbers and, per curve kind, ``aggregate`` with the
        fraction of seeds each criterion picks Y_a.
    """
    start = time.perf_counter()
    per_seed = [_one_seed(seed, n_stimuli, cv_folds) for seed in range(n_seeds)]
    kinds = ("in_sample", "cv") if cv_folds else ("in_sample",)
    results = {
        "experiment": NAME,
        "sizes": {
            "n_x": 100,
            "n_y_a": 160,
            "n_y_b": 100,
            "n_y_noise": 160,
            "n_stimuli": n_stimuli,
            "cv_folds": cv_folds,
        },
        "seeds": list(range(n_seeds)),
        "n_seeds": n_seeds,
        "ideal_mass": IDEAL,
        "tolerance": tol,
        "criteria": {
            "full_sm": "1 − λ(1), higher wins",
            "raw_at_elbow": "1 − λ(s₀) at each pair's own elbow",
            "normalized_at_elbow": "1 − λ(s₀)/s₀ at each pair's own elbow",
            "common_mass": "λ at s = min(s₀ of Y_a, s₀ of Y_b), lower wins "
            "(raw and normalized agree at equal mass)",
        },
        "per_seed": per_seed,
        "aggregate": {kind: _aggregate(per_seed, kind, tol) for kind in kinds},
        "versions": _common.versions(),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        X, Y_a, Y_b = synthetic.model_selection_triplet(n_stimuli=n_stimuli, seed=0)
        for tag, Y in (("Ya", Y_a), ("Yb", Y_b)):
            _common.save_pair(out_dir / f"pair_{tag}.npz", X, Y)
        _figure(results, out_dir / "figure.png")
    results["run_time_s"] = time.perf_counter() - start
    if out_dir is not None:
        _common.write_results(out_dir, results)
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line: run the experiment and print how often each score is right."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="number of seeds")
    parser.add_argument("--stimuli", type=int, default=1000)
    parser.add_argument("--cv-folds", type=int, default=5)
    _common.out_dir_argument(parser, NAME)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = run(
            args.seeds, n_stimuli=args.stimuli, cv_folds=args.cv_folds, out_dir=args.out
        )
    for kind, agg in res["aggregate"].items():
        picks = ", ".join(f"{c} {f:.2f}" for c, f in agg["fraction_picking_a"].items())
        print(f"{kind}: fraction of seeds picking Y_a: {picks}")
    print(f"wrote {args.out} in {res['run_time_s']:.1f} s")


if __name__ == "__main__":
    main()
