"""The posterior has the prediction's shape: arguments that would broadcast it to a larger shape are refused."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from probconserv_ext import LinearConstraint, ProbConserv, conservation_constraint

n = 9
f64 = torch.float64


def rand(*shape):
    return torch.rand(*shape, dtype=f64) + 0.1


@pytest.fixture
def layer():
    return ProbConserv(LinearConstraint(torch.linspace(0.5, 1.5, n, dtype=f64)))


def test_neuralop_output_with_per_sample_total_is_refused():
    # A neuralop model's (B, 1, n) output with totals of shape (B,): b of shape (B, 1) would broadcast the
    # posterior to (B, B, n).
    B = 4
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=f64), total=rand(B))
    with pytest.raises(ValueError, match=r"b of shape \(4, 1\).*broadcast.*\(4, 4\).*channel axis"):
        ProbConserv(c)(rand(B, 1, n), variance=rand(B, 1, n))
    # With the channel axis in the total, the posterior keeps the prediction's shape.
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=f64), total=rand(B, 1))
    assert ProbConserv(c)(rand(B, 1, n), variance=rand(B, 1, n)).mean.shape == (B, 1, n)


def test_matrix_passed_as_variance_points_to_covariance(layer):
    with pytest.raises(ValueError, match=r"variance of shape \(9, 9\).*\(9,\).*covariance="):
        layer(rand(n), rand(n, n), b=torch.ones(1, dtype=f64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mean=rand(n), variance=rand(3, n)), r"variance of shape \(3, 9\)"),
        (dict(mean=rand(2, 1, n), variance=rand(2, 5, n)), r"variance of shape \(2, 5, 9\)"),
        (dict(mean=rand(n), covariance=torch.eye(n, dtype=f64).expand(3, n, n)), r"covariance of shape \(3, 9, 9\)"),
        (dict(mean=rand(n), cov_factor=rand(2, n, 2), cov_diag=rand(n)), r"cov_factor of shape \(2, 9, 2\)"),
        (dict(mean=rand(n), cov_factor=rand(n, 2), cov_diag=rand(4, n)), r"cov_diag of shape \(4, 9\)"),
        (dict(samples=rand(5, n), cov_diag=rand(3, n)), r"cov_diag of shape \(3, 9\)"),
        (dict(mean=rand(n), variance=rand(n), b=rand(3, 1)), r"b of shape \(3, 1\)"),
        (dict(samples=rand(5, 2, n), b=rand(3, 2, 1)), r"b of shape \(3, 2, 1\)"),
        (dict(mean=Normal(rand(2, n), rand(2, n)), b=rand(3, 1, 1)), r"b of shape \(3, 1, 1\)"),
        (dict(mean=rand(3, n), variance=rand(3, n), b=rand(4, 1)), r"b of shape \(4, 1\).*does not broadcast"),
    ],
)
def test_arguments_that_would_enlarge_the_result_are_refused(layer, kwargs, match):
    kwargs.setdefault("b", torch.ones(1, dtype=f64))
    with pytest.raises(ValueError, match=match):
        layer(**kwargs)


@st.composite
def broadcast_cases(draw):
    """A prediction shape and sub-shapes (size-1 or dropped leading axes) for variance and b."""
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))

    def sub(shape):
        keep = draw(st.integers(0, len(shape)))
        tail = shape[len(shape) - keep:]
        return [d if draw(st.booleans()) else 1 for d in tail]

    return lead, sub(lead), sub(lead), draw(st.integers(0, 2**31 - 1))


@settings(max_examples=30)
@given(broadcast_cases())
def test_posterior_keeps_the_prediction_shape(case):
    lead, var_lead, b_lead, seed = case
    g = torch.Generator().manual_seed(seed)
    G = torch.rand(2, n, generator=g, dtype=f64) + 0.1
    mu = torch.randn(*lead, n, generator=g, dtype=f64)
    var = torch.rand(*var_lead, n, generator=g, dtype=f64) + 0.1
    b = torch.randn(*b_lead, 2, generator=g, dtype=f64)
    post = ProbConserv(LinearConstraint(G))(mu, variance=var, b=b)
    assert post.mean.shape == mu.shape
    assert post.variance.shape == mu.shape
    res = post.mean @ G.T - b
    assert res.abs().max() <= 1e-13 * (post.mean.abs() @ G.T + b.abs()).max()
    # A b with one more leading axis than the prediction would enlarge it: refused.
    with pytest.raises(ValueError, match="b of shape"):
        ProbConserv(LinearConstraint(G))(mu, variance=var, b=b.expand(*lead, 2)[None].expand(2, *lead, 2))


def test_covariance_requiring_grad_gives_no_warning_and_a_gradient():
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=f64), total=1.0)
    A = torch.randn(n, n, dtype=f64)
    S = (A @ A.T / n + torch.eye(n, dtype=f64)).requires_grad_()
    mu = rand(n).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (e.g. converting a tensor that requires grad) fails
        post = ProbConserv(c)(mu, covariance=S)
        post.mean.sum().backward()
        ProbConserv(c)(mu, variance=rand(n).requires_grad_())
    assert S.grad is not None and torch.isfinite(S.grad).all()
