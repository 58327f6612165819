"""The spectral plan reproduces neuralop's SpectralConv, and its face operators agree with the layer."""


import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.layers.skip_connections import skip_connection
from neuralop.layers.spectral_convolution import SpectralConv

from boon_ext.correction import _faces, correct_axis, skip_matrix
from boon_ext.spectral import SpectralPlan



def _with_faces(z, axis, positions, faces):
    """``z`` with its faces ``positions`` of ``axis`` replaced by ``faces`` (batch, C, P, *face)."""
    z = z.clone()
    for j, p in enumerate(positions):
        z.select(2 + axis, p).copy_(faces.select(2, j))
    return z


@st.composite
def convs(draw, max_dim=3):
    n_dim = draw(st.integers(1, max_dim))
    shape = tuple(draw(st.integers(4, 40 if n_dim == 1 else 12)) for _ in range(n_dim))
    modes = tuple(draw(st.integers(2, 2 * s)) for s in shape)
    factorization = draw(st.sampled_from([None, "tucker", "cp", "tt"])) if n_dim < 3 else draw(st.sampled_from([None, "tucker"]))
    separable = draw(st.booleans()) if factorization is None else False
    c = draw(st.integers(1 if factorization is None else 2, 5))
    max_modes = None
    if draw(st.booleans()):
        max_modes = tuple(m + draw(st.integers(0, 4)) for m in modes)
    torch.manual_seed(draw(st.integers(0, 10**6)))
    conv = SpectralConv(c, c, modes, factorization=factorization, separable=separable, max_n_modes=max_modes,
                        implementation="factorized", fft_norm=draw(st.sampled_from(["forward", "backward", "ortho"])))
    return conv, shape


def _complex128(conv):
    for p in conv.parameters():
        if p.is_complex():
            p.data = p.data.to(torch.complex128)
        else:
            p.data = p.data.double()
    return conv


@settings(max_examples=40)
@given(cs=convs())
def test_plan_forward_equals_the_layer(cs):
    conv, shape = cs
    x = torch.randn(2, conv.in_channels, *shape)
    torch.testing.assert_close(SpectralPlan(conv, shape, x.dtype).forward(x), conv(x), rtol=1e-5, atol=1e-5)


@settings(max_examples=40)
@given(cs=convs(), data=st.data())
def test_face_values_kernel_and_delta_agree_with_the_layer(cs, data):
    conv, shape = cs
    conv = _complex128(conv)
    plan = SpectralPlan(conv, shape, torch.float64)
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    pos = data.draw(st.sampled_from([[0], [n - 1], [0, n - 1]]))
    x = torch.randn(2, conv.in_channels, *shape, dtype=torch.float64)
    ref = _faces(plan.forward(x), axis, pos)
    torch.testing.assert_close(plan.face_values(plan.contract(plan.transform(x)), axis, pos), ref, rtol=1e-10, atol=1e-10)
    # impulse responses, column by column, against the layer applied to impulses
    k = plan.face_kernel(axis, pos)
    c = conv.in_channels
    for j, q in enumerate(pos):
        imp = torch.zeros(c, c, *shape, dtype=torch.float64)
        idx = [0] * len(shape)
        idx[axis] = q
        for i in range(c):
            imp[(i, i, *idx)] = 1.0
        resp = plan.forward(imp) - plan.forward(torch.zeros_like(imp))
        torch.testing.assert_close(k[:, :, :, j], _faces(resp, axis, pos), rtol=1e-10, atol=1e-10)
    # the same blocks in the face spectrum, computed without the spatial round trip
    real_last, idx, _ = plan.face_frequencies(axis)
    dims = list(range(4, k.ndim))
    ref = k if not dims else (torch.fft.rfftn(k, dim=dims) if real_last else torch.fft.fftn(k, dim=dims))
    for d, i in zip(dims, idx):
        ref = ref.index_select(d, i)
    torch.testing.assert_close(plan.face_kernel_spectrum(axis, pos).to(ref.dtype), ref, rtol=1e-9, atol=1e-9)
    # spectrum of a field supported on the faces
    d = torch.randn(2, c, len(pos), *[s for a, s in enumerate(shape) if a != axis], dtype=torch.float64)
    delta = _with_faces(torch.zeros(2, c, *shape, dtype=torch.float64), axis, pos, d)
    torch.testing.assert_close(plan.face_delta(d, axis, pos), plan.transform(delta), rtol=1e-10, atol=1e-10)


@settings(max_examples=40)
@given(cs=convs(), data=st.data())
def test_t2_decouples_boundary_outputs_from_interior_inputs(cs, data):
    """After T2, (K z)_faces = D x_faces + c: interior inputs no longer reach the boundary outputs."""
    conv, shape = cs
    conv = _complex128(conv)
    n_dim = len(shape)
    axis = data.draw(st.integers(0, n_dim - 1))
    if any(shape[a] % 2 for a in range(n_dim - 1) if a != axis):
        shape = tuple(s + (s % 2 if a < n_dim - 1 and a != axis else 0) for a, s in enumerate(shape))
    n = shape[axis]
    sides = data.draw(st.sampled_from([["left"], ["right"], ["left", "right"]]))
    pos = [0 if s == "left" else n - 1 for s in sides]
    c = conv.in_channels
    skip = skip_connection(c, c, n_dim=n_dim, skip_type=data.draw(st.sampled_from(["linear", "identity", "soft-gating"]))).double()
    plan = SpectralPlan(conv, shape, torch.float64)
    w = skip_matrix(skip, c, n_dim, torch.float64, "cpu")

    def kernel(z):
        return plan.forward(z) + skip(z)

    x = torch.randn(2, c, *shape, dtype=torch.float64)
    x2 = _with_faces(torch.randn(2, c, *shape, dtype=torch.float64), axis, pos, _faces(x, axis, pos))  # same faces, new interior
    outs = []
    for inp in (x, x2):
        z_faces = _faces(inp, axis, pos)
        xm, d = correct_axis(plan, w, plan.transform(inp), z_faces, axis, pos)
        z = _with_faces(inp, axis, pos, z_faces + d)
        torch.testing.assert_close(xm, plan.transform(z), rtol=1e-9, atol=1e-9)
        interior = [i for i in range(n) if i not in pos]
        assert torch.equal(_faces(z, axis, interior), _faces(inp, axis, interior))  # T2 changes faces only
        outs.append(_faces(kernel(z), axis, pos))
    scale = outs[0].abs().max().clamp_min(1.0)
    assert (outs[0] - outs[1]).abs().max() <= 1e-9 * scale


@settings(max_examples=40)
@given(data=st.data(), n_dim=st.integers(2, 3))
def test_faces_of_input_adds_earlier_face_changes_on_shared_edges(data, n_dim):
    from boon_ext.correction import faces_of_input

    shape = tuple(data.draw(st.integers(3, 7)) for _ in range(n_dim))
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    axes = data.draw(st.permutations(list(range(n_dim))))
    corrections, z = [], x
    for axis in axes:
        n = shape[axis]
        pos = data.draw(st.sampled_from([[0], [n - 1], [0, n - 1]]))
        faces = faces_of_input(x, corrections, axis, pos)
        torch.testing.assert_close(faces, _faces(z, axis, pos), rtol=0, atol=1e-14)
        d = torch.randn_like(faces)
        corrections.append((axis, pos, d))
        z = _with_faces(z, axis, pos, faces + d)
