"""The no-grad operator cache never returns anything a fresh computation would not.

Under ``torch.no_grad()`` a BOON model reuses each layer's weight-derived operators. Whatever is done to the
model between calls, the cached output must equal the output computed from scratch with autograd on (which
never uses the cache): bit for bit in float32, to 1e-12 in float64 (different reduction orders are allowed there,
none is expected).
"""

import copy

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import BOONFNO, BOONTFNO, Dirichlet, Neumann, Periodic
from boon_strategies import randomize


EDITS = ["sgd_step", "inplace_no_grad", "data_write", "normal_reinit", "n_modes", "load_state_dict", "double",
         "deepcopy", "none"]


def _make(tfno, n_dim, width, modes, seed):
    torch.manual_seed(seed)
    if n_dim == 1:
        bc = [Dirichlet(left=0.5, faces=["left"]), Neumann(right=-1.0)]
        kw = dict(n_modes=(modes,))
    else:
        bc = [Dirichlet(left=0.0, right=1.0, dim=-2), Periodic(dim=-1)]
        kw = dict(n_modes=(modes, modes))
    cls = BOONTFNO if tfno else BOONFNO
    extra = {} if tfno else {"factorization": None}
    return cls(**kw, in_channels=1, out_channels=1, hidden_channels=width, n_layers=2, boundary=bc,
               kernel_correction=True, **extra)


def _edit(model, name, draw, x):
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    params = list(model.parameters())
    if name == "sgd_step":
        opt = torch.optim.SGD(model.parameters(), lr=draw(st.floats(1e-3, 1e-1)))
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    elif name == "inplace_no_grad":
        with torch.no_grad():
            params[draw(st.integers(0, len(params) - 1))].mul_(draw(st.floats(0.5, 2.0)))
    elif name == "data_write":  # does not bump the version counter and keeps the storage
        p = params[draw(st.integers(0, len(params) - 1))]
        p.data.mul_(draw(st.floats(0.5, 2.0)))
        p.data.add_(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))
    elif name == "normal_reinit":
        torch.manual_seed(draw(st.integers(0, 2**31 - 1)))
        for conv in model.fno_blocks.convs:
            conv.weight.normal_(0.0, draw(st.floats(0.01, 1.0)))  # tensorly-torch writes through .data
    elif name == "n_modes":
        max_modes = model.fno_blocks.convs[0].max_n_modes
        model.n_modes = tuple(draw(st.integers(2, m)) for m in max_modes[:-1]) + (
            draw(st.integers(2, 2 * max_modes[-1] - 1)),)
    elif name == "load_state_dict":
        other = copy.deepcopy(model)
        randomize(other, draw(st.integers(0, 10**6)))
        model.load_state_dict(other.state_dict())
    elif name == "double":
        model = model.double()
    elif name == "deepcopy":
        model = copy.deepcopy(model)
    return model


@settings(max_examples=15)
@given(data=st.data(), tfno=st.booleans(), n_dim=st.sampled_from([1, 1, 2]), width=st.integers(2, 6),
       modes=st.integers(3, 6), seed=st.integers(0, 10**6),
       edits=st.lists(st.sampled_from(EDITS), min_size=1, max_size=6))
def test_cached_output_equals_a_fresh_computation_after_any_edit(data, tfno, n_dim, width, modes, seed, edits):
    model = _make(tfno, n_dim, width, modes, seed)
    shape = (20,) if n_dim == 1 else (8, 10)
    x = torch.randn(2, 1, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model(x)  # fill the cache
    for name in edits:
        model = _edit(model, name, data.draw, x)
        x = x.to(next(model.lifting.parameters()).dtype)
        with torch.no_grad():
            cached = model(x)
            cached_again = model(x)  # a second call is served from the cache
        fresh = model(x).detach()  # autograd on: no cache
        assert torch.equal(cached, cached_again)
        if x.dtype == torch.float32:
            assert torch.equal(cached, fresh), name
        else:
            torch.testing.assert_close(cached, fresh, rtol=0, atol=1e-12)


def test_cache_is_reused_while_nothing_changes():
    model = _make(False, 1, 4, 4, 0)
    x = torch.randn(2, 1, 20)
    with torch.no_grad():
        model(x)
        ops = [entry[2] for entry in model._operator_cache.values()]
        model(x)
    assert [entry[2] for entry in model._operator_cache.values()] == ops  # same objects: no rebuild
    next(model.projection.parameters()).data.add_(1.0)  # a weight of no layer operator: still reused
    with torch.no_grad():
        model(x)
    assert all(a is b for a, b in zip([e[2] for e in model._operator_cache.values()], ops))
    next(model.fno_blocks.convs[0].parameters()).data.mul_(2.0)
    with torch.no_grad():
        model(x)
    assert model._operator_cache[0][2] is not ops[0] and model._operator_cache[1][2] is ops[1]
