"""probconserv_ext.metrics: shock position, per-node log-likelihood, sampling with a generator, method comparison."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import LowRankMultivariateNormal, Normal

from probconserv_ext import (
    METHODS,
    LinearConstraint,
    ProbConserv,
    compare_methods,
    conservation_constraint,
    draw_samples,
    evaluate,
    gaussian_log_likelihood,
    posteriors,
    quadrature_weights,
    shock_positions,
)


def _grid(n, seed):
    """Strictly increasing, non-uniform grid of n nodes."""
    g = torch.Generator().manual_seed(seed)
    steps = 0.1 + torch.rand(n - 1, generator=g, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), steps.cumsum(0)])


# ---------------------------------------------------------------- shock position
@given(n=st.integers(2, 60), k=st.data(), seed=st.integers(0, 10_000), high=st.floats(0.1, 10.0),
       frac=st.floats(0.0, 0.99))
def test_shock_of_a_step_is_its_node(n, k, seed, high, frac):
    grid = _grid(n, seed)
    k = k.draw(st.integers(0, n - 1))
    step = torch.where(torch.arange(n) < k, torch.tensor(high, dtype=torch.float64), 0.0)
    # paper's rule: first node with u <= 0 is the step's node, exactly
    assert float(shock_positions(step, grid)) == float(grid[k])
    # any threshold below the jump gives the same node
    thr = frac * high
    assert float(shock_positions(step, grid, thr)) == float(grid[k])
    # crossing rule: the level thr is reached a fraction (high - thr) / high into the cell before node k
    found = float(shock_positions(step, grid, thr, rule="crossing"))
    expected = float(grid[0]) if k == 0 else float(grid[k - 1] + (high - thr) / high * (grid[k] - grid[k - 1]))
    assert math.isclose(found, expected, rel_tol=1e-12, abs_tol=1e-12 * float(grid[-1]))


@given(n=st.integers(3, 80), seed=st.integers(0, 10_000), thr=st.floats(-0.9, 0.9))
def test_crossing_of_a_linear_profile_is_exact(n, seed, thr):
    # u = 1 - 2 x / L crosses thr at x = L (1 - thr) / 2; linear interpolation is exact for a linear profile
    grid = _grid(n, seed)
    L = float(grid[-1])
    u = 1 - 2 * grid / L
    found = float(shock_positions(u, grid, thr, rule="crossing"))
    assert math.isclose(found, L * (1 - thr) / 2, rel_tol=1e-12, abs_tol=1e-12 * L)
    # the node rule gives the first node at or past it: never earlier than the crossing
    node = float(shock_positions(u, grid, thr))
    assert node >= found - 1e-12 * L
    i = int(torch.searchsorted(grid, torch.tensor(node, dtype=torch.float64)))
    assert i == 0 or float(grid[i - 1]) < found + 1e-12 * L


@settings(max_examples=30)
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3), n=st.integers(2, 30), seed=st.integers(0, 1000))
def test_shock_positions_are_per_sample(shape, n, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(*shape, n, generator=g, dtype=torch.float64)
    grid = _grid(n, seed)
    for rule in ("node", "crossing"):
        pos = shock_positions(u, grid, 0.1, rule=rule)
        assert pos.shape == tuple(shape)
        flat = u.reshape(-1, n)
        each = torch.stack([shock_positions(row, grid, 0.1, rule=rule) for row in flat]) if flat.shape[0] else pos
        torch.testing.assert_close(pos.reshape(-1), each.reshape(-1), rtol=0, atol=0)
        assert bool(((pos >= grid[0]) & (pos <= grid[-1])).all())


def test_shock_positions_without_crossing_and_numpy_input():
    grid = np.linspace(0, 1, 5)
    above = np.ones((2, 5))
    assert shock_positions(above, grid).tolist() == [1.0, 1.0]
    assert bool(torch.isnan(shock_positions(above, grid, no_crossing="nan")).all())
    assert bool(torch.isnan(shock_positions(above, grid, rule="crossing", no_crossing="nan")).all())
    # below the threshold already at the first node
    assert float(shock_positions(np.zeros(5), grid, rule="crossing")) == 0.0


@pytest.mark.parametrize(
    "samples, grid, kwargs, exc, match",
    [
        (np.zeros((2, 5)), np.linspace(0, 1, 6), {}, ValueError, "samples must have shape"),
        (np.full((2, 5), np.nan), np.linspace(0, 1, 5), {}, ValueError, "samples must be finite"),
        (np.zeros(5), np.array([0.0, 0.2, 0.2, 0.5, 1.0]), {}, ValueError, "strictly increasing"),
        (np.zeros(5), np.zeros((5, 1)), {}, ValueError, "grid must be a 1-D"),
        (np.zeros(5), np.linspace(0, 1, 5), dict(threshold=float("inf")), ValueError, "threshold must be finite"),
        (np.zeros(5), np.linspace(0, 1, 5), dict(threshold="0"), TypeError, "threshold"),
        (np.zeros(5), np.linspace(0, 1, 5), dict(rule="first"), ValueError, "rule"),
        (np.zeros(5), np.linspace(0, 1, 5), dict(no_crossing="end"), ValueError, "no_crossing"),
        ("abc", np.linspace(0, 1, 5), {}, TypeError, "samples"),
    ],
)
def test_shock_positions_rejects_bad_input(samples, grid, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        shock_positions(samples, grid, **kwargs)


# ---------------------------------------------------------------- log-likelihood
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=2), n=st.integers(1, 20), seed=st.integers(0, 1000),
       floor=st.sampled_from([0.0, 1e-3, 0.5]))
def test_log_likelihood_is_mean_marginal_log_density(shape, n, seed, floor):
    g = torch.Generator().manual_seed(seed)
    mean, y = (torch.randn(*shape, n, generator=g, dtype=torch.float64) for _ in range(2))
    var = 1e-3 + torch.rand(*shape, n, generator=g, dtype=torch.float64)
    ll = gaussian_log_likelihood(Normal(mean, var.sqrt()), y, var_floor=floor)
    ref = Normal(mean, var.clamp_min(floor).sqrt()).log_prob(y).mean(-1)
    assert ll.shape == tuple(shape)
    # float64; sqrt then square of the variance: a few ulp of the log-density's O(1 / var) terms
    torch.testing.assert_close(ll, ref, rtol=1e-12, atol=1e-10)


@given(n=st.integers(2, 15), r=st.integers(1, 4), seed=st.integers(0, 1000))
def test_log_likelihood_of_a_low_rank_prediction_uses_its_marginals(n, r, seed):
    g = torch.Generator().manual_seed(seed)
    mean, y = (torch.randn(3, n, generator=g, dtype=torch.float64) for _ in range(2))
    U = torch.randn(3, n, r, generator=g, dtype=torch.float64)
    d = 0.1 + torch.rand(3, n, generator=g, dtype=torch.float64)
    dist = LowRankMultivariateNormal(mean, U, d)
    ref = Normal(mean, (U.pow(2).sum(-1) + d).sqrt()).log_prob(y).mean(-1)
    torch.testing.assert_close(gaussian_log_likelihood(dist, y), ref, rtol=1e-12, atol=1e-10)


def test_log_likelihood_rejects_bad_input():
    dist = Normal(torch.zeros(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="target must have the prediction's shape"):
        gaussian_log_likelihood(dist, torch.zeros(4))
    with pytest.raises(ValueError, match="var_floor"):
        gaussian_log_likelihood(dist, torch.zeros(2, 4), var_floor=-1.0)
    with pytest.raises(TypeError, match="Distribution"):
        gaussian_log_likelihood(torch.zeros(2, 4), torch.zeros(2, 4))
    zero = Normal(torch.zeros(4), torch.zeros(4), validate_args=False)
    with pytest.raises(ValueError, match="var_floor > 0"):
        gaussian_log_likelihood(zero, torch.zeros(4))
    # with a floor the zero-variance node is finite
    assert bool(torch.isfinite(gaussian_log_likelihood(zero, torch.ones(4), var_floor=1e-6)))


# ---------------------------------------------------------------- sampling with a generator
def _lowrank(seed, batch=(2,), n=6, r=2):
    g = torch.Generator().manual_seed(seed)
    return LowRankMultivariateNormal(torch.randn(*batch, n, generator=g, dtype=torch.float64),
                                     torch.randn(*batch, n, r, generator=g, dtype=torch.float64),
                                     0.1 + torch.rand(*batch, n, generator=g, dtype=torch.float64))


def test_draw_samples_is_reproducible_and_leaves_global_rng_alone():
    c = conservation_constraint(torch.linspace(0, 1, 6, dtype=torch.float64), total=torch.ones(2))
    prior = _lowrank(0)
    for dist in (prior, Normal(prior.mean, prior.variance.sqrt()), ProbConserv(c)(prior)):
        torch.manual_seed(123)
        state = torch.get_rng_state()
        a = draw_samples(dist, (5,), torch.Generator().manual_seed(4))
        b = draw_samples(dist, (5,), torch.Generator().manual_seed(4))
        assert torch.equal(torch.get_rng_state(), state)
        assert a.shape == (5, 2, 6) and torch.equal(a, b)
        assert not torch.equal(a, draw_samples(dist, (5,), torch.Generator().manual_seed(5)))


def test_draw_samples_follow_the_distribution():
    # 20000 draws: the sample mean is within 5 standard errors of the mean (fixed seed, deterministic test)
    dist = _lowrank(1)
    s = draw_samples(dist, (20000,), torch.Generator().manual_seed(0))
    se = (dist.variance / s.shape[0]).sqrt()
    assert bool(((s.mean(0) - dist.mean).abs() <= 5 * se).all())
    torch.testing.assert_close(s.var(0), dist.variance, rtol=0.1, atol=0)


def test_draw_samples_rejects_bad_input():
    with pytest.raises(TypeError, match="Distribution"):
        draw_samples(torch.zeros(3), (2,))
    with pytest.raises(TypeError, match="generator"):
        draw_samples(_lowrank(0), (2,), generator=0)


# ---------------------------------------------------------------- the comparison of methods
@st.composite
def _case(draw):
    seed = draw(st.integers(0, 10_000))
    nt, n, r = draw(st.integers(1, 4)), draw(st.integers(4, 30)), draw(st.integers(1, 4))
    g = torch.Generator().manual_seed(seed)
    grid = _grid(n, seed)
    c = conservation_constraint(grid)
    mean = torch.rand(1, nt, n, generator=g, dtype=torch.float64)
    target = torch.rand(1, nt, n, generator=g, dtype=torch.float64)
    b = (target @ c.G.mT)  # (1, nt, 1): the target's total, positive (feasible for the non-negative update)
    if draw(st.booleans()):
        pred = Normal(mean, 0.05 + torch.rand(1, nt, n, generator=g, dtype=torch.float64))
    else:
        pred = LowRankMultivariateNormal(mean, 0.2 * torch.randn(1, nt, n, r, generator=g, dtype=torch.float64),
                                         0.01 + torch.rand(1, nt, n, generator=g, dtype=torch.float64))
    return pred, target, c, b


@settings(max_examples=40, deadline=None)
@given(case=_case())
def test_compare_methods(case):
    pred, target, c, b = case
    res = compare_methods(pred, target, c, b=b, var_floor=1e-9)
    assert tuple(res) == METHODS
    assert res["unconstrained"]["posterior"] is pred
    scale = torch.maximum(b.abs(), target @ c.G.mT).squeeze(-1)
    for method, r in res.items():
        post = r["posterior"]
        assert {k: v.shape for k, v in r.items() if k != "posterior"} == dict.fromkeys(
            ("mse", "ce_abs", "ce_rel", "ll"), pred.mean.shape[:-1])
        # the metrics are what they say, computed independently here
        ce = (post.mean @ c.G.mT - b).abs().squeeze(-1)
        torch.testing.assert_close(r["mse"], ((post.mean - target) ** 2).mean(-1), rtol=1e-12, atol=0)
        torch.testing.assert_close(r["ce_abs"], ce, rtol=1e-12, atol=0)
        torch.testing.assert_close(r["ce_rel"], ce / scale, rtol=1e-12, atol=0)
        ref_ll = Normal(post.mean, post.variance.clamp_min(1e-9).sqrt()).log_prob(target).mean(-1)
        torch.testing.assert_close(r["ll"], ref_ll, rtol=1e-9, atol=1e-9)
        if method != "unconstrained":
            # exact update in float64: round-off relative to the total (|b| and the mean are O(1))
            assert float(r["ce_rel"].max()) <= 1e-12
    # the posteriors are the layer's, with the same settings
    ref = ProbConserv(c)(pred, b=b)
    torch.testing.assert_close(res["probconserv"]["posterior"].mean, ref.mean, rtol=0, atol=0)
    ref = ProbConserv(c, method="hardc")(pred, b=b)
    torch.testing.assert_close(res["hardc"]["posterior"].mean, ref.mean, rtol=0, atol=0)
    assert float(res["probconserv+nn"]["posterior"].mean.min()) >= 0.0


def test_posteriors_subset_and_order():
    pred = _lowrank(0, batch=(1, 2), n=6)
    c = conservation_constraint(torch.linspace(0, 1, 6, dtype=torch.float64), total=torch.ones(1, 2))
    out = posteriors(pred, c, methods=("probconserv", "unconstrained"))
    assert tuple(out) == ("probconserv", "unconstrained")
    assert float((out["probconserv"].mean @ c.G.mT - c.b).abs().max()) <= 1e-12


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(methods=("exact",)), ValueError, "methods"),
        (dict(methods=()), ValueError, "methods"),
        (dict(methods=("hardc", "hardc")), ValueError, "methods"),
        (dict(prediction=torch.zeros(1, 2, 6)), TypeError, "prediction must be a torch Distribution"),
        (dict(constraint=torch.ones(1, 6)), TypeError, "constraint must be a LinearConstraint"),
    ],
)
def test_posteriors_rejects_bad_input(kwargs, exc, match):
    args = dict(prediction=_lowrank(0, batch=(1, 2)), constraint=conservation_constraint(torch.linspace(0, 1, 6)),
                b=torch.ones(1, 2, 1))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        posteriors(args.pop("prediction"), args.pop("constraint"), **args)


def test_evaluate_rejects_bad_input():
    pred = _lowrank(0, batch=(1, 2))
    c = conservation_constraint(torch.linspace(0, 1, 6))
    with pytest.raises(ValueError, match="b is required"):
        evaluate(pred, torch.zeros(1, 2, 6), c)
    with pytest.raises(ValueError, match=r"b of shape \(3, 2, 1\) .*would broadcast"):
        evaluate(pred, torch.zeros(1, 2, 6), c, b=torch.ones(3, 2, 1))  # would broadcast into a bigger result
    with pytest.raises(ValueError, match="b must have shape"):
        evaluate(pred, torch.zeros(1, 2, 6), c, b=torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="target must have the prediction's shape"):
        evaluate(pred, torch.zeros(2, 6), c, b=torch.ones(1, 2, 1))
    with pytest.raises(ValueError, match="n = 5 nodes"):
        evaluate(pred, torch.zeros(1, 2, 6), LinearConstraint(torch.ones(1, 5)), b=torch.ones(1))
    with pytest.raises(ValueError, match="target must be finite"):
        evaluate(pred, torch.full((1, 2, 6), float("nan")), c, b=torch.ones(1, 2, 1))


def test_relative_conservation_error_with_zero_scale():
    # zero target and zero total: the relative error is 0 where the prediction conserves, inf where it does not
    c = conservation_constraint(torch.linspace(0, 1, 5, dtype=torch.float64))
    mean = torch.stack([torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)])
    out = evaluate(Normal(mean, torch.ones_like(mean)), torch.zeros(2, 5), c, b=torch.zeros(2, 1))
    assert out["ce_rel"].tolist() == [0.0, math.inf]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 20), nt=st.integers(1, 4), seed=st.integers(0, 10_000), constraint_b=st.booleans())
def test_evaluate_computes_in_the_predictions_dtype(n, nt, seed, constraint_b):
    # a float32 constraint and a float64 prediction: G is cast up, b is taken in float64 (not rounded to float32)
    g = torch.Generator().manual_seed(seed)
    grid = torch.sort(torch.rand(n, generator=g)).values + torch.arange(n) * 1e-3  # strictly increasing, float32
    G = quadrature_weights(grid)[None]
    mean = torch.randn(nt, n, generator=g, dtype=torch.float64)
    b = 1 / 3 + torch.randn(nt, 1, generator=g, dtype=torch.float64)  # not representable in float32
    c = LinearConstraint(G, b) if constraint_b else LinearConstraint(G)
    out = evaluate(Normal(mean, torch.ones_like(mean)), mean, c, b=None if constraint_b else b)
    ce = (mean @ G.double().mT - (c.b.double() if constraint_b else b)).abs().squeeze(-1)
    torch.testing.assert_close(out["ce_abs"], ce, rtol=0, atol=0)
    assert out["mse"].dtype == torch.float64 and bool((out["mse"] == 0).all())


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda d, t: gaussian_log_likelihood(d, t, var_floor="0"), TypeError, "var_floor must be a real number"),
        (lambda d, t: gaussian_log_likelihood(d, t, var_floor=float("nan")), ValueError, "var_floor must be finite"),
        (lambda d, t: shock_positions(t, torch.linspace(0, 1, 4), threshold=True), TypeError, "threshold"),
        (lambda d, t: draw_samples(d, (2,), generator=torch.zeros(1)), TypeError, "generator must be"),
        (lambda d, t: evaluate(d, t, "G", b=torch.ones(1)), TypeError, "constraint must be a LinearConstraint"),
    ],
)
def test_metrics_name_the_bad_argument(call, exc, match):
    dist = Normal(torch.zeros(2, 4), torch.ones(2, 4))
    with pytest.raises(exc, match=match):
        call(dist, torch.zeros(2, 4))
