"""The layer's exactness flag follows its noise, and samples of a refined exact update conserve like its mean."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probconserv_ext import LinearConstraint, ProbConserv, conservation_constraint, quadrature_weights

F64 = torch.float64


def _prediction(n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(4, n, dtype=F64, generator=g),
            torch.rand(4, n, dtype=F64, generator=g) + 0.1)


@pytest.mark.parametrize("edit", ["data_write", "inplace_no_grad", "load_state_dict"])
@pytest.mark.parametrize("start, end", [(0.0, 0.5), (0.5, 0.0)])
def test_exactness_follows_every_edit_of_the_noise(edit, start, end):
    n = 33
    c = conservation_constraint(torch.linspace(0, 1, n), total=torch.zeros(4))
    mu, var = _prediction(n, 0)
    layer = ProbConserv(c, noise=start)
    layer(mu, variance=var)  # a first call, as a stale cache would remember it
    if edit == "data_write":
        layer._noise.data.fill_(end)
    elif edit == "inplace_no_grad":
        with torch.no_grad():
            layer._noise.fill_(end)
    else:
        layer.load_state_dict(ProbConserv(c, noise=end).state_dict())
    fresh = ProbConserv(c, noise=end)(mu, variance=var)
    post = layer(mu, variance=var)
    assert post.exact == fresh.exact == (end == 0.0)
    torch.testing.assert_close(post.mean, fresh.mean, rtol=0, atol=0)
    if edit == "load_state_dict":  # the flag a compiled forward pass uses is refreshed too
        assert layer._noise_is_zero == (end == 0.0)


@settings(max_examples=10, deadline=None)
@given(eps=st.sampled_from([1e-5, 1e-6]), seed=st.integers(0, 1000))
def test_samples_of_a_refined_exact_update_conserve_and_have_a_density(eps, seed):
    # Two nearly parallel rows: G Sigma G^T has a condition number near 1/eps^2, so the mean needs iterative
    # refinement to reach round-off; the samples must get the same treatment.
    n = 64
    x = torch.linspace(0, 1, n, dtype=F64)
    w = quadrature_weights(x)
    G = torch.stack([w, w * (1 + eps * torch.cos(7 * x))])
    b = torch.tensor([1.0, 1.0 + 0.5 * eps], dtype=F64)
    g = torch.Generator().manual_seed(seed)
    mu = 10 * torch.randn(n, dtype=F64, generator=g)
    var = 1e3 * torch.rand(n, dtype=F64, generator=g) + 1e-3
    post = ProbConserv(LinearConstraint(G, b))(mu, variance=var)
    assert post.exact
    samples = post.sample((50,), generator=torch.Generator().manual_seed(seed))
    scale = samples.abs() @ G.abs().T + b.abs() + mu.abs() @ G.abs().T
    mean_scale = post.mean.abs() @ G.abs().T + b.abs() + mu.abs() @ G.abs().T
    mean_rel = ((post.mean @ G.T - b).abs() / mean_scale).max()
    rel = ((samples @ G.T - b).abs() / scale).max()
    assert rel <= max(10 * mean_rel, 1e-13)  # the samples conserve to the mean's round-off
    assert torch.isfinite(post.log_prob(samples)).all()  # and lie on the constraint, where the density lives
