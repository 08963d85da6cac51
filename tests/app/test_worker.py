"""UMAP features and the worker's job queue (UMAP itself replaced by a stub)."""

import threading

import diskcache
import numpy as np
import pytest

from psmd_app import worker


def test_features_order_units_by_tuning_correlation(rng):
    X = rng.normal(size=(300, 6))
    Y = np.c_[X[:, 0] + 0.1 * rng.normal(size=300), rng.normal(size=(300, 2))]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    features = worker.embedding_features(Xc, Yc, max_dims=300)
    assert features.shape == (9, 300)
    d = np.linalg.norm(features[:6, None] - features[None, 6:], axis=2)
    r = np.corrcoef(np.c_[X, Y].T)[:6, 6:]
    # Unit-norm rows: squared distance = 2 (1 - r).
    np.testing.assert_allclose(d**2, 2 * (1 - r), atol=1e-5)


def test_features_are_reduced_by_pca(rng):
    X = rng.normal(size=(400, 70))
    features = worker.embedding_features(X - X.mean(0), X[:, :40] - X[:, :40].mean(0))
    assert features.shape == (110, worker.MAX_FEATURES)


def serve_one(cache):
    """What the worker loop does for one job."""
    for _ in range(500):
        _, job = cache.pull(prefix=worker.JOB_PREFIX)
        if job is not None:
            worker._run_job(cache, job)
            return
        threading.Event().wait(0.01)


@pytest.fixture
def fake_umap(monkeypatch):
    monkeypatch.setattr(
        worker, "umap_embedding", lambda features, **_: features[:, :2] * 2
    )


def test_queued_job_is_served(tmp_path, fake_umap):
    cache = diskcache.Cache(str(tmp_path))
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    cache.set(worker.READY_KEY, 1.0)
    thread = threading.Thread(target=serve_one, args=(cache,))
    thread.start()
    states = []
    coords = worker.request_embedding(
        cache, "k1", features, worker_alive=True, poll_s=0.01,
        progress=lambda state, seconds: states.append(state),
    )  # fmt: skip
    thread.join(timeout=5)
    np.testing.assert_array_equal(coords, features[:, :2] * 2)
    assert cache.get(worker.job_key("k1")) == {"state": "done"}


def test_job_without_a_waiting_requester_is_skipped(tmp_path, fake_umap):
    cache = diskcache.Cache(str(tmp_path))
    worker._run_job(cache, {"key": "k2", "features": np.zeros((3, 2))})
    assert cache.get("k2") is None


def test_without_worker_the_caller_fits(tmp_path, fake_umap):
    cache = diskcache.Cache(str(tmp_path))
    features = np.ones((5, 3), dtype=np.float32)
    coords = worker.request_embedding(cache, "k3", features, worker_alive=False)
    np.testing.assert_array_equal(coords, features[:, :2] * 2)
    assert cache.get("k3") is not None


def test_failed_job_raises(tmp_path, monkeypatch):
    def broken(features, **_):
        raise ValueError("boom")

    monkeypatch.setattr(worker, "umap_embedding", broken)
    cache = diskcache.Cache(str(tmp_path))
    thread = threading.Thread(target=serve_one, args=(cache,))
    thread.start()
    with pytest.raises(RuntimeError, match="UMAP failed: boom"):
        worker.request_embedding(
            cache, "k4", np.zeros((3, 2)), worker_alive=True, poll_s=0.01, timeout_s=5
        )
    thread.join(timeout=5)
