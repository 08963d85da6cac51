"""Tests of the shipped samples, their loader and the deterministic builder."""

from __future__ import annotations

import hashlib
import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sample_data
from sample_data import build as builder
from solver import synthetic
from solver.exceptions import PSMDInputError

SHIPPED = ("digits-cnn", "fmri-sim", "planted")
GLOBS = ("*.npz", "*.pt", "*.json", "*.md", "*.png")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    return sample_data.load("digits-cnn")


@pytest.fixture(scope="module")
def fmri():
    return sample_data.load("fmri-sim")


def _zscore(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    A = A - A.mean(axis=0)
    return A / np.linalg.norm(A, axis=0)


# --- loader API and errors ---------------------------------------------------


def test_list_samples_names():
    assert sample_data.list_samples() == [
        "digits-cnn",
        "fmri-sim",
        "planted",
        "planted-large",
    ]


def test_unknown_sample_lists_allowed_names():
    with pytest.raises(PSMDInputError, match="unknown sample 'mnist'; allowed names"):
        sample_data.load("mnist")


def test_unknown_option_is_refused():
    with pytest.raises(PSMDInputError, match="takes no option 'n_units'"):
        sample_data.load("planted", n_units=10)
    with pytest.raises(PSMDInputError, match="allowed options are n_units, seed"):
        sample_data.load("planted-large", data_dir=".")


@pytest.mark.parametrize(
    ("n_units", "match"),
    [(5, "at least 10, got 5"), (12.5, "must be an integer"), (True, "integer")],
    ids=["too-small", "float", "bool"],
)
def test_planted_large_bad_size(n_units, match):
    with pytest.raises(PSMDInputError, match=match):
        sample_data.load("planted-large", n_units=n_units)


def test_planted_large_bad_stimuli():
    with pytest.raises(PSMDInputError, match="n_stimuli must be at least 50"):
        sample_data.load("planted-large", n_units=100, n_stimuli=10)


def test_build_unknown_sample():
    with pytest.raises(PSMDInputError, match="cannot build sample 'planted-large'"):
        builder.build("unused", tiny=True, only=["planted-large"])


def test_missing_files_name_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m sample_data.build"):
        sample_data.load("planted", data_dir=tmp_path)


@pytest.mark.parametrize("name", SHIPPED)
def test_loading_is_fast(name):
    sample_data.load(name)  # warm the file cache
    start = time.perf_counter()
    sample_data.load(name)
    assert time.perf_counter() - start < 1.0


def test_loading_does_not_import_torch():
    code = (
        "import sys, sample_data\n"
        "for n in ('digits-cnn', 'fmri-sim', 'planted'): sample_data.load(n)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_loaded_arrays_are_read_only(digits):
    with pytest.raises(ValueError, match="read-only"):
        digits.views["conv1"].X[0, 0] = 1.0


# --- shipped files -----------------------------------------------------------


def test_shipped_files_size_and_extensions():
    files = [p for p in sample_data.DATA_DIR.glob("*/*") if p.is_file()]
    files = [p for p in files if p.parent.name != "__pycache__"]
    assert {p.parent.name for p in files} == set(SHIPPED)
    assert all(any(p.match(g) for g in GLOBS) for p in files), files
    assert sum(p.stat().st_size for p in files) <= 15 * 2**20


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_hashes_match_info(name):
    folder = sample_data.DATA_DIR / name
    info = json.loads((folder / "info.json").read_text())
    assert not info["tiny"]
    for filename, digest in info["sha256"].items():
        assert hashlib.sha256((folder / filename).read_bytes()).hexdigest() == digest


# --- digits-cnn --------------------------------------------------------------


def test_digits_cnn_shapes(digits):
    assert digits.kind == "cnn"
    assert digits.images.shape == (1797, 8, 8) and digits.images.dtype == np.uint8
    assert digits.stimulus_labels.shape == (1797,)
    assert set(digits.views) == {"conv1", "conv2", "conv3"}
    channels = {}
    for layer, view in digits.views.items():
        assert view.X.dtype == np.float32 and view.Y.dtype == np.float32
        assert view.X.shape == view.Y.shape
        assert view.X.shape[0] == 1797
        # No dead channel: every unit varies over the images.
        assert (view.X.std(axis=0) > 0).all() and (view.Y.std(axis=0) > 0).all()
        channels[layer] = view.X.shape[1]
    assert channels == {"conv1": 32, "conv2": 64, "conv3": 128}


def test_digits_cnn_heldout_accuracy(digits):
    info = json.loads((sample_data.DATA_DIR / "digits-cnn" / "info.json").read_text())
    for tag in ("a", "b"):
        assert info["models"][tag]["heldout_accuracy"] >= 0.95
        assert digits.meta["heldout_accuracy"][tag] >= 0.95
    assert digits.x_name != digits.y_name
    assert info["models"]["a"]["seed"] != info["models"]["b"]["seed"]
    assert digits.meta["heldout"].sum() == info["n_heldout"] == 359


def test_digits_cnn_heldout_split_is_stratified(digits):
    recomputed = builder.heldout_mask(digits.stimulus_labels)
    np.testing.assert_array_equal(recomputed, digits.meta["heldout"])
    per_class = np.bincount(digits.stimulus_labels[recomputed], minlength=10)
    totals = np.bincount(digits.stimulus_labels, minlength=10)
    np.testing.assert_array_equal(per_class, np.rint(0.2 * totals))


def test_digits_images_match_sklearn(digits):
    from sklearn.datasets import load_digits

    reference = load_digits()
    np.testing.assert_array_equal(
        digits.images, np.rint(reference.images * 255 / 16).astype(np.uint8)
    )
    np.testing.assert_array_equal(digits.stimulus_labels, reference.target)


def test_cnn_weights_reproduce_activations(digits):
    torch = pytest.importorskip("torch")

    rows = [0, 411, 1796]
    for tag, side in (("a", "X"), ("b", "Y")):
        model = sample_data.digits_cnn_model(tag)
        acts = sample_data.digits_cnn_activations(model, digits.images[rows])
        for layer, view in digits.views.items():
            np.testing.assert_allclose(
                acts[layer], getattr(view, side)[rows], rtol=1e-5, atol=1e-6
            )
    # Weights are plain tensors: loadable without unpickling code.
    path = digits.meta["weights"]["a"]
    state = torch.load(path, weights_only=True)
    assert state["conv3.weight"].shape == (128, 64, 3, 3)


def test_cnn_function_errors(digits):
    pytest.importorskip("torch")
    with pytest.raises(PSMDInputError, match="which must be 'a', 'b' or None"):
        sample_data.digits_cnn_model("c")
    model = sample_data.digits_cnn_model()
    with pytest.raises(PSMDInputError, match="images must be uint8 of shape"):
        sample_data.digits_cnn_activations(model, digits.images.astype(float))
    with pytest.raises(PSMDInputError, match="unknown layer 'fc'"):
        sample_data.digits_cnn_activations(model, digits.images[:2], ("fc",))


# --- fmri-sim ----------------------------------------------------------------


def test_fmri_views_and_counts(fmri):
    assert fmri.kind == "fmri"
    regions = fmri.meta["regions"]
    assert len(regions) >= 2
    assert set(fmri.views) == {*regions, "all regions"}
    n_x = n_y = 0
    for region in regions:
        view = fmri.views[region]
        assert view.X.shape[1] >= 300 and view.Y.shape[1] >= 300
        assert view.X.shape[1] != view.Y.shape[1]
        assert (view.labels_x == region).all() and (view.labels_y == region).all()
        n_x, n_y = n_x + view.X.shape[1], n_y + view.Y.shape[1]
    every = fmri.views["all regions"]
    assert every.X.shape == (600, n_x) and every.Y.shape == (600, n_y)
    assert every.X.dtype == np.float32
    assert fmri.images.shape == (600, 8, 8) and fmri.images.dtype == np.uint8


def test_fmri_coordinates_on_the_grid(fmri):
    affine = fmri.meta["affine"]
    for view in fmri.views.values():
        for coords, info in (
            (view.coords_x, view.unit_info_x),
            (view.coords_y, view.unit_info_y),
        ):
            ijk = info["ijk"].astype(float)
            np.testing.assert_allclose(ijk @ affine[:3, :3].T + affine[:3, 3], coords)
            assert (ijk >= 0).all() and (ijk < np.array(fmri.meta["shape"])).all()


def test_fmri_pure_noise_voxels(fmri):
    for region in fmri.meta["regions"]:
        view = fmri.views[region]
        for rel, truth in (
            (view.reliability_x, view.truth_x),
            (view.reliability_y, view.truth_y),
        ):
            noise = rel == 0
            assert noise.sum() >= 10
            assert (truth[noise] == -1).all() and (truth[~noise] >= 0).all()
            assert ((rel[~noise] > 0) & (rel[~noise] < 1)).all()


def test_fmri_partners_are_in_the_same_region(fmri):
    view = fmri.views["all regions"]
    matched = view.truth_x >= 0
    assert (view.labels_y[view.truth_x[matched]] == view.labels_x[matched]).all()
    assert (view.reliability_y[view.truth_x[matched]] > 0).all()


def test_fmri_partner_beats_random_voxel(fmri):
    rng = np.random.default_rng(0)
    for region in fmri.meta["regions"]:
        view = fmri.views[region]
        corr = _zscore(view.X).T @ _zscore(view.Y)
        rows = np.flatnonzero((view.reliability_x > 0.5) & (view.truth_x >= 0))
        rows = rows[view.reliability_y[view.truth_x[rows]] > 0.5]
        partner = corr[rows, view.truth_x[rows]]
        random = corr[rows, rng.integers(0, view.Y.shape[1], rows.size)]
        assert partner.mean() > random.mean() + 0.2
        assert (partner > random).mean() > 0.9


def test_fmri_reliability_is_the_signal_share(fmri):
    # Voxels at the same template position share an identical z-scored signal,
    # so their correlation is sqrt(rel_x * rel_y) up to sampling noise.
    view = fmri.views["all regions"]
    corr = _zscore(view.X).T @ _zscore(view.Y)
    rows = np.flatnonzero(view.unit_info_x["partner_distance"] == 0)
    cols = view.truth_x[rows]
    expected = np.sqrt(view.reliability_x[rows] * view.reliability_y[cols])
    assert rows.size > 200
    assert abs(np.mean(corr[rows, cols] - expected)) < 0.01
    assert np.std(corr[rows, cols] - expected) < 0.06


def test_fmri_voxels_inside_nilearn_brain_mask(fmri):
    datasets = pytest.importorskip("nilearn.datasets")
    mask_img = datasets.load_mni152_brain_mask(resolution=2)
    mask = np.asarray(mask_img.dataobj) > 0
    np.testing.assert_allclose(fmri.meta["affine"], mask_img.affine)
    assert fmri.meta["shape"] == mask.shape
    view = fmri.views["all regions"]
    for ijk in (view.unit_info_x["ijk"], view.unit_info_y["ijk"]):
        assert mask[tuple(ijk.T)].all()


# --- planted -----------------------------------------------------------------


def test_planted_matches_generator():
    sample = sample_data.load("planted")
    view = sample.views["all units"]
    pair = synthetic.planted_pair(seed=0)
    # Same seed, same draws; the QR and matrix products go through LAPACK and
    # BLAS, whose last bits differ between CPUs, so compare to rounding.
    np.testing.assert_allclose(view.X, pair.X, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(view.Y, pair.Y, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(view.truth_x, pair.partner_x)
    assert (view.labels_x == "signal").sum() == 100
    assert (view.labels_x == "noise").sum() == 20
    assert (view.labels_y == "noise").sum() == 90
    assert (view.truth_y[:100] == np.arange(100)).all()
    assert (view.truth_y[100:] == -1).all()
    assert sample.meta["ideal_mass"] == pytest.approx(100 / 190)


def test_planted_large_proportions():
    assert (
        inspect.signature(sample_data._planted_large).parameters["n_units"].default
        == 5000
    )
    assert sample_data.planted_large_sizes(5000) == (2632, 526, 2368)
    sample = sample_data.load("planted-large", n_units=380, n_stimuli=200, seed=3)
    view = sample.views["all units"]
    assert view.X.shape == (200, 240) and view.Y.shape == (200, 380)
    assert (view.labels_y == "signal").sum() == 200
    assert (view.labels_x == "noise").sum() == 40


def test_planted_large_at_paper_size_is_the_planted_sample():
    large = sample_data.load("planted-large", n_units=190).views["all units"]
    shipped = sample_data.load("planted").views["all units"]
    # To rounding: see test_planted_matches_generator.
    np.testing.assert_allclose(large.X, shipped.X, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(large.Y, shipped.Y, rtol=1e-12, atol=1e-14)


# --- the builder -------------------------------------------------------------


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "name",
    [
        # torch's first optimizer step imports for seconds: slow.
        pytest.param("digits-cnn", marks=pytest.mark.slow),
        "fmri-sim",
        "planted",
    ],
)
def test_tiny_build_is_deterministic(tmp_path, name):
    for run in ("one", "two"):
        builder.build(tmp_path / run, tiny=True, only=[name])
    first = _file_bytes(tmp_path / "one" / name)
    assert first == _file_bytes(tmp_path / "two" / name)
    assert set(first) == {p.name for p in (sample_data.DATA_DIR / name).iterdir()}

    tiny = sample_data.load(name, data_dir=tmp_path / "one")
    shipped = sample_data.load(name)
    assert set(tiny.views) == set(shipped.views)
    for key, view in tiny.views.items():
        assert view.X.dtype == shipped.views[key].X.dtype
        assert view.X.shape[1:] == shipped.views[key].X.shape[1:] or name == "fmri-sim"
