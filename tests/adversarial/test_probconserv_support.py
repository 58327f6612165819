"""Adversarial: the support test of an exactly constrained posterior (``log_prob``, ``gaussian_nll(joint=True)``).

Class covered: **scale-invariant support test** (issue 28). Before the fix the test accepted
``|G v - b| <= 1e4 eps (|G| |v| + |b| + 1.0)``: the absolute ``+ 1.0`` dominated for a small field, so a float32 field
of size 1e-4 shifted by 50% of its total got a finite log-density. The test must give the same verdict at every scale
of the field (1e-6 .. 1e6), for every covariance structure, input dtype and compute dtype: values on ``{G u = b}``
(the posterior mean and draws, as returned) are accepted; a value off it by more than round-off is refused.
"""

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "probconserv"))
from pc_reference import random_grid, random_prior  # noqa: E402

from probconserv_ext import (ProbConserv, conservation_constraint, gaussian_nll, stack_constraints,  # noqa: E402
                             value_constraint)
from probconserv_ext.update import residual_tolerance  # noqa: E402

# Forms whose prior has a density (the density on {G u = b} is defined for them).
FORMS = ("diag", "normal", "dense", "mvn", "lowrank", "lowrank_mvn", "ensemble")


@st.composite
def exact_posteriors(draw):
    """An exact posterior of a random prior (structure, scale, dtypes, sizes) under a well-posed constraint."""
    n = draw(st.integers(3, 30))
    m = draw(st.integers(1, 3))
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    form = draw(st.sampled_from(FORMS))
    scale = 10.0 ** draw(st.floats(-6, 6))
    in_dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    compute = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    grid = random_grid(g, n)
    # a conservation row plus rows fixing single nodes: well conditioned in float32 as in float64
    rows = [conservation_constraint(grid)]
    if m > 1:
        rows.append(value_constraint(n, torch.randperm(n, generator=g)[: m - 1].tolist(), dtype=torch.float64))
    c = stack_constraints(*rows)
    kwargs, mu, _ = random_prior(g, form, batch, n, scale=scale)
    b = (mu @ c.G.mT) * (1.0 + 0.3 * torch.rand(*batch, m, generator=g, dtype=torch.float64))

    kwargs = {k: v.to(in_dtype) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    if form in ("normal", "mvn", "lowrank_mvn"):  # rebuild the distribution in the input dtype
        d = kwargs["mean"]
        if form == "normal":
            d = torch.distributions.Normal(d.loc.to(in_dtype), d.scale.to(in_dtype))
        elif form == "mvn":
            d = torch.distributions.MultivariateNormal(d.loc.to(in_dtype),
                                                       covariance_matrix=d.covariance_matrix.to(in_dtype))
        else:
            d = torch.distributions.LowRankMultivariateNormal(d.loc.to(in_dtype), d.cov_factor.to(in_dtype),
                                                              d.cov_diag.to(in_dtype))
        kwargs = dict(mean=d)
    layer = ProbConserv(c, compute_dtype=compute)
    mean = kwargs.pop("mean", None)
    post = layer(mean, **kwargs, b=b.to(in_dtype))
    return post, c, in_dtype, scale


def _off_support(post, c, rel):
    """The posterior mean moved along row 0 of G so that row 0's residual is ``rel`` times its scale."""
    mean = post.mean.to(torch.float64)
    G = c.G.to(torch.float64)
    g0 = G[0]
    b0 = post.b[..., 0].to(torch.float64)
    size = mean.abs() @ g0.abs() + b0.abs()
    return (mean + (rel * size / (g0 @ g0))[..., None] * g0).to(post.mean.dtype)


@settings(max_examples=40, deadline=None)
@given(p=exact_posteriors(), rel=st.sampled_from([0.5, 1e-2, 2e-3]))
def test_support_verdict_is_scale_invariant(p, rel):
    """Scale-invariant support test: the mean and draws (as returned, in the output dtype) are accepted; a value whose
    residual is ``rel`` >= 2e-3 of its scale (> 20x the float32 round-off tolerance) is refused, at every scale."""
    post, c, in_dtype, scale = p
    assert post.exact
    tol = post.support_tolerance()
    assert tol <= residual_tolerance(torch.float32, post.n)  # never looser than float32 round-off
    assert bool(torch.isfinite(post.log_prob(post.mean)).all())
    draws = post.sample((3,), generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(post.log_prob(draws)).all())
    assert bool(torch.isfinite(gaussian_nll(post, post.mean, joint=True)))
    bad = _off_support(post, c, rel)
    with pytest.raises(ValueError, match="value must satisfy the exact constraint"):
        post.log_prob(bad)
    with pytest.raises(ValueError, match="value must satisfy the exact constraint"):
        gaussian_nll(post, bad, joint=True)


@pytest.mark.parametrize("scale", [1e-6, 1e-4, 1.0, 1e4, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_issue_instance_small_field_shifted_by_half_its_total(scale, dtype):
    """Scale-invariant support test, the issue's instance: a field of size ``scale`` shifted by 50% of its total
    (before: a finite log-density for scale 1e-4 in float32, and for every scale below about 1e-1)."""
    n = 16
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=torch.float64))
    mu = torch.full((n,), scale, dtype=dtype)
    var = torch.full((n,), scale**2 * 1e-2, dtype=dtype)
    total = (c.G.to(dtype) @ mu).reshape(1)
    post = ProbConserv(c)(mu, variance=var, b=total)
    assert bool(torch.isfinite(post.log_prob(post.mean)))
    shifted = post.mean + 0.5 * total / c.G.sum()  # adds half the total
    with pytest.raises(ValueError, match="value must satisfy"):
        post.log_prob(shifted)
    with pytest.raises(ValueError, match="value must satisfy"):
        gaussian_nll(post, shifted, joint=True)


def test_value_rounded_to_a_coarser_dtype_is_still_on_the_support():
    """Scale-invariant support test: the float64 posterior mean rounded to float32 and back lies on the support to
    float32 round-off, which the tolerance (set by the coarsest dtype involved) accepts."""
    n = 64
    g = torch.Generator().manual_seed(1)
    c = conservation_constraint(random_grid(g, n))
    mu = 1e-3 * torch.rand(n, generator=g, dtype=torch.float64)
    post = ProbConserv(c)(mu.float(), variance=1e-8 * torch.ones(n), b=torch.tensor([2e-4]))
    assert post.mean.dtype == torch.float32
    assert bool(torch.isfinite(post.log_prob(post.mean.double())))
