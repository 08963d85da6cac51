"""Batch runs: manifests, resumable content-hashed results, Dask vs serial."""

import doctest
import json

import numpy as np
import pandas as pd
import pytest

from solver import batch, manifest
from solver.api import compare, path
from solver.batch import BatchOptions, read_batch, run_batch
from solver.cli import main
from solver.exceptions import PSMDInputError
from solver.manifest import read_manifest

# Columns that differ between two runs of the same pairs by design.
RUN_COLUMNS = ["wall_time_s", "finished_at", "worker"]


def _pair(rng, n_stimuli=120, n_shared=24, n_x=30, n_y=36):
    """Two matrices sharing ``n_shared`` noisy units, the rest noise."""
    X = rng.normal(size=(n_stimuli, n_x))
    Y = rng.normal(size=(n_stimuli, n_y))
    Y[:, :n_shared] = X[:, :n_shared] + 0.5 * rng.normal(size=(n_stimuli, n_shared))
    return X, Y


@pytest.fixture
def data(tmp_path, rng):
    """Three X files (a0-a2) and two Y files (b0, b1) in tmp_path/data."""
    d = tmp_path / "data"
    d.mkdir()
    for i in range(3):
        X, Y = _pair(rng)
        np.save(d / f"a{i}.npy", X)
        if i < 2:
            np.save(d / f"b{i}.npy", Y)
    return d


def _yaml(path, text):
    path.write_text(text)
    return path


def _cartesian(data, extra=""):
    return _yaml(
        data / "m.yaml",
        "defaults: {masses: [0.5, 0.8]}\n"
        "x: [a0.npy, {path: a1.npy, label: A1}, a2.npy]\n"
        "y: [b0.npy, b1.npy]\n" + extra,
    )


def _numbers(table):
    return table.drop(columns=[c for c in RUN_COLUMNS if c in table.columns])


# --------------------------------------------------------------------------
# Manifests


def test_csv_manifest(data, rng):
    X, Y = _pair(rng)
    np.savez(data / "both.npz", X=X, Y=Y)
    (data / "m.csv").write_text(
        "# a comment row\n"
        "name,x,y,x_key,y_key,cost,masses,label_x,label_y\n"
        f"p1,a0.npy,{data / 'b0.npy'},,,,0.8;0.5,conv1,conv2\n"
        "p2,both.npz,both.npz,X,Y,sqeuclidean,,,\n"
    )
    p1, p2 = read_manifest(data / "m.csv")
    assert (p1.name, p1.label_x, p1.label_y) == ("p1", "conv1", "conv2")
    assert p1.x == str(data / "a0.npy") and p1.masses == (0.5, 0.8)
    assert p1.cost == "correlation" and p1.x_key is None
    assert (p2.x_key, p2.y_key, p2.cost, p2.masses) == ("X", "Y", "sqeuclidean", ())
    assert (p2.label_x, p2.label_y) == ("both[X]", "both[Y]")


def test_csv_default_names(data):
    (data / "m.csv").write_text("x,y\na0.npy,b0.npy\na1.npy,b0.npy\n")
    assert [p.name for p in read_manifest(data / "m.csv")] == [
        "a0 vs b0",
        "a1 vs b0",
    ]


def test_yaml_pairs_with_defaults(data):
    m = _yaml(
        data / "m.yml",
        "defaults: {cost: sqeuclidean, masses: '0.3;0.6'}\n"
        "pairs:\n"
        "  - {x: a0.npy, y: b0.npy}\n"
        "  - {x: a1.npy, y: b1.npy, cost: correlation, masses: [0.9], name: p}\n",
    )
    p0, p1 = read_manifest(m)
    assert (p0.cost, p0.masses) == ("sqeuclidean", (0.3, 0.6))
    assert (p1.cost, p1.masses, p1.name) == ("correlation", (0.9,), "p")


def test_yaml_cartesian_and_among(data):
    specs = read_manifest(_cartesian(data))
    assert len(specs) == 6
    assert [(s.label_x, s.label_y) for s in specs[2:4]] == [("A1", "b0"), ("A1", "b1")]
    assert all(s.masses == (0.5, 0.8) and not s.symmetric for s in specs)
    among = _yaml(data / "s.yaml", "among: [a0.npy, a1.npy, a2.npy]\n")
    specs = read_manifest(among)
    assert [(s.label_x, s.label_y) for s in specs] == [
        ("a0", "a1"),
        ("a0", "a2"),
        ("a1", "a2"),
    ]
    assert all(s.symmetric for s in specs)


BAD_MANIFESTS = [
    ("no-y", "m.csv", "x\na0.npy\n", "required column 'y' is missing"),
    ("unknown-col", "m.csv", "x,y,mass\na0.npy,b0.npy,0.5\n", "unknown column 'mass'"),
    ("no-file", "m.csv", "x,y\na0.npy,nope.npy\n", "row 2: file .*nope.npy not found"),
    ("empty-cell", "m.csv", "x,y\na0.npy,\n", "row 2: no y file given"),
    ("mass-high", "m.csv", "x,y,masses\na0.npy,b0.npy,0.5;1.5\n", "mass '1.5'"),
    ("mass-zero", "m.csv", "x,y,masses\na0.npy,b0.npy,0\n", "mass '0' is not allowed"),
    ("mass-text", "m.csv", "x,y,masses\na0.npy,b0.npy,half\n", "mass 'half'"),
    ("cost", "m.csv", "x,y,cost\na0.npy,b0.npy,cosine\n", "cost 'cosine' is not"),
    (
        "dup-name",
        "m.csv",
        "name,x,y\np,a0.npy,b0.npy\np,a1.npy,b0.npy\n",
        "pair name 'p' is used twice \\(row 2 and row 3\\)",
    ),
    ("no-pairs", "m.csv", "x,y\n", "lists no pairs"),
    ("format", "m.txt", "x,y\n", "format .txt is not supported"),
    ("yaml-key", "m.yaml", "pair: []\n", "unknown key 'pair'"),
    ("yaml-x-only", "m.yaml", "x: [a0.npy]\n", "'x' and 'y' must be given together"),
    (
        "yaml-mass",
        "m.yaml",
        "defaults: {masses: [2]}\nx: [a0.npy]\ny: [b0.npy]\n",
        "x\\[0\\] with y\\[0\\]: mass 2",
    ),  # fmt: skip
    ("yaml-syntax", "m.yaml", "x: [a0.npy\n", "not valid YAML"),
    ("yaml-dup", "m.yaml", "x: [a0.npy, a0.npy]\ny: [b0.npy]\n", "used twice"),
]


@pytest.mark.parametrize(
    "fname, text, match",
    [b[1:] for b in BAD_MANIFESTS],
    ids=[b[0] for b in BAD_MANIFESTS],
)
def test_bad_manifest(data, capsys, fname, text, match):
    m = data / fname
    m.write_text(text)
    with pytest.raises(PSMDInputError, match=match):
        read_manifest(m)
    code = main(["batch", str(m), "--out", str(data / "out"), "--scheduler", "serial"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("psmd: error: ") and err.count("\n") == 1


def test_missing_manifest_and_bad_options(data, capsys):
    assert main(["batch", str(data / "none.csv"), "--out", str(data / "o")]) == 2
    assert "no such manifest" in capsys.readouterr().err
    m = _cartesian(data)
    with pytest.raises(PSMDInputError, match="solver='lp' is not known"):
        run_batch(m, data / "o", solver="lp")
    with pytest.raises(PSMDInputError, match="n_points=5 is too few"):
        run_batch(m, data / "o", n_points=5)
    with pytest.raises(PSMDInputError, match="scheduler 'cluster' is not known"):
        run_batch(m, data / "o", scheduler="cluster")
    for extra in (["--workers", "0"], ["--points", "3"], ["--reg", "-1"]):
        assert main(["batch", str(m), "--out", str(data / "o"), *extra]) == 2
        assert capsys.readouterr().err.count("\n") == 1


# --------------------------------------------------------------------------
# Running serially


def test_serial_table_matches_api(data):
    report = run_batch(_cartesian(data), data / "out", scheduler="serial")
    assert (report.n_pairs, report.n_ok, report.n_failed) == (6, 6, 0)
    t = pd.read_parquet(data / "out" / "results.parquet")
    assert len(t) == 6 and list(t["name"])[:2] == ["a0 vs b0", "a0 vs b1"]
    for col in ["elbow_mass", "elbow_transport_cost", "elbow_raw_score",
                "elbow_normalized_score", "sm_normalized_score",
                "normalized_score_m0.5", "raw_score_m0.8", "transport_cost_m0.8",
                "n_breakpoints", "lcurve_costs", "psmd_version", "numpy_version",
                "torch_version", "dask_version", "device", "x_sha256", "y_sha256",
                "settings", "wall_time_s", "status", "error"]:  # fmt: skip
        assert col in t.columns, col
    row = t.iloc[3]  # A1 vs b1
    X, Y = np.load(data / "a1.npy"), np.load(data / "b1.npy")
    assert row["x_sha256"] == batch.file_sha256(data / "a1.npy")
    assert json.loads(row["settings"])["masses"] == [0.5, 0.8]
    assert row["device"] == "cpu" and row["psmd_version"] == "0.1.0"

    p = path(X, Y)
    assert row["elbow_found"] == p.elbow.found
    assert row["elbow_mass"] == pytest.approx(p.elbow.mass, abs=0)
    for s, prefix in [(row["elbow_mass"], "elbow_"), (1.0, "sm_"), (0.8, None)]:
        ref = compare(X, Y, mass=s).result
        keys = ("transport_cost", "raw_score", "normalized_score")
        got = [row[f"{prefix}{k}" if prefix else f"{k}_m0.8"] for k in keys]
        want = [ref.transport_cost, ref.raw_score, ref.normalized_score]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)

    arrays = read_batch(data / "out").pair("A1 vs b1").arrays()
    np.testing.assert_array_equal(arrays["ranking_x"], p.ranking_x)
    np.testing.assert_array_equal(arrays["ranking_y"], p.ranking_y)
    assert arrays["breakpoint_masses"].size == row["n_breakpoints"]
    np.testing.assert_allclose(
        arrays["lcurve_costs"], p.path.cost_at(np.linspace(0, 1, 100, endpoint=False))
    )


def test_resume_after_kill(data):
    m, out = _cartesian(data), data / "out"
    seen = []

    def kill_after_two(event):
        if event.kind == "pair":
            seen.append(event.name)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(m, out, scheduler="serial", progress=kill_after_two)
    assert len(list((out / "pairs").glob("*.json"))) == 2
    assert not (out / "results.parquet").exists()
    partial = read_batch(out)  # rebuilt from the per-pair files
    assert list(partial.table["status"]).count("pending") == 4

    again = run_batch(m, out, scheduler="serial")
    assert (again.n_computed, again.n_skipped, again.n_ok) == (4, 2, 6)
    assert run_batch(m, out, scheduler="serial").n_computed == 0

    # A changed input file is new content: only its pairs are computed again.
    np.save(data / "b1.npy", np.load(data / "b1.npy")[:, ::-1])
    assert run_batch(m, out, scheduler="serial").n_computed == 3


def test_torn_files_are_recomputed(data):
    m, out = _cartesian(data), data / "out"
    first = run_batch(m, out, scheduler="serial")
    hashes = list(first.table["pair_hash"])
    (out / "pairs" / f"{hashes[0]}.json").write_text('{"status": "o')  # cut short
    (out / "pairs" / f"{hashes[1]}.npz").unlink()  # npz lost, json kept
    (out / "pairs" / f"{hashes[2]}.npz").write_bytes(b"PK\x03\x04")  # torn npz
    (out / "pairs" / ".stale.json.tmp").write_text("x")  # a killed write
    again = run_batch(m, out, scheduler="serial")
    assert (again.n_computed, again.n_ok) == (3, 6)
    assert _numbers(again.table).equals(_numbers(first.table))


def test_failing_pair_is_recorded(data, rng, capsys):
    np.save(data / "short.npy", rng.normal(size=(100, 20)))
    m = _yaml(data / "m.yaml", "x: [a0.npy, a1.npy]\ny: [b0.npy, short.npy]\n")
    out = data / "out"
    assert main(["batch", str(m), "--out", str(out), "--scheduler", "serial"]) == 1
    err = capsys.readouterr().err
    assert "[4/4]" in err and "error a1 vs short  PSMDInputError: X has 120" in err
    t = read_batch(out).table
    assert list(t["status"]) == ["ok", "error", "ok", "error"]
    bad = t[t["status"] == "error"]
    assert bad["error"].str.contains("X has 120 stimuli").all()
    assert bad["elbow_normalized_score"].isna().all()
    record = json.loads(
        (out / "pairs" / f"{bad['pair_hash'].iloc[0]}.json").read_text()
    )
    assert "Traceback" in record["traceback"]

    # Errors are kept on a rerun (same content, same error) unless retried.
    assert run_batch(m, out, scheduler="serial").n_computed == 0
    assert run_batch(m, out, scheduler="serial", retry_failed=True).n_computed == 2


def test_cli_batch_json(data, capsys):
    code = main(["batch", str(_cartesian(data)), "--out", str(data / "out"),
                 "--scheduler", "serial", "--json", "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    summary = json.loads(captured.out)
    assert (summary["pairs"], summary["ok"], summary["computed"]) == (6, 6, 6)


def test_sinkhorn_solver(data):
    (data / "m.csv").write_text("x,y,masses\na0.npy,b0.npy,0.6\n")
    report = run_batch(data / "m.csv", data / "out", solver="sinkhorn",
                       device="cpu", scheduler="serial")  # fmt: skip
    row = report.table.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert json.loads(row["settings"])["solver"] == "sinkhorn" and row["reg"] > 0
    X, Y = np.load(data / "a0.npy"), np.load(data / "b0.npy")
    exact = compare(X, Y, mass=0.6).result.transport_cost
    assert exact <= row["transport_cost_m0.6"] <= 1.1 * exact
    exact_hash = run_batch(data / "m.csv", data / "ex", scheduler="serial")
    assert exact_hash.table["pair_hash"][0] != row["pair_hash"]


# --------------------------------------------------------------------------
# Reading an output folder (what the app opens)


def test_read_batch_matrix_and_cells(data):
    run_batch(_cartesian(data), data / "out", scheduler="serial")
    bt = read_batch(data / "out")
    d = bt.matrix()
    assert list(d.index) == ["a0", "A1", "a2"] and list(d.columns) == ["b0", "b1"]
    row = bt.table.set_index("name").loc["A1 vs b0"]
    assert d.loc["A1", "b0"] == pytest.approx(1 - row["elbow_normalized_score"])
    sm = bt.matrix("sm_transport_cost")
    assert sm.loc["a2", "b1"] == bt.pair("a2 vs b1").row["sm_transport_cost"]
    ref = bt.pair_at("A1", "b0")
    assert (ref.name, ref.x, ref.x_key, ref.status) == (
        "A1 vs b0", str(data / "a1.npy"), None, "ok")  # fmt: skip
    X, Y = ref.load()
    np.testing.assert_array_equal(X, np.load(data / "a1.npy"))
    assert bt.names().loc["a0", "b1"] == "a0 vs b1"
    with pytest.raises(PSMDInputError, match="no pair at"):
        bt.pair_at("b0", "a0")
    with pytest.raises(PSMDInputError, match="column 'nope'"):
        bt.matrix("nope")
    with pytest.raises(PSMDInputError, match="not a batch output folder"):
        read_batch(data)


def test_read_batch_symmetric(data):
    m = _yaml(data / "s.yaml", "among: [a0.npy, a1.npy, a2.npy]\n")
    run_batch(m, data / "out", scheduler="serial")
    bt = read_batch(data / "out")
    d = bt.matrix()
    assert list(d.index) == list(d.columns) == ["a0", "a1", "a2"]
    assert d.loc["a2", "a0"] == d.loc["a0", "a2"] and np.isnan(d.loc["a1", "a1"])
    assert bt.pair_at("a2", "a0").name == "a0 vs a2"
    assert bt.matrix(symmetric=False).shape == (2, 2)


def test_duplicate_cells_need_a_cost(data):
    m = _yaml(
        data / "m.yaml",
        "pairs:\n  - {x: a0.npy, y: b0.npy, name: c}\n"
        "  - {x: a0.npy, y: b0.npy, name: e, cost: sqeuclidean}\n",
    )
    run_batch(m, data / "out", scheduler="serial")
    bt = read_batch(data / "out")
    with pytest.raises(PSMDInputError, match="share the cell"):
        bt.matrix()
    assert bt.matrix(cost="sqeuclidean").shape == (1, 1)


# --------------------------------------------------------------------------
# Dask


def test_cluster_plan_logic():
    exact, sink = BatchOptions(), BatchOptions(solver="sinkhorn")
    # The exact solver uses CPU cores, even on a machine with GPUs.
    assert batch.local_cluster_plan(exact, None, 16, 4) == batch.LocalPlan(16, {}, ())
    assert batch.local_cluster_plan(exact, 3, 16, 4).n_workers == 3
    plan = batch.local_cluster_plan(sink, None, 16, 2)
    assert plan == batch.LocalPlan(2, {"GPU": 1}, ("cuda:0", "cuda:1"))
    assert batch.local_cluster_plan(sink, 1, 16, 2).devices == ("cuda:0",)
    assert batch.local_cluster_plan(sink, None, 8, 0) == batch.LocalPlan(8, {}, ())
    cpu = BatchOptions(solver="sinkhorn", device="cpu")
    assert batch.local_cluster_plan(cpu, None, 8, 2).resources == {}
    # Tasks ask for a GPU only where some worker offers one.
    assert batch.task_resources(sink, [{"GPU": 1}, {}]) == {"GPU": 1}
    assert batch.task_resources(sink, [{}, {}]) == {}
    assert batch.task_resources(exact, [{"GPU": 1}]) == {}
    assert batch.task_resources(cpu, [{"GPU": 1}]) == {}


def test_serial_and_local_cluster_identical(data, rng):
    # One pair large enough for multi-threaded BLAS in this process (the cost
    # then differed in the last bits from the one-thread workers).
    X, Y = _pair(rng, n_stimuli=500, n_shared=150, n_x=300, n_y=300)
    np.save(data / "big_x.npy", X)
    np.save(data / "big_y.npy", Y)
    m = _yaml(data / "m.yaml", "defaults: {masses: [0.7]}\n"
              "pairs: [{x: big_x.npy, y: big_y.npy}]\n"
              "x: [a0.npy, a1.npy, a2.npy]\ny: [b0.npy, b1.npy]\n")  # fmt: skip
    serial = run_batch(m, data / "serial", scheduler="serial")
    events = []
    local = run_batch(m, data / "local", n_workers=2, progress=events.append)
    assert local.scheduler == "local (2 workers)"
    assert events[0].kind == "start"
    assert events[0].dashboard.startswith("http://127.0.0.1:")  # bokeh serves it
    assert [e.kind for e in events].count("pair") == 7
    assert _numbers(local.table).equals(_numbers(serial.table))
    assert local.table["worker"].str.startswith("tcp://127.0.0.1:").all()
    for h in serial.table["pair_hash"]:
        with (
            np.load(data / "serial" / "pairs" / f"{h}.npz") as a,
            np.load(data / "local" / "pairs" / f"{h}.npz") as b,
        ):
            assert a.files == b.files
            for k in a.files:
                np.testing.assert_array_equal(a[k], b[k])


def test_existing_scheduler_address(data):
    from distributed import LocalCluster

    m = _yaml(data / "m.yaml", "x: [a0.npy]\ny: [b0.npy, b1.npy]\n")
    with LocalCluster(n_workers=1, processes=False, protocol="tcp",
                      dashboard_address="127.0.0.1:0",
                      host="127.0.0.1") as cluster:  # fmt: skip
        report = run_batch(m, data / "out", scheduler=cluster.scheduler_address)
    assert report.scheduler == cluster.scheduler_address
    assert (report.n_ok, report.n_computed) == (2, 2)


def test_docstring_examples():
    for module in (manifest,):
        assert doctest.testmod(module).failed == 0
