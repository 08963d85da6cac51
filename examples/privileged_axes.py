"""Privileged axes (METHOD §4.6): does the units' own basis matter?

For each layer pair of the two digit CNNs, one network's channels are mixed
by random rotations Q (Haar on SO(n), ``scipy.stats.special_ortho_group``)
and the pair (X·Q, Y) is compared with the native pair (X, Y). If the units
carry privileged axes, the rotated pairs match worse at every transported
mass, including the smallest (the best-aligned subpopulation). The example
reports the normalized score 1 − λ(s)/s against s, native against the mean
and spread of the rotations, and the raw score 1 − λ(s), which squeezes both
curves towards 1 at small s.

    python -m examples.privileged_axes --out examples/_out/privileged_axes
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import special_ortho_group

import sample_data
from examples import _common

NAME = "privileged_axes"
MASSES = np.round(np.linspace(0.02, 1.0, 50), 4)


def rotation(n: int, seed: int) -> np.ndarray:
    """A Haar-random rotation of R^n (determinant +1), reproducible by seed."""
    return special_ortho_group.rvs(n, random_state=seed)


def layer_curves(X, Y, n_rotations: int, masses: np.ndarray = MASSES) -> dict:
    """Normalized and raw scores against mass, native and rotated.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_x)
        Rotated side.
    Y : array-like of shape (n_stimuli, n_y)
    n_rotations : int
        Rotations, seeds ``0 .. n_rotations - 1``.
    masses : ndarray of shape (n_masses,), all > 0

    Returns
    -------
    dict
        ``native`` and ``rotated`` (shape (n_rotations, n_masses)) for both
        ``normalized`` and ``raw`` scores, and the verdict numbers.
    """
    X = np.asarray(X, dtype=np.float64)
    _, path = _common.solve(X, Y)
    native = _common.normalized_curve(path, masses)
    native_raw = 1.0 - np.asarray(path.cost_at(masses))
    rotated, rotated_raw = [], []
    for seed in range(n_rotations):
        _, rot = _common.solve(X @ rotation(X.shape[1], seed), Y)
        rotated.append(_common.normalized_curve(rot, masses))
        rotated_raw.append(1.0 - np.asarray(rot.cost_at(masses)))
    rotated, rotated_raw = np.array(rotated), np.array(rotated_raw)
    margin = native - rotated.max(axis=0)
    return {
        "masses": masses,
        "normalized": {"native": native, "rotated": rotated},
        "raw": {"native": native_raw, "rotated": rotated_raw},
        "beats_every_rotation_at_every_mass": bool(np.all(margin > 0)),
        "beats_rotation_mean_at_every_mass": bool(np.all(native > rotated.mean(0))),
        "share_of_rotation_mass_pairs_native_wins": float(np.mean(native > rotated)),
        "min_margin_over_best_rotation": float(margin.min()),
        "masses_where_a_rotation_ties_or_wins": masses[margin <= 0],
        "n_rotations_tying_or_winning_somewhere": int(
            np.sum(np.any(rotated >= native, axis=1))
        ),
        "gap_normalized_at_smallest_mass": float(native[0] - rotated[:, 0].mean()),
        "gap_raw_at_smallest_mass": float(native_raw[0] - rotated_raw[:, 0].mean()),
        "gap_normalized_at_mass_1": float(native[-1] - rotated[:, -1].mean()),
    }


def _figure(results: dict, path: Path) -> Path:
    """Normalized (top) and raw (bottom) score against mass for every layer."""
    plt = _common.pyplot()
    layers = results["layers"]
    fig, axes = plt.subplots(
        2,
        len(layers),
        figsize=(4 * len(layers), 7),
        layout="constrained",
        squeeze=False,
    )
    for col, (layer, res) in enumerate(layers.items()):
        s = np.asarray(res["masses"])
        for row, kind in enumerate(("normalized", "raw")):
            ax = axes[row, col]
            rot = np.asarray(res[kind]["rotated"])
            ax.plot(s, res[kind]["native"], color="tab:blue", label="native basis")
            ax.plot(s, rot.mean(0), color="tab:red", label="rotated, mean")
            ax.fill_between(
                s,
                rot.min(0),
                rot.max(0),
                color="tab:red",
                alpha=0.25,
                label=f"rotated, min-max of {len(rot)}",
            )
            ylabel = "normalized 1 − λ/s" if kind == "normalized" else "raw 1 − λ"
            ax.set(xlabel="transported mass s", ylabel=ylabel)
            ax.set_title(f"{layer} ({res['n_x']} channels): {kind}")
        axes[0, col].legend(fontsize=8)
    return _common.save_figure(fig, path)


def run(
    n_rotations: int = 20,
    *,
    layers: tuple[str, ...] = ("conv1", "conv2", "conv3"),
    out_dir: Path | None = None,
) -> dict:
    """Compare native and rotated bases on the digit-CNN layer pairs.

    Parameters
    ----------
    n_rotations : int, default=20
        Random rotations per layer (seeds 0 .. n_rotations - 1).
    layers : tuple of str, default=("conv1", "conv2", "conv3")
    out_dir : Path or None, default=None
        Where to write ``results.json``, ``figure.png`` and, per layer,
        ``pair_<layer>_native.npz`` and ``pair_<layer>_rotated.npz`` (rotation
        seed 0 applied to X); None writes nothing.

    Returns
    -------
    dict
        Per layer the curves and the verdict numbers of :func:`layer_curves`.
    """
    start = time.perf_counter()
    digits = sample_data.load("digits-cnn")
    out = {}
    for layer in layers:
        v = digits.views[layer]
        out[layer] = layer_curves(v.X, v.Y, n_rotations)
        out[layer]["n_x"] = v.X.shape[1]
        if out_dir is not None:
            X = np.asarray(v.X, np.float64)
            rotated = X @ rotation(X.shape[1], 0)
            for tag, A in (("native", X), ("rotated", rotated)):
                _common.save_pair(
                    Path(out_dir) / f"pair_{layer}_{tag}.npz",
                    A,
                    v.Y,
                    images=digits.images,
                )
    results = {
        "experiment": NAME,
        "sizes": {
            "layers": list(layers),
            "n_stimuli": int(digits.images.shape[0]),
            "masses": MASSES,
        },
        "seeds": list(range(n_rotations)),
        "rotation": "scipy.stats.special_ortho_group (Haar on SO(n)) applied to X",
        "layers": out,
        "versions": _common.versions(),
    }
    if out_dir is not None:
        _figure(results, Path(out_dir) / "figure.png")
    results["run_time_s"] = time.perf_counter() - start
    if out_dir is not None:
        _common.write_results(Path(out_dir), results)
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line: run the comparison and print the verdict per layer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=20)
    parser.add_argument("--layers", nargs="*", default=["conv1", "conv2", "conv3"])
    _common.out_dir_argument(parser, NAME)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = run(args.rotations, layers=tuple(args.layers), out_dir=args.out)
    for layer, r in res["layers"].items():
        print(
            f"{layer}: native beats every rotation at every mass: "
            f"{r['beats_every_rotation_at_every_mass']}; beats the rotation mean: "
            f"{r['beats_rotation_mean_at_every_mass']}; smallest margin "
            f"{r['min_margin_over_best_rotation']:+.3f}"
        )
    print(f"wrote {args.out} in {res['run_time_s']:.1f} s")


if __name__ == "__main__":
    main()
