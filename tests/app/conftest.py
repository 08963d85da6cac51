"""Small datasets and an app state built on them, for fast app tests."""

import json
import types

import numpy as np
import pytest

from psmd_app.data import Catalog
from psmd_app.state import AppState
from sample_data import Sample, View
from solver import synthetic

# MNI152 2 mm grid, as nilearn's template uses.
MNI_AFFINE = np.array(
    [[2.0, 0, 0, -98], [0, 2.0, 0, -134], [0, 0, 2.0, -72], [0, 0, 0, 1]]
)


def toy_sample() -> Sample:
    """Planted pair (20 signal units, 4 + 10 noise) with 8x8 image stimuli."""
    pair = synthetic.planted_pair(20, 4, 10, n_stimuli=120, n_factors=10, seed=3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(120, 8, 8), dtype=np.uint8)
    labels = np.array(["noise", "signal"])
    view = View(
        X=pair.X,
        Y=pair.Y,
        labels_x=labels[pair.signal_x.astype(int)],
        labels_y=labels[pair.signal_y.astype(int)],
    )
    second = View(X=pair.X[:, :12], Y=pair.Y[:, :15])
    return Sample(
        name="toy",
        title="Toy planted pair",
        kind="synthetic",
        description="A small planted pair for tests.",
        views={"all": view, "part": second},
        images=images,
        x_name="left net",
        y_name="right net",
    )


def toy_brain() -> Sample:
    """Two 'subjects' with voxels on the MNI grid and shared tuning."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(80, 12))
    X = base + 0.3 * rng.normal(size=(80, 12))
    Y = np.c_[base[:, :10] + 0.3 * rng.normal(size=(80, 10)), rng.normal(size=(80, 4))]
    coords_x = np.c_[np.full(12, 10.0), -98 + 2.0 * np.arange(12), np.full(12, 4.0)]
    coords_y = np.c_[np.full(14, 12.0), -98 + 2.0 * np.arange(14), np.full(14, 6.0)]
    view = View(X=X, Y=Y, coords_x=coords_x, coords_y=coords_y)
    return Sample(
        name="brain",
        title="Toy voxels",
        kind="fmri",
        description="Voxels on the template grid.",
        views={"V1": view},
        x_name="subject-a",
        y_name="subject-b",
        meta={"affine": MNI_AFFINE, "shape": (99, 117, 95)},
    )


@pytest.fixture
def catalog():
    return Catalog({"toy": toy_sample, "brain": toy_brain})


def stub_embedder(features):
    """First two feature columns instead of UMAP (no numba compile in tests)."""
    return np.asarray(features)[:, :2]


@pytest.fixture
def embedder():
    return stub_embedder


@pytest.fixture
def state(catalog, tmp_path):
    return AppState(
        catalog, tmp_path / "cache", default_dataset="toy", device="cpu",
        embedder=stub_embedder,
    )  # fmt: skip


# ------------------------------------------------- callbacks over HTTP


def _outputs(key: str):
    multi = key.startswith("..")
    parts = key.strip(".").split("...") if multi else [key]
    outs = []
    for part in parts:
        cid, prop = part.split(".", 1)
        outs.append({"id": cid, "property": prop})
    return multi, outs


def find_callback(app, output_id: str, prop: str) -> str:
    """Key of the callback map whose first output is ``output_id.prop``."""
    for key in app.callback_map:
        _, outs = _outputs(key)
        first = outs[0]
        if first["id"] == output_id and first["property"].split("@")[0] == prop:
            return key
    raise KeyError(f"{output_id}.{prop}")


def call(client, app, key: str, values: dict, changed: list[str]):
    """POST one callback; ``values`` maps "id.prop" to the value sent.

    Returns
    -------
    status : int
    body : dict
        The parsed JSON (``response`` and maybe ``sideUpdate``), or {}.
    """
    cb = app.callback_map[key]
    multi, outs = _outputs(key)

    def fill(items):
        return [
            {**item, "value": values.get(f"{item['id']}.{item['property']}")}
            for item in items
        ]

    payload = {
        "output": key,
        "outputs": outs if multi else outs[0],
        "inputs": fill(cb["inputs"]),
        "state": fill(cb["state"]),
        "changedPropIds": changed,
    }
    r = client.post(
        "/_dash-update-component",
        data=json.dumps(payload),
        content_type="application/json",
    )
    try:
        body = json.loads(r.data) if r.data else {}
    except ValueError:
        body = {"text": r.data.decode(errors="replace")}
    return r.status_code, body


@pytest.fixture
def dash_http():
    """``call`` and ``find_callback``: drive callbacks as the browser does."""
    return types.SimpleNamespace(call=call, find_callback=find_callback)
