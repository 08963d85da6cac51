"""Read a representation matrix from a file, safely.

Pickles are never loaded: ``.npy``/``.npz`` are read with
``allow_pickle=False`` so object arrays are refused before any code runs.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from solver.exceptions import PSMDInputError

FORMATS = (".npy", ".npz", ".csv", ".tsv")


def load_matrix(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """Load a stimuli × units matrix from ``.npy``, ``.npz``, ``.csv`` or ``.tsv``.

    Parameters
    ----------
    path : str or Path
    key : str, optional
        Array name inside an ``.npz`` holding several arrays.

    Returns
    -------
    ndarray
        As stored (validation of shape and values happens in
        :func:`solver.preprocessing.prepare`).

    Raises
    ------
    PSMDInputError
        Missing, empty, corrupt or pickled files, unknown formats, text in a
        CSV, or an ambiguous ``.npz``.
    """
    path = Path(path)
    if not path.is_file():
        raise PSMDInputError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise PSMDInputError(f"{path}: the file is empty.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            return _load_npz(path, key)
        if suffix in (".csv", ".tsv"):
            return _load_text(path, "," if suffix == ".csv" else "\t")
    except PSMDInputError:
        raise
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise PSMDInputError(
                f"{path}: holds Python objects (pickled data), which are never "
                "loaded; save a plain numeric array."
            ) from None
        raise PSMDInputError(f"{path}: not a readable {suffix} file ({err}).") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise PSMDInputError(f"{path}: not a readable {suffix} file ({err}).") from None
    raise PSMDInputError(
        f"{path}: format {suffix or '(none)'} is not supported; "
        f"allowed: {', '.join(FORMATS)}."
    )


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        names = list(z.files)
        if key is None:
            if len(names) != 1:
                raise PSMDInputError(
                    f"{path}: holds {len(names)} arrays ({', '.join(names)}); "
                    "choose one with a key."
                )
            key = names[0]
        if key not in names:
            raise PSMDInputError(
                f"{path}: no array named {key!r}; present: {', '.join(names)}."
            )
        return z[key]


def _load_text(path: Path, sep: str) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    if not lines:
        raise PSMDInputError(f"{path}: the file holds no rows.")
    # A header row is allowed when none of its cells is a number.
    start = 0 if any(_is_number(c) for c in lines[0].split(sep)) else 1
    rows = []
    for n, line in enumerate(lines[start:], start=start + 1):
        cells = line.split(sep)
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            bad = next(c for c in cells if not _is_number(c))
            raise PSMDInputError(
                f"{path}: row {n} holds text {bad.strip()[:30]!r}; "
                "only numbers are allowed below an optional header."
            ) from None
    if not rows:
        raise PSMDInputError(f"{path}: the file holds a header but no numbers.")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise PSMDInputError(f"{path}: rows have different numbers of columns.")
    return np.asarray(rows, dtype=np.float64)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
