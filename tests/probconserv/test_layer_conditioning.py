"""Singularity detection and exactness independent of the scale of the rows of G and of the spread of variances.

The reference posterior mean is computed from a singular value decomposition of the row-normalised whitened
constraint ``B = D^-1/2 G Sigma^1/2`` (``D = diag(G Sigma G^T)``), which never forms ``G Sigma G^T``: its smallest
singular value gives the smallest eigenvalue ``lam_min = sigma_min^2`` of the equilibrated system to about
``eps * sigma_max`` absolute accuracy, and ``mu~ = mu - Sigma^1/2 pinv(B) D^-1/2 (G mu - b)``.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probconserv_ext import LinearConstraint, ProbConserv, conservation_constraint, quadrature_weights
from probconserv_ext.update import pivot_tolerance, residual_tolerance

EPS = torch.finfo(torch.float64).eps
f64 = torch.float64


def whitened_reference(mu, var, G, b):
    """Posterior mean and variances, ``lam_min`` of the equilibrated system, and a per-node scale of the mean's
    round-off, all without forming ``G Sigma G^T``.

    The node scale is ``|mu_j| + Sigma_jj (|G|^T |x|)_j + Sigma_jj^1/2 max|pinv(B) D^-1/2 r|``, with ``x = A^-1 r`` the
    multipliers: the first two bound what the layer sums at node ``j`` (its error is relative to them), the last the
    reference's own error (the singular vectors are accurate to ``eps`` absolutely, then multiplied by ``sd_j``).
    """
    sd = var.sqrt()
    Bw = G * sd  # G Sigma^1/2
    rn = Bw.norm(dim=-1)
    B = Bw / rn[:, None]
    U, s, Vh = torch.linalg.svd(B, full_matrices=False)
    r = (mu @ G.T - b) / rn
    coef = Vh.T @ ((U.T @ r) / s)  # pinv(B) D^-1/2 r
    mu_post = mu - sd * coef
    x = (U @ ((U.T @ r) / s**2)) / rn
    node_scale = mu.abs() + var * (G.abs().T @ x.abs()) + sd * coef.abs().max()
    # Sigma~_ii = var_i (1 - |P e_i|^2), P the projection on the row space of B.
    var_post = var * (1 - (Vh**2).sum(0))
    return mu_post, var_post, float(s.min()) ** 2, node_scale


def relative_residual(mu, G, b, prior=None):
    """Largest ``|G mu - b|`` per row relative to ``|G| (|prior| + |mu|) + |b|`` (the layer's round-off scale)."""
    scale = mu.abs() @ G.abs().T + b.abs()
    if prior is not None:
        scale = scale + prior.abs() @ G.abs().T
    return ((mu @ G.T - b).abs() / scale).max()


@st.composite
def scaled_problems(draw):
    m = draw(st.integers(1, 3))
    n = draw(st.integers(m + 1, 14))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(m, n, generator=g, dtype=f64)
    if draw(st.booleans()):  # sparse rows (e.g. disjoint supports), none empty
        mask = torch.rand(m, n, generator=g, dtype=f64) < 0.5
        mask[torch.arange(m), torch.randint(0, n, (m,), generator=g)] = True
        G = G * mask
    log_var = draw(st.lists(st.floats(-12, 6), min_size=n, max_size=n))
    var = torch.tensor([10.0**v for v in log_var], dtype=f64)
    log_row = draw(st.lists(st.floats(-6, 6), min_size=m, max_size=m))
    row = torch.tensor([10.0**v for v in log_row], dtype=f64)
    mu = torch.randn(n, generator=g, dtype=f64)
    b = torch.randn(m, generator=g, dtype=f64)
    return mu, var, G, b, row


def _run(mu, var, G, b):
    try:
        return ProbConserv(LinearConstraint(G, b))(mu, variance=var)
    except ValueError as err:
        return err


@settings(max_examples=60)
@given(scaled_problems())
def test_rescaled_rows_and_spread_variances_give_the_same_exact_posterior(p):
    mu, var, G, b, row = p
    n, m = G.shape[1], G.shape[0]
    ref_mu, ref_var, lam, node_scale = whitened_reference(mu, var, G, b)
    plain = _run(mu, var, G, b)
    scaled = _run(mu, var, row[:, None] * G, row * b)
    # Refusal only for a (numerically) singular system: a pivot of the equilibrated system at the round-off level
    # of its entries (n eps) bounds lam_min from above; 1e3 leaves room for the rounding of C itself.
    floor = 1e3 * pivot_tolerance(f64, n, m)
    for post in (plain, scaled):
        if isinstance(post, ValueError):
            assert lam < floor, f"refused a system with lam_min = {lam:.2e}: {post}"
    if isinstance(plain, ValueError) or isinstance(scaled, ValueError):
        return
    # Both conserve to round-off, in their own row scaling.
    assert relative_residual(plain.mean, G, b, mu) <= residual_tolerance(f64, n)
    assert relative_residual(scaled.mean, row[:, None] * G, row * b, mu) <= residual_tolerance(f64, n)
    # Perturbation bound: relative error of the multipliers ~ (n eps) / lam_min, times what is summed at each node.
    tol = 1e2 * n * EPS / lam * node_scale
    for post in (plain, scaled):
        assert ((post.mean - ref_mu).abs() <= tol).all()
        assert ((post.variance - ref_var).abs() / var).max() <= 1e2 * n * EPS / lam
    assert ((plain.mean - scaled.mean).abs() <= 2 * tol).all()


def test_value_row_with_tiny_variance_next_to_a_conservation_row():
    # A node with variance 1e-6 fixed by a value row, next to a trapezoid row over nodes with variance 1e6: the
    # system is well conditioned after equilibration, at every scale of the value row.
    n, k = 33, 10
    x = torch.linspace(0, 1, n, dtype=f64)
    mu = torch.sin(3 * x) + 2.0
    var = torch.full((n,), 1e6, dtype=f64)
    var[k] = 1e-6
    for off in (1e-3, 1e-9):
        value = float(mu[k]) + off
        for scale in (1e-6, 1.0, 1e4, 1e6):
            e = torch.zeros(n, dtype=f64)
            e[k] = scale
            G = torch.stack([e, quadrature_weights(x)])
            b = torch.tensor([scale * value, 2.5], dtype=f64)
            post = ProbConserv(LinearConstraint(G, b))(mu, variance=var)
            assert float(relative_residual(post.mean, G, b)) <= residual_tolerance(f64, n)
            assert abs(float(post.mean[k]) - value) <= 4 * EPS * value


def test_disjoint_rows_with_very_different_variances_are_independent():
    n = 33
    h = n // 2
    x = torch.linspace(0, 1, n, dtype=f64)
    G = torch.zeros(2, n, dtype=f64)
    G[0, :h] = quadrature_weights(x[:h])
    G[1, h:] = quadrature_weights(x[h:])
    var = torch.cat([torch.full((h,), 1e-3, dtype=f64), torch.full((n - h,), 1e6, dtype=f64)])
    mu, b = torch.cos(2 * x), torch.tensor([0.3, -0.2], dtype=f64)
    post = ProbConserv(LinearConstraint(G, b))(mu, variance=var)
    # Each half alone gives the same result as the pair.
    for i, sl in ((0, slice(0, h)), (1, slice(h, n))):
        alone = ProbConserv(LinearConstraint(G[i:i + 1], b[i:i + 1]))(mu, variance=var)
        torch.testing.assert_close(post.mean[sl], alone.mean[sl], rtol=0, atol=1e2 * EPS)
    assert float(relative_residual(post.mean, G, b)) <= residual_tolerance(f64, n)


@pytest.mark.parametrize("where", ["variance", "cov_diag"])
def test_subnormal_variances_are_refused(where):
    n = 9
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=f64), total=0.7)
    v = torch.full((n,), 1e-315, dtype=f64)
    v[0] = 0.0  # exact zeros stay allowed
    kwargs = dict(variance=v) if where == "variance" else dict(cov_factor=torch.ones(n, 1, dtype=f64), cov_diag=v)
    with pytest.raises(ValueError, match=f"{where} has subnormal entries"):
        ProbConserv(c)(torch.rand(n, dtype=f64), **kwargs)
    # float32 compute dtype: 1e-40 is subnormal there although it is a normal float64
    with pytest.raises(ValueError, match="variance has subnormal entries"):
        ProbConserv(c, compute_dtype=torch.float32)(torch.rand(n, dtype=f64),
                                                    variance=torch.full((n,), 1e-40, dtype=f64))


def test_truly_singular_systems_are_refused_and_consistent_ones_accepted():
    n = 8
    x = torch.linspace(0, 1, n, dtype=f64)
    mu, var = torch.cos(x), torch.rand(n, dtype=f64) + 0.5
    w = quadrature_weights(x)
    # The same row twice, rescaled by 1e6: consistent right-hand sides are accepted (the second row adds
    # nothing), contradicting ones are refused.
    G = torch.stack([w, 1e6 * w])
    ok = ProbConserv(LinearConstraint(G, torch.tensor([1.0, 1e6], dtype=f64)))(mu, variance=var)
    one = ProbConserv(LinearConstraint(w, torch.tensor([1.0], dtype=f64)))(mu, variance=var)
    torch.testing.assert_close(ok.mean, one.mean, rtol=0, atol=1e3 * EPS)
    with pytest.raises(ValueError, match="singular constraint system"):
        ProbConserv(LinearConstraint(G, torch.tensor([1.0, 1e6 * (1 + 1e-9)], dtype=f64)))(mu, variance=var)
    # A row touching only zero-variance nodes whose mean is 1e-9 (relative) off.
    var0 = var.clone()
    var0[:2] = 0.0
    e = torch.zeros(n, dtype=f64)
    e[0] = 1e-4
    G = torch.stack([e, w])
    with pytest.raises(ValueError, match="singular constraint system"):
        ProbConserv(LinearConstraint(G, torch.tensor([1e-4 * float(mu[0]) * (1 + 1e-9), 1.0], dtype=f64)))(
            mu, variance=var0)
    post = ProbConserv(LinearConstraint(G, torch.tensor([1e-4 * float(mu[0]), 1.0], dtype=f64)))(mu, variance=var0)
    assert float(relative_residual(post.mean, G, torch.tensor([1e-4 * float(mu[0]), 1.0], dtype=f64))) <= \
        residual_tolerance(f64, n)


def test_exact_update_is_checked_to_round_off(monkeypatch):
    # A solve that is off by a relative 1e-5 is repaired by iterative refinement (1e-5 per step); one off by
    # 1e-2 is not within the few steps allowed, and the layer says so instead of returning a mean that does not
    # conserve.
    import probconserv_ext.layer as layer_mod
    from probconserv_ext.update import factor_update

    n = 12
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=f64), total=torch.tensor([0.5, -2.0], dtype=f64))
    mu, var = torch.randn(2, n, dtype=f64), torch.rand(2, n, dtype=f64) + 0.1

    def perturbed(delta):
        def solve(*args, **kwargs):
            f = factor_update(*args, **kwargs)
            f.M = f.M * (1 + delta)
            f.W = f.W * (1 + delta)
            return f
        return solve

    monkeypatch.setattr(layer_mod, "factor_update", perturbed(1e-5))
    post = ProbConserv(c)(mu, variance=var)
    assert float(relative_residual(post.mean, c.G, c.b)) <= residual_tolerance(f64, n)
    monkeypatch.setattr(layer_mod, "factor_update", perturbed(1e-2))
    with pytest.raises(ValueError, match="did not enforce G u = b to round-off"):
        ProbConserv(c)(mu, variance=var)
    # A soft constraint (noise > 0) is not expected to hold exactly: no check, no error.
    ProbConserv(c, noise=1e-3)(mu, variance=var)
    assert math.isfinite(residual_tolerance(f64, n))
