"""The psmd command line: JSON output, files written, exit status 2 on bad input."""

import json

import numpy as np
import pytest

from solver.cli import main
from solver.exact import solve_exact
from solver.preprocessing import prepare


@pytest.fixture
def files(tmp_path, rng):
    X = rng.normal(size=(80, 12))
    Y = np.c_[X[:, :8] + 0.3 * rng.normal(size=(80, 8)), rng.normal(size=(80, 6))]
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    return tmp_path, X, Y


def test_compare_json(files, capsys):
    d, X, Y = files
    code = main(["compare", str(d / "X.npy"), str(d / "Y.npy"), "--unmatched", "0.4",
                 "--json", "--out", str(d / "r.npz")])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("mass", "unmatched", "transport_cost", "raw_score", "normalized_score",
                "n_x", "n_y", "ranking_x", "ranking_y", "excluded_x", "excluded_y",
                "method", "converged"):  # fmt: skip
        assert key in out
    ref = solve_exact(prepare(X, Y).cost, 0.6)
    assert out["transport_cost"] == pytest.approx(ref.transport_cost, rel=1e-9)
    assert sorted(out["ranking_y"]) == list(range(14))
    with np.load(d / "r.npz") as z:
        np.testing.assert_allclose(z["plan"], ref.plan, atol=1e-12)


def test_path_json(files, capsys):
    d, X, Y = files
    assert main(["path", str(d / "X.npy"), str(d / "Y.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("masses", "costs", "entry_mass_x", "entry_mass_y", "ranking_x",
                "ranking_y", "elbow"):  # fmt: skip
        assert key in out
    assert len(out["entry_mass_y"]) == 14


def test_human_summary(files, capsys):
    d, _, _ = files
    assert main(["compare", str(d / "X.npy"), str(d / "Y.npy")]) == 0
    assert "normalized score" in capsys.readouterr().out


def _run(argv):
    """Run the CLI and return its exit status, whether returned or raised."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--unmatched", "1.5"], "unmatched=1.5 is out of range"),
        (["--mass", "0"], "mass=0.0 is out of range"),
        (["--unmatched", "0.1", "--mass", "0.9"], "not allowed with argument"),
        (["--method", "lp"], "invalid choice: 'lp'"),
        (["--reg", "-1", "--method", "sinkhorn"], "--reg -1.0 is not allowed"),
        (["--unmatched", "abc"], "invalid float value"),
    ],
)
def test_bad_values_exit_2(files, capsys, extra, match):
    d, _, _ = files
    assert _run(["compare", str(d / "X.npy"), str(d / "Y.npy"), *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_bad_files_exit_2(tmp_path, capsys, rng):
    np.save(tmp_path / "X.npy", rng.normal(size=(10, 4)))
    np.save(tmp_path / "short.npy", rng.normal(size=(9, 4)))
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object))
    cases = [
        ("short.npy", "X.npy has 10 stimuli (rows) and short.npy has 9"),
        ("obj.npy", "never loaded"),
        ("missing.npy", "no such file"),
    ]
    for name, match in cases:
        assert main(["compare", str(tmp_path / "X.npy"), str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1
