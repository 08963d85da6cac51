"""Callbacks as plain functions, the server-side cache, exports and the layout."""

import csv
import hashlib
import io
import json
import warnings

import numpy as np
import ot
import pytest
from dash import no_update

from psmd_app import callbacks as cb
from psmd_app import ids, media
from psmd_app.data import sha256_json
from psmd_app.settings import Settings
from psmd_app.state import AppState


def settings_dict(**changes):
    return {**Settings("toy", "all").to_dict(), **changes}


def pot_cost(cost, mass):
    """POT's exact partial-OT value with uniform weights (the reference)."""
    n_x, n_y = cost.shape
    a, b = np.full(n_x, 1 / n_x), np.full(n_y, 1 / n_y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(ot.partial.partial_wasserstein2(a, b, cost, m=mass))


# ------------------------------------------------------------ settings flow


def test_restore_from_url_reads_every_control(state):
    out = cb.restore_from_url(
        state, "/", "?dataset=toy&view=part&cost=sqeuclidean&method=exact"
        "&reg=0.05&eps=0.42&unit=y3",
    )  # fmt: skip
    dataset, options, view, cost, method, reg, eps, unit, problems = out
    assert (dataset, view, cost, method, reg, eps) == (
        "toy", "part", "sqeuclidean", "exact", 0.05, 0.42,
    )  # fmt: skip
    assert [o["value"] for o in options] == ["all", "part"]
    assert unit == {"side": "y", "unit": 3}
    assert problems == []


def test_restore_from_url_reports_bad_values(state):
    out = cb.restore_from_url(state, "/", "?dataset=nope&eps=7")
    assert out[0] == "toy" and out[6] == 0.3
    assert len(out[-1]) == 2


def test_collect_settings_writes_url_and_skips_unchanged(state):
    new, search, notices = cb.collect_settings(
        state, "toy", "all", "correlation", "sinkhorn", None, 0.25,
        {"side": "x", "unit": 4}, None,
    )  # fmt: skip
    assert new["unmatched"] == 0.25 and new["unit"] is None
    assert "unit=x4" in search and "eps=0.25" in search
    assert notices == []
    again, _, _ = cb.collect_settings(
        state, "toy", "all", "correlation", "sinkhorn", None, 0.25,
        {"side": "y", "unit": 1}, new,
    )  # fmt: skip
    assert again is no_update  # a click alone does not re-solve


def test_collect_settings_repairs_bad_choices(state):
    new, _, notices = cb.collect_settings(
        state, "brain", "all", "correlation", "sinkhorn", -1, 0.5, None, None
    )
    assert new["view"] == "V1" and new["reg"] is None
    assert len(notices) == 1


def test_dataset_changed_keeps_a_valid_view(state):
    options, value, style, description = cb.dataset_changed(state, "toy", "part")
    assert value == "part" and style == {}
    _, value, style, _ = cb.dataset_changed(state, "brain", "part")
    assert value == "V1" and style == {"display": "none"}


def test_derive_problem_changes_only_with_data_cost_or_reg(state):
    first = cb.derive_problem(state, settings_dict(), None)
    assert len(first["key"]) == 64
    assert cb.derive_problem(state, settings_dict(unmatched=0.7), first) is no_update
    other = cb.derive_problem(state, settings_dict(cost="sqeuclidean"), first)
    assert other["key"] != first["key"] and other["data_key"] == first["data_key"]


def test_method_availability_states_the_bound(state):
    problem = cb.derive_problem(state, settings_dict(), None)
    options, note = cb.method_availability(state, problem)
    assert options[1]["value"] == "exact" and not options[1]["disabled"]
    assert "24 × 30" in note and "3000 units per side" in note


# ------------------------------------------------------------ solving and cache


def test_exact_solve_matches_pot(state):
    store = cb.solve(state, settings_dict(method="exact", unmatched=0.35))
    problem = state.problem("toy", "all", "correlation")
    result = state.get_result(store["key"], problem)
    assert result.method == "exact"
    assert result.transport_cost == pytest.approx(
        pot_cost(problem.prepared.cost, 0.65), abs=1e-10
    )


def test_sinkhorn_solve_is_near_exact_and_warm_started(state):
    problem = state.problem("toy", "all", "correlation")
    cold = cb.solve(state, settings_dict(unmatched=0.3))
    warm = cb.solve(state, settings_dict(unmatched=0.32))
    r_cold = state.get_result(cold["key"], problem)
    r_warm = state.get_result(warm["key"], problem)
    assert r_cold.converged and r_warm.converged
    assert r_warm.n_iter <= r_cold.n_iter
    assert r_warm.transported_mass == pytest.approx(0.68, abs=1e-5)
    exact = pot_cost(problem.prepared.cost, 0.68)
    # Entropic plans cost a few percent more than the exact one.
    assert exact <= r_warm.transport_cost <= exact * 1.2


def test_results_are_cached_by_sha256_and_survive_a_restart(state, catalog, embedder):
    first = cb.solve(state, settings_dict(unmatched=0.5))
    assert len(first["key"]) == 64 and int(first["key"], 16) >= 0
    assert first["cached"] is False
    assert cb.solve(state, settings_dict(unmatched=0.5))["cached"] is True
    fresh = AppState(catalog, state.cache_dir, default_dataset="toy", embedder=embedder)
    again = cb.solve(fresh, settings_dict(unmatched=0.5))
    assert again["key"] == first["key"] and again["cached"] is True
    problem = state.problem("toy", "all", "correlation")
    a = state.get_result(first["key"], problem).plan
    b = fresh.get_result(first["key"], problem).plan
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_keys_are_canonical_json_digests():
    expected = hashlib.sha256(b'{"a":1,"b":[2,3]}').hexdigest()
    assert sha256_json({"b": [2, 3], "a": 1}) == expected


def test_compute_curves_from_exact_path(state):
    problem_store = cb.derive_problem(state, settings_dict(), None)
    reported = []
    curves_store = cb.compute_curves(state, problem_store, reported.append)
    curves = state.get_curves(curves_store["key"])
    problem = state.problem("toy", "all", "correlation")
    assert curves.source == "exact path" and reported[-1][0] == "1.00"
    eps = curves.score_curve.unmatched
    assert eps[0] == 0.0 and np.all(np.diff(eps) > 0)
    for k in (0, 30, 70):
        mass = 1 - eps[k]
        ref = pot_cost(problem.prepared.cost, mass) if mass < 1 else None
        if ref is not None:
            assert curves.score_curve.transport_cost[k] == pytest.approx(ref, abs=1e-9)
    assert sorted(curves.ranking_x) == list(range(problem.n_x))


def test_sweep_entry_masses_follow_matched_share():
    from psmd_app.state import _entry_from_sweep

    grid = np.array([0.0, 0.5, 1.0])
    fractions = np.array([[0.0, 0.0], [1.0, 0.25], [1.0, 1.0]])
    entry = _entry_from_sweep(grid, fractions)
    np.testing.assert_allclose(entry, [0.25, 0.5 + 0.5 * (0.25 / 0.75)])


def test_compute_embedding_uses_the_embedder(state):
    problem_store = cb.derive_problem(state, settings_dict(), None)
    store = cb.compute_embedding(state, problem_store)
    coords = state.get_embedding(store["key"])
    assert coords.shape == (24 + 30, 2)


# ------------------------------------------------------------ views


@pytest.fixture
def solved(state):
    settings = settings_dict(unmatched=0.4)
    result_store = cb.solve(state, settings)
    problem_store = cb.derive_problem(state, settings, None)
    curves_store = cb.compute_curves(state, problem_store)
    embedding_store = cb.compute_embedding(state, problem_store)
    return result_store, curves_store, embedding_store


def test_status_text_names_method_device_and_curves(state, solved):
    result_store, curves_store, _ = solved
    text = cb.status_text(state, result_store, curves_store)
    assert text.startswith("Sinkhorn (reg ")
    for part in ("device cpu", "iterations", "converged", "error ", " ms",
                 "curves: exact path"):  # fmt: skip
        assert part in text
    assert "computing" in cb.status_text(state, result_store, None)


def test_plan_view_orders_by_entry_mass(state, solved):
    result_store, curves_store, _ = solved
    fig = cb.plan_view(state, result_store, curves_store, None)
    curves = state.get_curves(curves_store["key"])
    problem = state.problem("toy", "all", "correlation")
    result = state.get_result(result_store["key"], problem)
    z = np.asarray(fig.data[0].z)
    expected = result.plan[np.ix_(curves.ranking_x, curves.ranking_y)] / (1 / 30)
    np.testing.assert_allclose(z, expected, rtol=1e-5)
    patch = cb.plan_view(state, result_store, curves_store, {"side": "x", "unit": 0},
                         patch=True)  # fmt: skip
    assert "layout" in patch.to_plotly_json()["operations"][0]["location"]


def _big_sample():
    from sample_data import Sample, View
    from solver import synthetic

    pair = synthetic.planted_pair(520, 20, 40, n_stimuli=150, n_factors=20, seed=1)
    view = View(X=pair.X, Y=pair.Y)
    return Sample(
        name="big",
        title="Big planted pair",
        kind="synthetic",
        description="Above the heatmap's block limit.",
        views={"all": view},
    )


def _z_shape(figure):
    return np.asarray(figure.data[0].z).shape


def test_zoom_redraws_a_block_summed_plan_finer(tmp_path, catalog):
    from dash.exceptions import PreventUpdate

    from psmd_app.data import Catalog

    loaders = {"big": _big_sample, "toy": catalog._loaders["toy"]}
    state = AppState(Catalog(loaders), tmp_path / "c", default_dataset="big")
    big = Settings("big", "all").to_dict()
    rs = cb.solve(state, {**big, "unmatched": 0.3})
    problem = state.problem("big", "all", "correlation")
    n_x, n_y = problem.n_x, problem.n_y
    assert min(n_x, n_y) > 512
    full = cb.plan_view(state, rs, None, None)
    assert _z_shape(full) == (512, 512)
    assert "block fill" in full.data[0].hovertemplate

    # A box zoom (y axis reversed: X's ranks 30-99, Y's ranks 10-59).
    box = {"yaxis.range[0]": 99.5, "yaxis.range[1]": 29.5}
    box |= {"xaxis.range[0]": 9.5, "xaxis.range[1]": 59.5}
    window = cb.zoom_window(state, box, None, rs)
    (r0, r1), (c0, c1) = window["x"], window["y"]
    assert r0 <= 30 < 99 < r1 <= n_x and c0 <= 10 < 59 < c1 <= n_y
    fig = cb.plan_view(state, rs, None, None, window)
    heat = fig.data[0]
    result = state.get_result(rs["key"], problem)
    order_x, order_y = result.ranking("x"), result.ranking("y")
    expected = result.plan[np.ix_(order_x[r0:r1], order_y[c0:c1])] * max(n_x, n_y)
    np.testing.assert_allclose(np.asarray(heat.z), expected, rtol=1e-5, atol=1e-7)
    assert (heat.y0, heat.dy, heat.x0, heat.dx) == (r0, 1, c0, 1)
    assert "share of capacity" in heat.hovertemplate
    assert list(fig.layout.yaxis.range) == [99.5, 29.5]  # the zoom is kept
    assert list(fig.layout.xaxis.range) == [9.5, 59.5]

    # The slider keeps the zoomed grain; a reset returns to the whole plan.
    later = cb.solve(state, {**big, "unmatched": 0.6})
    assert _z_shape(cb.plan_view(state, later, None, None, window)) == (
        r1 - r0,
        c1 - c0,
    )
    autorange = {"xaxis.autorange": True, "yaxis.autorange": True}
    reset = cb.zoom_window(state, autorange, window, rs)
    assert reset["x"] is None and reset["y"] is None
    assert reset["view"] == {"x": None, "y": None}
    assert list(cb.plan_view(state, rs, None, None, reset).layout.yaxis.range) == [
        n_x - 0.5,
        -0.5,
    ]
    for event, store in [({"dragmode": "pan"}, window), (box, window)]:
        with pytest.raises(PreventUpdate):  # no change of view
            cb.zoom_window(state, event, store, rs)
    # A small plan is never block-summed: the zoom is only remembered, so
    # that the next redraw (a slider move) keeps it.
    toy = cb.solve(state, settings_dict())
    assert cb.zoom_redraws(state, rs) and not cb.zoom_redraws(state, toy)
    small = cb.zoom_window(state, {"xaxis.range[0]": 2.5, "xaxis.range[1]": 9.5},
                           window, toy)  # fmt: skip
    assert small["x"] is None and small["view"] == {"y": [2.5, 9.5]}
    toy_fig = cb.plan_view(state, cb.solve(state, settings_dict(unmatched=0.6)),
                           None, None, small)  # fmt: skip
    assert list(toy_fig.layout.xaxis.range) == [2.5, 9.5]
    assert list(toy_fig.layout.yaxis.range) == [23.5, -0.5]  # X's side: all
    other = {**window, "problem": "another problem"}
    assert _z_shape(cb.plan_view(state, rs, None, None, other)) == (512, 512)


def test_views_follow_the_slider(state, solved):
    result_store, curves_store, _ = solved
    later = cb.solve(state, settings_dict(unmatched=0.1))
    before = cb.ranking_view(state, result_store, curves_store, None)
    after = cb.ranking_view(state, later, curves_store, None)
    assert before.layout.shapes[0].y0 == 0.4 and after.layout.shapes[0].y0 == 0.1
    plan_before = cb.plan_view(state, result_store, curves_store, None)
    plan_after = cb.plan_view(state, later, curves_store, None)
    assert (
        np.asarray(plan_after.data[0].z).sum() > np.asarray(plan_before.data[0].z).sum()
    )
    align = cb.alignment_view(state, later, curves_store)
    assert align.layout.shapes[0].x0 == 0.1


def test_views_wait_for_curves_of_the_same_problem(state, solved):
    result_store, curves_store, embedding_store = solved
    other = cb.solve(state, settings_dict(view="part"))
    fig = cb.ranking_view(state, other, curves_store, None)
    assert "computing" in fig.layout.annotations[0].text
    emb = cb.embedding_view(state, embedding_store, other, None)
    assert "computing" in emb.layout.annotations[0].text


def test_embedding_view_colours_matched_units(state, solved):
    result_store, _, embedding_store = solved
    fig = cb.embedding_view(state, embedding_store, result_store, None)
    problem = state.problem("toy", "all", "correlation")
    result = state.get_result(result_store["key"], problem)
    n_matched = int((result.matched_fraction_x >= 0.5).sum())
    assert fig.data[1].name == f"left net matched ({n_matched})"


def test_unit_view_shows_top_stimuli_and_best_match(state, solved):
    result_store, curves_store, _ = solved
    children = cb.unit_view(state, {"side": "x", "unit": 2}, result_store, curves_store)
    tree = json.dumps(children.to_plotly_json(), default=str, ensure_ascii=False)
    problem = state.problem("toy", "all", "correlation")
    top = int(np.argmax(problem.raw_x[:, 2]))
    assert media.stimulus_url("toy", top) in tree
    result = state.get_result(result_store["key"], problem)
    partner = int(result.plan[2].argmax())
    r = np.corrcoef(problem.raw_x[:, 2], problem.raw_y[:, partner])[0, 1]
    assert f"tuning r = {r:.3f}" in tree
    assert "enters at ε" in tree
    hint = cb.unit_view(state, None, result_store, curves_store)
    assert "Click a unit" in hint.children


def test_unit_view_shows_brain_maps(state):
    s = Settings("brain", "V1").to_dict()
    result_store = cb.solve(state, s)
    children = cb.unit_view(state, {"side": "y", "unit": 1}, result_store, None)
    tree = json.dumps(children.to_plotly_json(), default=str, ensure_ascii=False)
    assert media.brain_url("brain", 0, "y", 1) in tree
    assert "/psmd/brain/brain/0/x/" in tree


def test_clicks_select_units(state, solved):
    result_store, curves_store, _ = solved
    curves = state.get_curves(curves_store["key"])
    click = {"points": [{"curveNumber": 0, "x": 1.0, "y": 3.0}]}
    picked = cb.unit_from_plan_click(state, click, result_store, curves_store)
    assert picked == {"side": "x", "unit": int(curves.ranking_x[3])}
    bar = {"points": [{"curveNumber": 2, "x": 2.0, "y": 0.5}]}
    picked = cb.unit_from_plan_click(state, bar, result_store, curves_store)
    assert picked == {"side": "y", "unit": int(curves.ranking_y[2])}
    point = {"points": [{"customdata": ["y", "5"]}]}
    assert cb.unit_from_point_click(state, point, result_store) == {
        "side": "y",
        "unit": 5,
    }


def test_exports(state, solved):
    result_store, curves_store, _ = solved
    problem = state.problem("toy", "all", "correlation")
    result = state.get_result(result_store["key"], problem)
    curves = state.get_curves(curves_store["key"])

    download = cb.export_ranking(state, result_store, curves_store)
    rows = list(csv.DictReader(io.StringIO(download["content"])))
    assert download["filename"].endswith("_ranking.csv")
    assert len(rows) == problem.n_x + problem.n_y
    first = rows[0]
    unit = int(curves.ranking_x[0])
    assert (first["side"], int(first["unit"]), first["rank"]) == ("x", unit, "0")
    assert float(first["entry_mass"]) == pytest.approx(curves.entry_mass_x[unit])
    assert float(first["matched_fraction"]) == pytest.approx(
        result.matched_fraction_x[unit], rel=1e-5
    )

    import base64

    npz = cb.export_plan(state, result_store)
    data = np.load(io.BytesIO(base64.b64decode(npz["content"])))
    np.testing.assert_allclose(data["plan"], result.plan)
    assert float(data["normalized_score"]) == pytest.approx(result.normalized_score)

    meta = json.loads(
        cb.export_provenance(state, result_store, curves_store)["content"]
    )
    raw = np.ascontiguousarray(problem.raw_x)
    digest = hashlib.sha256(f"{raw.dtype.str}{raw.shape}".encode())
    digest.update(raw.tobytes())
    assert meta["dataset"]["sha256_x"] == digest.hexdigest()
    assert meta["solver"]["device"] == "cpu" and "torch" in meta["versions"]
    assert meta["settings"]["unmatched"] == 0.4


def test_error_message_is_one_line():
    from solver.exceptions import PSMDInputError

    assert cb.error_message(PSMDInputError("bad reg")) == "bad reg"
    assert cb.error_message(ValueError("a\nb")) == "ValueError: a"


# ------------------------------------------------------------ app and layout


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from psmd_app.app import create_app

    return create_app(
        sample="planted",
        samples=["planted", "digits-cnn", "fmri-sim"],
        cache_dir=tmp_path_factory.mktemp("cache"),
        embedder=lambda features: np.asarray(features)[:, :2],
    )


def all_ids(component):
    found = []
    if getattr(component, "id", None) is not None:
        found.append(component.id)
    children = getattr(component, "children", None)
    if children is None:
        return found
    for child in children if isinstance(children, list | tuple) else [children]:
        if hasattr(child, "to_plotly_json"):
            found += all_ids(child)
    return found


def test_layout_ids_are_unique_and_cover_the_callbacks(app):
    found = all_ids(app.layout())
    assert len(found) == len(set(found))
    names = [v for k, v in vars(ids).items() if k.isupper() and k != "HELP_PREFIX"]
    # The unit view makes UNIT_TUNING; the open box needs a data folder, the
    # batch heatmap a batch folder.
    optional = {ids.UNIT_TUNING, ids.OPEN_PATH, ids.OPEN_BUTTON, ids.BATCH_HEATMAP}
    assert set(names) - set(found) == optional
    for component_id in found:
        assert component_id == component_id.lower() and " " not in component_id


def test_every_view_has_an_explanation(app):
    found = all_ids(app.layout())
    helps = {i for i in found if i.startswith(ids.HELP_PREFIX)}
    assert {"help-plan", "help-ranking", "help-embedding", "help-unit"} <= helps


def test_callbacks_are_registered(app):
    outputs = " ".join(app.callback_map)
    for target in (ids.PLAN_HEATMAP, ids.RANKING_CURVE, ids.ALIGNMENT_CURVE,
                   ids.EMBEDDING_PLOT, ids.UNIT_DETAIL, ids.STATUS_LINE,
                   ids.CURVES_STORE, ids.EMBEDDING_STORE):  # fmt: skip
        assert target in outputs


def test_image_routes(app):
    client = app.server.test_client()
    ok = client.get("/psmd/stimulus/digits-cnn/0.png")
    assert ok.status_code == 200 and ok.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/psmd/stimulus/digits-cnn/999999.png").status_code == 404
    assert client.get("/psmd/stimulus/planted/0.png").status_code == 404
    assert client.get("/psmd/stimulus/nope/0.png").status_code == 404
    assert client.get("/psmd/brain/fmri-sim/0/z/0.png").status_code == 404
