"""Property tests of BOONFNO / BOONTFNO in 1-D: exact boundary conditions, gradients, identity, refusals."""


import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import FNO, TFNO

from boon_ext import BOONFNO, BOONTFNO, BoundaryAccuracyWarning, BoundarySpec, Dirichlet, Neumann, Periodic, boundary_error
from boon_strategies import TOL, call_values, conditions_1d, fno_kwargs, randomize



@settings(max_examples=30)
@given(data=st.data(), kw=fno_kwargs(), cls=st.sampled_from([BOONFNO, BOONTFNO]),
       dtype=st.sampled_from([torch.float32, torch.float64]), res=st.integers(16, 512),
       batch=st.integers(1, 3), correction=st.booleans())
def test_output_satisfies_conditions_exactly(data, kw, cls, dtype, res, batch, correction):
    conditions = data.draw(conditions_1d())
    if cls is BOONTFNO:
        kw.pop("factorization"), kw.pop("rank"), kw.pop("separable")
    model = randomize(cls(**kw, boundary=conditions, kernel_correction=correction), data.draw(st.integers(0, 10**6)))
    if dtype == torch.float64:
        model = model.double()
    x = torch.randn(batch, kw["in_channels"], res, dtype=dtype)
    values = call_values(data.draw, model.boundary_spec, batch, kw["out_channels"], dtype=dtype)
    y = model(x, boundary_values=values)
    assert y.shape == (batch, kw["out_channels"], res) and y.dtype == dtype
    assert torch.isfinite(y).all()
    err = boundary_error(y, conditions, values, relative=True)
    assert err <= TOL[dtype], f"relative boundary error {err:.3e}"


@settings(max_examples=15)
@given(data=st.data(), kw=fno_kwargs(max_width=8), res=st.integers(16, 128), correction=st.booleans())
def test_gradients_are_finite_and_reach_every_parameter_used(data, kw, res, correction):
    conditions = data.draw(conditions_1d())
    model = randomize(BOONFNO(**kw, boundary=conditions, kernel_correction=correction),
                      data.draw(st.integers(0, 10**6)))
    x = torch.randn(2, kw["in_channels"], res, requires_grad=True)
    values = call_values(data.draw, model.boundary_spec, 2, kw["out_channels"])
    for v in values.values():
        v.requires_grad_(True)
    y = model(x, boundary_values=values)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    spectral = [p for n, p in model.named_parameters() if "convs" in n and "weight" in n]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in spectral)


@settings(max_examples=15)
@given(kw=fno_kwargs(), res=st.integers(16, 256), seed=st.integers(0, 10**6), tfno=st.booleans())
def test_no_boundary_is_the_base_model_bit_for_bit(kw, res, seed, tfno):
    torch.manual_seed(seed)
    if tfno:
        kw.pop("factorization"), kw.pop("rank"), kw.pop("separable")
        base = TFNO(**kw)
    else:
        base = FNO(**kw)
    wrapped = BOONFNO.from_fno(base, boundary=None)
    x = torch.randn(2, kw["in_channels"], res)
    assert torch.equal(base(x), wrapped(x))


@settings(max_examples=10)
@given(kw=fno_kwargs(), res=st.integers(16, 256), seed=st.integers(0, 10**6))
def test_output_only_ablation_changes_nothing_but_the_faces(kw, res, seed):
    torch.manual_seed(seed)
    base = FNO(**kw)
    wrapped = BOONFNO.from_fno(base, boundary=[Dirichlet(left=1.0), Neumann(right=0.0)], kernel_correction=False)
    x = torch.randn(2, kw["in_channels"], res)
    torch.testing.assert_close(wrapped(x)[..., 1:-1], base(x)[..., 1:-1], rtol=1e-5, atol=1e-6)


def test_kernel_correction_changes_the_interior():
    torch.manual_seed(0)
    base = FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8)
    with pytest.warns(BoundaryAccuracyWarning, match="finetune_kernel_correction"):
        wrapped = BOONFNO.from_fno(base, boundary=Dirichlet(left=0.0, right=0.0), kernel_correction=True)
    x = torch.randn(2, 1, 64)
    assert (wrapped(x)[..., 1:-1] - base(x)[..., 1:-1]).abs().max() > 1e-4


_LAYER_SETTINGS = [
    (dict(norm="instance_norm"), "norm"),
    (dict(norm="group_norm"), "norm"),
    (dict(domain_padding=0.25), "domain_padding"),
    (dict(resolution_scaling_factor=2), "resolution_scaling_factor"),
    (dict(fno_block_precision="mixed"), "fno_block_precision"),
    (dict(preactivation=True), "preactivation"),
    (dict(stabilizer="tanh"), "stabilizer"),
]


@pytest.mark.parametrize("kwargs, match", _LAYER_SETTINGS + [(dict(complex_data=True), "complex_data")])
def test_per_layer_steps_refuse_settings_they_cannot_correct(kwargs, match):
    bc = Dirichlet(left=0.0)
    for setting in (dict(kernel_correction=True), dict(hidden_values=True)):
        with pytest.raises(ValueError, match=match):
            BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, boundary=bc, **setting, **kwargs)
    base = FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, **kwargs)
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundaryAccuracyWarning)
        BOONFNO.from_fno(base, boundary=bc, kernel_correction=True)
    if match != "complex_data":
        model = BOONFNO.from_fno(base, boundary=bc)
        with pytest.raises(ValueError, match=match):
            model.kernel_correction = True  # the setter checks as the constructor does
        assert model.kernel_correction is False


def test_complex_data_is_refused_with_output_enforcement_too():
    with pytest.raises(ValueError, match="complex_data must be False .*real fields"):
        BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, boundary=Dirichlet(left=0.0),
                complex_data=True)


# fno_block_precision="mixed" is left out: neuralop's own FNO does not run it on CPU (no half-precision FFT).
@pytest.mark.parametrize("kwargs, _", [c for c in _LAYER_SETTINGS if "fno_block_precision" not in c[0]])
def test_output_enforcement_takes_every_layer_setting(kwargs, _):
    # Output enforcement needs nothing from inside: neuralop's own forward pass, then exact faces.
    torch.manual_seed(0)
    base = FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, **kwargs)
    bc = [Dirichlet(left=1.5), Neumann(right=-0.5)]
    model = BOONFNO.from_fno(base, boundary=bc)
    x = torch.randn(3, 1, 32)
    with torch.no_grad():
        u, plain = model(x), base(x)
    assert u.shape == plain.shape
    assert torch.equal(u[..., 1:-1], plain[..., 1:-1])
    assert boundary_error(u, bc, relative=True) < 8 * torch.finfo(torch.float32).eps


def _model(boundary, out_channels=2):
    return BOONFNO(n_modes=(8,), in_channels=1, out_channels=out_channels, hidden_channels=8, boundary=boundary)


@pytest.mark.parametrize("values, match", [
    (None, r"boundary_values\['right'\] is missing"),
    ({}, r"boundary_values\['right'\] is missing"),
    ({"right": torch.tensor([float("nan"), 0.0, 1.0])}, "NaN or inf"),
    ({"right": torch.tensor([float("inf"), 0.0, 1.0])}, "NaN or inf"),
    ({"right": torch.zeros(2)}, "batch size 3"),
    ({"right": torch.zeros(3, 5)}, r"\(batch,\) or \(batch, 2\)"),
    ({"right": torch.zeros(3, 2, 4)}, "shape"),
    ({"right": [0.0, 1.0, 2.0]}, "torch.Tensor"),
    ({"right": torch.zeros(3, dtype=torch.long)}, "floating-point"),
    ({"right": torch.zeros(3), "rigth": torch.zeros(3)}, "no face reads"),
])
def test_bad_boundary_values_raise_naming_the_argument(values, match):
    model = _model([Dirichlet(left=0.0), Neumann(faces=["right"])])
    with pytest.raises((ValueError, TypeError), match=match):
        model(torch.randn(3, 1, 32), boundary_values=values)


@pytest.mark.parametrize("boundary, match", [
    ({"type": "dirichlet", "left": float("nan")}, "finite"),
    ({"type": "dirichlet", "left": [1.0, 2.0, 3.0], "channels": [0, 1]}, "per-channel"),
    ({"type": "robin", "left": 0.0}, "type"),
    (Dirichlet(left=0.0, dim=-2), "spatial axis"),
    (Dirichlet(left=0.0, channels=[5]), "channel 5"),
    ([Dirichlet(left=0.0), Neumann(left=1.0)], "conflict"),
    ([Periodic(), Dirichlet(left=0.0)], "conflict"),
    ([Dirichlet(faces=["left"]), Dirichlet(faces=["left"], channels=[1], keys={"left": "x"}), Neumann(faces=["right"], keys={"right": "x"})], "conflict|key"),
    ("dirichlet", "boundary must be"),
])
def test_bad_conditions_raise(boundary, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _model(boundary)


def test_too_few_nodes_and_wrong_input_rank_raise():
    model = _model(Neumann(left=0.0))
    with pytest.raises(ValueError, match="at least 4 nodes"):
        model(torch.randn(1, 1, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.randn(1, 32))
    with pytest.raises(ValueError, match="output_shape"):
        model(torch.randn(1, 1, 32), output_shape=(16,))


def test_per_channel_constants_and_channel_subsets():
    bc = [Dirichlet(left=[1.0, -2.0]), Neumann(right=0.5, channels=[1]), Dirichlet(right=3.0, channels=[0])]
    model = randomize(_model(bc), 3)
    y = model(torch.randn(2, 1, 40))
    assert torch.allclose(y[:, 0, 0], torch.tensor(1.0)) and torch.allclose(y[:, 1, 0], torch.tensor(-2.0))
    assert torch.allclose(y[:, 0, -1], torch.tensor(3.0))
    h = 1.0 / 39
    slope = (3 * y[:, 1, -1] - 4 * y[:, 1, -2] + y[:, 1, -3]) / (2 * h)
    torch.testing.assert_close(slope, torch.full_like(slope, 0.5), rtol=0, atol=1e-3)
    assert boundary_error(y, BoundarySpec(bc, 1), relative=True) < 1e-5


@pytest.mark.parametrize("n_modes, shape, bc", [
    ((8,), (40,), Dirichlet(left=0.0, right=1.0)),
    ((6, 6), (12, 10), [Dirichlet(left=0.0, dim=-2), Neumann(right=0.5, dim=-1)]),
])
def test_operator_cache_follows_weight_updates(n_modes, shape, bc):
    torch.manual_seed(0)
    # The cache holds the kernel correction's weight-derived operators.
    model = BOONFNO(n_modes=n_modes, in_channels=1, out_channels=1, hidden_channels=6, boundary=bc,
                    kernel_correction=True)
    x = torch.randn(2, 1, *shape)
    with torch.no_grad():
        cached = model(x)
        cached_again = model(x)
    assert torch.equal(cached, cached_again)
    torch.testing.assert_close(cached, model(x), rtol=1e-6, atol=1e-6)  # autograd on: no cache
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).square().mean().backward()
    opt.step()  # in-place update bumps the version counters
    with torch.no_grad():
        after = model(x)
    torch.testing.assert_close(after, model(x), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(after, cached)


@pytest.mark.parametrize("act", [torch.tanh, torch.nn.functional.relu, torch.nn.functional.gelu])
def test_activations_that_save_their_output_still_differentiate(act):
    torch.manual_seed(0)
    # With the correction the activations skip the constrained faces (a custom path for GELU, a masked select
    # for the others).
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=6, non_linearity=act,
                    boundary=Dirichlet(left=0.0, right=0.0), kernel_correction=True)
    x = torch.randn(2, 1, 32, requires_grad=True)
    model(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
