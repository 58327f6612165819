"""The attentive neural process: shapes, the predictive variance, conditioning, gradients, the layer hand-off and
seeding without touching the global random state."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

import probconserv_ext
from probconserv_ext import ProbConserv, conservation_constraint
from probconserv_ext.models import AttentiveNeuralProcess, fit_neural_process, sample_observations
from probconserv_ext.problems import StefanProblem

TINY = dict(hidden=8, latent=4, n_heads=2, n_layers=2)


def _inputs(batch, n_ctx, target_shape, seed):
    g = torch.Generator().manual_seed(seed)
    xc = torch.rand(batch, n_ctx, 2, generator=g)
    uc = torch.randn(batch, n_ctx, generator=g)
    xt = torch.rand(batch, *target_shape, 2, generator=g)
    return xc, uc, xt


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@settings(max_examples=10, deadline=None)
@given(batch=st.integers(1, 3), n_ctx=st.integers(1, 6), target=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       n_latent=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_shapes_and_positive_std(batch, n_ctx, target, n_latent, seed):
    model = AttentiveNeuralProcess(**TINY, seed=seed % 100)
    xc, uc, xt = _inputs(batch, n_ctx, target, seed)
    mean, std = model(xc, uc, xt, n_latent=n_latent, generator=torch.Generator().manual_seed(seed))
    assert mean.shape == std.shape == (n_latent, batch, *target)
    # softplus(.) + min_std: at least min_std (float32 rounding of the sum aside)
    assert bool((std >= model.min_std * (1 - 1e-6)).all())
    pred = model.predict(xc, uc, xt, n_latent=n_latent, seed=seed)
    assert isinstance(pred, Normal) and pred.batch_shape == (batch, *target) and pred.mean.dtype == torch.float64


@settings(max_examples=10, deadline=None)
@given(n_latent=st.integers(1, 5), chunk=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_predictive_variance_is_mean_of_variances_plus_variance_of_means(n_latent, chunk, seed):
    model = AttentiveNeuralProcess(**TINY, seed=1)
    xc, uc, xt = _inputs(3, 4, (2, 5), seed)
    pred = model.predict(xc, uc, xt, n_latent=n_latent, seed=seed, chunk=chunk)
    # the same draws, function by function (predict decodes chunk functions at a time from one generator)
    g = torch.Generator().manual_seed(seed)
    means, variances = [], []
    for i in range(0, 3, chunk):
        m, s = model(xc[i:i + chunk], uc[i:i + chunk], xt[i:i + chunk], n_latent, g)
        m, s = m.double(), s.double()
        means.append(m.mean(0))
        variances.append((s**2).mean(0) + ((m - m.mean(0)) ** 2).mean(0))
    torch.testing.assert_close(pred.mean, torch.cat(means), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(pred.variance, torch.cat(variances), rtol=1e-12, atol=1e-14)
    assert bool((pred.variance >= model.min_std**2 * (1 - 1e-5)).all())


def test_gradients_reach_every_parameter():
    model = AttentiveNeuralProcess(**TINY, seed=0)
    xc, uc, xt = _inputs(2, 5, (7,), 0)
    ut = torch.randn(2, 7, generator=torch.Generator().manual_seed(1))
    loss = model.elbo_loss(xc, uc, xt, ut, generator=torch.Generator().manual_seed(2))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, name
    # the reparametrised latent draws carry gradients through forward() too
    model.zero_grad()
    mean, std = model(xc, uc, xt, n_latent=3, generator=torch.Generator().manual_seed(3))
    (mean.sum() + std.sum()).backward()
    assert float(model.lat_head[-1].weight.grad.abs().sum()) > 0


@settings(max_examples=10, deadline=None)
@given(nt=st.integers(1, 3), n=st.integers(3, 12), seed=st.integers(0, 2**31), nonneg=st.booleans())
def test_prediction_is_conserved_exactly_by_the_layer(nt, n, seed, nonneg):
    model = AttentiveNeuralProcess(**TINY, seed=seed % 50)
    xc, uc, _ = _inputs(2, 4, (1,), seed)
    grid = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    tt = torch.linspace(0.2, 1.0, nt)
    xt = torch.stack(torch.broadcast_tensors(grid.float()[None, :], tt[:, None]), -1).expand(2, -1, -1, -1)
    pred = model.predict(xc, uc, xt, n_latent=3, seed=seed)
    totals = torch.rand(2, nt, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.1
    post = ProbConserv(conservation_constraint(grid), nonnegative=nonneg)(pred, b=totals)
    w = conservation_constraint(grid).G[0]
    residual = post.mean @ w - totals[..., 0]
    # float64 update: round-off relative to the total and the integral of |mean|
    scale = totals[..., 0].abs() + post.mean.abs() @ w + pred.mean.abs() @ w
    assert bool((residual.abs() <= 1e-12 * scale).all())
    if nonneg:
        assert bool((post.mean >= 0).all())


def test_conditioning_on_more_observations_lowers_the_error():
    # a tiny model trained for a few seconds on Stefan solutions (p* in the paper's training range)
    problem = StefanProblem()
    x, t = problem.grid(33), 0.1 * np.arange(1, 11) / 10
    fields = torch.tensor(np.stack([problem.solution(x, t, p) for p in problem.sample_params(64, 0)]),
                          dtype=torch.float32)
    xs, ts = torch.tensor(x, dtype=torch.float32), torch.tensor(t / 0.1, dtype=torch.float32)
    model = AttentiveNeuralProcess(hidden=16, latent=8, n_heads=2, n_layers=2, seed=0)
    losses = fit_neural_process(model, fields, xs, ts, steps=200, lr=3e-3, batch_size=8, n_times=5, n_points=8,
                                n_target=64, seed=0)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    coords = torch.stack(torch.broadcast_tensors(xs[None, :], ts[:, None]), -1).reshape(-1, 2)
    tests = torch.tensor(np.stack([problem.solution(x, t, p) for p in (0.58, 0.62, 0.66)]),
                         dtype=torch.float32).reshape(3, -1)
    g = torch.Generator().manual_seed(5)
    err = {}
    for k in (2, 40):
        idx = torch.stack([torch.randperm(coords.shape[0], generator=g)[:k] for _ in range(3)])
        pred = model.predict(coords[idx], tests.gather(1, idx), coords.expand(3, -1, -1), n_latent=10, seed=0)
        err[k] = float(((pred.mean - tests.double()) ** 2).mean())
    # 40 observations (the training pattern's size) pin the solution down far better than 2 (measured ratio ~5)
    assert err[40] < 0.5 * err[2], err


def test_constructor_fit_and_seeded_predict_leave_global_rng_alone():
    fields = torch.rand(4, 3, 6, generator=torch.Generator().manual_seed(0))
    xs, ts = torch.linspace(0, 1, 6), torch.linspace(0.3, 1, 3)
    fitted = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        model = AttentiveNeuralProcess(**TINY, seed=3)
        fit_neural_process(model, fields, xs, ts, steps=3, batch_size=2, n_times=2, n_points=3, n_target=4, seed=7)
        xc, uc, xt = _inputs(2, 3, (4,), 0)
        pred = model.predict(xc, uc, xt, n_latent=2, seed=11)
        assert torch.equal(torch.get_rng_state(), state)
        fitted.append((model, pred))
    assert _same_state(fitted[0][0], fitted[1][0])
    assert torch.equal(fitted[0][1].mean, fitted[1][1].mean)
    assert not _same_state(AttentiveNeuralProcess(**TINY, seed=3), AttentiveNeuralProcess(**TINY, seed=4))


def test_sample_observations_is_a_product_of_slices_and_nodes():
    g = torch.Generator().manual_seed(0)
    ti, xi = sample_observations(torch.zeros(3, 7, 9), 2, 4, g)
    assert ti.shape == xi.shape == (3, 8)
    for b in range(3):
        pairs = set(zip(ti[b].tolist(), xi[b].tolist()))
        assert len(pairs) == 8 and len(set(ti[b].tolist())) == 2 and len(set(xi[b].tolist())) == 4
    with pytest.raises(ValueError, match="n_times"):
        sample_observations(torch.zeros(3, 7, 9), 8, 4, g)


@pytest.mark.parametrize("kwargs, match", [(dict(hidden=6, n_heads=4), "multiple of n_heads"),
                                           (dict(n_layers=1), "n_layers"), (dict(min_std=0.0), "min_std"),
                                           (dict(x_dim=0), "x_dim"), (dict(seed=-1), "seed")])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentiveNeuralProcess(**{**TINY, **kwargs})


def test_bad_inputs_raise_naming_the_argument():
    model = AttentiveNeuralProcess(**TINY, seed=0)
    xc, uc, xt = _inputs(2, 3, (4,), 0)
    with pytest.raises(ValueError, match="u_context"):
        model.predict(xc, uc[:, :2], xt)
    with pytest.raises(ValueError, match="x_target"):
        model.predict(xc, uc, xt[:1])
    with pytest.raises(ValueError, match="x_context"):
        model.predict(xc[..., :1], uc, xt)
    with pytest.raises(ValueError, match="finite"):
        model.predict(xc, uc * float("nan"), xt)
    with pytest.raises(TypeError, match="x_context"):
        model.predict(xc.numpy(), uc, xt)
    with pytest.raises(ValueError, match="seed or generator"):
        model.predict(xc, uc, xt, seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        model.predict(xc, uc, xt, generator=0)
    with pytest.raises(ValueError, match="n_latent"):
        model.predict(xc, uc, xt, n_latent=0)
    with pytest.raises(TypeError, match="model"):
        fit_neural_process(torch.nn.Linear(2, 2), torch.zeros(2, 3, 4), torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match="x_grid"):
        fit_neural_process(model, torch.zeros(2, 3, 4), torch.zeros(5), torch.zeros(3))


def test_float64_inputs_give_the_float32_models_prediction():
    model = AttentiveNeuralProcess(**TINY, seed=0)
    xc, uc, xt = _inputs(2, 3, (4,), 0)
    a = model.predict(xc, uc, xt, n_latent=2, seed=1)
    b = model.predict(xc.double(), uc.double(), xt.double(), n_latent=2, seed=1)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.variance, b.variance)
    with pytest.raises(ValueError, match="u_target"):
        model.elbo_loss(xc, uc, xt, torch.zeros(2, 5))


def test_exported():
    assert probconserv_ext.AttentiveNeuralProcess is AttentiveNeuralProcess
    assert probconserv_ext.fit_neural_process is fit_neural_process


@settings(max_examples=5, deadline=None)
@given(batch=st.integers(1, 5), chunk=st.integers(1, 3), seed=st.integers(0, 100))
def test_predict_checks_its_inputs_once(batch, chunk, seed):
    # the inputs are checked (and cast) once per call, not again for every chunk of functions
    model = AttentiveNeuralProcess(**TINY, seed=0)
    calls = []
    original = AttentiveNeuralProcess._check_inputs

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    AttentiveNeuralProcess._check_inputs = counting
    try:
        xc, uc, xt = _inputs(batch, 3, (4,), seed)
        pred = model.predict(xc, uc, xt, n_latent=2, seed=seed, chunk=chunk)
    finally:
        AttentiveNeuralProcess._check_inputs = original
    assert len(calls) == 1 and pred.batch_shape == (batch, 4)


@settings(max_examples=8, deadline=None)
@given(steps=st.integers(2, 12), data=st.data())
def test_stop_after_takes_the_first_steps_of_the_full_schedule(steps, data):
    """``stop_after=k`` gives the full run's first k losses and weights (same schedule, batches and draws)."""
    k = data.draw(st.integers(1, steps), label="stop_after")
    fields = torch.rand(5, 3, 6, generator=torch.Generator().manual_seed(1))
    xs, ts = torch.linspace(0, 1, 6), torch.linspace(0.3, 1, 3)
    kw = dict(steps=steps, lr=1e-2, batch_size=2, n_times=2, n_points=3, n_target=4, seed=2)
    full = fit_neural_process(AttentiveNeuralProcess(**TINY, seed=0), fields, xs, ts, **kw)
    short_model = AttentiveNeuralProcess(**TINY, seed=0)
    short = fit_neural_process(short_model, fields, xs, ts, stop_after=k, **kw)
    assert short == full[:k]
    if k < steps:  # the learning rate of the k-th step is the full schedule's (not a k-step cosine, which ends at 0)
        ref = AttentiveNeuralProcess(**TINY, seed=0)
        fit_neural_process(ref, fields, xs, ts, **dict(kw, steps=k))
        assert not _same_state(short_model, ref) or k == 1
