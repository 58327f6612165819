"""A positive control for the update: a base model whose error is a mass deficit under its own variance.

Built from a problem's exact solution ``u`` at one time, on ``n`` nodes::

    phi      = a Gaussian bump behind the front (centre two widths behind it)
    variance = variance_scale * (phi + floor)
    mean     = u - alpha * phi + eta

``alpha`` makes the missing mass ``alpha * g . phi`` a fraction ``deficit`` of the total ``b``; ``eta`` is an error
the variance cannot see (a smooth oscillation with zero total and orthogonal to ``Sigma g``), scaled so that it
carries a share ``unexplained`` of the base MSE. The update can remove the deficit and nothing else: the bound
``1 / (1 - cos^2)`` (:func:`probconserv_ext.diagnostics.gain_bound`) is ``1 / unexplained`` up to the floor, and
the layer reaches it when ``b`` is the grid's own total ``g . u`` (the reproduction's closed-form total adds the
quadrature error of ``u``, which the update spreads like the deficit).
"""

import math
from typing import Dict

import numpy as np
import torch

from _physics_constrained.validation import check_real
from .problems.base import ConservationProblem, trapezoid_weights

__all__ = ["positive_control"]


def positive_control(problem: ConservationProblem, param: float, t: float, nx: int = 201, deficit: float = 0.07,
                     unexplained: float = 1.0 / 3.0, width: float = 0.02, variance_scale: float = 1e-4,
                     floor: float = 1e-10, discrete_total: bool = False) -> Dict[str, torch.Tensor]:
    """Mean, variance, truth and total of the positive control at one time (float64 tensors, shape ``(nx,)``).

    Parameters
    ----------
    problem : ConservationProblem
        With a front (``problem``'s ``_front``: Stefan's shock, the porous medium's front ``x = t``).
    param : float
        The problem's parameter (e.g. ``p* = 0.6``).
    t : float
        Time; the bump (centre two widths behind the front) must lie inside the domain.
    nx : int
        Nodes of the uniform grid.
    deficit : float
        Missing mass as a fraction of ``|b|`` (in ``(0, 1)``).
    unexplained : float
        Share of the base MSE that the variance cannot see, in ``(0, 1)``; the bound is ``1 / unexplained``.
    width : float
        Width (standard deviation) of the bump, in units of x.
    variance_scale, floor : float
        Variance ``variance_scale * (phi + floor)`` (the floor keeps every variance normal, so the layer accepts it).
    discrete_total : bool
        ``b = g . u`` (the truth's quadrature, isolating the layer) instead of the closed-form total.

    Returns
    -------
    dict
        ``grid``, ``truth``, ``mean``, ``variance``, ``b`` (shape ``(1,)``), ``front`` (scalar tensor) and
        ``quadrature_error`` (``g . u`` minus the closed-form total).

    Raises
    ------
    ValueError
        For fractions outside ``(0, 1)``, non-positive widths or scales, or a bump that leaves the domain.
    """
    for name, v in (("deficit", deficit), ("unexplained", unexplained)):
        v = check_real(v, name)
        if not 0 < v < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {v}")
    width = check_real(width, "width", positive=True)
    variance_scale = check_real(variance_scale, "variance_scale", positive=True)
    floor = check_real(floor, "floor", positive=True)
    grid = problem.grid(nx)
    u = problem.solution(grid, [t], param)[0]
    total = float(problem.total([t], param)[0])
    front = float(problem._front(np.asarray([float(t)]), param)[0])
    centre = front - 2.0 * width
    lo, hi = problem.domain
    if centre - 3 * width < lo:
        raise ValueError(f"width must keep the bump inside the domain behind the front at x = {front:.4f}, "
                         f"got {width}")
    g = trapezoid_weights(grid)
    phi = np.exp(-0.5 * ((grid - centre) / width) ** 2)
    var = variance_scale * (phi + floor)
    b = float(g @ u) if discrete_total else total
    alpha = deficit * abs(b) / float(g @ phi)
    # eta: a smooth oscillation with its components along g and Sigma g removed (Euclidean, the MSE's metric)
    v = np.sin(6 * math.pi * (grid - lo) / (hi - lo))
    Q, _ = np.linalg.qr(np.stack([g, var * g], 1))
    v = v - Q @ (Q.T @ v)
    # ||eta||^2 / (||eta||^2 + ||alpha phi||^2) = unexplained
    eta = v * math.sqrt(unexplained / (1 - unexplained)) * alpha * np.linalg.norm(phi) / np.linalg.norm(v)
    mean = u - alpha * phi + eta
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return {"grid": as_t(grid), "truth": as_t(u), "mean": as_t(mean), "variance": as_t(var), "b": as_t([b]),
            "front": as_t(front), "quadrature_error": as_t(float(g @ u) - total)}
