"""UMAP embeddings of units, and the long-lived process that computes them.

umap-learn compiles its numba code on the first fit in each new process,
which takes 20-30 s on a small CPU. Dash's background callbacks run in a
*fresh forked* process every time, so fitting UMAP there would pay that cost
on every request. Instead one worker process is started with the *spawn*
method when the app starts (no fork after torch or numba threads exist, and
it could use CUDA safely), compiles UMAP once on a tiny problem while the
first figures are drawn, and then serves fits from a queue in the app's disk
cache. A background callback pushes a job and waits for its result,
reporting progress; when the worker is not running (tests, or
``--no-worker``) the caller fits UMAP itself.

The queue and the results live in one ``diskcache.Cache`` (its ``push`` /
``pull`` queue), so any process that opens the same folder can talk to the
worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import warnings

import numpy as np

logger = logging.getLogger(__name__)

JOB_PREFIX = "umap-job"
READY_KEY = "umap-worker-ready"

# A requester refreshes its wish every poll; the worker skips jobs whose
# requester stopped asking for this long (cancelled or gone).
WANT_SECONDS = 20.0

# Stimulus dimensions kept (by PCA) before UMAP.
MAX_FEATURES = 50


def job_key(key: str) -> tuple[str, str]:
    """Cache key holding a job's status dict."""
    return ("umap-status", key)


def want_key(key: str) -> tuple[str, str]:
    """Cache key a requester refreshes while it waits."""
    return ("umap-want", key)


def embedding_features(X: np.ndarray, Y: np.ndarray, max_dims: int = MAX_FEATURES):
    """Stack the units of both sides as normalised tuning curves, reduced by PCA.

    Parameters
    ----------
    X, Y : ndarray of shape (n_stimuli, n_x), (n_stimuli, n_y)
        Centred responses.
    max_dims : int, default=50
        Most principal components kept.

    Returns
    -------
    ndarray of float32 of shape (n_x + n_y, min(max_dims, n_stimuli))
        One row per unit (X's first). Euclidean distance between rows is a
        monotone function of the correlation between the units' tuning.
    """
    Z = np.hstack([X, Y]).T.astype(np.float64)
    Z = Z - Z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    Z = Z / np.where(norms > 0, norms, 1.0)
    if Z.shape[1] > max_dims and Z.shape[0] > max_dims:
        from sklearn.utils.extmath import randomized_svd

        U, S, _ = randomized_svd(Z, max_dims, random_state=0)
        Z = U * S
    return Z.astype(np.float32)


def umap_embedding(features: np.ndarray, *, n_neighbors: int = 15, seed: int = 0):
    """Fit UMAP to unit features and return 2-D coordinates.

    Parameters
    ----------
    features : ndarray of shape (n_units, n_features)
    n_neighbors : int, default=15
        Capped at ``n_units - 1``.
    seed : int, default=0

    Returns
    -------
    ndarray of float32 of shape (n_units, 2)
    """
    import umap

    n = len(features)
    if n < 4:
        return np.c_[np.arange(n), np.zeros(n)].astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = umap.UMAP(
            n_components=2,
            n_neighbors=max(2, min(n_neighbors, n - 1)),
            min_dist=0.2,
            random_state=seed,
            init="spectral" if n > 20 else "random",
        )
        coords = model.fit_transform(features)
    return np.asarray(coords, dtype=np.float32)


def _warm_up() -> None:
    """Compile umap-learn's numba code on a tiny problem."""
    rng = np.random.default_rng(0)
    umap_embedding(rng.normal(size=(60, 8)).astype(np.float32))


def _serve(cache_dir: str, parent_pid: int) -> None:
    """Worker main loop: warm up, then fit queued jobs until the parent exits."""
    import diskcache

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    try:
        os.nice(10)  # the server's own requests come first
    except OSError:
        pass
    cache = diskcache.Cache(cache_dir)
    start = time.perf_counter()
    _warm_up()
    cache.set(READY_KEY, time.time())
    logger.info("UMAP worker ready in %.1f s", time.perf_counter() - start)
    while os.getppid() == parent_pid:
        _, job = cache.pull(prefix=JOB_PREFIX)
        if job is None:
            time.sleep(0.1)
            continue
        _run_job(cache, job)


def _run_job(cache, job: dict) -> None:
    key = job["key"]
    if cache.get(key) is not None:
        return
    if cache.get(want_key(key)) is None:
        cache.delete(job_key(key))
        logger.info("UMAP job %s skipped: nobody is waiting", key[:12])
        return
    cache.set(job_key(key), {"state": "running", "since": time.time()})
    try:
        start = time.perf_counter()
        coords = umap_embedding(job["features"], **job.get("options", {}))
        cache.set(key, coords)
        cache.set(job_key(key), {"state": "done"})
        logger.info(
            "UMAP of %d units in %.1f s", len(coords), time.perf_counter() - start
        )
    except Exception as err:  # reported to the waiting callback, never lost
        cache.set(job_key(key), {"state": "failed", "error": str(err)})


class EmbeddingWorker:
    """Handle on the spawn-started UMAP worker process.

    Parameters
    ----------
    cache_dir : str or path
        Folder of the ``diskcache.Cache`` shared with the app.
    """

    def __init__(self, cache_dir) -> None:
        self.cache_dir = str(cache_dir)
        self._process = None
        self.pid: int | None = None

    def start(self) -> None:
        """Start the worker (spawn method, daemon) unless it already runs."""
        if self.alive():
            return
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=_serve,
            args=(self.cache_dir, os.getpid()),
            name="psmd-umap-worker",
            daemon=True,
        )
        self._process.start()
        self.pid = self._process.pid
        logger.info("started the UMAP worker (pid %d)", self._process.pid)

    def alive(self) -> bool:
        """Whether the worker process runs (also answers in forked children)."""
        if self.pid is None:
            return False
        import psutil

        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def stop(self) -> None:
        """Terminate the worker and wait briefly for it."""
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._process = None
        self.pid = None


def request_embedding(
    cache,
    key: str,
    features: np.ndarray,
    *,
    worker_alive: bool,
    progress=None,
    poll_s: float = 0.25,
    timeout_s: float = 600.0,
) -> np.ndarray:
    """Return the embedding stored under ``key``, computing it if needed.

    With a running worker the job is queued and this call waits, calling
    ``progress(state, seconds)`` at every poll; without one, UMAP is fitted
    here.

    Raises
    ------
    RuntimeError
        The worker reported a failure, or no answer came within ``timeout_s``.
    """
    coords = cache.get(key)
    if coords is not None:
        return coords
    if not worker_alive:
        if progress is not None:
            progress("fitting UMAP in this process", 0.0)
        coords = umap_embedding(features)
        cache.set(key, coords)
        return coords
    parent = os.getppid()
    cache.set(want_key(key), 1, expire=WANT_SECONDS)
    status = cache.get(job_key(key))
    if status is None or status.get("state") == "failed":
        cache.set(job_key(key), {"state": "queued", "since": time.time()})
        cache.push({"key": key, "features": features}, prefix=JOB_PREFIX)
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if os.getppid() != parent:
            raise RuntimeError("the app server stopped while UMAP was computing")
        coords = cache.get(key)
        if coords is not None:
            return coords
        status = cache.get(job_key(key)) or {}
        if status.get("state") == "failed":
            raise RuntimeError(f"UMAP failed: {status.get('error')}")
        cache.set(want_key(key), 1, expire=WANT_SECONDS)
        if progress is not None:
            waiting = status.get("state", "queued")
            if waiting == "queued" and cache.get(READY_KEY) is None:
                waiting = "waiting for UMAP to compile (first run only)"
            progress(waiting, time.perf_counter() - start)
        time.sleep(poll_s)
    raise RuntimeError(f"no UMAP result after {timeout_s:.0f} s")
