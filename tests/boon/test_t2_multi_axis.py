"""T2 with constrained faces on several axes (2-D and 3-D): the corrected layer's face outputs read face inputs only.

Per axis, T2 changes the face inputs so that ``(K z)_faces = D x_faces + c``. On several axes the changes do not
compose (each later axis's change reaches the earlier faces' rows through the convolution), so the corrected
layer gives every Dirichlet/Neumann face the row of its own axis's elimination, the face written last owning
shared edges and corners. Checked here on random float64 weights, grids, modes, skips and condition types per
axis (periodic axes included, which are averaged and not decoupled), and end to end on the model's output.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.layers.fno_block import FNOBlocks

from boon_ext import BOONFNO, BoundarySpec, Dirichlet, Neumann, Periodic, boundary_error
from boon_ext.blocks import CorrectionPlan, boon_block_forward
from boon_strategies import TOL, randomize

KINDS = ["dirichlet", "neumann", "mixed", "dirichlet-one", "neumann-one", "periodic", "free"]


def _axis_rules(kind, axis, n_dim, draw):
    dim = axis - n_dim
    if kind == "free":
        return []
    if kind == "periodic":
        return [Periodic(dim=dim)]
    if kind.endswith("-one"):
        side = draw(st.sampled_from(["left", "right"]))
        cls = Dirichlet if kind.startswith("dirichlet") else Neumann
        return [cls(**{side: draw(st.floats(-2, 2))}, dim=dim)]
    kinds = {"dirichlet": ("dirichlet", "dirichlet"), "neumann": ("neumann", "neumann"),
             "mixed": tuple(draw(st.permutations(["dirichlet", "neumann"])))}[kind]
    return [(Dirichlet if k == "dirichlet" else Neumann)(**{side: draw(st.floats(-2, 2))}, dim=dim)
            for side, k in zip(("left", "right"), kinds)]


@st.composite
def multi_axis_cases(draw):
    """Random weights on a 2-D or 3-D grid, with Dirichlet/Neumann faces on at least two axes."""
    n_dim = draw(st.sampled_from([2, 3]))
    corrected = draw(st.lists(st.integers(0, n_dim - 1), min_size=2, max_size=n_dim, unique=True))
    kinds = [draw(st.sampled_from(KINDS[:5])) if a in corrected else draw(st.sampled_from(KINDS[5:]))
             for a in range(n_dim)]
    rules = [r for a, k in enumerate(kinds) for r in _axis_rules(k, a, n_dim, draw)]
    # Non-last axes even (neuralop's layer is shift-equivariant only there); several resolutions per axis.
    sizes = [6, 8, 10] if n_dim == 3 else [6, 8, 12, 16]
    shape = tuple(draw(st.sampled_from(sizes)) + (draw(st.integers(0, 1)) if a == n_dim - 1 else 0)
                  for a in range(n_dim))
    modes = tuple(draw(st.integers(2, 5)) for _ in range(n_dim))
    width = draw(st.integers(2, 4))
    skip = draw(st.sampled_from(["linear", "identity", "soft-gating", None]))
    seed = draw(st.integers(0, 2**31 - 1))
    torch.manual_seed(seed)
    blocks = FNOBlocks(width, width, modes, n_layers=1, fno_skip=skip,
                       use_channel_mlp=draw(st.booleans()), separable=draw(st.booleans()))
    for p in blocks.parameters():
        p.data = p.data.to(torch.complex128 if p.is_complex() else torch.float64)
    randomize(blocks, seed)
    return blocks, BoundarySpec(rules, n_dim=n_dim), shape, width, seed, modes


def _mask(shape, faces):
    """Boolean (1, 1, *shape): nodes of the faces ``faces``, a sequence of (axis, sides)."""
    return CorrectionPlan(corrected=(), periodic_axes=(), face_axes=tuple(faces)).face_mask(shape, "cpu")


@settings(max_examples=40, deadline=None)
@given(case=multi_axis_cases())
def test_face_outputs_do_not_depend_on_strictly_interior_inputs(case):
    blocks, spec, shape, width, seed, _ = case
    plan = CorrectionPlan.from_spec(spec)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, width, *shape, generator=g, dtype=torch.float64)
    on_a_face = plan.face_mask(shape, "cpu")  # every constrained face, periodic ones included
    x2 = torch.where(on_a_face, x, 10 * torch.randn(x.shape, generator=g, dtype=torch.float64))
    assert not torch.equal(x, x2)
    y, y2 = (boon_block_forward(blocks, 0, v, plan).detach() for v in (x, x2))  # the training path (autograd on)
    faces = _mask(shape, plan.corrected).expand_as(y)
    # The face outputs are computed from the face inputs alone, by the same operations for x and x2: any
    # difference would be round-off of a few products per node (float64 eps 2.2e-16); 1e-12 leaves 10^4 x.
    scale = float(y[faces].abs().max().clamp_min(1.0))
    assert float((y - y2)[faces].abs().max()) <= 1e-12 * scale
    # ...while the interior does see its inputs (the test would not notice a layer that ignored them).
    assert not torch.allclose(y[~faces], y2[~faces])


@settings(max_examples=30, deadline=None)
@given(case=multi_axis_cases())
def test_each_face_carries_its_own_axis_elimination_and_shared_nodes_go_to_the_face_the_output_writes_last(case):
    # A face's row on several axes is the one T2 along its own axis alone gives (where it is exact: the one-axis
    # property of test_spectral.py), on the nodes no face written later shares; the write order is the output's
    # (BoundarySpec: Neumann, then Dirichlet, then by axis), so corners and edges have one owner in every layer.
    blocks, spec, shape, width, seed, _ = case
    plan = CorrectionPlan.from_spec(spec)
    order = plan.write_order()
    assert sorted(order) == sorted((a, s) for a, sides in plan.corrected for s in sides)
    output_order = [(r.axis, r.side) for r in spec.rules if r.kind != "periodic"]
    assert list(order) == sorted(order, key=lambda f: max(i for i, g in enumerate(output_order) if g == f))
    x = torch.randn(2, width, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    y = boon_block_forward(blocks, 0, x, plan)
    alone = {axis: boon_block_forward(blocks, 0, x, CorrectionPlan(corrected=((axis, sides),),
                                                                      periodic_axes=plan.periodic_axes,
                                                                      face_axes=plan.face_axes))
             for axis, sides in plan.corrected}
    for k, (axis, side) in enumerate(order):
        owned = _mask(shape, [(axis, (side,))]) & ~_mask(shape, [(a, (s,)) for a, s in order[k + 1:]])
        owned = owned.expand_as(y)
        assert owned.any()  # every face has nodes of its own (axes of 6 nodes or more)
        ref = alone[axis].detach()
        # Same eliminated blocks applied by two routes (face frequencies here; the corrected input's full
        # transform there), each a few hundred float64 products: 1e-9 relative, as the one-axis T2 test.
        scale = float(ref[owned].abs().max().clamp_min(1.0))
        assert float((y.detach() - ref)[owned].abs().max()) <= 1e-9 * scale


@settings(max_examples=15, deadline=None)
@given(case=multi_axis_cases(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_model_outputs_still_satisfy_every_condition_exactly(case, dtype):
    _, spec, shape, width, seed, modes = case
    torch.manual_seed(seed)
    model = BOONFNO(n_modes=modes, in_channels=1, out_channels=2, hidden_channels=width + 1, n_layers=2,
                    boundary=list(spec.conditions), kernel_correction=True)
    randomize(model, seed)
    model = model.double() if dtype == torch.float64 else model.float()
    x = torch.randn(2, 1, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    y = model(x)
    assert torch.isfinite(y).all()
    assert boundary_error(y, spec, relative=True) <= TOL[dtype]


@pytest.mark.parametrize("n_dim", [2, 3])
def test_four_and_six_dirichlet_walls(n_dim):
    # The case of the report that found the defect (Dirichlet walls on every axis), at a fixed size: interior
    # inputs changed by O(10) moved the face outputs by O(1) before; now not at all.
    torch.manual_seed(n_dim)
    blocks = FNOBlocks(6, 6, (4,) * n_dim, n_layers=2)
    for p in blocks.parameters():
        p.data = p.data.to(torch.complex128 if p.is_complex() else torch.float64)
    randomize(blocks, n_dim)
    spec = BoundarySpec([Dirichlet(left=0.0, right=1.0, dim=d) for d in range(-n_dim, 0)], n_dim=n_dim)
    plan = CorrectionPlan.from_spec(spec)
    shape = (12, 10) if n_dim == 2 else (8, 8, 7)
    x = torch.randn(3, 6, *shape, dtype=torch.float64)
    faces = plan.face_mask(shape, "cpu")
    x2 = torch.where(faces, x, x + 10 * torch.randn_like(x))
    for layer in range(2):
        with torch.no_grad():  # the inference path (face blocks factorised once)
            y, y2 = boon_block_forward(blocks, layer, x, plan), boon_block_forward(blocks, layer, x2, plan)
        m = faces.expand_as(y)
        assert float((y - y2)[m].abs().max()) <= 1e-12 * float(y[m].abs().max())


@pytest.mark.parametrize("n_dim,skip", [(2, None), (2, "soft-gating"), (3, "linear"), (3, "identity")])
def test_gradients_on_several_axes_match_finite_differences(n_dim, skip):
    # The faces' rows are written into the layer's fresh output in place; its gradient must still be the
    # derivative of the layer (float64 central differences, gradcheck's tolerances).
    torch.manual_seed(n_dim)
    blocks = FNOBlocks(2, 2, (3,) * n_dim, n_layers=2, fno_skip=skip)
    for p in blocks.parameters():
        p.data = p.data.to(torch.complex128 if p.is_complex() else torch.float64)
    randomize(blocks, n_dim)
    rules = [Dirichlet(left=0.0, right=1.0, dim=-1), Neumann(left=0.0, dim=-2)]
    if n_dim == 3:
        rules.append(Dirichlet(right=0.0, dim=-3))
    plan = CorrectionPlan.from_spec(BoundarySpec(rules, n_dim=n_dim))
    x = torch.randn(1, 2, *([6] * n_dim), dtype=torch.float64, requires_grad=True)
    # fast_mode: the Jacobian along random directions, against as many finite differences (full Jacobians in 3-D
    # take a minute)
    assert torch.autograd.gradcheck(lambda x: boon_block_forward(blocks, 0, x, plan), (x,), atol=1e-6, rtol=1e-5,
                                    fast_mode=True)
