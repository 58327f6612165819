"""The training path of T2 computes what its straightforward definitions say, and differentiates correctly.

The corrected pass evaluates face values with the evaluation phase applied to the input, gathers the faces of all
corrected axes at once, and treats the blocks' regularising shift as a constant of the pass. Each is checked here
against a spatial or finite-difference reference on random weights, in float64.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.layers.fno_block import FNOBlocks

from boon_ext.blocks import CorrectionPlan, boon_block_forward
from boon_ext.conditions import BoundarySpec, Dirichlet, Neumann
from boon_ext.correction import _faces, gather_faces
from boon_ext.spectral import SpectralPlan

from boon_strategies import randomize
from test_spectral import _complex128, convs


@st.composite
def face_cases(draw):
    """A float64 spectral plan, an axis, its constrained faces and a batch size."""
    conv, shape = draw(convs())
    axis = draw(st.integers(0, len(shape) - 1))
    faces = draw(st.sampled_from([[0], [shape[axis] - 1], [0, shape[axis] - 1]]))
    return SpectralPlan(_complex128(conv), shape, torch.float64), axis, faces, draw(st.integers(1, 3))


@settings(max_examples=30, deadline=None)
@given(case=face_cases())
def test_face_values_spectrum_is_the_face_transform_of_the_face_values(case):
    plan, axis, pos, batch = case
    x = torch.randn(batch, plan.conv.in_channels, *plan.shape, dtype=torch.float64)
    xm = plan.transform(x)
    ref = plan.face_values(plan.contract(xm), axis, pos, bias=False)  # (b, o, P, *face), spatial
    real_last, idx, _ = plan.face_frequencies(axis)
    dims = list(range(3, ref.ndim))
    if dims:
        ref = torch.fft.rfftn(ref, dim=dims) if real_last else torch.fft.fftn(ref, dim=dims)
        for d, i in zip(dims, idx):
            ref = ref.index_select(d, i)
    got = plan.face_values_spectrum(xm, axis, pos)
    # float64 sums of a few hundred terms of size |x| |w|: round-off far below 1e-9 of the largest value
    scale = ref.abs().max().clamp_min(1.0)
    assert (got.to(ref.dtype) - ref).abs().max() <= 1e-9 * scale


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_dim=st.integers(1, 3))
def test_gather_faces_equals_one_selection_per_axis(data, n_dim):
    shape = tuple(data.draw(st.integers(2, 6)) for _ in range(n_dim))
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    axes = data.draw(st.lists(st.integers(0, n_dim - 1), min_size=1, max_size=n_dim, unique=True))
    faces = [(a, data.draw(st.sampled_from([[0], [shape[a] - 1], [0, shape[a] - 1]]))) for a in axes]
    for (axis, pos), got in zip(faces, gather_faces(x, faces)):
        assert torch.equal(got, _faces(x, axis, pos))  # a selection: equal bit for bit


def _blocks(width, modes, seed):
    torch.manual_seed(seed)
    blocks = FNOBlocks(width, width, modes, n_layers=2)
    for p in blocks.parameters():
        p.data = p.data.to(torch.complex128 if p.is_complex() else torch.float64)
    return randomize(blocks, seed)


@settings(max_examples=8, deadline=None)
@given(data=st.data(), n_dim=st.integers(1, 2), seed=st.integers(0, 10**6))
def test_gradients_of_a_corrected_layer_match_finite_differences(data, n_dim, seed):
    """The shift regularising the face blocks is held constant in the backward pass; its derivative would be of
    the order of round-off, so analytic gradients still agree with finite differences, for the input and for
    the spectral weight (from which the face blocks are built)."""
    shape = tuple(data.draw(st.sampled_from([6, 8])) for _ in range(n_dim))
    modes = tuple(data.draw(st.integers(2, 4)) for _ in range(n_dim))
    blocks = _blocks(2, modes, seed)
    rules = [Dirichlet(left=0.0, right=1.0, dim=-1)]
    if n_dim == 2:
        rules.append(data.draw(st.sampled_from([Neumann(left=0.0, dim=-2), Dirichlet(left=0.0, right=0.0, dim=-2)])))
    plan = CorrectionPlan.from_spec(BoundarySpec(rules, n_dim=n_dim))
    x = torch.randn(2, 2, *shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: boon_block_forward(blocks, 0, x, plan), (x,), atol=1e-6, rtol=1e-5)

    weight = blocks.convs[0].weight.tensor  # the complex spectral weight (a parameter)
    out = boon_block_forward(blocks, 0, x.detach(), plan)
    probe = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * probe).sum(), weight)
    w0, direction = weight.detach().clone(), torch.randn_like(weight)

    def loss_at(w):
        with torch.no_grad():
            weight.copy_(w)
            return (boon_block_forward(blocks, 0, x.detach(), plan) * probe).sum()

    def central(h):
        return (loss_at(w0 + h * direction) - loss_at(w0 - h * direction)) / (2 * h)

    # Central differences in float64, Richardson-extrapolated from h = 1e-5 and 5e-6: truncation O(h^4). Plain
    # central differences (O(h^2)) are not enough where a face block is nearly singular: the loss's third
    # derivative along the direction can reach 1e8 (seed 37955: 2.5e-5 absolute error at h = 1e-6, against a
    # derivative of 7.3 since the face rows no longer carry the interior's large terms), while the extrapolation
    # leaves about 1e-8 there. Cancellation: O(eps |loss| / h), ~1e-11 relative.
    h = 1e-5
    fd = (4 * central(h / 2) - central(h)) / 3
    loss_at(w0)
    analytic = (g.conj() * direction).real.sum()  # torch's gradient of a real loss in a complex parameter
    assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(analytic))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_dim=st.integers(1, 3))
def test_face_keeping_gelu_equals_the_masked_activation_values_and_gradients(data, n_dim):
    # The one-pass GELU of the training path against its definition: GELU where no face is, identity on every
    # constrained face (corners included). Both are the same float64 operations, so they agree bit for bit.
    from boon_ext.blocks import _FaceKeepingGELU

    shape = tuple(data.draw(st.integers(2, 6)) for _ in range(n_dim))
    axes = data.draw(st.lists(st.integers(0, n_dim - 1), min_size=1, max_size=n_dim, unique=True))
    face_axes = tuple((a, tuple(data.draw(st.sampled_from([("left",), ("right",), ("left", "right")]))))
                      for a in axes)
    plan = CorrectionPlan(corrected=(), periodic_axes=(), face_axes=face_axes)
    h = (3 * torch.randn(2, 3, *shape, dtype=torch.float64)).requires_grad_()
    seed_grad = torch.randn(2, 3, *shape, dtype=torch.float64)
    got = _FaceKeepingGELU.apply(h, face_axes)
    (g_got,) = torch.autograd.grad(got, h, seed_grad)
    ref = torch.where(plan.face_mask(shape, h.device), h, torch.nn.functional.gelu(h))
    (g_ref,) = torch.autograd.grad(ref, h, seed_grad)
    assert torch.equal(got, ref) and torch.equal(g_got, g_ref)
    mask = plan.face_mask(shape, h.device).expand_as(h)
    assert torch.equal(got[mask], h[mask])
    if (~mask).any():  # interior nodes (a length-2 axis with both faces constrained has none)
        assert not torch.equal(got[~mask], h[~mask])


@settings(max_examples=15, deadline=None)
@given(data=st.data(), n_dim=st.integers(1, 3), n_layers=st.integers(2, 4), seed=st.integers(0, 10**6))
def test_face_blocks_built_for_all_layers_at_once_equal_one_layer_at_a_time(data, n_dim, n_layers, seed):
    # Training builds every layer's face blocks in one batched computation; each layer's must be what building
    # it alone gives, and the gradients that reach each layer's weight through them too.
    from boon_ext.blocks import layer_operators

    shape = tuple(2 * data.draw(st.integers(3, 5)) for _ in range(n_dim))
    modes = tuple(data.draw(st.integers(2, 4)) for _ in range(n_dim))
    torch.manual_seed(seed)
    blocks = FNOBlocks(3, 3, modes, n_layers=n_layers)
    for p in blocks.parameters():
        p.data = p.data.to(torch.complex128 if p.is_complex() else torch.float64)
    randomize(blocks, seed)
    axis = data.draw(st.integers(0, n_dim - 1))
    sides = data.draw(st.sampled_from([("left",), ("right",), ("left", "right")]))
    rules = [Dirichlet(**{s: 0.0 for s in sides}, dim=axis - n_dim)]
    plan = CorrectionPlan.from_spec(BoundarySpec(rules, n_dim=n_dim))
    x = torch.zeros(1, 3, *shape, dtype=torch.float64)
    together = layer_operators(blocks, range(n_layers), x, plan, True)
    probe = [torch.randn_like(together[0][3][axis].m) for _ in range(n_layers)]
    loss = sum((ops[3][axis].m * p).real.sum() + ops[3][axis].target.abs().sum() for ops, p in zip(together, probe))
    g_together = torch.autograd.grad(loss, [c.weight.tensor for c in blocks.convs])
    for j in range(n_layers):
        (alone,) = layer_operators(blocks, [j], x, plan, True)
        a, b = together[j][3][axis], alone[3][axis]
        scale = float(b.m.detach().abs().max())
        assert float((a.m - b.m).detach().abs().max()) <= 1e-12 * scale
        assert float((a.target - b.target).detach().abs().max()) <= 1e-12 * scale
        assert a.positions == b.positions and torch.equal(a.face_weight, b.face_weight)
        loss_j = (b.m * probe[j]).real.sum() + b.target.abs().sum()
        (g_alone,) = torch.autograd.grad(loss_j, blocks.convs[j].weight.tensor)
        assert float((g_together[j] - g_alone).abs().max()) <= 1e-10 * max(1.0, float(g_alone.abs().max()))
