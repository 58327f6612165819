"""1-D heat equation with Neumann conditions: insulated left end, sinusoidal flux at the right.

    u_t = k u_xx on (0, L),  u_x(0, t) = 0,  u_x(L, t) = U sin(pi t),  u(x, 0) = u0(x).

Crank-Nicolson in time; central differences inside; the boundary rows are the second-order
one-sided stencils themselves, so every discrete solution satisfies
``(-3u0 + 4u1 - u2) / (2h) = 0`` and ``(3uN - 4u(N-1) + u(N-2)) / (2h) = U sin(pi t)`` to
linear-solver accuracy -- the form BOON's Neumann correction imposes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from _physics_constrained.validation import check_choice, check_int, check_range, check_real

from ..stencil import neumann_stencil
from .base import BoundaryProblem, _to_tensor, _uniform, cached_problem, common_settings, shared_docs
from .grf import gaussian_random_field

__all__ = ["heat_neumann", "heat_neumann_preset", "solve_heat_neumann", "HEAT_PRESETS"]

_INITIAL = ("grf", "cosine")

# The reference code's heat regime: a steep flux layer (about sqrt(k T) = 0.07 wide) and an initial condition
# cos(w pi x) that meets the insulated left end but not the right-end flux.
HEAT_PRESETS = {
    "reference": dict(diffusivity=0.01, flux_amplitude=5.0, initial="cosine", ic_frequency=(2.01, 3.99),
                      t_final=0.5),
}


@shared_docs
def solve_heat_neumann(u0, grid, t_final, diffusivity, flux_amplitude, n_steps, t_start=0.0):
    """Integrate the heat equation with flux conditions from ``t_start`` to ``t_final``.

    Parameters
    ----------
    {u0, grid, t_final}
    diffusivity : float
        ``k > 0``.
    flux_amplitude : numpy.ndarray or float
        ``U`` per sample (``(S,)``) or shared; right flux is ``U sin(pi t)``.
    n_steps : int
        Number of Crank-Nicolson steps.
    t_start : float
        Initial time.

    Returns
    -------
    numpy.ndarray
        ``(S, N)`` float64 solution at ``t_final``.

    References
    ----------
    Crank, J. and Nicolson, P. (1947). A practical method for numerical evaluation of solutions of
    partial differential equations of the heat-conduction type. Proc. Camb. Phil. Soc. 43, 50-67.
    """
    u = np.array(u0, dtype=np.float64, ndmin=2)
    n = u.shape[1]
    h = (grid[-1] - grid[0]) / (n - 1)
    dt = (t_final - t_start) / n_steps
    amp = np.broadcast_to(np.asarray(flux_amplitude, dtype=np.float64), (u.shape[0],))

    def operators(theta, tau):
        # theta-method rows: theta=1/2 Crank-Nicolson, theta=1 backward Euler.
        rr = diffusivity * tau / h**2
        lap = sp.diags([np.ones(n - 1), np.full(n, -2.0), np.ones(n - 1)], [-1, 0, 1], format="lil")
        lhs = (sp.identity(n, format="lil") - theta * rr * lap).tolil()
        rhs_op = (sp.identity(n, format="lil") + (1 - theta) * rr * lap).tolil()
        # Boundary rows: the one-sided stencils are algebraic constraints at the new time level.
        for row, side in ((0, "left"), (n - 1, "right")):
            lhs[row, :] = 0
            for node, weight in zip(*neumann_stencil(side, h)):
                lhs[row, node % n] = weight
        rhs_op[0, :] = 0
        rhs_op[n - 1, :] = 0
        return spla.splu(lhs.tocsc()), rhs_op.tocsr()

    def advance(v, t, op):
        lu, rhs_op = op
        b = rhs_op @ v
        b[0] = 0.0
        b[-1] = amp * np.sin(np.pi * t)
        return lu.solve(b)

    v = u.T.copy()  # (N, S): one factorisation, all samples as right-hand sides
    # Rannacher start: an initial condition that misses the discrete stencil excites the stiffest
    # modes, which Crank-Nicolson does not damp; backward-Euler half steps over the first two steps do.
    n_start = min(2, n_steps)
    be = operators(1.0, dt / 2)
    for k in range(1, 2 * n_start + 1):
        v = advance(v, t_start + k * dt / 2, be)
    if n_steps > n_start:
        cn = operators(0.5, dt)
        for step in range(n_start + 1, n_steps + 1):
            v = advance(v, t_start + step * dt, cn)
    return v.T


@shared_docs
def heat_neumann(n_samples, n_points=501, t_final=0.5, diffusivity=0.1, flux_amplitude=1.0, n_steps=None,
                 domain=(0.0, 1.0), initial="grf", ic_frequency=(2.01, 3.99), ic_alpha=2.0, ic_tau=3.0,
                 ic_sigma=10.0, seed=0, cache_dir=None):
    """Heat equation, insulated left end and flux ``U sin(pi t)`` at the right: ``u(., 0) -> u(., T)``.

    Parameters
    ----------
    {n_samples}
    n_points : int
        Spatial nodes ``N`` including both end points (the paper uses 500).
    t_final : float
        Time ``T`` of the target.
    diffusivity : float
        ``k > 0``.
    flux_amplitude : float or (float, float)
        ``U``: one value for all samples, or an interval to draw it from uniformly per sample.
    n_steps : int, optional
        Crank-Nicolson steps (default ``ceil(1000 T)``, so the time error stays below the space error).
    domain : (float, float)
        Spatial interval ``(0, L)``; must start at 0 for the insulated end to sit at ``x = 0``.
    initial : {"grf", "cosine"}
        Initial condition: a Gaussian random field in the cosine basis (zero slope at both ends), or
        ``cos(w pi x / L)`` with ``w`` drawn per sample from ``ic_frequency`` (zero slope at the left end only:
        it does not meet the right-end flux, as in the reference regime, see :data:`HEAT_PRESETS`).
    ic_frequency : float or (float, float)
        ``w`` of the cosine initial condition (ignored for ``"grf"``).
    ic_alpha, ic_tau, ic_sigma : float
        Gaussian random field of the initial condition (ignored for ``"cosine"``).
    {seed, cache_dir}

    Returns
    -------
    BoundaryProblem
        ``x = u0``, ``y = u(., T)`` of shape ``(S, 1, N)``; ``boundary`` =
        ``[{"type": "neumann", "left": 0.0, "domain": [0, L]}, {"type": "neumann", "faces": ["right"],
        "domain": [0, L]}]`` (``domain`` sets the stencil spacing ``h = L / (N - 1)``) and
        ``boundary_values = {"right": U sin(pi T)}`` of shape ``(S,)``; ``params`` holds ``flux_amplitude``
        (and ``ic_frequency`` for the cosine initial condition) per sample.

    References
    ----------
    Saad, N. et al. (2023). Guiding continuous operator learning through physics-based boundary
    constraints. ICLR.
    """
    settings = common_settings(n_samples, n_points, t_final, domain, seed,
                               starts_at_zero="the flux is U sin(pi t) at x = L", ic_alpha=ic_alpha, ic_tau=ic_tau,
                               ic_sigma=ic_sigma)
    n_samples, n_points, t_final, seed = (settings[k] for k in ("n_samples", "n_points", "t_final", "seed"))
    domain = tuple(settings["domain"])
    diffusivity = settings["diffusivity"] = check_real(diffusivity, "diffusivity", positive=True)
    amp_bounds = check_range(flux_amplitude, "flux_amplitude")
    settings["flux_amplitude"] = list(amp_bounds)
    n_steps = int(np.ceil(1000 * t_final)) if n_steps is None else check_int(n_steps, "n_steps", minimum=1)
    settings["n_steps"] = n_steps
    check_choice(initial, "initial", _INITIAL)
    w_bounds = check_range(ic_frequency, "ic_frequency", positive=True)
    if initial == "cosine":
        # Only the arguments that shape the data enter the settings (and the cache key).
        settings.update(initial=initial, ic_frequency=list(w_bounds))
        for k in ("ic_alpha", "ic_tau", "ic_sigma"):
            del settings[k]

    def build():
        rng = np.random.default_rng([seed, 1])
        grid = np.linspace(domain[0], domain[1], n_points)
        amp = _uniform(rng, amp_bounds, n_samples)
        params = {"flux_amplitude": amp}
        if initial == "cosine":
            w = params["ic_frequency"] = _uniform(rng, w_bounds, n_samples)
            u0 = np.cos(np.pi * w[:, None] * (grid[None, :] - domain[0]) / (domain[1] - domain[0]))
        else:
            u0 = gaussian_random_field(
                n_samples, grid, "neumann", settings["ic_alpha"], settings["ic_tau"], settings["ic_sigma"], rng=rng
            )
        u = solve_heat_neumann(u0, grid, t_final, diffusivity, amp, n_steps)
        return BoundaryProblem(
            name="heat_neumann",
            x=_to_tensor(u0[:, None, :]),
            y=_to_tensor(u[:, None, :]),
            grid=torch.from_numpy(grid),
            boundary=[
                {"type": "neumann", "left": 0.0, "domain": list(domain)},
                {"type": "neumann", "faces": ["right"], "domain": list(domain)},
            ],
            boundary_values={"right": _to_tensor(amp * np.sin(np.pi * t_final))},
            domain=domain,
            times=torch.tensor([t_final], dtype=torch.float64),
            params=params,
            settings=settings,
        )

    return cached_problem("heat_neumann", settings, build, cache_dir)


def heat_neumann_preset(n_samples, preset="reference", n_points=501, seed=0, cache_dir=None, **overrides):
    """:func:`heat_neumann` at one of :data:`HEAT_PRESETS`.

    Parameters
    ----------
    n_samples : int
        Number of samples ``S``.
    preset : {"reference"}
        ``"reference"``: diffusivity 0.01, flux amplitude 5 (the flux is ``5 sin(pi t)``, 5 at ``T = 0.5``),
        initial condition ``cos(w pi x)`` with ``w ~ U[2.01, 3.99]`` per sample.
    n_points : int
        Spatial nodes ``N`` including both end points (the paper: 500).
    seed : int
        Seed of the random draws; equal arguments give identical data.
    cache_dir : str or os.PathLike, optional
        Folder to cache the generated data in (see :func:`cached_problem`).
    **overrides : dict
        Any other argument of :func:`heat_neumann`, replacing the preset's value.

    Returns
    -------
    BoundaryProblem
        As :func:`heat_neumann`; ``params["ic_frequency"]`` holds ``w`` (the parameter-ordered split's key).
    """
    if preset not in HEAT_PRESETS:
        raise ValueError(f"preset must be one of {tuple(HEAT_PRESETS)}, got {preset!r}")
    return heat_neumann(n_samples, n_points=n_points, seed=seed, cache_dir=cache_dir,
                        **{**HEAT_PRESETS[preset], **overrides})
