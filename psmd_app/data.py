"""Datasets the app can show, and the prepared problems built from them.

A *problem* is one view (layer or region) of one dataset with one cost,
prepared once by :func:`solver.preprocessing.prepare` and named by a SHA-256
key over the data and the cost. Keys never use Python's ``hash()``, which is
salted per process, so a key means the same thing in every worker and after a
restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solver.preprocessing import Prepared, prepare

logger = logging.getLogger(__name__)

# Bump when what is cached under a key changes meaning.
CACHE_VERSION = "psmd-app-1"


def sha256_json(obj) -> str:
    """SHA-256 hex digest of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def array_digest(array: np.ndarray) -> str:
    """SHA-256 hex digest of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


@dataclass(frozen=True)
class DatasetInfo:
    """What the controls need to know about a dataset.

    Attributes
    ----------
    name, title, kind, description : str
    views : tuple of str
        Layers or regions, first = default.
    names : (str, str)
        What X and Y are (e.g. "CNN seed 1", "subject-1").
    sizes : dict of str to (int, int)
        Units of X and Y in each view.
    has_images, has_coords : bool
    """

    name: str
    title: str
    kind: str
    description: str
    views: tuple[str, ...]
    names: tuple[str, str]
    sizes: dict
    has_images: bool
    has_coords: bool


@dataclass(frozen=True, eq=False)
class Problem:
    """One view of a dataset with one cost, ready to solve.

    Attributes
    ----------
    dataset, view, cost_name : str
    key : str
        SHA-256 of the data, the view and the cost.
    data_key : str
        SHA-256 of the data and the view only (shared by both costs).
    prepared : Prepared
        Centred kept units and their cost matrix.
    raw_x, raw_y : ndarray of shape (n_stimuli, n_x_in), (n_stimuli, n_y_in)
        The responses as loaded (for top-activating stimuli).
    labels_x, labels_y : list of str
        A display name per kept unit.
    coords_x, coords_y : ndarray of shape (n_x, 3), (n_y, 3) or None
        MNI millimetres of the kept units.
    names : (str, str)
    digest_x, digest_y : str
        SHA-256 of the loaded X and Y (provenance).
    """

    dataset: str
    view: str
    cost_name: str
    key: str
    data_key: str
    prepared: Prepared
    raw_x: np.ndarray
    raw_y: np.ndarray
    labels_x: list
    labels_y: list
    coords_x: np.ndarray | None
    coords_y: np.ndarray | None
    names: tuple[str, str]
    digest_x: str
    digest_y: str

    @property
    def n_x(self) -> int:
        """Kept units of X."""
        return self.prepared.n_x

    @property
    def n_y(self) -> int:
        """Kept units of Y."""
        return self.prepared.n_y

    @property
    def keep(self) -> dict:
        """Original column index of each kept unit, by side."""
        return {"x": self.prepared.keep_x, "y": self.prepared.keep_y}

    def kept_position(self, side: str, unit: int) -> int | None:
        """Position among kept units of an original column index (None if excluded)."""
        keep = self.keep[side]
        pos = np.searchsorted(keep, unit)
        return int(pos) if pos < keep.size and keep[pos] == unit else None


def _unit_labels(view, side: str, keep: np.ndarray) -> list[str]:
    labels = getattr(view, f"labels_{side}")
    out = []
    for j in keep:
        extra = f" ({labels[j]})" if labels is not None else ""
        out.append(f"unit {int(j)}{extra}")
    return out


class Catalog:
    """The datasets on offer, loaded on first use and kept in memory.

    Parameters
    ----------
    loaders : dict of str to callable
        Dataset name to a zero-argument function returning a
        ``sample_data.Sample``-like object (``views``, ``images``, ``kind``,
        ``title``, ``description``, ``x_name``, ``y_name``).
    max_problems : int, default=8
        Prepared problems kept in memory (least recently used dropped first).
    """

    def __init__(self, loaders: dict, *, max_problems: int = 8) -> None:
        self._loaders = dict(loaders)
        self._samples: dict = {}
        self._infos: dict[str, DatasetInfo] = {}
        self._problems: OrderedDict = OrderedDict()
        self._digests: dict = {}
        self._max_problems = max_problems
        self._lock = threading.RLock()

    @classmethod
    def from_samples(cls, names=None, *, first: dict | None = None) -> Catalog:
        """Catalogue of the shipped samples (``sample_data``).

        ``first`` maps more dataset names to loaders, listed before the samples
        (the user's own files).
        """
        import sample_data

        names = list(sample_data.list_samples() if names is None else names)
        loaders = dict(first or {})
        loaders.update({name: _sample_loader(name) for name in names})
        return cls(loaders)

    @property
    def names(self) -> list[str]:
        """Dataset names in the order given."""
        return list(self._loaders)

    def sample(self, name: str):
        """The loaded dataset ``name`` (loaded once)."""
        with self._lock:
            if name not in self._samples:
                if name not in self._loaders:
                    raise KeyError(f"unknown dataset {name!r}")
                start = time.perf_counter()
                self._samples[name] = self._loaders[name]()
                logger.info(
                    "loaded dataset %s in %.2f s", name, time.perf_counter() - start
                )
            return self._samples[name]

    def info(self, name: str) -> DatasetInfo:
        """Summary of a dataset for the controls."""
        with self._lock:
            if name not in self._infos:
                s = self.sample(name)
                views = tuple(s.views)
                coords = any(v.coords_x is not None for v in s.views.values())
                self._infos[name] = DatasetInfo(
                    name=name,
                    title=s.title,
                    kind=s.kind,
                    description=s.description,
                    views=views,
                    names=(s.x_name, s.y_name),
                    sizes={
                        v: (s.views[v].X.shape[1], s.views[v].Y.shape[1]) for v in views
                    },
                    has_images=s.images is not None,
                    has_coords=coords,
                )
            return self._infos[name]

    def views(self) -> dict[str, tuple[str, ...]]:
        """Every dataset name with its views (loads every dataset)."""
        return {name: self.info(name).views for name in self.names}

    def problem(self, dataset: str, view: str, cost: str) -> Problem:
        """Prepare (or fetch) one view of a dataset with one cost.

        Raises
        ------
        KeyError
            Unknown dataset or view.
        solver.exceptions.PSMDInputError
            The data cannot be compared (see :func:`solver.preprocessing.prepare`).
        """
        with self._lock:
            cached = self._problems.get((dataset, view, cost))
            if cached is not None:
                self._problems.move_to_end((dataset, view, cost))
                return cached
            problem = self._build(dataset, view, cost)
            self._problems[(dataset, view, cost)] = problem
            while len(self._problems) > self._max_problems:
                self._problems.popitem(last=False)
            return problem

    def _build(self, dataset: str, view: str, cost: str) -> Problem:
        s = self.sample(dataset)
        if view not in s.views:
            raise KeyError(f"dataset {dataset!r} has no view {view!r}")
        v = s.views[view]
        start = time.perf_counter()
        prepared = prepare(v.X, v.Y, cost, warn=False)
        if (dataset, view) not in self._digests:
            self._digests[(dataset, view)] = (array_digest(v.X), array_digest(v.Y))
        dx, dy = self._digests[(dataset, view)]
        data_key = sha256_json([CACHE_VERSION, dataset, view, dx, dy])
        coords = {}
        for side, keep in (("x", prepared.keep_x), ("y", prepared.keep_y)):
            c = getattr(v, f"coords_{side}")
            coords[side] = None if c is None else np.asarray(c, dtype=float)[keep]
        problem = Problem(
            dataset=dataset,
            view=view,
            cost_name=cost,
            key=sha256_json([data_key, cost]),
            data_key=data_key,
            prepared=prepared,
            raw_x=v.X,
            raw_y=v.Y,
            labels_x=_unit_labels(v, "x", prepared.keep_x),
            labels_y=_unit_labels(v, "y", prepared.keep_y),
            coords_x=coords["x"],
            coords_y=coords["y"],
            names=(s.x_name, s.y_name),
            digest_x=dx,
            digest_y=dy,
        )
        logger.info(
            "prepared %s / %s (%s cost): %d x %d units, %d + %d excluded, %.2f s",
            dataset,
            view,
            cost,
            problem.n_x,
            problem.n_y,
            len(prepared.excluded_x),
            len(prepared.excluded_y),
            time.perf_counter() - start,
        )
        return problem


def _sample_loader(name: str):
    def load():
        import sample_data

        return sample_data.load(name)

    return load


OWN_DATASET = "own"


def own_files_loader(paths: list[str]):
    """Loader of the user's own pair of representations (``psmd-app --data``).

    Parameters
    ----------
    paths : list of str
        Either two files, X then Y (``.npy``, ``.npz``, ``.csv``, ``.tsv``;
        rows = stimuli, columns = units), or one ``.npz`` holding arrays ``X``
        and ``Y`` and optionally ``images`` (one image per stimulus, shape
        ``(n_stimuli, H, W)`` or ``(n_stimuli, H, W, 3)``).

    Returns
    -------
    callable
        Zero-argument function returning a ``sample_data.Sample``.

    Raises
    ------
    solver.exceptions.PSMDInputError
        When called: unreadable or pickled files, missing arrays, arrays that
        are not 2-D, different numbers of stimuli, or images that do not match
        the stimuli. Values (NaN, constant units) are checked later by
        :func:`solver.preprocessing.prepare`.
    """
    paths = [str(p) for p in paths]

    def load():
        from sample_data import Sample, View
        from solver.exceptions import PSMDInputError
        from solver.io import load_matrix

        images = None
        if len(paths) == 2:
            X, Y = (load_matrix(p) for p in paths)
            names = tuple(Path(p).stem for p in paths)
        elif len(paths) == 1 and paths[0].lower().endswith(".npz"):
            X, Y, images = _load_pair_npz(Path(paths[0]))
            names = ("X", "Y")
        else:
            raise PSMDInputError(
                f"--data {' '.join(paths)}: give two files (X then Y) or one .npz "
                "holding arrays X and Y."
            )
        for label, arr in (("X", X), ("Y", Y)):
            if arr.ndim != 2:
                raise PSMDInputError(
                    f"{label} has shape {arr.shape}; allowed: a 2-D array "
                    "(stimuli x units)."
                )
        if X.shape[0] != Y.shape[0]:
            raise PSMDInputError(
                f"X has {X.shape[0]} stimuli (rows), Y {Y.shape[0]}; both must "
                "hold the same stimuli in the same order."
            )
        if images is not None and (images.ndim not in (3, 4) or len(images) != len(X)):
            raise PSMDInputError(
                f"images has shape {images.shape}; allowed: one image per stimulus, "
                f"({len(X)}, H, W) or ({len(X)}, H, W, 3)."
            )
        title = f"Your data: {names[0]} vs {names[1]}"
        return Sample(
            name=OWN_DATASET,
            title=title,
            kind="own",
            description=f"{X.shape[1]} units of {names[0]} and {Y.shape[1]} of "
            f"{names[1]} over {X.shape[0]} stimuli, from {', '.join(paths)}.",
            views={"all units": View(X=X, Y=Y)},
            images=images,
            x_name=names[0],
            y_name=names[1],
        )

    return load


def _load_pair_npz(path: Path):
    """X, Y and optional images from one ``.npz`` (never unpickling)."""
    from solver.exceptions import PSMDInputError
    from solver.io import load_matrix

    arrays = {}
    for key in ("X", "Y"):
        try:
            arrays[key] = load_matrix(path, key=key)
        except PSMDInputError as err:
            raise PSMDInputError(f"{err} A pair file holds arrays X and Y.") from None
    images = None
    with np.load(path, allow_pickle=False) as npz:
        if "images" in npz.files:
            try:
                images = npz["images"]
            except ValueError:
                raise PSMDInputError(
                    f"{path}: images holds Python objects, which are never loaded."
                ) from None
    return arrays["X"], arrays["Y"], images
