"""Pure functions that return the app's components.

Nothing here reads data or registers callbacks; :func:`build_layout` takes
the dataset catalogue as plain values so it can be tested on its own.
"""

from __future__ import annotations

import functools
import secrets
from importlib import resources

from dash import dcc, html

from psmd_app import ids
from psmd_app.figures import empty_figure
from psmd_app.settings import (
    COSTS,
    DEFAULT_UNMATCHED,
    EXACT_MAX_UNITS,
    UNMATCHED_MAX,
    UNMATCHED_STEP,
)

GRAPH_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}
CLICK_HINT = "Click a unit in any view to see it next to its best match."
COST_LABELS = {"correlation": "correlation (1 − r)", "sqeuclidean": "squared Euclidean"}


@functools.cache
def explanation_text(name: str) -> str:
    """The plain-language explanation ``psmd_app/text/<name>.md``."""
    return (
        resources.files("psmd_app")
        .joinpath("text", f"{name}.md")
        .read_text(encoding="utf-8")
    )


def explanation(name: str, summary: str = "What does this show?") -> html.Details:
    """A collapsed box with one of the plain-language explanations."""
    return html.Details(
        [html.Summary(summary), dcc.Markdown(explanation_text(name))],
        id=f"{ids.HELP_PREFIX}{name}",
        className="help",
    )


def _labelled(
    label: str, control, *, row_id=None, hidden=False, label_id=None
) -> html.Div:
    extra = {"id": row_id} if row_id else {}
    label_extra = {"id": label_id} if label_id else {}
    return html.Div(
        [html.Label(label, className="control-label", **label_extra), control],
        className="control",
        style={"display": "none"} if hidden else {},
        **extra,
    )


def view_options(views) -> list[dict]:
    """Dropdown options for a dataset's layers or regions."""
    return [{"label": v, "value": v} for v in views]


def method_options(exact_ok: bool) -> list[dict]:
    """Method radio options; exact disabled above the size bound."""
    return [
        {"label": "Sinkhorn (entropic, fast)", "value": "sinkhorn"},
        {"label": "exact (whole ε-path)", "value": "exact", "disabled": not exact_ok},
    ]


def unmatched_label(value: float) -> str:
    """Text above the slider, with the current value."""
    return f"Unmatched mass ε = {value:.2f}"


def unmatched_slider(value: float = DEFAULT_UNMATCHED) -> dcc.Slider:
    """The ε slider, 0 to 0.99; it fires when released."""
    return dcc.Slider(
        id=ids.UNMATCHED,
        min=0.0,
        max=UNMATCHED_MAX,
        step=UNMATCHED_STEP,
        value=value,
        marks={v: f"{v:g}" for v in (0, 0.25, 0.5, 0.75, UNMATCHED_MAX)},
        updatemode="mouseup",
        tooltip={"placement": "top", "always_visible": False},
    )


def controls(datasets: list[dict], default: dict) -> html.Aside:
    """The sidebar: data, method, ε, background work and exports.

    Parameters
    ----------
    datasets : list of dict
        ``{"label": title, "value": name}`` per dataset.
    default : dict
        ``dataset``, ``views``, ``description`` of the default dataset.
    """
    views = default["views"]
    return html.Aside(
        [
            _labelled(
                "Dataset",
                dcc.Dropdown(
                    id=ids.DATASET,
                    options=datasets,
                    value=default["dataset"],
                    clearable=False,
                ),
            ),
            html.P(
                default["description"], id=ids.DATASET_DESCRIPTION, className="note"
            ),
            your_data_panel(default.get("max_upload_mb", 0), default.get("data_dir")),
            _labelled(
                "Layer or region",
                dcc.Dropdown(
                    id=ids.VIEW,
                    options=view_options(views),
                    value=views[0],
                    clearable=False,
                ),
                row_id=ids.VIEW_ROW,
                hidden=len(views) < 2,
            ),
            _labelled(
                "Cost",
                dcc.RadioItems(
                    id=ids.COST,
                    options=[{"label": COST_LABELS[c], "value": c} for c in COSTS],
                    value=COSTS[0],
                    className="radio",
                ),
            ),
            _labelled(
                "Method",
                dcc.RadioItems(
                    id=ids.METHOD,
                    options=method_options(True),
                    value="sinkhorn",
                    className="radio",
                ),
            ),
            html.P(
                f"Exact is allowed up to {EXACT_MAX_UNITS} units per side.",
                id=ids.METHOD_NOTE,
                className="note",
            ),
            _labelled(
                "Entropic regularisation (cost units)",
                dcc.Input(
                    id=ids.REG,
                    type="number",
                    min=0,
                    step="any",
                    placeholder="auto: 3% of mean cost",
                    debounce=True,
                    className="text-input",
                ),
            ),
            _labelled(
                unmatched_label(DEFAULT_UNMATCHED),
                unmatched_slider(),
                label_id=ids.UNMATCHED_LABEL,
            ),
            explanation("unmatched", "What are ε and regularisation?"),
            background_panel(),
            export_panel(),
        ],
        className="controls",
    )


def _progress_row(label: str, bar_id: str, text_id: str, cancel_id: str, busy_id: str):
    return html.Div(
        [
            html.Div(label, className="progress-label"),
            html.Progress(id=bar_id, value="0", max="1"),
            html.Span("", id=text_id, className="progress-text"),
            html.Button("Cancel", id=cancel_id, className="button small"),
        ],
        id=busy_id,
        className="progress-row",
        style={"display": "none"},
    )


def your_data_panel(max_upload_mb: float, data_dir: str | None) -> html.Div:
    """Upload a pair, or open one from the server's data folder.

    Parameters
    ----------
    max_upload_mb : float
        Upload limit shown to the user; 0 hides the upload.
    data_dir : str or None
        Shown when the server was given a data folder (``--data-dir``).
    """
    parts = [html.Label("Your data", className="control-label")]
    if max_upload_mb > 0:
        parts += [
            dcc.Upload(
                html.Div(
                    [
                        "Drop or ",
                        html.A("choose", className="link"),
                        " a pair file (.npz with X, Y) or two files X and Y",
                    ]
                ),
                id=ids.UPLOAD,
                multiple=True,
                className="upload",
            ),
            html.P(
                f"Up to {max_upload_mb:g} MB. Rows = stimuli, columns = units; "
                "two files are taken in name order (first = X). Formats: .npy, "
                ".npz, .mat, .h5, .csv, .tsv, .parquet, .pt, .nii. Files named "
                "images, mask, coords_x, coords_y, names_x or names_y come "
                "along as companions. Your data stay on this server, visible "
                "to this browser tab only.",
                id=ids.UPLOAD_NOTE,
                className="note",
            ),
        ]
    if data_dir:
        parts += [
            html.Div(
                [
                    dcc.Input(
                        id=ids.OPEN_PATH,
                        type="text",
                        placeholder="X.npy Y.npy images=stimuli, or pair.npz",
                        debounce=False,
                        className="text-input",
                    ),
                    html.Button("Open", id=ids.OPEN_BUTTON, className="button"),
                ],
                className="button-row",
            ),
            html.P(
                "Paths inside the server's data folder; nothing outside it "
                "can be opened. After X and Y, optional companions: images=, "
                "mask= (NIfTI), coords_x=, coords_y=, names_x=, names_y=, "
                "key_x=, key_y=.",
                className="note",
            ),
        ]
    return html.Div(parts, className="control")


def background_panel() -> html.Div:
    """Progress bars with cancel buttons for the work done in the background."""
    return html.Div(
        [
            _progress_row(
                "ε-curves",
                ids.CURVES_PROGRESS,
                ids.CURVES_STATUS,
                ids.CURVES_CANCEL,
                ids.CURVES_BUSY,
            ),
            _progress_row(
                "UMAP",
                ids.EMBEDDING_PROGRESS,
                ids.EMBEDDING_PROGRESS_TEXT,
                ids.EMBEDDING_CANCEL,
                ids.EMBEDDING_BUSY,
            ),
        ],
        className="background-panel",
    )


def export_panel() -> html.Div:
    """Buttons and download targets of the exports."""
    return html.Div(
        [
            html.Label("Export", className="control-label"),
            html.Div(
                [
                    html.Button("Ranking CSV", id=ids.EXPORT_CSV, className="button"),
                    html.Button("Plan NPZ", id=ids.EXPORT_NPZ, className="button"),
                    html.Button(
                        "Provenance JSON", id=ids.EXPORT_JSON, className="button"
                    ),
                ],
                className="button-row",
            ),
            dcc.Download(id=ids.DOWNLOAD_CSV),
            dcc.Download(id=ids.DOWNLOAD_NPZ),
            dcc.Download(id=ids.DOWNLOAD_JSON),
        ],
        className="control",
    )


def card(title: str, body, help_name: str, *, class_name: str = "") -> html.Section:
    """A titled panel with its explanation."""
    return html.Section(
        [html.H2(title), explanation(help_name), *body],
        className=f"card {class_name}".strip(),
    )


def graph(graph_id: str, message: str, height: int) -> dcc.Graph:
    """A graph that starts as a placeholder with ``message``."""
    return dcc.Graph(
        id=graph_id,
        figure=empty_figure(message),
        config=GRAPH_CONFIG,
        style={"height": f"{height}px"},
    )


def batch_card(figure) -> html.Section:
    """The pair-by-pair distance matrix of a batch run (``--batch``)."""
    return card(
        "Batch: pair-by-pair distances",
        [
            dcc.Graph(
                id=ids.BATCH_HEATMAP,
                figure=figure,
                config=GRAPH_CONFIG,
                style={"height": "420px"},
            )
        ],
        "batch",
        class_name="plan-card",
    )


def views(batch_figure=None) -> html.Main:
    """The grid of views (a batch card first when a batch is open)."""
    extra = [] if batch_figure is None else [batch_card(batch_figure)]
    return html.Main(
        [
            *extra,
            card(
                "Transport plan",
                [graph(ids.PLAN_HEATMAP, "solving…", 560)],
                "plan",
                class_name="plan-card",
            ),
            card(
                "Ranking and alignment along ε",
                [
                    graph(ids.RANKING_CURVE, "computing the ε-curves…", 270),
                    graph(ids.ALIGNMENT_CURVE, "computing the ε-curves…", 270),
                ],
                "ranking",
            ),
            card(
                "Map of units (UMAP)",
                [graph(ids.EMBEDDING_PLOT, "computing the UMAP layout…", 420)],
                "embedding",
            ),
            card(
                "Unit and its best match",
                [
                    html.Div(
                        html.P(CLICK_HINT, className="note"),
                        id=ids.UNIT_DETAIL,
                    )
                ],
                "unit",
            ),
        ],
        className="views",
    )


def header() -> html.Header:
    """Title, status line and the alert area."""
    return html.Header(
        [
            html.Div(
                [
                    html.H1("psmd"),
                    html.Span("partial soft-matching explorer", className="subtitle"),
                ],
                className="title",
            ),
            html.Div(
                [
                    html.Span("starting…", id=ids.STATUS_LINE),
                    explanation("status", "?"),
                ],
                className="status",
            ),
            html.Div(
                [
                    html.Span(id=ids.ALERT_TEXT),
                    html.Button(
                        "×",
                        id=ids.ALERT_CLOSE,
                        className="alert-close",
                        title="Dismiss",
                    ),
                ],
                id=ids.ALERT,
                className="alert",
                role="alert",
                hidden=True,
            ),
        ]
    )


def stores() -> list:
    """The address bar and the small state held by the browser."""
    return [
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Store(id=ids.SETTINGS_STORE),
        dcc.Store(id=ids.PROBLEM_STORE),
        dcc.Store(id=ids.RESULT_STORE),
        dcc.Store(id=ids.CURVES_STORE),
        dcc.Store(id=ids.EMBEDDING_STORE),
        dcc.Store(id=ids.PLAN_DRAWN),
        dcc.Store(id=ids.PLAN_WINDOW),
        dcc.Store(id=ids.SELECTED_UNIT),
        # A fresh secret per tab; session storage keeps it across reloads.
        dcc.Store(
            id=ids.SESSION, storage_type="session", data=secrets.token_urlsafe(18)
        ),
        dcc.Store(id=ids.SESSION_DATASETS, storage_type="session", data=[]),
    ]


def build_layout(datasets: list[dict], default: dict) -> html.Div:
    """The whole page.

    Parameters
    ----------
    datasets : list of dict
        ``{"label": title, "value": name}`` per dataset.
    default : dict
        ``dataset``, ``views`` and ``description`` of the dataset shown first.
    """
    return html.Div(
        [*stores(), header(),
         html.Div([controls(datasets, default), views(default.get("batch_figure"))],
                  className="page")],
        className="app",
    )  # fmt: skip
