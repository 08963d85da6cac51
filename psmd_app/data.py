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

from solver.exceptions import PSMDInputError
from solver.preprocessing import Prepared, prepare

logger = logging.getLogger(__name__)

# Bump when what is cached under a key changes meaning.
CACHE_VERSION = "psmd-app-1"

OWN_DATASET = "own"
USER_PREFIX = "user-"
FOLDER_PREFIX = "folder:"
# Most datasets a server keeps from uploads and opened files (all sessions).
MAX_USER_DATASETS = 32
# Pair files listed from a data folder.
MAX_FOLDER_PAIRS = 200


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

    def __init__(
        self,
        loaders: dict,
        *,
        max_problems: int = 8,
        max_user: int = MAX_USER_DATASETS,
    ) -> None:
        self._loaders = dict(loaders)
        self._user: OrderedDict = OrderedDict()
        self._max_user = max_user
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
        """Names of the datasets every session sees, in the order given."""
        return list(self._loaders)

    def __contains__(self, name: str) -> bool:
        return name in self._loaders or name in self._user

    def add_user(self, sample, session: str) -> str:
        """Hold one session's dataset (an upload or an opened file).

        The name is a SHA-256 over the session's secret token and the data,
        so it is unguessable by other sessions, and the same upload in the
        same session gets the same name. The oldest user datasets are dropped
        beyond ``max_user`` (their sessions are told to upload again).

        Returns
        -------
        str
            The dataset name (``user-`` and 20 hex digits).
        """
        digests = [
            (array_digest(v.X), array_digest(v.Y)) for v in sample.views.values()
        ]
        name = USER_PREFIX + sha256_json([session, sample.title, digests])[:20]
        with self._lock:
            if name not in self._user:
                self._user[name] = sample
                self._samples[name] = sample
                self._infos.pop(name, None)
                logger.info(
                    "holding dataset %s (%s) for one session", name, sample.title
                )
            self._user.move_to_end(name)
            while len(self._user) > self._max_user:
                old, _ = self._user.popitem(last=False)
                self._forget(old)
        return name

    def _forget(self, name: str) -> None:
        self._samples.pop(name, None)
        self._infos.pop(name, None)
        for key in [k for k in self._problems if k[0] == name]:
            del self._problems[key]
        self._digests = {k: v for k, v in self._digests.items() if k[0] != name}
        logger.info("dropped dataset %s (too many held)", name)

    def sample(self, name: str):
        """The loaded dataset ``name`` (loaded once)."""
        with self._lock:
            if name not in self._samples:
                if name.startswith(USER_PREFIX):
                    raise PSMDInputError(
                        "this dataset is no longer held by the server (it was "
                        "opened in an earlier run, or dropped to make room); "
                        "upload or open it again."
                    )
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

    def _hint(self, name: str, what: str):
        """What a loader declares without loading (``psmd_title``, ``psmd_views``)."""
        if name in self._samples:
            return None
        return getattr(self._loaders.get(name), f"psmd_{what}", None)

    def title(self, name: str) -> str:
        """A dataset's title; from its loader's hint when not loaded yet."""
        return self._hint(name, "title") or self.info(name).title

    def views(self) -> dict[str, tuple[str, ...]]:
        """Every dataset name with its views.

        Datasets whose loader declares its views (data-folder pair files) are
        not loaded for this; user datasets are included while held.
        """
        with self._lock:
            held = list(self._user)
        return {
            name: tuple(self._hint(name, "views") or self.info(name).views)
            for name in [*self.names, *held]
        }

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


def pair_to_sample(pair, *, name: str, title: str, description: str, names=("X", "Y")):
    """A checked :class:`solver.validation.Pair` as a one-view ``Sample``."""
    from sample_data import Sample, View

    def labels(values):
        return None if values is None else np.asarray(values, dtype=str)

    view = View(
        X=pair.X,
        Y=pair.Y,
        labels_x=labels(pair.names_x),
        labels_y=labels(pair.names_y),
        coords_x=pair.coords_x,
        coords_y=pair.coords_y,
    )
    return Sample(
        name=name,
        title=title,
        kind="own",
        description=description,
        views={"all units": view},
        images=pair.images,
        x_name=names[0],
        y_name=names[1],
    )


def _describe(pair, source: str) -> str:
    extras = [
        what
        for what, value in (
            ("images", pair.images),
            (
                "coordinates",
                pair.coords_x if pair.coords_x is not None else pair.coords_y,
            ),
            ("unit names", pair.names_x or pair.names_y),
        )
        if value is not None
    ]
    more = f" With {', '.join(extras)}." if extras else ""
    return (
        f"{pair.X.shape[1]} units of X and {pair.Y.shape[1]} of Y over "
        f"{pair.X.shape[0]} stimuli, from {source}.{more}"
    )


def pair_loader(pair, *, title: str = "Your data", source: str = "memory"):
    """Loader of an in-memory pair (notebooks: :func:`psmd_app.show`)."""

    def load():
        return pair_to_sample(
            pair, name=OWN_DATASET, title=title, description=_describe(pair, source)
        )

    return load


def own_files_loader(paths: list[str], **companions):
    """Loader of the user's own pair of representations (``psmd-app --data``).

    Parameters
    ----------
    paths : list of str
        Either two files, X then Y (any format of :mod:`solver.io`; rows =
        stimuli, columns = units), or one ``.npz`` pair file holding arrays
        ``X`` and ``Y`` and optionally ``images``, ``coords_x``, ``coords_y``,
        ``names_x``, ``names_y``.
    **companions
        Passed to :func:`solver.validation.load_pair` (``images``,
        ``coords_x``, ``names_x``, ``mask_x``, ``key_x``, ... as paths).

    Returns
    -------
    callable
        Zero-argument function returning a ``sample_data.Sample``.

    Raises
    ------
    solver.exceptions.PSMDInputError
        When called: any unreadable or pickled file, or any case of
        :func:`solver.validation.check_pair`. Constant units are excluded
        later, with a notice, by :func:`solver.preprocessing.prepare`.
    """
    paths = [str(p) for p in paths]

    def load():
        from solver.validation import load_pair

        if len(paths) not in (1, 2):
            raise PSMDInputError(
                f"--data {' '.join(paths)}: give two files (X then Y) or one .npz "
                "holding arrays X and Y."
            )
        pair = load_pair(*paths, **companions)
        names = tuple(Path(p).stem for p in paths) if len(paths) == 2 else ("X", "Y")
        return pair_to_sample(
            pair,
            name=OWN_DATASET,
            title=f"Your data: {names[0]} vs {names[1]}",
            description=_describe(pair, ", ".join(paths)),
            names=names,
        )

    return load


class DataFolder:
    """The folder the app may open files from (``psmd-app --data-dir``).

    Every path a browser sends is taken relative to this folder and refused
    when it leads outside it (``..``, absolute paths, links pointing out).
    """

    def __init__(self, root: str | Path) -> None:

        root = Path(root).expanduser()
        if not root.is_dir():
            raise PSMDInputError(f"--data-dir {root}: not a folder.")
        self.root = root.resolve()

    def resolve(self, relative: str) -> Path:
        """The file or folder ``relative`` names inside the data folder.

        Raises
        ------
        PSMDInputError
            Empty, absolute or escaping paths, or nothing there.
        """

        text = (relative or "").strip()
        if not text:
            raise PSMDInputError("no path given; name a file inside the data folder.")
        if "\x00" in text or Path(text).is_absolute() or text.startswith("~"):
            raise PSMDInputError(
                "only paths relative to the data folder are allowed (no leading "
                "/ or ~)."
            )
        target = (self.root / text).resolve()
        if not target.is_relative_to(self.root):
            raise PSMDInputError(
                f"{text!r} leads outside the data folder; only files inside it "
                "can be opened."
            )
        if not target.exists():
            raise PSMDInputError(f"{text!r}: no such file in the data folder.")
        return target

    def pair_files(self) -> list[str]:
        """Relative paths of the ``.npz`` pair files (arrays X and Y) inside."""
        found = []
        for path in sorted(self.root.rglob("*.npz")):
            if len(found) >= MAX_FOLDER_PAIRS:
                break
            try:
                resolved = path.resolve()
                if not resolved.is_relative_to(self.root):
                    continue
                with np.load(resolved, allow_pickle=False) as z:
                    if {"X", "Y"} <= set(z.files):
                        found.append(str(path.relative_to(self.root)))
            except (OSError, ValueError, EOFError):
                continue
        return found

    def loader(self, relative: str):
        """Loader of a pair file listed by :meth:`pair_files`."""
        path = self.resolve(relative)

        title = f"Folder: {relative}"

        def load():
            from solver.validation import load_pair

            pair = load_pair(path)
            return pair_to_sample(
                pair,
                name=FOLDER_PREFIX + relative,
                title=title,
                description=_describe(pair, relative),
            )

        # Listed without loading: a folder may hold many large pairs.
        load.psmd_title = title
        load.psmd_views = ("all units",)
        return load


def decode_upload(filename: str, contents: str, max_bytes: int) -> bytes:
    """Bytes of one ``dcc.Upload`` file (a base64 data URL), size-checked.

    Raises
    ------
    PSMDInputError
        Not a data URL, not base64, or over ``max_bytes``.
    """
    import base64
    import binascii

    if not isinstance(contents, str) or "," not in contents:
        raise PSMDInputError(f"{filename}: the upload arrived incomplete; try again.")
    header, body = contents.split(",", 1)
    if len(body) * 3 // 4 > max_bytes:
        raise PSMDInputError(
            f"{filename}: larger than the upload limit of {max_bytes / 1e6:.0f} MB; "
            "open it from the data folder (--data-dir) or raise --max-upload-mb."
        )
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise PSMDInputError(f"{filename}: the upload is not valid base64.") from None


def safe_name(filename: str) -> str:
    """A file name without folders or odd characters, keeping its suffix."""
    import re

    base = Path(str(filename).replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".") or "upload"
    return base[:120]


# Companions of X and Y, by the name an upload's file or an open-box option
# gives them; "mask" is the mask of both sides.
COMPANIONS = (
    "images", "mask", "mask_x", "mask_y", "coords_x", "coords_y",
    "names_x", "names_y",
)  # fmt: skip


def companion_arguments(given: dict) -> dict:
    """Keyword arguments of :func:`solver.validation.load_pair` from companions.

    Raises
    ------
    PSMDInputError
        ``mask`` given together with ``mask_x`` or ``mask_y``.
    """
    if "mask" in given and ("mask_x" in given or "mask_y" in given):
        raise PSMDInputError(
            "give one mask for both sides (mask) or one per side (mask_x, "
            "mask_y), not both."
        )
    arguments = {}
    for name, value in given.items():
        if name == "mask":
            arguments["mask_x"] = arguments["mask_y"] = value
        else:
            arguments[name] = value
    return arguments


def file_stem(filename: str) -> str:
    """A file's name without its format suffix (``sub-01.nii.gz`` → ``sub-01``)."""
    from solver.io import suffix_of

    name = Path(filename).name
    suffix = suffix_of(name)
    return name[: len(name) - len(suffix)] if suffix else name


def _upload_role(filename: str) -> str | None:
    """The companion an uploaded file is, by its name, or None for data."""
    stem = file_stem(safe_name(filename)).lower()
    return stem if stem in COMPANIONS else None


def load_uploads(files: list[tuple[str, bytes]]):
    """A checked pair from uploaded files: one pair ``.npz``, or X and Y.

    Parameters
    ----------
    files : list of (filename, bytes)
        One pair file, or two files taken in name order (first = X); besides
        them, companions named as in :data:`COMPANIONS` (``images.npz``,
        ``mask.nii.gz`` for both sides, ``names_x.txt``, ...).

    Returns
    -------
    pair : solver.validation.Pair
    names : (str, str)

    Raises
    ------
    PSMDInputError
        Not one or two data files, a companion twice, or any loader /
        validation problem.
    """
    import tempfile

    from solver.validation import load_pair

    files = sorted(files, key=lambda f: f[0])
    roles = [_upload_role(filename) for filename, _ in files]
    data = [f for f, role in zip(files, roles, strict=True) if role is None]
    if len(data) not in (1, 2):
        raise PSMDInputError(
            f"{len(data)} data files uploaded; give one pair file (.npz with X and "
            "Y) or two files, X and Y (taken in name order), plus any companions "
            f"named {', '.join(COMPANIONS)} (any extension)."
        )
    given = [role for role in roles if role is not None]
    twice = sorted({role for role in given if given.count(role) > 1})
    if twice:
        raise PSMDInputError(f"more than one uploaded file is the {twice[0]}.")
    with tempfile.TemporaryDirectory(prefix="psmd-upload-") as tmp:
        inputs, companions, paths = [], {}, []
        for i, ((filename, content), role) in enumerate(zip(files, roles, strict=True)):
            path = Path(tmp) / f"{i}-{safe_name(filename)}"
            path.write_bytes(content)
            paths.append(path)
            if role is None:
                inputs.append(path)
            else:
                companions[role] = path
        try:
            pair = load_pair(*inputs, **companion_arguments(companions))
        except PSMDInputError as err:
            # Name the file as the user knows it, not the temporary copy.
            text = str(err)
            for path, (filename, _) in zip(paths, files, strict=True):
                text = text.replace(str(path), safe_name(filename))
                text = text.replace(path.name, safe_name(filename))
            raise PSMDInputError(text) from None
    if len(data) == 2:
        names = tuple(file_stem(safe_name(f[0])) for f in data)
    else:
        names = ("X", "Y")
    return pair, names
