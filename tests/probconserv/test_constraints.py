"""Quadrature weights, constraint builders and the conserved total."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pc_reference import random_grid

from probconserv_ext import (
    LinearConstraint,
    conservation_constraint,
    conserved_total,
    flatten_field,
    quadrature_weights,
    stack_constraints,
    unflatten_field,
    value_constraint,
)

seeds = st.integers(0, 2**31 - 1)
# float64 sums of n <= 60 terms of size O(10): round-off well below 1e-11.
TOL = 1e-11


def grid_of(seed, n):
    return random_grid(torch.Generator().manual_seed(seed), n)


@given(seeds, st.integers(2, 60), st.floats(-3, 3), st.floats(-3, 3))
def test_trapezoid_exact_for_linear_on_nonuniform_grid(seed, n, a, c):
    x = grid_of(seed, n)
    w = quadrature_weights(x)
    exact = a * (x[-1] - x[0]) + 0.5 * c * (x[-1] ** 2 - x[0] ** 2)
    assert abs(float(w @ (a + c * x) - exact)) <= TOL * (1 + abs(float(exact)))
    # Matches numpy's trapezoid rule on the same grid.
    f = np.sin(x.numpy())
    assert abs(float(w @ torch.as_tensor(f)) - np.trapezoid(f, x.numpy())) <= TOL


@given(seeds, st.integers(2, 60))
def test_rectangle_is_left_riemann_sum(seed, n):
    x = grid_of(seed, n)
    w = quadrature_weights(x, rule="rectangle")
    assert abs(float(w.sum() - (x[-1] - x[0]))) <= TOL
    f = torch.cos(x)
    assert abs(float(w @ f - (torch.diff(x) * f[:-1]).sum())) <= TOL


@pytest.mark.parametrize("rule", ["trapezoid", "rectangle"])
@pytest.mark.parametrize("n", [16, 64])
def test_periodic_grid_integrates_trig_polynomial(rule, n):
    L = 2 * np.pi
    x = torch.linspace(0, L, n + 1, dtype=torch.float64)[:-1]
    w = quadrature_weights(x, rule=rule, period=L)
    assert abs(float(w.sum()) - L) <= TOL
    # Uniform periodic quadrature is exact for 1 + sin(k x) with k < n.
    assert abs(float(w @ (1 + torch.sin(3 * x))) - L) <= TOL


def test_rectangle_converges_first_order_trapezoid_second_order():
    errs = {}
    for rule in ("rectangle", "trapezoid"):
        e = []
        for n in (33, 65, 129):
            x = torch.linspace(0, 1, n, dtype=torch.float64) ** 1.5  # non-uniform
            e.append(abs(float(quadrature_weights(x, rule=rule) @ torch.exp(x)) - (np.e - 1)))
        errs[rule] = np.log2(e[0] / e[-1]) / 2
    assert 0.8 < errs["rectangle"] < 1.2
    assert 1.8 < errs["trapezoid"] < 2.2


@given(seeds, st.integers(2, 9), st.integers(2, 9), st.integers(1, 6), st.sampled_from(["trapezoid", "rectangle"]))
def test_tensor_product_weights(seed, nx, ny, nz, rule):
    gen = torch.Generator().manual_seed(seed)
    axes = (random_grid(gen, nx), random_grid(gen, ny), random_grid(gen, max(nz, 2)))
    w3 = quadrature_weights(axes, rule=rule)
    w1 = [quadrature_weights(a, rule=rule) for a in axes]
    f = [torch.randn(len(a), generator=gen, dtype=torch.float64) for a in axes]
    field = f[0][:, None, None] * f[1][None, :, None] * f[2][None, None, :]  # separable: integral factorizes
    expected = float(np.prod([float(wi @ fi) for wi, fi in zip(w1, f)]))
    got = float(w3 @ flatten_field(field[None], 3)[0])
    assert abs(got - expected) <= TOL * (1 + abs(expected)) * 10
    assert torch.equal(unflatten_field(flatten_field(field[None], 3), field.shape)[0], field)
    c = conservation_constraint(axes[:2], total=torch.zeros(4), rule=rule)
    assert c.G.shape == (1, nx * ny) and c.b.shape == (4, 1)


@pytest.mark.parametrize(
    "grid, match",
    [
        (torch.tensor([0.0, 0.5, 0.4, 1.0]), "strictly increasing"),
        (torch.tensor([0.0, 0.5, 0.5, 1.0]), "strictly increasing"),
        (torch.tensor([0.0, float("nan"), 1.0]), "finite"),
        (torch.tensor([0.0, float("inf")]), "finite"),
        (torch.tensor([1.0]), "at least 2"),
        (torch.zeros(2, 3), "1-D"),
        ((torch.linspace(0, 1, 5), torch.tensor([0.0, 2.0, 1.0])), r"grid\[1\]"),
    ],
)
def test_bad_grids_raise(grid, match):
    with pytest.raises(ValueError, match=match):
        quadrature_weights(grid)


def test_bad_rule_and_period():
    with pytest.raises(ValueError, match="rule"):
        quadrature_weights(torch.linspace(0, 1, 5), rule="simpson")
    with pytest.raises(ValueError, match="period"):
        quadrature_weights(torch.linspace(0, 1, 5), period=0.5)
    with pytest.raises(TypeError, match="grid"):
        quadrature_weights("abc")


@given(seeds, st.integers(2, 40), st.floats(-2, 2), st.floats(-2, 2), st.floats(-2, 2))
def test_conserved_total_exact_for_linear_flux(seed, T, b0, p, q):
    t = grid_of(seed, T)
    flux = p + q * t  # trapezoid in time is exact for a linear net inflow
    b = conserved_total(t, b0, flux)
    exact = b0 + p * (t - t[0]) + 0.5 * q * (t**2 - t[0] ** 2)
    torch.testing.assert_close(b, exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(conserved_total(t, b0, flux_left=flux + 1, flux_right=torch.ones_like(t)), b)


def test_conserved_total_pme_converges():
    # PME with m = 2 on [0, 1]: total m^(1+1/m) t^(1+1/m) / (m+1) (NOTES section 2). The only flux is the inflow
    # at x = 0, which therefore equals the time derivative of the exact total.
    m = 2.0
    total = lambda t: m ** (1 + 1 / m) * t ** (1 + 1 / m) / (m + 1)
    inflow = lambda t: m ** (1 + 1 / m) * (1 + 1 / m) * t ** (1 / m) / (m + 1)
    errs = []
    for T in (41, 81):
        t = torch.linspace(0.5, 1.0, T, dtype=torch.float64)
        errs.append(float((conserved_total(t, total(t[0]), inflow) - total(t)).abs().max()))
    assert errs[1] < errs[0] / 3.5  # second order


def test_conserved_total_errors():
    t = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="times"):
        conserved_total(torch.tensor([0.0, 1.0, 0.5]), 0.0, torch.zeros(3))
    with pytest.raises(ValueError, match="net_inflow"):
        conserved_total(t, 0.0, torch.zeros(4))
    with pytest.raises(ValueError, match="required"):
        conserved_total(t, 0.0)
    with pytest.raises(ValueError, match="not both"):
        conserved_total(t, 0.0, torch.zeros(5), flux_left=torch.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        conserved_total(t, float("nan"), torch.zeros(5))


def test_linear_constraint_and_stacking():
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    mass = conservation_constraint(x, total=torch.arange(4.0))
    energy = LinearConstraint(torch.ones(1, 11, dtype=torch.float64), torch.tensor([[2.0]], dtype=torch.float64))
    walls = value_constraint(11, [0, -1], torch.tensor([1.0, 0.0], dtype=torch.float64), dtype=torch.float64)
    c = stack_constraints(mass, energy, walls)
    assert c.G.shape == (4, 11) and c.b.shape == (4, 4)
    assert torch.equal(c.b[:, 0], torch.arange(4.0, dtype=torch.float64))
    assert torch.equal(c.b[:, 1:], torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64).expand(4, 3))
    assert torch.equal(c.G[2], torch.eye(11, dtype=torch.float64)[0]) and torch.equal(c.G[3, -1:], torch.ones(1))
    u = torch.rand(4, 11, dtype=torch.float64)
    torch.testing.assert_close(c.residual(u), u @ c.G.T - c.b)


def test_constraint_errors():
    with pytest.raises(ValueError, match="zero row"):
        LinearConstraint(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"G must have shape"):
        LinearConstraint(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="G must be finite"):
        LinearConstraint(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"b must have shape \(\.\.\., m\)"):
        LinearConstraint(torch.ones(2, 5), torch.zeros(3))
    with pytest.raises(ValueError, match="acts on"):
        stack_constraints(LinearConstraint(torch.ones(1, 5)), LinearConstraint(torch.ones(1, 6)))
    with pytest.raises(ValueError, match="either every"):
        stack_constraints(LinearConstraint(torch.ones(1, 5), 1.0), LinearConstraint(torch.ones(1, 5)))
    with pytest.raises(TypeError, match="LinearConstraint"):
        stack_constraints(torch.ones(1, 5))
    with pytest.raises(ValueError, match="repeat"):
        value_constraint(5, [0, 5 - 5])
    with pytest.raises(ValueError, match="index"):
        value_constraint(5, [7])
    with pytest.raises(ValueError, match="total must be finite"):
        conservation_constraint(torch.linspace(0, 1, 4), total=float("inf"))


@pytest.mark.parametrize(
    "index",
    [[1.7], True, [True], 2.0, torch.tensor([1.0]), torch.tensor(True), torch.tensor([True, False]),
     np.array([1.0]), np.bool_(True), [np.bool_(False)]],
)
def test_value_constraint_index_must_be_integer(index):
    # bool and float indices used to be read as node 1 (or truncated) silently.
    with pytest.raises(TypeError, match="index must be an integer"):
        value_constraint(5, index, 1.0)


@pytest.mark.parametrize("index", [2, np.int64(2), torch.tensor(2), [2], (2,), torch.tensor([2]), np.array([2])])
def test_value_constraint_accepts_integer_indices(index):
    c = value_constraint(5, index, 1.0)
    assert torch.nonzero(c.G[0]).flatten().tolist() == [2]


def test_value_constraint_node_count_must_be_integer():
    with pytest.raises(TypeError, match="n must be an integer"):
        value_constraint(5.0, [1], 1.0)
    with pytest.raises(TypeError, match="n must be an integer"):
        value_constraint(True, [0], 1.0)
    with pytest.raises(ValueError, match="n must be a positive"):
        value_constraint(0, [0], 1.0)
