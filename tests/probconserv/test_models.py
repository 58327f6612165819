"""Probabilistic FNOs: shapes, the ensemble covariance, the Gaussian likelihood, training, the layer hand-off."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probconserv_ext import ProbConserv, conservation_constraint
from probconserv_ext.models import (
    FNOEnsemble,
    HeteroscedasticFNO,
    fit_ensemble,
    fit_heteroscedastic,
    gaussian_nll_loss,
)

TINY = dict(n_modes=2, hidden_channels=4, n_layers=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny FNOs: a second intra-op thread only spin-waits on a loaded 2-core machine (measured 20x slower)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _ens(s, shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((s,) + tuple(shape), generator=g, dtype=torch.float64)


# ---------------------------------------------------------------- ensemble covariance
@given(s=st.integers(2, 7), batch=st.integers(1, 3), c=st.integers(1, 3), n=st.integers(2, 12),
       seed=st.integers(0, 10_000), lam=st.floats(0, 1), jitter=st.floats(0, 1e-2))
def test_ensemble_gaussian_is_sample_covariance(s, batch, c, n, seed, lam, jitter):
    ens = _ens(s, (batch, c, n), seed)
    out = FNOEnsemble.gaussian_from_samples(ens, jitter, lam)
    U, d = out["cov_factor"], out["cov_diag"]
    assert U.shape == (batch, c, n, s) and d.shape == (batch, c, n)
    cov = U @ U.mT + torch.diag_embed(d)
    flat = ens.reshape(s, -1, n)
    for k in range(flat.shape[1]):
        sample = torch.cov(flat[:, k].T)
        expected = (1 - lam) * sample + lam * torch.diag(torch.diag(sample)) + jitter * torch.eye(n, dtype=ens.dtype)
        # float64 sums of <= 7 products of O(1) numbers
        torch.testing.assert_close(cov.reshape(-1, n, n)[k], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["mean"], ens.mean(0))
    torch.testing.assert_close(out["variance"], torch.diagonal(cov, dim1=-2, dim2=-1), rtol=1e-12, atol=1e-12)
    # centred members: the factor has rank <= S - 1 (its columns sum to zero)
    torch.testing.assert_close(U.sum(-1), torch.zeros_like(d), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "ens, jitter, lam, match",
    [
        (torch.zeros(1, 3), 0.0, 0.0, "S >= 2"),
        (torch.full((3, 4), float("nan")), 0.0, 0.0, "finite"),
        (torch.zeros(3, 4), -1.0, 0.0, "jitter"),
        (torch.zeros(3, 4), 0.0, 1.5, "shrinkage"),
        (np.zeros((3, 4)), 0.0, 0.0, "tensor"),
    ],
)
def test_ensemble_gaussian_bad_input(ens, jitter, lam, match):
    with pytest.raises(ValueError, match=match):
        FNOEnsemble.gaussian_from_samples(ens, jitter, lam)


@settings(max_examples=8)
@given(s=st.integers(2, 4), batch=st.integers(1, 3), c=st.integers(1, 3), n=st.integers(8, 24),
       seed=st.integers(0, 100))
def test_fno_ensemble_shapes_and_members_differ(s, batch, c, n, seed):
    model = FNOEnsemble(s, 2, c, seed=seed, **TINY)
    x = torch.randn(batch, 2, n)
    ens = model(x)
    assert ens.shape == (s, batch, c, n)
    assert not torch.allclose(ens[0], ens[1])  # independent initialisations
    out = model.predict(x)
    torch.testing.assert_close(out["mean"], ens.mean(0))
    assert out["cov_factor"].shape == (batch, c, n, s)


def test_fno_ensemble_is_seeded():
    x = torch.randn(2, 2, 16)
    a = FNOEnsemble(3, 2, 2, seed=5, **TINY)(x)
    b = FNOEnsemble(3, 2, 2, seed=5, **TINY)(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_members=1), "n_members"),
        (dict(out_channels=0), "out_channels"),
        (dict(n_modes=2.5), "n_modes"),
        (dict(jitter=0.0), "jitter"),
    ],
)
def test_fno_ensemble_bad_arguments(kwargs, match):
    args = dict(n_members=2, in_channels=2, out_channels=1, **TINY)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FNOEnsemble(**args)


def test_fno_ensemble_bad_input_shape():
    with pytest.raises(ValueError, match="x must be a tensor of shape"):
        FNOEnsemble(2, 2, 1, **TINY)(torch.zeros(2, 16))


# ---------------------------------------------------------------- heteroscedastic FNO and its loss
@settings(max_examples=8)
@given(batch=st.integers(1, 3), c=st.integers(1, 4), n=st.integers(8, 24))
def test_heteroscedastic_shapes_and_positive_variance(batch, c, n):
    model = HeteroscedasticFNO(2, c, min_variance=1e-6, **TINY)
    x = torch.randn(batch, 2, n)
    mean, log_var = model(x)
    assert mean.shape == log_var.shape == (batch, c, n)
    out = model.predict(x)
    torch.testing.assert_close(out["mean"], mean)
    torch.testing.assert_close(out["variance"], log_var.exp() + 1e-6)
    assert bool((out["variance"] > 0).all())


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=st.integers(0, 1000))
def test_gaussian_nll_loss_matches_torch(shape, seed):
    g = torch.Generator().manual_seed(seed)
    mean, log_var, y = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    ours = gaussian_nll_loss(mean, log_var, y)
    ref = torch.nn.functional.gaussian_nll_loss(mean, y, log_var.exp(), full=True, eps=0.0)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # minimised over the variance at the squared residual
    r2 = (y - mean) ** 2
    best = gaussian_nll_loss(mean, r2.clamp_min(1e-12).log(), y)
    assert best <= ours + 1e-12


def test_gaussian_nll_loss_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        gaussian_nll_loss(torch.zeros(3), torch.zeros(4), torch.zeros(3))


@pytest.mark.parametrize("kwargs, match", [(dict(out_channels=0), "out_channels"),
                                           (dict(min_variance=-1.0), "min_variance")])
def test_heteroscedastic_bad_arguments(kwargs, match):
    args = dict(in_channels=2, out_channels=1, **TINY)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        HeteroscedasticFNO(**args)


# ---------------------------------------------------------------- training
def _toy_data(n=8, nx=16, c=2):
    g = torch.Generator().manual_seed(0)
    p = torch.rand(n, generator=g)
    x = torch.stack([p[:, None].expand(n, nx), torch.linspace(0, 1, nx).expand(n, nx)], 1)
    y = torch.stack([p[:, None] * torch.sin(math.pi * x[:, 1]) * (k + 1) for k in range(c)], 1)
    return x, y


def test_fit_ensemble_reduces_loss():
    torch.manual_seed(0)
    x, y = _toy_data()
    model = FNOEnsemble(2, 2, 2, n_modes=4, hidden_channels=8, n_layers=1)
    hist = fit_ensemble(model, x, y, epochs=30, lr=1e-2, batch_size=8, progress=False)
    assert len(hist) == 2 and all(len(h) == 30 for h in hist)
    assert all(h[-1] < 0.5 * h[0] for h in hist)


def test_fit_heteroscedastic_reduces_loss_and_learns_variance():
    torch.manual_seed(0)
    x, y = _toy_data()
    model = HeteroscedasticFNO(2, 2, n_modes=4, hidden_channels=8, n_layers=1)
    hist = fit_heteroscedastic(model, x, y, epochs=40, lr=1e-2, batch_size=8, warmup=0.25, progress=False)
    assert hist[-1] < hist[10]  # the NLL phase improves on its start
    mean, log_var = model(x)
    nll = gaussian_nll_loss(mean, log_var, y)
    assert nll.item() < gaussian_nll_loss(mean, torch.zeros_like(log_var), y).item()


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.zeros(4, 2, 8), torch.zeros(4, 1, 9), "targets"),
        (torch.zeros(4, 8), torch.zeros(4, 1, 8), "inputs"),
        (torch.zeros(4, 2, 8), torch.full((4, 1, 8), float("nan")), "finite"),
    ],
)
def test_fit_bad_data(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_heteroscedastic(HeteroscedasticFNO(2, 1, **TINY), x, y, epochs=1, progress=False)


def test_fit_wrong_model_type():
    x, y = _toy_data(c=1)
    with pytest.raises(TypeError, match="FNOEnsemble"):
        fit_ensemble(HeteroscedasticFNO(2, 1, **TINY), x, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit_ensemble(FNOEnsemble(2, 2, 1, **TINY), x, y, epochs=0, progress=False)
    with pytest.raises(ValueError, match="lr must be"):
        fit_ensemble(FNOEnsemble(2, 2, 1, **TINY), x, y, epochs=1, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="warmup"):
        fit_heteroscedastic(HeteroscedasticFNO(2, 1, **TINY), x, y, epochs=1, warmup=1.0, progress=False)


# ---------------------------------------------------------------- hand-off to the ProbConserv layer
@settings(max_examples=10)
@given(s=st.integers(2, 5), nt=st.integers(1, 4), n=st.integers(8, 40), lam=st.sampled_from([0.0, 0.5]),
       seed=st.integers(0, 100))
def test_ensemble_prediction_is_conserved_by_the_layer(s, nt, n, lam, seed):
    model = FNOEnsemble(s, 2, nt, seed=seed, **TINY)
    x = torch.randn(1, 2, n)
    out = model.predict(x, shrinkage=lam)
    grid = torch.linspace(0, 1, n, dtype=torch.float64)
    b = torch.rand(1, nt, 1, dtype=torch.float64)
    post = ProbConserv(conservation_constraint(grid))(out["mean"].double(), cov_factor=out["cov_factor"].double(),
                                                      cov_diag=out["cov_diag"].double(), b=b)
    resid = post.mean.double() @ conservation_constraint(grid).G.mT - b
    # float64 update; the scale is |b| + integral of |mean| = O(1)
    assert float(resid.abs().max()) <= 1e-12
    if lam == 0.0:
        # the layer's own ensemble route (samples=) gives the same posterior as our factor (both in float64)
        ens64 = out["samples"].double()
        ours = FNOEnsemble.gaussian_from_samples(ens64, model.jitter)
        layer = ProbConserv(conservation_constraint(grid))
        post1 = layer(ours["mean"], cov_factor=ours["cov_factor"], cov_diag=ours["cov_diag"], b=b)
        post2 = layer(samples=ens64, cov_diag=ours["cov_diag"], b=b)
        torch.testing.assert_close(post1.mean, post2.mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(post1.variance, post2.variance, rtol=1e-10, atol=1e-12)
