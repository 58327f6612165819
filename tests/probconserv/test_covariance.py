"""The covariance protocol: one shared test case that every structured covariance class passes.

Each operator is compared with a dense float64 reference built from its ingredients independently of the operator
(for :class:`DowndatedCovariance`, the textbook ``S - S G^T A^-1 G S`` of the update that produced it).
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal

from probconserv_ext import Covariance, DenseCovariance, DiagonalCovariance, DowndatedCovariance, LowRankCovariance
from probconserv_ext.covariance import IdentityCovariance
from probconserv_ext.update import solve_update

EPS = torch.finfo(torch.float64).eps
# Entries are O(1) and every product sums at most ~10 terms: a few hundred eps covers float64 round-off.
TOL = 500 * EPS
KINDS = ["identity", "diagonal", "lowrank", "lowrank_singular", "dense", "dense_singular", "downdated_soft",
         "downdated_exact"]


def build(kind, n, batch, r, m, seed):
    """``(operator, dense reference, positive definite?, entry scale)`` for one kind, from seeded random ingredients.

    The scale is the largest entry before any cancellation (the prior's, for a downdate, times the condition number
    of the equilibrated system it solves), against which round-off is judged.
    """
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    randn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    if kind == "identity":
        return IdentityCovariance(n), torch.eye(n, dtype=torch.float64), True, 1.0
    if kind == "diagonal":
        d = 0.1 + rand(*batch, n)
        return DiagonalCovariance(d), torch.diag_embed(d), True, float(d.amax())
    if kind.startswith("lowrank"):
        U = randn(*batch, n, r)
        d = torch.zeros(n, dtype=torch.float64) if kind == "lowrank_singular" else 0.1 + rand(*batch, n)
        S = U @ U.mT + torch.diag_embed(d)
        return LowRankCovariance(U, d), S, kind == "lowrank", float(S.abs().amax())
    if kind.startswith("dense"):
        B = randn(*batch, n, n + 2)
        if kind == "dense_singular":
            B[..., -1, :] = 0.0  # an exactly zero row and column: no Cholesky factor exists
        S = B @ B.mT + (0.0 if kind == "dense_singular" else 0.1) * torch.eye(n, dtype=torch.float64)
        return DenseCovariance(S), S, kind == "dense", float(S.abs().amax())
    base, S, _, scale = build("lowrank", n, batch, r, m, seed + 1)
    G = randn(m, n)
    noise = torch.tensor(0.0 if kind == "downdated_exact" else 0.3, dtype=torch.float64)
    SG = base.matmul(G.mT)
    res = torch.zeros(*batch, m, dtype=torch.float64)
    f = solve_update(SG, G, res, noise, base.diagonal_dot(G * G) + noise, torch.ones_like(res))
    A = G @ S @ G.mT + noise * torch.eye(m, dtype=torch.float64)
    ref = S - S @ G.mT @ torch.linalg.solve(A, G @ S)
    # The downdate goes through A^-1: its round-off (and the reference's) grows with the condition number of the
    # equilibrated A, which a random G can make large (m = n with noise 0 leaves only round-off: Sigma~ = 0).
    s = torch.diagonal(A, dim1=-2, dim2=-1).rsqrt()
    cond = float(torch.linalg.cond(A * s[..., :, None] * s[..., None, :]).amax())
    return (DowndatedCovariance(base, f.W, G, f.M, noise), 0.5 * (ref + ref.mT), kind == "downdated_soft",
            scale * cond)


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    """Every test of the shared case runs for every kind of covariance."""
    return request.param


@st.composite
def cases(draw, kind):
    n = draw(st.integers(1, 7))
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    r = draw(st.integers(1, 3))
    m = draw(st.integers(1, min(2, n)))
    seed = draw(st.integers(0, 2**31 - 1))
    cov, ref, pd, scale = build(kind, n, batch, r, m, seed)
    return dict(kind=kind, cov=cov, ref=ref, pd=pd, scale=scale, n=n, batch=torch.Size(batch), seed=seed)


def close(a, b, scale=1.0):
    return bool(((a - b).abs() <= TOL * (scale + b.abs())).all())


@given(data=st.data())
def test_shapes_dtype_device(kind, data):
    c = data.draw(cases(kind))
    cov, n = c["cov"], c["n"]
    assert isinstance(cov, Covariance)
    assert cov.n == n and cov.dtype == torch.float64 and cov.device == torch.device("cpu")
    assert cov.batch_shape == c["ref"].shape[:-2]
    assert cov.to_dense().shape == (*cov.batch_shape, n, n)
    assert cov.diagonal().shape == (*cov.batch_shape, n)


@given(data=st.data(), k=st.integers(1, 3))
def test_matmul_and_to_dense_match_reference(kind, data, k):
    c = data.draw(cases(kind))
    cov, ref = c["cov"], c["ref"]
    X = torch.randn(c["n"], k, generator=torch.Generator().manual_seed(c["seed"]), dtype=torch.float64)
    scale = c["scale"] * X.abs().amax() * c["n"]
    assert close(cov.matmul(X), ref @ X, scale)
    assert close(cov.to_dense(), ref, c["scale"])


@given(data=st.data())
def test_diagonal_and_structure_queries(kind, data):
    c = data.draw(cases(kind))
    cov, ref, n = c["cov"], c["ref"], c["n"]
    scale = c["scale"]
    assert close(cov.diagonal(), torch.diagonal(ref, dim1=-2, dim2=-1), scale)
    W = torch.randn(2, n, generator=torch.Generator().manual_seed(c["seed"]), dtype=torch.float64)
    assert close(cov.diagonal_dot(W), torch.diagonal(ref, dim1=-2, dim2=-1) @ W.mT, scale * W.abs().sum())
    if cov.is_diagonal:  # the diagonal then describes the operator completely
        assert torch.equal(ref, torch.diag_embed(torch.diagonal(ref, dim1=-2, dim2=-1)).expand_as(ref))
    rest, U = cov.low_rank_split()
    rebuilt = rest.to_dense() + (0 if U is None else U @ U.mT)
    assert close(rebuilt, ref, scale)


@settings(max_examples=15)
@given(data=st.data())
def test_sample_noise_has_the_covariance(kind, data):
    c = data.draw(cases(kind))
    cov, ref = c["cov"], c["ref"]
    N = 4000
    z = cov.sample_noise((N,), torch.Generator().manual_seed(c["seed"]))
    assert z.shape == (N, *cov.batch_shape, c["n"]) and z.dtype == torch.float64
    emp = torch.einsum("s...i,s...j->...ij", z, z) / N
    sd = torch.diagonal(ref, dim1=-2, dim2=-1).clamp_min(0).sqrt()
    # The standard deviation of an empirical covariance entry is at most sqrt(2 S_ii S_jj / N): 8 of them.
    bound = 8 * math.sqrt(2 / N) * sd[..., :, None] * sd[..., None, :] + 1e-12
    assert bool(((emp - ref).abs() <= bound).all())


@given(data=st.data(), shape=st.sampled_from([(), (3,), (2, 2)]))
def test_sample_noise_is_reproducible_and_shared_hook_is_used(kind, data, shape):
    c = data.draw(cases(kind))
    cov = c["cov"]
    a = cov.sample_noise(shape, torch.Generator().manual_seed(5))
    assert a.shape == (*shape, *cov.batch_shape, c["n"])
    assert torch.equal(a, cov.sample_noise(shape, torch.Generator().manual_seed(5)))
    # The identity as the hook changes nothing; a hook is never given draws of the wrong dtype.
    seen = []
    b = cov.sample_noise(shape, torch.Generator().manual_seed(5), shared=lambda t: seen.append(t.dtype) or t)
    assert torch.equal(a, b) and all(dt == torch.float64 for dt in seen)


@given(data=st.data())
def test_inv_quad_logdet_matches_multivariate_normal(kind, data):
    c = data.draw(cases(kind))
    cov, ref, n = c["cov"], c["ref"], c["n"]
    x = torch.randn(4, *cov.batch_shape, n, generator=torch.Generator().manual_seed(c["seed"]), dtype=torch.float64)
    if not c["pd"]:
        with pytest.raises(ValueError, match="must be positive|must come from"):
            cov.inv_quad_logdet(x)
        return
    quad, logdet = cov.inv_quad_logdet(x)
    mvn = MultivariateNormal(torch.zeros(n, dtype=torch.float64), covariance_matrix=ref)
    expected = mvn.log_prob(x)
    got = -0.5 * (n * math.log(2 * math.pi) + logdet + quad)
    # Condition numbers stay below ~1e3 here (variances >= 0.1, entries O(1)): 1e-9 relative is ample.
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@given(data=st.data())
def test_to_dtype_and_device(kind, data):
    c = data.draw(cases(kind))
    cov, ref = c["cov"], c["ref"]
    low = cov.to(torch.float32)
    assert type(low) is type(cov) and low.dtype == torch.float32 and low.batch_shape == cov.batch_shape
    # One float32 rounding of each ingredient, amplified by the O(n r) terms of an entry.
    torch.testing.assert_close(low.to_dense().double(), ref, rtol=1e-4, atol=1e-4 * c["scale"])
    same = cov.to(device="cpu")
    assert type(same) is type(cov) and same.dtype == torch.float64 and same.device == torch.device("cpu")
    back = low.to(dtype=torch.float64, device="cpu")
    assert back.dtype == torch.float64


def test_covariance_is_abstract():
    with pytest.raises(TypeError):
        Covariance(3, torch.Size())

    class Partial(Covariance):
        dtype = torch.float64
        device = torch.device("cpu")

        def matmul(self, X):
            return X

    with pytest.raises(TypeError):
        Partial(3, torch.Size())


def test_downdated_without_its_update_refuses_sampling_and_density():
    cov = DowndatedCovariance(DiagonalCovariance(torch.ones(4, dtype=torch.float64)),
                              0.1 * torch.ones(4, 1, dtype=torch.float64))
    assert torch.allclose(cov.diagonal(), torch.full((4,), 0.99, dtype=torch.float64))
    with pytest.raises(ValueError, match="must carry the update that defined it"):
        cov.sample_noise((2,))
    with pytest.raises(ValueError, match="must carry the update that defined it"):
        cov.inv_quad_logdet(torch.zeros(4, dtype=torch.float64))


@given(n=st.integers(2, 7), seed=st.integers(0, 2**31 - 1))
def test_exact_downdate_draws_satisfy_the_homogeneous_constraint(n, seed):
    # With s2 = 0, Sigma~ = base - W W^T has G Sigma~ = 0: every draw lies in the null space of G.
    cov = build("downdated_exact", n, (), 2, 1, seed)[0]
    z = cov.sample_noise((50,), torch.Generator().manual_seed(seed))
    # Round-off is relative to the prior draw before the update, whose entries are within ~5 prior sd's.
    scale = 5 * cov.base.diagonal().sqrt() @ cov.G.abs().mT
    assert bool(((z @ cov.G.mT).abs() <= 100 * EPS * (scale + 1e-300)).all())


def test_the_shared_case_covers_every_covariance_class():
    import probconserv_ext.covariance as module

    classes = {c for c in vars(module).values()
               if isinstance(c, type) and issubclass(c, Covariance) and c is not Covariance}
    built = {type(build(k, 3, (), 1, 1, 0)[0]) for k in KINDS}
    assert classes == built
