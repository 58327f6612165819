"""from_uqno: a UQNO's calibrated band as a Gaussian, its coverage-to-variance rule, and the layer on it."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import UQNO

from probconserv_ext import ProbConserv, band_to_std, band_z_score, conservation_constraint, from_uqno

seeds = st.integers(0, 2**31 - 1)
coverages = st.floats(1e-3, 1 - 1e-6)


@settings(max_examples=40, deadline=None)
@given(coverages)
def test_z_score_is_the_two_sided_normal_quantile(coverage):
    z = band_z_score(coverage)
    # P(|N(0,1)| <= z) = erf(z / sqrt 2): the band of half-width z sigma holds `coverage` of a Gaussian.
    assert math.erf(z / math.sqrt(2)) == pytest.approx(coverage, rel=1e-12, abs=1e-14)
    assert z > 0


def test_z_score_known_values():
    assert band_z_score(0.95) == pytest.approx(1.959963984540054, rel=1e-12)
    assert band_z_score(0.6826894921370859) == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(seeds, coverages, st.floats(0.1, 10.0))
def test_band_to_std_rule(seed, coverage, calibration):
    q = torch.rand(4, 9, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3
    sigma = band_to_std(q, coverage, calibration)
    # the band calibration * q holds exactly `coverage` of N(0, sigma^2) at every node
    held = torch.erf(calibration * q / (sigma * math.sqrt(2)))
    assert torch.allclose(held[q > 0], torch.full_like(held[q > 0], coverage), rtol=1e-10, atol=1e-12)
    assert sigma.shape == q.shape and sigma.dtype == q.dtype


def test_rule_gives_the_stated_empirical_coverage():
    # Gaussian errors at a known sigma: the band q = z sigma covers `coverage` of them, and the rule gives sigma back.
    g = torch.Generator().manual_seed(0)
    sigma = 0.3
    err = sigma * torch.randn(200_000, generator=g, dtype=torch.float64)
    q = torch.quantile(err.abs()[:100_000], 0.9)
    assert float(band_to_std(q, 0.9)) == pytest.approx(sigma, rel=0.02)


@settings(max_examples=25, deadline=None)
@given(seeds, st.integers(3, 40), st.integers(1, 4), coverages, st.sampled_from([torch.float32, torch.float64]),
       st.sampled_from([0.0, 0.3, 0.9, 1.0]))
def test_layer_on_the_adapter_conserves_exactly(seed, n, batch, coverage, dtype, correlation):
    g = torch.Generator().manual_seed(seed)
    grid = torch.sort(torch.rand(n, generator=g, dtype=torch.float64)).values + torch.arange(n) * 1e-3
    solution = torch.randn(batch, 2, n, generator=g).to(dtype)
    quantile = (0.01 + torch.rand(batch, 2, n, generator=g)).to(dtype)
    total = torch.randn(batch, 2, generator=g, dtype=torch.float64)
    prior = from_uqno(solution, quantile, coverage, correlation=correlation)
    # the marginal variances are the rule's, whatever the correlation
    assert torch.allclose(prior.variance.double(), band_to_std(quantile.double(), coverage).square(), rtol=1e-6)
    post = ProbConserv(conservation_constraint(grid, total=total))(prior)
    assert post.mean.dtype == dtype and post.mean.shape == solution.shape
    w = conservation_constraint(grid).G[0]
    scale = (solution.double().abs() @ w.abs()) + total.abs() + 1
    # the solve runs in float64: the residual is at float64 round-off in its own units, then cast to `dtype`
    tol = 64 * torch.finfo(dtype).eps
    assert ((post.mean.double() @ w - total).abs() <= tol * scale).all()
    assert (post.variance <= prior.variance.to(dtype) * (1 + 1e-6) + 1e-30).all()


def test_uqno_forward_feeds_the_layer():
    from neuralop.models import FNO
    torch.manual_seed(0)
    base = FNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1)
    uqno = UQNO(base)
    x = torch.randn(2, 1, 16)
    with torch.no_grad():
        solution, quantile = uqno(x)
    grid = torch.linspace(0, 1, 16)
    post = ProbConserv(conservation_constraint(grid, total=0.5))(from_uqno(solution, quantile.abs(), 0.9))
    assert post.constraint_residual().abs().max() < 1e-6


def test_refusals():
    s, q = torch.zeros(2, 5), torch.ones(2, 5)
    with pytest.raises(ValueError, match="coverage must be a probability strictly between 0 and 1"):
        from_uqno(s, q, 1.0)
    with pytest.raises(ValueError, match="coverage must be"):
        from_uqno(s, q, 0.0)
    with pytest.raises(TypeError, match="coverage"):
        from_uqno(s, q, "0.9")
    with pytest.raises(ValueError, match="quantile must be non-negative"):
        from_uqno(s, -q, 0.9)
    with pytest.raises(ValueError, match="quantile must be finite"):
        from_uqno(s, q * float("nan"), 0.9)
    with pytest.raises(ValueError, match="solution must be finite"):
        from_uqno(s * float("inf"), q, 0.9)
    with pytest.raises(ValueError, match="quantile of shape"):
        from_uqno(s, torch.ones(3, 2, 5), 0.9)  # would broadcast the prediction to a larger shape
    with pytest.raises(ValueError, match="calibration"):
        from_uqno(s, q, 0.9, calibration=0.0)
    with pytest.raises(ValueError, match="floor"):
        from_uqno(s, q, 0.9, floor=-1.0)
    with pytest.raises(ValueError, match="correlation must be in"):
        from_uqno(s, q, 0.9, correlation=1.5)
    with pytest.raises(ValueError, match="correlation must be in"):
        from_uqno(s, q, 0.9, correlation=-0.1)
    with pytest.raises(ValueError, match="compute_dtype"):
        from_uqno(s, q, 0.9, compute_dtype=torch.float16)
    with pytest.raises(TypeError, match="quantile must be real-valued"):
        from_uqno(s, torch.ones(2, 5, dtype=torch.bool), 0.9)


def test_floor_is_explicit_and_broadcast_quantile_allowed():
    s = torch.zeros(2, 5)
    q = torch.tensor([-0.1, 0.0, 0.5, 1.0, 2.0])
    prior = from_uqno(s, q, 0.9, floor=0.2)  # a (5,) band broadcasts to the (2, 5) solution
    assert prior.variance.shape == (2, 5)
    expected = band_to_std(q.clamp_min(0.2).double(), 0.9).square().float()
    assert torch.allclose(prior.variance, expected.expand(2, 5))


def test_full_correlation_spreads_the_correction_like_sigma():
    # rho = 1: the covariance is sigma sigma^T, so the correction Sigma g (g^T Sigma g)^-1 r is proportional to sigma;
    # independent nodes: to sigma^2 times the quadrature weight
    grid = torch.linspace(0, 1, 11, dtype=torch.float64)
    q = torch.linspace(0.1, 1.0, 11, dtype=torch.float64)
    solution = torch.zeros(11, dtype=torch.float64)
    post = ProbConserv(conservation_constraint(grid, total=1.0))(from_uqno(solution, q, 0.9, correlation=1.0))
    shift = post.mean / band_to_std(q, 0.9)
    assert torch.allclose(shift, shift[0].expand(11), rtol=1e-10)
    independent = ProbConserv(conservation_constraint(grid, total=1.0))(from_uqno(solution, q, 0.9))
    ratio = independent.mean / (band_to_std(q, 0.9).square() * conservation_constraint(grid).G[0])  # Sigma g
    assert torch.allclose(ratio, ratio[0].expand(11), rtol=1e-10)
