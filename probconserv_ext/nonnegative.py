"""Non-negative ProbConserv update for a diagonal covariance and one conservation row.

The constrained mean solves  min (u - mu)^T D^-1 (u - mu) + (g.u - b)^2 / s2  subject to u >= 0  (for s2 = 0 the
second term becomes the hard constraint g.u = b). Its KKT conditions give

    u_i(lam) = max(0, mu_i - lam d_i g_i),      psi(lam) = g.u(lam) - b - s2 lam = 0,

and psi is continuous, piecewise linear and non-increasing (its slope is -sum_active d_i g_i^2 - s2), so the
multiplier solves a monotone one-dimensional equation. We bracket and bisect it to find the active set
{u_i = 0}, then apply the ordinary (linear, exact) update to the prior with the active nodes pinned at zero
(zero mean, zero variance). That final step makes conservation exact to round-off, and on the correct active set
it reproduces the KKT solution, so the result is non-negative up to round-off. The returned Gaussian is the
update conditioned on the active set (a Laplace-type approximation of the truncated posterior).
"""

from typing import Tuple

import torch

__all__ = ["nonnegative_active_set"]


def _psi(lam, mu, c, g, b, noise):
    u = (mu - lam[..., None] * c).clamp_min(0)
    return (u * g).sum(-1) - b - noise * lam


def nonnegative_active_set(mu: torch.Tensor, d: torch.Tensor, g: torch.Tensor, b: torch.Tensor, noise: torch.Tensor,
                           iterations: int = 100) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pin the active nodes of the non-negative update.

    Parameters
    ----------
    mu, d : torch.Tensor, shape ``(..., n)``
        Prior mean and variances (compute dtype, broadcast to a common shape).
    g : torch.Tensor, shape ``(n,)``
        The constraint row.
    b : torch.Tensor, shape ``(...)``
        Right-hand side.
    noise : torch.Tensor
        Constraint variance ``s2 >= 0``.
    iterations : int
        Bisection steps (100 reach float64 resolution of the multiplier from any bracket).

    Returns
    -------
    (mu_pinned, d_pinned) : tuple of torch.Tensor
        Prior mean and variances with the active nodes set to zero; feed them to the linear update.

    Raises
    ------
    ValueError
        If no non-negative field satisfies the constraint, the mean is negative at nodes with zero variance, or
        no node the constraint touches has positive variance.
    """
    mu, d = torch.broadcast_tensors(mu, d)
    b = b.expand(mu.shape[:-1])
    fixed_negative = (d == 0) & (mu < 0)
    if bool(fixed_negative.any()):
        raise ValueError(
            "nonnegative=True is infeasible: the mean is negative at nodes with zero variance, which the update "
            "cannot move"
        )
    c = d * g
    with torch.no_grad():
        mu_, c_, b_ = mu.detach(), c.detach(), b.detach()
        nz = c_ != 0
        ratio = torch.where(nz, mu_ / torch.where(nz, c_, torch.ones_like(c_)), torch.zeros_like(c_))
        big = torch.finfo(mu_.dtype).max
        lo = torch.where(nz, ratio, torch.full_like(ratio, big)).amin(-1)
        hi = torch.where(nz, ratio, torch.full_like(ratio, -big)).amax(-1)
        if not bool(nz.any(-1).all()):
            raise ValueError("nonnegative=True needs positive variance on some node that the constraint touches")
        width = (hi - lo).abs() + hi.abs() + lo.abs() + 1.0
        for _ in range(200):
            grow_lo = _psi(lo, mu_, c_, g, b_, noise) < 0
            grow_hi = _psi(hi, mu_, c_, g, b_, noise) > 0
            if not bool((grow_lo | grow_hi).any()):
                break
            lo = torch.where(grow_lo, lo - width, lo)
            hi = torch.where(grow_hi, hi + width, hi)
            width = 2 * width
        else:
            raise ValueError(
                "nonnegative=True is infeasible: no non-negative field satisfies the constraint (for non-negative "
                "quadrature weights, b must be >= 0)"
            )
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            pos = _psi(mid, mu_, c_, g, b_, noise) > 0
            lo = torch.where(pos, mid, lo)
            hi = torch.where(pos, hi, mid)
        lam = 0.5 * (lo + hi)
        active = (mu_ - lam[..., None] * c_) <= 0
    return torch.where(active, torch.zeros_like(mu), mu), torch.where(active, torch.zeros_like(d), d)
