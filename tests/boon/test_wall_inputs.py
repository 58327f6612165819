"""``boon_ext.wall_channels``: the values BOON receives, as input channels broadcast along each wall's normal.

Checked against an independent reading of the values (the call-time tensors and the conditions' constants), against
what BOON's enforcement writes into a Dirichlet face, over random conditions, shapes, dtypes and values; and the
errors a user gets for values BOON would refuse.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import FNO

from boon_ext import (BOONWrapper, BoundarySpec, Dirichlet, Neumann, Periodic, boundary_error, enforce_boundary,
                      n_wall_channels, wall_channels)

from boon_strategies import call_values, conditions_1d

DTYPES = [torch.float32, torch.float64]


def _expected_face(rule, values, batch, n_sel, face_shape, dtype):
    """The face's values as ``(batch, n_sel, *face_shape)``, read from the condition or the call-time tensor."""
    if rule.constant is not None:
        v = torch.tensor(rule.constant, dtype=torch.float64).reshape(1, -1, *([1] * len(face_shape)))
    else:
        v = values[rule.key].to(torch.float64)
        v = v.reshape(v.shape + (1,) * (2 + len(face_shape) - v.ndim)) if v.ndim < 2 + len(face_shape) else v
    return v.expand(batch, n_sel, *face_shape).to(dtype)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), conds=conditions_1d(), batch=st.integers(1, 4), channels=st.integers(1, 3),
       n=st.integers(4, 17), dtype=st.sampled_from(DTYPES))
def test_1d_channels_hold_each_face_value_at_every_node(data, conds, batch, channels, n, dtype):
    spec = BoundarySpec(conds, 1, out_channels=channels)
    values = call_values(data.draw, spec, batch, channels, dtype=dtype)
    x = torch.randn(batch, channels, n, dtype=dtype)
    got = wall_channels(x, conds, values)
    faces = [r for r in sorted(spec.rules, key=lambda r: (r.source, r.side != "left")) if r.kind != "periodic"]
    assert got.shape == (batch, channels * len(faces), n) == (batch, n_wall_channels(conds, 1, channels), n)
    assert got.dtype == dtype
    for k, rule in enumerate(faces):
        block = got[:, k * channels:(k + 1) * channels]
        want = _expected_face(rule, values, batch, channels, (), dtype)
        assert torch.equal(block, want[..., None].expand_as(block)), rule
        if rule.kind == "dirichlet":  # the very numbers BOON writes into that face
            u = enforce_boundary(torch.randn(batch, channels, n, dtype=dtype), spec, values)
            assert torch.equal(block[..., 0], u[..., rule.index])


@settings(max_examples=30, deadline=None)
@given(data=st.data(), shape=st.tuples(st.integers(3, 8), st.integers(3, 8), st.integers(2, 5)),
       batch=st.integers(1, 3), channels=st.integers(1, 2), dtype=st.sampled_from(DTYPES),
       time_last=st.booleans())
def test_2d_and_space_time_faces_vary_along_the_wall_and_are_constant_along_its_normal(data, shape, batch, channels,
                                                                                      dtype, time_last):
    # the cavity's layout: Dirichlet on both faces of both spatial axes, values per sample, channel and face node
    # (and frame), plus a constant Neumann face when there is a third axis that is not time
    conds = [Dirichlet(faces=["left", "right"], dim=-3), Dirichlet(faces=["left", "right"], dim=-2)]
    if not time_last:
        conds.append(Neumann(left=data.draw(st.floats(-3, 3)), dim=-1))
    spec = BoundarySpec(conds, 3, time_dim=-1 if time_last else None, out_channels=channels)
    values = call_values(data.draw, spec, batch, channels, dtype=dtype)
    for rule in spec.rules:  # give the face-shaped form to every keyed face (call_values may draw others)
        if rule.needs_value:
            face = tuple(s for i, s in enumerate(shape) if i != rule.axis)
            values[rule.key] = torch.randn(batch, channels, *face, dtype=dtype)
    x = torch.randn(batch, channels, *shape, dtype=dtype)
    got = wall_channels(x, conds, values, time_dim=-1 if time_last else None)
    faces = [r for r in sorted(spec.rules, key=lambda r: (r.source, r.side != "left"))]
    assert got.shape == (batch, channels * len(faces), *shape)
    for k, rule in enumerate(faces):
        block = got[:, k * channels:(k + 1) * channels]
        face = tuple(s for i, s in enumerate(shape) if i != rule.axis)
        want = _expected_face(rule, values, batch, channels, face, dtype)
        assert torch.equal(block, want.unsqueeze(2 + rule.axis).expand_as(block)), rule


def test_channel_subsets_and_periodic_faces():
    conds = [Dirichlet(left=[1.0, 2.0], channels=[0, 2]), Neumann(faces=["right"], channels=[1])]
    x = torch.zeros(2, 3, 6)
    got = wall_channels(x, conds, {"right": torch.tensor([[5.0], [6.0]])})
    assert got.shape == (2, 3, 6) and n_wall_channels(conds, 1, 3) == 3
    assert torch.equal(got[:, 0], torch.ones(2, 6)) and torch.equal(got[:, 1], 2 * torch.ones(2, 6))
    assert torch.equal(got[:, 2], torch.tensor([5.0, 6.0])[:, None].expand(2, 6))
    assert wall_channels(x, Periodic(), None).shape == (2, 0, 6)
    # out_channels other than the input's: the conditions apply to the output
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
        wall_channels(torch.zeros(2, 1, 6), Dirichlet(left=0.0, faces=["left", "right"]), values)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="x must be a tensor"):
        wall_channels(torch.zeros(2, 3), Dirichlet(left=0.0))
    with pytest.raises(TypeError, match="real floating-point"):
        wall_channels(torch.zeros(2, 1, 5, dtype=torch.long), Dirichlet(left=0.0))
    with pytest.raises(TypeError, match="real floating-point"):
        wall_channels(torch.zeros(2, 1, 5), Dirichlet(faces=["left"]), {"left": torch.ones(2, dtype=torch.long)})
    with pytest.raises(ValueError, match="time axis"):
        wall_channels(torch.zeros(2, 1, 5, 4), Dirichlet(left=0.0, dim=-1), time_dim=-1)


def test_an_fno_trained_on_the_wall_channels_wraps_to_exact_walls():
    """The documented use: an FNO whose input holds the wall channels, wrapped by BOONWrapper for exact walls."""
    torch.manual_seed(0)
    conds = [Dirichlet(faces=["left", "right"])]
    x = torch.randn(4, 1, 16)
    values = {"left": torch.randn(4), "right": torch.randn(4)}
    n_extra = n_wall_channels(conds, 1, 1)
    model = BOONWrapper(FNO(n_modes=(8,), in_channels=1 + n_extra, out_channels=1, hidden_channels=8, n_layers=2),
                        boundary=conds)
    out = model(torch.cat([x, wall_channels(x, conds, values)], dim=1), boundary_values=values)
    assert float(boundary_error(out, conds, values)) == 0.0
