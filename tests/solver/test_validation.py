"""Every bad input a user can give is refused with one line (CLI exit 2).

Each case writes the files a user might hand the tool and runs ``psmd
compare`` on them; the message must name what was wrong and what is allowed.
"""

import pickle

import numpy as np
import pytest

from solver.cli import main
from solver.exceptions import PSMDInputError
from solver.validation import check_pair, load_pair


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def _good(rng, n=12, k=4):
    return rng.normal(size=(n, k))


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif callable(content):
        content(path)
    else:
        np.save(path, content)


def _torch_pickle(path):
    import torch

    torch.save({"x": _Evil()}, path)


def _pair_npz(**arrays):
    def write(path):
        np.savez(path, **arrays)

    return write


def _bad_cases(rng):
    X = _good(rng)
    nan = X.copy()
    nan[3, 1] = np.nan
    inf = X.copy()
    inf[0, 0] = np.inf
    return {
        "stimuli": (
            "y.npy",
            _good(rng, n=11),
            "X.npy has 12 stimuli (rows) and y.npy has 11",
        ),
        "nan": (
            "y.npy",
            nan,
            "1 NaN or infinite value(s) (first at stimulus 3, unit 1)",
        ),
        "inf": ("y.npy", inf, "allowed: finite numbers only"),
        "one-stimulus": ("y.npy", _good(rng, n=1), "at least 2 are required"),
        "one-unit": ("y.npy", _good(rng, k=1), "has 1 unit (column); at least 2"),
        "1-D": ("y.npy", np.ones(12), "is 1-D with shape (12,)"),
        "3-D": ("y.npy", np.ones((12, 2, 2)), "has 3 dimensions"),
        "empty-file": ("y.npy", b"", "the file is empty"),
        "empty-array": ("y.npy", np.ones((0, 3)), "is empty (shape (0, 3))"),
        "objects": ("y.npy", np.array([{"a": 1}, None], dtype=object), "never loaded"),
        "pickled-pt": ("y.pt", _torch_pickle, "never loaded"),
        "joblib": ("y.joblib", pickle.dumps(_Evil()), "pickled files are never loaded"),
        "corrupt-npz": ("y.npz", b"PK\x03\x04garbage", "not a readable .npz"),
        "corrupt-mat": ("y.mat", b"MATLAB 5.0 garbage" * 10, "not a readable .mat"),
        "corrupt-h5": ("y.h5", b"\x89HDF\r\n\x1a\ngarbage", "not a readable .h5"),
        "corrupt-parquet": ("y.parquet", b"PAR1garbage", "not a readable .parquet"),
        "corrupt-pt": ("y.pt", b"garbage bytes", "not a readable .pt"),
        "csv-text": ("y.csv", b"1,2,3\n4,five,6\n", "row 2 holds text 'five'"),
        "csv-duplicate-names": (
            "y.csv",
            b"a,b,a\n" + b"\n".join(b"%d,%d,%d" % (i, i * i, -i) for i in range(12)),
            "'a' appears more than once",
        ),
        "format": ("y.xlsx", b"xx", "format .xlsx is not supported"),
    }


@pytest.mark.parametrize("case", list(_bad_cases(np.random.default_rng(0))), ids=str)
def test_bad_y_file_exit_2_one_line(tmp_path, capsys, rng, case, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, content, match = _bad_cases(rng)[case]
    np.save(tmp_path / "X.npy", _good(rng))
    _write(tmp_path / name, content)
    assert main(["compare", str(tmp_path / "X.npy"), str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert match in err, err
    assert err.count("\n") == 1 and err.startswith("psmd: error: ")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"images": np.zeros((11, 4, 4))}, "11 images for 12 stimuli"),
        ({"coords_x": np.zeros((3, 3))}, "3 coordinates for 4 units of X"),
        ({"coords_y": np.zeros((4, 2))}, "allowed: (4, 3)"),
        ({"names_x": np.array(["a", "b", "c"])}, "3 unit names for 4 units of X"),
        ({"names_y": np.array(["a", "b", "b", "c"])}, "'b' appears more than once"),
        ({"names_x": np.array([1, 2, 3, 4])}, "names_x must be an array of strings"),
    ],
    ids=[
        "images",
        "coords-count",
        "coords-shape",
        "names-count",
        "names-dup",
        "names-num",
    ],
)
def test_bad_companions_in_a_pair_file(tmp_path, capsys, rng, arrays, match):
    np.savez(tmp_path / "pair.npz", X=_good(rng), Y=_good(rng), **arrays)
    assert main(["compare", str(tmp_path / "pair.npz")]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_pair_file_without_y(tmp_path, capsys, rng):
    np.savez(tmp_path / "pair.npz", X=_good(rng))
    assert main(["compare", str(tmp_path / "pair.npz")]) == 2
    assert "no array named 'Y'" in capsys.readouterr().err
    np.savez(tmp_path / "pair.npz", X=_good(rng), Y=_good(rng))
    assert main(["compare", str(tmp_path / "pair.npz"), "--key-x", "A"]) == 2
    err = capsys.readouterr().err
    assert "key_x apply to two files (X then Y) only" in err and err.count("\n") == 1


def test_names_file_count_and_duplicates(tmp_path, capsys, rng):
    np.save(tmp_path / "X.npy", _good(rng))
    np.save(tmp_path / "Y.npy", _good(rng))
    (tmp_path / "n.txt").write_text("a\nb\nc\n")
    args = ["compare", str(tmp_path / "X.npy"), str(tmp_path / "Y.npy")]
    assert main([*args, "--names-x", str(tmp_path / "n.txt")]) == 2
    assert "3 unit names for 4 units of X.npy" in capsys.readouterr().err
    (tmp_path / "n.txt").write_text("a\nb\nc\nb\n")
    assert main([*args, "--names-y", str(tmp_path / "n.txt")]) == 2
    assert "'b' appears more than once" in capsys.readouterr().err


def test_constant_units_are_excluded_with_a_warning(tmp_path, capsys, rng):
    Y = _good(rng, k=5)
    Y[:, 2] = 3.0
    np.save(tmp_path / "X.npy", _good(rng))
    np.save(tmp_path / "Y.npy", Y)
    assert main(["compare", str(tmp_path / "X.npy"), str(tmp_path / "Y.npy")]) == 0
    captured = capsys.readouterr()
    assert "psmd: warning: excluded 0 unit(s) of X and 1 of Y" in captured.err
    assert "excluded_y: [2]" in captured.out


def test_drop_nonfinite_excludes_instead_of_refusing(tmp_path, capsys, rng):
    Y = _good(rng, k=5)
    Y[4, 3] = np.nan
    np.save(tmp_path / "X.npy", _good(rng))
    np.save(tmp_path / "Y.npy", Y)
    args = ["compare", str(tmp_path / "X.npy"), str(tmp_path / "Y.npy")]
    assert main(args) == 2
    capsys.readouterr()
    assert main([*args, "--drop-nonfinite"]) == 0
    assert "excluded_y: [3]" in capsys.readouterr().out


def test_names_from_a_csv_header_reach_the_ranking(tmp_path, capsys, rng):
    X = _good(rng)
    np.savetxt(tmp_path / "X.csv", X, delimiter=",", header="v1,v2,v3,v4", comments="")
    np.save(tmp_path / "Y.npy", X[:, ::-1] + 0.01 * _good(rng))
    assert main(["path", str(tmp_path / "X.csv"), str(tmp_path / "Y.npy")]) == 0
    assert "best aligned X units: ['v" in capsys.readouterr().out


def test_check_pair_accepts_tensors_and_returns_float64(rng):
    import torch

    pair = check_pair(torch.ones(5, 3).cumsum(0), np.arange(10).reshape(5, 2))
    assert pair.X.dtype == np.float64 and pair.Y.shape == (5, 2)


def test_load_pair_reads_companions(tmp_path, rng):
    from PIL import Image

    np.save(tmp_path / "X.npy", _good(rng))
    np.save(tmp_path / "Y.npy", _good(rng, k=3))
    (tmp_path / "img").mkdir()
    for i in range(12):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(
            tmp_path / "img" / f"{i}.png"
        )
    np.savetxt(tmp_path / "cy.csv", rng.normal(size=(3, 3)), delimiter=",")
    pair = load_pair(
        tmp_path / "X.npy",
        tmp_path / "Y.npy",
        images=tmp_path / "img",
        coords_y=tmp_path / "cy.csv",
    )
    assert pair.images.shape == (12, 4, 4) and pair.coords_y.shape == (3, 3)
    with pytest.raises(PSMDInputError, match="3 coordinates for 4 units"):
        load_pair(tmp_path / "X.npy", tmp_path / "Y.npy", coords_x=tmp_path / "cy.csv")
