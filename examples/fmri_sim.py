"""Simulated fMRI (METHOD §4.3, §6 item 9): unmatched voxels and two regions.

Two simulated subjects (``sample_data`` ``fmri-sim``) share position-driven
tuning; every voxel has a known reliability, and 12% per region are pure
noise. Part one: at the L-curve elbow of each region (and of both regions
stacked), how many of the unmatched voxels are low-reliability ones (lowest
quartile), against the quartile's 25% share, with a hypergeometric p-value;
and the mean reliability of the voxels left out at each mass. Part two: with
the two regions stacked on both sides, the mass-based alignment precision
(share of transported mass that stays within one region) of partial matching
at the elbow, of full soft matching, of full matching restricted to its
highest-weight entries carrying the same mass, and of full matching on the
voxels with reliability of at least 0.3.

    python -m examples.fmri_sim --out examples/_out/fmri_sim
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import hypergeom, spearmanr

import sample_data
from examples import _common
from solver import baselines

NAME = "fmri_sim"
STACKED = "all regions"
VIEWS = ("V1-like", "V2/V3-like", STACKED)
MASSES = np.round(np.arange(0.05, 1.0001, 0.05), 2)
RELIABLE = 0.3


def enrichment(unmatched: np.ndarray, reliability: np.ndarray, quantile: float) -> dict:
    """Over-representation of low-reliability units among the unmatched ones.

    Parameters
    ----------
    unmatched : ndarray of bool of shape (n,)
    reliability : ndarray of shape (n,)
    quantile : float
        Units at or below this quantile of ``reliability`` count as low.

    Returns
    -------
    dict
        Counts, the share of unmatched units that are low against the low
        share of all units, their ratio, and the one-sided hypergeometric
        p-value of seeing at least that many low units among the unmatched.
    """
    low = reliability <= np.quantile(reliability, quantile)
    n, n_low, n_out = low.size, int(low.sum()), int(unmatched.sum())
    k = int(np.sum(low & unmatched))
    share = k / n_out if n_out else float("nan")
    expected = n_low / n
    return {
        "n_units": n,
        "n_unmatched": n_out,
        "n_low": n_low,
        "n_low_unmatched": k,
        "low_share_of_unmatched": share,
        "low_share_of_all": expected,
        "enrichment": share / expected if n_out else float("nan"),
        "p_value": float(hypergeom.sf(k - 1, n, n_low, n_out)) if n_out else 1.0,
        "pure_noise_unmatched": int(np.sum(unmatched & (reliability == 0))),
        "pure_noise_total": int(np.sum(reliability == 0)),
        "mean_reliability_unmatched": float(reliability[unmatched].mean())
        if n_out
        else float("nan"),
        "mean_reliability_matched": float(reliability[~unmatched].mean()),
    }


def _dropped_curve(entry: np.ndarray, reliability: np.ndarray) -> np.ndarray:
    """Mean reliability of the units not yet in the plan at each of ``MASSES``."""
    out = []
    for s in MASSES:
        dropped = entry >= s
        out.append(reliability[dropped].mean() if dropped.any() else np.nan)
    return np.array(out)


def _view_numbers(view, quantile: float, fallback: float) -> dict:
    """Elbow, enrichment per side and the left-out reliability curve of a view."""
    _, path = _common.solve(view.X, view.Y)
    found = _common.elbow(path, fallback=fallback)
    on_x, on_y = _common.active(path, found.mass)
    out = {
        "n_x": path.n_x,
        "n_y": path.n_y,
        "elbow_mass": found.mass,
        "elbow_found": found.found,
        "elbow_message": found.message,
    }
    for side, on, rel, entry in (
        ("x", on_x, view.reliability_x, path.entry_mass_x),
        ("y", on_y, view.reliability_y, path.entry_mass_y),
    ):
        rel = np.asarray(rel, dtype=np.float64)
        out[side] = enrichment(~on, rel, quantile)
        out[side]["spearman_entry_vs_reliability"] = float(spearmanr(entry, rel)[0])
        out[side]["mean_reliability_left_out"] = _dropped_curve(entry, rel)
        out[side]["mean_reliability_all"] = float(rel.mean())
    return out, path


def _top_mass(plan: np.ndarray, mass: float) -> np.ndarray:
    """The plan's largest entries, taken in order until they carry ``mass``.

    The last entry is taken in part, so the result carries exactly ``mass``.
    """
    flat = plan.ravel()
    order = np.argsort(flat, kind="stable")[::-1]
    cum = np.cumsum(flat[order])
    keep = np.zeros_like(flat)
    n = int(np.searchsorted(cum, mass))
    keep[order[:n]] = flat[order[:n]]
    if n < flat.size:
        keep[order[n]] = mass - (cum[n - 1] if n else 0.0)
    return keep.reshape(plan.shape)


def _precision(view, path, s0: float) -> dict:
    """Mass-based region precision: partial, full, full top-mass, reliable only."""
    lx, ly = np.asarray(view.labels_x), np.asarray(view.labels_y)
    full = path.plan_at(1.0)
    out = {
        "mass": s0,
        "partial_at_elbow": baselines.block_precision(path.plan_at(s0), lx, ly),
        "full_sm": baselines.block_precision(full, lx, ly),
        "full_sm_top_mass": baselines.block_precision(_top_mass(full, s0), lx, ly),
    }
    rx = np.asarray(view.reliability_x) >= RELIABLE
    ry = np.asarray(view.reliability_y) >= RELIABLE
    _, reliable = _common.solve(np.asarray(view.X)[:, rx], np.asarray(view.Y)[:, ry])
    out["full_sm_reliable_only"] = baselines.block_precision(
        reliable.plan_at(1.0), lx[rx], ly[ry]
    )
    out["reliable_only_units"] = [int(rx.sum()), int(ry.sum())]
    out["curve"] = {
        "mass": MASSES,
        "partial": [baselines.block_precision(path.plan_at(s), lx, ly) for s in MASSES],
        "full_sm_top_mass": [
            baselines.block_precision(_top_mass(full, s), lx, ly) for s in MASSES
        ],
    }
    return out


def _subsampled(view, step: int):
    """Every ``step``-th voxel of each side (the whole view for step 1)."""
    if step == 1:
        return view
    from dataclasses import replace

    sx, sy = slice(None, None, step), slice(None, None, step)
    return replace(
        view,
        X=view.X[:, sx],
        Y=view.Y[:, sy],
        labels_x=view.labels_x[sx],
        labels_y=view.labels_y[sy],
        coords_x=view.coords_x[sx],
        coords_y=view.coords_y[sy],
        reliability_x=view.reliability_x[sx],
        reliability_y=view.reliability_y[sy],
        truth_x=None,
        truth_y=None,
        unit_info_x={},
        unit_info_y={},
    )


def _figure(results: dict, entry_x, rel_x, path: Path) -> Path:
    """Left-out reliability, enrichment, region precision, entry vs reliability."""
    plt = _common.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    stacked = results["views"][STACKED]
    ax = axes[0, 0]
    for side, name in (("x", results["x_name"]), ("y", results["y_name"])):
        ax.plot(
            MASSES,
            stacked[side]["mean_reliability_left_out"],
            "o-",
            ms=3,
            label=f"{name}: voxels left out",
        )
        ax.axhline(
            stacked[side]["mean_reliability_all"],
            lw=0.8,
            ls=":",
            color=ax.lines[-1].get_color(),
        )
    ax.axvline(stacked["elbow_mass"], color="k", ls="--", lw=1, label="elbow")
    ax.set(
        xlabel="transported mass s",
        ylabel="mean reliability",
        title="Reliability of the voxels left out (dotted: all voxels)",
    )
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    bars = [(v, side) for v in VIEWS for side in ("x", "y")]
    share = [results["views"][v][side]["low_share_of_unmatched"] for v, side in bars]
    ax.bar(np.arange(len(bars)), share, color=["tab:blue", "tab:orange"] * len(VIEWS))
    ax.axhline(0.25, color="k", ls=":", lw=1, label="chance (25%)")
    labels = [f"{v}\n{'s1' if side == 'x' else 's2'}" for v, side in bars]
    ax.set_xticks(np.arange(len(bars)), labels, fontsize=8)
    ax.set(
        ylabel="share of unmatched voxels in the lowest quartile",
        ylim=(0, 1.2),
        title="Unmatched voxels at the elbow that are low-reliability",
    )
    ax.legend()

    ax = axes[1, 0]
    p = results["precision"]
    ax.plot(MASSES, p["curve"]["partial"], "o-", ms=3, label="partial plan at s")
    ax.plot(
        MASSES,
        p["curve"]["full_sm_top_mass"],
        "s-",
        ms=3,
        label="full SM, its top entries carrying s",
    )
    ax.axhline(p["full_sm"], color="tab:red", ls="--", label="full SM (s = 1)")
    ax.axhline(
        p["full_sm_reliable_only"],
        color="tab:purple",
        ls=":",
        label=f"full SM, reliability ≥ {RELIABLE}",
    )
    ax.axvline(p["mass"], color="k", ls="--", lw=1)
    ax.set(
        xlabel="transported mass s",
        ylabel="mass within the same region",
        title="Alignment precision, two regions stacked",
    )
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    ax.scatter(rel_x, entry_x, s=6, alpha=0.6)
    ax.axhline(stacked["elbow_mass"], color="k", ls="--", lw=1, label="elbow")
    ax.set(
        xlabel="voxel reliability (0: pure noise)",
        ylabel="entry mass",
        title=f"{results['x_name']}, both regions: when each voxel enters",
    )
    ax.legend()
    return _common.save_figure(fig, path)


def run(
    *,
    quantile: float = 0.25,
    fallback: float = 0.85,
    step: int = 1,
    out_dir: Path | None = None,
) -> dict:
    """Run both fMRI analyses on the shipped simulation.

    Parameters
    ----------
    quantile : float, default=0.25
        Reliability quantile below which a voxel counts as low.
    fallback : float, default=0.85
        Mass used where a view's L-curve has no clear elbow (reported as such).
    step : int, default=1
        Keep every ``step``-th voxel of each side (tests use a larger step).
    out_dir : Path or None, default=None
        Where to write ``results.json``, ``figure.png`` and the pair files
        ``pair_<view>.npz`` (with images, MNI coordinates and voxel names).

    Returns
    -------
    dict
        ``views``: elbow and, per side, the enrichment numbers;
        ``precision``: region precision of the stacked pair.
    """
    start = time.perf_counter()
    sample = sample_data.load("fmri-sim")
    views, paths = {}, {}
    for name in VIEWS:
        view = _subsampled(sample.views[name], step)
        views[name], paths[name] = _view_numbers(view, quantile, fallback)
    stacked = _subsampled(sample.views[STACKED], step)
    results = {
        "experiment": NAME,
        "sizes": {
            "n_stimuli": int(sample.views[STACKED].X.shape[0]),
            "step": step,
            "quantile": quantile,
            "fallback_mass": fallback,
        },
        "seeds": [],
        "x_name": sample.x_name,
        "y_name": sample.y_name,
        "views": views,
        "precision": _precision(stacked, paths[STACKED], views[STACKED]["elbow_mass"]),
        "versions": _common.versions(),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        for name in VIEWS:
            _write_pair(
                out_dir, name, _subsampled(sample.views[name], step), sample.images
            )
        p = paths[STACKED]
        _figure(results, p.entry_mass_x, stacked.reliability_x, out_dir / "figure.png")
    results["run_time_s"] = time.perf_counter() - start
    if out_dir is not None:
        _common.write_results(out_dir, results)
    return results


def _write_pair(out_dir: Path, name: str, view, images) -> None:
    """A pair file with images, MNI coordinates and region-labelled names."""
    tag = name.replace("/", "-").replace(" ", "_")
    _common.save_pair(
        out_dir / f"pair_{tag}.npz",
        view.X,
        view.Y,
        images=images,
        coords_x=view.coords_x,
        coords_y=view.coords_y,
        names_x=_common.unit_names("s1", view.labels_x),
        names_y=_common.unit_names("s2", view.labels_y),
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: run both analyses and print the headline numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantile", type=float, default=0.25)
    parser.add_argument("--fallback", type=float, default=0.85)
    _common.out_dir_argument(parser, NAME)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = run(quantile=args.quantile, fallback=args.fallback, out_dir=args.out)
    for name, v in res["views"].items():
        for side in ("x", "y"):
            e = v[side]
            print(
                f"{name} {side}: elbow {v['elbow_mass']:.2f} "
                f"(found {v['elbow_found']}); {e['n_low_unmatched']}/"
                f"{e['n_unmatched']} unmatched are low-reliability "
                f"({e['low_share_of_unmatched']:.2f} vs {e['low_share_of_all']:.2f}, "
                f"p = {e['p_value']:.1e})"
            )
    p = res["precision"]
    print(
        f"region precision at mass {p['mass']:.2f}: "
        f"partial {p['partial_at_elbow']:.3f}, full SM {p['full_sm']:.3f}, "
        f"full SM top mass {p['full_sm_top_mass']:.3f}, "
        f"full SM reliable only {p['full_sm_reliable_only']:.3f}"
    )
    print(f"wrote {args.out} in {res['run_time_s']:.1f} s")


if __name__ == "__main__":
    main()
