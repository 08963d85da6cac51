"""Figure builders: shapes, axis order and values against direct computations."""

import json

import numpy as np
import plotly.io as pio
import pytest

from psmd_app import figures
from solver.exact import exact_path


def random_plan(rng, n_x, n_y, mass=0.6):
    """A feasible partial plan: a scaled random matrix under both capacities."""
    plan = rng.random((n_x, n_y)) ** 4
    plan *= mass / plan.sum()
    scale = min(1.0 / n_x / plan.sum(axis=1).max(), 1.0 / n_y / plan.sum(axis=0).max())
    return plan * min(scale, 1.0)


def brute_force_blocks(plan, order_x, order_y, edges_x, edges_y):
    """Block sums with explicit loops (the reference)."""
    P = plan[np.ix_(order_x, order_y)]
    out = np.zeros((len(edges_x) - 1, len(edges_y) - 1))
    for i in range(len(edges_x) - 1):
        for j in range(len(edges_y) - 1):
            out[i, j] = P[
                edges_x[i] : edges_x[i + 1], edges_y[j] : edges_y[j + 1]
            ].sum()
    return out


@pytest.mark.parametrize("n,max_blocks", [(10, 512), (1000, 512), (513, 512), (7, 3)])
def test_block_edges_cover_every_unit_once(n, max_blocks):
    edges = figures.block_edges(n, max_blocks)
    assert edges[0] == 0 and edges[-1] == n
    assert len(edges) - 1 == min(n, max_blocks)
    assert np.all(np.diff(edges) >= 1)


def test_aggregate_plan_small_is_the_reordered_plan(rng):
    plan = random_plan(rng, 12, 17)
    ox, oy = rng.permutation(12), rng.permutation(17)
    agg = figures.aggregate_plan(plan, ox, oy)
    assert not agg.aggregated
    expected = plan[np.ix_(ox, oy)] / min(1 / 12, 1 / 17)
    np.testing.assert_allclose(agg.fill, expected, rtol=1e-6)
    np.testing.assert_allclose(agg.matched_x, plan.sum(axis=1)[ox] * 12, rtol=1e-12)
    np.testing.assert_allclose(agg.matched_y, plan.sum(axis=0)[oy] * 17, rtol=1e-12)


def test_aggregate_plan_blocks_match_brute_force(rng):
    plan = random_plan(rng, 70, 95)
    ox, oy = rng.permutation(70), rng.permutation(95)
    agg = figures.aggregate_plan(plan, ox, oy, max_cells=16)
    assert agg.fill.shape == (16, 16) and agg.aggregated
    sums = brute_force_blocks(plan, ox, oy, agg.edges_x, agg.edges_y)
    capacity = np.minimum.outer(np.diff(agg.edges_x) / 70, np.diff(agg.edges_y) / 95)
    np.testing.assert_allclose(agg.fill, sums / capacity, rtol=1e-5)
    assert agg.fill.max() <= 1.0
    # Block-mean matched share equals the mean over the block's units.
    frac = plan.sum(axis=1)[ox] * 70
    first = frac[agg.edges_x[0] : agg.edges_x[1]].mean()
    assert agg.matched_x[0] == pytest.approx(first)


def test_aggregate_plan_over_a_zoomed_span_matches_brute_force(rng):
    plan = random_plan(rng, 300, 260)
    ox, oy = rng.permutation(300), rng.permutation(260)
    agg = figures.aggregate_plan(plan, ox, oy, max_cells=16, span_x=(40, 200),
                                 span_y=(100, 110))  # fmt: skip
    assert agg.edges_x[0] == 40 and agg.edges_x[-1] == 200 and len(agg.edges_x) == 17
    np.testing.assert_array_equal(agg.edges_y, np.arange(100, 111))  # one unit each
    sums = brute_force_blocks(plan, ox, oy, agg.edges_x, agg.edges_y)
    capacity = np.minimum.outer(np.diff(agg.edges_x) / 300, np.diff(agg.edges_y) / 260)
    np.testing.assert_allclose(agg.fill, sums / capacity, rtol=1e-5)
    frac_y = plan.sum(axis=0)[oy] * 260
    np.testing.assert_allclose(agg.matched_y, frac_y[100:110], rtol=1e-12)
    fig = figures.plan_heatmap(plan, ox, oy, max_cells=16, span_x=(40, 200))
    heat = fig.data[0]
    assert heat.y0 == pytest.approx(40 + (10 - 1) / 2) and heat.dy == 10
    assert list(fig.layout.yaxis.range) == [299.5, -0.5]  # the axes keep it all


@pytest.mark.parametrize(
    ("axis_range", "span"),
    [
        ([-0.5, 99.5], None),  # everything: no zoom
        ([-3.0, 120.0], None),
        ([29.5, 9.5], (8, 32)),  # reversed, padded by 10 % of the width
        ([49.6, 50.4], (50, 51)),  # inside one cell
        ([200.0, 300.0], (99, 100)),  # past the end: the last rank
        (None, None),
    ],
)
def test_rank_span_of_an_axis_range(axis_range, span):
    assert figures.rank_span(100, axis_range) == span


def test_aggregated_permutation_stays_full():
    """A ranked one-to-one plan keeps fill 1 on the diagonal blocks."""
    n = 1200
    plan = np.eye(n) / n
    agg = figures.aggregate_plan(plan, np.arange(n), np.arange(n), max_cells=100)
    np.testing.assert_allclose(np.diag(agg.fill), 1.0, rtol=1e-6)
    assert agg.fill.sum() == pytest.approx(100, rel=1e-6)


def test_plan_heatmap_traces_axes_and_order(rng):
    plan = random_plan(rng, 8, 5)
    ox, oy = np.array([3, 1, 0, 2, 4, 7, 6, 5]), np.array([4, 0, 1, 3, 2])
    fig = figures.plan_heatmap(plan, ox, oy, names=("A", "B"), uirevision="k")
    heat = fig.data[0]
    assert heat.type == "heatmap"
    assert np.asarray(heat.z).shape == (8, 5)  # rows = X units, columns = Y units
    np.testing.assert_allclose(
        np.asarray(heat.z)[0], plan[3, oy] / min(1 / 8, 1 / 5), rtol=1e-6
    )
    assert (heat.zmin, heat.zmax) == (0.0, 1.0)
    assert fig.layout.uirevision == "k"
    assert list(fig.layout.yaxis.range) == [7.5, -0.5]  # rank 0 at the top
    x_area, y_area = fig.data[1], fig.data[2]
    assert (x_area.xaxis, y_area.yaxis) == ("x2", "y2")  # the other axes: x, y
    # Steps: each unit's matched share held over its rank cell.
    np.testing.assert_allclose(x_area.x[::2], np.round(plan.sum(axis=1)[ox] * 8, 4))
    np.testing.assert_allclose(x_area.y[:4], [-0.5, 0.5, 0.5, 1.5])
    np.testing.assert_allclose(y_area.y[::2], np.round(plan.sum(axis=0)[oy] * 5, 4))
    panels = fig.layout.shapes[:2]
    assert all(p.fillcolor == figures.UNMATCHED_COLOUR for p in panels)


def test_plan_heatmap_large_plan_is_small_in_the_browser():
    """5000 x 5000 units: at most 512 x 512 cells and a few MB of JSON."""
    n = 5000
    plan = np.zeros((n, n), dtype=np.float32)
    idx = np.arange(n)
    plan[idx, (idx * 7) % n] = 0.5 / n
    order = np.arange(n)
    fig = figures.plan_heatmap(plan, order, order)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (512, 512)
    assert len(pio.to_json(fig)) < 3_000_000
    assert fig.data[0].colorbar.tickvals is not None  # the colour scale is kept


def test_plan_shapes_keep_panels_before_selection():
    shapes = figures.plan_shapes({"rank_x": 1, "rank_y": None}, 4, 6)
    assert len(shapes) == 3 and shapes[2]["y0"] == 0.5


def test_selection_shapes_mark_row_and_column():
    shapes = figures.selection_shapes({"rank_x": 2, "rank_y": 5}, 10, 20)
    assert len(shapes) == 2
    row, col = shapes
    assert (row["y0"], row["y1"], row["x1"]) == (1.5, 2.5, 19.5)
    assert (col["x0"], col["x1"], col["y1"]) == (4.5, 5.5, 9.5)
    assert figures.selection_shapes(None, 10, 20) == []


def test_ranking_curve_follows_entry_and_cut(rng):
    entry_x = rng.random(9)
    entry_y = rng.random(6)
    rank_x, rank_y = np.argsort(entry_x), np.argsort(entry_y)
    fig = figures.ranking_curve(entry_x, entry_y, rank_x, rank_y, unmatched=0.4)
    tx, ty = fig.data[0], fig.data[1]
    np.testing.assert_allclose(tx.y, np.round(1 - np.sort(entry_x), 5))
    assert np.all(np.diff(tx.y) <= 0)  # best first: entering at the largest ε
    n_matched = int((entry_x < 0.6).sum())
    assert f"({n_matched}/9 matched)" in tx.name
    assert "/6 matched" in ty.name
    cut = fig.layout.shapes[0]
    assert cut.y0 == cut.y1 == 0.4
    assert tx.customdata[0][0] == "x" and int(tx.customdata[0][1]) == rank_x[0]


def test_ranking_curve_markers_only_while_few(rng):
    """Matched units are coloured per marker while few; long sides send lines only."""
    few, many = figures.MAX_RANK_MARKERS, figures.MAX_RANK_MARKERS + 1
    entry_few, entry_many = rng.random(few), rng.random(many)
    fig = figures.ranking_curve(
        entry_few, entry_many, np.argsort(entry_few), np.argsort(entry_many), 0.5
    )
    small, large = fig.data[0], fig.data[1]
    assert small.mode == "lines+markers"
    matched = np.sort(entry_few) < 0.5
    expected = np.where(matched, figures.SIDE_COLOURS["x"], figures.UNMATCHED_COLOUR)
    assert list(small.marker.color) == list(expected)
    assert large.mode == "lines" and large.marker.color is None


def test_ranking_curve_marks_selected_unit(rng):
    entry = rng.random(5)
    rank = np.argsort(entry)
    fig = figures.ranking_curve(entry, entry, rank, rank, 0.2, selected=("y", 3))
    marker = fig.data[-1]
    assert marker.name == "selected"
    assert marker.y[0] == pytest.approx(1 - entry[3])


def test_score_curve_scores():
    curve = figures.ScoreCurve(
        np.array([0.0, 0.5, 1.0]), np.array([0.4, 0.1, 0.0]), "correlation"
    )
    np.testing.assert_allclose(curve.raw, [0.6, 0.9, 1.0])
    np.testing.assert_allclose(curve.normalized[:2], [0.6, 0.8])
    assert np.isnan(curve.normalized[2])
    dist = figures.ScoreCurve(np.array([0.0, 0.5]), np.array([4.0, 1.0]), "sqeuclidean")
    np.testing.assert_allclose(dist.raw, [4.0, 1.0])
    np.testing.assert_allclose(dist.normalized, [4.0, 2.0])


def test_alignment_curve_from_exact_path(rng):
    """The plotted curves are 1 - λ and 1 - λ/s of the exact path."""
    cost = 1 - np.corrcoef(rng.normal(size=(30, 50)).T)[:20, 20:]
    path = exact_path(cost)
    eps = np.linspace(0, 0.9, 10)
    lam = path.cost_at(1 - eps)
    curve = figures.ScoreCurve(eps, lam)
    fig = figures.alignment_curve(
        curve, 0.3, current=(0.5, 0.4), elbow_unmatched=0.6, elbow_message="here"
    )
    names = [t.name for t in fig.data]
    assert names[0].startswith("raw score") and names[1].startswith("normalized")
    np.testing.assert_allclose(fig.data[0].y, 1 - lam)
    np.testing.assert_allclose(fig.data[1].y, 1 - lam / (1 - eps))
    assert fig.data[2].y[0] == pytest.approx(1 - path.cost_at(1.0))  # ε = 0
    assert any("elbow" in n for n in names)
    assert [s.x0 for s in fig.layout.shapes] == [0.3, 0.6]
    no_elbow = figures.alignment_curve(curve, 0.3, elbow_message="no clear elbow")
    assert "no clear elbow" in no_elbow.layout.title.text


def test_embedding_scatter_groups_and_links(rng):
    coords = rng.normal(size=(7 + 5, 2))
    matched_x = np.array([1, 1, 0, 1, 0, 0, 1], bool)
    matched_y = np.array([1, 0, 1, 1, 0], bool)
    pairs = np.array([[0, 2], [1, 0], [3, 3]])
    fig = figures.embedding_scatter(coords, 7, matched_x, matched_y, pairs)
    links = fig.data[0]
    assert links.x[0] == coords[0, 0] and links.x[1] == coords[7 + 2, 0]
    assert np.isnan(links.x[2])
    counts = {t.name: len(t.x) for t in fig.data[1:]}
    assert counts == {
        "X matched (4)": 4,
        "X unmatched (3)": 3,
        "Y matched (3)": 3,
        "Y unmatched (2)": 2,
    }
    y_unmatched = fig.data[4]
    assert [int(c[1]) for c in y_unmatched.customdata] == [1, 4]


def test_embedding_scatter_caps_links(rng):
    n = figures.MAX_LINKS + 50
    coords = rng.normal(size=(2 * n, 2))
    pairs = np.c_[np.arange(n), np.arange(n)]
    ones = np.ones(n, bool)
    fig = figures.embedding_scatter(coords, n, ones, ones, pairs)
    assert len(fig.data[0].x) == 3 * figures.MAX_LINKS


def test_tuning_scatter_and_empty_figure(rng):
    a, b = rng.normal(size=50), rng.normal(size=50)
    fig = figures.tuning_scatter(a, b, names=("u", "v"))
    np.testing.assert_allclose(fig.data[0].x, np.round(a, 5))
    assert fig.layout.xaxis.title.text == "u"
    empty = figures.empty_figure("wait")
    assert empty.layout.annotations[0].text == "wait"
    json.loads(pio.to_json(empty))
