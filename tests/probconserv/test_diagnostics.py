"""The MSE gain's bound 1 / (1 - cos^2) and the positive control.

Tolerances: everything runs in float64 (eps = 2.2e-16). The bound's least-squares residual comes from an SVD of
column-equilibrated directions (backward stable) and the layer's mean from a Cholesky solve of ``A``; with n <= 24,
m <= 3 and random covariances (conditioning ~1e4-1e6, as in test_layer_properties.py) both are accurate to about
1e-10 of the base MSE, so ``RTOL = 1e-9`` (relative to the base MSE) separates round-off from a violated bound.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pc_reference import random_constraint_matrix, random_prior

from probconserv_ext import LinearConstraint, conservation_constraint, get_problem
from probconserv_ext.diagnostics import gain_bound, update_diagnostics
from probconserv_ext.controls import positive_control

RTOL = 1e-9
FORMS = ("diag", "dense", "normal", "mvn", "lowrank_mvn")


@st.composite
def cases(draw):
    form = draw(st.sampled_from(FORMS))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    n = draw(st.integers(8, 24))
    m = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = 10.0 ** draw(st.integers(-3, 3))
    gen = torch.Generator().manual_seed(seed)
    kwargs, mu, S = random_prior(gen, form, batch, n, scale=scale)
    G = random_constraint_matrix(gen, n, m)
    weights = None
    if draw(st.booleans()):
        weights = 0.1 + torch.rand(n, generator=gen, dtype=torch.float64)
    return dict(kwargs=kwargs, mu=mu, S=S, G=G, gen=gen, scale=scale, batch=batch, n=n, m=m, weights=weights)


def diagnose(c, truth, b, **kw):
    kwargs = dict(c["kwargs"])
    mean = kwargs.pop("mean")
    return update_diagnostics(mean, truth, LinearConstraint(c["G"]), b, metric_weights=c["weights"], **kwargs, **kw)


@settings(max_examples=40)
@given(cases(), st.booleans(), st.sampled_from(("probconserv", "hardc")), st.integers(-2, 1))
def test_gain_never_exceeds_the_bound(c, soft, method, log_noise):
    gen, scale = c["gen"], c["scale"]
    truth = c["mu"] + scale * torch.randn(*c["batch"], c["n"], generator=gen, dtype=torch.float64)
    # any b (the truth need not satisfy the constraint), exact or noisy update: the move stays in span(D)
    b = truth @ c["G"].T + scale * torch.randn(*c["batch"], c["m"], generator=gen, dtype=torch.float64)
    noise = scale**2 * 10.0**log_noise if soft else 0.0
    d = diagnose(c, truth, b, noise=noise, method=method)
    base = d["base_mse"]
    assert bool((d["constrained_mse"] >= d["best_mse"] - RTOL * base).all())
    assert bool((d["gain"] <= d["bound"] * (1 + RTOL) + RTOL).all())
    assert bool((d["best_mse"] <= base * (1 + RTOL)).all())
    assert bool(((d["cosine"] >= 0) & (d["cosine"] <= 1)).all())
    # bound = 1 / (1 - cos^2), where the bound is not near infinity
    ok = d["cosine"] < 0.99
    assert torch.allclose(d["bound"][ok], 1 / (1 - d["cosine"][ok] ** 2), rtol=1e-8)


@settings(max_examples=40)
@given(cases(), st.booleans())
def test_gain_reaches_the_bound_when_the_error_lies_along_the_update(c, with_rest):
    """e = D a + w, with G w = 0 and w orthogonal (in the MSE's weights) to D: the exact update leaves e~ = w."""
    gen, n, m, G, S = c["gen"], c["n"], c["m"], c["G"], c["S"]
    D = S @ G.T                                                        # (..., n, m)
    # coefficients that make the error of the size of the mean (D is of size scale^2 |G|)
    a = torch.randn(*c["batch"], m, 1, generator=gen, dtype=torch.float64) / (c["scale"] * G.abs().sum(-1)[:, None])
    along = (D @ a)[..., 0]
    w_metric = torch.ones(n, dtype=torch.float64) if c["weights"] is None else c["weights"]
    rest = torch.zeros_like(along)
    if with_rest:
        # a random vector with its components along G^T and W D removed
        B = torch.cat([G.T.expand(*c["batch"], n, m), w_metric[:, None] * D], -1)
        Q, _ = torch.linalg.qr(B)
        v = torch.randn(*c["batch"], n, generator=gen, dtype=torch.float64)
        rest = v - (Q @ (Q.mT @ v[..., None]))[..., 0]
        rest = rest * along.norm(dim=-1, keepdim=True) / rest.norm(dim=-1, keepdim=True)
    truth = c["mu"] - along - rest
    d = diagnose(c, truth, truth @ G.T)
    if with_rest:
        torch.testing.assert_close(d["gain"], d["bound"], rtol=1e-7, atol=0)
        assert bool((d["bound"] > 1).all())
    else:
        # the whole error lies in span(D): the bound is (numerically) infinite and the update removes the error
        assert bool((d["constrained_mse"] <= 1e-18 * d["base_mse"] + 1e-300).all())
        assert bool((d["cosine"] > 1 - 1e-12).all())


@settings(max_examples=25)
@given(st.integers(6, 30), st.integers(0, 2**31 - 1), st.booleans())
def test_one_constraint_cosine_is_the_cosine_between_error_and_sigma_g(n, seed, weighted):
    gen = torch.Generator().manual_seed(seed)
    grid = torch.cumsum(0.1 + torch.rand(n, generator=gen, dtype=torch.float64), 0)
    c = conservation_constraint(grid)
    var = 10.0 ** (4 * torch.rand(n, generator=gen, dtype=torch.float64) - 2)
    mu, truth = torch.randn(2, n, generator=gen, dtype=torch.float64)
    w = 0.1 + torch.rand(n, generator=gen, dtype=torch.float64) if weighted else torch.ones(n, dtype=torch.float64)
    d = update_diagnostics(mu, truth, c, torch.zeros(1, dtype=torch.float64), variance=var,
                           metric_weights=w if weighted else None)
    dvec, e = var * c.G[0], mu - truth
    cos = (w * dvec * e).sum().abs() / ((w * dvec**2).sum() * (w * e**2).sum()).sqrt()
    torch.testing.assert_close(d["cosine"], cos, rtol=1e-10, atol=0)
    # base MSE in the MSE's weights, mass error G mu - b
    torch.testing.assert_close(d["base_mse"], (w * e**2).sum() / w.sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(d["mass_error"], (mu @ c.G[0])[None], rtol=1e-12, atol=0)


def test_bound_scale_invariances():
    """Rescaling the constraint row (with b) or the variances changes neither the bound nor the achieved gain."""
    gen = torch.Generator().manual_seed(3)
    n = 17
    grid = torch.linspace(0, 1, n, dtype=torch.float64)
    c = conservation_constraint(grid)
    var = 0.1 + torch.rand(n, generator=gen, dtype=torch.float64)
    mu, truth = torch.randn(2, n, generator=gen, dtype=torch.float64)
    b = torch.tensor([0.3], dtype=torch.float64)
    ref = update_diagnostics(mu, truth, c, b, variance=var)
    for G, bb, v in ((7.0 * c.G, 7.0 * b, var), (c.G, b, 1e-6 * var)):
        d = update_diagnostics(mu, truth, LinearConstraint(G), bb, variance=v)
        for key in ("bound", "gain", "cosine"):
            torch.testing.assert_close(d[key], ref[key], rtol=1e-10, atol=0)


def test_shock_statistics_by_hand():
    grid = torch.linspace(0, 1, 11, dtype=torch.float64)
    c = conservation_constraint(grid)
    truth = torch.zeros(11, dtype=torch.float64)
    mu = torch.tensor([0.2] * 5 + [-0.1] * 6, dtype=torch.float64)        # +0.2 behind x = 0.45, -0.1 ahead
    var = torch.zeros(11, dtype=torch.float64)
    var[4], var[5], var[0] = 3.0, 1.0, 4.0                                # 4 of 8 within 1 node of the shock
    d = update_diagnostics(mu, truth, c, torch.zeros(1, dtype=torch.float64), variance=var, grid=grid, shock=0.45,
                           near_cells=1, regions=2)
    assert float(d["error_behind"]) == pytest.approx(0.2)
    assert float(d["error_ahead"]) == pytest.approx(-0.1)
    assert float(d["variance_share"]) == pytest.approx(0.5)
    # two equal halves of [0, 1]: [0, 0.5) holds nodes 0..4, [0.5, 1] nodes 5..10
    torch.testing.assert_close(d["region_error"], torch.tensor([0.2, -0.1], dtype=torch.float64))
    # per-field shock positions broadcast over the leading shape
    d2 = update_diagnostics(mu.expand(2, 11), truth.expand(2, 11), c, torch.zeros(1, dtype=torch.float64),
                            variance=var.expand(2, 11), grid=grid, shock=torch.tensor([0.45, 0.05]))
    assert d2["error_behind"].shape == (2,) and float(d2["error_behind"][1]) == pytest.approx(0.2)


@settings(max_examples=20)
@given(st.sampled_from([("stefan", 0.55, 0.7, 0.05), ("pme", 1.0, 6.0, 0.5)]), st.floats(0, 1),
       st.floats(0.1, 0.9), st.floats(0.01, 0.3), st.integers(-8, 2))
def test_positive_control_recovers_the_predicted_gain(spec, where, unexplained, deficit, log_scale):
    """A mass deficit under the variance plus an error the variance cannot see: predicted gain 1 / unexplained.

    With b the truth's own quadrature total the layer reaches the prediction to round-off (RTOL-level relative
    tolerance 1e-6 covers the variance floor, 1e-10 of the bump, which tilts Sigma g off the deficit's shape).
    """
    name, lo, hi, t = spec
    pc = positive_control(get_problem(name), lo + where * (hi - lo), t, deficit=deficit, unexplained=unexplained,
                          variance_scale=10.0**log_scale, discrete_total=True)
    d = update_diagnostics(pc["mean"], pc["truth"], conservation_constraint(pc["grid"]), pc["b"],
                           variance=pc["variance"])
    assert float(d["bound"]) == pytest.approx(1 / unexplained, rel=1e-6)
    assert float(d["gain"]) == pytest.approx(float(d["bound"]), rel=1e-6)
    assert float(d["mass_error_rel"][0]) == pytest.approx(-deficit, rel=1e-9)


@pytest.mark.parametrize("name, param, t", [("stefan", 0.6, 0.05), ("pme", 3.0, 0.5)])
def test_positive_control_with_the_closed_form_total(name, param, t):
    """The reproduction's b: the truth's quadrature error (0.8% of Stefan's total at 201 nodes, 0.08% for PME) is
    spread like the deficit, so the gain stays below the bound and within 5% of it."""
    pc = positive_control(get_problem(name), param, t)
    d = update_diagnostics(pc["mean"], pc["truth"], conservation_constraint(pc["grid"]), pc["b"],
                           variance=pc["variance"], grid=pc["grid"], shock=pc["front"])
    assert float(d["bound"]) == pytest.approx(3.0, rel=1e-6)
    assert 0.95 * float(d["bound"]) <= float(d["gain"]) <= float(d["bound"])
    assert float(d["error_behind"]) < 0 and float(d["mass_error"][0]) < 0    # one-sided deficit


def test_errors():
    grid = torch.linspace(0, 1, 5, dtype=torch.float64)
    c = conservation_constraint(grid)
    mu, var, b = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64), torch.zeros(1)
    with pytest.raises(ValueError, match="truth must have the prediction's shape"):
        update_diagnostics(mu, torch.zeros(4), c, b, variance=var)
    with pytest.raises(ValueError, match="grid is required"):
        update_diagnostics(mu, mu, c, b, variance=var, shock=0.5)
    with pytest.raises(ValueError, match="metric_weights must be positive"):
        update_diagnostics(mu, mu, c, b, variance=var, metric_weights=torch.tensor([1.0, 1, 1, 1, 0]))
    with pytest.raises(ValueError, match="b is required"):
        update_diagnostics(mu, mu, c, variance=var)
    with pytest.raises(TypeError, match="constraint must be a LinearConstraint"):
        update_diagnostics(mu, mu, c.G, b, variance=var)
    with pytest.raises(ValueError, match="method"):
        update_diagnostics(mu, mu, c, b, variance=var, method="softc")
    with pytest.raises(ValueError, match="grid must be strictly increasing"):
        update_diagnostics(mu, mu, c, b, variance=var, grid=grid.flip(0), shock=0.5)
    with pytest.raises(ValueError, match="unexplained must lie in"):
        positive_control(get_problem("stefan"), 0.6, 0.05, unexplained=1.0)
    with pytest.raises(ValueError, match="width must keep the bump"):
        positive_control(get_problem("stefan"), 0.6, 0.05, width=0.2)
    assert math.isnan(float(gain_bound(torch.zeros(3), torch.ones(3, 1))["bound"]))


def test_gain_bound_rejects_bad_input():
    with pytest.raises(ValueError, match="directions must have shape"):
        gain_bound(torch.ones(4), torch.ones(3, 1))
    with pytest.raises(ValueError, match="must be finite"):
        gain_bound(torch.tensor([1.0, float("nan")]), torch.ones(2, 1))
    with pytest.raises(ValueError, match="metric_weights must be positive"):
        gain_bound(torch.ones(2), torch.ones(2, 1), metric_weights=torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="error must be"):
        gain_bound("abc", torch.ones(2, 1))


@settings(max_examples=30)
@given(st.integers(6, 30), st.integers(0, 2**31 - 1), st.booleans(), st.sampled_from(("probconserv", "hardc")))
def test_one_row_mse_decomposes_by_the_coefficient_ratio(n, seed, weighted, method):
    """MSE(mu~) = best + (base - best) (c / c* - 1)^2: gain = bound at ratio 1, gain > 1 iff the ratio is in (0, 2)."""
    gen = torch.Generator().manual_seed(seed)
    grid = torch.cumsum(0.1 + torch.rand(n, generator=gen, dtype=torch.float64), 0)
    var = 10.0 ** (3 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)
    mu, truth = torch.randn(2, n, generator=gen, dtype=torch.float64)
    b = torch.randn(1, generator=gen, dtype=torch.float64)
    w = 0.1 + torch.rand(n, generator=gen, dtype=torch.float64) if weighted else None
    d = update_diagnostics(mu, truth, conservation_constraint(grid), b, variance=var, metric_weights=w, method=method)
    rho, base, best = d["coefficient_ratio"], d["base_mse"], d["best_mse"]
    torch.testing.assert_close(d["constrained_mse"], best + (base - best) * (rho - 1) ** 2, rtol=1e-9,
                               atol=1e-12 * float(base))
    if abs(float(rho) - 1) < 1 - 1e-6 and float(base - best) > 1e-9 * float(base):
        assert float(d["gain"]) > 1
    elif abs(float(rho) - 1) > 1 + 1e-6:
        assert float(d["gain"]) < 1


def test_the_diagnostics_are_offered_with_the_metrics():
    import probconserv_ext
    import probconserv_ext.diagnostics as diagnostics
    import probconserv_ext.metrics as metrics

    for name in ("gain_bound", "update_diagnostics"):
        assert getattr(metrics, name) is getattr(diagnostics, name) is getattr(probconserv_ext, name)
        assert name in metrics.__all__
