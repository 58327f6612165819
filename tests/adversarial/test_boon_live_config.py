"""Class: the wrapper takes the wrapped model's LIVE configuration, not its constructor arguments (issue 28).

neuralop lets a user change a model after construction: ``fno.n_modes = ...`` (incremental training), one layer's
``n_modes``, ``fft_norm``, the activation of the Fourier blocks. ``BOONFNO.from_fno`` and the checkpoints of a BOON
model must reproduce what the model computes then, not what its constructor built.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import FNO, TFNO

from boon_ext import BOONFNO, BOONTFNO, Dirichlet, Neumann, Periodic, boundary_error

TOL32 = 1e-5  # relative boundary residual in float32 (a few ulps of the constraint's terms, with margin)


def _randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5
            if p.is_complex():
                r = torch.complex(r, torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
            p.copy_(r.to(p.dtype))
    return model


def _interior_gap(base, wrapped, x, values):
    with torch.no_grad():
        p, w = base(x), wrapped(x, boundary_values=values)
    return float((w - p)[..., 1:-1].abs().max()), float(p.abs().max()), w


@settings(max_examples=12, deadline=None)
@given(modes=st.integers(6, 12), new=st.data(), tfno=st.booleans(), seed=st.integers(0, 10**6),
       per_layer=st.booleans(), norm=st.sampled_from(["forward", "backward", "ortho"]),
       act=st.sampled_from([None, "relu", "tanh"]), positional=st.booleans())
def test_from_fno_after_live_changes_reproduces_the_interior(modes, new, tfno, seed, per_layer, norm, act, positional):
    """Class 2 (live configuration): after neuralop's setters, the wrapper's interior is the model's own."""
    base = (TFNO if tfno else FNO)(n_modes=(modes,), in_channels=1, out_channels=1, hidden_channels=6, n_layers=3,
                                   positional_embedding="grid" if positional else None)
    _randomize(base, seed)
    base.n_modes = (new.draw(st.integers(2, modes - 1)),)  # incremental training's setter
    if per_layer:  # one layer's modes changed on its own
        base.fno_blocks.convs[1].n_modes = (new.draw(st.integers(2, modes)),)
    for conv in base.fno_blocks.convs:
        conv.fft_norm = norm
    if act is not None:
        base.fno_blocks.non_linearity = {"relu": F.relu, "tanh": torch.tanh}[act]
    conditions = [Dirichlet(left=0.5), Neumann(faces=["right"])]
    wrapped = (BOONTFNO if tfno else BOONFNO).from_fno(base, conditions)
    x = torch.randn(3, 1, 24, generator=torch.Generator().manual_seed(seed))
    values = {"right": torch.randn(3, generator=torch.Generator().manual_seed(seed + 1))}
    gap, scale, w = _interior_gap(base, wrapped, x, values)
    # float32 round-off of the layers' O(1) intermediates (the modes' differences were 1e-3 to 3e-2 before)
    assert gap <= 1e-5 * max(scale, 1.0), (gap, scale)
    assert float(boundary_error(w, conditions, values, relative=True)) < TOL32
    assert tuple(wrapped.n_modes) == tuple(base.n_modes)
    assert [list(c.n_modes) for c in wrapped.fno_blocks.convs] == [list(c.n_modes) for c in base.fno_blocks.convs]


def test_from_fno_after_n_modes_setter_issue_instance():
    """Class 2 (live configuration), the reported instance: fno.n_modes = (4,) then from_fno (was 4.3e-3 off)."""
    torch.manual_seed(0)
    base = FNO(n_modes=(16,), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2)
    base.n_modes = (4,)
    wrapped = BOONFNO.from_fno(base, Periodic())
    x = torch.randn(4, 1, 64)
    gap, scale, _ = _interior_gap(base, wrapped, x, None)
    assert gap <= 1e-5 * scale, (gap, scale)


def test_boon_n_modes_setter_is_recorded_and_rebuilds(tmp_path):
    """Class 2 (live configuration): a BOON model's n_modes setter is checked and its checkpoint rebuilds it."""
    torch.manual_seed(0)
    model = BOONFNO(n_modes=(12,), in_channels=1, out_channels=1, hidden_channels=6, n_layers=2,
                    boundary=[Dirichlet(left=1.0, right=0.0)])
    _randomize(model, 3)
    x = torch.randn(2, 1, 32)
    before = model(x)
    model.n_modes = (5,)
    after = model(x)
    assert not torch.allclose(before, after)  # the modes did change what it computes
    assert model._init_kwargs["n_modes"] == (5,)
    # the state dict's record rebuilds the live model (the weights keep the constructor's size)
    again = BOONFNO.from_fno(model, model.boundary)
    torch.testing.assert_close(again(x), after, rtol=0, atol=0)
    model.save_checkpoint(tmp_path, "m")
    loaded = BOONFNO.from_checkpoint(tmp_path, "m")
    assert tuple(loaded.n_modes) == (5,)
    torch.testing.assert_close(loaded(x), after, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("value, error, match", [
    ((True,), TypeError, r"n_modes\[0\] must be an integer"),
    (("4",), TypeError, r"n_modes\[0\] must be an integer"),
    ((4.0,), TypeError, r"n_modes\[0\] must be an integer"),
    ((0,), ValueError, r"n_modes\[0\] must be an integer >= 1"),
    ((4, 4), ValueError, "one entry per spatial dim"),
    ((40,), ValueError, "n_modes must fit the Fourier weights"),
    ("4", TypeError, "n_modes must be a tuple"),
])
def test_n_modes_setter_refuses_bad_values_and_leaves_the_model(value, error, match):
    """Class 4 (validation on attribute setters): n_modes set after construction is checked like the constructor's."""
    model = BOONFNO(n_modes=(12,), in_channels=1, out_channels=1, hidden_channels=4, boundary=Dirichlet(left=0.0))
    with pytest.raises(error, match=match):
        model.n_modes = value
    assert tuple(model.n_modes) == (12,) and [list(c.n_modes) for c in model.fno_blocks.convs] == [[7], [7], [7], [7]]


def test_from_fno_refuses_a_module_tree_changed_after_construction():
    """Class 2 (live configuration): a submodule replaced after construction is refused, not silently rebuilt."""
    base = FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2)
    base.positional_embedding = torch.nn.Identity()
    with pytest.raises(ValueError, match="module tree"):
        BOONFNO.from_fno(base, Dirichlet(left=0.0))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6), first=st.integers(1, 6), tfno=st.booleans())
def test_checkpoint_after_incremental_first_layer_modes_rebuilds_the_model(tmp_path_factory, seed, first, tfno):
    """Class 2 (live configuration) on the checkpoint path: neuralop's incremental training sets the FIRST
    layer's modes alone (``fno_blocks.convs[0].n_modes = ...``); the checkpoint must rebuild that model."""
    cls = BOONTFNO if tfno else BOONFNO
    model = _randomize(cls(n_modes=(12,), in_channels=1, out_channels=1, hidden_channels=6, n_layers=3,
                           boundary=[Dirichlet(left=1.0), Neumann(right=0.0)]), seed)
    model.fno_blocks.convs[0].n_modes = (2 * first,)  # as neuralop's IncrementalFNO callback does
    x = torch.randn(2, 1, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x)
    folder = tmp_path_factory.mktemp("ckpt")
    model.save_checkpoint(folder, "m")
    loaded = cls.from_checkpoint(folder, "m")
    assert [list(c.n_modes) for c in loaded.fno_blocks.convs] == [list(c.n_modes) for c in model.fno_blocks.convs]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)
    # and from_fno of the same model
    with torch.no_grad():
        torch.testing.assert_close(cls.from_fno(model, model.boundary)(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("value, error, match", [
    ("7", TypeError, "layer_modes must be None or one tuple"),
    ([(7,)], TypeError, "layer_modes must be None or one tuple"),
    ([(7,), (True,)], TypeError, r"layer_modes\[1\]\[0\] must be an integer"),
    ([(7,), (8,)], ValueError, r"layer_modes\[1\] must fit the layer's Fourier weights"),
])
def test_layer_modes_are_checked(value, error, match):
    """Class 4 (validation at construction): the per-layer modes a checkpoint records are checked when read."""
    with pytest.raises(error, match=match):
        BOONFNO(n_modes=(12,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2,
                boundary=Dirichlet(left=0.0), layer_modes=value)


def test_layer_modes_beyond_the_weights_are_refused_at_the_call():
    """Class 4 (a setting made by another path fails later naming something else): neuralop's per-layer setter
    accepts modes the weights do not hold; the call names the layer and the limit."""
    model = BOONFNO(n_modes=(12,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2,
                    boundary=Dirichlet(left=0.0))
    model.fno_blocks.convs[1].n_modes = (14,)  # keeps 14 // 2 + 1 = 8 > 7
    with pytest.raises(ValueError, match=r"fno_blocks.convs\[1\].n_modes must fit the layer's Fourier weights"):
        model(torch.randn(1, 1, 32))
