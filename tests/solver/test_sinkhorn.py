"""Entropic partial OT in torch, checked against POT's exact solver, float64
re-solves and brute-force properties of the plan."""

import numpy as np
import ot
import pytest
import torch
from scipy.stats import spearmanr

from solver.exceptions import PSMDConvergenceWarning, PSMDInputError
from solver.preprocessing import prepare
from solver.result import PartialResult
from solver.sinkhorn import SinkhornSolver, resolve_device, sinkhorn_entry_masses

MASSES = [0.0, 0.2, 0.5, 0.8, 1.0]


def random_cost(rng, n_x=40, n_y=60, n_stimuli=200):
    """1 - Pearson r between independent Gaussian units."""
    X = rng.normal(size=(n_stimuli, n_x))
    Y = rng.normal(size=(n_stimuli, n_y))
    return prepare(X, Y, warn=False).cost


def uniform(n):
    return np.full(n, 1.0 / n)


def exact_cost(cost, mass, a=None, b=None):
    """POT's exact partial-OT value."""
    a = uniform(cost.shape[0]) if a is None else a
    b = uniform(cost.shape[1]) if b is None else b
    return float(np.sum(ot.partial.partial_wasserstein(a, b, cost, m=mass) * cost))


def solver64(reg, **kwargs):
    return SinkhornSolver(reg=reg, dtype=torch.float64, device="cpu", **kwargs)


@pytest.mark.parametrize("mass", MASSES, ids=[f"mass={m}" for m in MASSES])
def test_plan_is_feasible(rng, mass):
    cost = random_cost(rng)
    tol = 1e-6
    res = solver64(0.01, tol=tol)(cost, mass)
    assert res.converged and res.marginal_error < tol
    assert np.all(res.plan >= 0)
    assert np.all(res.row_marginal <= uniform(40) + tol)
    assert np.all(res.col_marginal <= uniform(60) + tol)
    assert res.transported_mass == pytest.approx(mass, abs=tol)


@pytest.mark.parametrize("n", [100, 594, 3158])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_full_mass_is_feasible_for_every_size(rng, n, dtype):
    """Mass 1 must not be refused because sum(1/n) rounds below 1 (float32)."""
    cost = rng.random((n, 7))
    solver = SinkhornSolver(reg=0.1, tol=1e-4, dtype=dtype, device="cpu")
    res = solver.solve_many(cost, [0.5, 1.0])[-1]
    assert res.converged
    assert res.transported_mass == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(PSMDInputError, match="mass=1.001"):
        solver(cost, 1.001)


def test_general_weights_are_feasible_and_near_exact(rng):
    cost = random_cost(rng, 30, 20)
    a = rng.uniform(0.5, 1.5, 30) / 30
    b = rng.uniform(0.5, 1.5, 20) / 25
    mass = 0.6 * min(a.sum(), b.sum())
    res = solver64(0.002)(cost, mass, a=a, b=b)
    assert np.all(res.row_marginal <= a + 1e-6)
    assert np.all(res.col_marginal <= b + 1e-6)
    assert res.transported_mass == pytest.approx(mass, abs=1e-6)
    exact = exact_cost(cost, mass, a, b)
    assert exact <= res.transport_cost <= exact * 1.01


@pytest.mark.parametrize("mass", [0.3, 0.5, 0.7])
def test_approaches_exact_as_reg_shrinks(rng, mass):
    cost = random_cost(rng)
    exact = exact_cost(cost, mass)
    gaps = []
    for fraction in [0.02, 0.01, 0.002]:
        res = solver64(fraction * cost.mean())(cost, mass)
        gaps.append((res.transport_cost - exact) / exact)
    assert all(g > -1e-9 for g in gaps)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.02


def test_float32_matches_float64(rng):
    cost = random_cost(rng)
    reg = 0.005 * cost.mean()
    res32 = SinkhornSolver(reg=reg, dtype=torch.float32, device="cpu")(cost, 0.5)
    res64 = solver64(reg)(cost, 0.5)
    assert res32.converged and res64.converged
    assert np.abs(res32.plan - res64.plan).sum() < 1e-4
    assert res32.transport_cost == pytest.approx(res64.transport_cost, rel=1e-4)
    # Potentials are defined up to (f + c, g - c); compare f_i + g_j.
    sums32 = res32.f[:, None] + res32.g[None, :]
    sums64 = res64.f[:, None] + res64.g[None, :]
    assert np.abs(sums32 - sums64).max() < 1e-3 * reg


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_small_reg_stays_finite(rng, dtype):
    # At reg = 1e-4 * mean cost Sinkhorn needs far more than 300 iterations;
    # what must hold is a finite, non-negative plan and an honest report.
    cost = random_cost(rng)
    solver = SinkhornSolver(
        reg=1e-4 * cost.mean(), dtype=dtype, device="cpu", max_iter=300
    )
    with pytest.warns(PSMDConvergenceWarning):
        res = solver(cost, 0.5)
    assert not res.converged
    assert np.all(np.isfinite(res.plan)) and np.all(res.plan >= 0)
    assert np.all(np.isfinite(res.f)) and np.all(np.isfinite(res.g))
    assert np.all(np.isfinite(res.errors))
    assert np.all(res.col_marginal <= uniform(60) + 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_reg_of_a_thousandth_of_the_mean_cost_converges(rng, dtype):
    cost = random_cost(rng)
    res = SinkhornSolver(reg=1e-3 * cost.mean(), dtype=dtype, device="cpu")(cost, 0.5)
    assert res.converged
    assert res.transported_mass == pytest.approx(0.5, abs=1e-6)
    exact = exact_cost(cost, 0.5)
    assert exact <= res.transport_cost + 1e-6 <= exact * 1.002


@pytest.mark.parametrize("init_kind", ["result", "tuple"])
def test_warm_start_is_faster_and_lands_on_the_same_plan(rng, init_kind):
    cost = random_cost(rng)
    solver = solver64(0.005 * cost.mean(), check_every=1)
    previous = solver(cost, 0.5)
    init = previous if init_kind == "result" else (previous.f, previous.g)
    cold = solver(cost, 0.52)
    warm = solver(cost, 0.52, init=init)
    assert warm.converged
    assert warm.n_iter < cold.n_iter / 2
    assert np.abs(warm.plan - cold.plan).sum() < 1e-5


def test_solve_many_equals_separate_calls(rng):
    cost = random_cost(rng)
    solver = solver64(0.01 * cost.mean(), tol=1e-9)
    masses = [0.1, 0.45, 0.9]
    batch = solver.solve_many(cost, masses)
    assert [r.mass for r in batch] == masses
    for res, mass in zip(batch, masses, strict=True):
        single = solver(cost, mass)
        assert np.abs(res.plan - single.plan).sum() < 1e-7
        assert np.allclose(res.f[:-1] - res.f[0], single.f[:-1] - single.f[0])


def test_solve_many_takes_one_init_per_mass(rng):
    cost = random_cost(rng)
    solver = solver64(0.01 * cost.mean(), check_every=1)
    first = solver.solve_many(cost, [0.3, 0.6])
    again = solver.solve_many(cost, [0.31, 0.61], init=first)
    assert again[0].n_iter < first[0].n_iter / 2
    assert all(r.converged for r in again)


def test_max_iter_one_warns_and_is_not_converged(rng):
    cost = random_cost(rng)
    with pytest.warns(PSMDConvergenceWarning, match="max_iter"):
        res = solver64(0.01, max_iter=1)(cost, 0.5)
    assert res.converged is False
    assert res.n_iter == 1 and res.errors.shape == (1,)
    assert res.marginal_error > 1e-6
    with pytest.warns(PSMDConvergenceWarning):
        batch = solver64(0.01, max_iter=1).solve_many(cost, [0.2, 0.4])
    assert not any(r.converged for r in batch)


def test_permuted_copy_gives_near_permutation_plan(rng):
    n = 30
    X = rng.normal(size=(200, n))
    perm = rng.permutation(n)
    cost = prepare(X, X[:, perm], warn=False).cost
    res = SinkhornSolver(reg=0.002 * cost.mean(), device="cpu")(cost, 1.0)
    assert res.converged
    assert np.array_equal(res.plan.argmax(axis=1), np.argsort(perm))
    assert res.plan[perm, np.arange(n)].sum() > 0.999
    assert res.transport_cost < 1e-4


def test_swapping_sides_transposes_the_plan(rng):
    cost = random_cost(rng)
    solver = solver64(0.005 * cost.mean(), tol=1e-9)
    res = solver(cost, 0.6)
    swapped = solver(cost.T, 0.6)
    assert np.abs(swapped.plan - res.plan.T).sum() < 1e-7
    assert swapped.transport_cost == pytest.approx(res.transport_cost, rel=1e-9)


def test_result_fields(rng):
    cost = random_cost(rng)
    seen = []
    solver = SinkhornSolver(device="cpu", callback=lambda k, e: seen.append((k, e)))
    res = solver(cost, 0.5)
    assert isinstance(res, PartialResult)
    assert res.method == "sinkhorn" and res.device == "cpu"
    assert res.reg == pytest.approx(0.01 * cost.mean())
    assert res.plan.dtype == np.float64 and res.plan.shape == (40, 60)
    assert res.f.shape == (41,) and res.g.shape == (61,)
    assert np.array_equal(res.cost, cost) and res.mass == 0.5
    assert res.n_iter % 10 == 0 and res.time_s > 0
    assert [k for k, _ in seen] == list(range(10, res.n_iter + 1, 10))
    assert np.allclose([e for _, e in seen], res.errors)
    assert res.marginal_error == res.errors[-1] < 1e-6


def test_potentials_are_dual_feasible_at_small_reg(rng):
    cost = random_cost(rng)
    reg = 0.002 * cost.mean()
    res = solver64(reg)(cost, 0.5)
    f, g = res.f, res.g
    slack = 20 * reg
    assert np.all(f[:-1, None] + g[None, :-1] <= cost + slack)
    assert np.all(f[:-1] + g[-1] <= slack) and np.all(f[-1] + g[:-1] <= slack)
    active = res.plan > 1e-3 * res.plan.max()
    assert np.allclose((f[:-1, None] + g[None, :-1])[active], cost[active], atol=slack)


def test_torch_tensor_cost_is_accepted(rng):
    cost = random_cost(rng)
    solver = solver64(0.01)
    from_numpy = solver(cost, 0.5)
    from_torch = solver(torch.from_numpy(cost), 0.5)
    assert np.allclose(from_numpy.plan, from_torch.plan)
    assert from_torch.cost.dtype == np.float64


def test_entry_masses_agree_with_exact_plans_on_a_grid(rng):
    n, k = 40, 16
    X = rng.normal(size=(300, n))
    Y = rng.normal(size=(300, n))
    Y[:, :k] = X[:, :k] + 0.5 * rng.normal(size=(300, k))
    cost = prepare(X, Y, warn=False).cost
    # The grid avoids k/n = 0.4, a kink of the path where Sinkhorn is slow.
    grid = np.round(np.arange(0.025, 1.0, 0.05), 3)
    entry_x, entry_y = sinkhorn_entry_masses(cost, grid, solver=solver64(None))
    exact_x, exact_y = np.ones(n), np.ones(n)
    for mass in grid[::-1]:
        plan = ot.partial.partial_wasserstein(uniform(n), uniform(n), cost, m=mass)
        exact_x[n * plan.sum(axis=1) > 1e-3] = mass
        exact_y[n * plan.sum(axis=0) > 1e-3] = mass
    assert spearmanr(entry_x, exact_x)[0] > 0.9
    assert spearmanr(entry_y, exact_y)[0] > 0.9
    assert np.all(entry_x <= exact_x + 1e-12)
    assert entry_x[:k].max() < entry_x[k:].min()
    assert entry_y[:k].max() < entry_y[k:].min()


def test_entry_masses_of_never_active_units_are_one():
    cost = np.array([[0.1, 2.0, 2.0], [2.0, 0.5, 2.0], [2.0, 2.0, 0.9]])
    entry_x, entry_y = sinkhorn_entry_masses(cost, [0.6, 0.3], solver=solver64(0.01))
    assert entry_x.tolist() == [0.3, 0.6, 1.0]
    assert entry_y.tolist() == [0.3, 0.6, 1.0]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == (expected or "cpu")


BAD_OPTIONS = [
    ({"reg": 0.0}, r"reg=0\.0"),
    ({"reg": float("nan")}, "reg=nan"),
    ({"max_iter": 0}, "max_iter=0"),
    ({"tol": -1.0}, "tol=-1.0"),
    ({"check_every": 0}, "check_every=0"),
    ({"dtype": torch.int64}, "dtype=torch.int64"),
]


@pytest.mark.parametrize(
    ("options", "match"), BAD_OPTIONS, ids=[m for _, m in BAD_OPTIONS]
)
def test_bad_options_raise(options, match):
    with pytest.raises(PSMDInputError, match=match):
        SinkhornSolver(**options)


def bad_calls():
    cost = np.ones((3, 4)) * 0.5
    nan_cost = cost.copy()
    nan_cost[0, 0] = np.nan
    good = (np.zeros(4), np.zeros(5))
    return [
        ("1-D cost", (np.ones(3), 0.5), {}, "2-D"),
        ("text cost", (np.array([["a"]]), 0.5), {}, "numeric"),
        ("NaN cost", (nan_cost, 0.5), {}, "NaN or infinite"),
        ("empty cost", (np.ones((0, 3)), 0.0), {}, "empty"),
        ("negative mass", (cost, -0.1), {}, r"mass=-0\.1"),
        ("mass too big", (cost, 1.5), {}, r"mass=1\.5"),
        ("a shape", (cost, 0.5), {"a": np.ones(4) / 4}, r"a has shape \(4,\)"),
        ("b negative", (cost, 0.5), {"b": np.array([1.0, 1, 1, -1])}, "b has neg"),
        ("a all zero", (cost, 0.0), {"a": np.zeros(3)}, "a sums to 0"),
        ("init shape", (cost, 0.5), {"init": (np.zeros(3), np.zeros(5))}, "init pot"),
        ("init type", (cost, 0.5), {"init": "warm"}, "init of type str"),
        ("init None", (cost, 0.5), {"init": (None, None)}, "no potentials"),
        ("init NaN", (cost, 0.5), {"init": (np.full(4, np.nan), good[1])}, "NaN"),
        ("zero-mean cost", (np.zeros((3, 4)), 0.5), {}, "reg=None gives"),
    ]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [c[1:] for c in bad_calls()],
    ids=[c[0] for c in bad_calls()],
)
def test_bad_inputs_raise(args, kwargs, match):
    with pytest.raises(PSMDInputError, match=match):
        SinkhornSolver(device="cpu")(*args, **kwargs)


def test_bad_batch_inputs_raise():
    cost = np.full((3, 4), 0.5)
    solver = SinkhornSolver(device="cpu")
    with pytest.raises(PSMDInputError, match="masses is empty"):
        solver.solve_many(cost, [])
    first = solver(cost, 0.3)
    with pytest.raises(PSMDInputError, match="init has 2 entries for 3 masses"):
        solver.solve_many(cost, [0.1, 0.2, 0.3], init=[first, first])
    with pytest.raises(PSMDInputError, match="threshold=0"):
        sinkhorn_entry_masses(cost, [0.5], solver=solver, threshold=0)
    with pytest.raises(PSMDInputError, match="masses is empty"):
        sinkhorn_entry_masses(cost, [], solver=solver)


def test_bad_device_raises():
    with pytest.raises(PSMDInputError, match="not a torch device"):
        resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(PSMDInputError, match="CUDA is not available"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(PSMDInputError, match="MPS is not available"):
            resolve_device("mps")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu(rng):
    cost = random_cost(rng)
    reg = 0.005 * cost.mean()
    cpu = SinkhornSolver(reg=reg, device="cpu")(cost, 0.5)
    gpu = SinkhornSolver(reg=reg, device="cuda")(cost, 0.5)
    assert gpu.device.startswith("cuda") and gpu.converged
    assert np.abs(gpu.plan - cpu.plan).sum() < 1e-4
    assert gpu.transport_cost == pytest.approx(cpu.transport_cost, rel=1e-4)
    many = SinkhornSolver(reg=reg, device="cuda").solve_many(cost, [0.3, 0.5])
    assert np.abs(many[1].plan - cpu.plan).sum() < 1e-4
