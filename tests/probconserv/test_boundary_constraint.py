"""boundary_constraint: a boon_ext spec's walls as constraint rows, and one posterior for walls and conservation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import BoundarySpec, Dirichlet, Neumann, Periodic, one_sided_derivative
from probconserv_ext import ProbConserv, boundary_constraint, conservation_constraint, stack_constraints

seeds = st.integers(0, 2**31 - 1)
KINDS = ("dirichlet", "neumann", None)


def conditions(left, right, a, b, order, constant, rng):
    """Conditions for the drawn face kinds; a constant face carries its value, the others read `values`."""
    out, values, expected = [], {}, {}
    for kind in ("dirichlet", "neumann"):
        faces = tuple(s for s, k in (("left", left), ("right", right)) if k == kind)
        if not faces:
            continue
        extra = dict(domain=(a, b), order=order) if kind == "neumann" else {}
        if constant:
            vals = {s: float(torch.randn(1, generator=rng, dtype=torch.float64)) for s in faces}
            out.append((Dirichlet if kind == "dirichlet" else Neumann)(**vals, **extra))
            expected.update({s: (kind, torch.tensor(v, dtype=torch.float64)) for s, v in vals.items()})
        else:
            out.append((Dirichlet if kind == "dirichlet" else Neumann)(faces=faces, **extra))
            for s in faces:
                values[s] = torch.randn(3, generator=rng, dtype=torch.float64)
                expected[s] = (kind, values[s])
    return out, values, expected


@settings(max_examples=60, deadline=None)
@given(seeds, st.sampled_from(KINDS), st.sampled_from(KINDS), st.integers(5, 80), st.floats(-5, 5),
       st.floats(0.1, 20), st.sampled_from([1, 2]), st.booleans(), st.floats(-6, 2))
def test_one_posterior_meets_walls_and_conservation(seed, left, right, n, a, length, order, constant, log_spread):
    if left is None and right is None:
        left = "dirichlet"
    rng = torch.Generator().manual_seed(seed)
    b_ = a + length
    grid = torch.linspace(a, b_, n, dtype=torch.float64)
    conds, values, expected = conditions(left, right, a, b_, order, constant, rng)
    walls = boundary_constraint(conds, grid, values)
    total = torch.randn(3, generator=rng, dtype=torch.float64)
    both = stack_constraints(conservation_constraint(grid, total=total), walls)
    mean = 10 * torch.randn(3, n, generator=rng, dtype=torch.float64)
    # variances over several orders of magnitude
    var = 10 ** (log_spread * torch.rand(3, n, generator=rng, dtype=torch.float64))
    u = ProbConserv(both)(mean, variance=var).mean
    eps = torch.finfo(torch.float64).eps
    h = length / (n - 1)
    for side, (kind, v) in expected.items():
        node = u[:, 0] if side == "left" else u[:, -1]
        if kind == "dirichlet":
            assert ((node - v).abs() <= 64 * eps * (u.abs().amax(-1) + v.abs())).all()
        else:
            flux = one_sided_derivative(u, side, h, order=order)
            terms = u.abs().amax(-1) * 4 / h  # the size of the stencil's terms
            assert ((flux - v).abs() <= 256 * eps * (terms + v.abs())).all()
    w = conservation_constraint(grid).G[0]
    scale = (u.abs() @ w) + total.abs()
    assert ((u @ w - total).abs() <= 256 * eps * scale).all()


def test_rows_are_the_quickstarts_flux_rows():
    from boon_ext import neumann_stencil
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    c = boundary_constraint([Neumann(left=0.0), Neumann(faces=("right",))], grid, {"right": torch.tensor([1.5, 2.5])})
    h = 1 / 8
    for row, side in enumerate(("left", "right")):
        nodes, weights = neumann_stencil(side, h)
        expected = torch.zeros(9, dtype=torch.float64)
        expected[list(nodes)] = torch.tensor(weights, dtype=torch.float64)
        assert torch.equal(c.G[row], expected)
    assert torch.equal(c.b, torch.tensor([[0.0, 1.5], [0.0, 2.5]], dtype=torch.float64))


def test_channels_and_per_channel_constants():
    grid = torch.linspace(0, 1, 6, dtype=torch.float64)
    conds = [Dirichlet(left=[1.0, 2.0]), Neumann(right=3.0, channels=[1])]
    c0 = boundary_constraint(conds, grid, channel=0)
    c1 = boundary_constraint(conds, grid, channel=1)
    assert c0.m == 1 and float(c0.b[0]) == 1.0
    assert c1.m == 2 and c1.b.tolist() == [3.0, 2.0]  # Neumann before Dirichlet, as the spec enforces
    with pytest.raises(ValueError, match="channel must be given"):
        boundary_constraint(conds, grid)
    spec = BoundarySpec(conds, n_dim=1, out_channels=2)
    assert boundary_constraint(spec, grid, channel=1).m == 2


def test_refusals():
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"values\['right'\] is missing"):
        boundary_constraint(Dirichlet(faces=("right",)), grid)
    with pytest.raises(ValueError, match="no face reads"):
        boundary_constraint(Dirichlet(left=0.0), grid, {"right": 1.0})
    with pytest.raises(TypeError, match="values must be a mapping"):
        boundary_constraint(Dirichlet(left=0.0), grid, [1.0])
    with pytest.raises(ValueError, match="periodic"):
        boundary_constraint(Periodic(), grid)
    with pytest.raises(ValueError, match="1-D field"):
        boundary_constraint(BoundarySpec(Dirichlet(left=0.0), n_dim=2), grid)
    with pytest.raises(ValueError, match="uniform"):
        boundary_constraint(Neumann(left=0.0), grid**2)
    with pytest.raises(ValueError, match="domain"):
        boundary_constraint(Neumann(left=0.0), 2 * grid)  # the condition's default domain is (0, 1)
    assert boundary_constraint(Dirichlet(left=0.0), grid**2).m == 1  # Dirichlet rows need no uniform grid
    with pytest.raises(ValueError, match="strictly increasing"):
        boundary_constraint(Dirichlet(left=0.0), grid.flip(0))
    with pytest.raises(ValueError, match="finite"):
        boundary_constraint(Dirichlet(faces=("left",)), grid, {"left": float("nan")})
    with pytest.raises(ValueError, match="broadcast"):
        boundary_constraint(Dirichlet(), grid, {"left": torch.zeros(2), "right": torch.zeros(3)})
    with pytest.raises(ValueError, match="at least 3 nodes"):
        boundary_constraint(Dirichlet(left=0.0), grid[:2])
    with pytest.raises(ValueError, match="no face reads"):
        boundary_constraint(Dirichlet(left=0.0, channels=[1]), grid, {"x": 1.0}, channel=1)
    with pytest.raises(ValueError, match="at least one Dirichlet or Neumann face"):
        boundary_constraint(Dirichlet(left=0.0, channels=[1]), grid, channel=0)
