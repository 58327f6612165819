"""BOONFNO(hidden_values=True): prescribed Dirichlet values written into the hidden face nodes of every layer."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import boon_ext.models as boon_models
from boon_ext import BOONFNO, Dirichlet, Neumann, Periodic

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def dirichlet_setup(draw):
    """A random 1-D or space-time Dirichlet model, its input and its face values (one face constant or not)."""
    spacetime = draw(st.booleans())
    n_layers = draw(st.integers(1, 3))
    width = draw(st.integers(2, 6))
    batch = draw(st.integers(1, 3))
    right_constant = draw(st.booleans())
    c = draw(finite)
    if spacetime:
        nx, nt = draw(st.integers(6, 14)), draw(st.integers(3, 6))
        shape, n_modes, dim, time_dim = (nx, nt), (4, 4), -2, -1
        face_shape = (batch, 1, nt)
    else:
        nx = draw(st.integers(8, 33))
        shape, n_modes, dim, time_dim = (nx,), (draw(st.integers(2, 8)),), -1, None
        face_shape = (batch,)
    cond = Dirichlet(faces=["left", "right"], right=c, dim=dim) if right_constant else Dirichlet(
        faces=["left", "right"], dim=dim)
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    values = {"left": torch.randn(face_shape, generator=gen, dtype=torch.float64) * 3}
    if not right_constant:
        values["right"] = torch.randn(face_shape, generator=gen, dtype=torch.float64) * 3
    x = torch.randn((batch, 1, *shape), generator=gen, dtype=torch.float64)
    kwargs = dict(n_modes=n_modes, hidden_channels=width, in_channels=1, out_channels=1, n_layers=n_layers,
                  boundary=[cond], time_dim=time_dim, kernel_correction=draw(st.booleans()), hidden_values=True)
    return seed, kwargs, x, values, c, right_constant


def _face_targets(values, c, right_constant, batch, like):
    """(left, right) prescribed values shaped like a face of ``like`` (batch, channels, *face)."""
    def shaped(g):
        g = g.to(like.dtype)
        return g.reshape(batch, 1, *([1] * (like.ndim - 3))) if g.ndim == 1 else g
    right = torch.full((1,), c, dtype=like.dtype) if right_constant else shaped(values["right"])
    return shaped(values["left"]), right


def _build(seed, kwargs, dtype):
    torch.manual_seed(seed)
    model = BOONFNO(**kwargs)
    with torch.no_grad():
        for p in model.parameters():  # random weights well away from neuralop's tiny initial scale
            p.add_(0.3 * torch.randn_like(p))
    return model.double() if dtype == torch.float64 else model


# T2's measured accuracy risk (the warning) is not what this checks
@pytest.mark.filterwarnings("ignore::boon_ext.BoundaryAccuracyWarning")
@settings(max_examples=20)
@given(setup=dirichlet_setup(), dtype=st.sampled_from([torch.float32, torch.float64]), grad=st.booleans())
def test_conditions_exact_and_hidden_faces_hold_the_value_after_every_layer(setup, dtype, grad):
    seed, kwargs, x, values, c, right_constant = setup
    model = _build(seed, kwargs, dtype)
    outs = []
    original = boon_models.boon_block_forward

    def spy(*args, **kw):
        out = original(*args, **kw)
        outs.append(out)
        return out

    bv = {k: v.to(dtype) for k, v in values.items()}
    # Every layer's output, recorded through the module-level name the model's forward calls.
    with pytest.MonkeyPatch.context() as mp, torch.set_grad_enabled(grad):
        mp.setattr(boon_models, "boon_block_forward", spy)
        y = model(x.to(dtype), boundary_values=bv)
    dim = 2  # the constrained spatial axis is the first one in both layouts
    batch = x.shape[0]
    assert len(outs) == kwargs["n_layers"]
    for h in [y] + outs:
        left, right = _face_targets(bv, c, right_constant, batch, h)
        # Written, not computed: equal to the value's rounding to the model dtype, bit for bit.
        assert torch.equal(h.select(dim, 0), left.expand_as(h.select(dim, 0)))
        assert torch.equal(h.select(dim, -1), right.expand_as(h.select(dim, -1)))
    if grad:
        y.sum().backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


# T2's measured accuracy risk (the warning) is not what this checks
@pytest.mark.filterwarnings("ignore::boon_ext.BoundaryAccuracyWarning")
@settings(max_examples=15)
@given(setup=dirichlet_setup())
def test_the_value_reaches_the_interior_only_with_hidden_values(setup):
    seed, kwargs, x, values, c, right_constant = setup
    moved = {k: v + 1.0 for k, v in values.items()}
    # After the last layer only point-wise maps follow, so the value reaches the interior from the second layer on.
    kwargs = dict(kwargs, n_layers=max(2, kwargs["n_layers"]))
    dim = 2

    def interior_out(hidden, bv):
        model = _build(seed, dict(kwargs, hidden_values=hidden), torch.float64)
        with torch.no_grad():
            return model(x, boundary_values=bv).narrow(dim, 1, x.shape[dim] - 2)

    # Without hidden values, g enters the output's face nodes only.
    assert torch.equal(interior_out(False, values), interior_out(False, moved))
    # With them, the left value (always per sample here) is part of every hidden layer's input.
    assert not torch.allclose(interior_out(True, values), interior_out(True, moved), rtol=0, atol=1e-12)


def test_refused_where_not_defined():
    base = dict(n_modes=(4,), hidden_channels=4, in_channels=1, out_channels=1, n_layers=1)
    for boundary, kind in [([Neumann(left=0.0, right=1.0)], "neumann"), ([Periodic()], "periodic"),
                           ([Dirichlet(left=0.0), Neumann(right=1.0)], "neumann"), (None, "no boundary")]:
        with pytest.raises(ValueError, match=f"hidden_values=True.*{kind}"):
            BOONFNO(boundary=boundary, hidden_values=True, **base)
    with pytest.raises(ValueError, match="hidden_values=True needs out_channels=1, got 2"):
        BOONFNO(boundary=[Dirichlet(left=0.0, right=0.0)], hidden_values=True, **dict(base, out_channels=2))
    with pytest.raises(TypeError, match="hidden_values must be a bool"):
        BOONFNO(boundary=[Dirichlet(left=0.0, right=0.0)], hidden_values=1, **base)


def test_checkpoint_keeps_hidden_values(tmp_path):
    torch.manual_seed(0)
    model = BOONFNO(n_modes=(4,), hidden_channels=4, in_channels=1, out_channels=1, n_layers=2,
                    boundary=[Dirichlet(faces=["left", "right"], right=0.0)], hidden_values=True)
    model.save_checkpoint(tmp_path, "m")
    again = BOONFNO.from_checkpoint(tmp_path, "m")
    assert again.hidden_values is True
    x, g = torch.randn(2, 1, 16), torch.randn(2)
    with torch.no_grad():
        assert torch.equal(model(x, boundary_values={"left": g}), again(x, boundary_values={"left": g}))
    # Re-wrapping a BOON model keeps its settings (and so its predictions) unless told otherwise.
    rewrapped = BOONFNO.from_fno(model, [Dirichlet(faces=["left", "right"], right=0.0)])
    assert rewrapped.hidden_values is True and rewrapped.kernel_correction == model.kernel_correction
    with torch.no_grad():
        assert torch.equal(model(x, boundary_values={"left": g}), rewrapped(x, boundary_values={"left": g}))
    assert BOONFNO.from_fno(model, [Dirichlet(faces=["left", "right"], right=0.0)],
                            hidden_values=False).hidden_values is False


def _concatenated(h, hidden):
    """The face-by-face reference: one concatenation per face (what write_hidden_values computes)."""
    from boon_ext.enforcement import _replace_face

    for axis, side, g in hidden:
        face_shape = tuple(s for i, s in enumerate(h.shape[2:]) if i != axis)
        h = _replace_face(h, 2 + axis, side, g.to(h.dtype).expand(h.shape[0], h.shape[1], *face_shape))
    return h


@settings(max_examples=40, deadline=None)
@given(data=st.data(), ndim=st.integers(1, 3), dtype=st.sampled_from([torch.float32, torch.float64]),
       g_grad=st.booleans())
def test_hidden_values_written_in_one_pass_equal_the_face_by_face_writes(data, ndim, dtype, g_grad):
    from boon_ext.blocks import write_hidden_values

    shape = [data.draw(st.integers(1, 3), label="batch"), data.draw(st.integers(1, 4), label="width")]
    shape += [data.draw(st.integers(2, 6), label=f"n{a}") for a in range(ndim)]
    # faces in any order, repeated axes and shared corners included
    faces = data.draw(st.lists(st.tuples(st.integers(0, ndim - 1), st.sampled_from(["left", "right"])),
                               min_size=1, max_size=2 * ndim + 1), label="faces")
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    hidden = []
    for axis, side in faces:
        face_shape = [s for i, s in enumerate(shape[2:]) if i != axis]
        g_shape = [data.draw(st.sampled_from([1, shape[0]]), label="g batch"), 1]
        g_shape += [data.draw(st.sampled_from([1, s]), label="g face") for s in face_shape]
        g = torch.randn(*g_shape, generator=gen, dtype=torch.float64).to(
            data.draw(st.sampled_from([dtype, torch.float64]), label="g dtype")).requires_grad_(g_grad)
        hidden.append((axis, side, g))
    h0 = torch.randn(*shape, generator=gen, dtype=dtype)
    if data.draw(st.booleans(), label="non-contiguous"):
        h0 = h0.transpose(-1, -2).contiguous().transpose(-1, -2) if ndim > 1 else h0[..., ::1]
    w = torch.randn(*shape, generator=gen, dtype=dtype)
    results = []
    for write in (write_hidden_values, _concatenated):
        h = h0.clone().requires_grad_(True)
        for _, _, g in hidden:
            g.grad = None
        out = write(h * 1.0, hidden)  # h * 1.0: a non-leaf input, as a layer's output is
        (out * w).sum().backward()
        results.append((out.detach(), out.is_contiguous(), h.grad, [g.grad for _, _, g in hidden]))
    (out, contiguous, grad_h, grad_g), (ref, ref_contiguous, ref_grad_h, ref_grad_g) = results
    assert torch.equal(out, ref) and contiguous == ref_contiguous
    assert torch.equal(grad_h, ref_grad_h)
    for a, b, (_, _, g) in zip(grad_g, ref_grad_g, hidden):
        if not g_grad:
            assert a is None and b is None
            continue
        # A value's gradient sums the face's gradient over its broadcast nodes; the two paths lay that face out
        # with other strides, so the sum may run in another order: at most n roundings of terms bounded by |w|.
        n = out.numel() // g.numel()
        bound = n * torch.finfo(dtype).eps * w.abs().sum().item()  # summed in the field's dtype
        torch.testing.assert_close(a, b, rtol=0, atol=bound)
