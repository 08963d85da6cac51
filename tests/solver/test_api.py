"""The notebook API: compare, path and the fit/score estimator."""

import numpy as np
import pytest

from solver.api import PartialSoftMatching, compare, path, resolve_mass
from solver.exact import solve_exact
from solver.exceptions import PSMDInputError
from solver.preprocessing import prepare
from solver.synthetic import planted_pair


def test_compare_matches_the_exact_solver_and_maps_indices(rng):
    X = rng.normal(size=(120, 10))
    Y = np.c_[X[:, ::-1] + 0.2 * rng.normal(size=(120, 10)), np.ones(120)]
    with pytest.warns(UserWarning, match="excluded 0 unit"):
        c = compare(X, Y, unmatched=0.3)
    ref = solve_exact(prepare(X, Y, warn=False).cost, 0.7)
    assert c.result.transport_cost == pytest.approx(ref.transport_cost, rel=1e-9)
    assert 10 not in c.ranking_y  # the constant column is excluded, not ranked
    assert c.plan_full().shape == (10, 11)
    assert c.plan_full()[:, 10].sum() == 0
    d = c.to_dict()
    assert d["excluded_y"] == [{"index": 10, "reason": d["excluded_y"][0]["reason"]}]
    assert d["mass"] == pytest.approx(0.7) and d["unmatched"] == pytest.approx(0.3)


def test_path_finds_the_planted_elbow():
    p = planted_pair(seed=0)
    summary = path(p.X, p.Y)
    d = summary.to_dict()
    assert d["elbow"] == pytest.approx(100 / 190, abs=0.02)
    top = set(d["ranking_y"][:100])
    assert top == set(np.flatnonzero(p.signal_y).tolist())
    assert d["masses"][0] == 0 and d["masses"][-1] == pytest.approx(1.0)


def test_estimator_fit_score(rng):
    X = rng.normal(size=(300, 15))
    Y = X + 0.3 * rng.normal(size=(300, 15))
    m = PartialSoftMatching(unmatched=0.2).fit(X[:200], Y[:200])
    held_out = m.score(X[200:], Y[200:])
    assert 0.8 < held_out <= 1.0
    in_sample = m.fit_score(X, Y, kind="raw")
    assert in_sample == pytest.approx(m.result_.raw_score, abs=1e-12)
    with pytest.raises(PSMDInputError, match="kind='bad' is not known"):
        m.score(X, Y, kind="bad")
    with pytest.raises(PSMDInputError, match="not fitted"):
        PartialSoftMatching().score(X, Y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unmatched": 1.0}, "allowed: 0 <= unmatched < 1"),
        ({"unmatched": -0.1}, "allowed: 0 <= unmatched < 1"),
        ({"mass": 0.0}, "allowed: 0 < mass <= 1"),
        ({"mass": 1.2}, "allowed: 0 < mass <= 1"),
        ({"mass": 0.5, "unmatched": 0.5}, "not both"),
    ],
)
def test_resolve_mass_errors(kwargs, match):
    with pytest.raises(PSMDInputError, match=match):
        resolve_mass(**kwargs)


def test_unknown_method(rng):
    X = rng.normal(size=(20, 3))
    with pytest.raises(PSMDInputError, match="method='lp' is not known"):
        compare(X, X, method="lp")


def test_sinkhorn_method_close_to_exact(rng):
    X = rng.normal(size=(150, 12))
    Y = X + 0.5 * rng.normal(size=(150, 12))
    exact = compare(X, Y, unmatched=0.25)
    ent = compare(X, Y, unmatched=0.25, method="sinkhorn", reg=0.002, device="cpu")
    assert ent.result.method == "sinkhorn" and ent.result.converged
    assert ent.result.transport_cost == pytest.approx(
        exact.result.transport_cost, rel=0.05
    )


def test_fit_score_follows_scikit_learn_conventions(rng):
    from sklearn.base import clone

    from solver.api import PartialSoftMatching

    X = rng.normal(size=(120, 8))
    Y = X + 0.2 * rng.normal(size=(120, 8))
    m = PartialSoftMatching(unmatched=0.2)
    assert m.get_params()["unmatched"] == 0.2 and not hasattr(m, "plan_")
    assert m.fit(X[:80], Y[:80]) is m
    held_out = m.score(X[80:], Y[80:])
    assert 0.8 < held_out <= 1.0
    twin = clone(m).set_params(unmatched=0.5)
    assert twin.get_params()["unmatched"] == 0.5 and not hasattr(twin, "plan_")
    assert twin.fit_score(X, Y) >= m.fit_score(X, Y) - 1e-12  # fewer, better pairs
    assert "unmatched=0.5" in repr(twin)
    with pytest.raises(PSMDInputError, match="'eps' is not a parameter"):
        m.set_params(eps=0.1)
