"""Regenerate every shipped sample: ``python -m sample_data.build``.

Everything is made offline from what installed packages ship: scikit-learn's
bundled digits (``load_digits``), nilearn's bundled MNI152 template and brain
mask at 2 mm, and ``solver.synthetic.planted_pair``. Seeds are fixed, torch
runs on one thread with deterministic algorithms, and ``.npz`` / ``.pt`` /
``.json`` files carry no timestamps, so two builds on the same machine give
byte-identical files.

Usage::

    python -m sample_data.build              # the shipped set, into sample_data/
    python -m sample_data.build --tiny --out /tmp/tiny   # small set, seconds
    python -m sample_data.build --only planted

Notes
-----
Bytes repeat on one machine with the same package versions. Another CPU,
BLAS or torch version can change the last bits of trained weights, so a rebuild
elsewhere gives equivalent but not byte-identical files.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from solver import synthetic
from solver.exceptions import PSMDInputError

BUILT_SAMPLES: tuple[str, ...] = ("digits-cnn", "fmri-sim", "planted")
DEFAULT_OUT = Path(__file__).resolve().parent

# digits-cnn
CNN_SEEDS: dict[str, int] = {"a": 1, "b": 2}
SPLIT_SEED = 0
HELDOUT_SHARE = 0.2
EPOCHS, TINY_EPOCHS = 20, 2
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
TINY_N_IMAGES = 300

# fmri-sim: template constants (identical for both subjects)
REGIONS: tuple[str, ...] = ("V1-like", "V2/V3-like")
AXIS_START = np.array([10.0, -98.0, 2.0])  # occipital pole end, right hemisphere
AXIS_END = np.array([10.0, -66.0, 12.0])  # anterior end of the calcarine axis
V1_RADIUS_MM, V23_RADIUS_MM = 5.0, 8.0
ECC_MIN, ECC_MAX = 0.3, 3.2  # pRF eccentricity in image pixels
N_STIMULI_FMRI, TINY_N_STIMULI_FMRI = 600, 60
STIMULUS_SEED = 7
# per subject: share of the axis covered, share of voxels kept, pure-noise share
SUBJECTS: dict[str, dict[str, float]] = {
    "subject-1": {"seed": 11, "extent": 1.0, "keep": 0.64, "noise_share": 0.12},
    "subject-2": {"seed": 12, "extent": 0.85, "keep": 0.68, "noise_share": 0.12},
}
TINY_KEEP = 0.06

# planted
TINY_N_STIMULI_PLANTED = 100


@contextlib.contextmanager
def _deterministic_torch() -> Iterator[None]:
    """Run torch on one thread with deterministic kernels, then restore."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, info: dict) -> None:
    """Write sorted, indented JSON so that equal content gives equal bytes."""
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write a compressed npz; numpy stamps every member 1980-01-01."""
    np.savez_compressed(path, **arrays)


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's 1797 digits as uint8 (0-255) images and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int8)


def heldout_mask(targets: np.ndarray, share: float = HELDOUT_SHARE) -> np.ndarray:
    """Fixed stratified held-out split: ``share`` of each class, seed 0.

    Parameters
    ----------
    targets : ndarray of int of shape (n_images,)
    share : float, default=0.2

    Returns
    -------
    ndarray of bool of shape (n_images,)
        True for held-out images.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    heldout = np.zeros(targets.shape, dtype=bool)
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        heldout[members[: int(round(share * members.size))]] = True
    return heldout


def _train_cnn(images, targets, seed: int, epochs: int):
    """Train one DigitsCNN with Adam and a cosine schedule; return the model."""
    import torch
    import torch.nn.functional as F

    from sample_data import _cnn

    torch.manual_seed(seed)
    model = _cnn.DigitsCNN()
    x = _cnn.images_to_tensor(images)
    y = torch.from_numpy(targets.astype(np.int64))
    optimizer = torch.optim.Adam(
        model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
    )
    n_steps = epochs * -(-len(x) // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    generator = torch.Generator().manual_seed(seed)

    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def _accuracy(model, images: np.ndarray, targets: np.ndarray) -> float:
    import torch

    from sample_data import _cnn

    with torch.no_grad():
        predicted = model(_cnn.images_to_tensor(images)).argmax(dim=1).numpy()
    return float(np.mean(predicted == targets))


def build_digits_cnn(out_dir: Path, *, tiny: bool = False) -> dict:
    """Train the two CNNs and write ``digits-cnn/`` (npz, two .pt, json)."""
    import sklearn
    import torch

    from sample_data import _cnn

    images, targets = _digit_images()
    if tiny:
        images, targets = images[:TINY_N_IMAGES], targets[:TINY_N_IMAGES]
    heldout = heldout_mask(targets)
    epochs = TINY_EPOCHS if tiny else EPOCHS
    folder = out_dir / "digits-cnn"
    folder.mkdir(parents=True, exist_ok=True)

    arrays = {"images": images, "targets": targets, "heldout": heldout}
    models = {}
    with _deterministic_torch():
        for tag, seed in CNN_SEEDS.items():
            model = _train_cnn(images[~heldout], targets[~heldout], seed, epochs)
            torch.save(model.state_dict(), folder / f"model_{tag}.pt")
            for layer, acts in _cnn.activations(model, images).items():
                arrays[f"{tag}_{layer}"] = acts.astype(np.float32)
            models[tag] = {
                "seed": seed,
                "weights": f"model_{tag}.pt",
                "heldout_accuracy": round(
                    _accuracy(model, images[heldout], targets[heldout]), 6
                ),
                "train_accuracy": round(
                    _accuracy(model, images[~heldout], targets[~heldout]), 6
                ),
            }
    _write_npz(folder / "activations.npz", **arrays)

    info = {
        "name": "digits-cnn",
        "tiny": tiny,
        "n_images": int(images.shape[0]),
        "n_heldout": int(heldout.sum()),
        "layers": dict(_cnn.CHANNELS),
        "activation": "spatial mean of the feature map after ReLU",
        "input": "uint8 image / 255, shape (n, 1, 8, 8)",
        "training": {
            "epochs": epochs,
            "batch_size": BATCH_SIZE,
            "optimizer": "Adam",
            "learning_rate": LEARNING_RATE,
            "weight_decay": WEIGHT_DECAY,
            "schedule": "cosine to 0 over all steps",
            "split_seed": SPLIT_SEED,
            "heldout_share": HELDOUT_SHARE,
        },
        "models": models,
        "built_with": {
            "numpy": np.__version__,
            "torch": torch.__version__,
            "scikit-learn": sklearn.__version__,
        },
    }
    info["sha256"] = {
        p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.suffix != ".json"
    }
    _write_json(folder / "info.json", info)
    return info


def _mni_grid() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Brain-mask voxels of nilearn's MNI152 2 mm grid: ijk, affine, shape."""
    from nilearn import datasets

    mask_img = datasets.load_mni152_brain_mask(resolution=2)
    mask = np.asarray(mask_img.dataobj) > 0
    return np.argwhere(mask), np.asarray(mask_img.affine, float), mask.shape


def _axis_frame(hemisphere: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Start, unit direction, length and 'up' vector of one calcarine axis."""
    start = AXIS_START * np.array([hemisphere, 1.0, 1.0])
    end = AXIS_END * np.array([hemisphere, 1.0, 1.0])
    length = float(np.linalg.norm(end - start))
    direction = (end - start) / length
    up = np.array([0.0, 0.0, 1.0]) - direction[2] * direction
    return start, direction, length, up / np.linalg.norm(up)


def voxel_tuning(xyz: np.ndarray) -> dict[str, np.ndarray]:
    """Region and pRF of template positions: the shared latent tuning.

    Each hemisphere has a straight calcarine-like axis from the occipital pole
    forwards. A voxel's position along the axis (``depth`` in [0, 1]) sets its
    eccentricity, its angle around the axis sets its polar angle (above the
    axis: lower visual field), and its hemisphere the opposite half of the
    image. Voxels within 5 mm of the axis are V1-like, 5-8 mm V2/V3-like.

    Parameters
    ----------
    xyz : ndarray of shape (n, 3)
        MNI coordinates in mm.

    Returns
    -------
    dict of ndarray of shape (n,)
        ``region`` (0 V1-like, 1 V2/V3-like, -1 outside), ``hemisphere`` (-1
        left, +1 right), ``depth``, ``distance_mm``, ``prf_x``, ``prf_y``
        (column and row of the pRF centre in 8×8 image pixels) and
        ``prf_size`` (Gaussian standard deviation in pixels).
    """
    hemisphere = np.where(xyz[:, 0] < 0, -1, 1)
    depth = np.full(len(xyz), np.nan)
    distance = np.full(len(xyz), np.inf)
    elevation = np.zeros(len(xyz))
    for side in (-1, 1):
        start, direction, length, up = _axis_frame(side)
        rows = (hemisphere == side) & (xyz[:, 0] != 0)
        offset = xyz[rows] - start
        along = offset @ direction
        radial = offset - np.outer(along, direction)
        d = np.linalg.norm(radial, axis=1)
        depth[rows] = along / length
        distance[rows] = d
        elevation[rows] = np.divide(radial @ up, d, out=np.zeros_like(d), where=d > 0)

    inside = (depth >= 0) & (depth <= 1)
    region = np.full(len(xyz), -1)
    region[inside & (distance <= V1_RADIUS_MM)] = 0
    region[inside & (distance > V1_RADIUS_MM) & (distance <= V23_RADIUS_MM)] = 1

    depth_c = np.clip(np.nan_to_num(depth), 0, 1)
    ecc = ECC_MIN + (ECC_MAX - ECC_MIN) * depth_c
    angle = -0.5 * np.pi * elevation
    size_v1 = 0.5 + 0.25 * ecc
    size_v23 = (0.9 + 0.4 * ecc) * (1 + 0.1 * np.clip(distance - V1_RADIUS_MM, 0, 5))
    return {
        "region": region,
        "hemisphere": hemisphere,
        "depth": depth,
        "distance_mm": distance,
        "prf_x": 3.5 - hemisphere * ecc * np.cos(angle),
        "prf_y": 3.5 - ecc * np.sin(angle),
        "prf_size": np.where(region == 1, size_v23, size_v1),
    }


def _edge_energy(images: np.ndarray) -> np.ndarray:
    """Gradient magnitude of float images (n, 8, 8)."""
    rows, cols = np.gradient(images, axis=(1, 2))
    return np.sqrt(rows**2 + cols**2)


def voxel_signals(images: np.ndarray, tuning: dict[str, np.ndarray]) -> np.ndarray:
    """Noise-free responses (n_stimuli, n_voxels), each z-scored over stimuli.

    V1-like voxels sum pixel intensity under a Gaussian pRF; V2/V3-like voxels
    sum edge energy (gradient magnitude) under a wider pRF and compress the
    result with a square root.
    """
    grid = np.arange(8.0)
    size = tuning["prf_size"][:, None]
    gx = np.exp(-0.5 * ((grid[None, :] - tuning["prf_x"][:, None]) / size) ** 2)
    gy = np.exp(-0.5 * ((grid[None, :] - tuning["prf_y"][:, None]) / size) ** 2)
    weights = np.einsum("vr,vc->vrc", gy, gx)
    weights /= weights.sum(axis=(1, 2), keepdims=True)

    pixels = images.astype(float) / 255.0
    v1 = np.einsum("src,vrc->sv", pixels, weights)
    v23 = np.sqrt(np.einsum("src,vrc->sv", _edge_energy(pixels), weights))
    signal = np.where(tuning["region"][None, :] == 1, v23, v1)
    signal -= signal.mean(axis=0)
    return signal / signal.std(axis=0)


def _select_voxels(tuning, spec: dict, rng, keep: float) -> np.ndarray:
    """Indices of one subject's voxels, ordered by region, hemisphere, grid."""
    candidates = (tuning["region"] >= 0) & (tuning["depth"] <= spec["extent"])
    kept = np.flatnonzero(candidates & (rng.random(candidates.size) < keep))
    order = np.lexsort((tuning["hemisphere"][kept], tuning["region"][kept]))
    return kept[order]


def _reliability(region: np.ndarray, noise_share: float, rng) -> np.ndarray:
    """Signal share of variance per voxel; a pure-noise share per region is 0."""
    reliability = 0.05 + 0.85 * rng.beta(2.0, 2.0, size=region.size)
    for label in np.unique(region):
        members = np.flatnonzero(region == label)
        n_noise = int(round(noise_share * members.size))
        reliability[rng.choice(members, n_noise, replace=False)] = 0.0
    return reliability


def _nearest_partner(mine: dict, other: dict) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reliable voxel of the other subject in tuning space.

    Tuning space is (prf_x, prf_y, prf_size) in pixels, within the same
    region. Pure-noise voxels neither have nor are partners (-1).
    """
    params = ("prf_x", "prf_y", "prf_size")
    a = np.column_stack([mine[k] for k in params])
    b = np.column_stack([other[k] for k in params])
    dist = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    allowed = (mine["region"][:, None] == other["region"][None, :]) & (
        other["reliability"][None, :] > 0
    )
    dist[~allowed] = np.inf
    partner = dist.argmin(axis=1)
    best = dist[np.arange(len(a)), partner]
    silent = mine["reliability"] == 0
    partner[silent] = -1
    best[silent] = np.nan
    return partner.astype(np.int32), best.astype(np.float32)


def build_fmri_sim(out_dir: Path, *, tiny: bool = False) -> dict:
    """Simulate two subjects on the MNI152 2 mm grid and write ``fmri-sim/``.

    Notes
    -----
    The regions are straight tubes around a stylised calcarine axis, not
    atlas-defined areas, and the pRF maps are a caricature of retinotopy
    (no V1/V2 mirror reversal, no haemodynamics, one trial per stimulus).
    The ground-truth partner is a nearest neighbour in pRF space, so it is
    neither symmetric nor one-to-one in general.
    """
    import nilearn

    images, targets = _digit_images()
    n_stimuli = TINY_N_STIMULI_FMRI if tiny else N_STIMULI_FMRI
    chosen = np.random.default_rng(STIMULUS_SEED).choice(
        len(images), n_stimuli, replace=False
    )
    chosen.sort()
    images, targets = images[chosen], targets[chosen]
    ijk, affine, shape = _mni_grid()
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    tuning = voxel_tuning(xyz)

    subjects = {}
    for name, spec in SUBJECTS.items():
        rng = np.random.default_rng(int(spec["seed"]))
        rows = _select_voxels(tuning, spec, rng, TINY_KEEP if tiny else spec["keep"])
        unit = {k: v[rows] for k, v in tuning.items()}
        unit["ijk"], unit["xyz"] = ijk[rows], xyz[rows]
        unit["reliability"] = _reliability(unit["region"], spec["noise_share"], rng)
        signal = voxel_signals(images, unit)
        noise = rng.standard_normal(signal.shape)
        rel = unit["reliability"]
        unit["responses"] = np.sqrt(rel) * signal + np.sqrt(1 - rel) * noise
        subjects[name] = unit

    (first, one), (second, two) = subjects.items()
    one["partner"], one["partner_distance"] = _nearest_partner(one, two)
    two["partner"], two["partner_distance"] = _nearest_partner(two, one)

    arrays = {
        "images": images,
        "stimulus_labels": targets,
        "stimulus_index": chosen.astype(np.int16),
        "affine": affine,
        "shape": np.asarray(shape, dtype=np.int16),
    }
    stored = {
        "responses": np.float32,
        "region": np.int8,
        "hemisphere": np.int8,
        "ijk": np.int16,
        "xyz": np.float32,
        "reliability": np.float32,
        "prf_x": np.float32,
        "prf_y": np.float32,
        "prf_size": np.float32,
        "partner": np.int32,
        "partner_distance": np.float32,
    }
    for tag, unit in (("s1", one), ("s2", two)):
        for key, dtype in stored.items():
            arrays[f"{tag}_{key}"] = unit[key].astype(dtype)
    folder = out_dir / "fmri-sim"
    folder.mkdir(parents=True, exist_ok=True)
    _write_npz(folder / "responses.npz", **arrays)

    counts = {
        name: {
            region: int((unit["region"] == r).sum()) for r, region in enumerate(REGIONS)
        }
        for name, unit in subjects.items()
    }
    pure_noise = {
        name: int((unit["reliability"] == 0).sum()) for name, unit in subjects.items()
    }
    info = {
        "name": "fmri-sim",
        "tiny": tiny,
        "subjects": [first, second],
        "regions": list(REGIONS),
        "n_stimuli": n_stimuli,
        "voxel_counts": counts,
        "pure_noise_voxels": pure_noise,
        "template": {
            "name": "MNI152 (nilearn.datasets.load_mni152_template(resolution=2))",
            "affine": affine.tolist(),
            "shape": list(shape),
        },
        "constants": {
            "axis_start_mm": AXIS_START.tolist(),
            "axis_end_mm": AXIS_END.tolist(),
            "v1_radius_mm": V1_RADIUS_MM,
            "v23_radius_mm": V23_RADIUS_MM,
            "eccentricity_px": [ECC_MIN, ECC_MAX],
            "stimulus_seed": STIMULUS_SEED,
            "subjects": SUBJECTS,
            "keep_tiny": TINY_KEEP,
        },
        "built_with": {"numpy": np.__version__, "nilearn": nilearn.__version__},
    }
    info["sha256"] = {"responses.npz": _sha256(folder / "responses.npz")}
    _write_json(folder / "info.json", info)
    return info


def build_planted(out_dir: Path, *, tiny: bool = False) -> dict:
    """Write ``planted/``: ``solver.synthetic.planted_pair(seed=0)``."""
    n_stimuli = TINY_N_STIMULI_PLANTED if tiny else 1000
    pair = synthetic.planted_pair(n_stimuli=n_stimuli, seed=0)
    folder = out_dir / "planted"
    folder.mkdir(parents=True, exist_ok=True)
    _write_npz(
        folder / "planted.npz",
        X=pair.X,
        Y=pair.Y,
        signal_x=pair.signal_x,
        signal_y=pair.signal_y,
        partner_x=pair.partner_x.astype(np.int32),
    )
    info = {
        "name": "planted",
        "tiny": tiny,
        "generator": f"solver.synthetic.planted_pair(n_stimuli={n_stimuli}, seed=0)",
        "n_stimuli": n_stimuli,
        "n_signal": int(pair.signal_x.sum()),
        "n_noise_x": int((~pair.signal_x).sum()),
        "n_noise_y": int((~pair.signal_y).sum()),
        "sha256": {"planted.npz": _sha256(folder / "planted.npz")},
    }
    _write_json(folder / "info.json", info)
    return info


_BUILDERS = {
    "digits-cnn": build_digits_cnn,
    "fmri-sim": build_fmri_sim,
    "planted": build_planted,
}


def build(
    out_dir: str | Path | None = None,
    *,
    tiny: bool = False,
    only: Sequence[str] | None = None,
) -> dict[str, float]:
    """Build the shipped samples into ``out_dir`` (default: this package).

    Parameters
    ----------
    out_dir : str or Path, optional
        Folder that receives one subfolder per sample; default=the
        ``sample_data`` package folder itself.
    tiny : bool, default=False
        Small versions (few images, voxels and epochs) made in seconds, for
        tests. They have the same files, keys and dtypes as the full set.
    only : sequence of str, optional
        Names among ``BUILT_SAMPLES``; default=all of them.

    Returns
    -------
    dict of str to float
        Seconds spent on each sample.

    Raises
    ------
    PSMDInputError
        If ``only`` names a sample that is not built.
    """
    names = list(BUILT_SAMPLES if only is None else only)
    unknown = [n for n in names if n not in _BUILDERS]
    if unknown:
        raise PSMDInputError(
            f"cannot build sample {unknown[0]!r}; built samples are "
            f"{', '.join(BUILT_SAMPLES)}"
        )
    out = DEFAULT_OUT if out_dir is None else Path(out_dir)
    seconds = {}
    for name in names:
        start = time.perf_counter()
        _BUILDERS[name](out, tiny=tiny)
        seconds[name] = time.perf_counter() - start
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python -m sample_data.build``."""
    parser = argparse.ArgumentParser(
        prog="python -m sample_data.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--tiny", action="store_true", help="small, fast versions")
    parser.add_argument("--only", nargs="+", choices=BUILT_SAMPLES, default=None)
    args = parser.parse_args(argv)
    out = DEFAULT_OUT if args.out is None else args.out
    seconds = build(out, tiny=args.tiny, only=args.only)
    for name, secs in seconds.items():
        size = sum(p.stat().st_size for p in (out / name).iterdir())
        print(f"{name:12s} {secs:7.1f} s  {size / 1e6:6.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
