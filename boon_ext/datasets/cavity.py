"""2-D lid-driven cavity: incompressible Navier-Stokes in vorticity-streamfunction form, in torch.

On the unit square, walls at rest except the lid ``y = 1``, which moves at speed ``U`` in ``+x``:

    w_t + u w_x + v w_y = nu (w_xx + w_yy),   lap psi = -w,   u = psi_y,  v = -psi_x,
    psi = 0 and d psi / dn = 0 on the fixed walls,  d psi / dy = U on the lid.

Discretisation, second order in space on ``N x N`` nodes including the walls (``h = 1 / (N - 1)``):

- interior vorticity: central differences for advection and the five-point Laplacian for diffusion;
- streamfunction: the five-point Poisson problem with ``psi = 0`` on the walls, solved exactly by a
  two-dimensional discrete sine transform (DST-I, computed with ``torch.fft``);
- wall vorticity from Thom's formula (``w_wall = -2 psi_1 / h^2 - 2 U_wall / h``), which is what
  carries the no-slip and lid conditions into the vorticity;
- classical fourth-order Runge-Kutta in time, with a step inside its stability region for both the
  diffusive and the advective eigenvalues.

Everything is batched over samples and runs on whatever device the tensors live on (CPU or GPU).
The solver is validated against the steady centreline profiles of Ghia, Ghia & Shin (1982).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from _physics_constrained.validation import check_choice, check_int, check_range, check_real

from .base import BoundaryProblem, _to_tensor, _uniform, cached_problem, common_settings, shared_docs

__all__ = ["lid_driven_cavity", "solve_cavity", "solve_cavity_steady", "cavity_velocity"]

_FIELDS = {"vorticity": ("vorticity",), "velocity": ("u", "v"), "both": ("vorticity", "u", "v")}
_INITIAL = ("rest", "random")


# ----------------------------------------------------------------------------- transforms
def _dst1(f: torch.Tensor, dim: int) -> torch.Tensor:
    """Unnormalised DST-I along ``dim``: ``X_k = sum_n f_n sin(pi k n / (m + 1))``, ``k, n = 1..m``.

    Computed from the FFT of the odd extension ``[0, f, 0, -reverse(f)]`` (length ``2 (m + 1)``), whose
    transform is ``-2i X``.
    """
    f = f.movedim(dim, -1)
    zero = torch.zeros_like(f[..., :1])
    ext = torch.cat([zero, f, zero, -f.flip(-1)], dim=-1)
    m = f.shape[-1]
    out = -torch.fft.rfft(ext, dim=-1).imag[..., 1 : m + 1] / 2
    return out.movedim(-1, dim)


class _Poisson:
    """Exact solver of the five-point problem ``-lap_h psi = w`` on the interior, ``psi = 0`` on the walls."""

    def __init__(self, n_points: int, h: float, dtype, device):
        m = n_points - 2
        k = torch.arange(1, m + 1, dtype=dtype, device=device)
        mu = (2 - 2 * torch.cos(math.pi * k / (m + 1))) / h**2  # eigenvalues of -d2/dx2 (Dirichlet)
        # DST-I is its own inverse up to 2 / (m + 1) per axis.
        self.scale = (2.0 / (m + 1)) ** 2 / (mu[:, None] + mu[None, :])

    def __call__(self, w_inner: torch.Tensor) -> torch.Tensor:
        return _dst1(_dst1(_dst1(_dst1(w_inner, -2), -1) * self.scale, -2), -1)


# ---------------------------------------------------------------------------- the scheme
def _pad(inner: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.pad(inner, (1, 1, 1, 1))


def _wall_vorticity(w: torch.Tensor, psi: torch.Tensor, lid: torch.Tensor, h: float) -> torch.Tensor:
    """Write Thom's wall vorticity into ``w`` (in place) from ``psi`` (walls at 0) and the lid speed.

    Arrays are indexed ``[..., i, j]`` with ``x = i h``, ``y = j h``. Corners, which the interior stencils never
    read, get the mean of their two neighbouring wall nodes.
    """
    c = 2.0 / h**2
    w[..., 0, 1:-1] = -c * psi[..., 1, 1:-1]  # x = 0
    w[..., -1, 1:-1] = -c * psi[..., -2, 1:-1]  # x = 1
    w[..., 1:-1, 0] = -c * psi[..., 1:-1, 1]  # y = 0
    w[..., 1:-1, -1] = -c * psi[..., 1:-1, -2] - 2.0 * lid[..., None] / h  # lid
    for i, j, di, dj in ((0, 0, 1, 1), (0, -1, 1, -2), (-1, 0, -2, 1), (-1, -1, -2, -2)):
        w[..., i, j] = 0.5 * (w[..., di, j] + w[..., i, dj])
    return w


def _state(w_inner: torch.Tensor, lid: torch.Tensor, poisson: _Poisson, h: float):
    """Full vorticity (walls from Thom's formula) and streamfunction for interior vorticity ``w_inner``."""
    psi = _pad(poisson(w_inner))
    w = _wall_vorticity(_pad(w_inner), psi, lid, h)
    return w, psi


def _rhs(w_inner: torch.Tensor, lid: torch.Tensor, nu: torch.Tensor, poisson: _Poisson, h: float) -> torch.Tensor:
    w, psi = _state(w_inner, lid, poisson, h)
    u = (psi[..., 1:-1, 2:] - psi[..., 1:-1, :-2]) / (2 * h)
    v = -(psi[..., 2:, 1:-1] - psi[..., :-2, 1:-1]) / (2 * h)
    wx = (w[..., 2:, 1:-1] - w[..., :-2, 1:-1]) / (2 * h)
    wy = (w[..., 1:-1, 2:] - w[..., 1:-1, :-2]) / (2 * h)
    lap = (w[..., 2:, 1:-1] + w[..., :-2, 1:-1] + w[..., 1:-1, 2:] + w[..., 1:-1, :-2] - 4 * w[..., 1:-1, 1:-1]) / h**2
    return -u * wx - v * wy + nu[..., None, None] * lap


def cavity_velocity(psi: torch.Tensor, lid: torch.Tensor, h: float):
    """Velocities ``u = psi_y``, ``v = -psi_x`` (central differences) with the wall values imposed.

    Parameters
    ----------
    psi : torch.Tensor
        ``(..., N, N)`` streamfunction indexed ``[i, j]`` (``x = i h``, ``y = j h``), zero on the walls.
    lid : torch.Tensor
        ``(...)`` lid speeds.
    h : float
        Grid spacing.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``u`` and ``v``, ``(..., N, N)``: zero on the walls except ``u = U`` on the lid's nodes between the
        corners (the corners belong to the fixed side walls).
    """
    u = torch.zeros_like(psi)
    v = torch.zeros_like(psi)
    u[..., 1:-1, 1:-1] = (psi[..., 1:-1, 2:] - psi[..., 1:-1, :-2]) / (2 * h)
    v[..., 1:-1, 1:-1] = -(psi[..., 2:, 1:-1] - psi[..., :-2, 1:-1]) / (2 * h)
    u[..., 1:-1, -1] = lid[..., None]
    return u, v


def _stable_dt(h: float, nu: float, speed: float, cfl: float) -> float:
    # RK4 reaches -2.78 on the real axis and +-2.83i on the imaginary one. The five-point Laplacian's
    # eigenvalues reach -8 nu / h^2; central advection's reach max(|u| + |v|) / h (``speed`` is that maximum).
    return cfl * min(2.78 * h**2 / (8 * nu), 2.83 * h / max(speed, 1e-12))


def _rk4(w_inner, lid, nu, poisson, h, dt):
    k1 = _rhs(w_inner, lid, nu, poisson, h)
    k2 = _rhs(w_inner + 0.5 * dt * k1, lid, nu, poisson, h)
    k3 = _rhs(w_inner + 0.5 * dt * k2, lid, nu, poisson, h)
    k4 = _rhs(w_inner + dt * k3, lid, nu, poisson, h)
    return w_inner + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _as_batch(value, name, n, dtype, device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"{name} must be a number or have shape ({n},), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got {t}")
    return t


def solve_cavity(psi0, times, lid_speed=1.0, viscosity=0.01, cfl=0.8):
    """Integrate the lid-driven cavity from the streamfunction ``psi0`` and return frames at ``times``.

    Parameters
    ----------
    psi0 : torch.Tensor
        ``(S, N, N)`` initial streamfunction, indexed ``[i, j]`` with ``x = i h``, ``y = j h``; its wall values
        are ignored (``psi = 0`` there). Its dtype and device are the solver's.
    times : sequence of float
        Increasing output times ``> 0``; the lid moves from ``t = 0`` (an impulsive start).
    lid_speed : float or torch.Tensor
        ``U`` (shared, or ``(S,)`` per sample).
    viscosity : float or torch.Tensor
        ``nu > 0`` (shared, or ``(S,)``); the Reynolds number is ``U / nu`` (unit cavity).
    cfl : float
        Fraction of RK4's stability limit used as the time step (``(0, 1]``).

    Returns
    -------
    dict of str to torch.Tensor
        ``"vorticity"``, ``"psi"``, ``"u"``, ``"v"``: ``(S, T + 1, N, N)`` at ``t = 0`` (the initial field with the
        lid moving, i.e. wall vorticity from the lid) and at each output time.

    References
    ----------
    Thom, A. (1933). The flow past circular cylinders at low speeds. Proc. R. Soc. Lond. A 141, 651-669.
    E, W. and Liu, J.-G. (1996). Vorticity boundary condition and related issues for finite difference
    schemes. J. Comput. Phys. 124, 368-382.
    """
    psi0 = torch.as_tensor(psi0)
    if psi0.ndim != 3 or psi0.shape[1] != psi0.shape[2] or psi0.shape[1] < 5 or not psi0.is_floating_point():
        raise ValueError(f"psi0 must be a floating (S, N, N) tensor with N >= 5, got shape {tuple(psi0.shape)}")
    times = np.asarray(times, dtype=np.float64)
    bad = times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times))
    if bad or times[0] <= 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"times must be a non-empty increasing sequence of positive times, got {times}")
    cfl = check_real(cfl, "cfl", positive=True)
    if cfl > 1:
        raise ValueError(f"cfl must be in (0, 1], got {cfl}")
    s, n = psi0.shape[0], psi0.shape[1]
    dtype, device = psi0.dtype, psi0.device
    lid = _as_batch(lid_speed, "lid_speed", s, dtype, device)
    nu = _as_batch(viscosity, "viscosity", s, dtype, device)
    if not (nu > 0).all():
        raise ValueError(f"viscosity must be positive, got {nu}")
    h = 1.0 / (n - 1)
    poisson = _Poisson(n, h, dtype, device)

    psi_in = _pad(psi0[:, 1:-1, 1:-1])
    lap = (psi_in[:, 2:, 1:-1] + psi_in[:, :-2, 1:-1] + psi_in[:, 1:-1, 2:] + psi_in[:, 1:-1, :-2]
           - 4 * psi_in[:, 1:-1, 1:-1]) / h**2
    w_inner = -lap

    out = {k: [] for k in ("vorticity", "psi", "u", "v")}

    def record(w_inner):
        w, psi = _state(w_inner, lid, poisson, h)
        u, v = cavity_velocity(psi, lid, h)
        for k, a in zip(("vorticity", "psi", "u", "v"), (w, psi, u, v)):
            out[k].append(a)

    record(w_inner)
    t = 0.0
    # The advective limit needs max(|u| + |v|) over the run: bounded by 1.5 U from the lid-driven part
    # (measured about 1.1 U) plus the initial field's, and raised if a frame ever shows more.
    u0, v0 = cavity_velocity(psi_in, torch.zeros_like(lid), h)
    speed = float(1.5 * lid.abs().max() + (u0.abs() + v0.abs()).max())
    for t_out in times:
        dt_max = _stable_dt(h, float(nu.min()), speed, cfl)
        n_steps = max(1, math.ceil((t_out - t) / dt_max - 1e-9))
        dt = (t_out - t) / n_steps
        for _ in range(n_steps):
            w_inner = _rk4(w_inner, lid, nu, poisson, h, dt)
        t = float(t_out)
        record(w_inner)
        u_now, v_now = out["u"][-1], out["v"][-1]
        speed = max(speed, float((u_now.abs() + v_now.abs()).max()))
        if not torch.isfinite(w_inner).all():
            raise FloatingPointError(f"the cavity solve diverged before t = {t_out}")
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


def solve_cavity_steady(reynolds, n_points, tol=1e-6, max_time=200.0, cfl=0.8, dtype=torch.float64, device=None,
                        check_every=None):
    """Run the unit-lid cavity (``U = 1``, ``nu = 1 / Re``) from rest to steady state.

    Steady means ``max |w(t + dt) - w(t)| / dt < tol`` over the interior, checked every ``check_every`` steps.

    Parameters
    ----------
    reynolds : float
        ``Re = U L / nu`` with ``U = L = 1``.
    n_points : int
        Nodes per side ``N`` including both walls (``h = 1 / (N - 1)``); at least 5.
    tol : float
        Steady-state tolerance on the vorticity's time derivative.
    max_time : float
        Give up (``RuntimeError``) when not steady by this time.
    cfl : float
        Fraction of RK4's stability limit used as the time step.
    dtype : torch.dtype
        Floating dtype of the solve.
    device : torch.device or str, optional
        Where to solve (default CPU).
    check_every : int, optional
        Steps between steadiness checks (default: about every 0.5 time units).

    Returns
    -------
    dict
        ``"x"`` (``(N,)`` nodes), ``"psi"``, ``"vorticity"``, ``"u"``, ``"v"`` (``(N, N)``, indexed ``[i, j]``
        with ``x = x[i]``, ``y = x[j]``), ``"time"`` reached, ``"steps"``, ``"residual"`` (the last
        ``max |dw/dt|``).

    References
    ----------
    Ghia, U., Ghia, K. N. and Shin, C. T. (1982). High-Re solutions for incompressible flow using the
    Navier-Stokes equations and a multigrid method. J. Comput. Phys. 48, 387-411.
    """
    reynolds = check_real(reynolds, "reynolds", positive=True)
    n = check_int(n_points, "n_points", minimum=5)
    tol = check_real(tol, "tol", positive=True)
    max_time = check_real(max_time, "max_time", positive=True)
    h = 1.0 / (n - 1)
    nu = torch.full((1,), 1.0 / reynolds, dtype=dtype, device=device)
    lid = torch.ones(1, dtype=dtype, device=device)
    poisson = _Poisson(n, h, dtype, device)
    # max(|u| + |v|) stays below 1.5 U in the cavity (measured: about 1.1 at Re 100-1000).
    dt = _stable_dt(h, 1.0 / reynolds, 1.5, cfl)
    if check_every is None:
        check_every = max(1, int(0.5 / dt))
    check_every = check_int(check_every, "check_every", minimum=1)
    w_inner = torch.zeros(1, n - 2, n - 2, dtype=dtype, device=device)
    steps, t, residual = 0, 0.0, float("inf")
    while t < max_time:
        for _ in range(check_every - 1):
            w_inner = _rk4(w_inner, lid, nu, poisson, h, dt)
        new = _rk4(w_inner, lid, nu, poisson, h, dt)
        residual = float((new - w_inner).abs().max()) / dt
        w_inner = new
        steps += check_every
        t = steps * dt
        if not math.isfinite(residual):
            raise FloatingPointError(f"the cavity solve diverged at t = {t:.3f} (Re={reynolds}, N={n})")
        if residual < tol:
            break
    else:
        raise RuntimeError(f"the cavity did not reach steady state by t = {max_time} (Re={reynolds}, N={n}): "
                           f"max |dw/dt| = {residual:.3e} > tol = {tol}")
    w, psi = _state(w_inner, lid, poisson, h)
    u, v = cavity_velocity(psi, lid, h)
    return {"x": torch.linspace(0, 1, n, dtype=dtype), "psi": psi[0], "vorticity": w[0], "u": u[0], "v": v[0],
            "time": t, "steps": steps, "residual": residual}


# ----------------------------------------------------------------------------- initial fields
def _random_streamfunction(rng: np.random.Generator, n_samples: int, n: int, n_modes: int, amplitude: float):
    """Smooth random streamfunctions with ``psi = d psi / dn = 0`` on every wall, scaled to a peak speed.

    ``psi = x^2 (1 - x)^2 y^2 (1 - y)^2 sum_{k,l <= K} a_kl sin(k pi x) sin(l pi y)`` with
    ``a_kl ~ N(0, (k^2 + l^2)^-2)``: the factor makes the velocity vanish on the walls, so the field meets the
    no-slip walls (the lid starts moving at ``t = 0``).
    """
    x = np.linspace(0, 1, n)
    k = np.arange(1, n_modes + 1)
    a = rng.standard_normal((n_samples, n_modes, n_modes)) / (k[:, None] ** 2 + k[None, :] ** 2)
    sk = np.sin(np.pi * np.outer(k, x))  # (K, N)
    psi = np.einsum("skl,ki,lj->sij", a, sk, sk)
    bump = (x * (1 - x)) ** 2
    psi *= (bump[:, None] * bump[None, :])[None]
    h = 1.0 / (n - 1)
    u = (psi[:, 1:-1, 2:] - psi[:, 1:-1, :-2]) / (2 * h)
    v = (psi[:, 2:, 1:-1] - psi[:, :-2, 1:-1]) / (2 * h)
    peak = np.sqrt(u**2 + v**2).reshape(n_samples, -1).max(-1)
    return psi * (amplitude / peak)[:, None, None]


# --------------------------------------------------------------------------------- generator
@shared_docs
def lid_driven_cavity(n_samples, n_points=33, t_final=2.0, n_times=25, viscosity=0.01, lid_speed=(0.5, 1.5),
                      initial="random", ic_amplitude=0.5, ic_modes=4, fields="vorticity", refine=2, seed=0,
                      cache_dir=None):
    """Lid-driven cavity frames: the initial field -> 25 frames up to ``t_final``, per-sample lid speed.

    Each sample starts either from rest or from a random smooth incompressible field that meets the no-slip
    walls; at ``t = 0`` the lid starts moving at the sample's speed ``U`` (drawn uniformly from ``lid_speed``).
    The viscosity is shared, so the sample's Reynolds number is ``U / viscosity`` (default 50-150 around the
    paper's Re = 100). The solve runs on a grid ``refine`` times finer and is sub-sampled to ``n_points``, as
    the paper sub-samples its data.

    Layout (space-time, two spatial axes): ``x`` is the ``t = 0`` field repeated over the ``T`` frames and
    ``y`` the frames at ``t_j = j t_final / T`` (``j = 1..T``), both ``(S, C, N, N, T)`` indexed
    ``[s, c, i, j, t]`` with ``x = i h`` (spatial axis 0) and ``y = j h`` (axis 1, lid at ``j = N - 1``). The
    ``t = 0`` field holds the lid's velocity (and, for the vorticity, the wall vorticity it creates), so even
    from rest the input tells the samples apart.

    Parameters
    ----------
    {n_samples}
    n_points : int
        Nodes per side ``N`` of the returned grid, both walls included (the paper: 50).
    t_final : float
        Time of the last frame (the paper's article: 2).
    n_times : int
        Frames ``T`` (the paper: 25).
    viscosity : float
        ``nu``, shared by all samples.
    lid_speed : float or (float, float)
        ``U``: fixed, or an interval drawn from uniformly per sample.
    initial : {"random", "rest"}
        Start from a random field meeting the walls, or from rest.
    ic_amplitude : float
        Peak speed of the random initial field (ignored from rest).
    ic_modes : int
        Sine modes per axis of the random initial field.
    fields : {"vorticity", "velocity", "both"}
        Channels: ``[w]``, ``[u, v]`` or ``[w, u, v]``.
    refine : int
        The solver grid has ``refine (N - 1) + 1`` nodes per side; its every ``refine``-th node is returned.
    {seed, cache_dir}

    Returns
    -------
    BoundaryProblem
        ``boundary = [{"type": "dirichlet", "faces": ["left", "right"], "dim": -3},
        {"type": "dirichlet", "faces": ["left", "right"], "dim": -2}]`` and ``boundary_values`` under the keys
        ``"left0"`` (``x = 0``), ``"right0"`` (``x = 1``), ``"left1"`` (``y = 0``), ``"right1"`` (the lid), each
        ``(S, C, N, T)``: the target's wall values at every frame. For the vorticity they are part of the
        solution (Thom's wall vorticity), as the paper takes them; for the velocities they are the prescribed
        no-slip and lid values (``u = U`` on the lid between the corners, 0 elsewhere). ``params`` holds
        ``lid_speed`` and ``reynolds`` per sample.

    References
    ----------
    Saad, N. et al. (2023). Guiding continuous operator learning through physics-based boundary
    constraints. ICLR.
    Ghia, U., Ghia, K. N. and Shin, C. T. (1982). High-Re solutions for incompressible flow using the
    Navier-Stokes equations and a multigrid method. J. Comput. Phys. 48, 387-411.
    """
    settings = common_settings(n_samples, n_points, t_final, (0.0, 1.0), seed)
    n_samples, n_points, t_final, seed = (settings[k] for k in ("n_samples", "n_points", "t_final", "seed"))
    if n_points < 5:
        raise ValueError(f"n_points must be an integer >= 5, got {n_points}")
    n_times = check_int(n_times, "n_times", minimum=1)
    viscosity = check_real(viscosity, "viscosity", positive=True)
    u_bounds = check_range(lid_speed, "lid_speed", positive=True)
    check_choice(initial, "initial", _INITIAL)
    ic_amplitude = check_real(ic_amplitude, "ic_amplitude", nonnegative=True)
    ic_modes = check_int(ic_modes, "ic_modes", minimum=1)
    check_choice(fields, "fields", tuple(_FIELDS))
    refine = check_int(refine, "refine", minimum=1)
    settings.update(n_times=n_times, viscosity=viscosity, lid_speed=list(u_bounds), initial=initial,
                    ic_amplitude=ic_amplitude, ic_modes=ic_modes, fields=fields, refine=refine)
    del settings["domain"]

    def build():
        rng = np.random.default_rng([seed, 7])
        lid = _uniform(rng, u_bounds, n_samples)
        n_fine = refine * (n_points - 1) + 1
        if initial == "random" and ic_amplitude > 0:
            psi0 = _random_streamfunction(rng, n_samples, n_fine, ic_modes, ic_amplitude)
        else:
            psi0 = np.zeros((n_samples, n_fine, n_fine))
        times = t_final * np.arange(1, n_times + 1) / n_times
        sol = solve_cavity(torch.from_numpy(psi0), times, torch.from_numpy(lid), viscosity)
        chans = torch.stack([sol[k] for k in _FIELDS[fields]], dim=1)[..., ::refine, ::refine]  # (S, C, T+1, N, N)
        chans = chans.permute(0, 1, 3, 4, 2)  # (S, C, N, N, T + 1)
        x = chans[..., :1].expand(*chans.shape[:-1], n_times)
        y = chans[..., 1:]
        bv = {"left0": y[:, :, 0], "right0": y[:, :, -1], "left1": y[:, :, :, 0], "right1": y[:, :, :, -1]}
        return BoundaryProblem(
            name="lid_driven_cavity",
            x=_to_tensor(x.numpy()),
            y=_to_tensor(y.numpy()),
            grid=torch.linspace(0, 1, n_points, dtype=torch.float64),
            boundary=[
                {"type": "dirichlet", "faces": ["left", "right"], "dim": -3},
                {"type": "dirichlet", "faces": ["left", "right"], "dim": -2},
            ],
            boundary_values={k: _to_tensor(v.numpy()) for k, v in bv.items()},
            domain=(0.0, 1.0),
            times=torch.from_numpy(times),
            params={"lid_speed": lid, "reynolds": lid / viscosity},
            settings=settings,
        )

    return cached_problem("lid_driven_cavity", settings, build, cache_dir)
