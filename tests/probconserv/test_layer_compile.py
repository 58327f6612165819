"""``torch.compile(fullgraph=True)`` on the ProbConserv layer (checks needing a host sync are skipped while tracing).

Compilation is slow on a small CPU, so the cases are few and small.
"""

import pytest
import torch

from probconserv_ext import LinearConstraint, ProbConserv, conservation_constraint, quadrature_weights

f64 = torch.float64
n = 12


def _residual(mean, G, b):
    return ((mean @ G.T - b).abs() / (mean.abs() @ G.abs().T + b.abs())).max()


@pytest.mark.parametrize("m", [1, 2])
def test_compiled_layer_matches_eager_and_conserves(m):
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(m)
    x = torch.linspace(0, 1, n, dtype=f64)
    w = quadrature_weights(x)
    G = w[None] if m == 1 else torch.stack([w, torch.cos(3 * x) * w])
    layer = ProbConserv(LinearConstraint(G))
    compiled = torch.compile(layer, fullgraph=True, backend="eager" if m == 2 else "inductor")
    mu = torch.randn(3, n, generator=g, dtype=f64)
    var = torch.rand(3, n, generator=g, dtype=f64) + 0.1
    b = torch.randn(3, m, generator=g, dtype=f64)
    post_c = compiled(mu, variance=var, b=b)
    post_e = layer(mu, variance=var, b=b)
    torch.testing.assert_close(post_c.mean, post_e.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(post_c.variance, post_e.variance, rtol=1e-12, atol=1e-12)
    assert _residual(post_c.mean, G, b) <= 1e-13
    # Same shapes, new values: no recompilation needed and still exact.
    post_c2 = compiled(mu + 1.0, variance=var * 2, b=b)
    assert _residual(post_c2.mean, G, b) <= 1e-13


def test_compiled_layer_differentiates():
    torch._dynamo.reset()
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=f64), total=torch.ones(2, dtype=f64))
    layer = ProbConserv(c)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    mu = torch.randn(2, n, dtype=f64, requires_grad=True)
    var = (torch.rand(2, n, dtype=f64) + 0.1).requires_grad_()
    (compiled(mu, variance=var).mean ** 2).sum().backward()
    g_c = (mu.grad.clone(), var.grad.clone())
    mu.grad, var.grad = None, None
    (layer(mu, variance=var).mean ** 2).sum().backward()
    torch.testing.assert_close(g_c[0], mu.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_c[1], var.grad, rtol=1e-10, atol=1e-12)
