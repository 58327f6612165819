"""Dtypes, batching, gradients, log-likelihoods, HardC and cost of the ProbConserv layer."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pc_reference import call, dense_update, random_constraint_matrix, random_prior

from probconserv_ext import (
    DowndatedCovariance,
    LinearConstraint,
    ProbConserv,
    conservation_constraint,
    flatten_field,
    gaussian_nll,
    unflatten_field,
)

RTOL = 1e-9
seeds = st.integers(0, 2**31 - 1)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@given(seeds, st.sampled_from(["diag", "dense", "lowrank", "normal", "ensemble"]))
def test_float32_in_float32_out(seed, form):
    g = gen(seed)
    kwargs, mu, S = random_prior(g, form, (3,), 12, dtype=torch.float32)
    c = conservation_constraint(torch.linspace(0, 1, 12), total=torch.ones(3))
    post = call(ProbConserv(c), kwargs)
    for t in (post.mean, post.variance, post.covariance_matrix, post.rsample((2,), generator=g)):
        assert t.dtype == torch.float32
    # The float64 computation makes the float32 mean conserve to float32 round-off (eps = 1.2e-7).
    res = post.mean.double() @ c.G.double().T - 1.0
    assert res.abs().max() <= 4 * torch.finfo(torch.float32).eps * (post.mean.abs() @ c.G.T.abs()).max()


@settings(max_examples=8)
@given(seeds, st.integers(4, 30))
def test_leading_dimensions_are_batched(seed, n):
    g = gen(seed)
    mu = torch.randn(2, 5, 3, n, generator=g, dtype=torch.float64)
    var = torch.rand(2, 5, 3, n, generator=g, dtype=torch.float64) + 0.1
    b = torch.randn(5, 1, 1, generator=g, dtype=torch.float64)  # one total per time slice, shared by batch/channel
    G = random_constraint_matrix(g, n, 1)
    post = ProbConserv(LinearConstraint(G))(mu, variance=var, b=b)
    # Reference: the dense formula slice by slice (flattened leading dimensions).
    for k, (mu_k, var_k, b_k) in enumerate(zip(mu.reshape(-1, n), var.reshape(-1, n), b.expand(2, 5, 3, 1).reshape(-1, 1))):
        ref_mu, ref_S = dense_update(mu_k, torch.diag(var_k), G, b_k, 0.0)
        torch.testing.assert_close(post.mean.reshape(-1, n)[k], ref_mu, rtol=RTOL, atol=RTOL)
        torch.testing.assert_close(post.variance.reshape(-1, n)[k], torch.diagonal(ref_S), rtol=RTOL, atol=RTOL)


def test_two_dimensional_grid_with_flattening():
    x, y = torch.linspace(0, 1, 9, dtype=torch.float64), torch.linspace(0, 2, 7, dtype=torch.float64) ** 2
    field = torch.randn(4, 9, 7, dtype=torch.float64)
    c = conservation_constraint((x, y), total=torch.full((4,), 3.0, dtype=torch.float64))
    post = ProbConserv(c)(flatten_field(field, 2), variance=torch.ones(4, 63, dtype=torch.float64))
    out = unflatten_field(post.mean, (9, 7))
    integral = torch.trapezoid(torch.trapezoid(out, y, dim=-1), x, dim=-1)
    torch.testing.assert_close(integral, torch.full((4,), 3.0, dtype=torch.float64), rtol=0, atol=1e-12)


@settings(max_examples=6)
@given(seeds, st.sampled_from(["diag", "dense", "lowrank"]), st.sampled_from([0.0, 0.3]))
def test_gradients_flow_to_mean_covariance_noise(seed, form, noise):
    g = gen(seed)
    kwargs, mu, S = random_prior(g, form, (2,), 5)
    G = random_constraint_matrix(g, 5, 2)
    b = torch.randn(2, 2, generator=g, dtype=torch.float64)
    keys = [k for k in ("mean", "variance", "covariance", "cov_factor", "cov_diag") if k in kwargs]
    inputs = [kwargs[k].clone().requires_grad_(True) for k in keys]
    log_noise = torch.tensor(math.log(noise), dtype=torch.float64, requires_grad=True) if noise else None

    def f(*args):
        kw = dict(zip(keys, args[: len(keys)]))
        if "covariance" in kw:
            kw["covariance"] = 0.5 * (kw["covariance"] + kw["covariance"].mT)
        layer = ProbConserv(LinearConstraint(G, b), noise=noise, validate=False)
        if noise:
            layer._noise = args[-1].exp()
        post = call(layer, kw)
        return post.mean, post.variance, post.rsample((1,), generator=torch.Generator().manual_seed(1))

    args = inputs + ([log_noise] if noise else [])
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_learnable_noise_and_training_through_the_layer():
    torch.manual_seed(0)
    n, T = 32, 20
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    t = torch.linspace(0.1, 1, T, dtype=torch.float64)[:, None]
    target = torch.exp(-t) * torch.sin(math.pi * x) + 0.05 * torch.randn(T, n, dtype=torch.float64)
    totals = torch.trapezoid(target, x, dim=-1)
    layer = ProbConserv(conservation_constraint(x, total=totals), noise=0.1, learn_noise=True)
    assert [name for name, _ in layer.named_parameters()] == ["log_noise"]
    raw_mean = torch.zeros(T, n, dtype=torch.float64, requires_grad=True)
    raw_var = torch.zeros(T, n, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([raw_mean, raw_var, *layer.parameters()], lr=0.05)
    losses = []
    for _ in range(40):
        post = layer(raw_mean, variance=torch.nn.functional.softplus(raw_var) + 1e-4)
        loss = gaussian_nll(post, target, joint=True)
        opt.zero_grad()
        loss.backward()
        assert layer.log_noise.grad is not None and torch.isfinite(layer.log_noise.grad)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


@settings(max_examples=15)
@given(seeds, st.sampled_from(["diag", "dense", "lowrank", "normal", "mvn", "lowrank_mvn", "ensemble"]),
       st.integers(1, 3))
def test_soft_log_prob_matches_dense_gaussian(seed, form, m):
    g = gen(seed)
    kwargs, mu, S = random_prior(g, form, (2,), 10)
    G = random_constraint_matrix(g, 10, m)
    b = torch.randn(2, m, generator=g, dtype=torch.float64)
    post = call(ProbConserv(LinearConstraint(G, b), noise=0.2), kwargs)
    mu_d, S_d = dense_update(mu, S, G, b, 0.2)
    y = torch.randn(4, 2, 10, generator=g, dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(mu_d, covariance_matrix=S_d).log_prob(y)
    torch.testing.assert_close(post.log_prob(y), ref, rtol=1e-8, atol=1e-8)
    # A second soft update on top (nested posterior) still matches the dense formula.
    G2 = random_constraint_matrix(g, 10, 1)
    post2 = ProbConserv(LinearConstraint(G2, torch.zeros(1, dtype=torch.float64)), noise=0.5)(post)
    mu2, S2 = dense_update(mu_d, S_d, G2, torch.zeros(1, dtype=torch.float64), 0.5)
    ref2 = torch.distributions.MultivariateNormal(mu2, covariance_matrix=S2).log_prob(y)
    torch.testing.assert_close(post2.log_prob(y), ref2, rtol=1e-8, atol=1e-8)


@settings(max_examples=15)
@given(seeds, st.sampled_from(["diag", "dense", "lowrank", "mvn"]), st.integers(1, 3))
def test_exact_log_prob_is_degenerate_gaussian_density(seed, form, m):
    # Density on {G u = b} w.r.t. its surface measure = (2 pi)^-(n-m)/2 pdet(S~)^-1/2 exp(-q/2), q with pinv(S~).
    g = gen(seed)
    n = 9
    kwargs, mu, S = random_prior(g, form, (), n)
    G = random_constraint_matrix(g, n, m)
    b = torch.randn(m, generator=g, dtype=torch.float64)
    post = call(ProbConserv(LinearConstraint(G, b)), kwargs)
    y = post.rsample((5,), generator=g)
    _, S_d = dense_update(mu, S, G, b, 0.0)
    evals, Q = torch.linalg.eigh(S_d)
    keep = evals > 1e-10 * evals.max()
    assert int(keep.sum()) == n - m
    z = (y - post.mean) @ Q[:, keep]
    quad = (z**2 / evals[keep]).sum(-1)
    ref = -0.5 * ((n - m) * math.log(2 * math.pi) + evals[keep].log().sum() + quad)
    torch.testing.assert_close(post.log_prob(y), ref, rtol=1e-7, atol=1e-7)
    with pytest.raises(ValueError, match="value must satisfy"):
        post.log_prob(y + 0.1)


def test_gaussian_nll_marginal_and_joint():
    g = gen(3)
    mu, var = torch.randn(4, 16, generator=g, dtype=torch.float64), torch.rand(4, 16, generator=g, dtype=torch.float64) + 0.1
    c = conservation_constraint(torch.linspace(0, 1, 16, dtype=torch.float64), total=torch.zeros(4, dtype=torch.float64))
    post = ProbConserv(c, noise=0.01)(mu, variance=var)
    y = torch.randn(4, 16, generator=g, dtype=torch.float64)
    ref = -torch.distributions.Normal(post.mean, post.variance.sqrt()).log_prob(y).mean()
    torch.testing.assert_close(gaussian_nll(post, y), ref)
    torch.testing.assert_close(gaussian_nll(post, y, joint=True), -post.log_prob(y).mean() / 16)
    assert gaussian_nll(post, y, reduction="none").shape == (4,)
    prior = torch.distributions.Normal(mu, var.sqrt())
    torch.testing.assert_close(gaussian_nll(prior, y, reduction="sum"), -prior.log_prob(y).sum())
    with pytest.raises(ValueError, match="reduction"):
        gaussian_nll(post, y, reduction="max")
    with pytest.raises(ValueError, match="target"):
        gaussian_nll(post, y[:, :3])


@given(seeds, st.integers(4, 20), st.integers(1, 3))
def test_hardc_is_least_squares_projection_with_unchanged_variance(seed, n, m):
    g = gen(seed)
    mu = torch.randn(3, n, generator=g, dtype=torch.float64)
    var = torch.rand(3, n, generator=g, dtype=torch.float64) + 0.1
    G = random_constraint_matrix(g, n, m)
    b = torch.randn(3, m, generator=g, dtype=torch.float64)
    post = ProbConserv(LinearConstraint(G, b), method="hardc")(mu, variance=var)
    ref = mu - (G.T @ torch.linalg.solve(G @ G.T, (mu @ G.T - b).T)).T
    torch.testing.assert_close(post.mean, ref, rtol=RTOL, atol=RTOL)
    torch.testing.assert_close(post.variance, var, rtol=0, atol=0)
    assert post.constraint_residual().abs().max() <= RTOL * (1 + b.abs().max())


def test_large_diagonal_prior_never_forms_n_by_n():
    # n^2 doubles would be 3.2e11 bytes: any densification would fail loudly.
    n = 200_000
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    mu = torch.sin(7 * x)[None].repeat(2, 1)
    var = (0.01 + x**2)[None].repeat(2, 1)
    post = ProbConserv(conservation_constraint(x, total=torch.tensor([0.5, 1.0], dtype=torch.float64)))(mu, variance=var)
    assert isinstance(post.covariance, DowndatedCovariance) and post.covariance.W.shape == (2, n, 1)
    assert post.constraint_residual().abs().max() < 1e-12
    assert (post.variance <= var).all()
    s = post.rsample((3,))
    assert (s @ post.G.T - post.b).abs().max() < 1e-11
    soft = ProbConserv(conservation_constraint(x, total=torch.tensor([0.5, 1.0], dtype=torch.float64)), noise=1e-4)
    assert torch.isfinite(soft(mu, variance=var).log_prob(mu)).all()
