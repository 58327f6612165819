"""Conditions round-trip through plain config values and resolve to faces with documented keys."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boon_ext import BoundarySpec, Dirichlet, Neumann, Periodic, parse_boundary

values = st.one_of(st.none(), st.floats(-5, 5), st.lists(st.floats(-5, 5), min_size=2, max_size=2))


@st.composite
def condition(draw):
    kind = draw(st.sampled_from(["dirichlet", "neumann", "periodic"]))
    dim = draw(st.sampled_from([-1, -2]))
    channels = draw(st.sampled_from([None, [0, 1]]))
    if kind == "periodic":
        return Periodic(dim=dim, channels=channels)
    left, right = draw(values), draw(values)
    faces = [s for s, v in (("left", left), ("right", right)) if v is not None] or draw(
        st.sampled_from([["left"], ["right"], ["left", "right"]]))
    kw = dict(faces=faces, dim=dim, channels=channels, keys=draw(st.sampled_from([None, {"left": "inlet"}])))
    if kind == "neumann":
        kw.update(domain=(draw(st.floats(-3, 0)), draw(st.floats(0.5, 3))), order=draw(st.sampled_from([1, 2])))
    cls = Dirichlet if kind == "dirichlet" else Neumann
    return cls(left=left, right=right, **kw)


@given(c=condition())
def test_config_round_trip_through_json(c):
    cfg = json.loads(json.dumps(c.to_config()))  # plain values only
    assert parse_boundary(cfg) == [c]
    assert parse_boundary([cfg, cfg]) == [c, c]


def test_default_faces_and_keys():
    assert Dirichlet(left=0.5).faces == ("left",)
    assert Dirichlet().faces == ("left", "right")
    assert Neumann(faces=["right"], left=None).faces == ("right",)
    spec = BoundarySpec([Dirichlet(faces=["left"]), Neumann(faces=["right"])], n_dim=1)
    assert spec.required_keys == ("right", "left")  # Neumann faces are written before Dirichlet ones
    spec2 = BoundarySpec([Dirichlet(dim=-2), Neumann(dim=-1, faces=["right"])], n_dim=2)
    assert set(spec2.required_keys) == {"left0", "right0", "right1"}


def test_enforcement_order_gives_corners_to_dirichlet():
    spec = BoundarySpec([Dirichlet(left=0.0, dim=-1), Neumann(left=0.0, dim=-2, channels=[0]), Periodic(dim=-2, channels=[1])], 2)
    kinds = [r.kind for r in spec.rules]
    assert kinds == sorted(kinds, key=["periodic", "neumann", "dirichlet"].index)


def test_zencfg_like_mappings_are_accepted_and_private_keys_ignored():
    cfg = {"_config_name": "BC", "type": "Dirichlet", "left": 1.0}
    assert parse_boundary(cfg) == [Dirichlet(left=1.0)]


@pytest.mark.parametrize("kwargs, match", [
    (dict(faces=["top"]), "faces"),
    (dict(faces=["left", "left"]), "repeat"),
    (dict(left=1.0, faces=["right"]), "does not include"),
    (dict(left=True), "bool"),
    (dict(left="1"), "number"),
    (dict(dim=1.5), "dim must be an int"),
    (dict(channels=[-1]), "channels"),
    (dict(keys={"top": "x"}), "keys"),
])
def test_bad_construction_raises(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Dirichlet(**kwargs)


def test_neumann_and_periodic_arguments_are_checked():
    with pytest.raises(ValueError, match="domain"):
        Neumann(left=0.0, domain=(1.0, 1.0))
    with pytest.raises(ValueError, match="order"):
        Neumann(left=0.0, order=3)
    with pytest.raises(ValueError, match="both faces"):
        Periodic(faces=["left"])
    with pytest.raises(ValueError, match="no face values"):
        Periodic(left=1.0)
    with pytest.raises(ValueError, match="time axis"):
        BoundarySpec(Dirichlet(left=0.0, dim=-1), n_dim=2, time_dim=-1)
