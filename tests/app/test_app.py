"""The command line of ``psmd-app`` and ``python -m psmd_app``."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from psmd_app import app as app_module
from solver.exceptions import PSMDInputError

ROOT = Path(__file__).resolve().parents[2]


def test_import_has_no_side_effects():
    code = (
        "import logging, sys, psmd_app.app; "
        "assert 'sample_data' not in sys.modules and 'torch' not in sys.modules; "
        "assert not logging.getLogger('psmd_app').handlers"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


def _pair(tmp_path, n_stimuli=(60, 60), n_units=(7, 9)):
    rng = np.random.default_rng(0)
    paths = []
    for name, m, n in zip("XY", n_stimuli, n_units, strict=True):
        path = tmp_path / f"{name}.npy"
        np.save(path, rng.normal(size=(m, n)))
        paths.append(str(path))
    return paths


def test_data_two_files_open_as_the_first_dataset(tmp_path):
    app = app_module.create_app(
        data=_pair(tmp_path), samples=["planted"], cache_dir=tmp_path / "cache",
        embedder=lambda f: np.asarray(f)[:, :2],
    )  # fmt: skip
    state = app.server.config["PSMD_STATE"]
    assert state.default_dataset == "own"
    assert state.catalog.names == ["own", "planted"]
    info = state.catalog.info("own")
    assert info.sizes == {"all units": (7, 9)} and info.names == ("X", "Y")
    problem = state.problem("own", "all units", "correlation")
    assert problem.prepared.cost.shape == (7, 9)


def test_data_options_choose_the_array_inside_each_file(tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "a.npz", raw=rng.normal(size=(20, 4)), clean=np.ones((20, 5)))
    np.savez(tmp_path / "b.npz", raw=rng.normal(size=(20, 6)))
    args = app_module._parser().parse_args(
        ["--data", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
         "--key-x", "raw", "--key-y", "raw"]
    )  # fmt: skip
    sample = app_module._own_data(args)()
    view = sample.views["all units"]
    assert view.X.shape == (20, 4) and view.Y.shape == (20, 6)


def test_data_npz_pair_with_images(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "pair.npz"
    np.savez(path, X=rng.normal(size=(30, 5)), Y=rng.normal(size=(30, 6)),
             images=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8))  # fmt: skip
    app = app_module.create_app(
        data=[str(path)], samples=["planted"], cache_dir=tmp_path / "cache"
    )
    assert app.server.config["PSMD_STATE"].catalog.info("own").has_images
    png = app.server.test_client().get("/psmd/stimulus/own/3.png")
    assert png.status_code == 200 and png.data[:4] == b"\x89PNG"


def _bad_npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return [str(path)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _pair(p, n_stimuli=(60, 50)),
         "X.npy has 60 stimuli (rows) and Y.npy has 50"),
        (lambda p: [str(p / "missing.npy"), str(p / "Y.npy")], "no such file"),
        (lambda p: _pair(p)[:1], "give two files (X then Y) or one .npz pair file"),
        (lambda p: _bad_npz(p, X=np.ones((5, 3))), "no array named 'Y'"),
        (lambda p: _bad_npz(p, X=np.ones((5, 3)), Y=np.ones((5, 3, 2))),
         "Y has 3 dimensions with shape (5, 3, 2); allowed: a 2-D"),
        (lambda p: _bad_npz(p, X=np.ones((5, 3)), Y=np.ones((5, 3)),
                            images=np.zeros((4, 8, 8))), "4 images for 5 stimuli"),
        (lambda p: _bad_npz(p, X=np.array([[1, "a"]], dtype=object), Y=np.ones((1, 2))),
         "pickled data"),
        (lambda p: _pair(p) + _pair(p), "takes two files"),
    ],
    ids=["rows", "missing", "one-npy", "no-y", "3d", "images", "pickle", "three"],
)  # fmt: skip
def test_bad_data_is_a_one_line_usage_error(capsys, tmp_path, make, message):
    paths = make(tmp_path)
    status = app_module.main(
        ["--data", *paths, "--cache-dir", str(tmp_path / "c"), "--no-worker"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("psmd-app: ") and err.count("\n") == 1
    assert message in err


def test_constant_own_data_is_refused_before_serving(capsys, tmp_path):
    x, y = _pair(tmp_path)
    np.save(y, np.ones((60, 9)))
    assert app_module.main(["--data", x, y, "--cache-dir", str(tmp_path / "c"),
                            "--no-worker"]) == 2  # fmt: skip
    assert "psmd-app: " in capsys.readouterr().err


def test_unknown_sample_is_a_usage_error(capsys, tmp_path):
    assert app_module.main(["--sample", "nope", "--cache-dir", str(tmp_path)]) == 2
    assert "sample 'nope' is not known" in capsys.readouterr().err


def test_create_app_rejects_unknown_sample(tmp_path):
    with pytest.raises(PSMDInputError, match="not known; allowed"):
        app_module.create_app(sample="nope", cache_dir=tmp_path, samples=["planted"])


def test_module_entry_point_help():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "psmd_app", "--help"],
        capture_output=True, text=True, cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    for option in (
        "--data",
        "--sample",
        "--host",
        "--port",
        "--device",
        "--no-browser",
    ):
        assert option in out.stdout


def test_parser_defaults():
    args = app_module._parser().parse_args([])
    assert (args.host, args.port, args.sample, args.data) == (
        "127.0.0.1", 8050, None, None
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "a.pt", "b.pt"], "--models needs --images and --layer"),
        (["--models", "a.pt", "b.pt", "--data", "x.npz"], "give --data or --models"),
        (["--max-upload-mb", "-1"], "--max-upload-mb must be >= 0"),
        (["--data-dir", "/nonexistent/folder"], "not a folder"),
    ],
    ids=["models-incomplete", "models-and-data", "upload-cap", "data-dir"],
)
def test_bad_options_are_one_line_usage_errors(capsys, tmp_path, args, message):
    status = app_module.main([*args, "--cache-dir", str(tmp_path / "c"), "--no-worker"])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1


def test_models_mode_opens_the_shipped_digit_cnns(tmp_path):
    from sample_data import DATA_DIR

    args = app_module._parser().parse_args(
        ["--models", str(DATA_DIR / "digits-cnn" / "model_a.pt"),
         str(DATA_DIR / "digits-cnn" / "model_b.pt"), "--arch", "digits-cnn",
         "--layer", "bn2", "--rectify",
         "--images", str(DATA_DIR / "digits-cnn" / "activations.npz")]
    )  # fmt: skip
    app = app_module.create_app(
        data=app_module._own_data(args), samples=[], cache_dir=tmp_path / "c"
    )
    info = app.server.config["PSMD_STATE"].catalog.info("own")
    assert info.sizes["all units"] == (64, 64) and info.has_images
