"""The update arithmetic (:mod:`probconserv_ext.update`) against a dense float64 reference.

The reference forms ``S = diag(d)`` and ``A = s2 I + G S G^T`` densely and solves with ``torch.linalg``; a singular
``A`` is handled with its pseudo-inverse. Round-off of the structured path is bounded by ``eps`` times the problem's
scale, amplified at most by the condition number of the equilibrated ``A``.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from probconserv_ext.update import (
    REFINE_STEPS,
    UpdateFactors,
    factor_update,
    pivot_tolerance,
    refine_to_roundoff,
    residual_tolerance,
    solve_update,
)

f64 = torch.float64
EPS = torch.finfo(f64).eps


@st.composite
def systems(draw):
    """A random diagonal prior, constraint rows of random scales, residual and noise."""
    n = draw(st.integers(1, 30))
    m = draw(st.integers(1, min(4, n)))
    batch = draw(st.sampled_from([(), (3,), (2, 2)]))
    noise = draw(st.sampled_from([0.0, 1e-3, 0.7]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    row_scales = 10.0 ** torch.randint(-3, 4, (m, 1), generator=g).to(f64)
    G = row_scales * torch.randn(m, n, generator=g, dtype=f64)
    d = 10.0 ** (2 * torch.rand(*batch, n, generator=g, dtype=f64) - 1)
    residual = torch.randn(*batch, m, generator=g, dtype=f64)
    return dict(G=G, d=d, residual=residual, noise=torch.tensor(noise, dtype=f64), n=n, m=m)


def structured(p):
    G, d, noise = p["G"], p["d"], p["noise"]
    SG = d[..., :, None] * G.mT
    reference = d @ (G * G).mT + noise
    return solve_update(SG, G, p["residual"], noise, reference, p["residual"].abs() + 1.0)


def dense(p):
    """``(A, S G^T, A^+)`` in float64 by dense linear algebra."""
    G, d, noise = p["G"], p["d"], p["noise"]
    S = torch.diag_embed(d)
    SG = S @ G.mT
    A = G @ SG + noise * torch.eye(p["m"], dtype=f64)
    # Inverted in the equilibrated frame: rows of G of very different scales would otherwise cost the reference
    # itself digits (a pseudo-inverse of A judges its cut-off against the largest row).
    s = torch.diagonal(A, dim1=-2, dim2=-1).rsqrt()
    Cinv = torch.linalg.pinv(A * s[..., :, None] * s[..., None, :], hermitian=True)
    return A, SG, s[..., :, None] * Cinv * s[..., None, :]


def cond_equilibrated(A):
    s = torch.diagonal(A, dim1=-2, dim2=-1).rsqrt()
    ev = torch.linalg.eigvalsh(A * s[..., :, None] * s[..., None, :])
    return float((ev.amax(-1) / ev.amin(-1).clamp_min(1e-300)).amax())


@given(p=systems())
def test_factors_match_the_dense_update(p):
    A, SG, Ainv = dense(p)
    cond = cond_equilibrated(A)
    if cond > 1e8:
        return  # numerically singular: the generalized-inverse path, tested below
    f = structured(p)
    tol = 100 * EPS * (p["n"] + p["m"]) * cond
    # Errors are judged in the equilibrated frame (s = diag(A)^-1/2, C = s A s): the solve perturbs
    # C^-1 = s^-1 A^-1 s^-1 by about cond * eps relative to its largest entry, and every quantity below is a product
    # with it.
    s = torch.diagonal(A, dim1=-2, dim2=-1).rsqrt()
    k = (Ainv / (s[..., :, None] * s[..., None, :])).abs().amax((-2, -1), keepdim=True)
    SGs = SG.abs() * s[..., None, :]  # |S G^T| s, shape (..., n, m)
    # W W^T = S G^T A^-1 G S, the covariance downdate.
    ref = SG @ Ainv @ SG.mT
    bound = tol * k * SGs.sum(-1)[..., :, None] * SGs.sum(-1)[..., None, :]
    assert bool(((f.W @ f.W.mT - ref).abs() <= bound).all())
    # The correction S G^T A^-1 r.
    corr = (SG @ (Ainv @ p["residual"][..., :, None])).squeeze(-1)
    bound = tol * k[..., 0] * SGs.sum(-1) * (s * p["residual"].abs()).sum(-1, keepdim=True)
    assert bool(((f.correction(p["residual"]) - corr).abs() <= bound).all())
    # M M^T = A^-1 and log det A.
    mm = f.M @ f.M.mT
    assert bool(((mm - Ainv).abs() <= tol * k * s[..., :, None] * s[..., None, :]).all())
    torch.testing.assert_close(f.logdet_A, torch.linalg.slogdet(A)[1], rtol=0, atol=tol)


@given(p=systems())
def test_gsg_and_sg_entry_points_agree(p):
    # factor_update (given G S G^T) is what solve_update (given S G^T and G) calls: same factors.
    G, d, noise, r = p["G"], p["d"], p["noise"], p["residual"]
    SG = d[..., :, None] * G.mT
    reference = d @ (G * G).mT + noise
    a = solve_update(SG, G, r, noise, reference, r.abs() + 1.0)
    b = factor_update((SG.mT @ G.mT).mT, SG, r, noise, reference, r.abs() + 1.0)
    assert torch.equal(a.W, b.W) and torch.equal(a.M, b.M)


@given(p=systems(), k=st.integers(-6, 6))
def test_rescaling_a_row_leaves_the_correction_unchanged(p, k):
    # A row of G and its residual scaled by 10^k describe the same constraint: the equilibrated solve sees the same
    # system, so the correction changes only by round-off.
    A, _, _ = dense(p)
    cond = cond_equilibrated(A)
    if cond > 1e8 or float(p["noise"]) > 0:
        return  # a noise term is not scale-free
    q = dict(p)
    q["G"] = p["G"].clone()
    q["G"][0] *= 10.0**k
    q["residual"] = p["residual"].clone()
    q["residual"][..., 0] *= 10.0**k
    c0, c1 = structured(p).correction(p["residual"]), structured(q).correction(q["residual"])
    tol = 100 * EPS * (p["n"] + p["m"]) * cond
    assert bool(((c0 - c1).abs() <= tol * (c0.abs().amax(-1, keepdim=True) + 1e-300)).all())


@given(n=st.integers(2, 20), seed=st.integers(0, 2**31 - 1), consistent=st.booleans())
def test_singular_systems_use_the_pseudo_inverse_or_refuse(n, seed, consistent):
    # A duplicated row makes A singular. A residual along the range (equal on both rows) is solvable with the
    # pseudo-inverse; one with a component along the null space has no solution.
    g = torch.Generator().manual_seed(seed)
    row = torch.randn(1, n, generator=g, dtype=f64)
    G = torch.cat([row, row])
    d = 0.5 + torch.rand(n, generator=g, dtype=f64)
    r1 = torch.randn((), generator=g, dtype=f64)
    residual = torch.stack([r1, r1 if consistent else r1 + 1.0])
    p = dict(G=G, d=d, residual=residual, noise=torch.tensor(0.0, dtype=f64), n=n, m=2)
    if not consistent:
        with pytest.raises(ValueError, match="singular constraint system"):
            structured(p)
        return
    f = structured(p)
    assert f.logdet_A is None
    _, SG, Ainv = dense(p)
    corr = SG @ Ainv @ residual
    scale = SG.abs() @ Ainv.abs() @ residual.abs()
    assert bool(((f.correction(residual) - corr).abs() <= 1e3 * n * EPS * scale).all())


@given(n=st.integers(1, 10**6), m=st.integers(1, 8))
def test_tolerances_scale_with_size_and_dtype(n, m):
    for dt in (torch.float32, f64):
        assert 0 < pivot_tolerance(dt, n, m) <= 0.25
        assert pivot_tolerance(dt, n, m) <= pivot_tolerance(dt, n + 1, m)
        assert residual_tolerance(dt, n) < residual_tolerance(dt, 4 * n + 1)
        assert residual_tolerance(dt, n) >= 32 * torch.finfo(dt).eps * 16
    assert pivot_tolerance(torch.float32, n, m) >= pivot_tolerance(f64, n, m)
    assert residual_tolerance(torch.float32, n) > residual_tolerance(f64, n)


@given(p=systems(), delta=st.sampled_from([0.0, 1e-9, 1e-5, 0.9]))
def test_refinement_reaches_round_off_when_each_step_contracts_enough(p, delta):
    # An exact update whose correction is off by a relative delta leaves a residual of about delta per step; with
    # REFINE_STEPS steps it reaches round-off for a small delta and reports the last residual for a large one.
    if float(p["noise"]) > 0:
        return
    A, _, _ = dense(p)
    cond = cond_equilibrated(A)
    if cond > 1e6:
        return
    f = structured(p)
    G = p["G"]
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(p["d"].shape, generator=g, dtype=f64)
    b = mu @ G.mT - p["residual"]
    off = UpdateFactors(f.W * (1 + delta), f.M, f.logdet_A)
    u0 = mu - off.correction(p["residual"])
    tol = residual_tolerance(f64, p["n"]) * cond
    base = mu.abs() @ G.abs().mT + b.abs()
    u, failed = refine_to_roundoff(u0, G, b, off.correction, tol, base)
    if delta ** (REFINE_STEPS + 1) * 10 < tol:
        assert failed is None
        assert bool(((u @ G.mT - b).abs() <= tol * (base + u.abs() @ G.abs().mT)).all())
    elif delta == 0.9:
        assert failed is not None
        r, scale = failed
        assert bool((r.abs() > tol * scale).any())
