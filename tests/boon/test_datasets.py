"""Generators of BOON's test problems: exact solutions, convergence orders, boundary conditions."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext.datasets import (
    BoundaryProblem,
    burgers_cole_hopf_sine,
    burgers_dirichlet,
    burgers_periodic,
    gaussian_random_field,
    heat_neumann,
    solve_burgers_dirichlet,
    solve_burgers_periodic,
    solve_heat_neumann,
    solve_stokes_dirichlet,
    stokes_layer,
    stokes_second_problem,
)

EPS32 = float(np.finfo(np.float32).eps)


def observed_orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


# ----------------------------------------------------------------------------- heat
def test_heat_converges_at_second_order_to_exact_cosine_mode():
    # U = 0, u0 = cos(pi x): u = exp(-k pi^2 t) cos(pi x) satisfies both flux conditions exactly.
    errs = []
    for n in (81, 161, 321):
        g = np.linspace(0, 1, n)
        u = solve_heat_neumann(np.cos(np.pi * g)[None], g, 0.5, 0.1, 0.0, n_steps=n - 1)
        errs.append(np.abs(u - np.exp(-0.1 * np.pi**2 * 0.5) * np.cos(np.pi * g)).max())
    orders = observed_orders(errs)
    assert np.all(orders > 1.8) and np.all(orders < 2.3), orders


def test_heat_with_flux_self_converges_at_second_order():
    # Differences of successive refinements (space and time together) on the coarse nodes.
    sols = []
    for n in (41, 81, 161, 321):
        g = np.linspace(0, 1, n)
        u0 = np.cos(np.pi * g)[None] + 0.3 * np.cos(3 * np.pi * g)[None]
        u = solve_heat_neumann(u0, g, 0.5, 0.1, 1.3, n_steps=n - 1)
        sols.append(u[0, :: (n - 1) // 40])
    diffs = [np.abs(a - b).max() for a, b in zip(sols[:-1], sols[1:])]
    orders = observed_orders(diffs)
    assert np.all(orders > 1.7) and np.all(orders < 2.4), orders


@settings(max_examples=10)
@given(
    n_points=st.integers(8, 80),
    t_final=st.floats(0.05, 1.0),
    amp=st.floats(-3.0, 3.0),
    k=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
def test_heat_targets_satisfy_one_sided_flux_stencils(n_points, t_final, amp, k, seed):
    p = heat_neumann(3, n_points=n_points, t_final=t_final, diffusivity=k, flux_amplitude=amp, n_steps=20, seed=seed)
    h = p.spacing
    y = p.y[:, 0].double()
    left = (-3 * y[:, 0] + 4 * y[:, 1] - y[:, 2]) / (2 * h)
    right = (3 * y[:, -1] - 4 * y[:, -2] + y[:, -3]) / (2 * h)
    # float32 rounding of the three stored values, each amplified by at most 4 / (2h).
    tol = 8 * EPS32 * float(y.abs().max() + 1) / (2 * h)
    assert torch.allclose(left, torch.zeros_like(left), atol=tol)
    g = p.boundary_values["right"].double()
    assert torch.allclose(g, torch.full_like(g, amp * np.sin(np.pi * t_final)), atol=1e-6 * (1 + abs(amp)))
    assert torch.allclose(right, g, atol=tol)
    assert p.boundary == [
        {"type": "neumann", "left": 0.0, "domain": [0.0, 1.0]},
        {"type": "neumann", "faces": ["right"], "domain": [0.0, 1.0]},
    ]
    assert p.x.shape == p.y.shape == (3, 1, n_points)
    assert float(p.grid[0]) == 0.0 and float(p.grid[-1]) == 1.0


def test_heat_random_flux_amplitude_per_sample():
    p = heat_neumann(16, n_points=16, flux_amplitude=(0.5, 2.0), n_steps=5)
    amp = p.params["flux_amplitude"]
    assert amp.min() >= 0.5 and amp.max() <= 2.0 and np.unique(amp).size == 16
    np.testing.assert_allclose(p.boundary_values["right"].numpy(), amp * np.sin(np.pi * 0.5), rtol=1e-6)


# --------------------------------------------------------------------------- stokes
def test_stokes_converges_at_second_order_to_exact_stokes_layer():
    # k L = 31.6: the far wall changes the semi-infinite solution by exp(-31.6) ~ 2e-14.
    w, nu = np.array([10.0]), np.array([0.005])
    times = np.array([0.3, 1.0, 2.7])
    errs = []
    for n in (51, 101, 201, 401):
        g = np.linspace(0, 1, n)
        u0 = stokes_layer(g[None], 0.0, 1.0, w[:, None], nu[:, None])
        u = solve_stokes_dirichlet(u0, g, times, np.ones(1), w, nu)
        exact = stokes_layer(g[None, :, None], times[None, None], 1.0, w[:, None, None], nu[:, None, None])
        errs.append(np.abs(u - exact).max())
    orders = observed_orders(errs)
    assert np.all(np.abs(orders - 2) < 0.1), orders


@settings(max_examples=15)
@given(
    n_points=st.integers(6, 60),
    n_times=st.one_of(st.none(), st.integers(1, 8)),
    t_final=st.floats(0.1, 3.0),
    seed=st.integers(0, 2**16),
)
def test_stokes_targets_hold_dirichlet_values_exactly(n_points, n_times, t_final, seed):
    p = stokes_second_problem(4, n_points=n_points, n_times=n_times, t_final=t_final, seed=seed)
    U, w = p.params["amplitude"], p.params["frequency"]
    times = p.times.numpy()
    wall = torch.from_numpy((U[:, None] * np.cos(w[:, None] * times[None])).astype(np.float32))
    if n_times is None:
        assert p.x.shape == (4, 1, n_points)
        assert torch.equal(p.y[:, 0, 0], p.boundary_values["left"])
        assert torch.equal(p.boundary_values["left"], wall[:, 0])
        assert torch.all(p.y[:, 0, -1] == 0)
    else:
        assert p.x.shape == (4, 1, n_points, n_times)
        assert p.boundary_values["left"].shape == (4, 1, n_times)
        assert torch.equal(p.y[:, :, 0, :], p.boundary_values["left"])
        assert torch.equal(p.boundary_values["left"], wall[:, None])
        assert torch.all(p.y[:, :, -1, :] == 0)
        np.testing.assert_allclose(times, t_final * np.arange(1, n_times + 1) / n_times)
        assert all(c["dim"] == -2 for c in p.boundary)
    nu = p.params["viscosity"]
    assert w.min() >= 2.0 and w.max() <= 8.0 and nu.min() >= 0.002 and nu.max() <= 0.02


def test_stokes_single_step_equals_last_space_time_slice():
    a = stokes_second_problem(3, n_points=33, t_final=0.8, seed=5)
    b = stokes_second_problem(3, n_points=33, t_final=0.8, n_times=4, seed=5)
    torch.testing.assert_close(a.y, b.y[..., -1])
    torch.testing.assert_close(a.x, b.x[..., 0])


# -------------------------------------------------------------------------- burgers
def test_burgers_periodic_matches_cole_hopf_spectrally():
    x = np.arange(64) / 64
    u = solve_burgers_periodic(np.sin(2 * np.pi * x)[None], 1.0, 0.5, 0.1, dt=1e-3, solver_points=64)
    exact = burgers_cole_hopf_sine(x, 0.5, 1.0, 0.1, 2 * np.pi)
    assert np.abs(u - exact).max() < 1e-10


def test_burgers_periodic_time_stepping_is_fourth_order():
    x = np.arange(64) / 64
    exact = burgers_cole_hopf_sine(x, 0.5, 1.0, 0.1, 2 * np.pi)
    errs = [
        np.abs(solve_burgers_periodic(np.sin(2 * np.pi * x)[None], 1.0, 0.5, 0.1, dt=dt, solver_points=64) - exact).max()
        for dt in (0.05, 0.025, 0.0125)
    ]
    orders = observed_orders(errs)
    assert np.all(orders > 3.3) and np.all(orders < 4.8), orders


def test_burgers_dirichlet_converges_at_second_order_to_cole_hopf():
    errs = []
    for n in (51, 101, 201):
        g = np.linspace(0, 1, n)
        u = solve_burgers_dirichlet(np.sin(np.pi * g)[None], g, 0.5, 0.1, n_steps=(n - 1) * 5 // 2)
        errs.append(np.abs(u - burgers_cole_hopf_sine(g, 0.5, 1.0, 0.1, np.pi)).max())
    orders = observed_orders(errs)
    assert np.all(np.abs(orders - 2) < 0.1), orders


def test_burgers_dirichlet_random_data_converges_in_time():
    ys = [burgers_dirichlet(4, n_points=101, n_steps=m, seed=3).y.double() for m in (100, 200, 400, 800)]
    diffs = [float((a - b).abs().max()) for a, b in zip(ys[:-1], ys[1:])]
    orders = observed_orders(diffs)
    assert np.all(orders > 1.7), (diffs, orders)


@settings(max_examples=10)
@given(n_points=st.integers(9, 65), t_final=st.floats(0.05, 1.0), seed=st.integers(0, 2**16))
def test_burgers_periodic_targets_are_periodic(n_points, t_final, seed):
    p = burgers_periodic(3, n_points=n_points, t_final=t_final, dt=5e-3, seed=seed)
    assert torch.equal(p.y[..., 0], p.y[..., -1]) and torch.equal(p.x[..., 0], p.x[..., -1])
    assert p.boundary == [{"type": "periodic"}] and p.boundary_values == {}
    assert torch.isfinite(p.y).all()
    # Zero-mean initial fields and a conservative equation: the mean stays zero.
    assert float(p.y[..., :-1].double().mean(-1).abs().max()) < 1e-6


@settings(max_examples=10)
@given(n_points=st.integers(8, 60), left=st.floats(-1, 1), right=st.floats(-1, 1), seed=st.integers(0, 2**16))
def test_burgers_dirichlet_targets_hold_wall_values(n_points, left, right, seed):
    p = burgers_dirichlet(3, n_points=n_points, left=left, right=right, t_final=0.2, seed=seed)
    for t in (p.x, p.y):
        assert torch.all(t[:, 0, 0] == np.float32(left)) and torch.all(t[:, 0, -1] == np.float32(right))
    assert p.boundary == [{"type": "dirichlet", "left": left, "right": right}]


# ------------------------------------------------------------------------------ GRF
@settings(max_examples=15)
@given(n=st.integers(5, 100), kind=st.sampled_from(["periodic", "dirichlet", "neumann"]), seed=st.integers(0, 99))
def test_random_fields_satisfy_their_boundary_condition(n, kind, seed):
    g = np.linspace(0, 2.5, n)
    f = gaussian_random_field(4, g, kind, rng=np.random.default_rng(seed))
    assert f.shape == (4, n) and np.all(np.isfinite(f))
    if kind == "periodic":
        assert np.array_equal(f[:, 0], f[:, -1])
    elif kind == "dirichlet":
        assert np.all(f[:, [0, -1]] == 0)
    else:
        # Zero slope at both ends: the second-order one-sided stencils vanish up to O(h^2 u''').
        fine = np.linspace(0, 2.5, 4001)
        ff = gaussian_random_field(1, fine, kind, n_modes=10, rng=np.random.default_rng(seed))[0]
        h = fine[1] - fine[0]
        scale = np.abs(ff).max() + 1
        assert abs(-3 * ff[0] + 4 * ff[1] - ff[2]) / (2 * h) < 1e-4 * scale
        assert abs(3 * ff[-1] - 4 * ff[-2] + ff[-3]) / (2 * h) < 1e-4 * scale


def test_random_field_variance_matches_covariance():
    g = np.linspace(0, 1, 65)
    f = gaussian_random_field(4000, g, "periodic", alpha=2.0, tau=5.0, sigma=25.0, n_modes=32, rng=np.random.default_rng(0))
    k = np.arange(1, 33)
    expected = 2 * np.sum((25.0 / (25.0 + (2 * np.pi * k) ** 2)) ** 2)  # cos^2 + sin^2 = 1, times 2
    assert abs(f[:, :-1].var() / expected - 1) < 0.06


# ---------------------------------------------------------- container, determinism, cache
@pytest.mark.parametrize(
    "make",
    [
        lambda s: heat_neumann(4, n_points=12, n_steps=5, seed=s),
        lambda s: stokes_second_problem(4, n_points=12, n_times=3, seed=s),
        lambda s: burgers_periodic(4, n_points=17, dt=0.05, seed=s),
        lambda s: burgers_dirichlet(4, n_points=12, n_steps=10, seed=s),
    ],
)
def test_generators_are_deterministic_and_seeded(make):
    a, b, c = make(1), make(1), make(2)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert a.x.dtype == a.y.dtype == torch.float32


def test_cache_round_trip(tmp_path):
    a = stokes_second_problem(5, n_points=12, n_times=3, seed=4, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    b = stokes_second_problem(5, n_points=12, n_times=3, seed=4, cache_dir=tmp_path)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.grid, b.grid)
    assert torch.equal(a.boundary_values["left"], b.boundary_values["left"]) and torch.equal(a.times, b.times)
    assert a.boundary == b.boundary and a.domain == b.domain and a.settings == b.settings
    np.testing.assert_array_equal(a.params["frequency"], b.params["frequency"])
    # The cache is what is read: a tampered file shows up in the next call.
    a.y[0, 0, 3] += 1.0
    a.save(files[0])
    c = stokes_second_problem(5, n_points=12, n_times=3, seed=4, cache_dir=tmp_path)
    assert torch.equal(c.y, a.y) and not torch.equal(c.y, b.y)
    # Another setting is another file.
    stokes_second_problem(5, n_points=12, n_times=3, seed=5, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert torch.equal(BoundaryProblem.load(files[0]).y, a.y)


def test_dataset_items_and_split():
    p = heat_neumann(10, n_points=12, n_steps=5)
    train, test = p.split(7)
    assert len(train) == 7 and len(test) == 3
    item = test[0]
    assert set(item) == {"x", "y", "boundary_values"}
    assert torch.equal(item["x"], p.x[7]) and torch.equal(item["boundary_values"]["right"], p.boundary_values["right"][7])
    loader = torch.utils.data.DataLoader(train, batch_size=4)
    batch = next(iter(loader))
    assert batch["x"].shape == (4, 1, 12) and batch["boundary_values"]["right"].shape == (4,)
    assert "boundary_values" not in burgers_periodic(2, n_points=9, dt=0.1).dataset()[0]
    with pytest.raises(ValueError, match="n_train"):
        p.split(8, 5)
    with pytest.raises(ValueError, match="indices"):
        p.dataset([10])


# -------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, exc, name",
    [
        (lambda: heat_neumann(0), ValueError, "n_samples"),
        (lambda: heat_neumann(2.5), TypeError, "n_samples"),
        (lambda: heat_neumann(2, n_points=3), ValueError, "n_points"),
        (lambda: heat_neumann(2, t_final=float("nan")), ValueError, "t_final"),
        (lambda: heat_neumann(2, diffusivity=-1.0), ValueError, "diffusivity"),
        (lambda: heat_neumann(2, flux_amplitude=(2.0, 1.0)), ValueError, "flux_amplitude"),
        (lambda: heat_neumann(2, domain=(1.0, 0.0)), ValueError, "domain"),
        (lambda: heat_neumann(2, cache_dir=3), TypeError, "cache_dir"),
        (lambda: stokes_second_problem(2, viscosity=(-0.1, 0.1)), ValueError, "viscosity"),
        (lambda: stokes_second_problem(2, frequency=float("inf")), ValueError, "frequency"),
        (lambda: stokes_second_problem(2, n_times=0), ValueError, "n_times"),
        (lambda: burgers_periodic(2, viscosity=0.0), ValueError, "viscosity"),
        (lambda: burgers_periodic(2, n_points=65, solver_points=32), ValueError, "solver_points"),
        (lambda: burgers_dirichlet(2, left=float("nan")), ValueError, "left"),
        (lambda: gaussian_random_field(2, np.array([0.0, 0.5, 0.4])), ValueError, "grid"),
        (lambda: gaussian_random_field(2, np.linspace(0, 1, 5), kind="robin"), ValueError, "kind"),
        (lambda: gaussian_random_field(2, np.linspace(0, 1, 5), tau=-1.0), ValueError, "tau"),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


@pytest.mark.parametrize("func", [heat_neumann, stokes_second_problem, burgers_periodic, burgers_dirichlet,
                                  solve_heat_neumann, solve_burgers_dirichlet])
def test_docstrings_document_every_parameter_once_the_shared_entries_filled_in(func):
    import inspect
    import re

    doc = func.__doc__
    assert not re.search(r"^\s*\{[\w, ]+\}\s*$", doc, re.M)  # every shared-entry line was filled in
    documented = [n.strip() for line in re.findall(r"^    ([\w, ]+) :", doc, re.M) for n in line.split(",")]
    assert sorted(documented) == sorted(inspect.signature(func).parameters)
