"""The ProbConserv update of a Gaussian ``N(mu, Sigma)`` by a linear constraint ``G u = b`` with noise ``s2``.

    A      = s2 I + G Sigma G^T
    mu~    = mu - Sigma G^T A^-1 (G mu - b)
    Sigma~ = Sigma - Sigma G^T A^-1 G Sigma  =  Sigma - W W^T,   W = Sigma G^T M,  M M^T = A^-1

Only ``Sigma G^T`` (``n x m``) and the ``m x m`` matrix ``A`` are formed, so the cost is ``O(n m^2)`` plus one
product with ``Sigma``. ``M = D^-1/2 L^-T`` from a Cholesky factor ``L`` of the equilibrated ``D^-1/2 A D^-1/2``
(``D = diag(A)``), whose pivots are tested against a relative tolerance, so that the singularity test does not depend
on the scale of the rows of ``G`` or on the spread of the variances. When ``A`` is singular (a constraint that the
prior already fixes, e.g. applying an exact update twice) a generalized inverse is used, provided the prior mean is
consistent with the constraint along the singular directions to round-off; otherwise the system has no solution.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023, Section 3 (the update) and the HardC baseline.
"""

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from _physics_constrained.validation import eps_of

__all__ = ["UpdateFactors", "solve_update", "factor_update", "pivot_tolerance", "residual_tolerance",
           "refine_to_roundoff", "REFINE_STEPS"]

# Steps of iterative refinement allowed when an exact update (of the mean or of draws) misses round-off.
REFINE_STEPS = 3


@dataclass
class UpdateFactors:
    """Thin factors of one update: ``W`` (``..., n, m``), ``M`` (``..., m, m``) and ``log det A`` (or ``None``)."""

    W: torch.Tensor
    M: torch.Tensor
    logdet_A: Optional[torch.Tensor]

    def correction(self, residual: torch.Tensor) -> torch.Tensor:
        """``Sigma G^T A^-1 residual``: the change of the mean (or of a draw) that removes ``residual``.

        Parameters
        ----------
        residual : torch.Tensor, shape ``(..., m)``

        Returns
        -------
        torch.Tensor, shape ``(..., n)``
        """
        # Element-wise products and sums over the short m axis: batched matmuls of (n x m) by (m x 1) blocks
        # cost far more in per-batch overhead than their O(n m) flops.
        v = (self.M * residual[..., :, None]).sum(-2)
        return (self.W * v[..., None, :]).sum(-1)


def solve_update(SG: torch.Tensor, G: torch.Tensor, residual: torch.Tensor, noise: torch.Tensor,
                 reference: torch.Tensor, residual_scale: torch.Tensor) -> UpdateFactors:
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
        Scale of each row of ``A`` before cancellation (``sum_j G_ij^2 Sigma_jj + s2``); a row whose diagonal
        ``A_ii`` is below a round-off fraction of it counts as a zero row (a constraint the prior already fixes).
    residual_scale : torch.Tensor, shape ``(..., m)``
        Scale of ``G mu`` and ``b`` (``|G| |mu| + |b|``), to judge consistency along singular directions.

    Returns
    -------
    UpdateFactors
        Computed by :func:`factor_update` from ``G Sigma G^T = G SG``, which also says when it raises.
    """
    A = (SG.mT @ G.mT).mT  # a single (batch*m, n) x (n, m) product instead of a batched one
    return factor_update(A, SG, residual, noise, reference, residual_scale)


def pivot_tolerance(dtype: torch.dtype, n: int, m: int) -> float:
    """Relative floor for the pivots and eigenvalues of the equilibrated system (unit diagonal).

    An entry ``C_ij`` of the equilibrated ``C = D^-1/2 A D^-1/2`` is a sum of ``n`` products whose rounding error is at
    most about ``n eps sqrt(A_ii A_jj)`` (Cauchy-Schwarz bounds ``|G| Sigma |G|^T`` by the diagonal), i.e. ``n eps``
    in ``C``. A pivot (or eigenvalue) of ``C`` below a small multiple of that is indistinguishable from zero.

    Parameters
    ----------
    dtype : torch.dtype
        The compute dtype.
    n, m : int
        Nodes and constraint rows.

    Returns
    -------
    float
        At most 0.25.
    """
    return min(0.25, 16.0 * (n + m) * eps_of(dtype))


def residual_tolerance(dtype: torch.dtype, n: int) -> float:
    """Relative round-off level of ``G mu - b`` after an exact update, per row, against ``|G| |mu| + |b|``.

    A few hundred ``eps`` of the compute dtype, growing like ``sqrt(n)`` (the typical error of a length-``n`` dot
    product; the worst case ``n eps`` is not reached by blocked/pairwise summation in practice).

    Parameters
    ----------
    dtype : torch.dtype
        The compute dtype.
    n : int
        Nodes (the length of each dot product).

    Returns
    -------
    float
    """
    return 32.0 * eps_of(dtype) * (math.sqrt(n) + 16.0)


def factor_update(GSG: torch.Tensor, SG: torch.Tensor, residual: torch.Tensor, noise: torch.Tensor,
                  reference: torch.Tensor, residual_scale: torch.Tensor,
                  n_nodes: Optional[int] = None) -> UpdateFactors:
    """Factor ``A = noise I + GSG`` given ``GSG = G Sigma G^T``; see :func:`solve_update`.

    The system is equilibrated symmetrically, ``C = D^-1/2 A D^-1/2`` with ``D = diag(A)``, before a Cholesky
    factorisation whose pivots are checked against a relative tolerance (:func:`pivot_tolerance`). ``C`` has a unit
    diagonal, so the test does not change when a row of ``G`` (with its ``b``) is rescaled, nor with the spread of the
    variances: two constraints on disjoint sets of nodes give a diagonal ``A`` and are always accepted, whatever their
    scales. A row whose diagonal ``A_ii`` is a round-off fraction of ``reference_i`` (its scale before cancellation,
    e.g. a constraint the prior already satisfies exactly) counts as a zero row.

    When ``C`` is singular, an eigendecomposition of ``C`` gives a generalized inverse on its range, provided the
    residual has no component (beyond round-off, :func:`residual_tolerance`) along the null space; otherwise
    ``G u = b`` has no solution and a ``ValueError`` is raised.

    While compiling (``torch.compiler.is_compiling()``) the data-dependent singularity test is skipped (it needs a
    host synchronisation): the Cholesky path is always taken, and a singular system gives non-finite results instead
    of an error.

    The layer (:class:`probconserv_ext.layer.ProbConserv`) sums ``GSG`` over the parts of the node axis
    through its collectives and calls this with its part of ``SG`` (the whole of it on one process).

    Parameters
    ----------
    GSG : torch.Tensor, shape ``(..., m, m)``
        ``G Sigma G^T`` (symmetrized here).
    SG, residual, noise, reference, residual_scale
        As in :func:`solve_update` (``SG`` may be a slab of rows: only ``W = SG M`` uses it).
    n_nodes : int, optional
        Number of nodes ``n`` of the whole problem (for the tolerances); defaults to ``SG.shape[-2]``.

    Returns
    -------
    UpdateFactors

    Raises
    ------
    ValueError
        If ``A`` is singular and the prior mean violates the constraint along its null space.
    """
    m = GSG.shape[-1]
    n = SG.shape[-2] if n_nodes is None else n_nodes
    rtol = pivot_tolerance(SG.dtype, n, m)
    if m == 1:
        # One row: A is a scalar and C = 1 unless the row is zero (no symmetrisation or factorisation needed).
        A = GSG + noise
        d = A[..., 0]
        if torch.compiler.is_compiling() or bool((d > rtol * reference).all()):
            M = d.rsqrt()[..., None]
            return UpdateFactors(_thin_matmul(SG, M), M, d.log().sum(-1))
    else:
        A = 0.5 * (GSG + GSG.mT) + noise * torch.eye(m, dtype=SG.dtype, device=SG.device)
        d = torch.diagonal(A, dim1=-2, dim2=-1)
    if torch.compiler.is_compiling():
        s = d.rsqrt()
        return _from_cholesky(torch.linalg.cholesky_ex(A * s[..., :, None] * s[..., None, :])[0], s, d, SG)

    # Rows of A that vanish relative to their own scale are null directions; they are equilibrated with their
    # reference scale instead (the ratio |r_i| / scale_i stays meaningful) and zeroed in C.
    zero = d <= rtol * reference
    ref_or_one = torch.where(reference > 0, reference, torch.ones_like(reference))
    s = torch.where(zero, ref_or_one, d).rsqrt()
    if m == 1:
        C = torch.where(zero[..., None], torch.zeros_like(A), torch.ones_like(A))
    else:
        C = A * s[..., :, None] * s[..., None, :]
        keep_row = (~zero).to(C.dtype)
        C = C * keep_row[..., :, None] * keep_row[..., None, :]
        L, info = torch.linalg.cholesky_ex(C)
        if bool((info == 0).all()) and bool((torch.diagonal(L, dim1=-2, dim2=-1) ** 2 > rtol).all()):
            # every pivot is clear of zero, so no row was zeroed and s = d^-1/2 throughout
            return _from_cholesky(L, s, d, SG)

    # Singular C: generalized inverse on the range of C, after checking that G mu = b is solvable on its null space.
    evals, Q = torch.linalg.eigh(C)
    keep = evals > rtol
    z = (Q.mT @ (s * residual)[..., :, None]).squeeze(-1)
    zscale = (Q.abs().mT @ (s * residual_scale)[..., :, None]).squeeze(-1)
    tiny = torch.finfo(SG.dtype).tiny
    bad = (~keep) & (z.abs() > 2 * residual_tolerance(SG.dtype, n) * zscale + tiny)
    if bool(bad.any()):
        worst = float((z.abs() / (zscale + tiny)).masked_fill(~bad, 0).amax())
        raise ValueError(
            "singular constraint system: A = noise*I + G Sigma G^T is singular (a constraint row touches only "
            "nodes with zero variance, or rows of G are linearly dependent, or an ensemble has fewer members "
            "than constraints) and the prior mean violates the constraint along it (relative violation "
            f"{worst:.1e}, beyond round-off), so G u = b cannot be enforced; use noise > 0, give those nodes "
            "positive variance, or remove dependent rows"
        )
    inv_sqrt = torch.where(keep, evals.clamp_min(tiny).rsqrt(), torch.zeros_like(evals))
    M = s[..., :, None] * (Q * inv_sqrt[..., None, :])
    return UpdateFactors(_thin_matmul(SG, M), M, None)


def _from_cholesky(L, s, d, SG):
    """Factors from the Cholesky factor ``L`` of the equilibrated ``C = D^-1/2 A D^-1/2`` (``s = d^-1/2``).

    ``M = D^-1/2 L^-T`` satisfies ``M M^T = A^-1``, and ``log det A = 2 sum log diag(L) + sum log d``.
    """
    eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device)
    M = s[..., :, None] * torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False).mT
    logdet = 2 * torch.diagonal(L, dim1=-2, dim2=-1).log().sum(-1) + d.log().sum(-1)
    return UpdateFactors(_thin_matmul(SG, M), M, logdet)


def _thin_matmul(X, M):
    """``X @ M`` for ``X`` of shape ``(..., n, m)`` and a small ``M`` of shape ``(..., m, m)``: O(n m^2)."""
    if M.shape[-1] == 1:
        return X * M[..., 0, :][..., None, :]
    return (X[..., :, :, None] * M[..., None, :, :]).sum(-2)


Failure = Optional[Tuple[torch.Tensor, torch.Tensor]]


def refine_to_roundoff(u: torch.Tensor, G: torch.Tensor, b: torch.Tensor,
                       correction: Callable[[torch.Tensor], torch.Tensor], tol: float,
                       base_scale: torch.Tensor) -> Tuple[torch.Tensor, Failure]:
    """Iterative refinement of an exact update's result until ``G u = b`` holds to round-off.

    The residual is judged per row against ``base_scale + |G| |u|`` times ``tol``; passing against the lower bound
    ``base_scale + |G u|`` first settles the common case without a second pass over ``u``. Each failed check applies
    the update once more to the residual (``u - correction(G u - b)``), which multiplies an ill-conditioned
    system's relative residual by about ``cond eps``; at most ``REFINE_STEPS`` steps.

    Parameters
    ----------
    u : torch.Tensor, shape ``(..., n)``
    G : torch.Tensor, shape ``(m, n)``
    b : torch.Tensor, shape ``(..., m)``
    correction : callable
        Maps a residual ``(..., m)`` to the update's correction ``(..., n)``.
    tol : float
        Relative tolerance (:func:`residual_tolerance`).
    base_scale : torch.Tensor, broadcastable to ``(..., m)``
        The rest of the problem's scale, e.g. ``|G| |mu| + |b|``.

    Returns
    -------
    (torch.Tensor, None) or (torch.Tensor, (torch.Tensor, torch.Tensor))
        ``u`` refined, and ``None`` when it reached round-off, else the last residual and its scale.
    """
    for attempt in range(REFINE_STEPS + 1):
        Gu = u @ G.mT
        r = Gu - b
        if bool((r.abs() <= tol * (base_scale + Gu.abs())).all()):
            return u, None
        scale = base_scale + u.abs() @ G.abs().mT
        if bool((r.abs() <= tol * scale).all()):
            return u, None
        if attempt < REFINE_STEPS:
            u = u - correction(r)
    return u, (r, scale)
