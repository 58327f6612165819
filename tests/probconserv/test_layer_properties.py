"""Property-based tests of the ProbConserv update for every covariance form, exact and soft.

Tolerances: the update runs in float64 (eps = 2.2e-16). Residuals and differences are compared with
``RTOL * scale`` where ``scale`` is the natural magnitude of the quantity (e.g. ``|G| |mu| + |b|`` for ``G mu - b``);
``RTOL = 1e-9`` leaves room for the conditioning of ``A`` (random extra rows, variances spanning 20x), which
amplifies round-off by at most ~1e4-1e6 in these problems.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pc_reference import FORMS, call, dense_update, random_constraint_matrix, random_prior

from probconserv_ext import LinearConstraint, ProbConserv

RTOL = 1e-9


@st.composite
def problems(draw, forms=FORMS, soft=None):
    form = draw(st.sampled_from(forms))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    n = draw(st.integers(4, 24))
    m = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = 10.0 ** draw(st.integers(-3, 3))
    is_soft = draw(st.booleans()) if soft is None else soft
    noise = (scale**2) * 10.0 ** draw(st.integers(-2, 1)) if is_soft else 0.0
    gen = torch.Generator().manual_seed(seed)
    kwargs, mu, S = random_prior(gen, form, batch, n, scale=scale)
    G = random_constraint_matrix(gen, n, m)
    b = (mu @ G.T) + scale * torch.randn(*batch, m, generator=gen, dtype=torch.float64)
    return dict(form=form, kwargs=kwargs, mu=mu, S=S, G=G, b=b, noise=noise, scale=scale, gen=gen)


def run(p, **layer_kwargs):
    layer = ProbConserv(LinearConstraint(p["G"], p["b"]), noise=p["noise"], **layer_kwargs)
    return layer, call(layer, p["kwargs"])


@given(problems(soft=False))
def test_exact_constraint_holds(p):
    _, post = run(p)
    res = post.constraint_residual()
    scale = post.mean.abs() @ p["G"].abs().T + p["b"].abs()
    assert (res.abs() <= RTOL * scale).all()


@given(problems())
def test_agrees_with_dense_formula(p):
    _, post = run(p)
    mu_d, S_d = dense_update(p["mu"], p["S"], p["G"], p["b"], p["noise"])
    s2 = p["scale"] ** 2
    torch.testing.assert_close(post.mean, mu_d, rtol=RTOL, atol=RTOL * p["scale"] * 10)
    torch.testing.assert_close(post.covariance_matrix, S_d, rtol=RTOL, atol=RTOL * s2 * 10)
    torch.testing.assert_close(post.variance, torch.diagonal(S_d, dim1=-2, dim2=-1), rtol=RTOL, atol=RTOL * s2 * 10)


@given(problems())
def test_variance_shrinks_and_covariance_psd(p):
    _, post = run(p)
    s2 = p["scale"] ** 2
    prior_var = torch.diagonal(p["S"], dim1=-2, dim2=-1)
    assert (post.variance <= prior_var + RTOL * s2).all()
    assert (post.variance >= -RTOL * s2).all()
    evals = torch.linalg.eigvalsh(post.covariance_matrix)
    assert (evals >= -RTOL * s2 * p["S"].shape[-1]).all()


@given(problems(soft=False))
def test_exact_update_is_idempotent(p):
    layer, post = run(p)
    again = layer(post)
    s, s2 = p["scale"], p["scale"] ** 2
    torch.testing.assert_close(again.mean, post.mean, rtol=RTOL, atol=RTOL * s * 10)
    torch.testing.assert_close(again.covariance_matrix, post.covariance_matrix, rtol=RTOL, atol=RTOL * s2 * 10)


@given(problems())
def test_no_change_when_prior_satisfies_constraint_mean(p):
    # b = G mu: the mean is already consistent. Exact: nothing to change in the mean.
    layer = ProbConserv(LinearConstraint(p["G"]), noise=p["noise"])
    post = call(layer, p["kwargs"], b=p["mu"] @ p["G"].T)
    torch.testing.assert_close(post.mean, p["mu"], rtol=RTOL, atol=RTOL * p["scale"] * 10)


@given(problems())
def test_no_change_when_prior_is_already_constrained(p):
    # The output of an exact update satisfies G u = b with no spread along G: a second update, exact or soft,
    # leaves mean and covariance unchanged.
    exact = call(ProbConserv(LinearConstraint(p["G"], p["b"])), p["kwargs"])
    again = ProbConserv(LinearConstraint(p["G"], p["b"]), noise=p["noise"])(exact)
    torch.testing.assert_close(again.mean, exact.mean, rtol=RTOL, atol=RTOL * p["scale"] * 10)
    torch.testing.assert_close(again.covariance_matrix, exact.covariance_matrix, rtol=RTOL,
                               atol=RTOL * p["scale"] ** 2 * 10)


@given(problems(soft=False), st.floats(1e-3, 1e3))
def test_invariant_to_row_rescaling(p, c):
    _, post = run(p)
    G, b = p["G"].clone(), p["b"].clone()
    G[0] *= c
    b[..., 0] *= c
    post_c = call(ProbConserv(LinearConstraint(G, b)), p["kwargs"])
    torch.testing.assert_close(post_c.mean, post.mean, rtol=RTOL, atol=RTOL * p["scale"] * 10)
    torch.testing.assert_close(post_c.variance, post.variance, rtol=RTOL, atol=RTOL * p["scale"] ** 2 * 10)


@settings(max_examples=15)
@given(problems(soft=False))
def test_soft_tends_to_exact(p):
    _, exact = run(p)
    s2 = p["scale"] ** 2
    errors = []
    for k in (2, 4, 6):
        soft = call(ProbConserv(LinearConstraint(p["G"], p["b"]), noise=s2 * 10.0**-k), p["kwargs"])
        errors.append(float((soft.mean - exact.mean).abs().max() / p["scale"]))
        torch.testing.assert_close(soft.variance, exact.variance, rtol=1e-3, atol=10.0 ** (2 - k) * s2)
    # The soft mean approaches the exact one linearly in the noise: the gap is about s2 |S G^T A^-2 r|, so it shrinks
    # ~100-fold from s2 = 1e-4 to 1e-6 (an ill-conditioned A makes it large but does not change the rate).
    assert errors[-1] <= max(1e-3, 0.02 * errors[1])
    assert errors[-1] <= errors[0] + 1e-12


@settings(max_examples=10)
@given(problems(forms=("diag", "dense", "lowrank", "normal", "mvn", "lowrank_mvn")))
def test_samples_satisfy_constraint_and_match_moments(p):
    _, post = run(p)
    S = 4000
    gen = torch.Generator().manual_seed(0)
    x = post.rsample((S,), generator=gen)
    assert x.shape == (S, *post.batch_shape, post.n)
    if p["noise"] == 0:
        res = x @ p["G"].T - p["b"]
        scale = x.abs() @ p["G"].abs().T + p["b"].abs()
        assert (res.abs() <= RTOL * scale).all()
    # Monte Carlo: standard error of a mean is sd / sqrt(S); 6 standard errors leaves a per-test false-alarm
    # probability far below 1e-6 per entry.
    sd = post.variance.clamp_min(0).sqrt()
    assert ((x.mean(0) - post.mean).abs() <= 6 * sd / S**0.5 + RTOL * p["scale"]).all()
    xc = x - x.mean(0)
    emp = torch.einsum("s...i,s...j->...ij", xc, xc) / (S - 1)
    sd_outer = sd[..., :, None] * sd[..., None, :]
    # Var of an empirical covariance entry is at most 2 s_i^2 s_j^2 / S.
    assert ((emp - post.covariance_matrix).abs() <= 6 * (2 / S) ** 0.5 * sd_outer + RTOL * p["scale"] ** 2).all()


@settings(max_examples=15)
@given(problems(forms=("ensemble",)))
def test_ensemble_members_updated_exactly(p):
    members = p["kwargs"]["samples"]
    layer = ProbConserv(LinearConstraint(p["G"], p["b"]), noise=0.0)
    updated, post = layer.constrain_samples(members, cov_diag=p["kwargs"]["cov_diag"])
    res = updated @ p["G"].T - p["b"]
    scale = updated.abs() @ p["G"].abs().T + p["b"].abs()
    assert (res.abs() <= RTOL * scale).all()
    # Without an extra diagonal the members define the prior exactly, and the updated members have exactly the
    # posterior mean and covariance.
    updated, post = layer.constrain_samples(members, cov_diag=None)
    torch.testing.assert_close(updated.mean(0), post.mean, rtol=RTOL, atol=RTOL * p["scale"] * 10)
    xc = updated - updated.mean(0)
    emp = torch.einsum("s...i,s...j->...ij", xc, xc) / (members.shape[0] - 1)
    torch.testing.assert_close(emp, post.covariance_matrix, rtol=1e-8, atol=RTOL * p["scale"] ** 2 * 10)
