"""Adversarial: ranks of a DistributedProbConserv that disagree on b, the constraint, the noise or the compute dtype.

Class covered: **rank agreement** (issue 28). Before the fix, b = 1 on one rank and b = 2 on the other gave both ranks
an "exact" posterior whose gathered total was 1.56, with no error. Every disagreement must now raise a ValueError on
every rank (none left waiting in a collective), found by the ONE agreement all-reduce of each call (or of the
construction); agreeing ranks must still give the single-process result.
"""

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "distributed"))
from dist_pool import GlooPool  # noqa: E402

from probconserv_ext import LinearConstraint, ProbConserv, conservation_constraint  # noqa: E402
from probconserv_ext.collectives import CountingCollectives  # noqa: E402
from probconserv_ext.distributed import (AGREEMENT_SIZE, DistributedProbConserv, constraint_slab,  # noqa: E402
                                         gather_slab)

F64 = torch.float64


@pytest.fixture(scope="module")
def pool():
    """Two gloo processes for this module (the tasks below are imported by name in the workers)."""
    p = GlooPool(world=2)
    yield p
    p.close()


# ------------------------------------------------------------------ tasks run by every rank
def _split(G, rank, cut):
    return (0, cut) if rank == 0 else (cut, G.shape[1])


def task_call(rank, world, G, mean, variance, b_per_rank, cut, noise_per_rank=(0.0, 0.0), dtype_per_rank=None,
              ctor_b_per_rank=None, reload_noise=None):
    """Build the layer and call it with this rank's b; return the error message or the gathered posterior."""
    start, stop = _split(G, rank, cut)
    ctor_b = None if ctor_b_per_rank is None else ctor_b_per_rank[rank]
    dtype = F64 if dtype_per_rank is None else dtype_per_rank[rank]
    try:
        layer = DistributedProbConserv(constraint_slab(LinearConstraint(G, ctor_b), start, stop),
                                       noise=noise_per_rank[rank], compute_dtype=dtype)
    except ValueError as err:
        dist.barrier()  # both ranks get here only if neither hangs in a collective
        return {"error": str(err), "where": "construction"}
    if reload_noise is not None and rank == reload_noise[0]:  # one rank's noise edited after construction
        state = layer.state_dict()
        state["_noise"] = torch.tensor(reload_noise[1], dtype=F64)
        layer.load_state_dict(state)
    layer.collectives = counter = CountingCollectives(layer.group)
    b = b_per_rank[rank]
    try:
        post = layer(mean[..., start:stop], variance=variance[..., start:stop], b=b)
    except ValueError as err:
        dist.barrier()
        return {"error": str(err), "where": "call", "bytes": counter.bytes}
    return {"error": None, "mean": gather_slab(post.mean.detach()), "bytes": counter.bytes}


# ------------------------------------------------------------------ the problem
def _problem(n, batch, seed, scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.cumsum(0.1 + torch.rand(n, generator=g, dtype=F64), 0)
    G = torch.cat([conservation_constraint(x).G, torch.randn(1, n, generator=g, dtype=F64)])
    mean = scale * torch.randn(*batch, n, generator=g, dtype=F64)
    variance = scale**2 * (0.1 + torch.rand(*batch, n, generator=g, dtype=F64))
    b = scale * torch.randn(*batch, 2, generator=g, dtype=F64)
    return G, mean, variance, b


def _assert_refused_everywhere(out, what):
    for o in out:
        assert o["error"] is not None, f"rank accepted a disagreement on {what}"
    assert any(what in o["error"] for o in out), [o["error"] for o in out]


def test_issue_instance_b_1_vs_2(pool):
    """Rank agreement, the issue's instance: b = 1 on rank 0 and b = 2 on rank 1 (before: total 1.56, no error)."""
    n = 10
    x = torch.linspace(0, 1, n, dtype=F64)
    G = conservation_constraint(x).G
    mean, variance = torch.full((n,), 1.5, dtype=F64), torch.ones(n, dtype=F64)
    out = pool.run(task_call, G=G, mean=mean, variance=variance, cut=n // 2,
                   b_per_rank=[torch.tensor([1.0], dtype=F64), torch.tensor([2.0], dtype=F64)])
    _assert_refused_everywhere(out, "b must be the same on every rank")
    assert all(o["where"] == "call" for o in out)


@settings(max_examples=12)
@given(n=st.integers(2, 16), batch=st.sampled_from([(), (3,), (2, 2)]), seed=st.integers(0, 2**31 - 1),
       log_scale=st.floats(-6, 6), ulps=st.sampled_from([1, 2, 1000, 2**40]), bad_rank=st.integers(0, 1),
       cut=st.integers(0, 16))
def test_b_differing_by_any_amount_is_refused(pool, n, batch, seed, log_scale, ulps, bad_rank, cut):
    """Rank agreement on b: one entry of b moved by 1 ulp to 2**40 ulps on one rank, at field scales 1e-6..1e6."""
    G, mean, variance, b = _problem(n, batch, seed, 10.0**log_scale)
    bad = b.clone().reshape(-1)
    k = seed % bad.numel()
    for _ in range(ulps if ulps < 10 else 1):
        bad[k] = torch.nextafter(bad[k], torch.tensor(float("inf"), dtype=F64))
    if ulps >= 10:
        bad[k] = bad[k] + ulps * torch.finfo(F64).eps * bad[k].abs()
    bs = [b, b]
    bs[bad_rank] = bad.reshape(b.shape)
    out = pool.run(task_call, G=G, mean=mean, variance=variance, b_per_rank=bs, cut=min(cut, n))
    _assert_refused_everywhere(out, "b must be the same on every rank")


@settings(max_examples=6)
@given(n=st.integers(2, 16), seed=st.integers(0, 2**31 - 1), log_scale=st.floats(-6, 6), cut=st.integers(0, 16))
def test_agreeing_ranks_match_one_process_in_one_collective(pool, n, seed, log_scale, cut):
    """Rank agreement: the same b given with different broadcast shapes agrees, and the result is the single-process
    one; the agreement costs one all-reduce of 1 + 2 * AGREEMENT_SIZE numbers, whatever the size of b."""
    G, mean, variance, b = _problem(n, (3,), seed, 10.0**log_scale)
    b_row = b[0]
    mean = mean.clone()
    out = pool.run(task_call, G=G, mean=mean, variance=variance, cut=min(cut, n),
                   b_per_rank=[b_row, b_row.expand(3, 2).clone()])
    ref = ProbConserv(LinearConstraint(G, b_row))(mean, variance=variance)
    for o in out:
        assert o["error"] is None, o["error"]
        scale = ref.mean.abs().amax() + b_row.abs().amax()
        assert (o["mean"] - ref.mean).abs().amax() <= 1e3 * torch.finfo(F64).eps * scale
        m, fields = G.shape[0], 3
        assert o["bytes"] == 8 * (1 + 2 * AGREEMENT_SIZE + fields * (3 * m + m * m))


@pytest.mark.parametrize("case", ["constructor_b", "noise", "compute_dtype", "reloaded_noise"])
def test_other_disagreements_are_refused(pool, case):
    """Rank agreement on the constraint's b, the noise and the compute dtype: at construction, and per call for a
    noise edited on one rank after construction (load_state_dict)."""
    G, mean, variance, b = _problem(8, (), 5, 1.0)
    kw = dict(G=G, mean=mean, variance=variance, b_per_rank=[None, None], cut=4, ctor_b_per_rank=[b, b])
    if case == "constructor_b":
        kw["ctor_b_per_rank"] = [b, b * 2]
        expected = "must agree on every rank"
    elif case == "noise":
        kw["noise_per_rank"] = (0.0, 1e-3)
        expected = "must agree on every rank"
    elif case == "compute_dtype":
        kw["dtype_per_rank"] = (torch.float64, torch.float32)
        expected = "must agree on every rank"
    else:
        kw["reload_noise"] = (1, 0.25)
        expected = "noise must be the same on every rank"
    out = pool.run(task_call, **kw)
    _assert_refused_everywhere(out, expected)
