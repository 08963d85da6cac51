"""The ``psmd`` command line.

``psmd compare X.npy Y.npy --unmatched 0.2 --json`` compares two
representations at one unmatched mass; ``psmd path X.npy Y.npy --json``
solves the whole exact ε-path and reports rankings and the elbow;
``psmd activations A.pt B.pt --images DIR --layer L --out pair.npz`` reads one
layer of two models on the same images (model mode); ``psmd batch MANIFEST
--out DIR`` compares many pairs (serially or on Dask). Inputs are read by
:mod:`solver.io` and checked by :func:`solver.validation.load_pair`. Bad files
or values print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from solver.exceptions import PSMDInputError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(EXIT_USAGE, f"psmd: error: {message}\n")


FORMATS_HELP = ".npy .npz .mat .h5 .csv .tsv .parquet .pt .nii.gz"


def add_file_options(p) -> None:
    """Options on what X's and Y's files hold (``psmd`` and ``psmd-app``)."""
    p.add_argument("--key-x", help="array / variable / dataset inside X's file")
    p.add_argument("--key-y", help="array / variable / dataset inside Y's file")
    p.add_argument("--mask-x", help="3-D NIfTI mask for a 4-D NIfTI X")
    p.add_argument("--mask-y", help="3-D NIfTI mask for a 4-D NIfTI Y")
    p.add_argument("--names-x", help="unit names of X (.txt, .json, .csv)")
    p.add_argument("--names-y", help="unit names of Y (.txt, .json, .csv)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("X", help=f"stimuli x units matrix ({FORMATS_HELP})")
    p.add_argument(
        "Y",
        nargs="?",
        help="the other system's matrix, same stimuli in the same order "
        "(omit it when X is one .npz pair file holding arrays X and Y)",
    )
    add_file_options(p)
    p.add_argument(
        "--drop-nonfinite",
        action="store_true",
        help="exclude units holding NaN/Inf (with a warning) instead of refusing",
    )
    p.add_argument(
        "--cost", choices=("correlation", "sqeuclidean"), default="correlation"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log progress on stderr"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``psmd``."""
    parser = _Parser(
        prog="psmd",
        description="Partial soft-matching distance between two representations.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("compare", help="compare at one unmatched mass")
    _common(c)
    amount = c.add_mutually_exclusive_group()
    amount.add_argument(
        "--unmatched", type=float, help="ε: mass left unmatched, [0, 1)"
    )
    amount.add_argument(
        "--mass", type=float, help="s = 1 - ε: transported mass, (0, 1]"
    )
    c.add_argument("--method", choices=("exact", "sinkhorn"), default="exact")
    c.add_argument("--reg", type=float, help="entropic regularisation (sinkhorn)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (sinkhorn)")
    c.add_argument("--out", help="write the plan (key 'plan') and rankings to .npz")
    pa = sub.add_parser("path", help="whole exact ε-path, rankings and elbow")
    _common(pa)
    pa.add_argument("--points", type=int, default=100, help="grid for the elbow")
    act = sub.add_parser(
        "activations",
        help="model mode: one layer of two PyTorch models on the same images",
    )
    act.add_argument("MODEL_X", help="TorchScript file, or state_dict (with --arch)")
    act.add_argument("MODEL_Y", help="the other model")
    act.add_argument(
        "--images", help="folder of images (name order) or .npz/.npy of images"
    )
    act.add_argument("--layer", help="layer of MODEL_X (see --list-layers)")
    act.add_argument("--layer-y", help="layer of MODEL_Y (default: --layer)")
    act.add_argument(
        "--arch",
        help="architecture of state_dict files: digits-cnn or a torchvision name",
    )
    act.add_argument("--arch-y", help="architecture of MODEL_Y (default: --arch)")
    act.add_argument("--pooling", choices=("mean", "center"), default="mean")
    act.add_argument(
        "--rectify", action="store_true", help="apply a ReLU to the layer output"
    )
    act.add_argument("--batch-size", type=int, default=64)
    act.add_argument("--size", type=int, help="resize images to SIZE x SIZE")
    act.add_argument("--normalize", choices=("none", "imagenet"), default="none")
    act.add_argument("--device", default="cpu")
    act.add_argument("--out", help="pair file to write (.npz: X, Y, images, names)")
    act.add_argument(
        "--list-layers", action="store_true", help="print the layers and stop"
    )
    act.add_argument("--json", action="store_true", help="print one JSON object")
    act.add_argument(
        "-v", "--verbose", action="store_true", help="log progress on stderr"
    )
    _batch_parser(sub)
    return parser


def _batch_parser(sub) -> None:
    b = sub.add_parser(
        "batch",
        help="many pairs from a manifest, serially or on Dask",
        description="Compare every pair of a CSV or YAML manifest; results go to "
        "OUT/results.parquet and OUT/pairs/. Finished pairs are skipped on a "
        "rerun. Exit status 1 when some pair failed, 2 for a bad manifest.",
    )
    b.add_argument("manifest", help="CSV or YAML manifest of pairs")
    b.add_argument("--out", required=True, help="output folder (created)")
    b.add_argument(
        "--scheduler",
        default="local",
        help="'local' (embedded Dask cluster, default), 'serial' (no Dask), "
        "or a scheduler address such as tcp://host:8786",
    )
    b.add_argument("--workers", type=int, help="workers of the local cluster")
    b.add_argument("--solver", choices=("exact", "sinkhorn"), default="exact")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda (sinkhorn)")
    b.add_argument("--reg", type=float, help="entropic regularisation (sinkhorn)")
    b.add_argument("--points", type=int, default=100, help="grid for the elbow")
    b.add_argument(
        "--retry-failed", action="store_true", help="recompute pairs that failed"
    )
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    b.add_argument("--json", action="store_true", help="print a JSON summary")
    b.add_argument(
        "-v", "--verbose", action="store_true", help="log progress on stderr"
    )


def _batch_progress(event) -> None:
    """Print the run's progress on stderr: one line per finished pair."""
    if event.kind == "start":
        print(
            f"psmd batch: {event.total} pair(s) to compute on {event.scheduler}, "
            f"{event.skipped} already finished",
            file=sys.stderr,
        )
        if event.dashboard:
            print(f"psmd batch: dashboard: {event.dashboard}", file=sys.stderr)
    elif event.kind == "pair":
        detail = f"{event.wall_s:.3f} s" if event.wall_s is not None else ""
        if event.error:
            detail = event.error
        width = len(str(event.total))
        print(
            f"[{event.done:>{width}}/{event.total}] {event.status:5} "
            f"{event.name}  {detail}",
            file=sys.stderr,
            flush=True,
        )


def _batch(args) -> int:
    from solver.batch import run_batch

    try:
        # Dask logs every scheduler and worker event at INFO by default.
        import distributed  # noqa: F401

        logging.getLogger("distributed").setLevel(
            logging.INFO if args.verbose else logging.WARNING
        )
    except ImportError:
        pass
    try:
        report = run_batch(
            args.manifest,
            args.out,
            solver=args.solver,
            device=args.device,
            reg=args.reg,
            n_points=args.points,
            scheduler=args.scheduler,
            n_workers=args.workers,
            retry_failed=args.retry_failed,
            progress=None if args.quiet else _batch_progress,
        )
    except PSMDInputError as err:
        print(f"psmd: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "psmd: interrupted; every finished pair is kept, rerun the same "
            "command to compute the rest.",
            file=sys.stderr,
        )
        return 130
    summary = {
        "pairs": report.n_pairs,
        "ok": report.n_ok,
        "failed": report.n_failed,
        "computed": report.n_computed,
        "skipped": report.n_skipped,
        "table": str(report.table_path),
        "scheduler": report.scheduler,
        "wall_s": report.wall_s,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{report.n_pairs} pairs: {report.n_ok} ok, {report.n_failed} failed "
            f"({report.n_computed} computed now, {report.n_skipped} already "
            f"finished) in {report.wall_s:.1f} s\ntable: {report.table_path}"
        )
    return 1 if report.n_failed else 0


def _load_pair(args):
    from solver.validation import load_pair

    return load_pair(
        args.X,
        args.Y,
        key_x=args.key_x,
        key_y=args.key_y,
        mask_x=args.mask_x,
        mask_y=args.mask_y,
        names_x=args.names_x,
        names_y=args.names_y,
        allow_nonfinite=args.drop_nonfinite,
    )


def _named(ranking: list, names: list | None) -> list:
    return ranking if names is None else [names[i] for i in ranking]


def _compare(args) -> dict:
    import numpy as np

    from solver.api import compare

    if args.reg is not None and not args.reg > 0:
        raise PSMDInputError(f"--reg {args.reg} is not allowed; it must be > 0.")
    pair = _load_pair(args)
    c = compare(
        pair.X,
        pair.Y,
        unmatched=args.unmatched,
        mass=args.mass,
        cost=args.cost,
        method=args.method,
        reg=args.reg,
        device=args.device,
    )
    if args.out:
        np.savez_compressed(
            args.out,
            plan=c.plan_full(),
            ranking_x=c.ranking_x,
            ranking_y=c.ranking_y,
        )
    out = c.to_dict()
    out["names_x"], out["names_y"] = pair.names_x, pair.names_y
    return out


def _path(args) -> dict:
    from solver.api import path

    if args.points < 10:
        raise PSMDInputError(f"--points {args.points} is too few; at least 10.")
    pair = _load_pair(args)
    out = path(pair.X, pair.Y, cost=args.cost, n_points=args.points).to_dict()
    out["names_x"], out["names_y"] = pair.names_x, pair.names_y
    return out


def _activations(args) -> dict:
    import numpy as np

    from solver.io import load_images
    from solver.models import (
        every_tenth,
        layer_names,
        load_model,
        model_activations,
    )
    from solver.validation import check_pair

    arch_y = args.arch_y or args.arch
    models = [
        load_model(args.MODEL_X, arch=args.arch),
        load_model(args.MODEL_Y, arch=arch_y),
    ]
    if args.list_layers:
        return {"layers_x": layer_names(models[0]), "layers_y": layer_names(models[1])}
    for flag in ("images", "layer", "out"):
        if getattr(args, flag) is None:
            raise PSMDInputError(f"--{flag} is required (or use --list-layers).")
    if not args.out.lower().endswith(".npz"):
        raise PSMDInputError(f"--out {args.out}: the pair file must end in .npz.")
    images = load_images(args.images)
    layers = (args.layer, args.layer_y or args.layer)

    @every_tenth
    def progress(done: int, total: int) -> None:
        print(f"psmd: {done}/{total} images", file=sys.stderr, flush=True)

    acts = []
    for model, layer, tag in zip(models, layers, ("X", "Y"), strict=True):
        print(f"psmd: model {tag}, layer {layer}", file=sys.stderr, flush=True)
        acts.append(
            model_activations(
                model,
                images,
                layer,
                pooling=args.pooling,
                rectify=args.rectify,
                batch_size=args.batch_size,
                size=args.size,
                normalize=args.normalize,
                device=args.device,
                progress=progress,
            )
        )
    names = [
        [f"{layer}:{j}" for j in range(a.shape[1])]
        for a, layer in zip(acts, layers, strict=True)
    ]
    pair = check_pair(*acts, images=images, names_x=names[0], names_y=names[1])
    np.savez_compressed(
        args.out,
        X=pair.X,
        Y=pair.Y,
        images=images,
        names_x=np.array(names[0]),
        names_y=np.array(names[1]),
    )
    return {
        "out": args.out,
        "n_stimuli": int(pair.X.shape[0]),
        "n_x": int(pair.X.shape[1]),
        "n_y": int(pair.Y.shape[1]),
        "layers": list(layers),
    }


def _print_summary(command: str, out: dict) -> None:
    if command == "compare":
        lines = [
            f"units: {out['n_x']} x {out['n_y']} ({out['cost']} cost)",
            f"mass s = {out['mass']:.4f}, unmatched ε = {out['unmatched']:.4f}",
            f"transport cost   {out['transport_cost']:.6f}",
            f"raw score        {out['raw_score']:.6f}",
            f"normalized score {out['normalized_score']}",
            f"method {out['method']}, converged {out['converged']}, "
            f"{out['time_s']:.3f} s on {out['device']}",
            f"best aligned X units: {_named(out['ranking_x'][:10], out['names_x'])}",
            f"best aligned Y units: {_named(out['ranking_y'][:10], out['names_y'])}",
        ]
    elif command == "activations":
        if "layers_x" in out:
            lines = [f"layers of X: {' '.join(out['layers_x'])}"]
            lines.append(f"layers of Y: {' '.join(out['layers_y'])}")
        else:
            lines = [
                f"wrote {out['out']}: {out['n_stimuli']} stimuli, "
                f"{out['n_x']} x {out['n_y']} units (layers {', '.join(out['layers'])})"
            ]
        print("\n".join(lines))
        return
    else:
        elbow = out["elbow"]
        if elbow is None:
            elbow = f"none ({out['elbow_message']})"
        lines = [
            f"units: {out['n_x']} x {out['n_y']} ({out['cost']} cost)",
            f"{len(out['masses'])} breakpoints from mass 0 to 1",
            f"elbow: {elbow}",
            f"best aligned X units: {_named(out['ranking_x'][:10], out['names_x'])}",
            f"best aligned Y units: {_named(out['ranking_y'][:10], out['names_y'])}",
        ]
    for key in ("excluded_x", "excluded_y"):
        if out[key]:
            lines.append(f"{key}: {[e['index'] for e in out[key]]}")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Run ``psmd``; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "batch":
        return _batch(args)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = {"compare": _compare, "path": _path, "activations": _activations}
            out = run[args.command](args)
    except PSMDInputError as err:
        print(f"psmd: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    for w in caught:
        print(f"psmd: warning: {w.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    else:
        _print_summary(args.command, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
