"""Stokes' second problem: a fluid layer driven by a wall oscillating in its own plane.

    u_t = nu u_yy on (0, L),  u(0, t) = U cos(w t),  u(L, t) = 0,
    u(y, 0) = U exp(-k y) cos(k y),  k = sqrt(w / (2 nu)),

whose semi-infinite solution is the Stokes layer ``U exp(-k y) cos(w t - k y)``; the fixed far
wall adds a transient of relative size ``exp(-k L)``.

Space is discretised by second-order central differences with Dirichlet rows; the resulting
linear ODE system is diagonal in the discrete sine basis and is integrated *exactly* in time
(the forcing is a cosine), so the only error is the spatial O(h^2) one, at any output time.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
import torch

from _physics_constrained.validation import check_int, check_range

from .base import BoundaryProblem, _to_tensor, _uniform, cached_problem, common_settings, shared_docs

__all__ = [
    "stokes_second_problem",
    "stokes_spacetime",
    "solve_stokes_dirichlet",
    "stokes_layer",
    "stokes_exact",
    "STOKES_PRESETS",
]

# Space-time presets (25 frames up to t = 1.2, the paper's "t_M = 1.2"). "reference": the reference code's
# viscosity-0.1 file. "thin_layer": the layer thickness 1 / k = sqrt(2 nu / w) is 0.035-0.071 for w in [2, 8],
# i.e. 4.5-9 cells at N = 129 and 17-35 at N = 501, while 85% of ||y||^2 lies within 5% of the walls.
STOKES_PRESETS = {
    "reference": dict(viscosity=0.1, frequency=(2.0, 8.0), t_final=1.2, n_times=25),
    "thin_layer": dict(viscosity=0.005, frequency=(2.0, 8.0), t_final=1.2, n_times=25),
}


def stokes_layer(y, t, amplitude, frequency, viscosity):
    """Exact Stokes layer over a semi-infinite fluid, ``U exp(-k y) cos(w t - k y)``.

    Parameters
    ----------
    y : numpy.ndarray
        Distances from the wall, broadcastable against the others.
    t : numpy.ndarray or float
        Times.
    amplitude, frequency, viscosity : numpy.ndarray or float
        ``U``, ``w`` and ``nu``.

    Returns
    -------
    numpy.ndarray

    References
    ----------
    Stokes, G. G. (1851). On the effect of the internal friction of fluids on the motion of
    pendulums. Trans. Camb. Phil. Soc. 9, 8-106.
    """
    k = np.sqrt(frequency / (2 * viscosity))
    return amplitude * np.exp(-k * y) * np.cos(frequency * t - k * y)


def stokes_exact(y, times, amplitude, frequency, viscosity, length=1.0, n_terms=400, n_quadrature=20001):
    """Exact solution of the generator's problem on a layer of finite depth ``L``.

    ``u_t = nu u_yy``, ``u(0, t) = U cos(w t)``, ``u(L, t) = 0``, ``u(y, 0) = U exp(-k y) cos(k y)`` for
    ``0 <= y < L`` (:func:`stokes_layer` at ``t = 0``, which does not vanish at ``y = L``; the solution is
    smooth for ``t > 0``). It is the periodic state ``Re[U e^{i w t} sinh(kappa (L - y)) / sinh(kappa L)]``,
    ``kappa = sqrt(i w / nu)``, plus a transient ``sum_n c_n exp(-nu (n pi / L)^2 t) sin(n pi y / L)`` whose
    coefficients are sine-series coefficients of the initial mismatch (trapezoid rule on ``n_quadrature``
    nodes).

    Parameters
    ----------
    y : numpy.ndarray
        ``(N,)`` positions in ``[0, L]``.
    times : numpy.ndarray
        ``(T,)`` times ``> 0``.
    amplitude, frequency, viscosity : float
        ``U``, ``w``, ``nu``.
    length : float
        Depth ``L``.
    n_terms : int
        Sine terms of the transient (they decay like ``exp(-nu (n pi / L)^2 t)``).
    n_quadrature : int
        Quadrature nodes of the coefficients.

    Returns
    -------
    numpy.ndarray
        ``(N, T)`` float64.
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    kappa = np.sqrt(1j * frequency / viscosity)

    def periodic(yy, tt):
        # sinh(kappa (L - y)) / sinh(kappa L) without overflow:
        # exp(-kappa y) (1 - e^{-2 kappa (L - y)}) / (1 - e^{-2 kappa L}).
        shape = (np.exp(-kappa * yy) * (1 - np.exp(-2 * kappa * (length - yy))) / (1 - np.exp(-2 * kappa * length)))
        return np.real(amplitude * np.multiply.outer(shape, np.exp(1j * frequency * np.atleast_1d(tt))))

    q = np.linspace(0.0, length, n_quadrature)
    mismatch = stokes_layer(q, 0.0, amplitude, frequency, viscosity) - periodic(q, 0.0)[:, 0]
    n = np.arange(1, n_terms + 1)
    basis = np.sin(np.pi * np.outer(n, q) / length)
    weights = np.full(q.size, q[1] - q[0])
    weights[[0, -1]] /= 2
    coef = (2 / length) * basis @ (mismatch * weights)
    decay = np.exp(-viscosity * np.outer((np.pi * n / length) ** 2, t))
    transient = np.sin(np.pi * np.outer(y, n) / length) @ (coef[:, None] * decay)
    return periodic(y, t) + transient


def solve_stokes_dirichlet(u0, grid, times, amplitude, frequency, viscosity):
    """Semi-discrete solution of ``u_t = nu u_yy``, ``u(0,t) = U cos(w t)``, ``u(L,t) = 0``.

    Parameters
    ----------
    u0 : numpy.ndarray
        ``(S, N)`` initial values (only interior nodes are used).
    grid : numpy.ndarray
        ``(N,)`` uniform nodes including both end points.
    times : numpy.ndarray
        ``(T,)`` output times (``t >= 0``).
    amplitude, frequency, viscosity : numpy.ndarray
        ``(S,)`` parameters per sample.

    Returns
    -------
    numpy.ndarray
        ``(S, N, T)`` float64 solution; end values are the exact boundary values.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    n_samples, n = u0.shape
    m = n - 2
    h = (grid[-1] - grid[0]) / (n - 1)
    t = np.asarray(times, dtype=np.float64)[None, None, :]
    U, w, nu = (np.asarray(a, dtype=np.float64)[:, None, None] for a in (amplitude, frequency, viscosity))

    j = np.arange(1, m + 1)
    # Eigenpairs of the Dirichlet second difference: -(2 - 2 cos(j pi / (m + 1))) / h^2.
    lam = ((2 - 2 * np.cos(j * np.pi / (m + 1))) / h**2)[None, :, None]
    # The wall value enters node 1's equation as nu U cos(w t) / h^2; its sine coefficients are:
    s = np.sqrt(2 / (m + 1)) * np.sin(j * np.pi / (m + 1))
    c = (nu / h**2) * U * s[None, :, None]
    mu = nu * lam
    a0 = sfft.dst(u0[:, 1:-1], type=1, norm="ortho", axis=1)[:, :, None]
    # a' = -mu a + c cos(w t): exact solution.
    decay = np.exp(-mu * t)
    a = a0 * decay + c * (mu * np.cos(w * t) + w * np.sin(w * t) - mu * decay) / (mu**2 + w**2)
    inner = sfft.idst(a, type=1, norm="ortho", axis=1)
    out = np.empty((n_samples, n, t.shape[-1]))
    out[:, 1:-1] = inner
    out[:, 0] = (U * np.cos(w * t))[:, 0]
    out[:, -1] = 0.0
    return out


@shared_docs
def stokes_second_problem(n_samples, n_points=501, t_final=1.0, n_times=None, frequency=(2.0, 8.0),
                          viscosity=(0.002, 0.02), amplitude=1.0, domain=(0.0, 1.0), seed=0, cache_dir=None):
    """Stokes' second problem with random wall frequency and viscosity.

    Single-step (``n_times=None``): ``u(., 0) -> u(., T)``, layout ``(S, 1, N)``, wall value
    ``U cos(w T)`` of shape ``(S,)``. Space-time (``n_times=T_n``): the input is the initial
    condition repeated over the times ``t_j = j T / T_n`` (``j = 1..T_n``), the target the solution
    there, layout ``(S, 1, N, T_n)``, wall values of shape ``(S, 1, T_n)``.

    Parameters
    ----------
    {n_samples}
    n_points : int
        Spatial nodes ``N`` including both end points.
    t_final : float
        Final time ``T``.
    n_times : int, optional
        Number of output times for the space-time problem (the paper uses 25).
    frequency, viscosity, amplitude : float or (float, float)
        ``w``, ``nu``, ``U``: fixed, or an interval drawn from uniformly per sample.
    domain : (float, float)
        ``(0, L)``; the oscillating wall is at 0, the fixed wall at ``L``.
    {seed, cache_dir}

    Returns
    -------
    BoundaryProblem
        ``boundary = [{"type": "dirichlet", "faces": ["left"]}, {"type": "dirichlet", "right": 0.0}]``
        (with ``"dim": -2`` on each entry for the space-time layout); ``params`` holds
        ``frequency``, ``viscosity`` and ``amplitude`` per sample.

    Notes
    -----
    The initial condition depends on ``w`` and ``nu`` only through ``k = sqrt(w / (2 nu))``, so
    with both drawn at random ``u(., T)`` is not a function of ``u(., 0)`` alone; the wall value
    ``U cos(w T)`` carries the missing information. A model given the boundary values (BOON) has
    it, an unconstrained FNO does not. Fix one of the two (e.g. ``viscosity=0.01``) for a problem
    that is a function of the input alone.

    References
    ----------
    Saad, N. et al. (2023). Guiding continuous operator learning through physics-based boundary
    constraints. ICLR.
    """
    settings = common_settings(n_samples, n_points, t_final, domain, seed, starts_at_zero="the oscillating wall")
    n_samples, n_points, t_final, seed = (settings[k] for k in ("n_samples", "n_points", "t_final", "seed"))
    domain = tuple(settings["domain"])
    if n_times is not None:
        n_times = check_int(n_times, "n_times", minimum=1)
    w_bounds = check_range(frequency, "frequency", positive=True)
    nu_bounds = check_range(viscosity, "viscosity", positive=True)
    u_bounds = check_range(amplitude, "amplitude")
    settings.update(n_times=n_times, frequency=list(w_bounds), viscosity=list(nu_bounds), amplitude=list(u_bounds))

    def build():
        rng = np.random.default_rng([seed, 2])
        grid = np.linspace(domain[0], domain[1], n_points)
        w = _uniform(rng, w_bounds, n_samples)
        nu = _uniform(rng, nu_bounds, n_samples)
        U = _uniform(rng, u_bounds, n_samples)
        u0 = stokes_layer(grid[None, :], 0.0, U[:, None], w[:, None], nu[:, None])
        u0[:, -1] = 0.0  # the far wall is fixed; exp(-k L) is what the transient removes
        if n_times is None:
            times = np.array([t_final])
        else:
            times = t_final * np.arange(1, n_times + 1) / n_times
        u = solve_stokes_dirichlet(u0, grid, times, U, w, nu)
        wall = U[:, None] * np.cos(w[:, None] * times[None, :])
        if n_times is None:
            x, y = u0[:, None, :], u[:, None, :, 0]
            bv = {"left": _to_tensor(wall[:, 0])}
            boundary = [{"type": "dirichlet", "faces": ["left"]}, {"type": "dirichlet", "right": 0.0}]
        else:
            x = np.repeat(u0[:, None, :, None], n_times, axis=-1)
            y = u[:, None]
            bv = {"left": _to_tensor(wall[:, None, :])}
            boundary = [
                {"type": "dirichlet", "faces": ["left"], "dim": -2},
                {"type": "dirichlet", "right": 0.0, "dim": -2},
            ]
        return BoundaryProblem(
            name="stokes_second_problem" if n_times is None else "stokes_second_problem_spacetime",
            x=_to_tensor(x),
            y=_to_tensor(y),
            grid=torch.from_numpy(grid),
            boundary=boundary,
            boundary_values=bv,
            domain=domain,
            times=torch.from_numpy(times),
            params={"frequency": w, "viscosity": nu, "amplitude": U},
            settings=settings,
        )

    return cached_problem("stokes_second_problem", settings, build, cache_dir)


def stokes_spacetime(n_samples, preset="thin_layer", n_points=129, seed=0, cache_dir=None, **overrides):
    """Space-time Stokes' second problem at one of :data:`STOKES_PRESETS`: 25 frames, wall values per frame.

    Parameters
    ----------
    n_samples : int
        Number of samples ``S``.
    preset : {"reference", "thin_layer"}
        ``"reference"``: viscosity 0.1 (the reference code's file); ``"thin_layer"``: viscosity 0.005, a layer
        ``sqrt(2 nu / w)`` thin (0.035-0.071) that still spans 4.5-9 cells at the default ``N = 129``.
        Frequencies ``w ~ U[2, 8]`` per sample, 25 frames up to ``t = 1.2``.
    n_points : int
        Spatial nodes ``N`` including both end points.
    seed : int
        Seed of the random draws; equal arguments give identical data.
    cache_dir : str or os.PathLike, optional
        Folder to cache the generated data in (see :func:`cached_problem`).
    **overrides : dict
        Any other argument of :func:`stokes_second_problem`, replacing the preset's value.

    Returns
    -------
    BoundaryProblem
        As :func:`stokes_second_problem` with ``n_times`` frames: ``(S, 1, N, 25)``, ``boundary_values["left"]``
        of shape ``(S, 1, 25)``.
    """
    if preset not in STOKES_PRESETS:
        raise ValueError(f"preset must be one of {tuple(STOKES_PRESETS)}, got {preset!r}")
    kwargs = {**STOKES_PRESETS[preset], **overrides}
    return stokes_second_problem(n_samples, n_points=n_points, seed=seed, cache_dir=cache_dir, **kwargs)
