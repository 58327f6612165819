"""Exact solutions of the ProbConserv test problems: totals, boundary values, PDE residuals, shocks."""

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from probconserv_ext.problems import (
    PROBLEMS,
    AdvectionProblem,
    DiffusionProblem,
    PorousMediumProblem,
    StefanProblem,
    get_problem,
    stefan_constants,
    trapezoid_weights,
)

NAMES = sorted(PROBLEMS)


def _param_strategy(problem):
    """Parameters around the training range and the test parameters (extrapolation included)."""
    lo, hi = problem.train_range
    allowed = {
        "diffusion": (0.1, 8.0),
        "pme": (0.5, 8.0),
        "stefan": (0.45, 0.95),  # below ~0.42 the shock leaves [0, 1] before t_final
        "advection": (0.1, 2.0),
    }[problem.name]
    return st.floats(min(lo, allowed[0]), max(hi, allowed[1]))


def _max_time(problem, param):
    if problem.name == "stefan":
        return min(problem.t_final, 1.0 / stefan_constants(param)[1] ** 2)
    if problem.name == "advection":
        return min(problem.t_final, 1.0 / param)
    return problem.t_final


# ---------------------------------------------------------------- Stefan constants
@given(p=st.floats(0.02, 0.98))
def test_stefan_constant_solves_transcendental_equation(p):
    z1, alpha, c1 = stefan_constants(p)
    rhs = (1 - p) / np.sqrt(np.pi)
    lhs = p * erf(z1) * z1 * np.exp(z1**2)
    # brentq to rtol 4 eps on z1; the residual's derivative is O(1)-O(10) here: 1e-12 is safe in float64
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, rhs)
    assert alpha == pytest.approx(2 * z1, rel=1e-15)
    assert c1 * erf(alpha / 2) == pytest.approx(1 - p, rel=1e-13)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.2, 1.5, float("nan"), float("inf")])
def test_stefan_constants_reject_bad_p(p):
    with pytest.raises(ValueError, match="p_star"):
        stefan_constants(p)


def test_stefan_constants_monotone_in_p():
    # a lower phase-change level lets the liquid advance faster: alpha decreases in p*
    alphas = [stefan_constants(p)[1] for p in np.linspace(0.45, 0.9, 10)]
    assert np.all(np.diff(alphas) < 0)


# ---------------------------------------------------------------- conserved totals
PME_CONSTANT = 1.0  # measured worst ratio 0.39 over 3000 random (m, t, n): a factor 2.5 margin


def _total_error_bound(problem, param, t, h):
    """Trapezoid error bound for the exact solution on a uniform grid of spacing h."""
    if problem.name == "diffusion":
        # trapezoid integrates a full period of sin exactly; round-off only
        return 1e-13
    if problem.name == "pme":
        # (t - x)^(1/m) near the front: error O(h^(1 + 1/m)), O(h^2) once the solution is C^1 (m < 1)
        return PME_CONSTANT * param ** (1 / param) * h ** min(2.0, 1.0 + 1.0 / param)
    if problem.name == "stefan":
        # jump cell: at most sup|u| * h / 2 = h / 2; smooth part: (L / 12) h^2 max|u''| (doubled for the
        # partial cell next to the shock), max|u''| = c1 exp(-1/2) / (sqrt(2 pi) t)
        c1 = stefan_constants(param)[2]
        return h / 2 + h**2 / 6 * c1 * np.exp(-0.5) / (np.sqrt(2 * np.pi) * t) + 1e-13
    # advection: one jump of height 1 inside a cell, piecewise constant elsewhere
    return h / 2 + 1e-13



@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20)
@given(data=st.data(), nx=st.integers(9, 400))
def test_quadrature_total_matches_closed_form(name, data, nx):
    problem = get_problem(name)
    param = data.draw(_param_strategy(problem))
    t = data.draw(st.floats(0.02, _max_time(problem, param)))
    errors = []
    for refine in (1, 4, 16):
        grid = problem.grid((nx - 1) * refine + 1)
        h = grid[1] - grid[0]
        quad = trapezoid_weights(grid) @ problem.solution(grid, [t], param)[0]
        err = abs(quad - problem.total([t], param)[0])
        assert err <= _total_error_bound(problem, param, t, h), (refine, err)
        errors.append(err)
    # a wrong closed form would leave an O(1) gap that refinement does not remove
    assert errors[-1] <= _total_error_bound(problem, param, t, (grid[1] - grid[0]))


@pytest.mark.parametrize("name", ["pme", "stefan", "advection"])
def test_total_is_time_integral_of_boundary_influx(name):
    # independent check of the integral form: d(total)/dt equals the in-flux at x = 0
    problem = get_problem(name)
    param = problem.test_params[0]
    t = np.array([0.2, 0.3])
    dt = 1e-6
    rate = (problem.total(t + dt, param) - problem.total(t - dt, param)) / (2 * dt)
    if name == "pme":
        # flux -u^m u_x at x = 0 with u = (m (t - x))^(1/m): u^m u_x = -(m t) (m t)^(1/m - 1)
        influx = (param * t) ** (1 / param)
    elif name == "stefan":
        influx = stefan_constants(param)[2] / np.sqrt(np.pi * t)
    else:
        influx = param * np.ones_like(t)
    np.testing.assert_allclose(rate, influx, rtol=1e-6)


# ---------------------------------------------------------------- boundary and initial conditions
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data(), nt=st.integers(1, 12))
def test_boundary_conditions_hold(name, data, nt):
    problem = get_problem(name)
    param = data.draw(_param_strategy(problem))
    t = np.linspace(0.01, _max_time(problem, param), nt)
    u = problem.solution(np.array(problem.domain), t, param)
    left, right = problem.boundary_values(t, param)
    np.testing.assert_allclose(u[:, 0], left, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(u[:, 1], right, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_initial_condition(name):
    problem = get_problem(name)
    x = problem.grid(33)[1:]
    u0 = problem.solution(x, [0.0], problem.test_params[0])[0]
    expected = np.sin(x) if name == "diffusion" else np.zeros_like(x)
    np.testing.assert_allclose(u0, expected, atol=1e-15)


# ---------------------------------------------------------------- the PDE itself
@pytest.mark.parametrize("name", ["diffusion", "pme", "stefan"])
@settings(max_examples=15)
@given(data=st.data())
def test_pde_residual_vanishes_away_from_fronts(name, data):
    """u_t = (k(u) u_x)_x by central differences at a random point inside the smooth region."""
    problem = get_problem(name)
    param = data.draw(_param_strategy(problem))
    t = data.draw(st.floats(0.1, _max_time(problem, param) * 0.95))
    if name == "diffusion":
        front = problem.domain[1]
        k = lambda u: param * np.ones_like(u)  # noqa: E731
    elif name == "pme":
        front = t
        k = lambda u: u**param  # noqa: E731
    else:
        front = problem.shock_position([t], param)[0]
        k = lambda u: np.ones_like(u)  # noqa: E731
    x = data.draw(st.floats(0.05, 0.9)) * front
    d = 1e-4 * max(1.0, problem.domain[1])

    def u(xx, tt):
        return problem.solution(np.atleast_1d(xx), [tt], param)[0]

    dt = 1e-5
    u_t = (u(x, t + dt) - u(x, t - dt)) / (2 * dt)
    flux = lambda xx: k((u(xx + d / 2, t) + u(xx - d / 2, t)) / 2) * (u(xx + d / 2, t) - u(xx - d / 2, t)) / d  # noqa
    div = (flux(x + d / 2) - flux(x - d / 2)) / d
    # second differences in float64 with d = 1e-4: truncation O(d^2) ~ 1e-8, round-off ~ 1e-16 / d^2 = 1e-8
    scale = 1.0 + abs(u_t[0])
    assert abs(u_t[0] - div[0]) <= 2e-4 * scale * (1 + 1 / t)


@given(beta=st.floats(0.1, 2.0), t=st.floats(0.0, 0.5), offsets=st.lists(st.floats(-1, 1), min_size=1, max_size=20))
def test_advection_is_transported(beta, t, offsets):
    """u(x, t) = u(x - beta t, 0) with in-flow value 1: a step moving at speed beta."""
    problem = AdvectionProblem()
    t = min(t, 1 / beta)
    x = np.clip(beta * t + np.array(offsets), 0, 1)
    x = x[np.abs(x - beta * t) > 1e-9]
    u = problem.solution(x, [t], beta)[0]
    np.testing.assert_array_equal(u, (x < beta * t).astype(float))


# ---------------------------------------------------------------- shocks
@pytest.mark.parametrize("name", ["stefan", "advection"])
@given(data=st.data())
def test_shock_position_separates_states(name, data):
    problem = get_problem(name)
    param = data.draw(_param_strategy(problem))
    t = data.draw(st.floats(0.02, _max_time(problem, param) * 0.99))
    xs = problem.shock_position([t], param)[0]
    eps = 1e-9
    left, right = problem.solution(np.array([xs - eps, min(xs + eps, 1.0)]), [t], param)[0]
    thr = problem.shock_threshold(param)
    assert left > thr > right == 0.0
    if name == "stefan":
        assert left == pytest.approx(param, abs=1e-6)  # u jumps from p* to 0


def test_stefan_shock_matches_paper_constants():
    # x* = 2 z1 sqrt(t) and the similarity variable: u depends on x / sqrt(t) only
    problem = StefanProblem()
    x = np.linspace(0, 0.5, 11)
    u1 = problem.solution(x, [0.1], 0.6)[0]
    u2 = problem.solution(2 * x, [0.4], 0.6)[0]
    np.testing.assert_allclose(u1, u2, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", ["diffusion", "pme"])
def test_no_shock_problems_refuse_shock_queries(name):
    with pytest.raises(NotImplementedError, match="no shock"):
        get_problem(name).shock_position([0.1], get_problem(name).test_params[0])


# ---------------------------------------------------------------- data sets and seeding
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10)
@given(n=st.integers(1, 20), seed=st.integers(0, 2**31), nx=st.integers(3, 70), nt=st.integers(1, 6))
def test_make_data_is_seeded_and_consistent(name, n, seed, nx, nt):
    problem = get_problem(name)
    params = problem.sample_params(n, seed)
    np.testing.assert_array_equal(params, problem.sample_params(n, seed))
    lo, hi = problem.train_range
    assert np.all((params >= lo) & (params <= hi))
    data = problem.make_data(params, nx, nt)
    assert data.inputs.shape == (n, 2, nx)
    assert data.solution.shape == (n, nt, nx)
    assert data.totals.shape == (n, nt)
    np.testing.assert_allclose(data.inputs[:, 0, :], problem.normalise_param(params)[:, None] * np.ones(nx))
    np.testing.assert_allclose(data.inputs[:, 1, [0, -1]], np.tile([0.0, 1.0], (n, 1)))
    assert data.times[-1] == pytest.approx(problem.t_final)
    for i, p in enumerate(params):
        np.testing.assert_array_equal(data.solution[i], problem.solution(data.grid, data.times, p))


def test_different_seeds_differ():
    problem = StefanProblem()
    assert not np.array_equal(problem.sample_params(8, 0), problem.sample_params(8, 1))


def test_paper_ranges():
    assert DiffusionProblem.train_range == (1.0, 5.0)
    assert PorousMediumProblem.train_range == (1.0, 6.0) and PorousMediumProblem.test_params == (1.0, 3.0, 6.0)
    assert StefanProblem.train_range == (0.55, 0.7) and StefanProblem.test_params == (0.6, 0.5)


# ---------------------------------------------------------------- bad input
@given(grid=st.lists(st.floats(-10, 10), min_size=2, max_size=30))
def test_trapezoid_weights_integrate_linear_functions_or_reject(grid):
    g = np.array(grid)
    if np.all(np.diff(g) > 0):
        w = trapezoid_weights(g)
        # exact for affine functions; float64 sums of O(30) terms of size O(100)
        assert w @ (3 * g + 1) == pytest.approx(1.5 * (g[-1] ** 2 - g[0] ** 2) + (g[-1] - g[0]), abs=1e-10)
    else:
        with pytest.raises(ValueError, match="grid must be strictly increasing"):
            trapezoid_weights(g)


@pytest.mark.parametrize("grid", [[0.0], [[0.0, 1.0]], [0.0, np.nan, 1.0], [0.0, np.inf]])
def test_trapezoid_weights_bad_grid(grid):
    with pytest.raises(ValueError, match="grid"):
        trapezoid_weights(grid)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: StefanProblem().solution([0.5], [0.1], 1.0), "p\\*"),
        (lambda: StefanProblem().solution([0.5], [0.1], float("nan")), "finite"),
        (lambda: StefanProblem().solution([0.5], [0.9], 0.5), "shock"),
        (lambda: StefanProblem().solution([1.5], [0.1], 0.6), "domain"),
        (lambda: StefanProblem().solution([0.5], [-0.1], 0.6), "non-negative"),
        (lambda: PorousMediumProblem().solution([0.5], [0.1], -1.0), "exponent m"),
        (lambda: PorousMediumProblem().total([1.5], 2.0), "t must keep the front"),
        (lambda: DiffusionProblem().solution([0.5], [0.1], 0.0), "diffusivity"),
        (lambda: AdvectionProblem().shock_position([0.9], 1.5), "step"),
        (lambda: StefanProblem().grid(2), "nx"),
        (lambda: StefanProblem().times(0), "nt"),
        (lambda: StefanProblem().sample_params(0, 0), "n must"),
        (lambda: StefanProblem().make_data([], 10, 2), "params"),
        (lambda: get_problem("burgers"), "name must be one of"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("param", [[0.6, 0.7], "0.6", True, None])
def test_param_type_error(param):
    with pytest.raises(TypeError, match="param must be a real number"):
        StefanProblem().solution([0.5], [0.1], param)


@pytest.mark.parametrize("name", ["pme", "stefan", "advection"])
@given(data=st.data())
def test_every_closed_form_refuses_times_after_the_front_left(name, data):
    """solution, total, boundary values and shock position hold only while the front is inside: one check."""
    problem = get_problem(name)
    param = data.draw(_param_strategy(problem))
    t_exit = {"pme": lambda: 1.0, "stefan": lambda: 1.0 / stefan_constants(param)[1] ** 2,
              "advection": lambda: 1.0 / param}[name]()
    late = [0.5 * t_exit, t_exit * data.draw(st.floats(1.01, 10.0))]
    calls = [lambda: problem.solution([0.5], late, param), lambda: problem.total(late, param),
             lambda: problem.boundary_values(late, param)]
    if problem.has_shock:
        calls.append(lambda: problem.shock_position(late, param))
    for call in calls:
        with pytest.raises(ValueError, match="t must keep the"):
            call()
    # up to the exit (a little before, away from round-off in the exit time) every call answers
    early = [0.5 * t_exit, 0.99 * t_exit]
    assert problem.total(early, param).shape == (2,)
    assert all(v.shape == (2,) for v in problem.boundary_values(early, param))


@given(grid=st.lists(st.floats(-10, 10), min_size=2, max_size=30, unique=True))
def test_trapezoid_weights_are_the_quadrature_weights(grid):
    from probconserv_ext import quadrature_weights

    g = np.sort(np.array(grid))
    w = trapezoid_weights(g)
    assert isinstance(w, np.ndarray) and w.dtype == np.float64
    np.testing.assert_array_equal(w, quadrature_weights(torch.as_tensor(g)).numpy())


@pytest.mark.parametrize("name", NAMES)
@given(param=st.one_of(st.floats(-10, 10), st.integers(-10, 10)))
def test_check_param_admits_exactly_the_open_parameter_interval(name, param):
    problem = get_problem(name)
    lo, hi = problem.param_bounds
    if lo < param < hi:
        out = problem.check_param(param)
        assert isinstance(out, float) and out == param
    else:
        label = re.escape(f"param ({problem.param_meaning} {problem.param_name}) must be")
        with pytest.raises(ValueError, match="^" + label):
            problem.check_param(param)
