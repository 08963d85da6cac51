"""Compare many pairs of representations: serially, or on a Dask cluster.

:func:`run_batch` reads a manifest (:mod:`solver.manifest`), names each pair
by a content hash (SHA-256 of the input files' hashes, the array keys, the
settings and the psmd version) and computes every pair whose result is not on
disk yet. Each finished pair is written at once, atomically, as
``OUT/pairs/<hash>.json`` (numbers, provenance) and ``OUT/pairs/<hash>.npz``
(L-curve, path breakpoints, entry masses, rankings), so a run killed halfway
loses no finished pair and a rerun skips them. A pair that fails gets an error
record and the others go on; errors are deterministic for the same content,
so a rerun keeps them unless ``retry_failed`` is set (a changed input file has
a new hash and is computed anyway). At the end, ``OUT/results.parquet`` is
rebuilt from the per-pair files: one row per manifest pair.

:func:`read_batch` opens an output folder for analysis or the app: the table,
the pair-by-pair distance matrix and, for each cell, the pair's files.

Per pair (METHOD §1.7, §2): the exact ε-path in one solve (default; exact and
deterministic, so every scheduler gives the same numbers bit for bit) or a
Sinkhorn sweep; the elbow of the in-sample L-curve on ``n_points`` masses; at
the elbow, at each requested mass and at mass 1 (plain soft matching) the
transport cost λ(s), the raw score 1 − λ and the normalized score 1 − λ/s.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import platform
import socket
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from solver import __version__
from solver.exceptions import PSMDInputError
from solver.manifest import PairSpec, read_manifest

logger = logging.getLogger(__name__)

SOLVERS = ("exact", "sinkhorn")
PAIRS_DIR = "pairs"
TABLE_NAME = "results.parquet"
INDEX_NAME = "batch.json"
LIST_COLUMNS = ("masses", "lcurve_masses", "lcurve_costs", "warnings")
# Leading columns of the table: what a reader looks at first. Scores at the
# requested masses follow, then everything else (sizes, path, provenance).
FIRST_COLUMNS = (
    "name",
    "label_x",
    "label_y",
    "status",
    "error",
    "elbow_found",
    "elbow_mass",
    "elbow_transport_cost",
    "elbow_raw_score",
    "elbow_normalized_score",
    "sm_transport_cost",
    "sm_raw_score",
    "sm_normalized_score",
)
# Masses at which the table carries the L-curve (the npz has the whole grid).
LCURVE_MASSES = tuple(round(0.1 * k, 1) for k in range(11))
# Sinkhorn: a unit "enters" where half its weight is matched (entropic plans
# give every unit a little mass at any s, so a zero threshold means nothing).
SINKHORN_ENTRY_FRACTION = 0.5
# Sinkhorn sweep: most plan entries solved in one batched call (memory bound).
SWEEP_BATCH_ENTRIES = 20_000_000


@dataclass(frozen=True)
class BatchOptions:
    """Settings shared by every pair of a run.

    Parameters
    ----------
    solver : {"exact", "sinkhorn"}, default="exact"
        ``exact``: the whole exact ε-path in one solve (CPU, deterministic).
        ``sinkhorn``: entropic sweep in torch (CPU or GPU; approximate).
    device : str, default="auto"
        Sinkhorn's device; ignored by the exact solver.
    reg : float, optional
        Sinkhorn's entropic regularisation (cost units); default
        0.01 × mean cost.
    n_points : int, default=100
        Grid of the L-curve and the elbow search, uniform in [0, 1).
    """

    solver: str = "exact"
    device: str = "auto"
    reg: float | None = None
    n_points: int = 100

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise PSMDInputError(
                f"solver={self.solver!r} is not known; allowed: exact, sinkhorn."
            )
        if self.reg is not None and not (math.isfinite(self.reg) and self.reg > 0):
            raise PSMDInputError(f"reg={self.reg!r} is not allowed; it must be > 0.")
        if isinstance(self.n_points, bool) or not isinstance(self.n_points, int):
            raise PSMDInputError(f"n_points={self.n_points!r} must be an integer.")
        if self.n_points < 10:
            raise PSMDInputError(f"n_points={self.n_points} is too few; at least 10.")


@dataclass(frozen=True)
class PairTask:
    """A pair ready to compute: its spec, input hashes, settings and hash."""

    spec: PairSpec
    x_sha256: str
    y_sha256: str
    settings: dict
    pair_hash: str


@dataclass(frozen=True)
class BatchEvent:
    """What the ``progress`` callback of :func:`run_batch` receives.

    Attributes
    ----------
    kind : {"start", "pair", "end"}
        Run started (``dashboard`` and ``scheduler`` set), one pair finished,
        or the table was written.
    done, total : int
        Pairs finished in this run so far, and pairs this run computes.
    skipped : int
        Pairs already on disk from an earlier run.
    failed : int
        Pairs of this run that ended in an error so far.
    name, status, wall_s, error : optional
        The finished pair (``kind == "pair"``).
    scheduler, dashboard : str, optional
        Where the pairs run; the Dask dashboard link, or a note why there is
        none.
    """

    kind: str
    done: int
    total: int
    skipped: int = 0
    failed: int = 0
    name: str | None = None
    status: str | None = None
    wall_s: float | None = None
    error: str | None = None
    scheduler: str | None = None
    dashboard: str | None = None


@dataclass(frozen=True)
class BatchReport:
    """Outcome of :func:`run_batch`.

    Attributes
    ----------
    out_dir, table_path : Path
    n_pairs : int
        Pairs in the manifest.
    n_computed, n_skipped : int
        Pairs computed in this run; pairs found finished on disk.
    n_ok, n_failed : int
        Pairs of the table with status ``ok`` and ``error``.
    wall_s : float
    scheduler : str
        ``"serial"``, ``"local (N workers)"`` or the scheduler address.
    dashboard : str or None
    table : pandas.DataFrame
        The table written to ``table_path``.
    """

    out_dir: Path
    table_path: Path
    n_pairs: int
    n_computed: int
    n_skipped: int
    n_ok: int
    n_failed: int
    wall_s: float
    scheduler: str
    dashboard: str | None
    table: object = field(repr=False)


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pair_settings(spec: PairSpec, options: BatchOptions) -> dict:
    """Return everything besides the input files that decides a pair's numbers."""
    settings = {
        "cost": spec.cost,
        "masses": list(spec.masses),
        "solver": options.solver,
        "n_points": options.n_points,
        "elbow": {"rule": "second_difference", "trim": 0.05, "fallback": 1.0},
    }
    if options.solver == "sinkhorn":
        settings.update(reg=options.reg, device=options.device, dtype="float32")
    return settings


def pair_hash(x_sha256: str, y_sha256: str, spec: PairSpec, settings: dict) -> str:
    """Return the content hash naming a pair's result files.

    SHA-256 of the canonical JSON of the input hashes, array keys, settings
    and psmd version; names and labels do not enter it.
    """
    doc = {
        "psmd": __version__,
        "x_sha256": x_sha256,
        "y_sha256": y_sha256,
        "x_key": spec.x_key,
        "y_key": spec.y_key,
        "settings": settings,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def plan_tasks(specs: Iterable[PairSpec], options: BatchOptions) -> list[PairTask]:
    """Hash every input file once and name every pair by its content."""
    hashes: dict[str, str] = {}
    tasks = []
    for spec in specs:
        for f in (spec.x, spec.y):
            if f not in hashes:
                hashes[f] = file_sha256(f)
        settings = pair_settings(spec, options)
        h = pair_hash(hashes[spec.x], hashes[spec.y], spec, settings)
        tasks.append(PairTask(spec, hashes[spec.x], hashes[spec.y], settings, h))
    return tasks


# --------------------------------------------------------------------------
# One pair


def compute_pair(task: PairTask, device: str | None = None) -> tuple[dict, dict]:
    """Compute one pair; never raises for a problem with the pair itself.

    Parameters
    ----------
    task : PairTask
    device : str, optional
        Overrides the Sinkhorn device of the settings (one GPU per worker).

    Returns
    -------
    record : dict
        JSON-ready numbers and provenance; ``status`` is ``"ok"`` or
        ``"error"`` (then ``error`` holds the one-line reason and
        ``traceback`` the details).
    arrays : dict of str to ndarray
        Curves and rankings for ``pairs/<hash>.npz`` (empty on error).
    """
    start = time.perf_counter()
    record = {"pair_hash": task.pair_hash, **_provenance(task)}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            numbers, arrays = _compute(task, device)
        messages = list(dict.fromkeys(str(w.message) for w in caught))
        record.update(status="ok", error=None, warnings=messages, **numbers)
    except Exception as err:  # one pair's failure must not stop the others
        first = (str(err).strip().splitlines() or [""])[0]
        record.update(
            status="error",
            error=f"{type(err).__name__}: {first}".rstrip(": "),
            traceback=traceback.format_exc(),
            warnings=[],
        )
        arrays = {}
    record["wall_time_s"] = time.perf_counter() - start
    record["worker"] = "serial"  # a Dask task puts its worker's address here
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record, arrays


@functools.cache
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _provenance(task: PairTask) -> dict:
    return {
        "psmd_version": __version__,
        "numpy_version": np.__version__,
        "numba_version": _version("numba"),
        "torch_version": _version("torch"),
        "dask_version": _version("dask"),
        "python_version": platform.python_version(),
        "host": socket.gethostname(),
        "x_sha256": task.x_sha256,
        "y_sha256": task.y_sha256,
        "settings": json.dumps(task.settings, sort_keys=True),
    }


@functools.cache
def _threadpools():
    """The process's BLAS/OpenMP pools (inspecting them takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _compute(task: PairTask, device: str | None) -> tuple[dict, dict]:
    # Multi-threaded BLAS sums the cost's dot products in an order that
    # depends on the thread count, which moves the last bits; Dask workers
    # run one thread each, so every pair does, wherever it runs.
    with _threadpools().limit(limits=1):
        return _compute_pair(task, device)


def _compute_pair(task: PairTask, device: str | None) -> tuple[dict, dict]:
    from solver.io import load_matrix
    from solver.preprocessing import prepare

    spec = task.spec
    for f, expected in ((spec.x, task.x_sha256), (spec.y, task.y_sha256)):
        if file_sha256(f) != expected:
            raise PSMDInputError(f"{f}: the file changed after the run started.")
    X = load_matrix(spec.x, key=spec.x_key)
    Y = load_matrix(spec.y, key=spec.y_key)
    p = prepare(X, Y, spec.cost)
    grid = np.linspace(0.0, 1.0, task.settings["n_points"], endpoint=False)
    if task.settings["solver"] == "exact":
        curve = _exact_curve(p.cost, grid, spec.masses)
    else:
        dev = device or task.settings["device"]
        curve = _sinkhorn_curve(p.cost, grid, spec.masses, task.settings["reg"], dev)
    return _numbers(p, spec, grid, curve), _arrays(p, grid, curve)


@dataclass
class _Curve:
    """What either solver gives for one pair (kept-unit indexing)."""

    lcurve: np.ndarray  # λ on the grid
    elbow: object  # ElbowResult
    masses: np.ndarray  # elbow, requested masses, 1
    costs: np.ndarray  # λ at ``masses``
    entry_x: np.ndarray
    entry_y: np.ndarray
    ranking_x: np.ndarray
    ranking_y: np.ndarray
    device: str
    breakpoints: tuple[np.ndarray, np.ndarray] | None = None
    converged: bool = True
    reg: float | None = None


def _elbow(grid: np.ndarray, lcurve: np.ndarray):
    from solver.selection import select_mass

    with warnings.catch_warnings():
        # The verdict is in the record (elbow_found, elbow_message).
        warnings.simplefilter("ignore", UserWarning)
        return select_mass(grid, lcurve, fallback=1.0)


def _exact_curve(cost, grid, masses) -> _Curve:
    from solver.exact import exact_path

    pa = exact_path(cost)
    lcurve = np.asarray(pa.cost_at(grid), dtype=np.float64)
    elbow = _elbow(grid, lcurve)
    at = np.array([elbow.mass, *masses, 1.0])
    return _Curve(
        lcurve=lcurve,
        elbow=elbow,
        masses=at,
        costs=np.asarray(pa.cost_at(at), dtype=np.float64),
        entry_x=pa.entry_mass_x,
        entry_y=pa.entry_mass_y,
        ranking_x=pa.ranking_x,
        ranking_y=pa.ranking_y,
        device="cpu",
        breakpoints=(pa.masses, pa.costs),
    )


def _sinkhorn_curve(cost, grid, masses, reg, device) -> _Curve:
    from solver.sinkhorn import SinkhornSolver

    solver = SinkhornSolver(reg=reg, device=device)
    sweep = np.r_[grid, 1.0]
    chunk = max(1, SWEEP_BATCH_ENTRIES // cost.size)
    results = []
    for lo in range(0, sweep.size, chunk):
        init = results[-1] if results else None
        results += solver.solve_many(cost, sweep[lo : lo + chunk], init=init)
    lcurve = np.array([r.transport_cost for r in results[:-1]])
    elbow = _elbow(grid, lcurve)
    at = np.array([elbow.mass, *masses, 1.0])
    final = solver.solve_many(cost, at, init=results[-1])
    frac_x = np.array([r.matched_fraction_x for r in results])
    frac_y = np.array([r.matched_fraction_y for r in results])
    entry_x, entry_y = _entry_masses(sweep, frac_x), _entry_masses(sweep, frac_y)
    return _Curve(
        lcurve=lcurve,
        elbow=elbow,
        masses=at,
        costs=np.array([r.transport_cost for r in final]),
        entry_x=entry_x,
        entry_y=entry_y,
        ranking_x=np.argsort(entry_x, kind="stable"),
        ranking_y=np.argsort(entry_y, kind="stable"),
        device=final[0].device,
        converged=all(r.converged for r in results + final),
        reg=final[0].reg,
    )


def _entry_masses(sweep: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """First swept mass where each unit has half its weight matched (else 1)."""
    above = fractions >= SINKHORN_ENTRY_FRACTION
    first = np.where(above.any(axis=0), above.argmax(axis=0), sweep.size - 1)
    return sweep[first]


def _scores(mass: float, lam: float) -> dict:
    norm = 1.0 - lam / mass if mass > 0 else math.nan
    return {"transport_cost": lam, "raw_score": 1.0 - lam, "normalized_score": norm}


def _numbers(p, spec: PairSpec, grid, c: _Curve) -> dict:
    """The scalar results of one pair (the table's numeric columns)."""
    out = {
        "n_stimuli": int(p.X.shape[0]),
        "n_x": p.n_x,
        "n_y": p.n_y,
        "n_x_excluded": len(p.excluded_x),
        "n_y_excluded": len(p.excluded_y),
        "device": c.device,
        "converged": bool(c.converged),
        "reg": c.reg,
        "elbow_found": bool(c.elbow.found),
        "elbow_mass": float(c.elbow.mass),
        "elbow_candidate": float(c.elbow.candidate),
        "elbow_message": c.elbow.message,
        "n_breakpoints": None if c.breakpoints is None else len(c.breakpoints[0]),
    }
    for key, v in _scores(c.masses[0], c.costs[0]).items():
        out[f"elbow_{key}"] = float(v)
    for key, v in _scores(1.0, c.costs[-1]).items():
        out[f"sm_{key}"] = float(v)
    out["mass_scores"] = {
        repr(float(m)): {k: float(v) for k, v in _scores(m, lam).items()}
        for m, lam in zip(c.masses[1:-1], c.costs[1:-1], strict=True)
    }
    full = np.r_[grid, 1.0]
    lam_full = np.r_[c.lcurve, c.costs[-1]]
    out["lcurve_masses"] = list(LCURVE_MASSES)
    out["lcurve_costs"] = [float(v) for v in np.interp(LCURVE_MASSES, full, lam_full)]
    return out


def _arrays(p, grid, c: _Curve) -> dict:
    """Curves and per-unit results, indexed by the input's own columns."""

    def scatter(values, keep, n):
        out = np.full(n, np.nan)
        out[keep] = values
        return out

    arrays = {
        "lcurve_masses": grid,
        "lcurve_costs": c.lcurve,
        "elbow_profile": np.asarray(c.elbow.profile, dtype=np.float64),
        "masses": c.masses,
        "transport_costs": c.costs,
        "entry_mass_x": scatter(c.entry_x, p.keep_x, p.n_x_in),
        "entry_mass_y": scatter(c.entry_y, p.keep_y, p.n_y_in),
        "ranking_x": p.keep_x[np.asarray(c.ranking_x, dtype=int)],
        "ranking_y": p.keep_y[np.asarray(c.ranking_y, dtype=int)],
        "keep_x": p.keep_x,
        "keep_y": p.keep_y,
    }
    if c.breakpoints is not None:
        arrays["breakpoint_masses"], arrays["breakpoint_costs"] = c.breakpoints
    return arrays


# --------------------------------------------------------------------------
# Files of an output folder


def _write_atomic(path: Path, write: Callable) -> None:
    """Write through a temporary file in the same folder, then rename.

    A killed process leaves either the old file or the whole new one. There
    is no fsync (slow on cluster file systems): a file torn by a machine
    crash is detected when read and its pair computed again.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_bytes(doc) -> bytes:
    return json.dumps(doc, indent=1, allow_nan=True).encode()


def save_pair(out_dir: Path, record: dict, arrays: dict) -> None:
    """Write one pair's ``.npz`` (if any) and then its ``.json`` atomically.

    The JSON is written last, so its presence means the pair is complete.
    """
    pairs = out_dir / PAIRS_DIR
    h = record["pair_hash"]
    if arrays:
        _write_atomic(pairs / f"{h}.npz", lambda fh: np.savez_compressed(fh, **arrays))
    _write_atomic(pairs / f"{h}.json", lambda fh: fh.write(_json_bytes(record)))


def load_record(out_dir: Path, h: str) -> dict | None:
    """Return a pair's stored record, or None if it is missing or unreadable."""
    path = Path(out_dir) / PAIRS_DIR / f"{h}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    npz = path.with_suffix(".npz")
    if record.get("status") == "ok" and not (npz.is_file() and zipfile.is_zipfile(npz)):
        return None
    return record


def _spec_row(task: PairTask) -> dict:
    s = task.spec
    return {
        "name": s.name,
        "label_x": s.label_x,
        "label_y": s.label_y,
        "x": s.x,
        "y": s.y,
        "x_key": s.x_key,
        "y_key": s.y_key,
        "cost": s.cost,
        "masses": list(s.masses),
        "symmetric": s.symmetric,
        "pair_hash": task.pair_hash,
    }


def build_table(out_dir: str | Path, tasks: Sequence[PairTask]):
    """Return the results table: one row per task, from the per-pair files.

    Pairs without a result file get status ``"pending"``. Scores at requested
    masses become columns ``transport_cost_m<s>``, ``raw_score_m<s>`` and
    ``normalized_score_m<s>`` (NaN for pairs that did not ask for that mass).
    """
    import pandas as pd

    rows, mass_cols = [], {}
    for task in tasks:
        record = load_record(Path(out_dir), task.pair_hash) or {"status": "pending"}
        record = {k: v for k, v in record.items() if k != "traceback"}
        per_mass = record.pop("mass_scores", None) or {}
        # Lists stay lists (or None), never NaN, so Parquet keeps list columns.
        row = {**dict.fromkeys(LIST_COLUMNS), **_spec_row(task), **record}
        for m, scores in per_mass.items():
            for key, v in scores.items():
                row[f"{key}_m{m}"] = v
                mass_cols[f"{key}_m{m}"] = (float(m), key)
        rows.append(row)
    table = pd.DataFrame(rows)
    for c in FIRST_COLUMNS:  # present even while every pair is pending
        if c not in table.columns:
            table[c] = None if c in ("error",) else np.nan
    first = list(FIRST_COLUMNS)
    ordered = sorted(mass_cols, key=mass_cols.get)
    rest = [c for c in table.columns if c not in mass_cols and c not in first]
    return table[first + ordered + rest]


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise PSMDInputError(
            "writing results.parquet needs pyarrow; pip install 'psmd[batch]'."
        ) from None


def write_table(out_dir: Path, table) -> Path:
    """Write the table as Parquet atomically; return its path."""
    _require_pyarrow()
    path = out_dir / TABLE_NAME
    _write_atomic(path, lambda fh: table.to_parquet(fh, index=False))
    return path


def _write_index(out_dir: Path, tasks: Sequence[PairTask], options) -> None:
    """Record the run's pairs so the table can be rebuilt without the manifest."""
    doc = {
        "psmd_version": __version__,
        "options": dataclasses.asdict(options),
        "pairs": [
            {
                "spec": dataclasses.asdict(t.spec),
                "x_sha256": t.x_sha256,
                "y_sha256": t.y_sha256,
                "settings": t.settings,
                "pair_hash": t.pair_hash,
            }
            for t in tasks
        ],
    }
    _write_atomic(out_dir / INDEX_NAME, lambda fh: fh.write(_json_bytes(doc)))


def _read_index(out_dir: Path) -> list[PairTask]:
    doc = json.loads((out_dir / INDEX_NAME).read_text(encoding="utf-8"))
    tasks = []
    for item in doc["pairs"]:
        spec = dict(item["spec"], masses=tuple(item["spec"]["masses"]))
        tasks.append(
            PairTask(
                PairSpec(**spec),
                item["x_sha256"],
                item["y_sha256"],
                item["settings"],
                item["pair_hash"],
            )
        )
    return tasks


# --------------------------------------------------------------------------
# Running


def run_batch(
    manifest: str | Path | Sequence[PairSpec],
    out_dir: str | Path,
    *,
    solver: str = "exact",
    device: str = "auto",
    reg: float | None = None,
    n_points: int = 100,
    scheduler: str = "local",
    n_workers: int | None = None,
    client=None,
    retry_failed: bool = False,
    progress: Callable[[BatchEvent], None] | None = None,
) -> BatchReport:
    """Compare every pair of a manifest and write the results table.

    Parameters
    ----------
    manifest : str, Path or sequence of PairSpec
        A CSV or YAML manifest (:func:`solver.manifest.read_manifest`), or
        pairs already read.
    out_dir : str or Path
        Output folder (created). Holds ``pairs/`` and ``results.parquet``.
    solver, device, reg, n_points
        See :class:`BatchOptions`.
    scheduler : str, default="local"
        ``"serial"``: a plain loop in this process, no Dask. ``"local"``: an
        embedded Dask ``LocalCluster`` of worker processes on 127.0.0.1 (one
        per GPU for Sinkhorn on CUDA, else ``n_workers``). Any other value is
        the address of a running scheduler (``tcp://host:8786``).
    n_workers : int, optional
        Workers of the embedded cluster; default the number of CPU cores.
    client : dask.distributed.Client, optional
        Run on this client (e.g. of a ``SLURMCluster``); ``scheduler`` is
        then ignored.
    retry_failed : bool, default=False
        Recompute pairs whose stored result is an error.
    progress : callable, optional
        Called with a :class:`BatchEvent` at the start, after each pair and
        at the end.

    Returns
    -------
    BatchReport

    Raises
    ------
    PSMDInputError
        A bad manifest or option, or a missing optional dependency (dask,
        pyarrow) for what was asked.

    Notes
    -----
    Input files must be readable at the same paths by every worker; results
    travel back to this process, which alone writes the output folder. Run
    one batch per output folder at a time.

    Examples
    --------
    >>> report = run_batch("pairs.yaml", "out", scheduler="serial")  # doctest: +SKIP
    >>> report.n_ok, report.table_path  # doctest: +SKIP
    (6, PosixPath('out/results.parquet'))
    """
    start = time.perf_counter()
    options = BatchOptions(solver=solver, device=device, reg=reg, n_points=n_points)
    if n_workers is not None and (isinstance(n_workers, bool) or n_workers < 1):
        raise PSMDInputError(f"n_workers={n_workers!r}; an integer >= 1 is allowed.")
    if (
        client is None
        and scheduler not in ("serial", "local")
        and "://" not in scheduler
    ):
        raise PSMDInputError(
            f"scheduler {scheduler!r} is not known; allowed: serial, local, or a "
            "scheduler address such as tcp://host:8786."
        )
    _require_pyarrow()
    specs = read_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest
    out_dir = Path(out_dir)
    (out_dir / PAIRS_DIR).mkdir(parents=True, exist_ok=True)
    tasks = plan_tasks(specs, options)
    _write_index(out_dir, tasks, options)
    todo, skipped = _pending(out_dir, tasks, retry_failed)
    notify = progress or (lambda event: None)
    runner = _Runner(out_dir, len(todo), skipped, notify)
    if not todo:
        runner.start("none (every pair is finished)", None)
    elif client is None and scheduler == "serial":
        runner.start("serial", None)
        for task in todo:
            runner.finished(task, *compute_pair(task))
    else:
        _run_dask(todo, runner, options, scheduler, n_workers, client)
    table = build_table(out_dir, tasks)
    table_path = write_table(out_dir, table)
    notify(BatchEvent("end", runner.done, len(todo), skipped, runner.failed))
    status = table["status"]
    return BatchReport(
        out_dir=out_dir,
        table_path=table_path,
        n_pairs=len(tasks),
        n_computed=runner.done,
        n_skipped=skipped,
        n_ok=int((status == "ok").sum()),
        n_failed=int((status == "error").sum()),
        wall_s=time.perf_counter() - start,
        scheduler=runner.scheduler,
        dashboard=runner.dashboard,
        table=table,
    )


def _pending(out_dir: Path, tasks, retry_failed: bool) -> tuple[list[PairTask], int]:
    """Tasks to compute (one per distinct hash) and the count already done."""
    todo, seen, skipped = [], set(), 0
    for task in tasks:
        record = load_record(out_dir, task.pair_hash)
        done = record is not None and (record["status"] == "ok" or not retry_failed)
        if done:
            skipped += 1
        elif task.pair_hash not in seen:
            seen.add(task.pair_hash)
            todo.append(task)
    return todo, skipped


class _Runner:
    """Writes each finished pair and reports progress."""

    def __init__(self, out_dir: Path, total: int, skipped: int, notify) -> None:
        self.out_dir, self.total, self.skipped = out_dir, total, skipped
        self.notify = notify
        self.done = self.failed = 0
        self.scheduler, self.dashboard = "serial", None

    def start(self, scheduler: str, dashboard: str | None) -> None:
        self.scheduler, self.dashboard = scheduler, dashboard
        logger.info("%d pairs to compute on %s", self.total, scheduler)
        self.notify(
            BatchEvent(
                "start",
                0,
                self.total,
                self.skipped,
                scheduler=scheduler,
                dashboard=dashboard,
            )
        )

    def finished(self, task: PairTask, record: dict, arrays: dict) -> None:
        save_pair(self.out_dir, record, arrays)
        self.done += 1
        self.failed += record["status"] != "ok"
        logger.info("%s: %s", task.spec.name, record["status"])
        self.notify(
            BatchEvent(
                "pair",
                self.done,
                self.total,
                self.skipped,
                self.failed,
                name=task.spec.name,
                status=record["status"],
                wall_s=record.get("wall_time_s"),
                error=record.get("error"),
            )
        )


def _run_on_worker(task: PairTask, devices: tuple[str, ...]) -> tuple[dict, dict]:
    """Dask task: compute one pair on this worker (its own GPU if given)."""
    from distributed import get_worker

    worker = get_worker()
    device = None
    if devices:
        device = devices[int(worker.name) % len(devices)]
    record, arrays = compute_pair(task, device)
    record["worker"] = worker.address
    return record, arrays


def _run_dask(todo, runner: _Runner, options, scheduler, n_workers, client) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise PSMDInputError(
            "Dask is not installed; pip install 'psmd[batch]' or use "
            "--scheduler serial."
        ) from None
    cluster, devices = None, ()
    own = client is None
    if own and scheduler == "local":
        plan = local_cluster_plan(options, n_workers, *_hardware(options))
        cluster = local_cluster(plan)
        devices = plan.devices
        client = Client(cluster)
        where = f"local ({plan.n_workers} workers)"
    elif own:
        client = _connect(Client, scheduler)
        where = scheduler
    else:
        where = str(client.scheduler_info().get("address", "the given client"))
    try:
        resources = task_resources(options, _worker_resources(client))
        runner.start(where, _dashboard(client, cluster))
        futures = {
            client.submit(
                _run_on_worker,
                task,
                devices,
                key=f"psmd-pair-{task.pair_hash}",
                pure=False,
                resources=resources,
            ): task
            for task in todo
        }
        for future in as_completed(futures):
            task = futures.pop(future)
            try:
                record, arrays = future.result()
            except Exception as err:  # the worker died or the task was lost
                record, arrays = _lost(task, err), {}
            runner.finished(task, record, arrays)
            future.release()
    finally:
        if own:
            client.close()
        if cluster is not None:
            cluster.close()


def _lost(task: PairTask, err: Exception) -> dict:
    """Error record of a pair whose task failed outside :func:`compute_pair`."""
    first = (str(err).strip().splitlines() or [""])[0]
    return {
        "pair_hash": task.pair_hash,
        **_provenance(task),
        "status": "error",
        "error": f"{type(err).__name__}: {first}".rstrip(": "),
        "warnings": [],
        "wall_time_s": None,
        "worker": None,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _connect(Client, address: str):
    try:
        return Client(address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise PSMDInputError(
            f"could not reach the Dask scheduler at {address} ({err})."
        ) from None


@dataclass(frozen=True)
class LocalPlan:
    """Shape of the embedded ``LocalCluster``.

    Attributes
    ----------
    n_workers : int
    resources : dict
        Resources each worker advertises (``{"GPU": 1}`` on GPUs).
    devices : tuple of str
        Device of worker k is ``devices[k]`` (empty: the settings decide).
    """

    n_workers: int
    resources: dict
    devices: tuple[str, ...]


def _uses_cuda(options: BatchOptions) -> bool:
    return options.solver == "sinkhorn" and options.device in ("auto", "cuda")


def local_cluster_plan(
    options: BatchOptions, n_workers: int | None, n_cpus: int, n_gpus: int
) -> LocalPlan:
    """Decide the embedded cluster: one worker per GPU for Sinkhorn on CUDA.

    The exact solver runs on CPU cores only, so it gets CPU workers even on a
    GPU machine. Sinkhorn with device ``auto`` or ``cuda`` on a machine with
    GPUs gets one worker per GPU (at most ``n_workers``), each advertising
    the resource ``GPU=1`` and solving on its own ``cuda:k``.
    """
    if _uses_cuda(options) and n_gpus > 0:
        n = min(n_gpus, n_workers or n_gpus)
        return LocalPlan(n, {"GPU": 1}, tuple(f"cuda:{k}" for k in range(n)))
    return LocalPlan(n_workers or max(1, n_cpus), {}, ())


def task_resources(options: BatchOptions, worker_resources: list[dict]) -> dict:
    """Resources each task asks for: one GPU where the workers offer GPUs.

    Asking for a resource no worker has would leave the task waiting for
    ever, so GPU tasks are requested only when some worker advertises
    ``GPU``.
    """
    if options.solver == "sinkhorn" and options.device != "cpu":
        if any(r.get("GPU", 0) >= 1 for r in worker_resources):
            return {"GPU": 1}
    return {}


def _hardware(options: BatchOptions) -> tuple[int, int]:
    n_gpus = 0
    if _uses_cuda(options):
        import torch

        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return os.cpu_count() or 1, n_gpus


def local_cluster(plan: LocalPlan):
    """Start the embedded ``LocalCluster`` that :func:`run_batch` uses.

    Worker processes on 127.0.0.1, one thread each, the plan's resources, the
    dashboard (or the bare HTTP server without bokeh) on a free port. Useful
    to keep one warm cluster for several runs (``run_batch(..., client=)``).
    """
    import dask
    from distributed import LocalCluster

    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes
    # glibc map and fault in fresh pages for every array above 64 kB: a pair
    # of 300 units then took about 45 % longer than in a plain process. The
    # scheduler opens an HTTP server even without a dashboard (bokeh); a free
    # port instead of 8787 keeps parallel runs and tests from clashing.
    no_trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(no_trim):
        return LocalCluster(
            n_workers=plan.n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            resources=plan.resources or None,
        )


def _dashboard(client, cluster) -> str:
    import importlib.util

    if cluster is not None and importlib.util.find_spec("bokeh") is None:
        return "no dashboard (install bokeh to get one)"
    link = getattr(client, "dashboard_link", None)
    return link or "no dashboard"


def _worker_resources(client) -> list[dict]:
    workers = client.scheduler_info().get("workers", {})
    return [w.get("resources") or {} for w in workers.values()]


# --------------------------------------------------------------------------
# Reading an output folder


@dataclass(frozen=True)
class PairRef:
    """Where one pair of a batch came from and where its results are.

    Attributes
    ----------
    name, label_x, label_y : str
    x, y : str
        Input files (absolute paths).
    x_key, y_key : str or None
    cost : str
    status : str
        ``"ok"``, ``"error"`` or ``"pending"``.
    pair_hash : str
    npz, json : Path
        Result files (the npz exists only for ``ok`` pairs).
    row : dict
        The pair's row of the table (all its numbers and provenance).
    """

    name: str
    label_x: str
    label_y: str
    x: str
    y: str
    x_key: str | None
    y_key: str | None
    cost: str
    status: str
    pair_hash: str
    npz: Path
    json: Path
    row: dict = field(default_factory=dict, repr=False)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Load the pair's two matrices through :func:`solver.io.load_matrix`."""
        from solver.io import load_matrix

        return load_matrix(self.x, key=self.x_key), load_matrix(self.y, key=self.y_key)

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the curves and rankings stored in the pair's ``.npz``."""
        if not self.npz.is_file():
            raise PSMDInputError(f"pair {self.name!r} has no results ({self.status}).")
        with np.load(self.npz, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class BatchTable:
    """A batch output folder opened by :func:`read_batch`.

    Attributes
    ----------
    out_dir : Path
    table : pandas.DataFrame
        One row per pair (the columns of ``results.parquet``).
    """

    out_dir: Path
    table: object

    @property
    def labels_x(self) -> list[str]:
        """Row labels in manifest order."""
        return list(dict.fromkeys(self.table["label_x"]))

    @property
    def labels_y(self) -> list[str]:
        """Column labels in manifest order."""
        return list(dict.fromkeys(self.table["label_y"]))

    def _rows(self, cost: str | None):
        t = self.table
        if cost is not None:
            t = t[t["cost"] == cost]
        dup = t.duplicated(["label_x", "label_y"], keep=False)
        if dup.any():
            a, b = t[dup].iloc[0], t[dup].iloc[1]
            raise PSMDInputError(
                f"pairs {a['name']!r} and {b['name']!r} share the cell "
                f"({a['label_x']}, {a['label_y']}); choose a cost or give labels."
            )
        return t

    def _symmetric(self, t, symmetric: bool | None) -> bool:
        return bool(t["symmetric"].all()) if symmetric is None else symmetric

    def _axes(self, t, symmetric: bool) -> tuple[list[str], list[str]]:
        xs = list(dict.fromkeys(t["label_x"]))
        ys = list(dict.fromkeys(t["label_y"]))
        if symmetric:
            both = list(dict.fromkeys(xs + ys))
            return both, both
        return xs, ys

    def matrix(
        self,
        column: str = "elbow_normalized_score",
        *,
        distance: bool = True,
        cost: str | None = None,
        symmetric: bool | None = None,
    ):
        """Return the pair-by-pair matrix, rows ``label_x``, columns ``label_y``.

        Parameters
        ----------
        column : str, default="elbow_normalized_score"
            Any numeric column of the table, e.g. ``sm_normalized_score`` or
            ``normalized_score_m0.8``.
        distance : bool, default=True
            For a score column, return ``1 - score`` (for the normalized
            score: λ(s)/s, the mean cost per matched mass); other columns are
            returned as they are.
        cost : str, optional
            Keep only pairs with this cost (when a manifest has several).
        symmetric : bool, optional
            Fill both (a, b) and (b, a) from one pair, on the union of the
            labels (the measure is symmetric). Default: True when every pair
            came from an ``among`` list.

        Returns
        -------
        pandas.DataFrame
            NaN where a pair failed, is pending or is absent.

        Raises
        ------
        PSMDInputError
            Unknown column, or two pairs on the same cell.
        """
        import pandas as pd

        if column not in self.table.columns:
            raise PSMDInputError(f"column {column!r} is not in the batch table.")
        t = self._rows(cost)
        sym = self._symmetric(t, symmetric)
        xs, ys = self._axes(t, sym)
        values = pd.to_numeric(t[column], errors="coerce").astype(float)
        if distance and "score" in column:
            values = 1.0 - values
        out = pd.DataFrame(np.nan, index=pd.Index(xs, name="label_x"),
                           columns=pd.Index(ys, name="label_y"))  # fmt: skip
        for lx, ly, v in zip(t["label_x"], t["label_y"], values, strict=True):
            out.loc[lx, ly] = v
            if sym:
                out.loc[ly, lx] = v
        return out

    def names(self, *, cost: str | None = None, symmetric: bool | None = None):
        """Return the pair name behind each cell of :meth:`matrix` (None: empty)."""
        import pandas as pd

        t = self._rows(cost)
        sym = self._symmetric(t, symmetric)
        xs, ys = self._axes(t, sym)
        out = pd.DataFrame(None, index=xs, columns=ys, dtype=object)
        for lx, ly, name in zip(t["label_x"], t["label_y"], t["name"], strict=True):
            out.loc[lx, ly] = name
            if sym:
                out.loc[ly, lx] = name
        return out

    def pair(self, name: str) -> PairRef:
        """Return the pair of that name."""
        rows = self.table[self.table["name"] == name]
        if rows.empty:
            raise PSMDInputError(f"no pair named {name!r} in {self.out_dir}.")
        r = rows.iloc[0]
        pairs = self.out_dir / PAIRS_DIR
        return PairRef(
            name=r["name"],
            label_x=r["label_x"],
            label_y=r["label_y"],
            x=r["x"],
            y=r["y"],
            x_key=_none(r["x_key"]),
            y_key=_none(r["y_key"]),
            cost=r["cost"],
            status=r["status"],
            pair_hash=r["pair_hash"],
            npz=pairs / f"{r['pair_hash']}.npz",
            json=pairs / f"{r['pair_hash']}.json",
            row=r.to_dict(),
        )

    def pair_at(
        self, label_x: str, label_y: str, *, cost: str | None = None
    ) -> PairRef:
        """Return the pair behind a cell of :meth:`matrix` (what a click opens).

        For a symmetric batch, (b, a) finds the pair computed as (a, b); the
        returned pair's ``x`` is then the file labelled ``a``.
        """
        names = self.names(cost=cost)
        try:
            name = names.loc[label_x, label_y]
        except KeyError:
            name = None
        if name is None or (isinstance(name, float) and math.isnan(name)):
            raise PSMDInputError(f"no pair at ({label_x}, {label_y}).")
        return self.pair(name)


def _none(value):
    """Parquet gives None or NaN for an absent key; return None for both."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def read_batch(out_dir: str | Path, *, refresh: bool = False) -> BatchTable:
    """Open a batch output folder.

    Parameters
    ----------
    out_dir : str or Path
        The ``--out`` folder of ``psmd batch``.
    refresh : bool, default=False
        Rebuild the table from the per-pair files (and rewrite
        ``results.parquet``), e.g. while a run is still going or after it was
        killed; unfinished pairs then have status ``"pending"``. Also done
        when ``results.parquet`` is missing.

    Returns
    -------
    BatchTable

    Raises
    ------
    PSMDInputError
        The folder holds no batch output.

    Examples
    --------
    >>> bt = read_batch("out")  # doctest: +SKIP
    >>> bt.matrix()             # 1 - normalized score at the elbow  # doctest: +SKIP
    >>> X, Y = bt.pair_at("conv1", "conv2").load()  # doctest: +SKIP
    """
    import pandas as pd

    out_dir = Path(out_dir)
    table_path = out_dir / TABLE_NAME
    if refresh or not table_path.is_file():
        if not (out_dir / INDEX_NAME).is_file():
            raise PSMDInputError(
                f"{out_dir}: not a batch output folder (no {TABLE_NAME} or "
                f"{INDEX_NAME}); run psmd batch first."
            )
        table = build_table(out_dir, _read_index(out_dir))
        write_table(out_dir, table)
    else:
        table = pd.read_parquet(table_path)
    return BatchTable(out_dir=out_dir, table=table)
