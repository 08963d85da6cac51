"""Read and check the manifest of a batch run: which pairs to compare, and how.

A manifest is a CSV or a YAML file. Paths in it are relative to the
manifest's folder (or absolute). Every problem is reported as a one-line
:class:`~solver.exceptions.PSMDInputError` naming the manifest, the row or
entry, and what is allowed, before any pair is computed.

CSV: one row per pair; columns ``x`` and ``y`` are required, the others
optional (see ``CSV_COLUMNS``). ``masses`` lists transported masses s
separated by ``;``. Rows whose first cell starts with ``#`` are comments::

    name,x,y,label_x,label_y,cost,masses
    c1-c1,a/conv1.npy,b/conv1.npy,conv1,conv1,correlation,0.5;0.8

YAML: ``defaults`` (``cost``, ``masses``, ``x_key``, ``y_key``) apply to
every pair; pairs come from any of ``pairs`` (a list of mappings with the CSV
columns as keys), ``x`` and ``y`` (two lists: every x with every y), and
``among`` (one list: every unordered pair of distinct entries, e.g. every
pair of subjects). A list entry is a path or a mapping with ``path`` and
optional ``key`` and ``label``::

    defaults: {cost: correlation, masses: [0.5, 0.8]}
    x: [{path: a/conv1.npy, label: conv1}, {path: a/conv2.npy, label: conv2}]
    y: [b/conv1.npy, b/conv2.npy]
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from solver.exceptions import PSMDInputError

COSTS = ("correlation", "sqeuclidean")
CSV_COLUMNS = (
    "name",
    "x",
    "y",
    "x_key",
    "y_key",
    "cost",
    "masses",
    "label_x",
    "label_y",
)
YAML_TOP = ("defaults", "pairs", "x", "y", "among")
YAML_DEFAULTS = ("cost", "masses", "x_key", "y_key")
YAML_ENTRY = ("path", "key", "label")


@dataclass(frozen=True)
class PairSpec:
    """One pair to compare, as the manifest gives it, with paths resolved.

    Attributes
    ----------
    name : str
        Unique name of the pair (default ``"<label_x> vs <label_y>"``).
    x, y : str
        Absolute paths of the two representation files.
    x_key, y_key : str or None
        Array name inside an ``.npz`` (or other multi-array file).
    cost : {"correlation", "sqeuclidean"}
    masses : tuple of float
        Extra transported masses s in (0, 1] to score at, sorted, unique.
    label_x, label_y : str
        Row and column labels of the pair in the distance matrix (default:
        the file path relative to the manifest, without suffix, plus
        ``[key]``).
    symmetric : bool
        True for pairs from an ``among`` list: only one order is computed and
        the distance matrix is filled on both sides of the diagonal.
    where : str
        Where the pair was given (``"row 3"``, ``"pairs[2]"``), for messages.
    """

    name: str
    x: str
    y: str
    x_key: str | None
    y_key: str | None
    cost: str
    masses: tuple[float, ...]
    label_x: str
    label_y: str
    symmetric: bool = False
    where: str = ""


def read_manifest(path: str | Path) -> list[PairSpec]:
    """Read a CSV or YAML manifest and check every pair.

    Parameters
    ----------
    path : str or Path
        ``.csv`` or ``.yaml`` / ``.yml`` file.

    Returns
    -------
    list of PairSpec
        In manifest order.

    Raises
    ------
    PSMDInputError
        Missing manifest, unknown format or column, a missing ``x`` or ``y``,
        a representation file that does not exist, an unknown cost, a mass
        outside (0, 1], duplicate pair names, or no pairs at all.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(d / "a.npy", np.eye(3)); np.save(d / "b.npy", np.eye(3))
    >>> _ = (d / "m.csv").write_text("x,y,masses\\na.npy,b.npy,0.5;0.8\\n")
    >>> [(p.name, p.masses) for p in read_manifest(d / "m.csv")]
    [('a vs b', (0.5, 0.8))]
    """
    path = Path(path)
    if not path.is_file():
        raise PSMDInputError(f"{path}: no such manifest file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = _read_csv(path)
    elif suffix in (".yaml", ".yml"):
        raw = _read_yaml(path)
    else:
        raise PSMDInputError(
            f"{path}: manifest format {suffix or '(none)'} is not supported; "
            "allowed: .csv, .yaml, .yml."
        )
    if not raw:
        raise PSMDInputError(f"{path}: the manifest lists no pairs.")
    specs = [_spec(path, where, fields) for where, fields in raw]
    _check_unique(path, specs)
    return specs


def _read_csv(path: Path) -> list[tuple[str, dict]]:
    """Rows of a CSV manifest as (where, fields) with empty cells dropped."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    rows = [r for r in rows if not r[0].lstrip().startswith("#")]
    if not rows:
        raise PSMDInputError(f"{path}: the manifest is empty (no header row).")
    header = [c.strip() for c in rows[0]]
    for col in header:
        if col not in CSV_COLUMNS:
            raise PSMDInputError(
                f"{path}: unknown column {col!r}; allowed: {', '.join(CSV_COLUMNS)}."
            )
    for col in ("x", "y"):
        if col not in header:
            raise PSMDInputError(f"{path}: the required column {col!r} is missing.")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) > len(header):
            raise PSMDInputError(
                f"{path}: row {n} has {len(row)} cells for {len(header)} columns."
            )
        row = row + [""] * (len(header) - len(row))
        cells = {k: v.strip() for k, v in zip(header, row, strict=True) if v.strip()}
        out.append((f"row {n}", cells))
    return out


def _read_yaml(path: Path) -> list[tuple[str, dict]]:
    """Entries of a YAML manifest as (where, fields), defaults applied."""
    try:
        import yaml
    except ImportError:
        raise PSMDInputError(
            f"{path}: reading YAML needs PyYAML; pip install 'psmd[batch]' "
            "or write the manifest as CSV."
        ) from None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PSMDInputError(f"{path}: not valid YAML ({first}).") from None
    if not isinstance(doc, dict):
        raise PSMDInputError(
            f"{path}: the manifest must be a mapping with keys among "
            f"{', '.join(YAML_TOP)}."
        )
    _check_keys(path, "the manifest", doc, YAML_TOP)
    defaults = doc.get("defaults") or {}
    _check_keys(path, "defaults", defaults, YAML_DEFAULTS)
    out = []
    pairs = doc.get("pairs") or []
    if not isinstance(pairs, list):
        raise PSMDInputError(f"{path}: 'pairs' must be a list of mappings.")
    for i, item in enumerate(pairs):
        _check_keys(path, f"pairs[{i}]", item, CSV_COLUMNS)
        out.append((f"pairs[{i}]", {**defaults, **item}))
    if ("x" in doc) != ("y" in doc):
        raise PSMDInputError(f"{path}: 'x' and 'y' must be given together.")
    if "x" in doc:
        xs = _entries(path, "x", doc["x"])
        ys = _entries(path, "y", doc["y"])
        for i, ex in enumerate(xs):
            for j, ey in enumerate(ys):
                out.append((f"x[{i}] with y[{j}]", {**defaults, **_join(ex, ey)}))
    if "among" in doc:
        items = _entries(path, "among", doc["among"])
        for i, ex in enumerate(items):
            for j in range(i + 1, len(items)):
                fields = {**defaults, **_join(ex, items[j]), "symmetric": True}
                out.append((f"among[{i}] with among[{j}]", fields))
    return out


def _check_keys(path: Path, where: str, item, allowed) -> None:
    if not isinstance(item, dict):
        raise PSMDInputError(f"{path}: {where} must be a mapping.")
    for key in item:
        if key not in allowed:
            raise PSMDInputError(
                f"{path}: {where}: unknown key {key!r}; allowed: {', '.join(allowed)}."
            )


def _entries(path: Path, name: str, items) -> list[dict]:
    """A list of paths or {path, key, label} mappings, as mappings."""
    if not isinstance(items, list) or not items:
        raise PSMDInputError(f"{path}: '{name}' must be a non-empty list of files.")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"path": item}
        _check_keys(path, f"{name}[{i}]", item, YAML_ENTRY)
        if "path" not in item:
            raise PSMDInputError(f"{path}: {name}[{i}] has no 'path'.")
        out.append(item)
    return out


def _join(ex: dict, ey: dict) -> dict:
    """Pair fields from two list entries; absent keys keep the defaults."""
    fields = {"x": ex["path"], "y": ey["path"]}
    for side, entry in (("x", ex), ("y", ey)):
        if "key" in entry:
            fields[f"{side}_key"] = entry["key"]
        if "label" in entry:
            fields[f"label_{side}"] = entry["label"]
    return fields


def _spec(manifest: Path, where: str, fields: dict) -> PairSpec:
    """Check one pair's fields and resolve its paths."""
    at = f"{manifest}: {where}"
    for side in ("x", "y"):
        if not fields.get(side):
            raise PSMDInputError(f"{at}: no {side} file given.")
    x, y = (_resolve(manifest, at, fields[s]) for s in ("x", "y"))
    x_key, y_key = (_text(fields.get(f"{s}_key")) for s in ("x", "y"))
    cost = _text(fields.get("cost")) or "correlation"
    if cost not in COSTS:
        raise PSMDInputError(
            f"{at}: cost {cost!r} is not known; allowed: {', '.join(COSTS)}."
        )
    label_x = _text(fields.get("label_x")) or _label(manifest, x, x_key)
    label_y = _text(fields.get("label_y")) or _label(manifest, y, y_key)
    return PairSpec(
        name=_text(fields.get("name")) or f"{label_x} vs {label_y}",
        x=x,
        y=y,
        x_key=x_key,
        y_key=y_key,
        cost=cost,
        masses=_masses(at, fields.get("masses")),
        label_x=label_x,
        label_y=label_y,
        symmetric=bool(fields.get("symmetric", False)),
        where=where,
    )


def _text(value) -> str | None:
    """A manifest cell as a stripped string, or None when empty."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _resolve(manifest: Path, at: str, value) -> str:
    p = Path(os.path.expanduser(str(value).strip()))
    if not p.is_absolute():
        p = manifest.parent / p
    if not p.is_file():
        raise PSMDInputError(f"{at}: file {p} not found.")
    return str(p.resolve())


def _label(manifest: Path, file: str, key: str | None) -> str:
    """Default axis label: the path relative to the manifest, without suffix."""
    rel = os.path.relpath(file, manifest.parent.resolve())
    stem = Path(rel).with_suffix("").as_posix()
    return f"{stem}[{key}]" if key else stem


def _masses(at: str, value) -> tuple[float, ...]:
    """Parse ``0.5;0.8`` or a YAML list into sorted unique masses in (0, 1]."""
    if value is None or value == "":
        return ()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        items = [c for c in str(value).replace(";", " ").split() if c]
    out = set()
    for item in items:
        try:
            m = float(item)
        except (TypeError, ValueError):
            m = math.nan
        if isinstance(item, bool) or not (math.isfinite(m) and 0.0 < m <= 1.0):
            raise PSMDInputError(
                f"{at}: mass {item!r} is not allowed; masses are transported "
                "masses s with 0 < s <= 1, separated by ';'."
            )
        out.add(m)
    return tuple(sorted(out))


def _check_unique(manifest: Path, specs: list[PairSpec]) -> None:
    seen: dict[str, str] = {}
    for s in specs:
        if s.name in seen:
            raise PSMDInputError(
                f"{manifest}: pair name {s.name!r} is used twice ({seen[s.name]} "
                f"and {s.where}); names must be unique (set a 'name')."
            )
        seen[s.name] = s.where
