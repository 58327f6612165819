"""Bad input gets a ValueError/TypeError naming the argument and what was expected, not a deep torch error."""


import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import BOONFNO, BoundarySpec, Dirichlet, Neumann, Periodic, boundary_error, enforce_boundary
from boon_ext.enforcement import _representable
from boon_strategies import call_values, conditions_1d



def _model(bc=Dirichlet(left=0.0, right=1.0), in_channels=1):
    torch.manual_seed(0)
    return BOONFNO(n_modes=(4,), in_channels=in_channels, out_channels=1, hidden_channels=4, boundary=bc,
                   kernel_correction=True)


@pytest.mark.parametrize("x, error, match", [
    (torch.randn(0, 1, 16), ValueError, "empty batch"),
    (torch.randn(2, 1, 0), ValueError, r"x must have at least 2 nodes along spatial axis 0 .*got 0"),
    (torch.randn(2, 3, 16), ValueError, r"x must have in_channels=1 channels.*got shape \(2, 3, 16\)"),
    (torch.randn(2, 1, 16, dtype=torch.float64), TypeError,
     r"x must have the dtype .*got torch.float64.*model.double\(\)"),
    (torch.randn(2, 1, 16, dtype=torch.complex64), TypeError, "x must be a real floating-point tensor"),
    (torch.ones(2, 1, 16, dtype=torch.long), TypeError, "x must be a real floating-point tensor"),
])
def test_bad_inputs_are_named(x, error, match):
    with pytest.raises(error, match=match):
        _model()(x)


def test_zero_length_axis_without_a_condition_on_it():
    model = BOONFNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=4, boundary=Dirichlet(left=0.0))
    with pytest.raises(ValueError, match="spatial axis of length 0"):
        model(torch.randn(1, 1, 0, 8))


def test_periodic_on_one_node():
    with pytest.raises(ValueError, match=r"at least 2 nodes along spatial axis 0 \(a periodic condition"):
        _model(Periodic())(torch.randn(2, 1, 1))


@pytest.mark.parametrize("u, error, match", [
    (torch.zeros(2, 1, 16, dtype=torch.long), TypeError, "u must be a real floating-point tensor, got dtype torch.int64"),
    ([[0.0] * 16], TypeError, "u must be a torch.Tensor, got list"),
    (torch.zeros(2, 1, 16, dtype=torch.complex64), TypeError, "u must be a real floating-point tensor"),
    (torch.zeros(2, 16), ValueError, r"u must have shape \(batch, channels, \*spatial\) with at least one spatial"),
])
def test_boundary_error_and_enforce_boundary_check_u(u, error, match):
    with pytest.raises(error, match=match):
        boundary_error(u, Dirichlet(left=0.0))
    with pytest.raises(error, match=match):
        enforce_boundary(u, [Dirichlet(left=0.0)])


@settings(max_examples=20)
@given(data=st.data(), conditions=conditions_1d(), n=st.integers(4, 20), seed=st.integers(0, 10**6))
def test_enforce_boundary_takes_a_list_of_conditions(data, conditions, n, seed):
    u = torch.randn(3, 2, n, generator=torch.Generator().manual_seed(seed))
    spec = BoundarySpec(conditions, 1)
    values = call_values(data.draw, spec, 3, 2)
    assert torch.equal(enforce_boundary(u, conditions, values), enforce_boundary(u, spec, values))


@settings(max_examples=10)
@given(data=st.data(), seed=st.integers(0, 10**6))
def test_face_values_given_positionally(data, seed):
    model = _model([Dirichlet(faces=["right"]), Neumann(left=0.5)])
    x = torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(seed))
    values = call_values(data.draw, model.boundary_spec, 2, 1)
    assert torch.equal(model(x, values), model(x, boundary_values=values))
    with pytest.raises(TypeError, match="pass the face values once"):
        model(x, values, boundary_values=values)


def test_values_beyond_the_output_dtype_are_refused():
    x = torch.randn(2, 1, 16)
    with pytest.raises(ValueError, match="not finite in the output dtype torch.float32"):
        _model(Dirichlet(left=1e39))(x)
    assert torch.equal(_model(Dirichlet(left=1e38))(x)[:, 0, 0], torch.full((2,), 1e38))
    model = _model(Dirichlet(faces=["left"]))
    with pytest.raises(ValueError, match=r"boundary_values\['left'\] .*range of the output dtype torch.float32"):
        model(x, boundary_values={"left": torch.full((2,), 1e39, dtype=torch.float64)})
    with pytest.raises(ValueError, match=r"NaN or inf"):
        model(x, boundary_values={"left": torch.tensor([0.0, float("nan")])})
    # float64 holds the same value
    assert torch.equal(_model(Dirichlet(left=1e39)).double()(x.double())[:, 0, 0], torch.full((2,), 1e39, dtype=torch.float64))


@given(v=st.floats(allow_nan=False, allow_infinity=False) | st.floats(3.40282e38, 3.40283e38) | st.floats(
    -3.40283e38, -3.40282e38))
def test_representable_agrees_with_torch_rounding(v):
    for dtype in (torch.float32, torch.float64):
        assert _representable(v, dtype) == bool(torch.isfinite(torch.tensor(v, dtype=torch.float64).to(dtype)))
