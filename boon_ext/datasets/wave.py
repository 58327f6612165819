"""1-D wave equation with Dirichlet or Neumann walls, as a space-time problem.

    u_tt = c^2 u_xx on (a, b),  u(x, 0) = u0(x),  u_t(x, 0) = 0,
    Dirichlet: u(a, t) = u(b, t) = 0;   Neumann: u_x(a, t) = u_x(b, t) = 0.

Space: central second differences on the interior nodes; the wall nodes are eliminated by the wall condition
itself (Dirichlet: the value 0; Neumann: the second-order one-sided stencils ``(-3u0 + 4u1 - u2) / (2h) = 0`` and
``(3uN - 4u(N-1) + u(N-2)) / (2h) = 0``, the form BOON's Neumann correction imposes). The resulting linear
system ``u'' = c^2 A u`` is integrated *exactly* in time through the eigendecomposition of ``A``, so every frame
carries only the spatial O(h^2) error and satisfies the wall stencils to round-off.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import torch

from _physics_constrained.validation import check_choice, check_int, check_range

from .base import BoundaryProblem, _to_tensor, _uniform, cached_problem, common_settings, shared_docs
from .grf import gaussian_random_field

__all__ = ["wave_equation", "solve_wave"]

_WALLS = ("dirichlet", "neumann")


def _interior_operator(n: int, h: float, walls: str) -> np.ndarray:
    """``(n - 2) x (n - 2)`` matrix of the second difference on the interior, walls eliminated."""
    m = n - 2
    a = (np.diag(np.full(m, -2.0)) + np.diag(np.ones(m - 1), 1) + np.diag(np.ones(m - 1), -1)) / h**2
    if walls == "neumann":
        # u0 = (4 u1 - u2) / 3 and uN = (4 u(N-1) - u(N-2)) / 3 enter the first and last interior rows.
        a[0, 0] += 4.0 / 3 / h**2
        a[0, 1] -= 1.0 / 3 / h**2
        a[-1, -1] += 4.0 / 3 / h**2
        a[-1, -2] -= 1.0 / 3 / h**2
    return a


def _walls_from_interior(inner: np.ndarray, walls: str, h: float) -> np.ndarray:
    """Full nodal values from interior ones (last axis), the wall nodes set by the wall condition."""
    shape = inner.shape[:-1] + (inner.shape[-1] + 2,)
    out = np.zeros(shape)
    out[..., 1:-1] = inner
    if walls == "neumann":
        # Each one-sided stencil (value 0) solved for its wall node.
        out[..., 0] = (4 * out[..., 1] - out[..., 2]) / 3
        out[..., -1] = (4 * out[..., -2] - out[..., -3]) / 3
    return out


def solve_wave(u0, grid, times, wave_speed, walls="dirichlet"):
    """Semi-discrete solution of ``u_tt = c^2 u_xx`` from rest (``u_t(., 0) = 0``), exact in time.

    Parameters
    ----------
    u0 : numpy.ndarray
        ``(S, N)`` initial values on ``grid`` (only interior nodes are used; the walls follow from them).
    grid : numpy.ndarray
        ``(N,)`` uniform nodes including both end points.
    times : numpy.ndarray
        ``(T,)`` output times.
    wave_speed : numpy.ndarray or float
        ``c > 0`` per sample (``(S,)``) or shared.
    walls : {"dirichlet", "neumann"}
        Homogeneous wall condition.

    Returns
    -------
    numpy.ndarray
        ``(S, N, T)`` float64 solution; Dirichlet walls hold 0 exactly, Neumann walls satisfy the one-sided
        stencils to round-off.
    """
    check_choice(walls, "walls", _WALLS)
    u0 = np.array(u0, dtype=np.float64, ndmin=2)
    s, n = u0.shape
    h = (grid[-1] - grid[0]) / (n - 1)
    c = np.broadcast_to(np.asarray(wave_speed, dtype=np.float64), (s,))
    t = np.asarray(times, dtype=np.float64)
    a = _interior_operator(n, h, walls)
    lam, vec = sla.eig(a)
    # A is similar to a symmetric negative semi-definite matrix (a diagonal rescaling of the eliminated rows):
    # real eigenvalues <= 0; the round-off part is dropped.
    lam = np.minimum(lam.real, 0.0)
    vec = vec.real
    coef = np.linalg.solve(vec, u0[:, 1:-1].T)  # (m, S)
    omega = np.sqrt(-lam)[:, None, None] * c[None, :, None] * t[None, None, :]  # (m, S, T)
    inner = np.einsum("km,msT->sTk", vec, coef[:, :, None] * np.cos(omega))
    full = _walls_from_interior(inner, walls, h)  # (S, T, N)
    return full.transpose(0, 2, 1)


@shared_docs
def wave_equation(n_samples, n_points=129, t_final=1.0, n_times=25, walls="dirichlet", wave_speed=1.0,
                  domain=(0.0, 1.0), ic_alpha=2.5, ic_tau=5.0, ic_sigma=25.0, seed=0, cache_dir=None):
    """Wave equation from rest, space-time: ``u(., 0)`` -> ``u`` at ``T`` frames, Dirichlet or Neumann walls.

    The input is the initial displacement repeated over the times ``t_j = j T / T_n`` (``j = 1..T_n``), the
    target the solution there, layout ``(S, 1, N, T_n)``, as :func:`stokes_second_problem`'s space-time form.
    Initial displacements are Gaussian random fields in the walls' eigenbasis (sines or cosines), so they meet
    the wall condition.

    Parameters
    ----------
    {n_samples}
    n_points : int
        Nodes ``N`` including both end points.
    t_final : float
        Time ``T`` of the last frame.
    n_times : int
        Frames ``T_n`` (the paper's space-time problems: 25).
    walls : {"dirichlet", "neumann"}
        ``u = 0`` or ``u_x = 0`` at both walls.
    wave_speed : float or (float, float)
        ``c``: fixed, or an interval drawn from uniformly per sample (then ``u(., t)`` is not a function of
        ``u(., 0)`` alone; the parameter-ordered split still applies).
    domain : (float, float)
        ``(a, b)``.
    ic_alpha, ic_tau, ic_sigma : float
        Covariance of the initial displacement (see :func:`gaussian_random_field`).
    {seed, cache_dir}

    Returns
    -------
    BoundaryProblem
        ``boundary = [{"type": "dirichlet", "left": 0.0, "right": 0.0, "dim": -2}]`` or
        ``[{"type": "neumann", "left": 0.0, "right": 0.0, "domain": [a, b], "dim": -2}]``; no per-sample
        boundary values; ``params = {"wave_speed": c}``.

    References
    ----------
    d'Alembert, J. le R. (1747). Recherches sur la courbe que forme une corde tendue mise en vibration.
    Saad, N. et al. (2023). Guiding continuous operator learning through physics-based boundary
    constraints. ICLR.
    """
    settings = common_settings(n_samples, n_points, t_final, domain, seed, ic_alpha=ic_alpha, ic_tau=ic_tau,
                               ic_sigma=ic_sigma)
    n_samples, n_points, t_final, seed = (settings[k] for k in ("n_samples", "n_points", "t_final", "seed"))
    domain = tuple(settings["domain"])
    n_times = check_int(n_times, "n_times", minimum=1)
    check_choice(walls, "walls", _WALLS)
    c_bounds = check_range(wave_speed, "wave_speed", positive=True)
    settings.update(n_times=n_times, walls=walls, wave_speed=list(c_bounds))

    def build():
        rng = np.random.default_rng([seed, 8])
        grid = np.linspace(domain[0], domain[1], n_points)
        c = _uniform(rng, c_bounds, n_samples)
        u0 = gaussian_random_field(n_samples, grid, walls, settings["ic_alpha"], settings["ic_tau"],
                                   settings["ic_sigma"], n_modes=max(1, (n_points - 1) // 4), rng=rng)
        times = t_final * np.arange(1, n_times + 1) / n_times
        # The data start from the discrete problem's own initial state: walls set from the interior by the
        # wall condition (for Neumann, the one-sided stencils; the random field meets them only to O(h^2)).
        u0 = _walls_from_interior(u0[:, 1:-1], walls, (domain[1] - domain[0]) / (n_points - 1))
        u = solve_wave(u0, grid, times, c, walls)
        if walls == "dirichlet":
            boundary = [{"type": "dirichlet", "left": 0.0, "right": 0.0, "dim": -2}]
        else:
            boundary = [{"type": "neumann", "left": 0.0, "right": 0.0, "domain": list(domain), "dim": -2}]
        return BoundaryProblem(
            name=f"wave_{walls}",
            x=_to_tensor(np.repeat(u0[:, None, :, None], n_times, axis=-1)),
            y=_to_tensor(u[:, None]),
            grid=torch.from_numpy(grid),
            boundary=boundary,
            boundary_values={},
            domain=domain,
            times=torch.from_numpy(times),
            params={"wave_speed": c},
            settings=settings,
        )

    return cached_problem("wave_equation", settings, build, cache_dir)
