"""Probabilistic FNOs: shapes, the ensemble covariance, the Gaussian likelihood, training, the layer hand-off,
seeding without touching the global random state."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import LowRankMultivariateNormal, Normal

import probconserv_ext
from probconserv_ext import ProbConserv, conservation_constraint, gaussian_nll
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
       seed=st.integers(0, 10_000), lam=st.floats(0, 1), jitter=st.floats(1e-6, 1e-2))
def test_ensemble_gaussian_is_sample_covariance(s, batch, c, n, seed, lam, jitter):
    ens = _ens(s, (batch, c, n), seed)
    out = FNOEnsemble.gaussian_from_samples(ens, jitter, lam)
    assert isinstance(out, LowRankMultivariateNormal)
    assert out.batch_shape == (batch, c) and out.event_shape == (n,)
    U, d = out.cov_factor, out.cov_diag
    assert U.shape == (batch, c, n, s) and d.shape == (batch, c, n)
    cov = U @ U.mT + torch.diag_embed(d)
    flat = ens.reshape(s, -1, n)
    for k in range(flat.shape[1]):
        sample = torch.cov(flat[:, k].T)
        expected = (1 - lam) * sample + lam * torch.diag(torch.diag(sample)) + jitter * torch.eye(n, dtype=ens.dtype)
        # float64 sums of <= 7 products of O(1) numbers
        torch.testing.assert_close(cov.reshape(-1, n, n)[k], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.mean, ens.mean(0))
    torch.testing.assert_close(out.variance, torch.diagonal(cov, dim1=-2, dim2=-1), rtol=1e-12, atol=1e-12)
    # the distribution's own covariance is the same matrix
    torch.testing.assert_close(out.covariance_matrix, cov, rtol=1e-12, atol=1e-12)
    # centred members: the factor has rank <= S - 1 (its columns sum to zero)
    torch.testing.assert_close(U.sum(-1), torch.zeros_like(d), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "ens, jitter, lam, match",
    [
        (torch.zeros(1, 3), 0.0, 0.0, "S >= 2"),
        (torch.full((3, 4), float("nan")), 0.0, 0.0, "finite"),
        (torch.zeros(3, 4), -1.0, 0.0, "jitter"),
        (torch.zeros(3, 4), 0.0, 0.0, "jitter"),
        (torch.zeros(3, 4), 1e-6, 1.5, "shrinkage"),
    ],
)
def test_ensemble_gaussian_bad_input(ens, jitter, lam, match):
    with pytest.raises(ValueError, match=match):
        FNOEnsemble.gaussian_from_samples(ens, jitter, lam)


def test_ensemble_gaussian_wrong_kind_of_argument():
    # the shared vocabulary: a wrong kind of object is a TypeError that names the argument
    with pytest.raises(TypeError, match="ens must be a tensor"):
        FNOEnsemble.gaussian_from_samples(np.zeros((3, 4)), 1e-6)
    with pytest.raises(TypeError, match="jitter must be a real number"):
        FNOEnsemble.gaussian_from_samples(torch.zeros(3, 4), "1e-6")
    with pytest.raises(TypeError, match="shrinkage must be a real number"):
        FNOEnsemble.gaussian_from_samples(torch.zeros(3, 4), 1e-6, None)


def test_ensemble_gaussian_bad_dtype_and_unfactorable_float32():
    ens = _ens(3, (2, 16), 0)
    with pytest.raises(ValueError, match="dtype"):
        FNOEnsemble.gaussian_from_samples(ens, 1e-6, dtype=torch.int64)
    # rank-deficient centred factor, spread 1e12 x the jitter: the capacitance cannot be factored in float32
    with pytest.raises(ValueError, match="jitter"):
        FNOEnsemble.gaussian_from_samples(1e3 * ens.float(), 1e-6, dtype=torch.float32)


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
    assert isinstance(out, LowRankMultivariateNormal) and out.mean.dtype == torch.float64
    torch.testing.assert_close(out.mean, ens.mean(0).double())
    assert out.cov_factor.shape == (batch, c, n, s)
    torch.testing.assert_close(model.member_predictions(x), ens, rtol=0, atol=0)
    assert out.sample((3,)).shape == (3, batch, c, n)


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
        (dict(jitter=0.0), "jitter"),
    ],
)
def test_fno_ensemble_bad_arguments(kwargs, match):
    args = dict(n_members=2, in_channels=2, out_channels=1, **TINY)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FNOEnsemble(**args)


@pytest.mark.parametrize("kwargs, match", [(dict(n_modes=2.5), "n_modes must be an integer"),
                                           (dict(in_channels=True), "in_channels must be an integer"),
                                           (dict(jitter="small"), "jitter must be a real number")])
def test_fno_ensemble_wrong_kind_of_argument(kwargs, match):
    args = dict(n_members=2, in_channels=2, out_channels=1, **TINY)
    args.update(kwargs)
    with pytest.raises(TypeError, match=match):
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
    assert isinstance(out, Normal) and out.mean.dtype == torch.float64
    torch.testing.assert_close(out.mean, mean.double())
    # variance computed in float32, then cast: float32 rounding of exp(log_var) + 1e-6
    torch.testing.assert_close(out.variance, (log_var.exp() + 1e-6).double(), rtol=1e-6, atol=0)
    assert bool((out.variance > 0).all())
    assert model.predict(x, dtype=torch.float32).mean.dtype == torch.float32
    with pytest.raises(ValueError, match="dtype"):
        model.predict(x, dtype="float64")


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=st.integers(0, 1000))
def test_gaussian_nll_loss_matches_torch(shape, seed):
    g = torch.Generator().manual_seed(seed)
    mean, log_var, y = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    with pytest.deprecated_call():
        ours = gaussian_nll_loss(mean, log_var, y)
    ref = torch.nn.functional.gaussian_nll_loss(mean, y, log_var.exp(), full=True, eps=0.0)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # the deprecated alias and the one public NLL agree (float64; log(exp(log_var)) round trip, |log_var| <~ 5)
    torch.testing.assert_close(ours, gaussian_nll(Normal(mean[..., None], (0.5 * log_var[..., None]).exp()),
                                                  y[..., None]), rtol=1e-12, atol=1e-12)
    # minimised over the variance at the squared residual
    r2 = (y - mean) ** 2
    with pytest.deprecated_call():
        best = gaussian_nll_loss(mean, r2.clamp_min(1e-12).log(), y)
    assert best <= ours + 1e-12


def test_gaussian_nll_loss_is_a_deprecated_alias_everywhere():
    # one function behind every public name
    assert probconserv_ext.gaussian_nll_loss is gaussian_nll_loss is probconserv_ext.losses.gaussian_nll_loss
    assert "gaussian_nll_loss" in probconserv_ext.__all__ and "gaussian_nll" in probconserv_ext.__all__
    with pytest.warns(DeprecationWarning, match="gaussian_nll\\(Normal"):
        probconserv_ext.gaussian_nll_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3))


def test_gaussian_nll_loss_shape_mismatch():
    with pytest.deprecated_call(), pytest.raises(ValueError, match="same shape"):
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
    nll = gaussian_nll(Normal(mean, (0.5 * log_var).exp()), y)
    assert nll.item() < gaussian_nll(Normal(mean, torch.ones_like(mean)), y).item()


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
    x = torch.randn(1, 2, n, generator=torch.Generator().manual_seed(seed))
    grid = torch.linspace(0, 1, n, dtype=torch.float64)
    c = conservation_constraint(grid)
    b = torch.rand(1, nt, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    post = ProbConserv(c)(model.predict(x, shrinkage=lam), b=b)
    resid = post.mean @ c.G.mT - b
    # float64 update; the scale is |b| + integral of |mean| = O(1)
    assert float(resid.abs().max()) <= 1e-12
    if lam == 0.0:
        # the layer's own ensemble route (samples=, the members themselves) gives the same posterior
        # (statistics of the float64 members: predict() forms them in the members' float32 first)
        members = model.member_predictions(x).double()
        prior = FNOEnsemble.gaussian_from_samples(members, model.jitter)
        torch.testing.assert_close(prior.mean, model.predict(x).mean, rtol=1e-6, atol=1e-6)
        post1 = ProbConserv(c)(prior, b=b)
        post2 = ProbConserv(c)(samples=members, cov_diag=prior.cov_diag, b=b)
        torch.testing.assert_close(post1.mean, post2.mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(post1.variance, post2.variance, rtol=1e-10, atol=1e-12)
        # and the members pushed through the update conserve exactly, with the posterior mean as their mean
        upd = post1.update_samples(members)
        assert float((upd @ c.G.mT - b).abs().max()) <= 1e-12
        torch.testing.assert_close(upd.mean(0), post1.mean, rtol=1e-10, atol=1e-12)


@settings(max_examples=8)
@given(nt=st.integers(1, 4), n=st.integers(8, 40), seed=st.integers(0, 100))
def test_heteroscedastic_prediction_is_conserved_by_the_layer(nt, n, seed):
    model = HeteroscedasticFNO(2, nt, seed=seed, **TINY)
    x = torch.randn(2, 2, n, generator=torch.Generator().manual_seed(seed))
    c = conservation_constraint(torch.linspace(0, 1, n, dtype=torch.float64))
    b = torch.rand(2, nt, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    prior = model.predict(x)
    post = ProbConserv(c)(prior, b=b)
    assert float((post.mean @ c.G.mT - b).abs().max()) <= 1e-12
    # the same update as passing the mean and variance explicitly
    ref = ProbConserv(c)(prior.mean, variance=prior.variance, b=b)
    torch.testing.assert_close(post.mean, ref.mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(post.variance, ref.variance, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- seeding: local, reproducible
def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    tensors = [k for k in sa if isinstance(sa[k], torch.Tensor)]
    assert tensors  # the comparison is about the weights
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in tensors)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31), other=st.integers(1, 1000), global_seed=st.integers(0, 2**31))
def test_constructors_leave_global_rng_alone_and_same_seed_same_model(seed, other, global_seed):
    torch.manual_seed(global_seed)
    state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    ens_a = FNOEnsemble(2, 2, 1, seed=seed, **TINY)
    het_a = HeteroscedasticFNO(2, 1, seed=seed, **TINY)
    assert torch.equal(torch.get_rng_state(), state)
    # torch.manual_seed inside the constructors also seeds CUDA: those states are restored too
    cuda_after = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    assert len(cuda_after) == len(cuda_states) and all(map(torch.equal, cuda_after, cuda_states))
    # a different global state does not change the models
    torch.manual_seed(global_seed + 1)
    ens_b = FNOEnsemble(2, 2, 1, seed=seed, **TINY)
    het_b = HeteroscedasticFNO(2, 1, seed=seed, **TINY)
    assert _same_state(ens_a, ens_b) and _same_state(het_a, het_b)
    assert not _same_state(het_a, HeteroscedasticFNO(2, 1, seed=seed + other, **TINY))
    assert not _same_state(ens_a, FNOEnsemble(2, 2, 1, seed=seed + other, **TINY))


def test_fit_leaves_global_rng_alone_and_is_reproducible():
    x, y = _toy_data(c=1)
    fitted = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        ens = FNOEnsemble(2, 2, 1, seed=3, **TINY)
        het = HeteroscedasticFNO(2, 1, seed=3, **TINY)
        fit_ensemble(ens, x, y, epochs=3, batch_size=4, seed=7, progress=False)
        fit_heteroscedastic(het, x, y, epochs=3, batch_size=4, seed=7, warmup=0.3, progress=False)
        assert torch.equal(torch.get_rng_state(), state)
        fitted.append((ens, het))
    assert _same_state(fitted[0][0], fitted[1][0]) and _same_state(fitted[0][1], fitted[1][1])
    # the data order follows the fit seed
    het = HeteroscedasticFNO(2, 1, seed=3, **TINY)
    fit_heteroscedastic(het, x, y, epochs=3, batch_size=4, seed=8, warmup=0.3, progress=False)
    assert not _same_state(het, fitted[0][1])


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("0", TypeError)])
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        FNOEnsemble(2, 2, 1, seed=seed, **TINY)
    with pytest.raises(exc, match="seed"):
        HeteroscedasticFNO(2, 1, seed=seed, **TINY)
    x, y = _toy_data(c=1)
    with pytest.raises(exc, match="seed"):
        fit_heteroscedastic(HeteroscedasticFNO(2, 1, **TINY), x, y, epochs=1, seed=seed, progress=False)


@settings(max_examples=6, deadline=None)
@given(s=st.integers(2, 3), seed=st.integers(0, 1000), other=st.integers(0, 1000))
def test_state_dict_round_trips_without_warnings(s, seed, other):
    """A container of neuralop FNOs saves and loads like any module (neuralop writes a stray ``_metadata``)."""
    import warnings

    x = torch.randn(2, 2, 16)
    for make in (lambda seed: FNOEnsemble(s, 2, 3, n_modes=4, hidden_channels=4, n_layers=1, seed=seed),
                 lambda seed: HeteroscedasticFNO(2, 3, n_modes=4, hidden_channels=4, n_layers=1, seed=seed)):
        source, target = make(seed), make(other)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            state = source.state_dict()
        assert "_metadata" not in state
        target.load_state_dict(state)  # strict: every key is a parameter or buffer of the target
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_gaussian_nll_refuses_a_target_that_would_broadcast_the_prediction():
    from torch.distributions import Normal

    dist = Normal(torch.zeros(4, 8), torch.ones(4, 8))
    with pytest.raises(ValueError, match=r"target of shape \(4, 1, 8\) would broadcast the prediction's shape \(4, 8\) to \(4, 4, 8\)"):
        gaussian_nll(dist, torch.zeros(4, 1, 8), reduction="none")
    assert gaussian_nll(dist, torch.zeros(1, 8), reduction="none").shape == gaussian_nll(
        dist, torch.zeros(4, 8), reduction="none").shape  # a target that broadcasts *to* the prediction is fine


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31), n_members=st.integers(2, 3))
def test_numpy_integers_are_integers(seed, n_members):
    # the shared check_int accepts NumPy integers (e.g. from a config array) and gives the same model
    a = FNOEnsemble(np.int64(n_members), np.int32(2), np.int64(1), seed=np.int64(seed), **TINY)
    b = FNOEnsemble(n_members, 2, 1, seed=seed, **TINY)
    assert a.seed == seed and type(a.seed) is int and _same_state(a, b)
