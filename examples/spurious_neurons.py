"""Spurious neurons (METHOD §4.1): partial matching leaves the noise units out.

X has ``n_signal`` signal units and ``n_noise_x`` pure-noise units, Y the same
signal supports and ``n_noise_y`` noise units (the paper: 100 + 20 and
100 + 90). Over many seeds this example reports where the L-curve elbow lands
against the planted mass ``n_signal / (n_signal + n_noise_y)``, the share of
the transported mass in the signal × signal block, the raw and normalized
scores at the elbow and under full soft matching (mass 1), and whether Y's
noise units enter the path after all its signal units.

    python -m examples.spurious_neurons --out examples/_out/spurious_neurons
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from examples import _common
from solver import synthetic
from solver.selection import cv_l_curve

NAME = "spurious_neurons"


def _entry_order(entry: np.ndarray, signal: np.ndarray) -> dict:
    """How the noise units' entry masses sit against the signal units'."""
    last_signal = float(entry[signal].max())
    noise = entry[~signal]
    first_noise = float(noise.min()) if noise.size else float("nan")
    return {
        "last_signal_entry": last_signal,
        "first_noise_entry": first_noise,
        "noise_enters_last": bool(noise.size == 0 or first_noise > last_signal),
        "n_noise_before_last_signal": int(np.sum(noise < last_signal)),
    }


def _one_seed(seed: int, sizes: dict, cv_folds: int) -> dict:
    """All numbers of one planted pair."""
    pair = synthetic.planted_pair(
        sizes["n_signal"],
        sizes["n_noise_x"],
        sizes["n_noise_y"],
        n_stimuli=sizes["n_stimuli"],
        seed=seed,
    )
    _, path = _common.solve(pair.X, pair.Y)
    found = _common.elbow(path)
    s0 = found.mass
    out = {"seed": seed, "elbow_mass": s0, "elbow_found": found.found}
    out["at_elbow"] = _common.scores(path, s0)
    out["full"] = _common.scores(path, 1.0)
    for key, mass in (("at_elbow", s0), ("full", 1.0)):
        plan = path.plan_at(mass)
        shares = _block_shares(plan, pair.signal_x, pair.signal_y)
        out[key]["signal_block_share"] = shares[0]
        out[key]["block_shares"] = shares
        on_x, on_y = _common.active(path, mass)
        out[key]["coverage_x"] = float(on_x.mean())
        out[key]["coverage_y"] = float(on_y.mean())
        out[key]["noise_y_matched"] = int(on_y[~pair.signal_y].sum())
    out["entry_y"] = _entry_order(path.entry_mass_y, pair.signal_y)
    out["entry_x"] = _entry_order(path.entry_mass_x, pair.signal_x)
    if cv_folds:
        masses, costs = cv_l_curve(pair.X, pair.Y, _common.N_POINTS, n_splits=cv_folds)
        out["cv_elbow_mass"] = _common.quiet_elbow(masses, costs).mass
    grid = np.linspace(0.0, 1.0, _common.N_POINTS + 1)
    out["curve"] = {"mass": grid, "transport_cost": path.cost_at(grid)}
    return out


def _aggregate(per_seed: list[dict], ideal: float, tol: float) -> dict:
    """Summaries over seeds of the numbers the verdict rests on."""
    elbows = np.array([r["elbow_mass"] for r in per_seed])
    agg = {"elbow_mass": _common.summary(elbows)}
    agg["elbow_within_tol"] = int(np.sum(np.abs(elbows - ideal) <= tol))
    agg["elbow_found"] = int(sum(r["elbow_found"] for r in per_seed))
    if "cv_elbow_mass" in per_seed[0]:
        cv = np.array([r["cv_elbow_mass"] for r in per_seed])
        agg["cv_elbow_mass"] = _common.summary(cv)
        agg["cv_elbow_within_tol"] = int(np.sum(np.abs(cv - ideal) <= tol))
    for key in ("at_elbow", "full"):
        agg[key] = {
            name: _common.summary([r[key][name] for r in per_seed])
            for name in per_seed[0][key]
            if name != "block_shares"
        }
    share = np.array([r["at_elbow"]["signal_block_share"] for r in per_seed])
    agg["signal_share_at_least_0.99"] = int(np.sum(share >= 0.99))
    agg["noise_enters_last_y"] = int(
        sum(r["entry_y"]["noise_enters_last"] for r in per_seed)
    )
    agg["noise_enters_last_x"] = int(
        sum(r["entry_x"]["noise_enters_last"] for r in per_seed)
    )
    return agg


def _block_shares(plan: np.ndarray, signal_x, signal_y) -> list[float]:
    """Mass shares of the four signal/noise blocks of a plan."""
    return [
        _common.block_share(plan, rx, cy)
        for rx in (signal_x, ~signal_x)
        for cy in (signal_y, ~signal_y)
    ]


def _curve_panel(ax, per_seed: list[dict], ideal: float) -> None:
    """λ(s) of every seed and its slope, the marginal cost of more mass."""
    for r in per_seed:
        c = r["curve"]
        ax.plot(c["mass"], c["transport_cost"], color="tab:blue", lw=0.6, alpha=0.5)
    twin = ax.twinx()
    for r in per_seed:
        c = r["curve"]
        slope = np.diff(c["transport_cost"]) / np.diff(c["mass"])
        twin.plot(c["mass"][1:], slope, color="tab:purple", lw=0.6, alpha=0.5)
    elbows = [r["elbow_mass"] for r in per_seed]
    ax.plot(elbows, np.zeros(len(elbows)), "v", color="tab:red", label="elbows")
    ax.axvline(ideal, color="k", ls="--", lw=1, label=f"planted s = {ideal:.3f}")
    ax.set(xlabel="transported mass s", ylabel="λ(s) = ⟨P, C⟩ (blue)")
    ax.set_title(f"L-curves of {len(per_seed)} seeds and their slopes")
    twin.set_ylabel("slope dλ/ds (purple)")
    ax.legend(loc="upper left")


def _score_panel(ax, per_seed: list[dict], ideal: float) -> None:
    """Raw and normalized scores against mass, mean and min-max band."""
    mass = np.asarray(per_seed[0]["curve"]["mass"])[1:]
    lam = np.array([np.asarray(r["curve"]["transport_cost"])[1:] for r in per_seed])
    for values, label, color in (
        (1 - lam, "raw 1 − λ", "tab:orange"),
        (1 - lam / mass, "normalized 1 − λ/s", "tab:green"),
    ):
        ax.plot(mass, values.mean(0), color=color, label=label)
        ax.fill_between(mass, values.min(0), values.max(0), color=color, alpha=0.25)
    ax.axvline(ideal, color="k", ls="--", lw=1, label="planted mass")
    ax.set(xlabel="transported mass s", ylabel="score", ylim=(0, 1.02))
    ax.set_title("Scores against mass (mean; band: min-max)")
    ax.legend()


def _plan_panel(ax, plan: np.ndarray, signal_x, signal_y, title: str) -> None:
    """Non-zero plan entries as dots, with the signal/noise boundaries."""
    rows, cols = np.nonzero(plan > 1e-12)
    share = plan[rows, cols] * plan.shape[0]
    ax.scatter(cols, rows, s=4 + 10 * share, c=share, cmap="viridis_r", vmin=0, vmax=1)
    ax.axvline(signal_y.sum() - 0.5, color="k", lw=0.8, ls=":")
    ax.axhline(signal_x.sum() - 0.5, color="k", lw=0.8, ls=":")
    ax.set(xlim=(-1, plan.shape[1]), ylim=(plan.shape[0], -1), title=title)
    ax.set(xlabel="units of Y (signal, then noise)", ylabel="units of X")


def _share_panel(ax, per_seed: list[dict]) -> None:
    """Mean block shares at the elbow and under full matching."""
    names = ["signal→signal", "signal→noise", "noise→signal", "noise→noise"]
    for k, (key, label) in enumerate(
        (("at_elbow", "partial, elbow"), ("full", "full SM"))
    ):
        shares = np.mean([r[key]["block_shares"] for r in per_seed], axis=0)
        ax.bar(np.arange(4) + 0.4 * k - 0.2, shares, width=0.4, label=label)
    ax.set_xticks(np.arange(4), names)
    ax.set(ylabel="share of transported mass", ylim=(0, 1.05))
    ax.set_title("Where the mass goes (X block → Y block; mean)")
    ax.legend()


def _figure(per_seed: list[dict], ideal: float, pair, plan, path: Path) -> Path:
    """Four panels: L-curves, scores, seed 0's plan at the elbow, block shares."""
    plt = _common.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    _curve_panel(axes[0, 0], per_seed, ideal)
    _score_panel(axes[0, 1], per_seed, ideal)
    s0 = per_seed[0]["elbow_mass"]
    title = f"seed 0: partial plan at the elbow s = {s0:.2f}"
    _plan_panel(axes[1, 0], plan, pair.signal_x, pair.signal_y, title)
    _share_panel(axes[1, 1], per_seed)
    return _common.save_figure(fig, path)


def run(
    n_seeds: int = 20,
    *,
    n_signal: int = 100,
    n_noise_x: int = 20,
    n_noise_y: int = 90,
    n_stimuli: int = 1000,
    cv_folds: int = 5,
    tol: float = 0.02,
    out_dir: Path | None = None,
) -> dict:
    """Run the spurious-neuron experiment over seeds ``0 .. n_seeds - 1``.

    Parameters
    ----------
    n_seeds : int, default=20
    n_signal, n_noise_x, n_noise_y : int, default=100, 20, 90
        Unit counts of the planted pair (the paper's).
    n_stimuli : int, default=1000
    cv_folds : int, default=5
        Folds of the cross-validated L-curve also reported; 0 skips it.
    tol : float, default=0.02
        How close to the planted mass an elbow must be to count as right.
    out_dir : Path or None, default=None
        Where to write ``results.json``, ``figure.png`` and ``pair.npz``
        (seed 0); None writes nothing.

    Returns
    -------
    dict
        ``sizes``, ``ideal_mass``, ``per_seed`` numbers and ``aggregate``.
    """
    start = time.perf_counter()
    sizes = {
        "n_signal": n_signal,
        "n_noise_x": n_noise_x,
        "n_noise_y": n_noise_y,
        "n_stimuli": n_stimuli,
    }
    ideal = n_signal / (n_signal + max(n_noise_y, n_noise_x))
    per_seed = [_one_seed(seed, sizes, cv_folds) for seed in range(n_seeds)]
    results = {
        "experiment": NAME,
        "sizes": sizes,
        "seeds": list(range(n_seeds)),
        "ideal_mass": ideal,
        "tolerance": tol,
        "elbow_rule": "second difference of the in-sample exact λ(s), 100 points, "
        "5% trimmed at each end",
        "per_seed": per_seed,
        "aggregate": _aggregate(per_seed, ideal, tol),
        "versions": _common.versions(),
    }
    if out_dir is not None:
        _write(results, sizes, Path(out_dir))
    results["run_time_s"] = time.perf_counter() - start
    if out_dir is not None:
        _common.write_results(Path(out_dir), results)
    return results


def _write(results: dict, sizes: dict, out_dir: Path) -> None:
    """Seed 0's pair file and the figure."""
    pair = synthetic.planted_pair(
        sizes["n_signal"],
        sizes["n_noise_x"],
        sizes["n_noise_y"],
        n_stimuli=sizes["n_stimuli"],
        seed=0,
    )
    labels = np.array(["noise", "signal"])
    _common.save_pair(
        out_dir / "pair.npz",
        pair.X,
        pair.Y,
        names_x=_common.unit_names("x", labels[pair.signal_x.astype(int)]),
        names_y=_common.unit_names("y", labels[pair.signal_y.astype(int)]),
    )
    _, path = _common.solve(pair.X, pair.Y)
    plan = path.plan_at(results["per_seed"][0]["elbow_mass"])
    _figure(
        results["per_seed"], results["ideal_mass"], pair, plan, out_dir / "figure.png"
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: run the experiment and print the headline numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds")
    parser.add_argument("--stimuli", type=int, default=1000)
    parser.add_argument("--signal", type=int, default=100, help="signal units")
    parser.add_argument("--noise-x", type=int, default=20, help="noise units of X")
    parser.add_argument("--noise-y", type=int, default=90, help="noise units of Y")
    parser.add_argument("--cv-folds", type=int, default=5)
    _common.out_dir_argument(parser, NAME)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = run(
            args.seeds,
            n_signal=args.signal,
            n_noise_x=args.noise_x,
            n_noise_y=args.noise_y,
            n_stimuli=args.stimuli,
            cv_folds=args.cv_folds,
            out_dir=args.out,
        )
    agg = res["aggregate"]
    print(
        f"planted mass {res['ideal_mass']:.3f}; elbow "
        f"{agg['elbow_mass']['mean']:.3f} ± {agg['elbow_mass']['std']:.3f} "
        f"({agg['elbow_within_tol']}/{len(res['seeds'])} within ±{res['tolerance']})"
    )
    share = {k: agg[k]["signal_block_share"]["mean"] for k in ("at_elbow", "full")}
    print(
        f"signal-block share at the elbow {share['at_elbow']:.4f}, "
        f"under full matching {share['full']:.4f}"
    )
    n = len(res["seeds"])
    print(f"Y's noise units enter last in {agg['noise_enters_last_y']}/{n} seeds")
    print(f"wrote {args.out} in {res['run_time_s']:.1f} s")


if __name__ == "__main__":
    main()
