"""Non-negative ProbConserv: exact conservation and non-negativity together, certified by the KKT conditions.

The problem  min (u - mu)^T D^-1 (u - mu) [+ (g.u - b)^2 / s2]  s.t. u >= 0 [, g.u = b]  is convex, so the KKT
conditions checked here prove optimality: u_i = max(0, mu_i - lam d_i g_i) for one multiplier lam.
Tolerances: float64 round-off scaled by the magnitudes involved (1e-9 relative).
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pc_reference import random_grid

from probconserv_ext import (
    LinearConstraint,
    ProbConserv,
    conservation_constraint,
    quadrature_weights,
    stack_constraints,
    value_constraint,
)

TOL = 1e-9


@st.composite
def nonneg_problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    n = draw(st.integers(3, 40))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    rule = draw(st.sampled_from(["trapezoid", "rectangle"]))  # rectangle has a zero weight at the last node
    g = torch.Generator().manual_seed(seed)
    w = quadrature_weights(random_grid(g, n), rule=rule)
    mu = torch.randn(*batch, n, generator=g, dtype=torch.float64) + draw(st.floats(-1, 1))
    d = torch.rand(*batch, n, generator=g, dtype=torch.float64) + 0.01
    total = (mu.clamp_min(0) @ w) * draw(st.floats(0.05, 3.0))
    noise = draw(st.sampled_from([0.0, 0.0, 1e-3, 1.0]))
    return w, mu, d, total, noise


@given(nonneg_problems())
def test_nonnegative_update_satisfies_kkt(problem):
    w, mu, d, total, noise = problem
    layer = ProbConserv(LinearConstraint(w[None], total[..., None]), noise=noise, nonnegative=True)
    post = layer(mu, variance=d)
    u = post.mean
    scale = (w.abs() * mu.abs()).sum(-1) + total.abs() + 1
    assert (u >= -TOL * scale[..., None]).all()
    res = u @ w - total
    if noise == 0:
        assert (res.abs() <= TOL * scale).all()
    # One multiplier for every free node: lam = (mu_i - u_i) / (d_i g_i) where u_i > 0 and d_i g_i != 0.
    c = d * w
    free = (u > TOL * scale[..., None]) & (c != 0)
    lam_i = torch.where(free, (mu - u) / torch.where(c != 0, c, torch.ones_like(c)), torch.nan)
    lam = torch.nanmean(lam_i, dim=-1)
    spread = torch.where(free, (lam_i - lam[..., None]).abs() * c.abs(), torch.zeros_like(c))
    assert (spread <= TOL * scale[..., None]).all()
    if noise > 0:
        has_free = free.any(-1)
        gap = torch.where(has_free, (lam - res / noise).abs(), torch.zeros_like(lam))
        assert (gap <= TOL * scale / noise * 10).all()
    # Pinned nodes: the unconstrained KKT value mu_i - lam c_i is <= 0 there (where lam is defined).
    pinned = (u <= TOL * scale[..., None]) & free.any(-1, keepdim=True)
    assert (torch.where(pinned, mu - lam[..., None] * c, torch.zeros_like(c)) <= TOL * scale[..., None] * 10).all()
    # Variance: zero on pinned nodes, and never above the prior.
    assert (post.variance <= d + TOL).all()
    assert (post.variance[u <= 0] <= TOL).all()


def test_nonnegative_recovers_plain_update_when_inactive():
    x = torch.linspace(0, 1, 50, dtype=torch.float64)
    mu = 2 + torch.sin(6 * x)
    var = 0.1 + x
    c = conservation_constraint(x, total=2.3)
    a = ProbConserv(c, nonnegative=True)(mu, variance=var)
    b = ProbConserv(c)(mu, variance=var)
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.variance, b.variance, rtol=1e-12, atol=1e-12)


def test_nonnegative_shock_profile_and_samples():
    # A Stefan-like front: mean overshoots below zero beyond the shock, where the variance is largest.
    x = torch.linspace(0, 1, 200, dtype=torch.float64)
    mu = 1 - 1.3 * x
    var = 1e-3 + torch.exp(-((x - 0.6) / 0.1) ** 2)
    c = conservation_constraint(x, total=0.4)
    post = ProbConserv(c, nonnegative=True)(mu, variance=var)
    assert post.mean.min() >= 0 and abs(float(post.constraint_residual())) < 1e-14
    plain = ProbConserv(c)(mu, variance=var)
    assert plain.mean.min() < 0  # the plain update would go negative here
    s = post.rsample((64,), generator=torch.Generator().manual_seed(0))
    assert (s @ c.G[0] - 0.4).abs().max() < 1e-13
    assert (s[:, post.mean == 0] == 0).all()  # pinned nodes are exactly zero in every sample


def test_hardc_nonnegative():
    x = torch.linspace(0, 1, 30, dtype=torch.float64)
    mu = torch.sin(9 * x)
    post = ProbConserv(conservation_constraint(x, total=0.3), method="hardc", nonnegative=True)(
        mu, variance=torch.ones_like(mu))
    assert post.mean.min() >= 0 and abs(float(post.constraint_residual())) < 1e-14


def test_nonnegative_errors():
    x = torch.linspace(0, 1, 10, dtype=torch.float64)
    c = conservation_constraint(x, total=-1.0)
    with pytest.raises(ValueError, match="infeasible"):
        ProbConserv(c, nonnegative=True)(torch.rand(10, dtype=torch.float64), variance=torch.ones(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="infeasible"):
        mu = torch.rand(10, dtype=torch.float64)
        mu[3] = -1
        var = torch.ones(10, dtype=torch.float64)
        var[3] = 0
        ProbConserv(conservation_constraint(x, total=1.0), nonnegative=True)(mu, variance=var)
    with pytest.raises(ValueError, match="diagonal covariance"):
        ProbConserv(conservation_constraint(x, total=1.0), nonnegative=True)(
            torch.rand(10, dtype=torch.float64), covariance=torch.eye(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="one constraint row plus"):
        ProbConserv(LinearConstraint(torch.ones(2, 10)), nonnegative=True)
    walls = value_constraint(10, [0], -1.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="known node value"):
        ProbConserv(stack_constraints(conservation_constraint(x, total=1.0), walls), nonnegative=True)(
            torch.rand(10, dtype=torch.float64), variance=torch.ones(10, dtype=torch.float64))


@given(st.integers(0, 2**31 - 1), st.integers(5, 40), st.floats(0.0, 2.0), st.sampled_from([0.0, 1e-2]))
def test_nonnegative_with_known_boundary_value(seed, n, left, noise):
    # Stefan-like: u(0, t) = left is known; conservation and non-negativity hold, the left node equals its value.
    g = torch.Generator().manual_seed(seed)
    x = random_grid(g, n)
    mu = torch.randn(3, n, generator=g, dtype=torch.float64)
    var = torch.rand(3, n, generator=g, dtype=torch.float64) + 0.01
    total = torch.rand(3, generator=g, dtype=torch.float64) + left * float(x[1] - x[0])
    c = stack_constraints(conservation_constraint(x, total=total),
                          value_constraint(n, [0], torch.full((3, 1), left, dtype=torch.float64)))
    post = ProbConserv(c, noise=noise, nonnegative=True)(mu, variance=var)
    u = post.mean
    scale = 1 + total.abs()[:, None] + (u.abs() * c.G[0]).sum(-1, keepdim=True)
    assert (u >= -TOL * scale).all()
    torch.testing.assert_close(u[:, 0], torch.full((3,), left, dtype=torch.float64), rtol=0, atol=TOL)
    if noise == 0:
        assert (post.constraint_residual().abs() <= TOL * scale).all()
