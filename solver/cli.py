"""The ``psmd`` command line.

``psmd compare X.npy Y.npy --unmatched 0.2 --json`` compares two
representations at one unmatched mass; ``psmd path X.npy Y.npy --json``
solves the whole exact ε-path and reports rankings and the elbow. Bad files or
values print one line on stderr and exit with status 2.
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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("X", help="stimuli x units matrix (.npy, .npz, .csv, .tsv)")
    p.add_argument(
        "Y", help="the other system's matrix, same stimuli in the same order"
    )
    p.add_argument("--key-x", help="array name inside X's .npz")
    p.add_argument("--key-y", help="array name inside Y's .npz")
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
    return parser


def _load(path: str, key: str | None):
    from solver.io import load_matrix

    return load_matrix(path, key=key)


def _compare(args) -> dict:
    import numpy as np

    from solver.api import compare

    if args.reg is not None and not args.reg > 0:
        raise PSMDInputError(f"--reg {args.reg} is not allowed; it must be > 0.")
    c = compare(
        _load(args.X, args.key_x),
        _load(args.Y, args.key_y),
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
    return c.to_dict()


def _path(args) -> dict:
    from solver.api import path

    if args.points < 10:
        raise PSMDInputError(f"--points {args.points} is too few; at least 10.")
    return path(
        _load(args.X, args.key_x),
        _load(args.Y, args.key_y),
        cost=args.cost,
        n_points=args.points,
    ).to_dict()


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
            f"best aligned X units: {out['ranking_x'][:10]}",
            f"best aligned Y units: {out['ranking_y'][:10]}",
        ]
    else:
        elbow = out["elbow"]
        if elbow is None:
            elbow = f"none ({out['elbow_message']})"
        lines = [
            f"units: {out['n_x']} x {out['n_y']} ({out['cost']} cost)",
            f"{len(out['masses'])} breakpoints from mass 0 to 1",
            f"elbow: {elbow}",
            f"best aligned X units: {out['ranking_x'][:10]}",
            f"best aligned Y units: {out['ranking_y'][:10]}",
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
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = _compare(args) if args.command == "compare" else _path(args)
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
