"""Bad input gets a ValueError/TypeError whose message names the argument."""

import pytest
import torch

from probconserv_ext import LinearConstraint, ProbConserv, conservation_constraint

n = 8
nan = float("nan")


@pytest.fixture
def layer():
    return ProbConserv(conservation_constraint(torch.linspace(0, 1, n, dtype=torch.float64), total=1.0))


def f64(*shape, value=None):
    t = torch.rand(*shape, dtype=torch.float64) + 0.1
    return t if value is None else t.fill_(value)


def with_entry(t, idx, value):
    t = t.clone()
    t[idx] = value
    return t


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(mean=f64(n), variance=with_entry(f64(n), 3, -0.1)), ValueError, "variance must be non-negative"),
        (dict(mean=with_entry(f64(n), 2, nan), variance=f64(n)), ValueError, "mean must be finite"),
        (dict(mean=f64(n), variance=with_entry(f64(n), 2, float("inf"))), ValueError, "variance must be finite"),
        (dict(mean=f64(n + 1), variance=f64(n + 1)), ValueError, "mean must have n = 8 nodes"),
        (dict(mean=f64(3, n), variance=f64(2, n)), ValueError, "variance of shape"),
        (dict(mean=f64(n), covariance=f64(n, n)), ValueError, "covariance must be symmetric"),
        (dict(mean=f64(n), covariance=-torch.eye(n, dtype=torch.float64)), ValueError, "positive semi-definite"),
        (dict(mean=f64(n), covariance=f64(n, n - 1)), ValueError, r"covariance must have shape"),
        (dict(mean=f64(n), covariance=with_entry(torch.eye(n, dtype=torch.float64), (0, 0), nan)), ValueError,
         "covariance must be finite"),
        (dict(mean=f64(n), cov_factor=f64(n - 1, 2), cov_diag=f64(n)), ValueError, "cov_factor must have shape"),
        (dict(mean=f64(n), cov_factor=f64(n, 2), cov_diag=-f64(n)), ValueError, "cov_diag must be non-negative"),
        (dict(mean=f64(n)), ValueError, "exactly one of"),
        (dict(mean=f64(n), variance=f64(n), covariance=torch.eye(n)), ValueError, "exactly one of"),
        (dict(mean=f64(n), variance=f64(n), cov_diag=f64(n)), ValueError, "cov_diag= goes with"),
        (dict(samples=f64(1, n)), ValueError, "S >= 2"),
        (dict(samples=f64(4, n), mean=f64(n)), ValueError, "samples= defines the prior"),
        (dict(mean="abc", variance=f64(n)), TypeError, "mean must be"),
        (dict(mean=f64(n), variance=f64(n), b=f64(2)), ValueError, r"b must have shape \(\.\.\., m\)"),
        (dict(mean=f64(3, n), variance=f64(3, n), b=f64(4, 1)), ValueError, "does not broadcast"),
        (dict(mean=f64(n), variance=f64(n), b=torch.tensor([nan])), ValueError, "b must be finite"),
        (dict(mean=torch.distributions.Gamma(f64(n), f64(n))), TypeError, "mean must be a tensor, Normal"),
    ],
)
def test_bad_layer_inputs(layer, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        layer(**kwargs)


def test_bad_layer_arguments():
    c = conservation_constraint(torch.linspace(0, 1, n), total=1.0)
    with pytest.raises(ValueError, match="noise must be non-negative"):
        ProbConserv(c, noise=-1e-3)
    with pytest.raises(ValueError, match="noise must be finite"):
        ProbConserv(c, noise=nan)
    with pytest.raises(ValueError, match="learn_noise=True needs"):
        ProbConserv(c, noise=0.0, learn_noise=True)
    with pytest.raises(ValueError, match="method must be one of"):
        ProbConserv(c, method="softc")
    with pytest.raises(TypeError, match="constraint must be a LinearConstraint"):
        ProbConserv(torch.ones(1, n))
    with pytest.raises(ValueError, match="b is required"):
        ProbConserv(LinearConstraint(torch.ones(1, n)))(f64(n), variance=f64(n))


def test_singular_system_is_reported():
    # Exact constraint on a row that only touches zero-variance nodes, with a mean that violates it.
    G = torch.zeros(2, n, dtype=torch.float64)
    G[0] = 1.0
    G[1, :3] = 1.0
    var = f64(n)
    var[:3] = 0.0
    layer = ProbConserv(LinearConstraint(G, torch.tensor([1.0, 5.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="singular constraint system"):
        layer(f64(n), variance=var)
    # A small noise makes the same system well posed.
    post = ProbConserv(LinearConstraint(G, torch.tensor([1.0, 5.0], dtype=torch.float64)), noise=1e-3)(
        f64(n), variance=var)
    assert torch.isfinite(post.mean).all()
    # Duplicate (dependent) rows with contradicting totals.
    G2 = torch.ones(2, n, dtype=torch.float64)
    with pytest.raises(ValueError, match="singular constraint system"):
        ProbConserv(LinearConstraint(G2, torch.tensor([1.0, 2.0], dtype=torch.float64)))(f64(n), variance=f64(n))


def test_log_prob_errors():
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=torch.float64), total=1.0)
    post = ProbConserv(c)(f64(n), variance=f64(n))
    with pytest.raises(ValueError, match="value must be a tensor of shape"):
        post.log_prob(f64(n + 1))
    with pytest.raises(ValueError, match="value must satisfy"):
        post.log_prob(f64(n))
    with pytest.raises(ValueError, match="value must be finite"):
        post.log_prob(with_entry(f64(n), 0, nan))
