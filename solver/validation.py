"""Check a pair of representations and its companions before anything is solved.

:func:`check_pair` is the one gate the CLI, the app and the notebook entry
point pass user data through. Each problem is a
:class:`~solver.exceptions.PSMDInputError` whose one-line message names what
was wrong and what is allowed. Constant units are not an error: they are
excluded later, with a warning, by :func:`solver.preprocessing.prepare`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np

from solver.exceptions import PSMDInputError
from solver.io import check_names
from solver.preprocessing import as_numeric


@dataclass(frozen=True, eq=False)
class Pair:
    """Two checked representations of the same stimuli, with companions.

    Attributes
    ----------
    X, Y : ndarray of float64 of shape (n_stimuli, n_x), (n_stimuli, n_y)
    images : ndarray of shape (n_stimuli, H, W[, 3]) or None
    coords_x, coords_y : ndarray of shape (n_x, 3), (n_y, 3) or None
    names_x, names_y : list of str or None
    """

    X: np.ndarray
    Y: np.ndarray
    images: np.ndarray | None = None
    coords_x: np.ndarray | None = None
    coords_y: np.ndarray | None = None
    names_x: list[str] | None = None
    names_y: list[str] | None = None


def check_matrix(A, label: str, *, allow_nonfinite: bool = False) -> np.ndarray:
    """Return ``A`` as a 2-D float64 stimuli × units matrix or raise.

    Parameters
    ----------
    A : array-like or torch tensor
    label : str
        How the message names it ("X", or a file name).
    allow_nonfinite : bool, default=False
        Let NaN/Inf through (their units are then excluded by ``prepare``).

    Raises
    ------
    PSMDInputError
        Objects or text, not 2-D, empty, fewer than two stimuli or units,
        NaN or infinite values.
    """
    A = as_numeric(A, label)
    if A.ndim == 1:
        raise PSMDInputError(
            f"{label} is 1-D with shape {A.shape}; allowed: a 2-D stimuli x units "
            "matrix (one unit is A[:, None], but at least 2 units are needed)."
        )
    if A.ndim != 2:
        raise PSMDInputError(
            f"{label} has {A.ndim} dimensions with shape {A.shape}; allowed: a "
            "2-D stimuli x units matrix (flatten or average the extra axes first)."
        )
    if A.size == 0:
        raise PSMDInputError(f"{label} is empty (shape {A.shape}).")
    if A.shape[0] < 2:
        raise PSMDInputError(
            f"{label} has {A.shape[0]} stimulus (row); at least 2 are required."
        )
    if A.shape[1] < 2:
        raise PSMDInputError(
            f"{label} has {A.shape[1]} unit (column); at least 2 are required."
        )
    A = A.astype(np.float64, copy=False)
    if not allow_nonfinite:
        bad = ~np.isfinite(A)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise PSMDInputError(
                f"{label} holds {int(bad.sum())} NaN or infinite value(s) (first at "
                f"stimulus {i}, unit {j}); allowed: finite numbers only; remove or "
                "impute them."
            )
    return A


def check_pair(
    X,
    Y,
    *,
    images=None,
    coords_x=None,
    coords_y=None,
    names_x=None,
    names_y=None,
    labels: tuple[str, str] = ("X", "Y"),
    allow_nonfinite: bool = False,
) -> Pair:
    """Check two representations of the same stimuli and their companions.

    Parameters
    ----------
    X, Y : array-like of shape (n_stimuli, n_x), (n_stimuli, n_y)
    images : array-like of shape (n_stimuli, H, W) or (n_stimuli, H, W, 3), optional
        One image per stimulus (row).
    coords_x, coords_y : array-like of shape (n_x, 3), (n_y, 3), optional
        One position per unit.
    names_x, names_y : sequence of str, optional
        One unique name per unit.
    labels : (str, str)
        How messages name X and Y (e.g. their file names).
    allow_nonfinite : bool, default=False

    Returns
    -------
    Pair

    Raises
    ------
    PSMDInputError
        Any of :func:`check_matrix`'s cases, different numbers of stimuli,
        an image count that is not the number of stimuli, a coordinate or
        name count that is not the number of units, duplicate names.
    """
    lx, ly = labels
    X = check_matrix(X, lx, allow_nonfinite=allow_nonfinite)
    Y = check_matrix(Y, ly, allow_nonfinite=allow_nonfinite)
    if X.shape[0] != Y.shape[0]:
        raise PSMDInputError(
            f"{lx} has {X.shape[0]} stimuli (rows) and {ly} has {Y.shape[0]}; "
            "both must hold the same stimuli in the same order."
        )
    n = X.shape[0]
    if images is not None:
        images = as_numeric(images, "images")
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise PSMDInputError(
                f"images have shape {images.shape}; allowed: ({n}, H, W) or "
                f"({n}, H, W, 3)."
            )
        if len(images) != n:
            raise PSMDInputError(
                f"{len(images)} images for {n} stimuli; give one image per "
                "stimulus (row), in the same order."
            )
    out = {}
    for side, coords, names, A, label in (
        ("x", coords_x, names_x, X, lx),
        ("y", coords_y, names_y, Y, ly),
    ):
        if coords is not None:
            coords = np.asarray(coords, dtype=np.float64)
            if coords.ndim != 2 or coords.shape[1] != 3:
                raise PSMDInputError(
                    f"coordinates of {label} have shape {coords.shape}; allowed: "
                    f"({A.shape[1]}, 3)."
                )
            if len(coords) != A.shape[1]:
                raise PSMDInputError(
                    f"{len(coords)} coordinates for {A.shape[1]} units of {label}; "
                    "give one position per unit (column)."
                )
            if not np.isfinite(coords).all():
                raise PSMDInputError(
                    f"coordinates of {label} hold NaN or infinite values."
                )
        if names is not None:
            names = check_names(names, f"unit names of {label}")
            if len(names) != A.shape[1]:
                raise PSMDInputError(
                    f"{len(names)} unit names for {A.shape[1]} units of {label}; "
                    "give one name per unit (column)."
                )
        out[f"coords_{side}"] = coords
        out[f"names_{side}"] = names
    return Pair(X=X, Y=Y, images=images, **out)


PAIR_KEYS = ("X", "Y", "images", "coords_x", "coords_y", "names_x", "names_y")


def load_pair(
    x,
    y=None,
    *,
    key_x: str | None = None,
    key_y: str | None = None,
    mask_x=None,
    mask_y=None,
    images=None,
    coords_x=None,
    coords_y=None,
    names_x=None,
    names_y=None,
    allow_nonfinite: bool = False,
) -> Pair:
    """Read a pair from files, with companions, and check it.

    Parameters
    ----------
    x : str or Path
        X's file (any format of :mod:`solver.io`), or, with ``y=None``, one
        *pair file*: an ``.npz`` holding arrays ``X`` and ``Y`` and optionally
        ``images``, ``coords_x``, ``coords_y``, ``names_x``, ``names_y``
        (names as unicode string arrays, never objects).
    y : str or Path, optional
        Y's file.
    key_x, key_y : str, optional
        Array inside X's / Y's file.
    mask_x, mask_y : str or Path, optional
        NIfTI masks (4-D NIfTI inputs).
    images : str or Path, optional
        Folder of images or ``.npz``/``.npy`` (see :func:`solver.io.load_images`).
    coords_x, coords_y : str or Path, optional
        Unit positions (n_units, 3); NIfTI inputs bring their own.
    names_x, names_y : str or Path, optional
        Unit names (.txt, .json, .csv); CSV headers and Parquet columns bring
        their own.
    allow_nonfinite : bool, default=False

    Returns
    -------
    Pair

    Raises
    ------
    PSMDInputError
        Any unreadable file, or any case of :func:`check_pair`.
    """
    from pathlib import Path

    from solver import io

    if y is None:
        if io.suffix_of(x) != ".npz":
            raise PSMDInputError(
                f"{x}: give two files (X then Y) or one .npz pair file holding "
                "arrays X and Y."
            )
        options = {"key_x": key_x, "key_y": key_y, "mask_x": mask_x, "mask_y": mask_y}
        given = [name for name, value in options.items() if value]
        if given:
            raise PSMDInputError(
                f"{x}: a pair file names its arrays X and Y itself; "
                f"{', '.join(given)} apply to two files (X then Y) only."
            )
        found = _read_pair_npz(Path(x))
        loaded = {}
        labels = ("X", "Y")
    else:
        lx = io.load_representation(x, key=key_x, mask=mask_x)
        ly = io.load_representation(y, key=key_y, mask=mask_y)
        found = {
            "X": lx.data,
            "Y": ly.data,
            "coords_x": lx.coords,
            "coords_y": ly.coords,
            "names_x": lx.unit_names,
            "names_y": ly.unit_names,
        }
        loaded = {}
        labels = (Path(x).name, Path(y).name)
    if images is not None:
        loaded["images"] = io.load_images(images)
    for side, c, n in (("x", coords_x, names_x), ("y", coords_y, names_y)):
        if c is not None:
            loaded[f"coords_{side}"] = io.load_coords(c)
        if n is not None:
            loaded[f"names_{side}"] = io.load_names(n)
    found.update(loaded)
    return check_pair(
        found["X"],
        found["Y"],
        images=found.get("images"),
        coords_x=found.get("coords_x"),
        coords_y=found.get("coords_y"),
        names_x=found.get("names_x"),
        names_y=found.get("names_y"),
        labels=labels,
        allow_nonfinite=allow_nonfinite,
    )


def _read_pair_npz(path) -> dict:
    """Arrays of a pair file, never unpickling."""
    from solver import io

    io._check_file(path)
    if not zipfile.is_zipfile(path):
        raise PSMDInputError(f"{path}: not a readable .npz file (not a zip archive).")
    out = {}
    with io.reading(path, ".npz"), np.load(path, allow_pickle=False) as z:
        names = list(z.files)
        for key in ("X", "Y"):
            if key not in names:
                raise PSMDInputError(
                    f"{path}: no array named {key!r} (present: "
                    f"{', '.join(names) or 'none'}); a pair file holds arrays "
                    "X and Y."
                )
        for key in PAIR_KEYS:
            if key in names:
                out[key] = z[key]
    for key in ("names_x", "names_y"):
        if key in out:
            if out[key].dtype.kind not in "US":
                raise PSMDInputError(f"{path}: {key} must be an array of strings.")
            out[key] = [str(s) for s in out[key].tolist()]
    return out
