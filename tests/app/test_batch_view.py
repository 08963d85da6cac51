"""The app's view of a batch run: distance matrix, click a cell, open the pair."""

import numpy as np
import pytest

from psmd_app import callbacks as cb
from psmd_app import ids
from solver.batch import run_batch
from solver.exceptions import PSMDInputError


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 6))
    for name, noise in (("a", 0.1), ("b", 0.5), ("c", 1.0)):
        np.save(root / f"{name}.npy", base + noise * rng.normal(size=(50, 6)))
    (root / "broken.npy").write_bytes(b"not numpy")
    rows = ["name,x,y,label_x,label_y"]
    for x in ("a", "b"):
        for y in ("b", "c"):
            rows.append(f"{x}-{y},{x}.npy,{y}.npy,{x},{y}")
    rows.append("a-broken,a.npy,broken.npy,a,broken")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    run_batch(root / "pairs.csv", root / "out", scheduler="serial")
    return root / "out"


@pytest.fixture(scope="module")
def app(batch_dir, tmp_path_factory):
    from psmd_app.app import create_app

    return create_app(
        sample="planted",
        samples=["planted"],
        batch_dir=batch_dir,
        cache_dir=tmp_path_factory.mktemp("cache"),
        embedder=lambda f: np.asarray(f)[:, :2],
    )


def _find(component, target):
    if getattr(component, "id", None) == target:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if hasattr(child, "to_plotly_json"):
            found = _find(child, target)
            if found is not None:
                return found
    return None


def test_the_distance_matrix_is_shown(app):
    graph = _find(app.layout(), ids.BATCH_HEATMAP)
    heat = graph.figure.data[0]
    assert list(heat.y) == ["a", "b"] and list(heat.x) == ["b", "c", "broken"]
    z = np.asarray(heat.z, dtype=float)
    assert np.isnan(z[0, 2]) and np.isnan(z[1, 2])  # a failed pair, and no pair
    assert np.isfinite(z[:, :2]).all()
    # Noisier partners are farther: a-b closer than a-c.
    assert z[0, 0] < z[0, 1]
    assert "a-broken: error" in heat.text[0][2] and "no pair" in heat.text[1][2]


def test_click_a_cell_opens_that_pair(app, batch_dir):
    state = app.server.config["PSMD_STATE"]
    click = {"points": [{"x": "c", "y": "b"}]}
    options, value, held = cb.handle_batch_click(state, click, "tab", [])
    assert value in {o["value"] for o in options}
    info = state.catalog.info(value)
    assert info.title == "Batch: b-c" and info.names == ("b", "c")
    problem = state.problem(value, "all units", "correlation")
    X = np.load(batch_dir.parent / "b.npy")
    np.testing.assert_allclose(problem.raw_x, X)


def test_click_on_a_failed_pair_is_a_one_line_refusal(app):
    state = app.server.config["PSMD_STATE"]
    with pytest.raises(PSMDInputError, match="status error; only finished pairs"):
        cb.handle_batch_click(state, {"points": [{"x": "broken", "y": "a"}]}, "t", [])


def test_bad_batch_folder_is_a_usage_error(capsys, tmp_path):
    from psmd_app import app as app_module

    status = app_module.main(
        ["--batch", str(tmp_path / "none"), "--cache-dir", str(tmp_path), "--no-worker"]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
