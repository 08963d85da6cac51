"""Read representations and their companions from files, safely.

One set of loaders serves the CLI, the Python API and the app. A
representation is a stimuli × units matrix; :func:`load_representation`
returns it with what the file also tells (unit names from a CSV header or
Parquet columns, voxel coordinates from NIfTI), :func:`load_matrix` the
matrix alone. Companions: :func:`load_images` (one image per stimulus),
:func:`load_coords` (one position per unit), :func:`load_names` (one name per
unit).

Formats
-------
========================  ==================================================
``.npy``                  one array
``.npz``                  several arrays; ``key`` chooses one
``.mat`` (v5, v7)         MATLAB, read by scipy; ``key`` = variable name
``.mat`` (v7.3)           MATLAB's HDF5 form, read by h5py and transposed
                          back to MATLAB's orientation (rows = stimuli)
``.h5``, ``.hdf5``        HDF5 (h5py); ``key`` = dataset path, e.g. ``g/acts``
``.csv``, ``.tsv``        numbers, optional header row of unit names
``.parquet``              numeric columns (pyarrow); column names = unit names
``.pt``, ``.pth``         a tensor, or a dict of tensors (``key``), read with
                          ``torch.load(weights_only=True)``
``.nii``, ``.nii.gz``     4-D NIfTI (x, y, z, stimuli) with a 3-D ``mask``;
                          yields voxel coordinates in the image's space (mm)
========================  ==================================================

Safety: pickles are never loaded. ``.npy``/``.npz`` are read with
``allow_pickle=False`` (object arrays are refused before any code runs),
``.pt`` with PyTorch's restricted ``weights_only`` reader (plain tensors and
containers only), and pickle-only formats (``.pkl``, ``.pickle``,
``.joblib``, ...) are refused by name. Every problem is a
:class:`~solver.exceptions.PSMDInputError` with a one-line message naming the
file, what was wrong and what is allowed.
"""

from __future__ import annotations

import json
import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solver.exceptions import PSMDInputError

FORMATS = (
    ".npy",
    ".npz",
    ".mat",
    ".h5",
    ".hdf5",
    ".csv",
    ".tsv",
    ".parquet",
    ".pt",
    ".pth",
    ".nii",
    ".nii.gz",
)
PICKLE_FORMATS = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".p")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Stimulus images are kept as thumbnails: the app shows them small, and a
# folder of photographs must not fill the server's memory.
MAX_IMAGE_SIDE = 128
_NUMERIC_KINDS = "biuf"


@dataclass(frozen=True, eq=False)
class Loaded:
    """A representation read from a file.

    Attributes
    ----------
    data : ndarray of shape (n_stimuli, n_units)
        As stored (numeric; shape and values are checked by
        :func:`solver.validation.check_pair`).
    unit_names : list of str or None
        From a CSV/TSV header or Parquet column names.
    coords : ndarray of shape (n_units, 3) or None
        Voxel positions in millimetres (NIfTI only).
    source : str
        The file (and key) it came from.
    """

    data: np.ndarray
    unit_names: list[str] | None = None
    coords: np.ndarray | None = None
    source: str = ""


def suffix_of(path: str | Path) -> str:
    """Lower-case suffix, with ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise PSMDInputError(f"{path}: is a folder; a data file is required.")
    if not path.is_file():
        raise PSMDInputError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise PSMDInputError(f"{path}: the file is empty.")


def _refuse_pickle(path: Path) -> None:
    raise PSMDInputError(
        f"{path}: pickled files are never loaded (unpickling can run code); "
        "save a numeric array as .npy, .npz, .csv, .h5, .mat or .parquet."
    )


def load_matrix(
    path: str | Path, *, key: str | None = None, mask: str | Path | None = None
) -> np.ndarray:
    """Load a stimuli × units matrix (see the module doc for the formats).

    Parameters
    ----------
    path : str or Path
    key : str, optional
        Array, variable or dataset inside a file holding several.
    mask : str or Path, optional
        3-D NIfTI mask, required for a 4-D NIfTI file.

    Returns
    -------
    ndarray
        As stored.

    Raises
    ------
    PSMDInputError
        Missing, empty, corrupt or pickled files, unknown formats, text in a
        CSV, an ambiguous or unknown ``key``.
    """
    return load_representation(path, key=key, mask=mask).data


def load_representation(
    path: str | Path, *, key: str | None = None, mask: str | Path | None = None
) -> Loaded:
    """Load a representation with what its file tells about the units.

    Parameters
    ----------
    path, key, mask
        As in :func:`load_matrix`.

    Returns
    -------
    Loaded

    Raises
    ------
    PSMDInputError
        As :func:`load_matrix`.
    """
    path = Path(path)
    suffix = suffix_of(path)
    if suffix in PICKLE_FORMATS:
        _check_file(path)
        _refuse_pickle(path)
    _check_file(path)
    readers = {
        ".npy": _read_npy,
        ".npz": _read_npz,
        ".mat": _read_mat,
        ".h5": _read_hdf5,
        ".hdf5": _read_hdf5,
        ".csv": _read_csv,
        ".tsv": _read_csv,
        ".parquet": _read_parquet,
        ".pt": _read_torch,
        ".pth": _read_torch,
    }
    if suffix in (".nii", ".nii.gz"):
        return load_nifti(path, mask)
    if suffix not in readers:
        raise PSMDInputError(
            f"{path}: format {suffix or '(none)'} is not supported; "
            f"allowed: {', '.join(FORMATS)}."
        )
    if mask is not None:
        raise PSMDInputError(f"{path}: a mask applies to NIfTI files only.")
    with reading(path, suffix):
        loaded = readers[suffix](path, key)
    data = loaded.data
    if data.dtype == object or data.dtype.kind not in _NUMERIC_KINDS:
        raise PSMDInputError(
            f"{loaded.source}: holds {_describe_dtype(data.dtype)}; "
            "a numeric (int or float) array is required."
        )
    return loaded


@contextmanager
def reading(path: Path, suffix: str):
    """Turn a reader's exceptions into one-line :class:`PSMDInputError`."""
    try:
        yield
    except PSMDInputError:
        raise
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise PSMDInputError(
                f"{path}: holds Python objects (pickled data), which are never "
                "loaded; save plain numeric arrays (names as unicode strings)."
            ) from None
        raise PSMDInputError(
            f"{path}: not a readable {suffix} file ({_short(err)})."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as err:
        raise PSMDInputError(
            f"{path}: not a readable {suffix} file ({_short(err)})."
        ) from None


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]


def _describe_dtype(dtype: np.dtype) -> str:
    if dtype.kind == "O":
        return "Python objects"
    if dtype.kind in "US":
        return "text"
    if dtype.kind == "c":
        return "complex numbers"
    if dtype.kind == "V":
        return "records or raw bytes"
    return f"values of dtype {dtype}"


def _choose(path: Path, names: list[str], key: str | None, what: str) -> str:
    if key is None:
        if len(names) == 1:
            return names[0]
        listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise PSMDInputError(
            f"{path}: holds {len(names)} {what}s ({listed or 'none'}); "
            "choose one with a key."
        )
    if key not in names:
        listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise PSMDInputError(
            f"{path}: no {what} named {key!r}; present: {listed or 'none'}."
        )
    return key


def _read_npy(path: Path, key: str | None) -> Loaded:
    if key is not None:
        raise PSMDInputError(f"{path}: a .npy file holds one array; drop the key.")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        if magic[:1] == b"\x80":
            _refuse_pickle(path)
        raise PSMDInputError(f"{path}: not a readable .npy file (no NumPy header).")
    return Loaded(np.load(path, allow_pickle=False), source=str(path))


def _read_npz(path: Path, key: str | None) -> Loaded:
    if not zipfile.is_zipfile(path):
        raise PSMDInputError(f"{path}: not a readable .npz file (not a zip archive).")
    with np.load(path, allow_pickle=False) as z:
        name = _choose(path, list(z.files), key, "array")
        return Loaded(z[name], source=f"{path}[{name}]")


def _read_mat(path: Path, key: str | None) -> Loaded:
    with open(path, "rb") as fh:
        head = fh.read(128)
    if b"MATLAB 7.3" in head or _is_hdf5(path):
        return _read_mat73(path, key)
    import scipy.io

    try:
        variables = scipy.io.loadmat(path, squeeze_me=False, mat_dtype=False)
    except NotImplementedError:  # scipy's answer for v7.3
        return _read_mat73(path, key)
    except (ValueError, TypeError, OSError) as err:
        raise PSMDInputError(
            f"{path}: not a readable .mat file ({_short(err)})."
        ) from None
    names = [n for n in variables if not n.startswith("__")]
    name = _choose(path, names, key, "variable")
    value = variables[name]
    if not isinstance(value, np.ndarray) or value.dtype == object:
        raise PSMDInputError(
            f"{path}: variable {name!r} is a cell array, struct or object; "
            "a numeric matrix is required."
        )
    return Loaded(value, source=f"{path}[{name}]")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        for offset in (0, 512, 1024, 2048):
            fh.seek(offset)
            if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                return True
    return False


def _h5py():
    try:
        import h5py
    except ImportError:
        raise PSMDInputError(
            "reading HDF5 and .mat v7.3 files needs h5py: pip install h5py."
        ) from None
    return h5py


def _datasets(h5file) -> list[str]:
    h5py = _h5py()
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith("#"):
            found.append(name)

    h5file.visititems(visit)
    return found


def _read_mat73(path: Path, key: str | None) -> Loaded:
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        names = [n for n in _datasets(f) if "/" not in n]
        name = _choose(path, names, key, "variable")
        ds = f[name]
        cls = ds.attrs.get("MATLAB_class", b"")
        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
        if cls in ("cell", "struct") or ds.dtype.kind in "OV":
            raise PSMDInputError(
                f"{path}: variable {name!r} is a MATLAB {cls or 'object'}; "
                "a numeric matrix is required."
            )
        # MATLAB writes column-major: h5py sees the dimensions reversed.
        value = np.asarray(ds[()]).T
    return Loaded(value, source=f"{path}[{name}]")


def _read_hdf5(path: Path, key: str | None) -> Loaded:
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        name = _choose(path, _datasets(f), key, "dataset")
        ds = f[name]
        if ds.dtype.kind in "OVSU":
            raise PSMDInputError(
                f"{path}: dataset {name!r} holds {_describe_dtype(ds.dtype)}; "
                "a numeric array is required."
            )
        value = np.asarray(ds[()])
    return Loaded(value, source=f"{path}[{name}]")


def _read_csv(path: Path, key: str | None) -> Loaded:
    if key is not None:
        raise PSMDInputError(f"{path}: a text table holds one matrix; drop the key.")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    if not lines:
        raise PSMDInputError(f"{path}: the file holds no rows.")
    # A header row is allowed when none of its cells is a number.
    first = [c.strip().strip('"') for c in lines[0].split(sep)]
    header = None if any(_is_number(c) for c in first) else first
    rows = []
    start = 0 if header is None else 1
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
    if header is not None and len(header) != len(rows[0]):
        raise PSMDInputError(
            f"{path}: the header names {len(header)} columns but rows hold "
            f"{len(rows[0])}."
        )
    return Loaded(
        np.asarray(rows, dtype=np.float64), unit_names=header, source=str(path)
    )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_parquet(path: Path, key: str | None) -> Loaded:
    if key is not None:
        raise PSMDInputError(f"{path}: a Parquet table holds one matrix; drop the key.")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PSMDInputError(
            "reading Parquet files needs pyarrow: pip install pyarrow."
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises its own error types
        raise PSMDInputError(
            f"{path}: not a readable .parquet file ({_short(err)})."
        ) from None
    # The pandas index, when stored as a column, is not a unit.
    meta = table.schema.pandas_metadata or {}
    index_cols = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    columns = []
    names = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if field.name in index_cols:
            continue
        kind = field.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            what = (
                "text"
                if pa.types.is_string(kind) or pa.types.is_large_string(kind)
                else f"values of type {kind}"
            )
            raise PSMDInputError(
                f"{path}: column {field.name!r} holds {what}; every column must "
                "be numeric."
            )
        values = column.to_numpy(zero_copy_only=False)
        columns.append(values.astype(np.float64))
        names.append(str(field.name))
    if not columns:
        raise PSMDInputError(f"{path}: the table has no columns.")
    return Loaded(np.column_stack(columns), unit_names=names, source=str(path))


def is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip with compiled code)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def _read_torch(path: Path, key: str | None) -> Loaded:
    import pickle

    import torch

    if is_torchscript(path):
        raise PSMDInputError(
            f"{path}: is a TorchScript model, not data; compute its activations "
            "with `psmd activations` (model mode)."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise PSMDInputError(_torch_refusal(path, str(err))) from None
    except Exception as err:  # torch's reader raises many kinds on junk bytes
        raise PSMDInputError(
            f"{path}: not a readable .pt file ({_short(err)})."
        ) from None
    if isinstance(obj, torch.Tensor):
        if key is not None:
            raise PSMDInputError(f"{path}: holds one tensor; drop the key.")
        return Loaded(_tensor_to_numpy(obj), source=str(path))
    if isinstance(obj, dict):
        tensors = _flat_tensors(obj)
        name = _choose(path, list(tensors), key, "tensor")
        return Loaded(_tensor_to_numpy(tensors[name]), source=f"{path}[{name}]")
    raise PSMDInputError(
        f"{path}: holds a {type(obj).__name__}; a tensor or a dict of tensors "
        "is required."
    )


def _torch_refusal(path: Path, text: str) -> str:
    """One line from PyTorch's long weights_only error."""
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        return (
            f"{path}: holds pickled Python objects ({found.group(1)}) besides "
            "tensors, which are never loaded; save a tensor or a dict of tensors."
        )
    return f"{path}: not a readable .pt file (not a tensor file PyTorch can read)."


def _flat_tensors(obj: dict, prefix: str = "") -> dict:
    import torch

    out = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            out[name] = v
        elif isinstance(v, dict):
            out.update(_flat_tensors(v, f"{name}."))
    return out


def _tensor_to_numpy(t) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    if t.is_complex() or t.dtype == torch.bool:
        raise PSMDInputError(
            f"tensor of dtype {t.dtype}; a real numeric tensor is required."
        )
    return t.numpy()


def load_nifti(path: str | Path, mask: str | Path | None) -> Loaded:
    """Voxel responses from a 4-D NIfTI image inside a mask.

    Parameters
    ----------
    path : str or Path
        4-D image (x, y, z, stimuli): one volume per stimulus.
    mask : str or Path
        3-D image on the same grid; voxels where it is non-zero are kept,
        in C order of their (i, j, k) indices.

    Returns
    -------
    Loaded
        ``data`` (n_stimuli, n_voxels) float, ``coords`` (n_voxels, 3) in the
        image's world space (millimetres; MNI when the image is in MNI space).

    Raises
    ------
    PSMDInputError
        No mask, unreadable files, not 4-D / 3-D, grids that differ, an empty
        mask.
    """
    path = Path(path)
    _check_file(path)
    if mask is None:
        raise PSMDInputError(
            f"{path}: a 4-D NIfTI image needs a mask (a 3-D NIfTI of the voxels "
            "to keep); give it with --mask-x/--mask-y or mask=."
        )
    mask = Path(mask)
    _check_file(mask)
    try:
        import nibabel as nib
    except ImportError:
        raise PSMDInputError(
            "reading NIfTI files needs nibabel: pip install nibabel."
        ) from None
    images = []
    for p in (path, mask):
        try:
            images.append(nib.load(str(p)))
        except Exception as err:  # nibabel raises several error types
            raise PSMDInputError(
                f"{p}: not a readable NIfTI file ({_short(err)})."
            ) from None
    img, msk = images
    if len(img.shape) != 4:
        raise PSMDInputError(
            f"{path}: has shape {img.shape}; a 4-D image (x, y, z, stimuli) is "
            "required."
        )
    mshape = msk.shape[:3] if len(msk.shape) == 4 and msk.shape[3] == 1 else msk.shape
    if len(mshape) != 3 or tuple(mshape) != tuple(img.shape[:3]):
        raise PSMDInputError(
            f"{mask}: mask grid {msk.shape} does not match the image grid "
            f"{img.shape[:3]}; allowed: a 3-D mask on the same grid."
        )
    if not np.allclose(msk.affine, img.affine, atol=1e-3):
        raise PSMDInputError(
            f"{mask}: the mask's affine differs from the image's; resample the "
            "mask to the image grid first."
        )
    try:
        keep = np.asarray(msk.dataobj).reshape(mshape) != 0
        volume = np.asarray(img.dataobj)
    except Exception as err:
        raise PSMDInputError(
            f"{path}: voxel data unreadable ({_short(err)})."
        ) from None
    if not keep.any():
        raise PSMDInputError(f"{mask}: the mask keeps no voxel.")
    ijk = np.argwhere(keep)
    data = volume[keep].T  # (stimuli, voxels)
    coords = (img.affine @ np.c_[ijk, np.ones(len(ijk))].T)[:3].T
    return Loaded(data, coords=coords, source=f"{path} (mask {mask.name})")


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def load_images(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """One image per stimulus, from a folder or an array file.

    Parameters
    ----------
    path : str or Path
        A folder of image files (``.png``, ``.jpg``, ...), taken in natural
        name order (``img2`` before ``img10``), or an ``.npz``/``.npy`` of
        images shaped ``(n, H, W)`` or ``(n, H, W, 3)``.
    key : str, optional
        Array inside an ``.npz`` (default ``images`` or its only array).

    Returns
    -------
    ndarray of uint8 of shape (n, H, W) or (n, H, W, 3)
        Folder images become thumbnails of at most ``MAX_IMAGE_SIDE`` pixels a
        side, all the size of the first; float arrays in [0, 1] are scaled.

    Raises
    ------
    PSMDInputError
        No images, an unreadable image, or an array of the wrong shape.
    """
    path = Path(path)
    if path.is_dir():
        return _images_from_folder(path)
    if suffix_of(path) not in (".npz", ".npy"):
        raise PSMDInputError(
            f"{path}: images come as a folder of image files or an .npz/.npy "
            "array (n, H, W) or (n, H, W, 3)."
        )
    if suffix_of(path) == ".npz" and key is None:
        _check_file(path)
        with np.load(path, allow_pickle=False) as z:
            if "images" in z.files:
                key = "images"
    arr = load_matrix(path, key=key)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] in (3, 4))):
        raise PSMDInputError(
            f"{path}: images have shape {arr.shape}; allowed: (n, H, W) or "
            "(n, H, W, 3)."
        )
    if arr.ndim == 4:
        arr = arr[..., :3]
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise PSMDInputError(f"{path}: images hold NaN or infinite values.")
        top = 1.0 if arr.max() <= 1.0 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).round()
    return np.clip(arr, 0, 255).astype(np.uint8)


def _images_from_folder(folder: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ),
        key=lambda p: _natural_key(p.name),
    )
    if not files:
        raise PSMDInputError(
            f"{folder}: holds no image files; allowed: {', '.join(IMAGE_SUFFIXES)}."
        )
    frames = []
    size = None
    for p in files:
        try:
            with Image.open(p) as im:
                grey = im.mode in ("L", "1", "I", "I;16", "F")
                small = im.convert("L" if grey else "RGB")
                # Shrink at once: a folder of photographs must not sit in
                # memory at full size.
                if size is None:
                    small.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
                    size = small.size
                else:
                    small = small.resize(size)
                frames.append(small)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            raise PSMDInputError(
                f"{p}: not a readable image ({_short(err)})."
            ) from None
    mode = "RGB" if any(f.mode == "RGB" for f in frames) else "L"
    return np.stack([np.asarray(f.convert(mode)) for f in frames]).astype(np.uint8)


def load_coords(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """One 3-D position per unit (millimetres), shape (n_units, 3).

    Parameters
    ----------
    path : str or Path
        Any matrix format of :func:`load_matrix` (``.npy``, ``.csv``, ...).
    key : str, optional

    Raises
    ------
    PSMDInputError
        Not (n, 3), or NaN/infinite positions.
    """
    arr = load_matrix(path, key=key)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise PSMDInputError(
            f"{path}: coordinates have shape {arr.shape}; allowed: (n_units, 3) "
            "in millimetres."
        )
    if not np.isfinite(arr).all():
        raise PSMDInputError(f"{path}: coordinates hold NaN or infinite values.")
    return arr.astype(np.float64)


def load_names(path: str | Path) -> list[str]:
    """One name per unit: a ``.txt`` (a line each), ``.json`` list, or ``.csv``.

    A ``.csv``/``.tsv`` gives its first column. Names must be unique and not
    empty.

    Raises
    ------
    PSMDInputError
        Unknown format, unreadable file, empty or duplicate names.
    """
    path = Path(path)
    _check_file(path)
    suffix = suffix_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as err:
        raise PSMDInputError(
            f"{path}: not a readable text file ({_short(err)})."
        ) from None
    if suffix == ".json":
        try:
            names = json.loads(text)
        except json.JSONDecodeError as err:
            raise PSMDInputError(f"{path}: not valid JSON ({err.msg}).") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PSMDInputError(f"{path}: a JSON list of strings is required.")
    elif suffix in (".txt", ".csv", ".tsv"):
        sep = {".csv": ",", ".tsv": "\t"}.get(suffix)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        names = [
            ln.split(sep)[0].strip().strip('"') if sep else ln.strip() for ln in lines
        ]
    else:
        raise PSMDInputError(
            f"{path}: unit names come as .txt (one per line), .json or .csv."
        )
    return check_names(names, str(path))


def check_names(names, source: str) -> list[str]:
    """Return names as a list of str; refuse empty or duplicate ones."""
    names = [str(n) for n in names]
    if not names:
        raise PSMDInputError(f"{source}: holds no unit names.")
    seen = set()
    for i, n in enumerate(names):
        if not n.strip():
            raise PSMDInputError(f"{source}: unit name {i} is empty.")
        if n in seen:
            raise PSMDInputError(
                f"{source}: unit name {n[:40]!r} appears more than once; names "
                "must be unique."
            )
        seen.add(n)
    return names
