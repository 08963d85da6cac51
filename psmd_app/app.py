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


DEFAULT_MAX_UPLOAD_MB = 200.0


def create_app(
    *,
    sample: str | None = None,
    data=None,
    data_dir: str | Path | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    batch_dir: str | Path | None = None,
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
    data : list of str, callable, or None
        The user's own pair, offered as the dataset "own" to every session:
        files (X and Y, or one ``.npz`` pair file; see
        :func:`psmd_app.data.own_files_loader`) or a zero-argument loader
        (e.g. :func:`psmd_app.data.pair_loader` of arrays in memory).
    data_dir : str or Path or None
        A folder browsers may open files from; its ``.npz`` pair files are
        listed as datasets. Paths that lead outside it are refused.
    max_upload_mb : float, default=200
        Largest upload accepted (0 turns uploads off).
    batch_dir : str or Path or None
        A ``psmd batch`` output folder: its pair-by-pair distance matrix is
        shown above the views, and a click on a cell opens that pair.
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
    from psmd_app.data import (
        FOLDER_PREFIX,
        OWN_DATASET,
        Catalog,
        DataFolder,
        own_files_loader,
    )
    from psmd_app.layout import build_layout
    from psmd_app.state import AppState
    from solver.exceptions import PSMDInputError

    configure_logging()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    first = {}
    if data is not None:
        first[OWN_DATASET] = data if callable(data) else own_files_loader(data)
    folder = DataFolder(data_dir) if data_dir is not None else None
    if folder is not None:
        for relative in folder.pair_files():
            first[FOLDER_PREFIX + relative] = folder.loader(relative)
        logger.info(
            "data folder %s: %d pair files listed", folder.root, len(first) - bool(data)
        )
    catalog = Catalog.from_samples(samples, first=first)
    batch = None
    if batch_dir is not None:
        from solver.batch import read_batch

        batch = read_batch(
            batch_dir, refresh=not (Path(batch_dir) / "results.parquet").is_file()
        )
        logger.info("batch %s: %d pairs", batch_dir, len(batch.table))
    if not catalog.names:
        raise PSMDInputError("no datasets to show: give --data, --data-dir or samples.")
    if sample is None:
        sample = OWN_DATASET if data else DEFAULT_SAMPLE
        if sample not in catalog.names:
            sample = catalog.names[0]
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
        data_folder=folder,
        max_upload_bytes=int(max_upload_mb * 1e6),
        batch=batch,
    )
    datasets = [{"label": catalog.title(name), "value": name} for name in catalog.names]
    shown = catalog.info(sample)
    default = {
        "dataset": sample,
        "views": list(shown.views),
        "description": shown.description,
        "max_upload_mb": max_upload_mb,
        "data_dir": None if folder is None else folder.root.name,
        "batch_figure": None if batch is None else _batch_figure(batch),
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
    _limit_requests(app, max_upload_mb)
    app.layout = lambda: build_layout(datasets, default)
    media.register_routes(app.server, catalog.sample)
    register_callbacks(app, state)
    logger.info("app ready: %d datasets, cache in %s", len(datasets), cache_dir)
    return app


def _batch_figure(batch):
    from psmd_app.figures import batch_heatmap

    return batch_heatmap(
        batch.matrix(), batch.names(), batch.table, title=str(batch.out_dir.name)
    )


def _limit_requests(app, max_upload_mb: float) -> None:
    """Cap request bodies, and answer an oversized upload with a clear alert.

    An upload travels base64-encoded inside a callback request (4/3 of the
    file), so the cap sits a little above ``max_upload_mb``; the upload
    callback checks the exact limit itself.
    """
    from flask import jsonify, request

    from psmd_app import ids

    limit_mb = max(max_upload_mb, 1.0)
    app.server.config["MAX_CONTENT_LENGTH"] = int(limit_mb * 1e6 * 4 / 3 + 2e6)

    @app.server.errorhandler(413)
    def _too_large(_error):
        message = (
            f"The upload is larger than this server's limit of {max_upload_mb:g} MB; "
            "open it from the data folder (--data-dir) or raise --max-upload-mb."
        )
        logger.warning("refused an oversized request to %s", request.path)
        if request.path.endswith("_dash-update-component"):
            # What set_props sends: the renderer applies it to the alert and
            # leaves the callback's own outputs as they were.
            body = {
                "multi": True,
                "response": {},
                "sideUpdate": {
                    ids.ALERT_TEXT: {"children": message},
                    ids.ALERT: {"hidden": False},
                },
            }
            return jsonify(body), 200
        return message, 413


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _parser() -> argparse.ArgumentParser:
    from solver.cli import add_file_options

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
    own = parser.add_argument_group("your own data (with --data)")
    own.add_argument("--images", help="stimulus images: a folder or .npz")
    own.add_argument("--coords-x", help="unit positions of X (n_x, 3), mm")
    own.add_argument("--coords-y", help="unit positions of Y (n_y, 3), mm")
    add_file_options(own)
    models = parser.add_argument_group("model mode: activations of two models")
    models.add_argument(
        "--models",
        nargs=2,
        metavar=("MODEL_X", "MODEL_Y"),
        help="TorchScript files, or state_dicts with --arch; needs --images, --layer",
    )
    models.add_argument("--arch", help="architecture of state_dicts (digits-cnn, ...)")
    models.add_argument("--layer", help="layer to read (both models)")
    models.add_argument("--layer-y", help="layer of MODEL_Y, if different")
    models.add_argument("--pooling", choices=("mean", "center"), default="mean")
    models.add_argument(
        "--rectify", action="store_true", help="ReLU on the layer output"
    )
    parser.add_argument(
        "--batch",
        metavar="DIR",
        help="a psmd batch output folder: its distance matrix, click a cell to open",
    )
    share = parser.add_argument_group("sharing")
    share.add_argument(
        "--data-dir",
        help="folder browsers may open files from (its .npz pair files are listed)",
    )
    share.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help="largest upload accepted, MB (0 turns uploads off; default %(default)s)",
    )
    return parser


def _own_data(args):
    """The loader of --data or --models, or None."""
    from psmd_app.data import own_files_loader, pair_loader
    from solver.exceptions import PSMDInputError

    if args.models and args.data:
        raise PSMDInputError("give --data or --models, not both.")
    if args.models:
        from solver.models import every_tenth, pair_from_models

        if not args.images or not args.layer:
            raise PSMDInputError("--models needs --images and --layer.")

        @every_tenth
        def progress(done: int, total: int) -> None:
            logger.info("activations: %d/%d images", done, total)

        pair = pair_from_models(
            *args.models,
            args.images,
            args.layer,
            args.layer_y,
            arch_x=args.arch,
            pooling=args.pooling,
            rectify=args.rectify,
            progress=progress,
        )
        layers = f"{args.layer} / {args.layer_y or args.layer}"
        return pair_loader(
            pair, title=f"Models: {layers}", source=" and ".join(args.models)
        )
    if not args.data:
        return None
    companions = {
        k: getattr(args, k)
        for k in (
            "images",
            "coords_x",
            "coords_y",
            "names_x",
            "names_y",
            "mask_x",
            "mask_y",
            "key_x",
            "key_y",
        )
        if getattr(args, k)
    }
    return own_files_loader(args.data, **companions)


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
    if args.max_upload_mb < 0:
        print("psmd-app: --max-upload-mb must be >= 0.", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "serving on %s: anyone who can reach this machine can open the app "
            "and upload data to it",
            args.host,
        )
    try:
        configure_logging()
        app = create_app(
            sample=args.sample,
            data=_own_data(args),
            data_dir=args.data_dir,
            max_upload_mb=args.max_upload_mb,
            batch_dir=args.batch,
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
