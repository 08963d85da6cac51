"""Helpers shared by the examples: solving, scoring, files and figures."""

from __future__ import annotations

import json
import platform
import warnings
from pathlib import Path

import numpy as np

from solver.exact import PartialPath, exact_path
from solver.preprocessing import Prepared, prepare
from solver.result import ACTIVE_TOL
from solver.selection import ElbowResult, l_curve, select_mass

# The L-curve grid of the library (``psmd path``): 100 masses, step 0.01.
N_POINTS = 100
OUT_ROOT = Path(__file__).resolve().parent / "_out"


def solve(X, Y, cost: str = "correlation") -> tuple[Prepared, PartialPath]:
    """Prepare two representations and solve the whole exact path once.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_x)
    Y : array-like of shape (n_stimuli, n_y)
    cost : {"correlation", "sqeuclidean"}, default="correlation"

    Returns
    -------
    prepared : Prepared
    path : PartialPath
    """
    prepared = prepare(np.asarray(X, np.float64), np.asarray(Y, np.float64), cost)
    return prepared, exact_path(prepared.cost)


def elbow(path: PartialPath, *, fallback: float = 1.0) -> ElbowResult:
    """Elbow of the in-sample L-curve on the library's 100-point grid.

    The "no clear elbow" warning is silenced; ``found`` says it instead.
    """
    masses, costs = l_curve(path, N_POINTS)
    return quiet_elbow(masses, costs, fallback=fallback)


def quiet_elbow(masses, costs, *, fallback: float = 1.0) -> ElbowResult:
    """:func:`solver.selection.select_mass` without its no-elbow warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return select_mass(masses, costs, fallback=fallback)


def scores(path: PartialPath, mass: float) -> dict:
    """Transport cost, raw score 1 − λ and normalized score 1 − λ/s at ``mass``."""
    lam = float(path.cost_at(mass))
    return {
        "mass": float(mass),
        "transport_cost": lam,
        "raw_score": 1.0 - lam,
        "normalized_score": 1.0 - lam / mass if mass > 0 else float("nan"),
    }


def normalized_curve(path: PartialPath, masses) -> np.ndarray:
    """Normalized score 1 − λ(s)/s at each of ``masses`` (all > 0)."""
    masses = np.asarray(masses, dtype=np.float64)
    return 1.0 - np.asarray(path.cost_at(masses)) / masses


def active(path: PartialPath, mass: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the units of X and of Y that carry mass at ``mass``.

    A unit carries mass when it entered the path below ``mass``; the plan
    agrees up to the relative threshold ``ACTIVE_TOL`` of the library.
    """
    plan = path.plan_at(mass)
    return (
        plan.sum(axis=1) * path.n_x > ACTIVE_TOL,
        plan.sum(axis=0) * path.n_y > ACTIVE_TOL,
    )


def block_share(plan: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Share of the plan's mass in the block ``rows`` × ``cols`` (boolean masks)."""
    total = float(plan.sum())
    return float(plan[np.ix_(rows, cols)].sum() / total) if total > 0 else float("nan")


def summary(values) -> dict:
    """Mean, standard deviation, min and max of finite values, as floats."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def versions() -> dict:
    """Versions of Python and the packages the numbers depend on."""
    import scipy

    import solver

    out = {"python": platform.python_version(), "numpy": np.__version__}
    out["scipy"] = scipy.__version__
    out["psmd"] = solver.__version__
    try:
        import matplotlib

        out["matplotlib"] = matplotlib.__version__
    except ImportError:
        out["matplotlib"] = None
    return out


def plain(obj):
    """Turn numpy scalars and arrays inside ``obj`` into JSON-ready values.

    Floats keep 7 significant digits (more than any number here is known
    to); non-finite ones become None, so the file is strict JSON.
    """
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(f"{obj:.7g}") if np.isfinite(obj) else None
    return obj


def write_results(out_dir: Path, results: dict) -> Path:
    """Write ``results.json`` (sorted keys, plain numbers) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    text = json.dumps(plain(results), indent=2, sort_keys=True, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _names(names, n: int, key: str) -> np.ndarray:
    arr = np.asarray(names).astype(str)
    if arr.shape != (n,):
        raise ValueError(f"{key} has shape {arr.shape}; one name per unit ({n}).")
    return arr


def save_pair(
    path: Path,
    X,
    Y,
    *,
    images=None,
    coords_x=None,
    coords_y=None,
    names_x=None,
    names_y=None,
) -> Path:
    """Write a pair file the app opens with ``psmd-app --data``.

    Arrays ``X`` (n_stimuli, n_x) and ``Y`` (n_stimuli, n_y) as float, and
    optionally ``images`` (n_stimuli, H, W), ``coords_x``/``coords_y``
    (n_units, 3, MNI mm) and ``names_x``/``names_y`` (unicode strings, never
    object arrays), in one compressed npz that needs no pickle.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    arrays = {"X": X, "Y": Y}
    if images is not None:
        arrays["images"] = np.asarray(images)
    for key, value, n in (
        ("coords_x", coords_x, X.shape[1]),
        ("coords_y", coords_y, Y.shape[1]),
    ):
        if value is not None:
            arrays[key] = np.asarray(value, dtype=np.float64).reshape(n, 3)
    for key, value, n in (
        ("names_x", names_x, X.shape[1]),
        ("names_y", names_y, Y.shape[1]),
    ):
        if value is not None:
            arrays[key] = _names(value, n, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def unit_names(prefix: str, labels) -> np.ndarray:
    """Names like ``"x-signal-003"``: side prefix, label and index within label."""
    labels = np.asarray(labels).astype(str)
    counts: dict[str, int] = {}
    out = []
    for label in labels:
        k = counts.get(label, 0)
        counts[label] = k + 1
        out.append(f"{prefix}-{label}-{k:03d}")
    return np.asarray(out, dtype=str)


def pyplot():
    """Matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Save ``fig`` as a PNG of modest size and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    pyplot().close(fig)
    return path


def out_dir_argument(parser, name: str) -> None:
    """Add the ``--out`` option every example shares."""
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT_ROOT / name,
        help=f"folder for results.json, figure.png and pair files "
        f"(default: examples/_out/{name})",
    )
