"""Every file format the loaders read, checked against the array written."""

import numpy as np
import pytest

from solver.exceptions import PSMDInputError
from solver.io import (
    load_coords,
    load_images,
    load_matrix,
    load_names,
    load_representation,
)


@pytest.fixture
def A(rng):
    return rng.normal(size=(7, 4))


def test_mat_v5(tmp_path, A):
    import scipy.io

    scipy.io.savemat(tmp_path / "a.mat", {"acts": A, "other": np.ones((2, 2))})
    np.testing.assert_array_equal(load_matrix(tmp_path / "a.mat", key="acts"), A)
    with pytest.raises(PSMDInputError, match="holds 2 variables .*choose one"):
        load_matrix(tmp_path / "a.mat")


def test_mat_v5_cell_array_refused(tmp_path):
    import scipy.io

    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.ones(3), "text"
    scipy.io.savemat(tmp_path / "c.mat", {"c": cell})
    with pytest.raises(PSMDInputError, match="cell array, struct or object"):
        load_matrix(tmp_path / "c.mat")


def _write_mat73(path, variables):
    """What MATLAB's save -v7.3 writes: HDF5 after a 512-byte header, column-major."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            ds = f.create_dataset(name, data=np.asarray(value).T)
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test".ljust(128))


def test_mat_v73_is_read_in_matlab_orientation(tmp_path, A):
    _write_mat73(tmp_path / "b.mat", {"resp": A})
    np.testing.assert_array_equal(load_matrix(tmp_path / "b.mat"), A)


def test_hdf5_dataset_chosen_by_key(tmp_path, A):
    import h5py

    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("layer1/acts", data=A)
        f.create_dataset("layer2/acts", data=A * 2)
        f.create_dataset("names", data=np.array([b"a", b"b"]))
    np.testing.assert_array_equal(
        load_matrix(tmp_path / "a.h5", key="layer2/acts"), 2 * A
    )
    with pytest.raises(PSMDInputError, match="holds 3 datasets .*layer1/acts"):
        load_matrix(tmp_path / "a.h5")
    with pytest.raises(PSMDInputError, match="dataset 'names' holds text"):
        load_matrix(tmp_path / "a.h5", key="names")


def test_parquet_columns_are_units_with_names(tmp_path, A):
    import pandas as pd

    pd.DataFrame(A, columns=["v1", "v2", "v3", "v4"]).to_parquet(tmp_path / "a.parquet")
    got = load_representation(tmp_path / "a.parquet")
    np.testing.assert_array_equal(got.data, A)
    assert got.unit_names == ["v1", "v2", "v3", "v4"]


def test_parquet_text_column_refused(tmp_path, A):
    import pandas as pd

    df = pd.DataFrame(A)
    df["label"] = "cat"
    df.columns = [str(c) for c in df.columns]
    df.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(PSMDInputError, match="column 'label' holds text"):
        load_matrix(tmp_path / "t.parquet")


def test_csv_header_gives_unit_names(tmp_path, A):
    np.savetxt(tmp_path / "a.csv", A, delimiter=",", header="a,b,c,d", comments="")
    got = load_representation(tmp_path / "a.csv")
    assert got.unit_names == ["a", "b", "c", "d"]


def test_torch_tensor_and_dict(tmp_path, A):
    import torch

    torch.save(torch.from_numpy(A), tmp_path / "t.pt")
    torch.save({"layer": {"acts": torch.from_numpy(A)}, "n": 3}, tmp_path / "d.pth")
    np.testing.assert_array_equal(load_matrix(tmp_path / "t.pt"), A)
    np.testing.assert_array_equal(load_matrix(tmp_path / "d.pth", key="layer.acts"), A)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_pickled_torch_object_is_refused_and_not_run(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    torch.save({"x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(PSMDInputError, match="never loaded"):
        load_matrix(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("suffix", [".pkl", ".joblib", ".pickle"])
def test_pickle_formats_are_refused_by_name(tmp_path, suffix, monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    (tmp_path / f"e{suffix}").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(PSMDInputError, match="pickled files are never loaded"):
        load_matrix(tmp_path / f"e{suffix}")
    assert not (tmp_path / "PWNED").exists()


def test_torchscript_is_not_data(tmp_path):
    import torch

    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "m.pt")
    with pytest.raises(PSMDInputError, match="TorchScript model, not data"):
        load_matrix(tmp_path / "m.pt")


def _nifti(tmp_path, rng):
    import nibabel as nib

    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10, -20, -30]
    vol = rng.normal(size=(4, 5, 6, 9))
    mask = np.zeros((4, 5, 6), dtype=np.uint8)
    mask[1, 2, 3] = mask[3, 4, 5] = mask[0, 0, 1] = 1
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    return vol, mask, affine


def test_nifti_with_mask_gives_voxels_and_coordinates(tmp_path, rng):
    vol, mask, affine = _nifti(tmp_path, rng)
    got = load_representation(tmp_path / "bold.nii.gz", mask=tmp_path / "mask.nii.gz")
    assert got.data.shape == (9, 3)
    np.testing.assert_allclose(got.data[:, 0], vol[0, 0, 1])
    np.testing.assert_allclose(got.coords[0], [-10, -20, -28])
    np.testing.assert_allclose(got.coords[2], [-4, -12, -20])


def test_nifti_problems(tmp_path, rng):
    import nibabel as nib

    _nifti(tmp_path, rng)
    with pytest.raises(PSMDInputError, match="needs a mask"):
        load_matrix(tmp_path / "bold.nii.gz")
    nib.save(
        nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)), tmp_path / "m2.nii"
    )
    with pytest.raises(PSMDInputError, match="does not match the image grid"):
        load_matrix(tmp_path / "bold.nii.gz", mask=tmp_path / "m2.nii")
    with pytest.raises(PSMDInputError, match="a 4-D image"):
        load_matrix(tmp_path / "mask.nii.gz", mask=tmp_path / "mask.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(PSMDInputError, match="not a readable NIfTI"):
        load_matrix(tmp_path / "bad.nii.gz", mask=tmp_path / "mask.nii.gz")


def test_images_from_a_folder_in_natural_order(tmp_path):
    from PIL import Image

    folder = tmp_path / "stim"
    folder.mkdir()
    for i in (10, 2, 1):
        Image.fromarray(np.full((6, 5), i, dtype=np.uint8)).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("ignored")
    imgs = load_images(folder)
    assert imgs.shape == (3, 6, 5) and list(imgs[:, 0, 0]) == [1, 2, 10]


def test_images_from_npz_and_bad_images(tmp_path):
    np.savez(tmp_path / "i.npz", images=np.random.default_rng(0).random((4, 3, 3)))
    assert load_images(tmp_path / "i.npz").dtype == np.uint8
    np.savez(tmp_path / "bad.npz", images=np.ones((4, 3)))
    with pytest.raises(PSMDInputError, match=r"allowed: \(n, H, W\)"):
        load_images(tmp_path / "bad.npz")
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(PSMDInputError, match="not a readable image"):
        load_images(folder)
    (tmp_path / "none").mkdir()
    with pytest.raises(PSMDInputError, match="holds no image files"):
        load_images(tmp_path / "none")


def test_coords_and_names(tmp_path):
    np.savetxt(tmp_path / "c.csv", np.ones((3, 3)), delimiter=",")
    assert load_coords(tmp_path / "c.csv").shape == (3, 3)
    np.save(tmp_path / "c2.npy", np.ones((3, 2)))
    with pytest.raises(PSMDInputError, match=r"allowed: \(n_units, 3\)"):
        load_coords(tmp_path / "c2.npy")
    (tmp_path / "n.txt").write_text("a\nb\nc\n")
    assert load_names(tmp_path / "n.txt") == ["a", "b", "c"]
    (tmp_path / "d.json").write_text('["a", "b", "a"]')
    with pytest.raises(PSMDInputError, match="'a' appears more than once"):
        load_names(tmp_path / "d.json")
