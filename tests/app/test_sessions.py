"""Uploads, the data folder, and sessions that must not see or break each other."""

import base64
import io
import re
import threading

import numpy as np
import pytest

from psmd_app import callbacks as cb
from psmd_app import ids
from psmd_app.data import DataFolder
from solver.api import compare
from solver.exceptions import PSMDInputError


def _data_url(raw: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _pair(seed: int, n_x: int = 6, n_y: int = 7, n: int = 40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_x))
    Y = np.c_[X[:, : min(n_x, n_y)], rng.normal(size=(n, max(0, n_y - n_x)))]
    return X, Y + 0.3 * rng.normal(size=Y.shape)


@pytest.fixture
def app(tmp_path):
    from psmd_app.app import create_app

    folder = tmp_path / "shared"
    folder.mkdir()
    X, Y = _pair(0)
    np.savez(folder / "lesson.npz", X=X, Y=Y)
    np.save(folder / "X.npy", X)
    np.save(folder / "Y.npy", Y)
    (tmp_path / "secret.npy").write_bytes(_npy_bytes(np.ones((5, 5))))
    return create_app(
        sample="planted",
        samples=["planted"],
        data_dir=folder,
        max_upload_mb=1,
        cache_dir=tmp_path / "cache",
        embedder=lambda f: np.asarray(f)[:, :2],
    )


def _state(app):
    return app.server.config["PSMD_STATE"]


def test_upload_a_pair_file_becomes_this_tabs_dataset(app):
    state = _state(app)
    X, Y = _pair(1)
    raw = _npz_bytes(X=X, Y=Y, names_x=np.array([f"n{i}" for i in range(6)]))
    options, value, held = cb.handle_upload(
        state, ["my pair.npz"], [_data_url(raw)], "token-a", []
    )
    assert value.startswith("user-") and held == [options[-1]]
    assert {"planted", "folder:lesson.npz"} <= {o["value"] for o in options}
    problem = state.problem(value, "all units", "correlation")
    assert (problem.n_x, problem.n_y) == (6, 7)
    assert problem.labels_x[0] == "unit 0 (n0)"


def test_two_files_are_x_and_y_in_name_order(app):
    state = _state(app)
    X, Y = _pair(2, n_x=5, n_y=8)
    files = [("b_Y.npy", _npy_bytes(Y)), ("a_X.npy", _npy_bytes(X))]
    _, value, _ = cb.handle_upload(
        state, [f for f, _ in files], [_data_url(r) for _, r in files], "t", []
    )
    assert state.catalog.info(value).sizes["all units"] == (5, 8)


def test_uploaded_companions_are_known_by_their_names(app):
    import nibabel as nib

    state = _state(app)
    rng = np.random.default_rng(5)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    mask = np.zeros((4, 5, 6), dtype=np.uint8)
    mask[1:3, 1:4, 2] = 1  # 6 voxels
    files = []
    for name in ("sub-01", "sub-02"):
        image = nib.Nifti1Image(
            rng.normal(size=(4, 5, 6, 30)).astype(np.float32), affine
        )
        files.append((f"{name}.nii", image.to_bytes()))
    files += [
        ("mask.nii", nib.Nifti1Image(mask, affine).to_bytes()),
        ("images.npz", _npz_bytes(images=rng.integers(0, 255, (30, 8, 8), np.uint8))),
        ("names_y.txt", "\n".join(f"v{i}" for i in range(6)).encode()),
    ]
    _, value, _ = cb.handle_upload(
        state, [f for f, _ in files], [_data_url(r) for _, r in files], "t", []
    )
    info = state.catalog.info(value)
    assert info.sizes["all units"] == (6, 6) and info.has_coords and info.has_images
    view = state.catalog.sample(value).views["all units"]
    assert list(view.labels_y[:2]) == ["v0", "v1"]
    assert state.catalog.sample(value).x_name == "sub-01"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("obj.npy", _npy_bytes(np.array([None, {}], dtype=object)))],
         "give two files (X then Y) or one .npz pair file"),
        ([("X.npy", _npy_bytes(np.array([None, {}], dtype=object))),
          ("Y.npy", _npy_bytes(np.ones((4, 3))))], "X.npy: holds Python objects"),
        ([("pair.npz", _npz_bytes(X=np.ones((5, 3)), Y=np.ones((4, 3))))],
         "X has 5 stimuli (rows) and Y has 4"),
        ([("pair.npz", b"garbage")], "pair.npz: not a readable .npz file"),
        ([("a.npy", b"1"), ("b.npy", b"2"), ("c.npy", b"3")],
         "3 data files uploaded"),
        ([("X.npy", _npy_bytes(np.ones((6, 3)))), ("images.npz", b"1"),
          ("images.npy", b"2"), ("Y.npy", _npy_bytes(np.ones((6, 3))))],
         "more than one uploaded file is the images"),
        ([("X.npy", _npy_bytes(np.ones((6, 3)))), ("Names_X.txt", b"a\nb\n"),
          ("Y.npy", _npy_bytes(np.ones((6, 3))))],
         "2 unit names for 3 units of X.npy"),
        ([("images.npz", _npz_bytes(images=np.zeros((6, 4, 4))))],
         "0 data files uploaded"),
        ([("big.npy", b"\0" * 1_100_000)], "larger than the upload limit of 1 MB"),
        ([("X.npy", _npy_bytes(np.ones((6, 3)))), ("Y.txt", b"1,2")],
         "format .txt is not supported"),
        ([("../../etc/x.npz", _npz_bytes(X=np.ones((5, 3))))],
         "x.npz: no array named 'Y'"),
    ],
    ids=["one-npy", "objects", "stimuli", "corrupt", "three", "images-twice",
         "names-count", "only-companions", "too-large", "format", "path-in-name"],
)  # fmt: skip
def test_bad_uploads_are_one_line_refusals(app, files, message):
    state = _state(app)
    before = list(state.catalog.names)
    with pytest.raises(PSMDInputError) as err:
        cb.handle_upload(
            state, [f for f, _ in files], [_data_url(r) for _, r in files], "t", []
        )
    text = str(err.value)
    assert message in text and "\n" not in text and "psmd-upload" not in text
    assert state.catalog.names == before


def test_bad_base64_and_turned_off_uploads(app):
    state = _state(app)
    with pytest.raises(PSMDInputError, match="not valid base64"):
        cb.handle_upload(state, ["x.npy"], ["data:x;base64,@@@@"], "t", [])
    with pytest.raises(PSMDInputError, match="arrived incomplete"):
        cb.handle_upload(state, ["x.npy"], ["nothing"], "t", [])
    state.max_upload_bytes = 0
    with pytest.raises(PSMDInputError, match="uploads are turned off"):
        cb.handle_upload(state, ["x.npy"], [_data_url(b"1")], "t", [])


def test_data_folder_lists_pairs_and_opens_files_inside_only(app, tmp_path):
    state = _state(app)
    assert "folder:lesson.npz" in state.catalog.names
    _, value, held = cb.handle_open(state, "X.npy Y.npy", "t", [])
    assert state.catalog.info(value).sizes["all units"] == (6, 7)
    (tmp_path / "shared" / "link.npy").symlink_to(tmp_path / "secret.npy")
    for text, message in [
        ("../secret.npy", "leads outside the data folder"),
        (str(tmp_path / "secret.npy"), "only paths relative to the data folder"),
        ("link.npy Y.npy", "leads outside the data folder"),
        ("~/x.npy", "only paths relative"),
        ("nope.npy", "no such file in the data folder"),
        ("", "give one pair file"),
        ("X.npy", "give two files (X then Y) or one .npz pair file"),
    ]:
        with pytest.raises(PSMDInputError, match=re.escape(message)) as err:
            cb.handle_open(state, text, "t", held)
        assert str(tmp_path) not in str(err.value)


def test_data_folder_opens_nifti_with_a_mask_and_companions(app, tmp_path):
    import nibabel as nib

    state = _state(app)
    folder = tmp_path / "shared"
    rng = np.random.default_rng(4)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    mask = np.zeros((4, 5, 6), dtype=np.uint8)
    mask[1:3, 1:4, 2] = 1  # 6 voxels
    for name in ("sub-01", "sub-02"):
        bold = rng.normal(size=(4, 5, 6, 30)).astype(np.float32)
        nib.save(nib.Nifti1Image(bold, affine), folder / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), folder / "v1 mask.nii.gz")
    np.savez(folder / "stimuli.npz", images=rng.integers(0, 255, (30, 8, 8), np.uint8))
    (folder / "names.txt").write_text("\n".join(f"v{i}" for i in range(6)))
    text = (
        "sub-01.nii.gz sub-02.nii.gz 'mask=v1 mask.nii.gz' images=stimuli.npz "
        "names_y=names.txt"
    )
    _, value, _ = cb.handle_open(state, text, "t", [])
    info = state.catalog.info(value)
    assert info.sizes["all units"] == (6, 6)
    assert info.has_coords and info.has_images
    view = state.catalog.sample(value).views["all units"]
    assert view.coords_x.shape == (6, 3) and list(view.labels_y[:2]) == ["v0", "v1"]
    assert "With images, coordinates, unit names" in info.description


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("X.npy Y.npy colour=red", "'colour=' is not an option of the open box"),
        ("X.npy Y.npy images=a images=b", "'images=' is given twice"),
        ("X.npy Y.npy images=", "'images=' has no value"),
        ("'X.npy Y.npy", "cannot read the paths typed: No closing quotation"),
        ("X.npy Y.npy Z.npy", "give one pair file"),
        ("X.npy Y.npy images=../secret.npy", "leads outside the data folder"),
        ("X.npy Y.npy mask=nope.nii.gz", "no such file in the data folder"),
        ("X.npy Y.npy images=X.npy", "images have shape (40, 6); allowed: (n, H, W)"),
        ("X.npy Y.npy key_x=Z", "X.npy: a .npy file holds one array; drop the key"),
        ("lesson.npz mask=X.npy", "mask_x, mask_y apply to two files (X then Y) only"),
        ("X.npy Y.npy mask=X.npy mask_y=Y.npy", "(mask_x, mask_y), not both"),
    ],
    ids=["unknown", "twice", "empty", "quote", "three", "outside", "missing",
         "bad-images", "bad-key", "mask-on-pair-file", "mask-and-mask-y"],
)  # fmt: skip
def test_bad_open_box_companions_are_one_line_refusals(app, tmp_path, text, message):
    state = _state(app)
    before = list(state.catalog.names)
    with pytest.raises(PSMDInputError) as err:
        cb.handle_open(state, text, "t", [])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(tmp_path) not in str(err.value)
    assert state.catalog.names == before


def test_data_folder_must_exist(tmp_path):
    with pytest.raises(PSMDInputError, match="not a folder"):
        DataFolder(tmp_path / "missing")


def test_sessions_get_different_names_and_see_only_their_own(app):
    state = _state(app)
    X, Y = _pair(3)
    url = _data_url(_npz_bytes(X=X, Y=Y))
    opts_a, name_a, held_a = cb.handle_upload(state, ["p.npz"], [url], "tab-a", [])
    opts_b, name_b, held_b = cb.handle_upload(state, ["p.npz"], [url], "tab-b", [])
    assert name_a != name_b
    assert name_b not in {o["value"] for o in cb.dataset_options(state, held_a)}
    assert name_a not in {o["value"] for o in cb.dataset_options(state, held_b)}
    # The same upload again in the same tab is the same dataset, listed once.
    _, again, held_a2 = cb.handle_upload(state, ["p.npz"], [url], "tab-a", held_a)
    assert again == name_a and len(held_a2) == 1


def test_dropped_dataset_asks_to_upload_again(app):
    state = _state(app)
    state.catalog._max_user = 2
    held, names = [], []
    for seed in range(3):
        X, Y = _pair(seed)
        _, name, held = cb.handle_upload(
            state, ["p.npz"], [_data_url(_npz_bytes(X=X, Y=Y))], "t", held
        )
        names.append(name)
    listed = [o["value"] for o in cb.dataset_options(state, held)]
    assert [n for n in listed if n.startswith("user-")] == names[1:]
    with pytest.raises(PSMDInputError, match="no longer held by the server"):
        state.catalog.info(names[0])


def _upload_key(app):
    return next(k for k in app.callback_map if ids.UPLOAD in str(app.callback_map[k]))


def _apply_key(app, http):
    return http.find_callback(app, ids.SETTINGS_STORE, "data")


def _session(http, app, client, token, raw, out, index):
    """One browser tab: upload its pair over HTTP, solve, keep what came back."""
    status, body = http.call(
        client,
        app,
        _upload_key(app),
        {
            f"{ids.UPLOAD}.contents": [_data_url(raw)],
            f"{ids.UPLOAD}.filename": [f"pair{index}.npz"],
            f"{ids.SESSION}.data": token,
            f"{ids.SESSION_DATASETS}.data": [],
        },
        [f"{ids.UPLOAD}.contents"],
    )
    out[index] = {"upload": (status, body)}
    if "response" not in body or not body["response"]:
        return
    dataset = body["response"][ids.DATASET]["value"]
    status, body = http.call(
        client,
        app,
        _apply_key(app, http),
        {
            f"{ids.DATASET}.value": dataset,
            f"{ids.VIEW}.value": "all units",
            f"{ids.COST}.value": "correlation",
            f"{ids.METHOD}.value": "exact",
            f"{ids.UNMATCHED}.value": 0.2,
        },
        [f"{ids.UNMATCHED}.value"],
    )
    out[index]["apply"] = (status, body, dataset)


def test_eight_concurrent_sessions_stay_correct_and_a_bad_upload_breaks_none(
    app, dash_http
):
    state = _state(app)
    pairs = [_pair(10 + i, n_x=4 + i, n_y=12 - i) for i in range(8)]
    raws = [_npz_bytes(X=X, Y=Y) for X, Y in pairs]
    raws.append(_npz_bytes(X=np.ones((5, 3)), Y=np.ones((4, 3))))  # a bad tab
    out = [None] * len(raws)
    threads = [
        threading.Thread(
            target=_session,
            args=(dash_http, app, app.server.test_client(), f"tab-{i}", raw, out, i),
        )
        for i, raw in enumerate(raws)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    bad = out[-1]["upload"][1]
    assert "X has 5 stimuli" in bad["sideUpdate"][ids.ALERT_TEXT]["children"]
    datasets = set()
    for i, (X, Y) in enumerate(pairs):
        status, body, dataset = out[i]["apply"]
        assert status == 200, body
        datasets.add(dataset)
        result_store = body["response"][ids.RESULT_STORE]["data"]
        problem = state.problem(dataset, "all units", "correlation")
        assert (problem.n_x, problem.n_y) == (X.shape[1], Y.shape[1])
        result = state.get_result(result_store["key"], problem)
        expected = compare(X, Y, unmatched=0.2, method="exact")
        assert result.transport_cost == pytest.approx(
            expected.result.transport_cost, rel=1e-6
        )
    assert len(datasets) == 8


def test_an_oversized_request_gets_a_clear_alert(app, dash_http):
    client = app.server.test_client()
    huge = "data:x;base64," + "A" * 3_500_000
    status, body = dash_http.call(
        client,
        app,
        _upload_key(app),
        {f"{ids.UPLOAD}.contents": [huge], f"{ids.UPLOAD}.filename": ["huge.npy"]},
        [f"{ids.UPLOAD}.contents"],
    )
    assert status == 200
    assert (
        "larger than this server's limit of 1 MB"
        in (body["sideUpdate"][ids.ALERT_TEXT]["children"])
    )


def test_the_app_binds_to_loopback_by_default():
    from psmd_app.app import DEFAULT_HOST, _parser

    assert DEFAULT_HOST == "127.0.0.1"
    assert _parser().parse_args([]).host == "127.0.0.1"


def test_notebook_show_serves_arrays_in_memory(tmp_path):
    import json
    import urllib.request

    import psmd_app

    X, Y = _pair(5)
    app = psmd_app.show(
        X, Y, names_x=[f"a{i}" for i in range(6)], port=0, cache_dir=tmp_path
    )
    server = app.server.config["PSMD_HTTP"]
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert urllib.request.urlopen(base + "/").status == 200
        layout = json.loads(urllib.request.urlopen(base + "/_dash-layout").read())
        assert "Your data" in json.dumps(layout)
        problem = _state(app).problem("own", "all units", "correlation")
        assert problem.labels_x[1] == "unit 1 (a1)"
    finally:
        server.shutdown()
    with pytest.raises(PSMDInputError, match="is 1-D"):
        psmd_app.show(np.ones(5), Y, run=False)
    with pytest.raises(PSMDInputError, match="mode='window' is not allowed"):
        psmd_app.show(X, Y, mode="window", run=False)


def test_constant_units_in_an_upload_are_excluded_with_a_notice(app):
    state = _state(app)
    X, Y = _pair(7)
    Y[:, 3] = 2.0
    _, name, _ = cb.handle_upload(
        state, ["c.npz"], [_data_url(_npz_bytes(X=X, Y=Y))], "t", []
    )
    store = {"dataset": name, "view": "all units", "cost": "correlation"}
    _, note = cb.method_availability(state, store)
    assert "1 unit(s) of Y (columns 3)" in note and "not counted as unmatched" in note
    assert state.problem(name, "all units", "correlation").n_y == 6


def test_notebook_show_uses_dash_jupyter_mode_inside_a_kernel(monkeypatch, tmp_path):
    """In Jupyter, ``show`` hands over to Dash's inline display."""
    import dash

    import psmd_app
    from psmd_app import notebook

    X, Y = _pair(6)
    app = psmd_app.show(X, Y, run=False, cache_dir=tmp_path)
    seen = {}
    monkeypatch.setattr(type(dash.jupyter_dash), "active", property(lambda self: True))
    monkeypatch.setattr(app, "run", lambda **kw: seen.update(kw))
    notebook.serve(app, mode="inline", port=8123, height=700)
    assert seen == {
        "jupyter_mode": "inline",
        "host": "127.0.0.1",
        "port": 8123,
        "jupyter_height": 700,
    }


def test_data_folder_pairs_are_listed_without_loading(app):
    state = _state(app)
    name = "folder:lesson.npz"
    options = cb.dataset_options(state, [])
    assert {"label": "Folder: lesson.npz", "value": name} in options
    assert state.catalog.views()[name] == ("all units",)
    assert name not in state.catalog._samples  # loaded only when chosen
    assert state.catalog.info(name).sizes["all units"] == (6, 7)
