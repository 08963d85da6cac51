"""The psmd Dash app: ``create_app`` and the ``psmd-app`` command.

Importing this module has no side effects: it loads no data, starts no
process and configures no logging. :func:`create_app` builds the app;
:func:`main` parses the command line, warms up the default view and serves.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import webbrowser
from pathlib import Path

from psmd_app.settings import DEFAULT_UNMATCHED, Settings

logger = logging.getLogger("psmd_app")

DEFAULT_SAMPLE = "digits-cnn"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050


def default_cache_dir() -> Path:
    """Folder of the app's disk cache: ``$XDG_CACHE_HOME/psmd`` or ``~/.cache/psmd``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "psmd" / "app"


def configure_logging(level: int = logging.INFO) -> None:
    """Send the app's and the solver's log records to stderr (once)."""
    for name in ("psmd_app", "solver"):
        log = logging.getLogger(name)
        if not log.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s")
            )
            log.addHandler(handler)
        log.setLevel(level)
    # One line per HTTP request would drown the app's own messages.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def create_app(
    *,
    sample: str | None = None,
    data: list[str] | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    samples: list[str] | None = None,
    start_worker: bool = False,
    embedder=None,
):
    """Build the Dash app.

    Parameters
    ----------
    sample : str or None
        Dataset shown first; default the user's own data when ``data`` is
        given, else "digits-cnn".
    data : list of str or None
        The user's own files: X and Y, or one ``.npz`` with arrays ``X``, ``Y``
        and optionally ``images`` (see :func:`psmd_app.data.own_files_loader`);
        offered as the dataset "own".
    device : str, default="auto"
        Device of the slider's solves in the server process ("auto", "cpu",
        "cuda", ...). Background work always runs on the CPU.
    cache_dir : str or Path or None
        Disk cache folder; default :func:`default_cache_dir`.
    samples : list of str or None
        Datasets on offer; default every shipped sample.
    start_worker : bool, default=False
        Start the spawn-based UMAP worker now (``main`` does); without it
        UMAP is fitted inside the background job.
    embedder : callable or None
        Replaces UMAP (features -> 2-D coordinates), e.g. in tests.

    Returns
    -------
    dash.Dash
        ``app.server.config["PSMD_STATE"]`` holds the :class:`AppState`.

    Raises
    ------
    solver.exceptions.PSMDInputError
        ``sample`` is not among the datasets on offer, or ``data`` cannot be
        read.
    """
    import diskcache
    from dash import Dash, DiskcacheManager

    from psmd_app import media, worker
    from psmd_app.callbacks import register_callbacks, show_error
    from psmd_app.data import OWN_DATASET, Catalog, own_files_loader
    from psmd_app.layout import build_layout
    from psmd_app.state import AppState
    from solver.exceptions import PSMDInputError

    configure_logging()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    own = {OWN_DATASET: own_files_loader(data)} if data else None
    catalog = Catalog.from_samples(samples, first=own)
    if sample is None:
        sample = OWN_DATASET if data else DEFAULT_SAMPLE
    if sample not in catalog.names:
        raise PSMDInputError(
            f"sample {sample!r} is not known; allowed: {', '.join(catalog.names)}."
        )
    embedding_worker = None
    if start_worker and embedder is None:
        embedding_worker = worker.EmbeddingWorker(cache_dir / "results")
        embedding_worker.start()
    state = AppState(
        catalog,
        cache_dir,
        default_dataset=sample,
        device=device,
        embedding_worker=embedding_worker,
        embedder=embedder,
    )
    infos = {name: catalog.info(name) for name in catalog.names}
    datasets = [{"label": info.title, "value": name} for name, info in infos.items()]
    default = {
        "dataset": sample,
        "views": list(infos[sample].views),
        "description": infos[sample].description,
    }
    manager = DiskcacheManager(diskcache.Cache(str(cache_dir / "jobs")))
    app = Dash(
        __name__,
        title="psmd · partial soft-matching",
        assets_folder=str(Path(__file__).resolve().parent / "assets"),
        background_callback_manager=manager,
        on_error=show_error,
        update_title=None,
    )
    app.server.config["PSMD_STATE"] = state
    app.layout = lambda: build_layout(datasets, default)
    media.register_routes(app.server, catalog.sample)
    register_callbacks(app, state)
    logger.info("app ready: %d datasets, cache in %s", len(datasets), cache_dir)
    return app


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psmd-app",
        description="Explore the partial soft-matching distance in the browser.",
    )
    parser.add_argument(
        "--sample",
        help=f"dataset shown first (default: your --data, else {DEFAULT_SAMPLE})",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        metavar="FILE",
        help="your own pair: X and Y files (.npy, .npz, .csv, .tsv; rows = "
        "stimuli), or one .npz with arrays X, Y and optionally images",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="default: %(default)s")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, ... (default: auto)"
    )
    parser.add_argument("--cache-dir", help="disk cache folder")
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open a browser window"
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="fit UMAP inside each background job instead of a long-lived worker",
    )
    parser.add_argument(
        "--temporary-cache",
        action="store_true",
        help="use a fresh cache folder that is deleted at exit",
    )
    return parser


def _warm_up(app, sample: str) -> None:
    """Solve the default view once so that the first page draws at once."""
    state = app.server.config["PSMD_STATE"]
    start = time.perf_counter()
    view = state.catalog.info(sample).views[0]
    state.solve(Settings(sample, view, unmatched=DEFAULT_UNMATCHED))
    logger.info("warm-up solve in %.2f s", time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Run ``psmd-app``: serve the app and open it in the default browser.

    Returns
    -------
    int
        Exit status (2 for a usage error).
    """
    args = _parser().parse_args(argv)
    if args.data is not None and len(args.data) not in (1, 2):
        print(
            "psmd-app: --data takes two files (X then Y) or one .npz holding "
            f"arrays X and Y; got {len(args.data)} paths.",
            file=sys.stderr,
        )
        return 2
    from solver.exceptions import PSMDInputError

    cache_dir = args.cache_dir
    temporary = None
    if args.temporary_cache:
        temporary = tempfile.TemporaryDirectory(prefix="psmd-app-")
        cache_dir = temporary.name
    try:
        app = create_app(
            sample=args.sample,
            data=args.data,
            device=args.device,
            cache_dir=cache_dir,
            start_worker=not args.no_worker,
        )
        _warm_up(app, app.server.config["PSMD_STATE"].default_dataset)
    except PSMDInputError as err:
        print(f"psmd-app: {err}", file=sys.stderr)
        return 2
    # A plain SIGTERM would skip the clean-up that stops the UMAP worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url = f"http://{args.host}:{args.port}/"
    print(f"psmd app: serving on {url}  (press Ctrl+C to stop)", flush=True)
    if not args.no_browser and _has_display():
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    try:
        app.run(host=args.host, port=args.port, debug=False)
    finally:
        state = app.server.config["PSMD_STATE"]
        if state.embedding_worker is not None:
            state.embedding_worker.stop()
        _stop_children()
        if temporary is not None:
            temporary.cleanup()
    return 0


def _stop_children() -> None:
    """End background jobs still running in processes forked by this server."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
