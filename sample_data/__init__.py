"""Sample pairs of representations shipped with psmd, and their loader.

>>> from sample_data import list_samples, load
>>> list_samples()
['digits-cnn', 'fmri-sim', 'planted', 'planted-large']
>>> view = load("planted").views["all units"]
>>> view.X.shape, view.Y.shape
((1000, 120), (1000, 190))

``digits-cnn``, ``fmri-sim`` and ``planted`` are read from files in this
package (rebuilt by ``python -m sample_data.build``); ``planted-large`` is
drawn on demand. Loading needs numpy only: torch is imported by
``digits_cnn_model`` and ``digits_cnn_activations`` alone. See README.md in
this folder for origin, licences and ground truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solver.exceptions import PSMDInputError

__all__ = [
    "DATA_DIR",
    "Sample",
    "View",
    "digits_cnn_activations",
    "digits_cnn_model",
    "list_samples",
    "load",
    "planted_large_sizes",
]

DATA_DIR = Path(__file__).resolve().parent
_SAMPLES = ("digits-cnn", "fmri-sim", "planted", "planted-large")
_SHIPPED_OPTIONS = ("data_dir",)
_LARGE_OPTIONS = ("n_units", "seed", "n_stimuli")
_REGIONS = ("V1-like", "V2/V3-like")
ALL_REGIONS = "all regions"
ALL_UNITS = "all units"


@dataclass(frozen=True, eq=False)
class View:
    """Two representations of the same stimuli, with optional unit facts.

    Attributes
    ----------
    X, Y : ndarray of float of shape (n_stimuli, n_x), (n_stimuli, n_y)
        Responses; rows are stimuli, columns units.
    labels_x, labels_y : ndarray of str of shape (n_x,), (n_y,) or None
        A category per unit (region name, "signal" / "noise").
    coords_x, coords_y : ndarray of float of shape (n_x, 3), (n_y, 3) or None
        Unit positions in MNI millimetres.
    reliability_x, reliability_y : ndarray of float of shape (n_x,), (n_y,)
        or None
        Generating signal share of each unit's variance (0 for pure noise).
    truth_x, truth_y : ndarray of int of shape (n_x,), (n_y,) or None
        Column index of the ground-truth partner on the other side of this
        view, -1 for none.
    unit_info_x, unit_info_y : dict of str to ndarray
        Further per-unit columns (e.g. grid indices, pRF parameters).
    """

    X: np.ndarray
    Y: np.ndarray
    labels_x: np.ndarray | None = None
    labels_y: np.ndarray | None = None
    coords_x: np.ndarray | None = None
    coords_y: np.ndarray | None = None
    reliability_x: np.ndarray | None = None
    reliability_y: np.ndarray | None = None
    truth_x: np.ndarray | None = None
    truth_y: np.ndarray | None = None
    unit_info_x: dict[str, np.ndarray] = field(default_factory=dict)
    unit_info_y: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Sample:
    """A named sample: one or more views of two systems on shared stimuli.

    Attributes
    ----------
    name : str
        One of ``list_samples()``.
    title : str
        Short human title.
    kind : {"cnn", "fmri", "synthetic"}
    description : str
        One or two plain sentences.
    views : dict of str to View
        Layer or region name (or "all units") to its pair of representations.
    images : ndarray of uint8 of shape (n_stimuli, H, W) or None
        The stimuli, when they are images.
    stimulus_labels : ndarray of int of shape (n_stimuli,) or None
        Class of each stimulus (the digit), when known.
    x_name, y_name : str
        What X and Y are (e.g. "CNN seed 1", "subject-1").
    meta : dict
        Everything else: accuracies, template affine and shape, sizes, the
        build record (``meta["info"]``).
    """

    name: str
    title: str
    kind: str
    description: str
    views: dict[str, View]
    images: np.ndarray | None = None
    stimulus_labels: np.ndarray | None = None
    x_name: str = "X"
    y_name: str = "Y"
    meta: dict[str, Any] = field(default_factory=dict)


def list_samples() -> list[str]:
    """Return the names accepted by ``load``.

    Returns
    -------
    list of str
        ``["digits-cnn", "fmri-sim", "planted", "planted-large"]``.
    """
    return list(_SAMPLES)


def load(name: str, **options: Any) -> Sample:
    """Load a shipped sample, or draw ``planted-large``.

    Parameters
    ----------
    name : str
        One of ``list_samples()``.
    **options
        Shipped samples accept ``data_dir`` (a folder written by
        ``python -m sample_data.build --out``; default=this package).
        ``planted-large`` accepts ``n_units`` (units of Y, default=5000),
        ``seed`` (default=0) and ``n_stimuli`` (default=1000).

    Returns
    -------
    Sample

    Raises
    ------
    PSMDInputError
        Unknown sample name or option, or an out-of-range ``n_units``.
    FileNotFoundError
        The sample's files are missing from ``data_dir``.

    Examples
    --------
    >>> s = load("planted-large", n_units=380)
    >>> s.views["all units"].X.shape, s.views["all units"].Y.shape
    ((1000, 240), (1000, 380))
    """
    if name not in _SAMPLES:
        raise PSMDInputError(
            f"unknown sample {name!r}; allowed names are {', '.join(_SAMPLES)}"
        )
    allowed = _LARGE_OPTIONS if name == "planted-large" else _SHIPPED_OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise PSMDInputError(
            f"sample {name!r} takes no option {unknown[0]!r}; "
            f"allowed options are {', '.join(allowed)}"
        )
    if name == "planted-large":
        return _planted_large(**options)
    folder = Path(options.get("data_dir") or DATA_DIR) / name
    readers = {
        "digits-cnn": _digits_cnn,
        "fmri-sim": _fmri_sim,
        "planted": _planted,
    }
    return readers[name](folder)


def _frozen(array: np.ndarray) -> np.ndarray:
    """Mark an array read-only so that a loaded sample cannot drift."""
    array.setflags(write=False)
    return array


def _read(folder: Path, filename: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read one npz (all members) and the folder's info.json."""
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; run `python -m sample_data.build` to rebuild it"
        )
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: _frozen(npz[key]) for key in npz.files}
    info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    return arrays, info


def _digits_cnn(folder: Path) -> Sample:
    arrays, info = _read(folder, "activations.npz")
    layers = list(info["layers"])
    views = {
        layer: View(X=arrays[f"a_{layer}"], Y=arrays[f"b_{layer}"]) for layer in layers
    }
    models = info["models"]
    accuracy = {tag: models[tag]["heldout_accuracy"] for tag in ("a", "b")}
    return Sample(
        name="digits-cnn",
        title="Two CNNs trained on handwritten digits",
        kind="cnn",
        description=(
            "Channel activations of two small CNNs of the same architecture, "
            "trained with different seeds on scikit-learn's 8×8 digits, over "
            f"all {arrays['images'].shape[0]} images."
        ),
        views=views,
        images=arrays["images"],
        stimulus_labels=arrays["targets"],
        x_name=f"CNN seed {models['a']['seed']}",
        y_name=f"CNN seed {models['b']['seed']}",
        meta={
            "heldout": arrays["heldout"],
            "heldout_accuracy": accuracy,
            "layers": dict(info["layers"]),
            "weights": {tag: folder / models[tag]["weights"] for tag in ("a", "b")},
            "info": info,
        },
    )


def _subject_columns(arrays: dict, tag: str, rows: np.ndarray) -> dict[str, Any]:
    """The per-voxel facts of one subject restricted to ``rows``."""
    hemisphere = np.where(arrays[f"{tag}_hemisphere"][rows] < 0, "left", "right")
    return {
        "labels": np.asarray(_REGIONS)[arrays[f"{tag}_region"][rows]],
        "coords": arrays[f"{tag}_xyz"][rows].astype(np.float64),
        "reliability": arrays[f"{tag}_reliability"][rows].astype(np.float64),
        "unit_info": {
            "ijk": arrays[f"{tag}_ijk"][rows],
            "hemisphere": hemisphere,
            "prf_x": arrays[f"{tag}_prf_x"][rows],
            "prf_y": arrays[f"{tag}_prf_y"][rows],
            "prf_size": arrays[f"{tag}_prf_size"][rows],
            "partner_distance": arrays[f"{tag}_partner_distance"][rows],
        },
    }


def _local_truth(partner: np.ndarray, other_rows: np.ndarray, n_other: int):
    """Re-index partners (global columns of the other side) into a view."""
    lookup = np.full(n_other, -1, dtype=np.int64)
    lookup[other_rows] = np.arange(other_rows.size)
    return np.where(partner >= 0, lookup[np.maximum(partner, 0)], -1)


def _fmri_view(arrays: dict, rows_x: np.ndarray, rows_y: np.ndarray) -> View:
    sides = {}
    for tag, rows, other in (("s1", rows_x, rows_y), ("s2", rows_y, rows_x)):
        facts = _subject_columns(arrays, tag, rows)
        n_other = arrays["s2_region" if tag == "s1" else "s1_region"].size
        partner = arrays[f"{tag}_partner"][rows]
        facts["truth"] = _local_truth(partner, other, n_other)
        facts["responses"] = arrays[f"{tag}_responses"][:, rows]
        sides[tag] = {
            k: _frozen(v) if isinstance(v, np.ndarray) else v for k, v in facts.items()
        }
    one, two = sides["s1"], sides["s2"]
    return View(
        X=one["responses"],
        Y=two["responses"],
        labels_x=one["labels"],
        labels_y=two["labels"],
        coords_x=one["coords"],
        coords_y=two["coords"],
        reliability_x=one["reliability"],
        reliability_y=two["reliability"],
        truth_x=one["truth"],
        truth_y=two["truth"],
        unit_info_x=one["unit_info"],
        unit_info_y=two["unit_info"],
    )


def _fmri_sim(folder: Path) -> Sample:
    arrays, info = _read(folder, "responses.npz")
    views = {}
    for code, region in enumerate(_REGIONS):
        rows_x = np.flatnonzero(arrays["s1_region"] == code)
        rows_y = np.flatnonzero(arrays["s2_region"] == code)
        views[region] = _fmri_view(arrays, rows_x, rows_y)
    views[ALL_REGIONS] = _fmri_view(
        arrays, np.arange(arrays["s1_region"].size), np.arange(arrays["s2_region"].size)
    )
    first, second = info["subjects"]
    return Sample(
        name="fmri-sim",
        title="Simulated visual-cortex fMRI, two subjects",
        kind="fmri",
        description=(
            "Two simulated subjects whose V1-like and V2/V3-like voxels on the "
            "MNI152 2 mm grid respond to the same digit images through shared "
            "position-dependent tuning plus noise of known reliability."
        ),
        views=views,
        images=arrays["images"],
        stimulus_labels=arrays["stimulus_labels"],
        x_name=first,
        y_name=second,
        meta={
            "affine": arrays["affine"],
            "shape": tuple(int(n) for n in arrays["shape"]),
            "template": info["template"]["name"],
            "regions": list(_REGIONS),
            "stimulus_index": arrays["stimulus_index"],
            "voxel_counts": info["voxel_counts"],
            "info": info,
        },
    )


def _planted_view(X, Y, signal_x, signal_y, partner_x) -> View:
    partner_y = np.full(signal_y.size, -1, dtype=np.int64)
    matched = np.flatnonzero(partner_x >= 0)
    partner_y[partner_x[matched]] = matched
    labels = np.array(["noise", "signal"])
    return View(
        X=_frozen(X),
        Y=_frozen(Y),
        labels_x=_frozen(labels[signal_x.astype(int)]),
        labels_y=_frozen(labels[signal_y.astype(int)]),
        truth_x=_frozen(partner_x.astype(np.int64)),
        truth_y=_frozen(partner_y),
    )


def _planted(folder: Path) -> Sample:
    arrays, info = _read(folder, "planted.npz")
    view = _planted_view(
        arrays["X"],
        arrays["Y"],
        arrays["signal_x"],
        arrays["signal_y"],
        arrays["partner_x"],
    )
    n_signal, n_noise_x, n_noise_y = (
        info["n_signal"],
        info["n_noise_x"],
        info["n_noise_y"],
    )
    return Sample(
        name="planted",
        title="Planted signal and noise units",
        kind="synthetic",
        description=(
            f"The paper's synthetic pair: {n_signal} signal units on each side "
            f"that share sparse latent factors, plus {n_noise_x} pure-noise units "
            f"in X and {n_noise_y} in Y."
        ),
        views={ALL_UNITS: view},
        meta={
            "n_signal": n_signal,
            "n_noise_x": n_noise_x,
            "n_noise_y": n_noise_y,
            "ideal_mass": n_signal / (n_signal + n_noise_y),
            "info": info,
        },
    )


def planted_large_sizes(n_units: int) -> tuple[int, int, int]:
    """Unit counts of ``planted-large`` for ``n_units`` units in Y.

    The paper's proportions are kept: Y is signal for 100/190 of its units,
    and X has the same signal units plus noise units worth 20% of them.

    Parameters
    ----------
    n_units : int
        Units of Y, at least 10.

    Returns
    -------
    n_signal, n_noise_x, n_noise_y : int

    Raises
    ------
    PSMDInputError
        If ``n_units`` is not an integer of at least 10.

    Examples
    --------
    >>> planted_large_sizes(190), planted_large_sizes(5000)
    ((100, 20, 90), (2632, 526, 2368))
    """
    if isinstance(n_units, bool) or not isinstance(n_units, int | np.integer):
        raise PSMDInputError(
            f"n_units must be an integer of at least 10, got {n_units!r}"
        )
    if n_units < 10:
        raise PSMDInputError(f"n_units must be at least 10, got {n_units}")
    n_signal = int(round(int(n_units) * 100 / 190))
    return n_signal, int(round(0.2 * n_signal)), int(n_units) - n_signal


def _planted_large(n_units: int = 5000, seed: int = 0, n_stimuli: int = 1000):
    from solver import synthetic

    n_signal, n_noise_x, n_noise_y = planted_large_sizes(n_units)
    if isinstance(n_stimuli, bool) or not isinstance(n_stimuli, int | np.integer):
        raise PSMDInputError(
            f"n_stimuli must be an integer of at least 50, got {n_stimuli!r}"
        )
    if n_stimuli < 50:
        raise PSMDInputError(f"n_stimuli must be at least 50, got {n_stimuli}")
    pair = synthetic.planted_pair(
        n_signal, n_noise_x, n_noise_y, n_stimuli=int(n_stimuli), seed=seed
    )
    view = _planted_view(pair.X, pair.Y, pair.signal_x, pair.signal_y, pair.partner_x)
    return Sample(
        name="planted-large",
        title=f"Planted pair, {n_units} units",
        kind="synthetic",
        description=(
            f"The paper's synthetic generator at scale: {n_signal} signal units "
            f"on each side, plus {n_noise_x} noise units in X and {n_noise_y} in "
            f"Y, drawn from seed {seed}."
        ),
        views={ALL_UNITS: view},
        meta={
            "n_signal": n_signal,
            "n_noise_x": n_noise_x,
            "n_noise_y": n_noise_y,
            "ideal_mass": n_signal / (n_signal + n_noise_y),
            "seed": seed,
            "n_stimuli": int(n_stimuli),
        },
    )


def digits_cnn_model(which: str | None = None, *, data_dir: str | Path | None = None):
    """Build the digits-cnn architecture, optionally with shipped weights.

    Parameters
    ----------
    which : {"a", "b"} or None, default=None
        Load the weights of model a (seed 1) or b (seed 2) with
        ``torch.load(..., weights_only=True)``; None returns fresh weights.
    data_dir : str or Path, optional
        Build output folder; default=this package.

    Returns
    -------
    torch.nn.Module
        A ``DigitsCNN`` in eval mode. ``model.feature_maps(x)`` returns every
        layer's post-ReLU maps for input of shape (n, 1, 8, 8) = uint8 / 255.

    Raises
    ------
    PSMDInputError
        If ``which`` is not "a", "b" or None.
    """
    import torch

    from sample_data import _cnn

    if which not in (None, "a", "b"):
        raise PSMDInputError(f"which must be 'a', 'b' or None, got {which!r}")
    model = _cnn.DigitsCNN()
    if which is not None:
        path = Path(data_dir or DATA_DIR) / "digits-cnn" / f"model_{which}.pt"
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def digits_cnn_activations(
    model, images: np.ndarray, layers: tuple[str, ...] = ("conv1", "conv2", "conv3")
) -> dict[str, np.ndarray]:
    """Per-channel activations (spatial mean after ReLU) of a digits CNN.

    Parameters
    ----------
    model : torch.nn.Module
        From ``digits_cnn_model``.
    images : ndarray of uint8 of shape (n_images, 8, 8)
    layers : tuple of str, default=("conv1", "conv2", "conv3")

    Returns
    -------
    dict of str to ndarray of float32 of shape (n_images, n_channels)

    Raises
    ------
    PSMDInputError
        If ``images`` is not uint8 of shape (n, 8, 8) or a layer is unknown.
    """
    from sample_data import _cnn

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (8, 8):
        raise PSMDInputError(
            "images must be uint8 of shape (n, 8, 8), got "
            f"{images.dtype} of shape {images.shape}"
        )
    unknown = [name for name in layers if name not in _cnn.LAYERS]
    if unknown:
        raise PSMDInputError(
            f"unknown layer {unknown[0]!r}; allowed layers are {', '.join(_cnn.LAYERS)}"
        )
    return _cnn.activations(model, images, tuple(layers))
