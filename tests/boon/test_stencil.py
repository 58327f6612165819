"""The Neumann stencil is defined once: its public forms agree with the written-out formula and with the package."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import Neumann, boundary_error, enforce_boundary, neumann_stencil, one_sided_derivative
from boon_strategies import TOL

DTYPES = [torch.float32, torch.float64]


def _written_out(u, side, h, order):
    """The stencil as the Neumann docstring states it, nodes read along the last axis."""
    if order == 1:
        return (u[..., 1] - u[..., 0]) / h if side == "left" else (u[..., -1] - u[..., -2]) / h
    if side == "left":
        return -(3.0 * u[..., 0] - 4.0 * u[..., 1] + u[..., 2]) / (2.0 * h)
    return (3.0 * u[..., -1] - 4.0 * u[..., -2] + u[..., -3]) / (2.0 * h)


fields = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(3, 12), st.integers(0, 2**31 - 1),
                   st.sampled_from(DTYPES))


@settings(max_examples=60, deadline=None)
@given(field=fields, side=st.sampled_from(["left", "right"]), order=st.sampled_from([1, 2]),
       h=st.floats(1e-3, 10.0))
def test_one_sided_derivative_is_the_documented_stencil_bit_for_bit(field, side, order, h):
    b, c, n, seed, dtype = field
    u = torch.randn(b, c, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    d = one_sided_derivative(u, side, h, order=order)
    # Negation and multiplication by 1 are exact, so the two forms agree in every bit.
    assert d.dtype == dtype and d.shape == (b, c)
    assert torch.equal(d, _written_out(u, side, h, order))
    # Along another axis: the same numbers.
    assert torch.equal(one_sided_derivative(u.transpose(1, 2), side, h, dim=1, order=order), d)


@settings(max_examples=60, deadline=None)
@given(side=st.sampled_from(["left", "right"]), order=st.sampled_from([1, 2]), n=st.integers(3, 40),
       a=st.floats(-5, 5), length=st.floats(0.1, 10), coeffs=st.lists(st.floats(-3, 3), min_size=3, max_size=3))
def test_stencil_is_exact_on_polynomials_of_its_order(side, order, n, a, length, coeffs):
    x = torch.linspace(a, a + length, n, dtype=torch.float64)
    h = length / (n - 1)
    c0, c1, c2 = coeffs[0], coeffs[1], coeffs[2] if order == 2 else 0.0
    u = (c0 + c1 * x + c2 * x**2)[None]
    xf = x[0] if side == "left" else x[-1]
    exact = c1 + 2 * c2 * xf
    # Rounding of u (|u| <= 3 (1 + m + m^2), m = max |x|) amplified by the stencil's weights (<= 4/h in total).
    m = max(abs(a), abs(a + length))
    tol = 64 * torch.finfo(torch.float64).eps * 3 * (1 + m + m**2) * 8 / h
    assert abs(float(one_sided_derivative(u, side, h, order=order)[0]) - float(exact)) <= tol
    # The weights give the same derivative as a constraint row (the form ProbConserv and solvers take).
    nodes, weights = neumann_stencil(side, h, order)
    row = sum(w * u[0, i] for i, w in zip(nodes, weights))
    assert abs(float(row) - float(exact)) <= tol
    assert len(nodes) == order + 1 and nodes[0] == (0 if side == "left" else -1)


@settings(max_examples=40, deadline=None)
@given(field=fields, order=st.sampled_from([1, 2]), a=st.floats(-2, 2), length=st.floats(0.1, 10))
def test_enforcement_and_error_measure_use_the_public_stencil(field, order, a, length):
    b, c, n, seed, dtype = field
    n = max(n, order + 2)
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, c, n, generator=g, dtype=dtype)
    values = {"left": torch.randn(b, generator=g, dtype=dtype), "right": torch.randn(b, generator=g, dtype=dtype)}
    bc = Neumann(faces=["left", "right"], domain=(a, a + length), order=order)
    out = enforce_boundary(u, bc, values)
    h = ((a + length) - a) / (n - 1)  # h = (b - a) / (N - 1), as the condition computes it
    errors = boundary_error(out, bc, values, per_face=True)
    for side in ("left", "right"):
        d = one_sided_derivative(out, side, h, order=order)
        # boundary_error is exactly |stencil - g| with this stencil (left/right faces own all their nodes here).
        assert torch.equal(errors[f"neumann:{side}0"], (d - values[side][:, None]).abs().max())
    assert float(boundary_error(out, bc, values, relative=True)) <= TOL[dtype]


@pytest.mark.parametrize("call, error, match", [
    (lambda: one_sided_derivative(torch.zeros(2, 5), "top", 0.1), ValueError, "side must be one of"),
    (lambda: one_sided_derivative(torch.zeros(2, 5), "left", 0.0), ValueError, "spacing must be positive"),
    (lambda: one_sided_derivative(torch.zeros(2, 5), "left", "0.1"), TypeError, "spacing must be a real number"),
    (lambda: one_sided_derivative(torch.zeros(2, 5), "left", 0.1, order=3), ValueError, "order must be one of"),
    (lambda: one_sided_derivative(torch.zeros(2, 5), "left", 0.1, dim=2), ValueError, "dim must be an axis"),
    (lambda: one_sided_derivative(torch.zeros(2, 5), "left", 0.1, dim=1.0), TypeError, "dim must be an integer"),
    (lambda: one_sided_derivative(torch.zeros(2, 2), "left", 0.1), ValueError, "u must have at least 3 nodes"),
    (lambda: one_sided_derivative(torch.zeros(2, 5, dtype=torch.long), "left", 0.1), TypeError, "u must be a real"),
    (lambda: one_sided_derivative([0.0, 1.0, 2.0], "left", 0.1), TypeError, "u must be a real"),
    (lambda: neumann_stencil("right", -1.0), ValueError, "spacing must be positive"),
    (lambda: neumann_stencil("up", 1.0), ValueError, "side must be one of"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
