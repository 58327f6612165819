"""Viscous Burgers' equation ``u_t + (u^2 / 2)_x = nu u_xx`` with periodic or Dirichlet conditions.

- Periodic: Fourier pseudo-spectral in space (2/3-rule de-aliasing), fourth-order exponential
  time differencing (ETDRK4, coefficients by contour integrals); output on the end-point-inclusive
  grid, so ``u[0] == u[-1]`` exactly.
- Dirichlet: second-order central differences in conservative form; Crank-Nicolson for the
  diffusion and second-order Adams-Bashforth for the advection (IMEX), boundary rows hold the
  prescribed values exactly.

Both are validated against the Cole-Hopf solution for a sine initial condition
(:func:`burgers_cole_hopf_sine`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from scipy.special import ive

from _physics_constrained.validation import check_int, check_range, check_real

from .base import BoundaryProblem, _to_tensor, _uniform, cached_problem, common_settings, shared_docs
from .grf import gaussian_random_field

__all__ = [
    "burgers_periodic",
    "burgers_dirichlet",
    "solve_burgers_periodic",
    "solve_burgers_dirichlet",
    "burgers_cole_hopf_sine",
]


def burgers_cole_hopf_sine(x, t, amplitude, viscosity, wavenumber, n_terms=200):
    """Exact solution of viscous Burgers for ``u(x, 0) = A sin(kappa x)`` (Cole-Hopf).

    With ``kappa = 2 pi / L`` it is the periodic solution on ``[0, L]``; with ``kappa = pi / L`` it
    is the solution with ``u(0, t) = u(L, t) = 0``:

        u = 4 nu sum_n n kappa I_n(c) e_n sin(n kappa x) / (I_0(c) + 2 sum_n I_n(c) e_n cos(n kappa x)),

    ``c = A / (2 nu kappa)``, ``e_n = exp(-nu n^2 kappa^2 t)``.

    Parameters
    ----------
    x : numpy.ndarray
        Positions.
    t : float
        Time (>= 0).
    amplitude, viscosity, wavenumber : float
        ``A``, ``nu > 0``, ``kappa > 0``.
    n_terms : int
        Terms of the series (the Bessel factors decay like ``(c/2)^n / n!``).

    Returns
    -------
    numpy.ndarray
        ``u(x, t)``, float64.

    References
    ----------
    Cole, J. D. (1951). On a quasi-linear parabolic equation occurring in aerodynamics.
    Quart. Appl. Math. 9, 225-236.
    """
    x = np.asarray(x, dtype=np.float64)
    c = amplitude / (2 * viscosity * wavenumber)
    n = np.arange(1, n_terms + 1)
    # Exponentially scaled Bessel functions: the common factor exp(|c|) cancels in the ratio.
    i_n = ive(n, c) * np.exp(-viscosity * (n * wavenumber) ** 2 * t)
    phase = np.multiply.outer(x, n * wavenumber)
    num = 4 * viscosity * (np.sin(phase) * (n * wavenumber * i_n)).sum(-1)
    den = ive(0, c) + 2 * (np.cos(phase) * i_n).sum(-1)
    return num / den


def solve_burgers_periodic(u0, length, t_final, viscosity, dt=1e-3, solver_points=None, n_points=None):
    """ETDRK4 pseudo-spectral solution of periodic viscous Burgers.

    Parameters
    ----------
    u0 : numpy.ndarray
        ``(S, M)`` initial values on the periodic nodes ``j L / M`` (end point excluded).
    length : float
        Period ``L``.
    t_final : float
        Final time.
    viscosity : float
        ``nu > 0``.
    dt : float
        Largest time step; the step used is ``t_final / ceil(t_final / dt)``.
    solver_points : int, optional
        Resolution of the solve (default ``max(M, 256)``); the initial condition is interpolated
        spectrally, which is exact for band-limited data.
    n_points : int, optional
        Periodic nodes of the output (default ``M``).

    Returns
    -------
    numpy.ndarray
        ``(S, n_points)`` solution at ``t_final`` on the periodic nodes (end point excluded).

    References
    ----------
    Cox, S. M. and Matthews, P. C. (2002). Exponential time differencing for stiff systems.
    J. Comput. Phys. 176, 430-455.
    Kassam, A.-K. and Trefethen, L. N. (2005). Fourth-order time-stepping for stiff PDEs.
    SIAM J. Sci. Comput. 26, 1214-1233.
    """
    u0 = np.array(u0, dtype=np.float64, ndmin=2)
    m_in = u0.shape[1]
    m = max(m_in, 256) if solver_points is None else solver_points
    n_out = m_in if n_points is None else n_points
    n_steps = max(1, int(np.ceil(t_final / dt - 1e-9)))
    h = t_final / n_steps

    k = 2 * np.pi / length * np.arange(m // 2 + 1)
    lin = -viscosity * k**2
    g = -0.5j * k
    dealias = np.arange(m // 2 + 1) < (m // 3)
    g = g * dealias

    # Contour-integral evaluation of the phi-functions avoids cancellation for small |h L|.
    r = np.exp(1j * np.pi * (np.arange(1, 33) - 0.5) / 32)
    lr = h * lin[:, None] + r[None, :]
    e = np.exp(h * lin)
    e2 = np.exp(h * lin / 2)
    q = h * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = h * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = h * np.real(np.mean((2 + lr + np.exp(lr) * (lr - 2)) / lr**3, axis=1))
    f3 = h * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))

    def nonlin(vh):
        u = np.fft.irfft(vh, n=m, axis=-1)
        return g * np.fft.rfft(u * u, axis=-1)

    v = _resample_hat(np.fft.rfft(u0, axis=-1), m_in, m)
    for _ in range(n_steps):
        nv = nonlin(v)
        a = e2 * v + q * nv
        na = nonlin(a)
        b = e2 * v + q * na
        nb = nonlin(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = nonlin(c)
        v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
    return np.fft.irfft(_resample_hat(v, m, n_out), n=n_out, axis=-1)


def _resample_hat(vh, m_from, m_to):
    """rfft coefficients on ``m_from`` nodes -> those of the trigonometric interpolant on ``m_to`` nodes.

    Nyquist coefficients are dropped: they are ambiguous (cos only) and, for the smooth fields
    here, far below the solver error.
    """
    out = np.zeros(vh.shape[:-1] + (m_to // 2 + 1,), dtype=complex)
    kk = (min(m_from, m_to) + 1) // 2
    out[..., :kk] = vh[..., :kk] * (m_to / m_from)
    return out


@shared_docs
def solve_burgers_dirichlet(u0, grid, t_final, viscosity, n_steps, left=0.0, right=0.0):
    """IMEX (Crank-Nicolson / Adams-Bashforth 2) finite-difference solution of Dirichlet Burgers.

    Parameters
    ----------
    {u0, grid, t_final}
    viscosity : float
        ``nu > 0``.
    n_steps : int
        Time steps (the first is IMEX Euler, the rest CN/AB2).
    left, right : float or numpy.ndarray
        Wall values ``u(0, t)``, ``u(L, t)``: shared, or ``(S,)`` per sample.

    Returns
    -------
    numpy.ndarray
        ``(S, N)`` float64 solution at ``t_final``; end values are exactly ``left`` and ``right``.

    References
    ----------
    Ascher, U. M., Ruuth, S. J. and Wetton, B. T. R. (1995). Implicit-explicit methods for
    time-dependent partial differential equations. SIAM J. Numer. Anal. 32, 797-823.
    """
    u = np.array(u0, dtype=np.float64, ndmin=2).T.copy()  # (N, S)
    n = u.shape[0]
    h = (grid[-1] - grid[0]) / (n - 1)
    dt = t_final / n_steps
    r = viscosity * dt / h**2
    lap = sp.diags([np.ones(n - 1), np.full(n, -2.0), np.ones(n - 1)], [-1, 0, 1], format="lil")
    lap[0, :] = 0
    lap[n - 1, :] = 0
    ident = sp.identity(n, format="csr")
    lhs_cn = spla.splu((ident - 0.5 * r * lap).tocsc())
    lhs_be = spla.splu((ident - r * lap).tocsc())
    rhs_cn = (ident + 0.5 * r * lap).tocsr()

    def advection(v):
        out = np.zeros_like(v)
        f = 0.5 * v * v
        out[1:-1] = -(f[2:] - f[:-2]) / (2 * h)
        return out

    u[0], u[-1] = left, right
    a_prev = advection(u)
    b = u + dt * a_prev
    b[0], b[-1] = left, right
    u = lhs_be.solve(b)
    for _ in range(1, n_steps):
        a_now = advection(u)
        b = rhs_cn @ u + dt * (1.5 * a_now - 0.5 * a_prev)
        b[0], b[-1] = left, right
        u = lhs_cn.solve(b)
        a_prev = a_now
    return u.T


@shared_docs
def burgers_periodic(n_samples, n_points=129, t_final=1.0, viscosity=0.1, dt=1e-3, solver_points=None,
                     domain=(0.0, 1.0), ic_alpha=2.0, ic_tau=5.0, ic_sigma=25.0, seed=0, cache_dir=None):
    """Periodic viscous Burgers, ``u(., 0) -> u(., T)``, initial conditions from a Gaussian random field.

    Parameters
    ----------
    {n_samples}
    n_points : int
        Nodes ``N`` including both end points (``N - 1`` periodic nodes; the paper uses 128 + 1).
    t_final : float
        Final time ``T``.
    viscosity : float
        ``nu`` (0.1 in the paper).
    dt : float
        ETDRK4 time step.
    solver_points : int, optional
        Resolution of the spectral solve (default ``max(N - 1, 256)``).
    domain : (float, float)
        ``(a, b)``, one period.
    ic_alpha, ic_tau, ic_sigma : float
        Covariance ``sigma^2 (-Delta + tau^2)^-alpha`` of the initial condition (FNO paper:
        2, 5, 25).
    {seed, cache_dir}

    Returns
    -------
    BoundaryProblem
        ``(S, 1, N)`` inputs/targets with ``x[..., 0] == x[..., -1]``; ``boundary =
        [{"type": "periodic"}]``, no per-sample boundary values.

    References
    ----------
    Li, Z. et al. (2021). Fourier Neural Operator for Parametric Partial Differential Equations. ICLR.
    """
    settings = common_settings(n_samples, n_points, t_final, domain, seed, ic_alpha=ic_alpha, ic_tau=ic_tau,
                               ic_sigma=ic_sigma)
    n_samples, n_points, t_final, seed = (settings[k] for k in ("n_samples", "n_points", "t_final", "seed"))
    domain = tuple(settings["domain"])
    viscosity = settings["viscosity"] = check_real(viscosity, "viscosity", positive=True)
    dt = settings["dt"] = check_real(dt, "dt", positive=True)
    if solver_points is not None:
        solver_points = check_int(solver_points, "solver_points", minimum=n_points - 1)
    settings["solver_points"] = solver_points

    def build():
        rng = np.random.default_rng([seed, 3])
        grid = np.linspace(domain[0], domain[1], n_points)
        u0 = gaussian_random_field(
            n_samples, grid, "periodic", settings["ic_alpha"], settings["ic_tau"], settings["ic_sigma"],
            n_modes=(n_points - 1) // 2 - 1, rng=rng,
        )
        u = solve_burgers_periodic(u0[:, :-1], domain[1] - domain[0], t_final, viscosity, dt, solver_points)
        y = np.concatenate([u, u[:, :1]], axis=1)
        return BoundaryProblem(
            name="burgers_periodic",
            x=_to_tensor(u0[:, None, :]),
            y=_to_tensor(y[:, None, :]),
            grid=torch.from_numpy(grid),
            boundary=[{"type": "periodic"}],
            boundary_values={},
            domain=domain,
            times=torch.tensor([t_final], dtype=torch.float64),
            settings=settings,
        )

    return cached_problem("burgers_periodic", settings, build, cache_dir)


@shared_docs
def burgers_dirichlet(n_samples, n_points=501, t_final=1.0, viscosity=0.1, left=0.0, right=0.0, n_steps=None,
                      domain=(0.0, 1.0), ic_alpha=2.0, ic_tau=5.0, ic_sigma=25.0, seed=0, cache_dir=None):
    """Viscous Burgers with fixed wall values, ``u(., 0) -> u(., T)``.

    The initial condition is a sine-series Gaussian random field plus the straight line between
    the wall values, so it matches them.

    Parameters
    ----------
    {n_samples}
    n_points : int
        Nodes ``N`` including both end points.
    t_final : float
        Final time ``T``.
    viscosity : float
        ``nu``.
    left, right : float or (float, float)
        ``u(a, t)`` and ``u(b, t)``: one value for every sample, or an interval to draw the sample's wall
        value from uniformly (non-zero wall values per sample, as in the reference code's Dirichlet data).
    n_steps : int, optional
        IMEX steps (default: ``dt = min(h, 2e-3)``; with implicit diffusion dominating at the
        grid scale (cell Peclet number ``max|u| h / nu << 1``) the explicit advection is stable
        there; the tests check time convergence).
    domain : (float, float)
        ``(a, b)``.
    ic_alpha, ic_tau, ic_sigma : float
        Covariance of the random part of the initial condition.
    {seed, cache_dir}

    Returns
    -------
    BoundaryProblem
        ``(S, 1, N)`` inputs/targets. With fixed wall values ``boundary = [{"type": "dirichlet", "left": left,
        "right": right}]`` and no per-sample boundary values; a face drawn per sample is listed under
        ``"faces"`` instead of given a value, its values are ``boundary_values[face]`` of shape ``(S,)`` and
        ``params[face]``.
    """
    settings = common_settings(n_samples, n_points, t_final, domain, seed, ic_alpha=ic_alpha, ic_tau=ic_tau,
                               ic_sigma=ic_sigma)
    n_samples, n_points, t_final, seed = (settings[k] for k in ("n_samples", "n_points", "t_final", "seed"))
    domain = tuple(settings["domain"])
    viscosity = settings["viscosity"] = check_real(viscosity, "viscosity", positive=True)
    walls = {}
    for face, value in (("left", left), ("right", right)):
        if isinstance(value, (tuple, list)):
            walls[face] = check_range(value, face)
            settings[face] = list(walls[face])
        else:
            # A fixed value stays a plain number in the settings: earlier cache keys stay valid.
            settings[face] = check_real(value, face)
            walls[face] = None
    h = (domain[1] - domain[0]) / (n_points - 1)
    if n_steps is None:
        n_steps = int(np.ceil(t_final / min(h, 2e-3)))
    n_steps = settings["n_steps"] = check_int(n_steps, "n_steps", minimum=1)

    def build():
        rng = np.random.default_rng([seed, 4])
        grid = np.linspace(domain[0], domain[1], n_points)
        s = (grid - domain[0]) / (domain[1] - domain[0])
        u0 = gaussian_random_field(
            n_samples, grid, "dirichlet", settings["ic_alpha"], settings["ic_tau"], settings["ic_sigma"], rng=rng
        )
        # Per-sample wall values are drawn after the field, so fixed-value data are unchanged by this option.
        values = {f: (np.full(n_samples, settings[f]) if walls[f] is None else _uniform(rng, walls[f], n_samples))
                  for f in ("left", "right")}
        lo, hi = values["left"][:, None], values["right"][:, None]
        u0 = u0 + lo + (hi - lo) * s[None, :]
        u0[:, 0], u0[:, -1] = values["left"], values["right"]
        u = solve_burgers_dirichlet(u0, grid, t_final, viscosity, n_steps, values["left"], values["right"])
        per_sample = [f for f in ("left", "right") if walls[f] is not None]
        if per_sample:
            boundary = [{"type": "dirichlet", "faces": ["left", "right"],
                         **{f: settings[f] for f in ("left", "right") if walls[f] is None}}]
        else:
            boundary = [{"type": "dirichlet", "left": settings["left"], "right": settings["right"]}]
        return BoundaryProblem(
            name="burgers_dirichlet",
            x=_to_tensor(u0[:, None, :]),
            y=_to_tensor(u[:, None, :]),
            grid=torch.from_numpy(grid),
            boundary=boundary,
            boundary_values={f: _to_tensor(values[f]) for f in per_sample},
            domain=domain,
            times=torch.tensor([t_final], dtype=torch.float64),
            params={f: values[f] for f in per_sample},
            settings=settings,
        )

    return cached_problem("burgers_dirichlet", settings, build, cache_dir)
