"""Call-time value keys: names per axis, names of your own, and errors that list the keys given and needed."""

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from boon_ext import BOONFNO, BoundarySpec, Dirichlet, Neumann, Periodic, enforce_boundary


@st.composite
def dirichlet_faces(draw):
    """Call-time Dirichlet faces on a random subset of the axes of a 1-3-D field, axes given as negative dims."""
    n_dim = draw(st.integers(1, 3))
    axes = draw(st.lists(st.integers(0, n_dim - 1), min_size=1, max_size=n_dim, unique=True))
    conditions, faces = [], []
    for axis in axes:
        sides = draw(st.sampled_from([["left"], ["right"], ["left", "right"]]))
        dim = draw(st.sampled_from([axis - n_dim, axis + 2]))  # negative or positive dim of the same axis
        conditions.append(Dirichlet(faces=sides, dim=dim))
        faces += [(axis, s) for s in sides]
    return n_dim, conditions, faces


def _key(axis, side, single_axis):
    return side if single_axis else f"{side}{axis}"


@given(case=dirichlet_faces(), seed=st.integers(0, 2**16))
def test_keys_name_the_spatial_axis_and_the_value_lands_on_that_face(case, seed):
    n_dim, conditions, faces = case
    spec = BoundarySpec(conditions, n_dim)
    single = len({a for a, _ in faces}) == 1
    expected = {_key(a, s, single): (a, s) for a, s in faces}
    assert set(spec.required_keys) == set(expected)
    g = torch.Generator().manual_seed(seed)
    shape = (2, 1) + (6,) * n_dim
    u = torch.randn(shape, generator=g, dtype=torch.float64)
    values = {k: torch.randn(2, generator=g, dtype=torch.float64) for k in expected}
    out = enforce_boundary(u, spec, values)
    for key, (axis, side) in expected.items():
        face = out.select(2 + axis, 0 if side == "left" else -1)
        # Nodes of the face away from the other axes' ends (corners may belong to a face written later).
        centre = face[(slice(None), 0) + (slice(1, -1),) * (n_dim - 1)]
        torch.testing.assert_close(centre, values[key].reshape(2, *([1] * (n_dim - 1))).expand_as(centre),
                                   rtol=0, atol=0)


@given(case=dirichlet_faces(), data=st.data())
def test_missing_value_error_lists_given_and_needed_keys(case, data):
    n_dim, conditions, _ = case
    spec = BoundarySpec(conditions, n_dim)
    needed = list(spec.required_keys)
    given_keys = data.draw(st.lists(st.sampled_from(needed), unique=True, max_size=len(needed) - 1))
    u = torch.zeros((1, 1) + (4,) * n_dim)
    values = {k: torch.zeros(1) for k in given_keys}
    pattern = re.escape(f"(given: {sorted(given_keys)}, needed: {sorted(needed)})")
    with pytest.raises(ValueError, match=r"boundary_values\['\w+'\] is missing: the dirichlet condition .*" + pattern):
        enforce_boundary(u, spec, values or None)
    with pytest.raises(ValueError, match=pattern):
        spec.check_values(values)


def test_model_call_without_values_reads_given_nothing_needed_right():
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8,
                    boundary=[Dirichlet(left=0.0), Neumann(faces=["right"])])
    with pytest.raises(ValueError, match=re.escape("(given: [], needed: ['right'])")):
        model(torch.randn(2, 1, 16))


def test_two_dimensional_keys_and_names_of_your_own():
    spec = BoundarySpec([Dirichlet(dim=-2), Neumann(faces=["right"], dim=-1)], n_dim=2)
    assert sorted(spec.required_keys) == ["left0", "right0", "right1"]
    # One axis only: plain left/right, in any dimension.
    assert sorted(BoundarySpec([Dirichlet(dim=-1)], n_dim=2).required_keys) == ["left", "right"]
    own = BoundarySpec([Dirichlet(faces=["left"], dim=-2, keys={"left": "inlet"}),
                        Neumann(faces=["right"], dim=-1, keys={"right": "heat_flux"})], n_dim=2)
    assert sorted(own.required_keys) == ["heat_flux", "inlet"]
    u = torch.zeros(3, 1, 6, 6)
    out = enforce_boundary(u, own, {"inlet": torch.full((3,), 2.0), "heat_flux": torch.zeros(3)})
    assert bool((out[:, :, 0, 1:-1] == 2.0).all())
    with pytest.raises(ValueError, match=re.escape(
            "no face reads ['left0'] (given: ['heat_flux', 'inlet', 'left0'], needed: ['heat_flux', 'inlet'])")):
        own.check_values({"inlet": 1, "heat_flux": 1, "left0": 1})


def test_colliding_keys_and_bad_names_are_refused():
    with pytest.raises(ValueError, match="under the key 'left'.*keys="):
        BoundarySpec([Dirichlet(faces=["left"], channels=[0]), Neumann(faces=["left"], channels=[1])], n_dim=1)
    with pytest.raises(TypeError, match=r"keys\['left'\] must be a non-empty str"):
        Dirichlet(faces=["left"], keys={"left": ""})
    with pytest.raises(TypeError, match="keys must be a mapping"):
        Dirichlet(faces=["left"], keys=["inlet"])
    with pytest.raises(ValueError, match="periodic condition reads no call-time values"):
        Periodic(keys={"left": "a"})
    with pytest.raises(TypeError, match="boundary_values must be a mapping"):
        BoundarySpec([Dirichlet(faces=["left"])], n_dim=1).check_values([1.0])
