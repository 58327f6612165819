"""Gaussian random fields on an interval, for random initial conditions.

The field is ``sum_k sigma (tau^2 + lambda_k)^(-alpha/2) xi_k phi_k(x)`` with ``xi_k ~ N(0, 1)``,
where ``(lambda_k, phi_k)`` are the eigenpairs of ``-d^2/dx^2`` under the chosen boundary
condition, so every sample satisfies that condition exactly. ``sigma=25, tau=5, alpha=2``
(periodic) is the covariance ``625 (-Delta + 25 I)^-2`` used for Burgers in the FNO paper.
"""

from __future__ import annotations

import numpy as np

from _physics_constrained.validation import check_choice, check_int, check_real

__all__ = ["gaussian_random_field"]

_KINDS = ("periodic", "dirichlet", "neumann")


def gaussian_random_field(n_samples, grid, kind="periodic", alpha=2.0, tau=5.0, sigma=25.0, n_modes=None, rng=None):
    """Draw Gaussian random fields on ``grid`` with a boundary-condition-adapted eigenbasis.

    Parameters
    ----------
    n_samples : int
        Number of fields.
    grid : numpy.ndarray
        ``(N,)`` strictly increasing nodes; ``grid[0]`` and ``grid[-1]`` are the interval's ends.
    kind : {"periodic", "dirichlet", "neumann"}
        Eigenbasis: Fourier (period ``L``), sines (zero at both ends), cosines (zero slope at both ends).
    alpha, tau, sigma : float
        Smoothness, inverse length scale and amplitude of the covariance.
    n_modes : int, optional
        Number of non-constant modes (default ``N // 2``).
    rng : numpy.random.Generator, optional
        Random source (default: a fresh ``default_rng(0)``).

    Returns
    -------
    numpy.ndarray
        ``(n_samples, N)`` float64 fields. Periodic and Neumann fields have zero mean.

    References
    ----------
    Li, Z. et al. (2021). Fourier Neural Operator for Parametric Partial Differential Equations. ICLR.
    """
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 3 or not np.all(np.isfinite(grid)):
        raise ValueError(f"grid must be a finite 1-D array of at least 3 nodes, got shape {grid.shape}")
    if not np.all(np.diff(grid) > 0):
        raise ValueError(f"grid must be strictly increasing, got {grid[:8]}...")
    check_choice(kind, "kind", _KINDS)
    alpha = check_real(alpha, "alpha", positive=True)
    tau = check_real(tau, "tau", nonnegative=True)
    sigma = check_real(sigma, "sigma", nonnegative=True)
    n_modes = grid.size // 2 if n_modes is None else check_int(n_modes, "n_modes", minimum=1)
    rng = np.random.default_rng(0) if rng is None else rng

    length = grid[-1] - grid[0]
    s = (grid - grid[0]) / length
    k = np.arange(1, n_modes + 1)
    if kind == "periodic":
        lam = (2 * np.pi * k / length) ** 2
        std = sigma * (tau**2 + lam) ** (-alpha / 2)
        basis = np.sqrt(2.0) * np.concatenate([np.cos(2 * np.pi * np.outer(k, s)), np.sin(2 * np.pi * np.outer(k, s))])
        std = np.concatenate([std, std])
    else:
        lam = (np.pi * k / length) ** 2
        std = sigma * (tau**2 + lam) ** (-alpha / 2)
        trig = np.sin if kind == "dirichlet" else np.cos
        basis = np.sqrt(2.0) * trig(np.pi * np.outer(k, s))
    xi = rng.standard_normal((n_samples, std.size))
    fields = (xi * std) @ basis
    if kind == "dirichlet":
        # sin(pi k) is 1e-16-ish, not 0: make the end values exact.
        fields[:, 0] = 0.0
        fields[:, -1] = 0.0
    elif kind == "periodic":
        fields[:, -1] = fields[:, 0]
    return fields
