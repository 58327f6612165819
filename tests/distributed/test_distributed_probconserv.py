"""Domain-decomposed ProbConserv on two gloo processes equals the single-process layer and conserves exactly."""

import dist_tasks
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probconserv_ext import LinearConstraint, ProbConserv, conservation_constraint
from probconserv_ext.distributed import (AGREEMENT_SIZE, DistributedProbConserv, conservation_slab, constraint_slab,
                                         slab_bounds)

EPS = torch.finfo(torch.float64).eps


@st.composite
def problems(draw):
    """A constraint (trapezoid row plus random rows on a random non-uniform grid), a prior and a split point."""
    n = draw(st.integers(2, 40))
    m = draw(st.integers(1, min(3, n)))
    batch = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    kind = draw(st.sampled_from(["variance", "lowrank", "samples"]))
    method = draw(st.sampled_from(["probconserv", "probconserv", "hardc"]))
    noise = draw(st.sampled_from([0.0, 0.0, 1e-3, 0.5]))
    cut = draw(st.integers(0, n))  # an empty slab on one rank is allowed
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    grid = torch.cumsum(0.1 + torch.rand(n, generator=g, dtype=torch.float64), 0)
    rows = [conservation_constraint(grid).G]
    rows += [torch.randn(1, n, generator=g, dtype=torch.float64) for _ in range(m - 1)]
    G = torch.cat(rows)
    scale = 10.0 ** draw(st.integers(-2, 2))
    mean = scale * torch.randn(*batch, n, generator=g, dtype=torch.float64)
    b = scale * torch.randn(*batch, m, generator=g, dtype=torch.float64)
    if kind == "variance":
        prior = dict(variance=scale**2 * (0.05 + torch.rand(*batch, n, generator=g, dtype=torch.float64)))
    elif kind == "lowrank":
        r = draw(st.integers(1, 4))
        prior = dict(cov_factor=scale * torch.randn(*batch, n, r, generator=g, dtype=torch.float64),
                     cov_diag=scale**2 * (0.05 + torch.rand(*batch, n, generator=g, dtype=torch.float64)))
    else:
        S = draw(st.integers(m + 2, 8))
        prior = dict(samples=mean + scale * torch.randn(S, *batch, n, generator=g, dtype=torch.float64),
                     cov_diag=scale**2 * 0.1 * torch.ones(n, dtype=torch.float64))
        mean = None
    draws = mean if mean is not None else prior["samples"].mean(0)
    draws = draws + scale * torch.randn(5, *draws.shape, generator=g, dtype=torch.float64)
    return dict(G=G, b=b, mean=mean, prior=prior, noise=noise, method=method, cut=cut, draws=draws)


def _cond_A(ref, G, noise, method):
    """Condition number of ``A = s2 I + G Sigma G^T`` (the round-off amplification of the update)."""
    S = torch.eye(G.shape[1], dtype=G.dtype) if method == "hardc" else ref.prior.covariance.to_dense()
    A = G @ S @ G.mT + noise * torch.eye(G.shape[0], dtype=G.dtype)
    ev = torch.linalg.eigvalsh(A)
    return float((ev.amax(-1) / ev.amin(-1).clamp_min(1e-300)).amax())


@settings(max_examples=20)
@given(p=problems(), as_distribution=st.booleans())
def test_slabs_equal_single_process_and_conserve(gloo_pool, p, as_distribution):
    ref = ProbConserv(LinearConstraint(p["G"], p["b"]), noise=p["noise"], method=p["method"])(p["mean"], **p["prior"])
    # Normal / LowRankMultivariateNormal over the slab are the same prior as variance= / cov_factor=.
    out = gloo_pool.run(dist_tasks.probconserv_update, as_distribution=as_distribution and p["b"].ndim == 1, **p)
    cond = _cond_A(ref, p["G"], p["noise"], p["method"])
    # Summation order differs from one process: float64 round-off amplified at most by cond(A).
    tol = 1e3 * EPS * max(cond, 1.0)
    mean = torch.cat([o["mean"] for o in out], -1)
    scale = ref.prior.mean.abs().amax() + (ref.mean - ref.prior.mean).abs().amax() + p["b"].abs().amax()
    assert (mean - ref.mean).abs().amax() <= tol * scale
    var = torch.cat([o["variance"] for o in out], -1)
    assert (var - ref.variance).abs().amax() <= tol * ref.prior.variance.abs().amax()
    if ref.factors is not None:
        W = torch.cat([o["W"] for o in out], -2)
        WWt, ref_WWt = W @ W.mT, ref.factors.W @ ref.factors.W.mT
        assert (WWt - ref_WWt).abs().amax() <= tol * ref.prior.variance.abs().amax()
    # Every rank sees the same global quantities, bit for bit.
    assert torch.equal(out[0]["residual"], out[1]["residual"])
    assert torch.equal(out[0]["gathered_mean"], out[1]["gathered_mean"])
    assert torch.equal(out[0]["gathered_mean"], mean)
    # Slabs of pushed draws equal the single-process update of the same draws.
    if p["noise"] == 0:
        drawn = torch.cat([o["updated_draws"] for o in out], -1)
        dscale = p["draws"].abs().amax() + scale
        assert (drawn - ref.update_samples(p["draws"])).abs().amax() <= tol * dscale
        if "samples" in p["prior"]:  # ensemble members pushed through the update they define
            members = torch.cat([o["constrained_members"] for o in out], -1)
            layer = ProbConserv(LinearConstraint(p["G"], p["b"]), method=p["method"])
            ref_members = layer.constrain_samples(p["prior"]["samples"], cov_diag=p["prior"]["cov_diag"])[0]
            assert (members - ref_members).abs().amax() <= tol * (p["prior"]["samples"].abs().amax() + scale)
    # Communication: one agreement header plus 3m + m^2 (+ r m) numbers per field, independent of n.
    m = p["G"].shape[0]
    r = ref.prior.covariance.factor.shape[-1] if hasattr(ref.prior.covariance, "factor") else 0
    r = 0 if p["method"] == "hardc" else r
    fields = max(ref.batch_shape.numel(), 1)
    # (the header: an error flag, then the max of the agreement vector and of its negative)
    assert out[0]["comm_bytes"] == 8 * (fields * (3 * m + m * m + r * m) + 1 + 2 * AGREEMENT_SIZE)


@settings(max_examples=15)
@given(p=problems())
def test_gathered_posterior_conserves_exactly(gloo_pool, p):
    p["noise"] = 0.0
    ref = ProbConserv(LinearConstraint(p["G"], p["b"]), method=p["method"])(p["mean"], **p["prior"])
    out = gloo_pool.run(dist_tasks.probconserv_update, **p)
    cond = _cond_A(ref, p["G"], 0.0, p["method"])
    G, b = p["G"], p["b"]
    for o in out:
        mg = o["gathered_mean"]
        # Exact up to round-off: |G mean - b| relative to |G| |mean| + |b|, amplified at most by cond(A).
        bound = 1e3 * EPS * max(cond, 1.0) * (mg.abs() @ G.abs().mT + b.abs())
        assert ((mg @ G.mT - b).abs() <= bound).all()
        assert ((o["residual"]).abs() <= bound).all()
        if p["method"] == "hardc":
            continue  # HardC shifts draws with the mean and keeps the prior covariance: draws do not conserve
        # Pushed draws and posterior draws conserve exactly too (one rank draws the shared noise/latents).
        for u in (torch.cat([x["updated_draws"] for x in out], -1), o["rsample"]):
            ubound = 1e3 * EPS * max(cond, 1.0) * (u.abs() @ G.abs().mT + b.abs())
            assert ((u @ G.mT - b).abs() <= ubound).all()


@settings(max_examples=8)
@given(p=problems())
def test_gradient_equals_single_process(gloo_pool, p):
    if p["mean"] is None:
        return
    w = torch.randn(p["mean"].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    mu = p["mean"].clone().requires_grad_(True)
    ref = ProbConserv(LinearConstraint(p["G"], p["b"]), noise=p["noise"], method=p["method"])(mu, **p["prior"])
    (ref.mean * w).sum().backward()
    out = gloo_pool.run(dist_tasks.probconserv_update, grad_weights=w, **p)
    grad = torch.cat([o["grad"] for o in out], -1)
    cond = _cond_A(ref, p["G"], p["noise"], p["method"])
    assert (grad - mu.grad).abs().amax() <= 1e3 * EPS * max(cond, 1.0) * (mu.grad.abs().amax() + w.abs().amax())


@pytest.mark.parametrize("kind", ["nan", "negative", "batch", "rows", "dense", "bshape"])
@pytest.mark.parametrize("bad_rank", [0, 1])
def test_bad_input_on_one_rank_raises_on_every_rank(gloo_pool, kind, bad_rank):
    g = torch.Generator().manual_seed(3)
    G = torch.randn(2, 12, generator=g, dtype=torch.float64)
    mean = torch.randn(3, 12, generator=g, dtype=torch.float64)
    out = gloo_pool.run(dist_tasks.probconserv_bad_input, G=G, mean=mean, variance=torch.ones(3, 12), bad_rank=bad_rank,
                        kind=kind)
    assert all(msg is not None for msg in out)
    own = out[bad_rank]
    expected = {"nan": "mean must be finite", "negative": "variance must be non-negative",
                "batch": "disagree on the shape", "rows": "must agree on every rank",
                "dense": "a dense covariance couples every pair of slabs",
                "bshape": "b of shape (2, 3, 2) (leading shape (2, 3)) would broadcast"}[kind]
    assert expected in own
    assert expected in out[1 - bad_rank] or "another rank" in out[1 - bad_rank]


def test_needs_initialized_process_group():
    c = conservation_constraint(torch.linspace(0, 1, 9))
    with pytest.raises(ValueError, match="group: torch.distributed is not initialized"):
        DistributedProbConserv(c)
    with pytest.raises(ValueError, match="not initialized"):
        slab_bounds(9)


@given(n=st.integers(1, 10**7), world=st.integers(1, 64))
def test_slab_bounds_partition(n, world):
    bounds = [slab_bounds(n, rank=r, world_size=world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_constraint_slab_errors():
    c = conservation_constraint(torch.linspace(0, 1, 9))
    with pytest.raises(ValueError, match="start, stop"):
        constraint_slab(c, 5, 3)
    with pytest.raises(TypeError, match="constraint must be a LinearConstraint"):
        constraint_slab(c.G, 0, 3)


@given(n=st.integers(2, 30), extra=st.lists(st.integers(2, 5), max_size=2), world=st.integers(1, 40),
       seed=st.integers(0, 2**31 - 1))
def test_conservation_slab_matches_global_weights(n, extra, world, seed):
    g = torch.Generator().manual_seed(seed)
    axes = [torch.cumsum(0.05 + torch.rand(k, generator=g, dtype=torch.float64), 0) for k in [n, *extra]]
    grid = tuple(axes) if extra else axes[0]
    full = conservation_constraint(grid, total=torch.tensor([1.5, 2.0])).G[0]
    parts = [conservation_slab(grid, *slab_bounds(n, rank=r, world_size=world), total=torch.tensor([1.5, 2.0]))
             for r in range(world)]
    # The same trapezoid formula on the same nodes: equal to round-off of one subtraction and one product.
    assert torch.allclose(torch.cat([p.G[0] for p in parts]), full, rtol=4 * EPS, atol=0)
    assert all(p.b.shape == (2, 1) for p in parts)
    with pytest.raises(ValueError, match="start, stop"):
        conservation_slab(grid, 0, n + 1)
