"""The examples' qualitative claims, checked at small sizes.

Each example runs once per module into a temporary folder; the tests read
its numbers and the pair files it wrote (the app must open every one).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from examples import (
    _common,
    fmri_sim,
    model_selection,
    privileged_axes,
    ranking_agreement,
    spurious_neurons,
)
from psmd_app.data import own_files_loader


def _quiet(run, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return run(**kwargs)


@pytest.fixture(scope="module")
def spurious(tmp_path_factory):
    out = tmp_path_factory.mktemp("spurious")
    return out, _quiet(spurious_neurons.run, n_seeds=4, cv_folds=0, out_dir=out)


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    out = tmp_path_factory.mktemp("selection")
    return out, _quiet(model_selection.run, n_seeds=4, cv_folds=0, out_dir=out)


@pytest.fixture(scope="module")
def ranking(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranking")
    return out, _quiet(ranking_agreement.run, layers=("conv1",), out_dir=out)


@pytest.fixture(scope="module")
def axes(tmp_path_factory):
    out = tmp_path_factory.mktemp("axes")
    return out, _quiet(privileged_axes.run, n_rotations=5, out_dir=out)


@pytest.fixture(scope="module")
def fmri(tmp_path_factory):
    out = tmp_path_factory.mktemp("fmri")
    return out, _quiet(fmri_sim.run, step=3, out_dir=out)


def test_noise_units_enter_last(spurious):
    """Every noise unit of Y enters the path after all of Y's signal units."""
    _, res = spurious
    for seed in res["per_seed"]:
        entry = seed["entry_y"]
        assert entry["noise_enters_last"], seed["seed"]
        assert entry["first_noise_entry"] >= res["ideal_mass"] - 1e-9


def test_elbow_lands_near_the_planted_mass(spurious):
    """The elbow is within 0.02 of 100/190 and keeps >= 99% of mass in signal."""
    _, res = spurious
    for seed in res["per_seed"]:
        assert seed["elbow_found"]
        assert abs(seed["elbow_mass"] - res["ideal_mass"]) <= 0.02
        assert seed["at_elbow"]["signal_block_share"] >= 0.99
        # Full soft matching must spread mass onto the noise units.
        assert seed["full"]["signal_block_share"] < 0.6
        assert seed["at_elbow"]["normalized_score"] > seed["full"]["normalized_score"]


def test_model_selection_full_matching_prefers_the_wrong_model(selection):
    """Full SM picks Y_b; the raw partial score at each elbow picks Y_a."""
    _, res = selection
    picks = res["aggregate"]["in_sample"]["fraction_picking_a"]
    assert picks["full_sm"] == 0.0
    assert picks["raw_at_elbow"] >= 0.75
    # At one common mass Y_b's pairs are the better matched (METHOD §4.2).
    assert picks["common_mass"] <= 0.25


def test_entry_ranking_agrees_with_brute_force_on_planted(ranking):
    """On Y of the planted pair the entry ranking tracks leave-one-out."""
    _, res = ranking
    planted = res["datasets"][0]
    assert planted["name"] == "planted"
    rho = planted["y"]["spearman"]
    assert rho["exact_path"]["brute_force"] >= 0.95
    assert planted["y"]["top_n_signal_is_signal_set"]["exact_path"]
    assert planted["y"]["top_n_signal_is_signal_set"]["brute_force"]


@pytest.mark.parametrize("layer", ["conv1", "conv3"])
def test_native_basis_beats_every_rotation_at_every_mass(axes, layer):
    _, res = axes
    out = res["layers"][layer]
    assert out["beats_every_rotation_at_every_mass"]
    assert out["min_margin_over_best_rotation"] > 0.01


def test_native_basis_beats_the_rotation_mean_on_every_layer(axes):
    _, res = axes
    for layer, out in res["layers"].items():
        assert out["beats_rotation_mean_at_every_mass"], layer


def test_low_reliability_voxels_over_represented_among_unmatched(fmri):
    _, res = fmri
    for side in ("x", "y"):
        e = res["views"]["all regions"][side]
        assert e["n_unmatched"] > 10
        assert e["low_share_of_unmatched"] > 0.75
        assert e["enrichment"] > 3.0
        assert e["p_value"] < 1e-10
        assert e["mean_reliability_unmatched"] < e["mean_reliability_matched"]


def test_partial_matching_keeps_mass_within_regions(fmri):
    _, res = fmri
    p = res["precision"]
    assert p["partial_at_elbow"] > p["full_sm"] + 0.02
    assert p["partial_at_elbow"] > p["full_sm_top_mass"]


def test_enrichment_counts_and_p_value():
    reliability = np.arange(8, dtype=float)
    unmatched = np.array([True, True, False, False, False, False, False, True])
    out = fmri_sim.enrichment(unmatched, reliability, 0.25)
    assert (out["n_low"], out["n_unmatched"], out["n_low_unmatched"]) == (2, 3, 2)
    assert out["low_share_of_unmatched"] == pytest.approx(2 / 3)
    # P(at least 2 of 3 draws among the 2 low of 8) = C(2,2) C(6,1) / C(8,3).
    assert out["p_value"] == pytest.approx(6 / 56)


def test_top_mass_keeps_exactly_the_mass_asked_for():
    plan = np.array([[0.4, 0.1], [0.2, 0.3]])
    kept = fmri_sim._top_mass(plan, 0.5)
    assert kept.sum() == pytest.approx(0.5)
    np.testing.assert_allclose(kept, [[0.4, 0.0], [0.0, 0.1]])


def test_unit_names_are_numbered_within_labels():
    names = _common.unit_names("x", ["signal", "noise", "signal"])
    assert names.tolist() == ["x-signal-000", "x-noise-000", "x-signal-001"]
    assert names.dtype.kind == "U"


EXAMPLES = ("spurious", "selection", "ranking", "axes", "fmri")


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_writes_figure_json_and_pairs(name, request):
    out, res = request.getfixturevalue(name)
    assert (out / "figure.png").stat().st_size > 10_000
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["experiment"] == res["experiment"]
    assert saved["run_time_s"] > 0 and "numpy" in saved["versions"]
    assert list(out.glob("pair*.npz"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_app_opens_each_pair_file(name, request):
    """The app's pair loader accepts every pair file; no pickle inside."""
    out, _ = request.getfixturevalue(name)
    for path in sorted(Path(out).glob("pair*.npz")):
        sample = own_files_loader([str(path)])()
        view = sample.views["all units"]
        with np.load(path, allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
            np.testing.assert_array_equal(view.X, npz["X"])
            np.testing.assert_array_equal(view.Y, npz["Y"])
            if "images" in npz.files:
                assert sample.images.shape[0] == view.X.shape[0]
            for key in ("names_x", "names_y"):
                if key in npz.files:
                    assert npz[key].dtype.kind == "U"


def test_the_app_lists_example_pair_files_from_a_data_folder(tmp_path):
    """A teacher's `psmd-app --data-dir examples/_out`: each pair is a dataset."""
    import numpy as np

    from psmd_app.app import create_app

    folder = tmp_path / "_out" / "fmri_sim"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez_compressed(
        folder / "pair_V1-like.npz",
        X=rng.normal(size=(30, 5)),
        Y=rng.normal(size=(30, 4)),
        coords_x=rng.normal(size=(5, 3)),
        coords_y=rng.normal(size=(4, 3)),
        names_x=np.array([f"v{i}" for i in range(5)]),
    )
    app = create_app(samples=[], data_dir=tmp_path / "_out", cache_dir=tmp_path / "c")
    catalog = app.server.config["PSMD_STATE"].catalog
    assert catalog.names == ["folder:fmri_sim/pair_V1-like.npz"]
    info = catalog.info(catalog.names[0])
    assert info.has_coords and info.sizes["all units"] == (5, 4)
