"""Pure figure builders: numpy arrays in, plotly figures out.

Nothing here touches the solver, the cache or Dash callbacks, so every
builder can be tested without a browser. Unit indices passed in are
positions among the *kept* units (after degenerate units were excluded);
``labels_x`` / ``labels_y`` say what to call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from scipy import sparse

# Largest heatmap sent to the browser per axis; bigger plans are summed over
# blocks of ranked units on the server.
MAX_HEATMAP_CELLS = 512

# A unit counts as matched when at least this share of its weight is
# transported (entropic plans are dense, so "any mass" would match everything).
MATCHED_THRESHOLD = 0.5

# Sides with more units than this are drawn as lines without markers.
MAX_RANK_MARKERS = 64

# Most matched pairs drawn as links in the embedding (the strongest first).
MAX_LINKS = 1500

SIDE_COLOURS = {"x": "#2166ac", "y": "#d6604d"}
UNMATCHED_COLOUR = "#d0d0d0"
SELECTED_COLOUR = "#111111"
ELBOW_COLOUR = "#1b7837"
FONT = {"family": "Inter, 'Segoe UI', Helvetica, Arial, sans-serif", "size": 12}

# White to dark blue, with stops spread like a square root so that the weak,
# diffuse mass of an entropic plan is still visible next to full matches.
_BLUES = ["#ffffff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
          "#08519c", "#08306b"]  # fmt: skip
PLAN_COLOURSCALE = [
    [float((k / (len(_BLUES) - 1)) ** 2), colour] for k, colour in enumerate(_BLUES)
]


def _base_layout(**extra) -> dict:
    layout = {
        "font": FONT,
        "margin": {"l": 56, "r": 16, "t": 36, "b": 48},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "hovermode": "closest",
    }
    layout.update(extra)
    return layout


def empty_figure(message: str) -> go.Figure:
    """Return a blank figure that shows ``message`` in its centre."""
    return go.Figure(
        layout=_base_layout(
            xaxis={"visible": False},
            yaxis={"visible": False},
            annotations=[
                {
                    "text": message,
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"size": 14, "color": "#666"},
                }
            ],
        )
    )


# -------------------------------------------------------------------------- batch


def batch_heatmap(matrix, names, table, *, title: str = "") -> go.Figure:
    """Pair-by-pair distances of a batch run.

    Parameters
    ----------
    matrix : pandas.DataFrame
        Distance per cell, rows ``label_x``, columns ``label_y`` (NaN: none).
    names : pandas.DataFrame
        The pair name behind each cell (None where there is no pair).
    table : pandas.DataFrame
        The batch table (``name``, ``status``, ``elbow_mass``, scores).
    """
    rows = table.set_index("name") if "name" in table else None
    hover = []
    for lx in matrix.index:
        line = []
        for ly in matrix.columns:
            name = names.loc[lx, ly]
            if name is None or rows is None or name not in rows.index:
                line.append(f"{lx} × {ly}: no pair")
                continue
            r = rows.loc[name]
            if r.get("status") != "ok":
                line.append(
                    f"{name}: {r.get('status')} {str(r.get('error') or '')[:80]}"
                )
                continue
            line.append(
                f"{name}<br>elbow mass {r.get('elbow_mass', float('nan')):.3f}"
                f"<br>normalized {r.get('elbow_normalized_score', float('nan')):.3f}"
                f"<br>raw {r.get('elbow_raw_score', float('nan')):.3f}"
            )
        hover.append(line)
    z = matrix.to_numpy(dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in matrix.columns],
            y=[str(i) for i in matrix.index],
            text=hover,
            hovertemplate="%{text}<extra></extra>",
            colorscale="Blues",
            colorbar={"title": {"text": "1 − r̄"}, "thickness": 12},
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        **_base_layout(
            title={"text": title, "font": {"size": 13}},
            xaxis={"title": "Y", "type": "category"},
            yaxis={"title": "X", "type": "category", "autorange": "reversed"},
            plot_bgcolor="#e5e5e5",
        )
    )
    return fig


# --------------------------------------------------------------------------- plan


def block_edges(
    n: int, max_blocks: int = MAX_HEATMAP_CELLS, span: tuple[int, int] | None = None
) -> np.ndarray:
    """Split ``n`` ranked units, or the ranks ``span``, into contiguous blocks.

    Parameters
    ----------
    n : int
        Units on the side.
    max_blocks : int, default=512
    span : (int, int) or None
        Ranks ``lo`` (included) to ``hi`` (excluded) to split; default all.

    Returns
    -------
    edges : ndarray of int of shape (n_blocks + 1,)
        Block k holds ranks ``edges[k]`` to ``edges[k + 1] - 1``; one unit per
        block when the span holds at most ``max_blocks`` units.
    """
    lo, hi = (0, n) if span is None else span
    n_blocks = min(hi - lo, max_blocks)
    return np.round(np.linspace(lo, hi, n_blocks + 1)).astype(int)


def _block_indicator(order: np.ndarray, edges: np.ndarray) -> sparse.csr_matrix:
    """Sparse (n_blocks, n) matrix summing the units of ranks ``edges`` into blocks."""
    n = order.size
    lo, hi = edges[0], edges[-1]
    block_of_rank = np.repeat(np.arange(edges.size - 1), np.diff(edges))
    return sparse.csr_matrix(
        (np.ones(hi - lo), (block_of_rank, order[lo:hi])), shape=(edges.size - 1, n)
    )


def rank_span(n: int, axis_range, pad: float = 0.1) -> tuple[int, int] | None:
    """Ranks shown by an axis range (cells centred on integer ranks), padded.

    Returns None when the range shows every rank (no zoom).
    """
    if axis_range is None:
        return None
    a, b = sorted(float(v) for v in axis_range)
    margin = pad * (b - a)
    lo = max(0, int(np.floor(a - margin + 0.5)))
    hi = min(n, int(np.ceil(b + margin + 0.5)))
    if hi <= lo:  # a range past either end: keep one rank
        lo = min(max(lo, 0), n - 1)
        hi = lo + 1
    return None if (lo, hi) == (0, n) else (lo, hi)


@dataclass(frozen=True)
class AggregatedPlan:
    """A plan reordered by ranking and summed over blocks of units.

    Attributes
    ----------
    fill : ndarray of float32 of shape (n_blocks_x, n_blocks_y)
        Mass in each block divided by the most the block could carry,
        ``min(rows / n_x, cols / n_y)``; in [0, 1].
    edges_x, edges_y : ndarray of int
        Block boundaries in rank positions (see :func:`block_edges`).
    matched_x, matched_y : ndarray of shape (n_blocks_x,), (n_blocks_y,)
        Mean matched fraction of the units in each block.
    """

    fill: np.ndarray
    edges_x: np.ndarray
    edges_y: np.ndarray
    matched_x: np.ndarray
    matched_y: np.ndarray

    @property
    def aggregated(self) -> bool:
        """Whether several units share a cell."""
        return bool(np.diff(self.edges_x).max() > 1 or np.diff(self.edges_y).max() > 1)


def aggregate_plan(
    plan: np.ndarray,
    order_x: np.ndarray,
    order_y: np.ndarray,
    max_cells: int = MAX_HEATMAP_CELLS,
    *,
    span_x: tuple[int, int] | None = None,
    span_y: tuple[int, int] | None = None,
) -> AggregatedPlan:
    """Reorder a plan by ranking and sum it over at most ``max_cells`` blocks.

    Parameters
    ----------
    plan : ndarray of shape (n_x, n_y)
        Transport plan with uniform unit weights ``1/n_x`` and ``1/n_y``.
    order_x, order_y : ndarray of int of shape (n_x,), (n_y,)
        Units of each side, best aligned first.
    max_cells : int, default=512
        Most blocks per axis.
    span_x, span_y : (int, int) or None
        Only the ranks ``lo`` to ``hi - 1`` of a side (a zoomed view: the
        same number of blocks over fewer units, so finer); default all.

    Returns
    -------
    AggregatedPlan
    """
    n_x, n_y = plan.shape
    edges_x = block_edges(n_x, max_cells, span_x)
    edges_y = block_edges(n_y, max_cells, span_y)
    rows = _block_indicator(np.asarray(order_x), edges_x)
    cols = _block_indicator(np.asarray(order_y), edges_y)
    sums = np.asarray((rows @ np.asarray(plan)) @ cols.T)
    capacity = np.minimum.outer(np.diff(edges_x) / n_x, np.diff(edges_y) / n_y)
    fill = np.clip(sums / capacity, 0.0, 1.0).astype(np.float32)
    frac_x = np.clip(np.asarray(plan).sum(axis=1) * n_x, 0.0, 1.0)
    frac_y = np.clip(np.asarray(plan).sum(axis=0) * n_y, 0.0, 1.0)
    matched_x = (rows @ frac_x) / np.diff(edges_x)
    matched_y = (cols @ frac_y) / np.diff(edges_y)
    return AggregatedPlan(fill, edges_x, edges_y, matched_x, matched_y)


def _grid(edges: np.ndarray) -> tuple[float, float]:
    """(first centre, step) of an even grid of ``len(edges) - 1`` blocks."""
    step = (edges[-1] - edges[0]) / (edges.size - 1)
    return edges[0] + (step - 1) / 2.0, step


def _marginal_area(edges, matched, side: str, axes: dict) -> go.Scatter:
    """Matched share of one side's units as a step area beside the heatmap.

    One filled path per side (cheap to redraw, unlike one bar per unit); the
    grey panel behind it (see :func:`_marginal_panels`) is the unmatched part.
    """
    horizontal = side == "x"
    bounds = np.asarray(edges, dtype=float) - 0.5
    pos = np.repeat(bounds, 2)[1:-1]
    val = np.repeat(np.round(matched, 4), 2)
    unit_word = "X" if horizontal else "Y"
    pos_axis, val_axis = ("y", "x") if horizontal else ("x", "y")
    return go.Scatter(
        **{pos_axis: pos, val_axis: val},
        mode="lines",
        line={"color": SIDE_COLOURS[side], "width": 0.5},
        fill="tozerox" if horizontal else "tozeroy",
        fillcolor=SIDE_COLOURS[side],
        name=f"{unit_word} matched",
        hovertemplate=f"{unit_word} rank %{{{pos_axis}:.0f}}<br>"
        f"matched %{{{val_axis}:.2f}}<extra></extra>",
        showlegend=False,
        **axes,
    )


def _marginal_panels(n_x: int, n_y: int) -> list[dict]:
    """Grey backgrounds of the two marginal panels: the unmatched share."""
    grey = {"type": "rect", "layer": "below", "line": {"width": 0},
            "fillcolor": UNMATCHED_COLOUR}  # fmt: skip
    return [
        {**grey, "xref": "x2", "yref": "y", "x0": 0, "x1": 1,
         "y0": -0.5, "y1": n_x - 0.5},
        {**grey, "xref": "x", "yref": "y2", "x0": -0.5, "x1": n_y - 0.5,
         "y0": 0, "y1": 1},
    ]  # fmt: skip


def plan_shapes(selected: dict | None, n_x: int, n_y: int) -> list[dict]:
    """All layout shapes of the plan figure: panels, then the selection."""
    return _marginal_panels(n_x, n_y) + selection_shapes(selected, n_x, n_y)


def selection_shapes(selected: dict | None, n_x: int, n_y: int) -> list[dict]:
    """Outline the selected unit's row or column and its best match."""
    if not selected:
        return []
    shapes = []
    line = {"color": SELECTED_COLOUR, "width": 1.5}
    for side, rank in (("x", selected.get("rank_x")), ("y", selected.get("rank_y"))):
        if rank is None:
            continue
        if side == "x":
            box = {"x0": -0.5, "x1": n_y - 0.5, "y0": rank - 0.5, "y1": rank + 0.5}
        else:
            box = {"x0": rank - 0.5, "x1": rank + 0.5, "y0": -0.5, "y1": n_x - 0.5}
        shapes.append({"type": "rect", "xref": "x", "yref": "y", "line": line, **box})
    return shapes


def plan_heatmap(
    plan: np.ndarray,
    order_x: np.ndarray,
    order_y: np.ndarray,
    *,
    names: Sequence[str] = ("X", "Y"),
    selected: dict | None = None,
    max_cells: int = MAX_HEATMAP_CELLS,
    span_x: tuple[int, int] | None = None,
    span_y: tuple[int, int] | None = None,
    view: dict | None = None,
    uirevision: str | None = None,
) -> go.Figure:
    """Plot the transport plan with units ordered by ranking and marginal bars.

    Parameters
    ----------
    plan : ndarray of shape (n_x, n_y)
    order_x, order_y : ndarray of int of shape (n_x,), (n_y,)
        Units of each side, best aligned first (rank 0 at the top / left).
    names : (str, str), default=("X", "Y")
        What the two sides are called.
    selected : dict or None
        ``{"rank_x": int or None, "rank_y": int or None}``: rank positions
        to outline (the selected unit and its best match).
    max_cells : int, default=512
        Plans larger than this per axis are block-summed (:func:`aggregate_plan`).
    span_x, span_y : (int, int) or None
        Ranks of a zoomed view (see :func:`rank_span`): cells and marginals
        cover only them, at a finer grain.
    view : dict or None
        Axis ranges the user zoomed to, ``{"x": [a, b], "y": [a, b]}`` in
        X's ranks (the y axis) and Y's ranks (the x axis); default all.
    uirevision : str or None
        Plotly's UI revision (legend clicks and the like survive redraws while it
        stays the same); the zoom is carried by ``view``.

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0 is the heatmap (axes ``x``/``y`` in rank positions); trace 1
        the matched share of X's units (left, axes ``x2``/``y``), trace 2 that
        of Y's units (top, axes ``x``/``y2``). The first two layout shapes
        are the grey panel backgrounds; the selection outlines follow.
    """
    n_x, n_y = plan.shape
    agg = aggregate_plan(
        plan, order_x, order_y, max_cells, span_x=span_x, span_y=span_y
    )
    what = "block fill" if agg.aggregated else "share of capacity"
    # Cells on an even grid (x0, dx) rather than listed centres: plotly draws
    # an even grid as one image, several times faster. Blocks from
    # block_edges are even to within half a unit.
    (y0, dy), (x0, dx) = _grid(agg.edges_x), _grid(agg.edges_y)
    heatmap = go.Heatmap(
        z=agg.fill,
        x0=x0,
        dx=dx,
        y0=y0,
        dy=dy,
        zmin=0.0,
        zmax=1.0,
        colorscale=PLAN_COLOURSCALE,
        colorbar={
            "title": {"text": "mass /<br>capacity", "side": "top"},
            "thickness": 12,
            "len": 0.8,
            "y": 0.42,
            "tickvals": [0, 0.05, 0.25, 0.5, 1],
        },
        hovertemplate=f"{names[0]} rank %{{y:.0f}}<br>{names[1]} rank %{{x:.0f}}"
        f"<br>{what} %{{z:.3f}}<extra></extra>",
        name="plan",
    )
    areas = [
        _marginal_area(agg.edges_x, agg.matched_x, "x", {"xaxis": "x2"}),
        _marginal_area(agg.edges_y, agg.matched_y, "y", {"yaxis": "y2"}),
    ]
    layout = _base_layout(
        margin={"l": 44, "r": 8, "t": 8, "b": 44},
        uirevision=uirevision,
        xaxis={
            "domain": [0.17, 0.88],
            "range": (view or {}).get("y") or [-0.5, n_y - 0.5],
            "title": {"text": f"{names[1]} units, best aligned first →"},
            "zeroline": False,
            "showgrid": False,
        },
        yaxis={
            "domain": [0.0, 0.82],
            "range": (view or {}).get("x") or [n_x - 0.5, -0.5],
            "anchor": "x2",
            "title": {"text": f"← {names[0]} units, best aligned first"},
            "zeroline": False,
            "showgrid": False,
        },
        xaxis2={
            "domain": [0.0, 0.15],
            "anchor": "y",
            "range": [1.0, 0.0],
            "tickvals": [0, 1],
            "title": {"text": "matched", "font": {"size": 11}},
            "showgrid": False,
        },
        yaxis2={
            "domain": [0.85, 1.0],
            "anchor": "x",
            "range": [0.0, 1.0],
            "tickvals": [0, 1],
            "title": {"text": "matched", "font": {"size": 11}},
            "showgrid": False,
        },
        shapes=plan_shapes(selected, n_x, n_y),
    )
    return go.Figure(data=[heatmap, *areas], layout=layout)


# ------------------------------------------------------------------------ ranking


def matched_by_entry(entry_mass: np.ndarray, mass: float) -> np.ndarray:
    """Units whose entry mass lies below the transported mass (they carry mass)."""
    return np.asarray(entry_mass) < mass


def ranking_curve(
    entry_mass_x: np.ndarray,
    entry_mass_y: np.ndarray,
    ranking_x: np.ndarray,
    ranking_y: np.ndarray,
    unmatched: float,
    *,
    names: Sequence[str] = ("X", "Y"),
    labels_x: Sequence[str] | None = None,
    labels_y: Sequence[str] | None = None,
    selected: tuple[str, int] | None = None,
    source: str = "",
    uirevision: str | None = None,
) -> go.Figure:
    """Plot each side's units by rank against the ε at which they enter.

    Parameters
    ----------
    entry_mass_x, entry_mass_y : ndarray of shape (n_x,), (n_y,)
        Smallest transported mass at which each kept unit carries mass.
    ranking_x, ranking_y : ndarray of int of shape (n_x,), (n_y,)
        Kept units, best aligned first.
    unmatched : float
        The current ε; drawn as the cut line.
    names : (str, str)
    labels_x, labels_y : sequence of str or None
        Unit names for hovering; default ``"unit <index>"``.
    selected : (side, unit) or None
        A kept unit to circle.
    source : str
        Where the curve comes from (shown in the title).
    uirevision : str or None

    Returns
    -------
    plotly.graph_objects.Figure
        One trace per side, x the rank as a share of the side's units, y the
        entry ε ``1 - entry_mass``; ``customdata`` holds ``[side, unit]``.
    """
    mass = 1.0 - unmatched
    traces = []
    for side, entry, ranking, labels, name in (
        ("x", entry_mass_x, ranking_x, labels_x, names[0]),
        ("y", entry_mass_y, ranking_y, labels_y, names[1]),
    ):
        ranking = np.asarray(ranking)
        n = ranking.size
        entry_eps = 1.0 - np.asarray(entry)[ranking]
        matched = matched_by_entry(np.asarray(entry)[ranking], mass)
        text = np.array(
            [labels[i] if labels is not None else f"unit {i}" for i in ranking]
        )
        trace_type = go.Scattergl if n > 2000 else go.Scatter
        # One marker per unit only while few: SVG markers are slow to redraw,
        # and plotly checks a colour list one string at a time (~15 ms per
        # 500 units on every slider move); the cut line and the legend count
        # say the rest.
        markers = n <= MAX_RANK_MARKERS
        traces.append(
            trace_type(
                x=(np.arange(n) + 0.5) / n,
                y=np.round(entry_eps, 5),
                mode="lines+markers" if markers else "lines",
                name=f"{name} ({int(matched.sum())}/{n} matched)",
                line={"color": SIDE_COLOURS[side], "width": 2},
                marker={
                    "size": 6,
                    "color": np.where(matched, SIDE_COLOURS[side], UNMATCHED_COLOUR),
                }
                if markers
                else None,
                customdata=np.c_[np.full(n, side), ranking],
                text=text,
                hovertemplate="%{text}<br>rank share %{x:.3f}<br>"
                "enters at ε = %{y:.3f}<extra>" + name + "</extra>",
            )
        )
    if selected is not None:
        side, unit = selected
        entry = entry_mass_x if side == "x" else entry_mass_y
        ranking = np.asarray(ranking_x if side == "x" else ranking_y)
        pos = int(np.flatnonzero(ranking == unit)[0]) if unit in ranking else None
        if pos is not None:
            traces.append(
                go.Scatter(
                    x=[(pos + 0.5) / ranking.size],
                    y=[1.0 - float(entry[unit])],
                    mode="markers",
                    marker={
                        "size": 14,
                        "color": "rgba(0,0,0,0)",
                        "line": {"color": SELECTED_COLOUR, "width": 2},
                    },
                    hoverinfo="skip",
                    showlegend=False,
                    name="selected",
                )
            )
    title = "Units by rank" + (f" · {source}" if source else "")
    layout = _base_layout(
        title={"text": title, "font": {"size": 13}, "x": 0.01},
        uirevision=uirevision,
        xaxis={"title": {"text": "rank (share of the side's units)"}, "range": [0, 1]},
        yaxis={"title": {"text": "enters the match at ε ="}, "range": [-0.02, 1.02]},
        legend={"orientation": "h", "y": -0.22, "x": 0},
        shapes=[_hline(unmatched)],
        annotations=[
            {
                "text": f"ε = {unmatched:.2f}: above the line is matched",
                "x": 1.0,
                "xref": "x",
                "y": unmatched,
                "yref": "y",
                "xanchor": "right",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 11},
            }
        ],
    )
    return go.Figure(data=traces, layout=layout)


def _hline(y: float) -> dict:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": y,
        "y1": y,
        "line": {"color": SELECTED_COLOUR, "width": 1.5, "dash": "dash"},
    }


def _vline(x: float, colour: str = SELECTED_COLOUR, dash: str = "dash") -> dict:
    return {
        "type": "line",
        "yref": "paper",
        "y0": 0,
        "y1": 1,
        "xref": "x",
        "x0": x,
        "x1": x,
        "line": {"color": colour, "width": 1.5, "dash": dash},
    }


# ---------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class ScoreCurve:
    """Scores along the unmatched mass ε, ready to plot.

    Attributes
    ----------
    unmatched : ndarray of shape (n_points,)
        Increasing ε values in [0, 1).
    transport_cost : ndarray of shape (n_points,)
        λ(1 - ε) = ⟨plan, cost⟩.
    cost_name : str
        ``"correlation"`` (scores are similarities) or ``"sqeuclidean"``
        (distances, lower is better).
    """

    unmatched: np.ndarray
    transport_cost: np.ndarray
    cost_name: str = "correlation"

    @property
    def mass(self) -> np.ndarray:
        """Transported mass ``1 - ε``."""
        return 1.0 - self.unmatched

    @property
    def raw(self) -> np.ndarray:
        """The paper's score ``1 - λ`` (correlation) or λ itself (sqeuclidean)."""
        if self.cost_name == "sqeuclidean":
            return self.transport_cost
        return 1.0 - self.transport_cost

    @property
    def normalized(self) -> np.ndarray:
        """``1 - λ/s`` (correlation) or ``λ/s`` (sqeuclidean); NaN at s = 0."""
        m = self.mass
        per_mass = np.divide(
            self.transport_cost, m, out=np.full_like(m, np.nan), where=m > 0
        )
        return per_mass if self.cost_name == "sqeuclidean" else 1.0 - per_mass


def score_names(cost_name: str) -> tuple[str, str]:
    """Plain names of the raw and normalized score for a cost."""
    if cost_name == "sqeuclidean":
        return "transport cost λ (lower = closer)", "cost per matched mass λ/s"
    return "raw score 1 − λ (paper)", "normalized score 1 − λ/s (mean r of matches)"


def alignment_curve(
    curve: ScoreCurve,
    unmatched: float,
    *,
    current: tuple[float, float] | None = None,
    elbow_unmatched: float | None = None,
    elbow_message: str = "",
    source: str = "",
    uirevision: str | None = None,
) -> go.Figure:
    """Plot the raw and normalized scores against ε with the elbow and ε = 0.

    Parameters
    ----------
    curve : ScoreCurve
    unmatched : float
        The current ε (dashed vertical line).
    current : (raw, normalized) or None
        Scores of the current solve, drawn as markers on the line.
    elbow_unmatched : float or None
        ε at the elbow of the L-curve; None when no clear elbow was found.
    elbow_message : str
        The elbow verdict, shown on hover.
    source : str
        Where the curve comes from (shown in the title).
    uirevision : str or None

    Returns
    -------
    plotly.graph_objects.Figure
        Traces: raw score, normalized score, soft-matching reference (ε = 0),
        then optional elbow and current markers.
    """
    raw_name, norm_name = score_names(curve.cost_name)
    eps = curve.unmatched
    raw, norm = curve.raw, curve.normalized
    at_zero = int(np.argmin(eps))
    reference = float(raw[at_zero])
    traces = [
        go.Scatter(x=eps, y=raw, name=raw_name, mode="lines",
                   line={"color": "#7f7f7f", "width": 2}),
        go.Scatter(x=eps, y=norm, name=norm_name, mode="lines",
                   line={"color": SIDE_COLOURS["x"], "width": 2.5}),
        go.Scatter(x=[eps.min(), eps.max()], y=[reference, reference], mode="lines",
                   name=f"soft matching, ε = 0 ({reference:.3f})",
                   line={"color": "#999", "width": 1, "dash": "dot"}),
    ]  # fmt: skip
    shapes = [_vline(unmatched)]
    if elbow_unmatched is not None:
        k = int(np.argmin(np.abs(eps - elbow_unmatched)))
        traces.append(
            go.Scatter(
                x=[eps[k], eps[k]],
                y=[raw[k], norm[k]],
                mode="markers",
                name=f"elbow, ε = {elbow_unmatched:.2f}",
                marker={"symbol": "diamond", "size": 11, "color": ELBOW_COLOUR},
                hovertext=elbow_message,
                hoverinfo="text",
            )
        )
        shapes.append(_vline(elbow_unmatched, ELBOW_COLOUR, "dot"))
    if current is not None:
        traces.append(
            go.Scatter(
                x=[unmatched, unmatched],
                y=list(current),
                mode="markers",
                name=f"this solve, ε = {unmatched:.2f}",
                marker={"size": 9, "color": SELECTED_COLOUR},
            )
        )
    title = "Alignment vs unmatched mass" + (f" · {source}" if source else "")
    if elbow_unmatched is None and elbow_message:
        title += " · no clear elbow"
    layout = _base_layout(
        title={"text": title, "font": {"size": 13}, "x": 0.01},
        uirevision=uirevision,
        xaxis={"title": {"text": "unmatched mass ε"}, "range": [0, 1]},
        yaxis={"title": {"text": "distance" if curve.cost_name == "sqeuclidean"
                         else "score"}},
        legend={"orientation": "h", "y": -0.22, "x": 0, "font": {"size": 11}},
        shapes=shapes,
    )  # fmt: skip
    return go.Figure(data=traces, layout=layout)


# ---------------------------------------------------------------------- embedding


def embedding_scatter(
    coords: np.ndarray,
    n_x: int,
    matched_x: np.ndarray,
    matched_y: np.ndarray,
    pairs: np.ndarray,
    *,
    names: Sequence[str] = ("X", "Y"),
    labels_x: Sequence[str] | None = None,
    labels_y: Sequence[str] | None = None,
    selected: tuple[str, int] | None = None,
    uirevision: str | None = None,
) -> go.Figure:
    """Plot a 2-D embedding of all units, by side and matched status.

    Parameters
    ----------
    coords : ndarray of shape (n_x + n_y, 2)
        Embedding of X's kept units followed by Y's.
    n_x : int
    matched_x, matched_y : ndarray of bool of shape (n_x,), (n_y,)
    pairs : ndarray of int of shape (n_pairs, 2)
        Matched pairs ``(unit of X, unit of Y)`` to link, strongest first; at
        most ``MAX_LINKS`` are drawn.
    names, labels_x, labels_y, selected, uirevision
        As in :func:`ranking_curve`.

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0 holds the links; then one trace per side and status, each
        with ``customdata`` ``[side, unit]``.
    """
    coords = np.asarray(coords, dtype=np.float64)
    xy = {"x": coords[:n_x], "y": coords[n_x:]}
    # SVG draws a few thousand points faster than WebGL starts (and much faster
    # where WebGL is emulated in software); beyond that WebGL wins.
    scatter = go.Scattergl if len(coords) > 3000 else go.Scatter
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)[:MAX_LINKS]
    link_x = np.full(3 * len(pairs), np.nan)
    link_y = np.full(3 * len(pairs), np.nan)
    link_x[0::3], link_x[1::3] = xy["x"][pairs[:, 0], 0], xy["y"][pairs[:, 1], 0]
    link_y[0::3], link_y[1::3] = xy["x"][pairs[:, 0], 1], xy["y"][pairs[:, 1], 1]
    traces = [
        scatter(
            x=link_x,
            y=link_y,
            mode="lines",
            line={"color": "rgba(60,60,60,0.25)", "width": 1},
            name=f"matched pairs ({len(pairs)})",
            hoverinfo="skip",
        )
    ]
    for side, matched, labels, name in (
        ("x", matched_x, labels_x, names[0]),
        ("y", matched_y, labels_y, names[1]),
    ):
        for status in (True, False):
            idx = np.flatnonzero(np.asarray(matched) == status)
            text = [labels[i] if labels is not None else f"unit {i}" for i in idx]
            traces.append(
                scatter(
                    x=xy[side][idx, 0],
                    y=xy[side][idx, 1],
                    mode="markers",
                    name=f"{name} {'matched' if status else 'unmatched'} ({idx.size})",
                    marker={
                        "size": 7 if status else 6,
                        "color": SIDE_COLOURS[side] if status else "white",
                        "line": {"color": SIDE_COLOURS[side], "width": 1.2},
                        "symbol": "circle" if side == "x" else "square",
                    },
                    customdata=np.c_[np.full(idx.size, side), idx],
                    text=text,
                    hovertemplate="%{text}<extra>" + name + "</extra>",
                )
            )
    if selected is not None:
        side, unit = selected
        traces.append(
            scatter(
                x=[xy[side][unit, 0]],
                y=[xy[side][unit, 1]],
                mode="markers",
                marker={
                    "size": 16,
                    "color": "rgba(0,0,0,0)",
                    "line": {"color": SELECTED_COLOUR, "width": 2},
                },
                hoverinfo="skip",
                showlegend=False,
                name="selected",
            )
        )
    layout = _base_layout(
        uirevision=uirevision,
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        legend={"orientation": "h", "y": -0.02, "x": 0, "font": {"size": 11}},
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
    )
    return go.Figure(data=traces, layout=layout)


# ------------------------------------------------------------------------- detail


def tuning_scatter(
    response: np.ndarray,
    partner: np.ndarray,
    *,
    names: Sequence[str] = ("unit", "match"),
) -> go.Figure:
    """Scatter one unit's responses against its match's, one dot per stimulus.

    Parameters
    ----------
    response, partner : ndarray of shape (n_stimuli,)
    names : (str, str)
        Axis titles.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    response = np.asarray(response, dtype=np.float64)
    partner = np.asarray(partner, dtype=np.float64)
    trace_type = go.Scattergl if response.size > 3000 else go.Scatter
    return go.Figure(
        data=[
            trace_type(
                x=np.round(response, 5),
                y=np.round(partner, 5),
                mode="markers",
                marker={"size": 4, "color": "rgba(33,102,172,0.45)"},
                hovertemplate="%{x:.3g}, %{y:.3g}<extra>stimulus</extra>",
                showlegend=False,
            )
        ],
        layout=_base_layout(
            margin={"l": 48, "r": 8, "t": 8, "b": 40},
            xaxis={"title": {"text": names[0]}, "zeroline": False},
            yaxis={"title": {"text": names[1]}, "zeroline": False},
        ),
    )
