"""``boon_ext.wall_channels``: the values BOON receives, as input channels broadcast along each wall's normal.

Checked against an independent reading of the values (the call-time tensors and the conditions' constants) and
against what BOON's enforcement writes into a Dirichlet face, over random conditions (channel subsets included),
shapes, value shapes, dtypes and values, on one and several axes and in space-time; and the errors a user gets for
values BOON would refuse.
"""

import pytest
import torch
from boon_strategies import call_values, conditions_1d
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import FNO

from boon_ext import (BOONWrapper, BoundarySpec, Dirichlet, Neumann, Periodic, boundary_error, enforce_boundary,
                      n_wall_channels, wall_channels)

DTYPES = [torch.float32, torch.float64]


def _faces_in_order(spec):
    """The documented layout: conditions in the order given, each one's faces left then right; no periodic."""
    return sorted((r for r in spec.rules if r.kind != "periodic"), key=lambda r: (r.source, r.side != "left"))


def _expected_face(rule, values, batch, n_sel, face_shape, dtype):
    """The face's values as ``(batch, n_sel, *face_shape)``, read from the condition or the call-time tensor."""
    if rule.constant is not None:
        v = torch.tensor(rule.constant, dtype=torch.float64).reshape(1, -1, *([1] * len(face_shape)))
    else:
        v = values[rule.key].to(torch.float64)
        v = v.reshape(v.shape + (1,) * (2 + len(face_shape) - v.ndim))  # (batch,) and (batch, n) as BOON reads them
    return v.expand(batch, n_sel, *face_shape).to(dtype)


def _check_layout(got, spec, values, shape, channels, dtype):
    k = 0
    for rule in _faces_in_order(spec):
        n_sel = channels if rule.channels is None else len(rule.channels)
        block = got[:, k:k + n_sel]
        k += n_sel
        face = tuple(s for i, s in enumerate(shape) if i != rule.axis)
        want = _expected_face(rule, values, got.shape[0], n_sel, face, dtype)
        assert torch.equal(block, want.unsqueeze(2 + rule.axis).expand_as(block)), rule
    assert k == got.shape[1]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), conds=conditions_1d(), batch=st.integers(1, 4), channels=st.integers(1, 3),
       in_channels=st.integers(1, 3), n=st.integers(4, 17), dtype=st.sampled_from(DTYPES))
def test_1d_channels_hold_each_face_value_at_every_node(data, conds, batch, channels, in_channels, n, dtype):
    spec = BoundarySpec(conds, 1, out_channels=channels)
    values = call_values(data.draw, spec, batch, channels, dtype=dtype)
    x = torch.randn(batch, in_channels, n, dtype=dtype)  # the input's channels are not the output's
    got = wall_channels(x, conds, values, out_channels=channels)
    assert got.dtype == dtype and got.shape == (batch, n_wall_channels(conds, 1, channels), n)
    _check_layout(got, spec, values, (n,), channels, dtype)
    u = enforce_boundary(torch.randn(batch, channels, n, dtype=dtype), spec, values)
    k = 0
    for rule in _faces_in_order(spec):  # a Dirichlet face's channels hold the very numbers BOON writes into it
        if rule.kind == "dirichlet":
            assert torch.equal(got[:, k:k + channels, 0], u[..., rule.index])
        k += channels


@st.composite
def several_axes(draw):
    """Conditions on two axes of a 2-D or space-time grid, with channel subsets and constants mixed in."""
    time_last = draw(st.booleans())
    shape = tuple(draw(st.integers(3, 7)) for _ in range(3))
    channels = draw(st.integers(1, 3))
    conds = []
    for dim in (-3, -2) if time_last else (-3, -1):
        kind = draw(st.sampled_from([Dirichlet, Neumann]))
        subset = draw(st.one_of(st.none(), st.lists(st.integers(0, channels - 1), min_size=1, max_size=channels,
                                                    unique=True)))
        kw = dict(dim=dim, channels=subset)
        if draw(st.booleans()):
            kw["left"] = draw(st.floats(-3, 3))
            kw["faces"] = ["left", "right"]
        else:
            kw["faces"] = draw(st.sampled_from([["left"], ["right"], ["left", "right"]]))
        conds.append(kind(**kw))
    return conds, shape, channels, -1 if time_last else None


@settings(max_examples=60, deadline=None)
@given(data=st.data(), case=several_axes(), batch=st.integers(1, 3), dtype=st.sampled_from(DTYPES))
def test_several_axes_and_space_time_every_value_shape(data, case, batch, dtype):
    conds, shape, channels, time_dim = case
    spec = BoundarySpec(conds, 3, time_dim=time_dim, out_channels=channels)
    # one face shape per key: call_values draws (batch,), (batch, n), (batch, n, *face) or (batch, 1, *face)
    values = {}
    for rule in spec.rules:
        if rule.needs_value:
            face = tuple(s for i, s in enumerate(shape) if i != rule.axis)
            one = BoundarySpec([c for i, c in enumerate(conds) if i == rule.source], 3, time_dim=time_dim,
                               out_channels=channels)
            drawn = call_values(data.draw, one, batch, channels, face_shape=face, dtype=dtype)
            values[rule.key] = drawn[rule.key] if rule.key in drawn else next(iter(drawn.values()))
    x = torch.randn(batch, 1, *shape, dtype=dtype)
    got = wall_channels(x, conds, values, out_channels=channels, time_dim=time_dim)
    assert got.shape == (batch, n_wall_channels(conds, 3, channels, time_dim=time_dim), *shape)
    _check_layout(got, spec, values, shape, channels, dtype)


def test_channel_subsets_and_periodic_faces():
    conds = [Dirichlet(left=[1.0, 2.0], channels=[0, 2]), Neumann(faces=["right"], channels=[1])]
    x = torch.zeros(2, 3, 6)
    got = wall_channels(x, conds, {"right": torch.tensor([[5.0], [6.0]])}, out_channels=3)
    assert got.shape == (2, 3, 6) and n_wall_channels(conds, 1, 3) == 3
    assert torch.equal(got[:, 0], torch.ones(2, 6)) and torch.equal(got[:, 1], 2 * torch.ones(2, 6))
    assert torch.equal(got[:, 2], torch.tensor([5.0, 6.0])[:, None].expand(2, 6))
    assert wall_channels(x, Periodic(), None, out_channels=3).shape == (2, 0, 6)
    # the conditions apply to the output's channels, not the input's
    assert wall_channels(torch.zeros(2, 1, 6), Dirichlet(left=0.0, right=1.0), out_channels=4).shape == (2, 8, 6)


@pytest.mark.parametrize("values, match", [
    (None, r"missing \['right'\]"),
    ({"right": torch.ones(2), "left": torch.ones(2)}, r"no face reads \['left'\]"),
    ({"right": torch.ones(3)}, "batch size 2"),
    ({"right": torch.ones(2, 5)}, r"\(batch,\) or \(batch, 1\)"),
    ({"right": torch.tensor([1.0, float("nan")])}, "must be finite"),
    ({"right": torch.tensor([1.0, 1e39], dtype=torch.float64)}, "must be finite"),
])
def test_values_boon_would_refuse_are_refused_by_name(values, match):
    with pytest.raises(ValueError, match=match):
        wall_channels(torch.zeros(2, 1, 6), Dirichlet(left=0.0, faces=["left", "right"]), values, out_channels=1)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="x must be a tensor"):
        wall_channels(torch.zeros(2, 3), Dirichlet(left=0.0), out_channels=1)
    with pytest.raises(TypeError, match="real floating-point"):
        wall_channels(torch.zeros(2, 1, 5, dtype=torch.long), Dirichlet(left=0.0), out_channels=1)
    with pytest.raises(TypeError, match="real floating-point"):
        wall_channels(torch.zeros(2, 1, 5), Dirichlet(faces=["left"]), {"left": torch.ones(2, dtype=torch.long)},
                      out_channels=1)
    with pytest.raises(ValueError, match="time axis"):
        wall_channels(torch.zeros(2, 1, 5, 4), Dirichlet(left=0.0, dim=-1), out_channels=1, time_dim=-1)
    with pytest.raises(TypeError, match="out_channels"):
        wall_channels(torch.zeros(2, 1, 5), Dirichlet(left=0.0))
    for bad in (None, 0, 1.5, True):
        with pytest.raises((TypeError, ValueError), match="out_channels"):
            wall_channels(torch.zeros(2, 1, 5), Dirichlet(left=0.0), out_channels=bad)
    with pytest.raises(ValueError, match="channels must be output channels"):
        wall_channels(torch.zeros(2, 3, 5), Dirichlet(left=0.0, channels=[2]), out_channels=1)


def test_an_fno_given_the_wall_channels_and_wrapped_sees_and_meets_the_same_values():
    """The documented use: the wall channels as inputs, BOONWrapper for exact walls; both carry the same numbers."""
    torch.manual_seed(0)
    conds = [Dirichlet(faces=["left", "right"])]
    x = torch.randn(4, 1, 16)
    values = {"left": torch.randn(4), "right": torch.randn(4)}
    chans = wall_channels(x, conds, values, out_channels=1)
    model = BOONWrapper(FNO(n_modes=(8,), in_channels=1 + n_wall_channels(conds, 1, 1), out_channels=1,
                            hidden_channels=8, n_layers=2), boundary=conds)
    out = model(torch.cat([x, chans], dim=1), boundary_values=values)
    assert float(boundary_error(out, conds, values)) == 0.0
    assert torch.equal(out[:, 0, 0], chans[:, 0, 7]) and torch.equal(out[:, 0, -1], chans[:, 1, 7])
