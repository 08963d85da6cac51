"""Callbacks: plain functions of (state, inputs), and their registration.

Each view has its own callback; each is a thin step from small browser
state (settings, keys) through :class:`~psmd_app.state.AppState` to a
figure builder. The functions at module level take the state as first
argument and can be called in tests without Dash; :func:`register_callbacks`
wires them to component ids.

Data flow::

    url ─► controls ─► _apply: settings, solve, problem
                         ├─► result ─► status, plan, ranking, alignment, unit
                         │               └─► plan drawn ─► unit map
                         ├─► problem ─► ε-curves (background) ─► the same five
                         │                                        views again
                         └─► problem ─► UMAP (background) ─► unit map

The views read the ε-curves as ``State`` and :func:`_follow_curves` redraws
them when the curves arrive, so the first figure never waits for the path.

Errors raised in any callback are shown in the alert bar by the app's
``on_error`` handler (:func:`show_error`); the outputs keep their values.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

import numpy as np
from dash import Input, Output, Patch, State, ctx, dcc, html, no_update, set_props
from dash.exceptions import PreventUpdate

from psmd_app import exports, figures, ids, media
from psmd_app.data import COMPANIONS, companion_arguments, file_stem
from psmd_app.layout import GRAPH_CONFIG, method_options, view_options
from psmd_app.settings import (
    EXACT_MAX_UNITS,
    Settings,
    settings_from_query,
    settings_to_query,
    snap_unmatched,
)
from psmd_app.state import AppState, exact_allowed, single_thread_cpu
from solver.exceptions import PSMDInputError

logger = logging.getLogger(__name__)

TOP_STIMULI = 8
MATCH_TOL = 1e-6


# ---------------------------------------------------------------- errors


def error_message(err: BaseException) -> str:
    """One readable line for the alert bar."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    marker = "An error occurred inside a background callback: "
    text = text.replace(marker, "")
    if isinstance(err, PSMDInputError):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def show_error(err: BaseException) -> None:
    """``on_error`` handler: log the error and show it in the alert bar."""
    if isinstance(err, PSMDInputError):
        logger.warning("refused: %s", error_message(err))
    else:
        logger.error("callback failed: %s", err, exc_info=err)
    set_props(ids.ALERT_TEXT, {"children": error_message(err)})
    set_props(ids.ALERT, {"hidden": False})


def show_notice(text: str) -> None:
    """Show a non-fatal message in the alert bar (inside a callback)."""
    set_props(ids.ALERT_TEXT, {"children": text})
    set_props(ids.ALERT, {"hidden": False})


# ---------------------------------------------------------------- settings


def restore_from_url(state: AppState, pathname, search):
    """Controls and selected unit from the address bar (on page load).

    Returns
    -------
    tuple
        dataset, view options, view, cost, method, reg, ε, selected unit,
        and a list of problems with the query (empty when all was fine).
    """
    if pathname is None:
        raise PreventUpdate
    s, problems = settings_from_query(
        search, state.catalog.views(), state.default_dataset
    )
    views = state.catalog.info(s.dataset).views
    selected = None if s.unit_side is None else {"side": s.unit_side, "unit": s.unit}
    return (
        s.dataset,
        view_options(views),
        s.view,
        s.cost,
        s.method,
        s.reg,
        s.unmatched,
        selected,
        problems,
    )


def dataset_changed(state: AppState, dataset: str, view: str | None):
    """Layer/region choices and description of the chosen dataset."""
    info = state.catalog.info(dataset)
    value = view if view in info.views else info.views[0]
    row_style = {} if len(info.views) > 1 else {"display": "none"}
    return view_options(info.views), value, row_style, info.description


def dataset_options(state: AppState, held: list | None) -> list[dict]:
    """Dropdown options: the shared datasets, then this tab's own ones."""
    options = [
        {"label": state.catalog.title(name), "value": name}
        for name in state.catalog.names
    ]
    for entry in held or []:
        if entry.get("value") in state.catalog:
            options.append({"label": entry["label"], "value": entry["value"]})
    return options


def _hold(state: AppState, pair, names, title: str, source: str, session, held):
    from psmd_app.data import _describe, pair_to_sample

    if not session:
        raise PSMDInputError("this page has no session yet; reload it and try again.")
    sample = pair_to_sample(
        pair,
        name="pending",
        title=title,
        description=_describe(pair, source),
        names=names,
    )
    name = state.catalog.add_user(sample, session)
    label = f"{title} ({pair.X.shape[1]} × {pair.Y.shape[1]} units)"
    held = [e for e in (held or []) if e.get("value") != name]
    held.append({"label": label, "value": name})
    return dataset_options(state, held), name, held


def handle_upload(state: AppState, filenames, contents, session, held):
    """Files dropped on the upload area → this tab's new dataset.

    Returns
    -------
    options, value, held
        Dataset dropdown options and value, and the tab's dataset list.

    Raises
    ------
    PSMDInputError
        Uploads turned off, too large, unreadable or invalid (shown in the
        alert bar; other tabs and this tab's views are untouched).
    """
    from psmd_app.data import decode_upload, load_uploads, safe_name

    if not contents:
        raise PreventUpdate
    if state.max_upload_bytes <= 0:
        raise PSMDInputError("uploads are turned off on this server.")
    if isinstance(contents, str):
        contents, filenames = [contents], [filenames]
    filenames = [safe_name(f) for f in (filenames or [])]
    files = [
        (name, decode_upload(name, data, state.max_upload_bytes))
        for name, data in zip(filenames, contents, strict=True)
    ]
    pair, names = load_uploads(files)
    title = (
        f"Upload: {names[0]} vs {names[1]}"
        if len(files) == 2
        else f"Upload: {filenames[0]}"
    )
    logger.info(
        "upload %s: %d stimuli, %d x %d units",
        ", ".join(filenames),
        pair.X.shape[0],
        pair.X.shape[1],
        pair.Y.shape[1],
    )
    return _hold(state, pair, names, title, ", ".join(filenames), session, held)


# Options the open box takes as ``name=value`` after the data files: the
# companions (paths) and the arrays inside X's and Y's files.
OPEN_OPTIONS = (*COMPANIONS, "key_x", "key_y")


def parse_open_text(text: str | None) -> tuple[list[str], dict[str, str]]:
    """Split the open box into data files and ``name=value`` companions.

    Words are split as a shell would (quote a path with spaces). ``mask=``
    is the mask of both sides; ``key_x``/``key_y`` name an array inside a
    file, every other value is a path.

    Raises
    ------
    PSMDInputError
        Unbalanced quotes, an unknown or repeated companion, or not one or
        two data files.
    """
    import shlex

    try:
        words = shlex.split(text or "")
    except ValueError as err:
        raise PSMDInputError(f"cannot read the paths typed: {err}.") from None
    files, options = [], {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            files.append(word)
            continue
        if name not in OPEN_OPTIONS:
            raise PSMDInputError(
                f"'{name}=' is not an option of the open box; allowed: "
                + ", ".join(f"{o}=" for o in OPEN_OPTIONS)
                + "."
            )
        if name in options or not value:
            what = "is given twice" if name in options else "has no value"
            raise PSMDInputError(f"'{name}=' {what}.")
        options[name] = value
    if len(files) not in (1, 2):
        raise PSMDInputError(
            "give one pair file (.npz with X and Y) or two files, X then Y, "
            "separated by a space, then any companions as name=path "
            "(images=, mask=, coords_x=, names_x=, ...)."
        )
    return files, options


def handle_open(state: AppState, text, session, held):
    """Paths typed in the open box (inside the data folder) → a new dataset.

    The text names one pair file or two files (X then Y), then optional
    companions as ``name=path`` (see :data:`OPEN_OPTIONS`), e.g.
    ``sub-01.nii.gz sub-02.nii.gz mask=v1.nii.gz images=stimuli``.

    Raises
    ------
    PSMDInputError
        No data folder, a path outside it, a bad option, or any loader /
        validation problem.
    """
    from solver.validation import load_pair

    if state.data_folder is None:
        raise PSMDInputError(
            "this server has no data folder (start it with --data-dir)."
        )
    files, options = parse_open_text(text)
    paths = [state.data_folder.resolve(p) for p in files]
    given = {
        name: value if name.startswith("key_") else state.data_folder.resolve(value)
        for name, value in options.items()
    }
    try:
        pair = load_pair(*paths, **companion_arguments(given))
    except PSMDInputError as err:
        message = str(err).replace(str(state.data_folder.root) + os.sep, "")
        raise PSMDInputError(message) from None
    names = tuple(file_stem(p) for p in files) if len(files) == 2 else ("X", "Y")
    shown = " ".join(files)
    logger.info("opened %s from the data folder", " ".join([*files, *options]))
    return _hold(state, pair, names, f"File: {shown}", shown, session, held)


def handle_batch_click(state: AppState, click, session, held):
    """A click on the batch heatmap → that pair as this tab's dataset.

    Raises
    ------
    PSMDInputError
        The cell has no pair, the pair failed or is unfinished, or its input
        files cannot be read any more.
    """
    from solver.validation import check_pair

    if state.batch is None or not click or not click.get("points"):
        raise PreventUpdate
    point = click["points"][0]
    ref = state.batch.pair_at(str(point["y"]), str(point["x"]))
    if ref.status != "ok":
        raise PSMDInputError(
            f"pair {ref.name} has status {ref.status}; only finished pairs open."
        )
    X, Y = ref.load()
    pair = check_pair(
        X,
        Y,
        labels=(Path(ref.x).name, Path(ref.y).name),
        allow_nonfinite=True,
    )
    logger.info("batch pair %s opened", ref.name)
    names = (ref.label_x, ref.label_y)
    return _hold(state, pair, names, f"Batch: {ref.name}", f"{ref.x} and {ref.y}",
                 session, held)  # fmt: skip


def collect_settings(
    state: AppState,
    dataset,
    view,
    cost,
    method,
    reg,
    unmatched,
    selected,
    current: dict | None,
):
    """Validate the controls into settings and write the address bar.

    Returns
    -------
    settings : dict or no_update
        The new settings without the selected unit (no_update when they did
        not change, so that a click on a unit does not re-solve).
    search : str
        Query string for the address bar, with the selected unit.
    notices : list of str
    """
    notices = []
    info = state.catalog.info(dataset)
    if view not in info.views:
        view = info.views[0]
    if reg is not None and not reg > 0:
        notices.append(f"regularisation {reg} must be > 0; using auto.")
        reg = None
    s = Settings(
        dataset=dataset,
        view=view,
        cost=cost,
        method=method,
        reg=None if reg is None else float(reg),
        unmatched=snap_unmatched(unmatched if unmatched is not None else 0.0),
    )
    if s.method == "exact" and not exact_allowed(state.problem_for(s)):
        notices.append(
            f"exact is allowed up to {EXACT_MAX_UNITS} units per side; using Sinkhorn."
        )
        s = Settings(**{**s.to_dict(), "method": "sinkhorn"})
    unit = selected or {}
    search = settings_to_query(s.with_unit(unit.get("side"), unit.get("unit")))
    new = s.to_dict()
    return (no_update if new == current else new), search, notices


def derive_problem(state: AppState, settings: dict, current: dict | None):
    """The problem part of the settings (what the background work depends on)."""
    s = Settings.from_dict(settings)
    problem = state.problem_for(s)
    new = {
        "dataset": s.dataset,
        "view": s.view,
        "cost": s.cost,
        "reg": s.reg,
        "key": problem.key,
        "data_key": problem.data_key,
    }
    return no_update if new == current else new


def method_availability(state: AppState, problem_store: dict):
    """Method options and the size note for the current view."""
    problem = state.problem(
        problem_store["dataset"], problem_store["view"], problem_store["cost"]
    )
    ok = exact_allowed(problem)
    sizes = f"This view: {problem.n_x} × {problem.n_y} units."
    rule = f"Exact is allowed up to {EXACT_MAX_UNITS} units per side"
    note = f"{sizes} {rule}{'.' if ok else ', so only Sinkhorn is offered.'}"
    excluded = exclusion_notice(problem)
    return method_options(ok), f"{note} {excluded}".strip()


def exclusion_notice(problem) -> str:
    """One sentence on units left out as degenerate, or "" when none were."""
    p = problem.prepared
    if not (p.excluded_x or p.excluded_y):
        return ""
    parts = []
    for excluded, name in (
        (p.excluded_x, problem.names[0]),
        (p.excluded_y, problem.names[1]),
    ):
        shown = ", ".join(str(e.index) for e in excluded[:8])
        more = ", ..." if len(excluded) > 8 else ""
        columns = f" (columns {shown}{more})" if excluded else ""
        parts.append(f"{len(excluded)} unit(s) of {name}{columns}")
    return (
        "Excluded as constant or non-finite, not counted as unmatched: "
        f"{parts[0]} and {parts[1]}."
    )


# ---------------------------------------------------------------- solving


def solve(state: AppState, settings: dict) -> dict:
    """Solve at the current settings; return the small result store."""
    s = Settings.from_dict(settings)
    key, result, cached = state.solve(s)
    return {
        **{k: v for k, v in s.to_dict().items() if k not in ("unit_side", "unit")},
        "key": key,
        "problem": state.problem_for(s).key,
        "cached": cached,
    }


def compute_curves(state: AppState, problem_store: dict, set_progress=None) -> dict:
    """Background job: the ε-curves of a problem (CPU, one thread)."""
    single_thread_cpu()
    parent = os.getppid()
    problem = state.problem(
        problem_store["dataset"], problem_store["view"], problem_store["cost"]
    )

    def progress(share: float, message: str) -> None:
        if os.getppid() != parent:
            raise RuntimeError("the app server stopped while the curves were computed")
        if set_progress is not None:
            set_progress((f"{share:.2f}", message))

    key, _ = state.curves(problem, problem_store.get("reg"), progress=progress)
    return {"key": key, "problem": problem.key}


def compute_embedding(state: AppState, problem_store: dict, set_progress=None) -> dict:
    """Background job: the UMAP layout of a problem's units."""
    single_thread_cpu()
    problem = state.problem(
        problem_store["dataset"], problem_store["view"], problem_store["cost"]
    )

    def progress(what: str, seconds: float) -> None:
        if set_progress is not None:
            set_progress(
                (f"{min(seconds / 30.0, 0.95):.2f}", f"{what}, {seconds:.0f} s")
            )

    key, _ = state.embedding(problem, progress=progress)
    return {"key": key, "data_key": problem.data_key}


def _context(state: AppState, result_store: dict | None, curves_store=None):
    """Problem, result and matching curves (None when stale or missing)."""
    if not result_store:
        raise PreventUpdate
    s = Settings.from_dict(result_store)
    problem = state.problem_for(s)
    result = state.get_result(result_store["key"], problem)
    if result is None:  # evicted from the caches: solve again
        _, result, _ = state.solve(s)
    curves = None
    if curves_store and curves_store.get("problem") == problem.key:
        curves = state.get_curves(curves_store["key"])
    return problem, result, curves


def _selected_position(problem, selected: dict | None):
    """(side, kept position) of the selected unit, or None."""
    if not selected or selected.get("side") not in ("x", "y"):
        return None
    pos = problem.kept_position(selected["side"], int(selected["unit"]))
    return None if pos is None else (selected["side"], pos)


def status_text(state: AppState, result_store, curves_store) -> str:
    """The status line: method, device, iterations, convergence, error, time."""
    problem, result, curves = _context(state, result_store, curves_store)
    parts = [
        "exact" if result.method == "exact" else f"Sinkhorn (reg {result.reg:.3g})",
        f"device {result.device}",
        f"{result.n_iter} iterations",
        "converged" if result.converged else "NOT converged",
        f"error {result.marginal_error:.1e}",
        f"{result.time_s * 1000:.0f} ms"
        + (" (cached)" if result_store["cached"] else ""),
        f"{problem.n_x} × {problem.n_y} units",
    ]
    if curves is not None:
        parts.append(f"curves: {curves.source} ({curves.detail})")
    else:
        parts.append("curves: computing…")
    return " · ".join(parts)


# ---------------------------------------------------------------- views


def plan_view(
    state: AppState, result_store, curves_store, selected, window=None, *, patch=False
):
    """Heatmap of the plan; with ``patch`` only the selection outline changes.

    ``window`` is the zoomed view (:func:`zoom_window`); a window of another
    problem is ignored.
    """
    problem, result, curves = _context(state, result_store, curves_store)
    order_x, order_y = state.order(result, curves)
    marked = _plan_selection(problem, result, order_x, order_y, selected)
    if patch:
        update = Patch()
        update["layout"]["shapes"] = figures.plan_shapes(
            marked, problem.n_x, problem.n_y
        )
        return update
    if not window or window.get("problem") != problem.key:
        window = {}
    spans = [tuple(window[k]) if window.get(k) else None for k in ("x", "y")]
    return figures.plan_heatmap(
        result.plan,
        order_x,
        order_y,
        names=problem.names,
        selected=marked,
        span_x=spans[0],
        span_y=spans[1],
        view=window.get("view"),
        uirevision=problem.key,
    )


def zoom_window(state: AppState, relayout, window, result_store) -> dict:
    """What a zoom or pan of the plan heatmap shows, kept across redraws.

    The heatmap's y axis holds X's ranks, its x axis Y's. Every redraw (a
    slider move) keeps the zoomed axis ranges; plans block-summed on a side
    (above ``MAX_HEATMAP_CELLS`` units) are also redrawn finer, over the
    ranks in view.

    Returns
    -------
    dict
        ``{"problem": key, "x": [lo, hi] or None, "y": [lo, hi] or None,
        "view": {"x": [a, b] or None, "y": [a, b] or None}}``: the ranks in
        view and the axis ranges.

    Raises
    ------
    PreventUpdate
        Nothing changed: no plan yet, or an event that is not a zoom or pan.
    """
    if not relayout or not result_store:
        raise PreventUpdate
    problem = state.problem_for(Settings.from_dict(result_store))
    if window and window.get("problem") == problem.key:
        current = window
    else:
        current = {"problem": problem.key, "x": None, "y": None, "view": {}}
    new = {**current, "view": dict(current.get("view") or {})}
    for axis, side, n in (("yaxis", "x", problem.n_x), ("xaxis", "y", problem.n_y)):
        ends = [relayout.get(f"{axis}.range[0]"), relayout.get(f"{axis}.range[1]")]
        if relayout.get(f"{axis}.autorange"):
            new[side], new["view"][side] = None, None
        elif None not in ends:
            span = figures.rank_span(n, ends)
            new[side] = None if span is None else list(span)
            new["view"][side] = None if span is None else [float(v) for v in ends]
    if new == current:
        raise PreventUpdate
    return new


def zoom_redraws(state: AppState, result_store) -> bool:
    """Whether a zoom changes the plan's cells (a block-summed plan)."""
    problem = state.problem_for(Settings.from_dict(result_store))
    return max(problem.n_x, problem.n_y) > figures.MAX_HEATMAP_CELLS


def _plan_selection(problem, result, order_x, order_y, selected):
    picked = _selected_position(problem, selected)
    if picked is None:
        return None
    side, pos = picked
    partner = exports.best_matches(result, side)[pos]
    pos_x, pos_y = (pos, partner) if side == "x" else (partner, pos)
    return {
        "rank_x": int(np.flatnonzero(order_x == pos_x)[0]),
        "rank_y": int(np.flatnonzero(order_y == pos_y)[0]),
    }


def ranking_view(state: AppState, result_store, curves_store, selected):
    """Units by rank against their entry ε, cut at the current ε."""
    problem, result, curves = _context(state, result_store, curves_store)
    if curves is None:
        return figures.empty_figure("computing the ε-curves…")
    return figures.ranking_curve(
        curves.entry_mass_x,
        curves.entry_mass_y,
        curves.ranking_x,
        curves.ranking_y,
        result_store["unmatched"],
        names=problem.names,
        labels_x=problem.labels_x,
        labels_y=problem.labels_y,
        selected=_selected_position(problem, selected),
        source=curves.source,
        uirevision=problem.key,
    )


def alignment_view(state: AppState, result_store, curves_store):
    """Raw and normalized scores along ε, with the elbow and ε = 0."""
    problem, result, curves = _context(state, result_store, curves_store)
    if curves is None:
        return figures.empty_figure("computing the ε-curves…")
    current = figures.ScoreCurve(
        np.array([result.unmatched]),
        np.array([result.transport_cost]),
        problem.cost_name,
    )
    return figures.alignment_curve(
        curves.score_curve,
        result_store["unmatched"],
        current=(float(current.raw[0]), float(current.normalized[0])),
        elbow_unmatched=None if curves.elbow_mass is None else 1 - curves.elbow_mass,
        elbow_message=curves.elbow_message,
        source=curves.source,
        uirevision=problem.key,
    )


def matched_pairs(result, matched_x: np.ndarray) -> np.ndarray:
    """(unit of X, its main partner) for matched units of X, strongest first."""
    rows = np.flatnonzero(matched_x)
    partners = result.plan[rows].argmax(axis=1)
    strength = result.plan[rows, partners]
    order = np.argsort(-strength, kind="stable")
    return np.c_[rows[order], partners[order]]


def embedding_view(state: AppState, embedding_store, result_store, selected):
    """UMAP of all units, coloured by side and matched status."""
    problem, result, _ = _context(state, result_store)
    if not embedding_store or embedding_store.get("data_key") != problem.data_key:
        return figures.empty_figure("computing the UMAP layout…")
    coords = state.get_embedding(embedding_store["key"])
    if coords is None:
        return figures.empty_figure("computing the UMAP layout…")
    matched_x = result.matched_fraction_x >= figures.MATCHED_THRESHOLD
    matched_y = result.matched_fraction_y >= figures.MATCHED_THRESHOLD
    return figures.embedding_scatter(
        coords,
        problem.n_x,
        matched_x,
        matched_y,
        matched_pairs(result, matched_x),
        names=problem.names,
        labels_x=problem.labels_x,
        labels_y=problem.labels_y,
        selected=_selected_position(problem, selected),
        uirevision=problem.data_key,
    )


def _unit_column(state, problem, side: str, pos: int, facts: list[str]):
    sample = state.catalog.sample(problem.dataset)
    unit = int(problem.keep[side][pos])
    name = problem.names[0 if side == "x" else 1]
    labels = problem.labels_x if side == "x" else problem.labels_y
    children = [
        html.H3([html.Span(name, className=f"side side-{side}"), f" {labels[pos]}"]),
        html.Ul([html.Li(f) for f in facts], className="facts"),
    ]
    info = state.catalog.info(problem.dataset)
    if info.has_coords and (problem.coords_x is not None):
        view_index = list(info.views).index(problem.view)
        children.append(
            html.Img(
                src=media.brain_url(problem.dataset, view_index, side, unit),
                className="brain-map",
                alt=f"brain map of {name} {labels[pos]}",
            )
        )
    if sample.images is not None:
        raw = problem.raw_x if side == "x" else problem.raw_y
        top = np.argsort(-np.asarray(raw[:, unit]), kind="stable")[:TOP_STIMULI]
        children.append(html.Div("Top stimuli", className="strip-label"))
        children.append(
            html.Div(
                [
                    html.Img(
                        src=media.stimulus_url(problem.dataset, int(i)),
                        className="stimulus",
                        title=f"stimulus {int(i)}",
                        alt=f"stimulus {int(i)}",
                    )
                    for i in top
                ],
                className="stimulus-strip",
            )
        )
    return html.Div(children, className=f"unit-col unit-{side}")


def unit_view(state: AppState, selected, result_store, curves_store):
    """The selected unit and its best match side by side."""
    problem, result, curves = _context(state, result_store, curves_store)
    picked = _selected_position(problem, selected)
    if picked is None:
        return html.P(
            "Click a unit in any view to see it next to its best match.",
            className="note",
        )
    side, pos = picked
    other = "y" if side == "x" else "x"
    partner = int(exports.best_matches(result, side)[pos])
    plan_row = result.plan[pos] if side == "x" else result.plan[:, pos]
    is_matched = (
        plan_row.sum() * (problem.n_x if side == "x" else problem.n_y) > MATCH_TOL
    )
    r = exports.tuning_r(problem, side, pos, partner)

    def facts(s, p):
        frac = (result.matched_fraction_x if s == "x" else result.matched_fraction_y)[p]
        out = [f"matched {frac:.0%} of its weight at ε = {result.unmatched:.2f}"]
        if curves is not None:
            entry = (curves.entry_mass_x if s == "x" else curves.entry_mass_y)[p]
            out.append(f"enters at ε = {1 - entry:.3f} (entry mass {entry:.3f})")
        return out

    relation = "best match" if is_matched else "most similar unit (it is unmatched)"
    weight = 1.0 / (problem.n_x if side == "x" else problem.n_y)
    header = html.P(
        [
            html.Strong(f"tuning r = {r:.3f}"),
            f" · {relation}, receiving {plan_row[partner] / weight:.0%} of the "
            "selected unit's weight",
        ],
        className="unit-summary",
    )
    p = problem.prepared
    response = (p.X if side == "x" else p.Y)[:, pos]
    partner_response = (p.Y if side == "x" else p.X)[:, partner]
    names = problem.names if side == "x" else problem.names[::-1]
    labels = (problem.labels_x, problem.labels_y)
    scatter = figures.tuning_scatter(
        response,
        partner_response,
        names=(
            f"{names[0]} {labels[0 if side == 'x' else 1][pos]}",
            f"{names[1]} {labels[1 if side == 'x' else 0][partner]}",
        ),
    )
    return html.Div(
        [
            header,
            html.Div(
                [
                    _unit_column(state, problem, side, pos, facts(side, pos)),
                    _unit_column(state, problem, other, partner, facts(other, partner)),
                ],
                className="unit-grid",
            ),
            dcc.Graph(
                id=ids.UNIT_TUNING,
                figure=scatter,
                config=GRAPH_CONFIG,
                style={"height": "220px"},
            ),
        ]
    )


# ---------------------------------------------------------------- clicks


def _original(problem, side: str, pos: int) -> dict:
    return {"side": side, "unit": int(problem.keep[side][int(pos)])}


def unit_from_plan_click(state: AppState, click, result_store, curves_store):
    """Selected unit from a click on the heatmap (its row) or a marginal panel."""
    if not click or not click.get("points"):
        raise PreventUpdate
    problem, result, curves = _context(state, result_store, curves_store)
    order_x, order_y = state.order(result, curves)
    point = click["points"][0]
    curve = point.get("curveNumber", 0)
    if curve == 2:  # Y's matched share above the heatmap
        rank = int(round(float(point["x"])))
        return _original(problem, "y", order_y[min(max(rank, 0), order_y.size - 1)])
    rank = int(round(float(point["y"])))
    return _original(problem, "x", order_x[min(max(rank, 0), order_x.size - 1)])


def unit_from_point_click(state: AppState, click, result_store):
    """Selected unit from a click on a point carrying ``[side, unit]`` customdata."""
    if not click or not click.get("points"):
        raise PreventUpdate
    data = click["points"][0].get("customdata")
    if not data or data[0] not in ("x", "y"):
        raise PreventUpdate
    problem, _, _ = _context(state, result_store)
    return _original(problem, data[0], int(data[1]))


# ---------------------------------------------------------------- exports


def _file_stem(result_store: dict) -> str:
    view = "".join(c if c.isalnum() else "-" for c in result_store["view"])
    return f"psmd_{result_store['dataset']}_{view}_eps{result_store['unmatched']:g}"


def export_ranking(state: AppState, result_store, curves_store) -> dict:
    """Download of the ranking CSV."""
    problem, result, curves = _context(state, result_store, curves_store)
    text = exports.ranking_csv(problem, result, curves)
    return dcc.send_string(text, f"{_file_stem(result_store)}_ranking.csv")


def export_plan(state: AppState, result_store) -> dict:
    """Download of the plan NPZ."""
    problem, result, _ = _context(state, result_store)
    data = exports.plan_npz(problem, result)
    return dcc.send_bytes(data, f"{_file_stem(result_store)}_plan.npz")


def export_provenance(state: AppState, result_store, curves_store) -> dict:
    """Download of the settings and provenance JSON."""
    problem, result, curves = _context(state, result_store, curves_store)
    text = exports.provenance_json(
        problem,
        result,
        Settings.from_dict(result_store),
        result_key=result_store["key"],
        curves=curves,
        versions=state.versions,
    )
    return dcc.send_string(text, f"{_file_stem(result_store)}_provenance.json")


# ---------------------------------------------------------------- wiring


def _register_settings(app, state: AppState) -> None:
    @app.callback(
        Output(ids.DATASET, "value"),
        Output(ids.VIEW, "options"),
        Output(ids.VIEW, "value"),
        Output(ids.COST, "value"),
        Output(ids.METHOD, "value"),
        Output(ids.REG, "value"),
        Output(ids.UNMATCHED, "value"),
        Output(ids.SELECTED_UNIT, "data"),
        Input(ids.URL, "pathname"),
        State(ids.URL, "search"),
    )
    def _restore(pathname, search):
        *values, problems = restore_from_url(state, pathname, search)
        if problems:
            show_notice("Address bar: " + " ".join(problems))
        return tuple(values)

    @app.callback(
        Output(ids.VIEW, "options", allow_duplicate=True),
        Output(ids.VIEW, "value", allow_duplicate=True),
        Output(ids.VIEW_ROW, "style"),
        Output(ids.DATASET_DESCRIPTION, "children"),
        Input(ids.DATASET, "value"),
        State(ids.VIEW, "value"),
        prevent_initial_call=True,
    )
    def _dataset(dataset, view):
        return dataset_changed(state, dataset, view)

    # Validating the controls, solving and naming the problem share one
    # callback: the views start as soon as it answers (a separate callback for
    # the problem store made Dash hold the views back until it had answered).
    @app.callback(
        Output(ids.SETTINGS_STORE, "data"),
        Output(ids.URL, "search"),
        Output(ids.RESULT_STORE, "data"),
        Output(ids.PROBLEM_STORE, "data"),
        Input(ids.DATASET, "value"),
        Input(ids.VIEW, "value"),
        Input(ids.COST, "value"),
        Input(ids.METHOD, "value"),
        Input(ids.REG, "value"),
        Input(ids.UNMATCHED, "value"),
        Input(ids.SELECTED_UNIT, "data"),
        State(ids.SETTINGS_STORE, "data"),
        State(ids.PROBLEM_STORE, "data"),
        prevent_initial_call=True,
    )
    def _apply(dataset, view, cost, method, reg, unmatched, selected, current, problem):
        settings, search, notices = collect_settings(
            state, dataset, view, cost, method, reg, unmatched, selected, current
        )
        if notices:
            show_notice(" ".join(notices))
        if settings is no_update:
            return settings, search, no_update, no_update
        problem_store = derive_problem(state, settings, problem)
        return settings, search, solve(state, settings), problem_store

    @app.callback(
        Output(ids.METHOD, "options"),
        Output(ids.METHOD_NOTE, "children"),
        Input(ids.PROBLEM_STORE, "data"),
        prevent_initial_call=True,
    )
    def _methods(problem_store):
        options, note = method_availability(state, problem_store)
        problem = state.problem(
            problem_store["dataset"], problem_store["view"], problem_store["cost"]
        )
        excluded = exclusion_notice(problem)
        if excluded:
            show_notice(excluded)
        return options, note

    app.clientside_callback(
        "function(v) { return 'Unmatched mass \u03b5 = ' + Number(v).toFixed(2); }",
        Output(ids.UNMATCHED_LABEL, "children"),
        Input(ids.UNMATCHED, "value"),
    )
    app.clientside_callback(
        "function(n) { return true; }",
        Output(ids.ALERT, "hidden"),
        Input(ids.ALERT_CLOSE, "n_clicks"),
        prevent_initial_call=True,
    )


def _register_data(app, state: AppState) -> None:
    @app.callback(
        Output(ids.DATASET, "options"),
        Input(ids.SESSION_DATASETS, "data"),
    )
    def _options(held):
        return dataset_options(state, held)

    # Each source of a tab's own dataset sets the same three outputs.
    sources = []
    if state.max_upload_bytes > 0:
        sources.append(
            (
                [Input(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename")],
                lambda contents, filenames, *tab: handle_upload(
                    state, filenames, contents, *tab
                ),
            )
        )
    if state.batch is not None:
        sources.append(
            (
                [Input(ids.BATCH_HEATMAP, "clickData")],
                lambda click, *tab: handle_batch_click(state, click, *tab),
            )
        )
    if state.data_folder is not None:
        sources.append(
            (
                [
                    Input(ids.OPEN_BUTTON, "n_clicks"),
                    Input(ids.OPEN_PATH, "n_submit"),
                    State(ids.OPEN_PATH, "value"),
                ],
                lambda _clicks, _submit, text, *tab: handle_open(state, text, *tab),
            )
        )
    for dependencies, handler in sources:
        app.callback(
            Output(ids.DATASET, "options", allow_duplicate=True),
            Output(ids.DATASET, "value", allow_duplicate=True),
            Output(ids.SESSION_DATASETS, "data", allow_duplicate=True),
            *dependencies,
            State(ids.SESSION, "data"),
            State(ids.SESSION_DATASETS, "data"),
            prevent_initial_call=True,
        )(handler)


def _lower_priority() -> None:
    try:
        os.nice(5)
    except OSError:
        pass


def _register_work(app, state: AppState) -> None:
    @app.callback(
        Output(ids.CURVES_STORE, "data"),
        Input(ids.PROBLEM_STORE, "data"),
        background=True,
        progress=[
            Output(ids.CURVES_PROGRESS, "value"),
            Output(ids.CURVES_STATUS, "children"),
        ],
        running=[
            (Output(ids.CURVES_BUSY, "style"), {"display": "grid"}, {"display": "none"})
        ],
        cancel=[Input(ids.CURVES_CANCEL, "n_clicks")],
        interval=300,
        prevent_initial_call=True,
    )
    def _curves(set_progress, problem_store):
        _lower_priority()  # a forked job: the server's own requests come first
        return compute_curves(state, problem_store, set_progress)

    @app.callback(
        Output(ids.EMBEDDING_STORE, "data"),
        Input(ids.PROBLEM_STORE, "data"),
        background=True,
        progress=[
            Output(ids.EMBEDDING_PROGRESS, "value"),
            Output(ids.EMBEDDING_PROGRESS_TEXT, "children"),
        ],
        running=[
            (
                Output(ids.EMBEDDING_BUSY, "style"),
                {"display": "grid"},
                {"display": "none"},
            )
        ],
        cancel=[Input(ids.EMBEDDING_CANCEL, "n_clicks")],
        interval=500,
        prevent_initial_call=True,
    )
    def _embedding(set_progress, problem_store):
        return compute_embedding(state, problem_store, set_progress)


def _follow_curves(app, output: str, prop: str, render, inputs: list) -> None:
    """Redraw ``output.prop`` when the ε-curves arrive.

    ``render(result_store, curves_store, *rest)`` is the view; ``inputs`` are
    the ids that drive it directly (result store first). The curves come as a
    ``State`` there and as the ``Input`` here, because Dash holds back every
    callback with an ``Input`` downstream of a running background callback:
    with the curves as an input, the first figure would wait for the whole
    ε-path (a numba compile on the first run) instead of one solve.
    """

    @app.callback(
        Output(output, prop, allow_duplicate=True),
        Input(ids.CURVES_STORE, "data"),
        *[State(i, "data") for i in inputs],
        prevent_initial_call=True,
    )  # fmt: skip
    def _on_curves(curves_store, result_store, *rest):
        return render(result_store, curves_store, *rest)


def _register_views(app, state: AppState) -> None:
    @app.callback(
        Output(ids.STATUS_LINE, "children"),
        Input(ids.RESULT_STORE, "data"),
        State(ids.CURVES_STORE, "data"),
        prevent_initial_call=True,
    )
    def _status(result_store, curves_store):
        return status_text(state, result_store, curves_store)

    @app.callback(
        Output(ids.PLAN_HEATMAP, "figure"),
        Output(ids.PLAN_DRAWN, "data"),
        Input(ids.RESULT_STORE, "data"),
        Input(ids.SELECTED_UNIT, "data"),
        State(ids.CURVES_STORE, "data"),
        State(ids.PLAN_WINDOW, "data"),
        prevent_initial_call=True,
    )
    def _plan(result_store, selected, curves_store, window):
        patch = list(ctx.triggered_prop_ids.values()) == [ids.SELECTED_UNIT]
        figure = plan_view(
            state, result_store, curves_store, selected, window, patch=patch
        )
        return figure, no_update if patch else result_store["key"]

    # The zoom is kept in a store, so that a slider move keeps it; a zoom into
    # a block-summed plan also redraws the blocks in view, finer.
    @app.callback(
        Output(ids.PLAN_HEATMAP, "figure", allow_duplicate=True),
        Output(ids.PLAN_WINDOW, "data"),
        Input(ids.PLAN_HEATMAP, "relayoutData"),
        State(ids.PLAN_WINDOW, "data"),
        State(ids.RESULT_STORE, "data"),
        State(ids.CURVES_STORE, "data"),
        State(ids.SELECTED_UNIT, "data"),
        prevent_initial_call=True,
    )
    def _zoom(relayout, window, result_store, curves_store, selected):
        window = zoom_window(state, relayout, window, result_store)
        if not zoom_redraws(state, result_store):
            return no_update, window
        return plan_view(state, result_store, curves_store, selected, window), window

    @app.callback(
        Output(ids.RANKING_CURVE, "figure"),
        Input(ids.RESULT_STORE, "data"),
        Input(ids.SELECTED_UNIT, "data"),
        State(ids.CURVES_STORE, "data"),
        prevent_initial_call=True,
    )
    def _ranking(result_store, selected, curves_store):
        return ranking_view(state, result_store, curves_store, selected)

    @app.callback(
        Output(ids.ALIGNMENT_CURVE, "figure"),
        Input(ids.RESULT_STORE, "data"),
        State(ids.CURVES_STORE, "data"),
        prevent_initial_call=True,
    )
    def _alignment(result_store, curves_store):
        return alignment_view(state, result_store, curves_store)

    def _unit_on_curves(result_store, curves_store, selected):
        if selected is None:
            raise PreventUpdate  # nothing selected: the hint stays
        return unit_view(state, selected, result_store, curves_store)

    with_unit = [ids.RESULT_STORE, ids.SELECTED_UNIT]
    for output, prop, render, inputs in (
        (ids.STATUS_LINE, "children", partial(status_text, state), [ids.RESULT_STORE]),
        (ids.PLAN_HEATMAP, "figure", partial(plan_view, state),
         [*with_unit, ids.PLAN_WINDOW]),
        (ids.RANKING_CURVE, "figure", partial(ranking_view, state), with_unit),
        (ids.ALIGNMENT_CURVE, "figure", partial(alignment_view, state),
         [ids.RESULT_STORE]),
        (ids.UNIT_DETAIL, "children", _unit_on_curves, with_unit),
    ):  # fmt: skip
        _follow_curves(app, output, prop, render, inputs)

    # The unit map follows the plan, not the solve: its redraw is the slowest
    # in the browser and would otherwise hold back the views that matter most
    # while the slider moves.
    @app.callback(
        Output(ids.EMBEDDING_PLOT, "figure"),
        Input(ids.EMBEDDING_STORE, "data"),
        Input(ids.PLAN_DRAWN, "data"),
        Input(ids.SELECTED_UNIT, "data"),
        State(ids.RESULT_STORE, "data"),
        prevent_initial_call=True,
    )
    def _embedding_plot(embedding_store, plan_drawn, selected, result_store):
        return embedding_view(state, embedding_store, result_store, selected)

    @app.callback(
        Output(ids.UNIT_DETAIL, "children"),
        Input(ids.SELECTED_UNIT, "data"),
        Input(ids.RESULT_STORE, "data"),
        State(ids.CURVES_STORE, "data"),
        prevent_initial_call=True,
    )
    def _unit(selected, result_store, curves_store):
        if (
            selected is None
            and ids.SELECTED_UNIT not in ctx.triggered_prop_ids.values()
        ):
            raise PreventUpdate  # nothing selected: the hint stays
        return unit_view(state, selected, result_store, curves_store)


def _register_clicks(app, state: AppState) -> None:
    @app.callback(
        Output(ids.SELECTED_UNIT, "data", allow_duplicate=True),
        Input(ids.PLAN_HEATMAP, "clickData"),
        State(ids.RESULT_STORE, "data"),
        State(ids.CURVES_STORE, "data"),
        prevent_initial_call=True,
    )
    def _plan_click(click, result_store, curves_store):
        return unit_from_plan_click(state, click, result_store, curves_store)

    for graph_id in (ids.RANKING_CURVE, ids.EMBEDDING_PLOT):

        @app.callback(
            Output(ids.SELECTED_UNIT, "data", allow_duplicate=True),
            Input(graph_id, "clickData"),
            State(ids.RESULT_STORE, "data"),
            prevent_initial_call=True,
        )
        def _point_click(click, result_store):
            return unit_from_point_click(state, click, result_store)


def _register_exports(app, state: AppState) -> None:
    @app.callback(
        Output(ids.DOWNLOAD_CSV, "data"),
        Input(ids.EXPORT_CSV, "n_clicks"),
        State(ids.RESULT_STORE, "data"),
        State(ids.CURVES_STORE, "data"),
        prevent_initial_call=True,
    )
    def _csv(n_clicks, result_store, curves_store):
        return export_ranking(state, result_store, curves_store)

    @app.callback(
        Output(ids.DOWNLOAD_NPZ, "data"),
        Input(ids.EXPORT_NPZ, "n_clicks"),
        State(ids.RESULT_STORE, "data"),
        prevent_initial_call=True,
    )
    def _npz(n_clicks, result_store):
        return export_plan(state, result_store)

    @app.callback(
        Output(ids.DOWNLOAD_JSON, "data"),
        Input(ids.EXPORT_JSON, "n_clicks"),
        State(ids.RESULT_STORE, "data"),
        State(ids.CURVES_STORE, "data"),
        prevent_initial_call=True,
    )
    def _json(n_clicks, result_store, curves_store):
        return export_provenance(state, result_store, curves_store)


def register_callbacks(app, state: AppState | None = None) -> None:
    """Wire every callback of the app to its components.

    Parameters
    ----------
    app : dash.Dash
        Created with a background callback manager.
    state : AppState or None
        Server state; default ``app.server.config["PSMD_STATE"]``.
    """
    state = state or app.server.config["PSMD_STATE"]
    _register_settings(app, state)
    _register_data(app, state)
    _register_work(app, state)
    _register_views(app, state)
    _register_clicks(app, state)
    _register_exports(app, state)
