"""Open the app on arrays already in memory: one call from a notebook.

>>> import psmd_app                                   # doctest: +SKIP
>>> app = psmd_app.show(X, Y, images=stimuli)         # doctest: +SKIP

In Jupyter the app appears inline below the cell (Dash's Jupyter support);
in a plain Python session it is served from a background thread and its
address is logged. Either way the call returns at once, and the arrays are
checked first with :func:`solver.validation.check_pair`, so a bad input is a
one-line :class:`~solver.exceptions.PSMDInputError` in the cell, not a broken
page.
"""

from __future__ import annotations

import logging
import tempfile
import threading

logger = logging.getLogger("psmd_app")

JUPYTER_MODES = ("inline", "external", "tab", "jupyterlab")


def show(
    X,
    Y,
    *,
    images=None,
    coords_x=None,
    coords_y=None,
    names_x=None,
    names_y=None,
    title: str = "Your data",
    mode: str = "inline",
    host: str = "127.0.0.1",
    port: int = 8050,
    height: int = 900,
    device: str = "auto",
    cache_dir=None,
    run: bool = True,
):
    """Serve the app on ``X`` and ``Y`` (stimuli × units) and show it.

    Parameters
    ----------
    X, Y : array-like or torch tensors of shape (n_stimuli, n_x), (n_stimuli, n_y)
        Responses of the two systems to the same stimuli, same row order.
    images : array-like of shape (n_stimuli, H, W) or (n_stimuli, H, W, 3), optional
        The stimuli, shown beside a selected unit and its match.
    coords_x, coords_y : array-like of shape (n_x, 3), (n_y, 3), optional
        Unit positions in MNI millimetres (brain maps).
    names_x, names_y : sequence of str, optional
        Unit names.
    title : str, default="Your data"
    mode : {"inline", "external", "tab", "jupyterlab"}, default="inline"
        How Jupyter shows the app (ignored outside Jupyter).
    host, port : str, int
        Where to serve (default http://127.0.0.1:8050).
    height : int, default=900
        Height of the inline frame in pixels.
    device : str, default="auto"
        Device of the slider's solves.
    cache_dir : str or Path, optional
        Default: a temporary folder kept for this Python session.
    run : bool, default=True
        False builds the app without serving it.

    Returns
    -------
    dash.Dash
        The app; ``app.server.config["PSMD_STATE"]`` holds its state.

    Raises
    ------
    solver.exceptions.PSMDInputError
        Any case of :func:`solver.validation.check_pair`, or an unknown mode.
    """
    from psmd_app.app import create_app
    from psmd_app.data import OWN_DATASET, pair_loader
    from solver.exceptions import PSMDInputError
    from solver.validation import check_pair

    if mode not in JUPYTER_MODES:
        raise PSMDInputError(
            f"mode={mode!r} is not allowed; allowed: {', '.join(JUPYTER_MODES)}."
        )
    pair = check_pair(
        X,
        Y,
        images=images,
        coords_x=coords_x,
        coords_y=coords_y,
        names_x=names_x,
        names_y=names_y,
    )
    if cache_dir is None:
        cache_dir = tempfile.mkdtemp(prefix="psmd-notebook-")
    app = create_app(
        sample=OWN_DATASET,
        data=pair_loader(pair, title=title, source="arrays in memory"),
        samples=[],
        device=device,
        cache_dir=cache_dir,
    )
    if run:
        serve(app, mode=mode, host=host, port=port, height=height)
    return app


def serve(app, *, mode: str = "inline", host="127.0.0.1", port=8050, height=900):
    """Run ``app`` without blocking: Jupyter's way inside a kernel, else a thread.

    Outside Jupyter the server object is kept in
    ``app.server.config["PSMD_HTTP"]``; its ``shutdown()`` stops it.
    """
    from dash import jupyter_dash

    if jupyter_dash.active:
        app.run(jupyter_mode=mode, host=host, port=port, jupyter_height=height)
        return
    from werkzeug.serving import make_server

    server = make_server(host, port, app.server, threaded=True)
    app.server.config["PSMD_HTTP"] = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    logger.info("psmd app: serving on http://%s:%d/", host, server.server_port)
