"""Server-side state: solves, ε-curves and embeddings, cached by SHA-256 keys.

The browser holds only small dicts (settings and keys). Everything heavy is
computed here and kept twice: in a small in-memory LRU of the server process
for speed, and in a ``diskcache.Cache`` on disk, so that Dash's background
callbacks (forked processes) and later server runs can reuse it. A key is
``hashlib.sha256`` over the canonical JSON of the problem key (itself a hash
of the data and the cost), the settings that matter and the software
versions; Python's salted ``hash()`` is never used.

Devices: the slider's solve runs in the server process on the chosen device
(``--device``, CUDA when available). The ε-curves run in Dash background
callbacks, which are *forked* processes: there the solver is always put on
the CPU with one torch thread, because CUDA cannot be used after a fork and
torch's OpenMP pool hangs in a forked child unless it is limited to one
thread. UMAP runs in a spawn-started worker (:mod:`psmd_app.worker`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import solver
from psmd_app import worker
from psmd_app.data import Catalog, Problem, sha256_json
from psmd_app.figures import MATCHED_THRESHOLD, ScoreCurve
from psmd_app.settings import EXACT_MAX_UNITS, Settings
from solver.exceptions import PSMDConvergenceWarning, PSMDInputError
from solver.result import PartialResult

logger = logging.getLogger(__name__)

# Grid of the alignment curve and elbow search: 100 masses in [0, 1).
CURVE_POINTS = 100
# Masses of the Sinkhorn sweep when the exact path is too large.
SWEEP_POINTS = 40
# Most plan entries solved at once in a Sinkhorn sweep (memory bound).
SWEEP_BATCH_ENTRIES = 40_000_000
# Marginal-error tolerances of the app's Sinkhorn solves (L1, total mass 1).
# float32 stalls just above 1e-6 on plans of more than a few million entries
# (2000 iterations, then a cold retry: many seconds per slider move), so those
# ask for 1e-4, still far below what the figures can show. The sweep only
# places units along ε on a 40-point grid and always uses 1e-4.
SLIDER_TOL = 1e-6
SLIDER_TOL_LARGE = 1e-4
LARGE_PLAN = 4_000_000
SWEEP_TOL = 1e-4
# Plans with more entries are kept in memory only, not written to disk.
MAX_DISK_PLAN = 4_000_000
# "auto" regularisation of the app, as a share of the mean cost. The solver's
# own default (1%) needs hundreds to thousands of iterations on the small
# sample layers, too slow to follow a slider; 3% converges in tens.
APP_REG_FRACTION = 0.03


@dataclass(frozen=True)
class Curves:
    """Everything along ε for one problem: scores, entry masses, elbow.

    Attributes
    ----------
    source : str
        ``"exact path"`` or ``"Sinkhorn sweep"``.
    detail : str
        E.g. ``"412 breakpoints"`` or ``"40 masses, reg 0.0123"``.
    score_curve : ScoreCurve
        λ along increasing ε, from ε = 0.
    entry_mass_x, entry_mass_y : ndarray of shape (n_x,), (n_y,)
        Smallest transported mass at which each kept unit carries mass.
    ranking_x, ranking_y : ndarray of int
        Kept units, best aligned first.
    elbow_mass : float or None
        Elbow of the L-curve (None when no clear elbow).
    elbow_message : str
    time_s : float
    """

    source: str
    detail: str
    score_curve: ScoreCurve
    entry_mass_x: np.ndarray
    entry_mass_y: np.ndarray
    ranking_x: np.ndarray
    ranking_y: np.ndarray
    elbow_mass: float | None
    elbow_message: str
    time_s: float


def _versions() -> dict:
    import importlib.metadata as md

    out = {"psmd": solver.__version__}
    for name in ("numpy", "torch", "POT", "dash", "plotly", "umap-learn", "numba"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def exact_allowed(problem: Problem) -> bool:
    """Whether the exact solver is offered for this problem's size."""
    return max(problem.n_x, problem.n_y) <= EXACT_MAX_UNITS


def single_thread_cpu() -> None:
    """Limit torch to one thread; call first thing in a forked process."""
    import torch

    torch.set_num_threads(1)


class AppState:
    """Datasets, caches and compute of one app server.

    Parameters
    ----------
    catalog : Catalog
    cache_dir : str or Path
        Folder of the disk cache (created if missing).
    default_dataset : str
    device : str, default="auto"
        Device of the slider's Sinkhorn solves in the server process.
    embedding_worker : EmbeddingWorker or None
        Spawned UMAP worker; None fits UMAP in the calling process.
    embedder : callable or None
        Replaces UMAP (features -> coords), e.g. in tests.
    data_folder : psmd_app.data.DataFolder or None
        The folder browsers may open files from (``--data-dir``).
    max_upload_bytes : int, default=200 MB
        Largest upload accepted; 0 turns uploads off.
    batch : solver.batch.BatchTable or None
        An opened ``psmd batch`` output folder (``--batch``).
    """

    def __init__(
        self,
        catalog: Catalog,
        cache_dir,
        *,
        default_dataset: str,
        device: str = "auto",
        embedding_worker: worker.EmbeddingWorker | None = None,
        embedder: Callable[[np.ndarray], np.ndarray] | None = None,
        data_folder=None,
        max_upload_bytes: int = 200_000_000,
        batch=None,
    ) -> None:
        import diskcache

        self.catalog = catalog
        self.data_folder = data_folder
        self.max_upload_bytes = int(max_upload_bytes)
        self.batch = batch
        self.default_dataset = default_dataset
        self.device_option = device
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache = diskcache.Cache(
            str(self.cache_dir / "results"),
            size_limit=2**31,
            eviction_policy="least-recently-used",
        )
        self.embedding_worker = embedding_worker
        self.embedder = embedder
        self._memory: OrderedDict = OrderedDict()
        self._memory_size = 12
        self._warm: dict = {}
        self._solvers: dict = {}
        self._lock = threading.RLock()
        self._solve_lock = threading.Lock()
        self._device = None
        self.versions = _versions()

    # ------------------------------------------------------------ basics

    @property
    def device(self) -> str:
        """Resolved device of server-side solves (``"cpu"``, ``"cuda"``, ...)."""
        if self._device is None:
            from solver.sinkhorn import resolve_device

            self._device = str(resolve_device(self.device_option))
        return self._device

    def problem(self, dataset: str, view: str, cost: str) -> Problem:
        """Prepared problem of a dataset view and cost (see :class:`Catalog`)."""
        return self.catalog.problem(dataset, view, cost)

    def problem_for(self, settings: Settings) -> Problem:
        """Prepared problem named by ``settings``."""
        return self.problem(settings.dataset, settings.view, settings.cost)

    def _remember(self, key: str, value) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self._memory_size:
                self._memory.popitem(last=False)

    def _recall(self, key: str):
        with self._lock:
            value = self._memory.get(key)
            if value is not None:
                self._memory.move_to_end(key)
            return value

    # ------------------------------------------------------------ results

    @staticmethod
    def reg_value(problem: Problem, reg: float | None) -> float:
        """The regularisation used: ``reg``, else ``APP_REG_FRACTION`` x mean cost."""
        if reg is not None:
            return float(reg)
        return float(APP_REG_FRACTION * np.abs(problem.prepared.cost).mean())

    @classmethod
    def result_key(cls, problem: Problem, method: str, reg: float | None, mass: float):
        """SHA-256 key of one solve."""
        reg = None if method == "exact" else cls.reg_value(problem, reg)
        return sha256_json(
            [problem.key, "result", method, reg, round(mass, 6), solver.__version__]
        )

    def get_result(self, key: str, problem: Problem) -> PartialResult | None:
        """A cached solve (memory first, then disk), or None."""
        result = self._recall(key)
        if result is None:
            stored = self.cache.get(key)
            if stored is None:
                return None
            result = dataclasses.replace(
                stored,
                plan=np.asarray(stored.plan, dtype=np.float64),
                cost=problem.prepared.cost,
            )
            self._remember(key, result)
        return result

    def _store_result(self, key: str, result: PartialResult) -> None:
        self._remember(key, result)
        if result.plan.size <= MAX_DISK_PLAN:
            slim = dataclasses.replace(
                result, plan=result.plan.astype(np.float32), cost=np.zeros((0, 0))
            )
            self.cache.set(key, slim)

    def solve(self, settings: Settings) -> tuple[str, PartialResult, bool]:
        """Solve (or fetch) the plan for ``settings``.

        Sinkhorn solves start from the potentials of the previous solve of
        the same problem (a warm start: 15-20 iterations instead of ~120).

        Returns
        -------
        key : str
        result : PartialResult
        cached : bool
            Whether it came from a cache.

        Raises
        ------
        PSMDInputError
            The exact method was asked for a problem above the size bound.
        """
        problem = self.problem_for(settings)
        mass = settings.mass
        key = self.result_key(problem, settings.method, settings.reg, mass)
        result = self.get_result(key, problem)
        if result is not None:
            return key, result, True
        with self._solve_lock:
            if settings.method == "exact":
                result = self._solve_exact(problem, mass)
            else:
                result = self._solve_sinkhorn(problem, settings.reg, mass)
        self._store_result(key, result)
        logger.info(
            "solved %s / %s at ε=%.2f with %s on %s: %d iterations, %s, %.3f s",
            problem.dataset,
            problem.view,
            1 - mass,
            result.method,
            result.device,
            result.n_iter,
            "converged" if result.converged else "NOT converged",
            result.time_s,
        )
        return key, result, False

    def _solve_exact(self, problem: Problem, mass: float) -> PartialResult:
        if not exact_allowed(problem):
            raise PSMDInputError(
                f"the exact method is allowed up to {EXACT_MAX_UNITS} units per "
                f"side; this view has {problem.n_x} x {problem.n_y}; use Sinkhorn."
            )
        start = time.perf_counter()
        path = self.exact_path(problem)
        result = path.result_at(mass, duals=False)
        return dataclasses.replace(result, time_s=time.perf_counter() - start)

    def _sinkhorn(self, reg: float | None, device: str, tol: float):
        from solver.sinkhorn import SinkhornSolver

        key = (reg, device, tol)
        if key not in self._solvers:
            self._solvers[key] = SinkhornSolver(reg=reg, device=device, tol=tol)
        return self._solvers[key]

    def _solve_sinkhorn(self, problem: Problem, reg, mass: float) -> PartialResult:
        reg = self.reg_value(problem, reg)
        warm_key = (problem.key, reg)
        init = self._warm.get(warm_key)
        cost = problem.prepared.cost
        tol = SLIDER_TOL if cost.size <= LARGE_PLAN else SLIDER_TOL_LARGE
        sinkhorn = self._sinkhorn(reg, self.device, tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PSMDConvergenceWarning)
            result = sinkhorn(cost, mass, init=init)
        if not result.converged and init is not None:
            logger.info("warm start did not converge; solving again from scratch")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PSMDConvergenceWarning)
                result = sinkhorn(cost, mass)
        self._warm[warm_key] = result
        return result

    # ------------------------------------------------------------ exact path

    def exact_path(self, problem: Problem):
        """The whole exact ε-path of a problem (solved once, cached)."""
        from solver.exact import exact_path

        key = sha256_json([problem.key, "exact-path", solver.__version__])
        path = self._recall(key)
        if path is not None:
            return path
        stored = self.cache.get(key)
        if stored is not None:
            path = dataclasses.replace(stored, cost=problem.prepared.cost)
        else:
            start = time.perf_counter()
            path = exact_path(problem.prepared.cost)
            logger.info(
                "exact path of %s / %s (%d x %d) in %.2f s",
                problem.dataset,
                problem.view,
                problem.n_x,
                problem.n_y,
                time.perf_counter() - start,
            )
            # The cost is stored once, with the problem; not again with the path.
            self.cache.set(key, dataclasses.replace(path, cost=np.zeros((0, 0))))
        self._remember(key, path)
        return path

    # ------------------------------------------------------------ curves

    @classmethod
    def curves_key(cls, problem: Problem, reg: float | None) -> str:
        """SHA-256 key of a problem's ε-curves."""
        if exact_allowed(problem):
            return sha256_json([problem.key, "curves", "exact", solver.__version__])
        reg = cls.reg_value(problem, reg)
        return sha256_json(
            [
                problem.key,
                "curves",
                "sinkhorn",
                reg,
                SWEEP_POINTS,
                SWEEP_TOL,
                solver.__version__,
            ]
        )

    def get_curves(self, key: str) -> Curves | None:
        """Cached curves, or None."""
        curves = self._recall(key)
        if curves is None:
            curves = self.cache.get(key)
            if curves is not None:
                self._remember(key, curves)
        return curves

    def curves(
        self,
        problem: Problem,
        reg: float | None,
        *,
        progress: Callable[[float, str], None] | None = None,
    ) -> tuple[str, Curves]:
        """Scores, entry masses and elbow along ε (exact path or Sinkhorn sweep).

        Runs on the CPU: it is meant for forked background workers.

        Parameters
        ----------
        problem : Problem
        reg : float or None
            Regularisation of the Sinkhorn sweep (ignored for the exact path).
        progress : callable or None
            Called as ``progress(share_done, message)``.
        """
        key = self.curves_key(problem, reg)
        curves = self.get_curves(key)
        if curves is not None:
            return key, curves
        report = progress or (lambda share, message: None)
        start = time.perf_counter()
        if exact_allowed(problem):
            report(0.05, "solving the exact ε-path")
            curves = self._path_curves(problem)
        else:
            curves = self._sweep_curves(problem, reg, report)
        curves = dataclasses.replace(curves, time_s=time.perf_counter() - start)
        self.cache.set(key, curves)
        self._remember(key, curves)
        report(1.0, f"{curves.source}: {curves.detail}")
        logger.info(
            "curves of %s / %s from the %s (%s) in %.2f s",
            problem.dataset,
            problem.view,
            curves.source,
            curves.detail,
            curves.time_s,
        )
        return key, curves

    def _path_curves(self, problem: Problem) -> Curves:
        path = self.exact_path(problem)
        masses = np.linspace(0.0, 1.0, CURVE_POINTS, endpoint=False)
        grid = np.r_[masses, 1.0]
        costs = np.asarray(path.cost_at(grid), dtype=np.float64)
        elbow_mass, message = _elbow(masses, costs[:-1])
        return Curves(
            source="exact path",
            detail=f"{len(path.masses)} breakpoints",
            score_curve=ScoreCurve(1.0 - grid[::-1], costs[::-1], problem.cost_name),
            entry_mass_x=np.asarray(path.entry_mass_x, dtype=np.float64),
            entry_mass_y=np.asarray(path.entry_mass_y, dtype=np.float64),
            ranking_x=np.asarray(path.ranking_x),
            ranking_y=np.asarray(path.ranking_y),
            elbow_mass=elbow_mass,
            elbow_message=message,
            time_s=0.0,
        )

    def _sweep_curves(self, problem: Problem, reg, report) -> Curves:
        from solver.sinkhorn import SinkhornSolver

        masses = np.linspace(0.0, 1.0, SWEEP_POINTS, endpoint=False)
        grid = np.r_[masses, 1.0]
        cost = problem.prepared.cost
        batch = max(1, SWEEP_BATCH_ENTRIES // cost.size)
        sinkhorn = SinkhornSolver(
            reg=self.reg_value(problem, reg), device="cpu", tol=SWEEP_TOL
        )
        results: list[PartialResult] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PSMDConvergenceWarning)
            for lo in range(0, grid.size, batch):
                chunk = grid[lo : lo + batch]
                report(lo / grid.size, f"Sinkhorn sweep: masses {lo}-{lo + chunk.size}")
                init = results[-1] if results else None
                results += sinkhorn.solve_many(cost, chunk, init=init)
        costs = np.array([r.transport_cost for r in results])
        frac_x = np.array([r.matched_fraction_x for r in results])
        frac_y = np.array([r.matched_fraction_y for r in results])
        entry_x, entry_y = (
            _entry_from_sweep(grid, frac_x),
            _entry_from_sweep(grid, frac_y),
        )
        elbow_mass, message = _elbow(masses, costs[:-1])
        return Curves(
            source="Sinkhorn sweep",
            detail=f"{grid.size} masses, reg {results[-1].reg:.3g}",
            score_curve=ScoreCurve(1.0 - grid[::-1], costs[::-1], problem.cost_name),
            entry_mass_x=entry_x,
            entry_mass_y=entry_y,
            ranking_x=np.argsort(entry_x, kind="stable"),
            ranking_y=np.argsort(entry_y, kind="stable"),
            elbow_mass=elbow_mass,
            elbow_message=message,
            time_s=0.0,
        )

    # ------------------------------------------------------------ embedding

    @staticmethod
    def embedding_key(problem: Problem) -> str:
        """SHA-256 key of the UMAP embedding of a problem's units (cost-free)."""
        return sha256_json([problem.data_key, "umap", worker.MAX_FEATURES, 15, 0])

    def get_embedding(self, key: str) -> np.ndarray | None:
        """Cached embedding coordinates, or None."""
        coords = self._recall(key)
        if coords is None:
            coords = self.cache.get(key)
            if coords is not None:
                self._remember(key, coords)
        return coords

    def embedding(self, problem: Problem, *, progress=None) -> tuple[str, np.ndarray]:
        """2-D embedding of all kept units of both sides (X first).

        Parameters
        ----------
        problem : Problem
        progress : callable or None
            ``progress(state, seconds)`` while waiting for the worker.
        """
        key = self.embedding_key(problem)
        coords = self.get_embedding(key)
        if coords is not None:
            return key, coords
        features = worker.embedding_features(problem.prepared.X, problem.prepared.Y)
        if self.embedder is not None:
            coords = np.asarray(self.embedder(features), dtype=np.float32)
            self.cache.set(key, coords)
        else:
            alive = self.embedding_worker is not None and self.embedding_worker.alive()
            coords = worker.request_embedding(
                self.cache, key, features, worker_alive=alive, progress=progress
            )
        self._remember(key, coords)
        return key, coords

    # ------------------------------------------------------------ per unit

    def order(self, result: PartialResult, curves: Curves | None):
        """Units of both sides, best first: by entry mass when known."""
        if curves is not None:
            return curves.ranking_x, curves.ranking_y
        return result.ranking("x"), result.ranking("y")


def _elbow(masses: np.ndarray, costs: np.ndarray) -> tuple[float | None, str]:
    """Elbow of the L-curve, or None with the reason."""
    from solver.selection import select_mass

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            elbow = select_mass(masses, costs)
    except PSMDInputError as err:
        return None, str(err)
    return (elbow.mass if elbow.found else None), elbow.message


def _entry_from_sweep(grid: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Entry mass per unit from matched fractions along increasing masses.

    A unit enters at the first mass where at least ``MATCHED_THRESHOLD`` of
    its weight is matched (entropic plans give every unit a little mass);
    between grid points the crossing is interpolated linearly.
    """
    n_units = fractions.shape[1]
    entry = np.ones(n_units)
    above = fractions >= MATCHED_THRESHOLD
    first = np.where(above.any(axis=0), above.argmax(axis=0), grid.size - 1)
    for unit, k in enumerate(first):
        if k == 0:
            entry[unit] = grid[0]
            continue
        f0, f1 = fractions[k - 1, unit], fractions[k, unit]
        t = (MATCHED_THRESHOLD - f0) / (f1 - f0) if f1 > f0 else 1.0
        entry[unit] = grid[k - 1] + np.clip(t, 0.0, 1.0) * (grid[k] - grid[k - 1])
    return entry
