"""Reading matrices from files: formats, and refusal of bad or unsafe files."""

import pickle

import numpy as np
import pytest

from solver.exceptions import PSMDInputError
from solver.io import load_matrix


def test_npy_npz_csv_tsv_roundtrip(tmp_path, rng):
    A = rng.normal(size=(6, 3))
    np.save(tmp_path / "a.npy", A)
    np.savez(tmp_path / "a.npz", acts=A)
    np.savetxt(tmp_path / "a.csv", A, delimiter=",", header="u0,u1,u2", comments="")
    np.savetxt(tmp_path / "a.tsv", A, delimiter="\t")
    for name in ("a.npy", "a.npz", "a.csv", "a.tsv"):
        np.testing.assert_allclose(load_matrix(tmp_path / name), A, rtol=1e-12)


def test_npz_with_several_arrays_needs_a_key(tmp_path, rng):
    np.savez(tmp_path / "b.npz", x=np.ones((3, 2)), y=np.zeros((3, 2)))
    with pytest.raises(PSMDInputError, match="holds 2 arrays .*choose one"):
        load_matrix(tmp_path / "b.npz")
    assert load_matrix(tmp_path / "b.npz", key="y").sum() == 0
    with pytest.raises(PSMDInputError, match="no array named 'z'"):
        load_matrix(tmp_path / "b.npz", key="z")


def test_pickled_object_array_is_refused_not_loaded(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(PSMDInputError, match="never loaded"):
        load_matrix(tmp_path / "obj.npy")


def test_plain_pickle_renamed_npy_is_refused(tmp_path):
    (tmp_path / "p.npy").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(PSMDInputError, match="p.npy"):
        load_matrix(tmp_path / "p.npy")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.npy", b"", "empty"),
        ("corrupt.npz", b"PK\x03\x04garbage", "not a readable .npz"),
        ("corrupt.npy", b"\x93NUMPYxx", "not a readable .npy"),
        ("text.csv", b"1,2\n3,abc\n", "row 2 holds text 'abc'"),
        ("ragged.csv", b"1,2\n3\n", "different numbers of columns"),
        ("header.csv", b"a,b\n", "header but no numbers"),
        ("data.xlsx", b"xx", "format .xlsx is not supported"),
    ],
    ids=["empty", "corrupt-npz", "corrupt-npy", "text", "ragged", "header", "xlsx"],
)
def test_bad_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PSMDInputError, match=match):
        load_matrix(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(PSMDInputError, match="no such file"):
        load_matrix(tmp_path / "nope.npy")
