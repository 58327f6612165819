"""The ProbConserv update of a Gaussian ``N(mu, Sigma)`` by a linear constraint ``G u = b`` with noise ``s2``.

    A      = s2 I + G Sigma G^T
    mu~    = mu - Sigma G^T A^-1 (G mu - b)
    Sigma~ = Sigma - Sigma G^T A^-1 G Sigma  =  Sigma - W W^T,   W = Sigma G^T M,  M M^T = A^-1

Only ``Sigma G^T`` (``n x m``) and the ``m x m`` matrix ``A`` are formed, so the cost is ``O(n m^2)`` plus one
product with ``Sigma``. ``M = L^-T`` from a Cholesky factor of ``A``; when ``A`` is singular (a constraint that
the prior already fixes, e.g. applying an exact update twice) the pseudo-inverse is used, provided the prior mean
is consistent with the constraint along the singular directions; otherwise the system has no solution.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023, Section 3 (the update) and the HardC baseline.
"""

from dataclasses import dataclass
from typing import Optional

import torch

from ._checks import eps_of

__all__ = ["UpdateFactors", "solve_update", "factor_update"]


@dataclass
class UpdateFactors:
    """Thin factors of one update: ``W`` (``..., n, m``), ``M`` (``..., m, m``) and ``log det A`` (or ``None``)."""

    W: torch.Tensor
    M: torch.Tensor
    logdet_A: Optional[torch.Tensor]

    def correction(self, residual):
        """``Sigma G^T A^-1 residual`` for a residual of shape ``(..., m)``; returns ``(..., n)``."""
        # Element-wise products and sums over the short m axis: batched matmuls of (n x m) by (m x 1) blocks
        # cost far more in per-batch overhead than their O(n m) flops.
        v = (self.M * residual[..., :, None]).sum(-2)
        return (self.W * v[..., None, :]).sum(-1)


def solve_update(SG, G, residual, noise, reference, residual_scale):
    """Factor ``A = noise I + G SG`` and return :class:`UpdateFactors`.

    Parameters
    ----------
    SG : torch.Tensor, shape ``(..., n, m)``
        ``Sigma G^T``.
    G : torch.Tensor, shape ``(m, n)``
    residual : torch.Tensor, shape ``(..., m)``
        ``G mu - b``.
    noise : torch.Tensor (scalar)
        Constraint variance ``s2 >= 0``.
    reference : torch.Tensor, shape ``(..., m)``
        Scale of each row of ``A`` (``sum_j G_ij^2 Sigma_jj + s2``); eigenvalues below a round-off fraction of
        it count as zero.
    residual_scale : torch.Tensor, shape ``(..., m)``
        Scale of ``G mu`` and ``b`` (``|G| |mu| + |b|``), to judge consistency along singular directions.

    Returns
    -------
    UpdateFactors
    """
    A = (SG.mT @ G.mT).mT  # a single (batch*m, n) x (n, m) product instead of a batched one
    return factor_update(A, SG, residual, noise, reference, residual_scale)


def factor_update(GSG, SG, residual, noise, reference, residual_scale):
    """Factor ``A = noise I + GSG`` given ``GSG = G Sigma G^T``; see :func:`solve_update`.

    The domain-decomposed layer (:mod:`probconserv_ext.distributed`) sums ``GSG`` over ranks and calls this with
    each rank's slab of ``SG``.

    Parameters
    ----------
    GSG : torch.Tensor, shape ``(..., m, m)``
        ``G Sigma G^T`` (symmetrized here).
    SG, residual, noise, reference, residual_scale
        As in :func:`solve_update` (``SG`` may be a slab of rows: only ``W = SG M`` uses it).

    Returns
    -------
    UpdateFactors
    """
    A = GSG
    m = A.shape[-1]
    eye = torch.eye(m, dtype=SG.dtype, device=SG.device)
    A = 0.5 * (A + A.mT) + noise * eye
    rtol = 1e3 * eps_of(SG.dtype) ** 0.75  # about 2e-9 in float64, 2e-2 in float32
    floor = rtol * reference.amax(-1)
    L, info = torch.linalg.cholesky_ex(A)
    diagL = torch.diagonal(L, dim1=-2, dim2=-1)
    if bool((info == 0).all()) and bool((diagL**2 > floor[..., None]).all()):
        M = torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False).mT
        return UpdateFactors(_thin_matmul(SG, M), M, 2 * diagL.log().sum(-1))

    # Singular A: pseudo-inverse on the range of A, after checking that G mu = b is solvable on its null space.
    evals, Q = torch.linalg.eigh(A)
    keep = evals > torch.maximum(floor, rtol * evals.amax(-1))[..., None]
    z = (Q.mT @ residual[..., :, None]).squeeze(-1)
    zscale = (Q.abs().mT @ residual_scale[..., :, None]).squeeze(-1)
    bad = (~keep) & (z.abs() > eps_of(SG.dtype) ** 0.5 * (zscale + 1e-300))
    if bool(bad.any()):
        raise ValueError(
            "singular constraint system: A = noise*I + G Sigma G^T is singular (a constraint row touches only "
            "nodes with zero variance, or rows of G are linearly dependent, or an ensemble has fewer members "
            "than constraints) and the prior mean violates the constraint along it, so G u = b cannot be "
            "enforced; use noise > 0, give those nodes positive variance, or remove dependent rows"
        )
    inv_sqrt = torch.where(keep, evals.clamp_min(torch.finfo(evals.dtype).tiny).rsqrt(), torch.zeros_like(evals))
    M = Q * inv_sqrt[..., None, :]
    return UpdateFactors(_thin_matmul(SG, M), M, None)


def _thin_matmul(X, M):
    """``X @ M`` for ``X`` of shape ``(..., n, m)`` and a small ``M`` of shape ``(..., m, m)``: O(n m^2)."""
    if M.shape[-1] == 1:
        return X * M[..., 0, :][..., None, :]
    return (X[..., :, :, None] * M[..., None, :, :]).sum(-2)
