"""Test helpers: a dense implementation of the ProbConserv formula and random problem generators.

The dense formula is written independently of the package (plain n x n algebra with a linear solve), so that
agreement with it checks the structured (Woodbury) implementation.
"""

import torch
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal, Normal

FORMS = ("diag", "dense", "lowrank", "normal", "mvn", "lowrank_mvn", "ensemble")


def dense_update(mu, S, G, b, noise):
    """mu~ = mu - S G^T A^-1 (G mu - b), S~ = S - S G^T A^-1 G S, with A = noise I + G S G^T (float64)."""
    m = G.shape[0]
    SGt = S @ G.T
    A = noise * torch.eye(m, dtype=S.dtype) + G @ SGt
    r = mu @ G.T - b
    mu_post = mu - (SGt @ torch.linalg.solve(A, r[..., :, None])).squeeze(-1)
    S_post = S - SGt @ torch.linalg.solve(A, SGt.mT)
    return mu_post, S_post


def random_grid(gen, n, dtype=torch.float64):
    """Strictly increasing non-uniform grid of n nodes on [a, a + L]."""
    steps = 0.2 + torch.rand(n - 1, generator=gen, dtype=dtype)
    a = torch.randn((), generator=gen, dtype=dtype)
    return torch.cat([a.reshape(1), a + torch.cumsum(steps, 0)])


def random_prior(gen, form, batch, n, r=3, scale=1.0, dtype=torch.float64):
    """A random prediction in one of the accepted forms.

    Returns (layer kwargs or positional distribution, mean (.., n), dense covariance (.., n, n)).
    """
    mu = scale * torch.randn(*batch, n, generator=gen, dtype=dtype)
    if form in ("diag", "normal"):
        var = scale**2 * (0.05 + torch.rand(*batch, n, generator=gen, dtype=dtype))
        S = torch.diag_embed(var)
        if form == "diag":
            return dict(mean=mu, variance=var), mu, S
        return dict(mean=Normal(mu, var.sqrt())), mu, S
    if form in ("dense", "mvn"):
        k = n if form == "mvn" else max(1, n // 2)
        X = scale * torch.randn(*batch, n, k, generator=gen, dtype=dtype) / k**0.5
        S = X @ X.mT
        if form == "mvn":
            S = S + 0.05 * scale**2 * torch.eye(n, dtype=dtype)
            return dict(mean=MultivariateNormal(mu, covariance_matrix=S)), mu, S
        # rank n//2 + a small diagonal so that random extra rows stay well posed
        S = S + 0.05 * scale**2 * torch.eye(n, dtype=dtype)
        return dict(mean=mu, covariance=S), mu, S
    if form in ("lowrank", "lowrank_mvn"):
        U = scale * torch.randn(*batch, n, r, generator=gen, dtype=dtype) / r**0.5
        d = scale**2 * (0.05 + torch.rand(*batch, n, generator=gen, dtype=dtype))
        S = U @ U.mT + torch.diag_embed(d)
        if form == "lowrank":
            return dict(mean=mu, cov_factor=U, cov_diag=d), mu, S
        return dict(mean=LowRankMultivariateNormal(mu, U, d)), mu, S
    if form == "ensemble":
        members = mu + scale * torch.randn(r + 6, *batch, n, generator=gen, dtype=dtype)
        d = scale**2 * (0.05 + torch.rand(*batch, n, generator=gen, dtype=dtype))
        mean = members.mean(0)
        X = (members - mean).movedim(0, -1) / (members.shape[0] - 1) ** 0.5
        S = X @ X.mT + torch.diag_embed(d)
        return dict(samples=members, cov_diag=d), mean, S
    raise ValueError(form)


def random_constraint_matrix(gen, n, m, dtype=torch.float64):
    """A conservation row (trapezoid weights of a random grid) plus m - 1 random rows."""
    from probconserv_ext import quadrature_weights

    rows = [quadrature_weights(random_grid(gen, n, dtype))[None, :]]
    if m > 1:
        rows.append(torch.randn(m - 1, n, generator=gen, dtype=dtype))
    return torch.cat(rows)


def call(layer, kwargs, **extra):
    kwargs = dict(kwargs)
    mean = kwargs.pop("mean", None)
    return layer(mean, **kwargs, **extra)
