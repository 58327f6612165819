"""Structured covariance operators: identity, diagonal, low rank plus diagonal, dense, and a rank-m downdate.

Each operator represents a batch of ``n x n`` covariance matrices without forming them (except
:class:`DenseCovariance`, which holds what the user passed). The ProbConserv update only needs products
``Sigma @ X`` with thin ``X`` (``n x m``) and the diagonal, so a diagonal prior costs ``O(n m^2)`` time and
``O(n m)`` memory, and its posterior stays "diagonal minus rank m" (:class:`DowndatedCovariance`), in the
spirit of ``linear_operator``/GPyTorch: the structure is kept until :meth:`Covariance.to_dense` is asked for.

Every operator implements the protocol of :class:`Covariance`; callers never branch on the concrete class, they ask
the operator (:attr:`Covariance.is_diagonal`, :meth:`Covariance.low_rank_split`).
"""

import abc
from typing import Callable, Optional, Tuple, Union

import torch

from _physics_constrained.validation import check_float_dtype, check_int, check_tensor

__all__ = ["Covariance", "IdentityCovariance", "DiagonalCovariance", "LowRankCovariance", "DenseCovariance",
           "DowndatedCovariance"]

# Maps standard-normal draws that several nodes share to the draws to use (a domain-decomposed caller broadcasts
# them from one rank, so that every slab of the nodes sees the same ones).
Shared = Optional[Callable[[torch.Tensor], torch.Tensor]]
Device = Optional[Union[str, torch.device]]


class Covariance(abc.ABC):
    """A batch of symmetric positive semi-definite ``n x n`` matrices, shape ``(*batch_shape, n, n)``.

    Subclasses implement the abstract methods; :meth:`to_dense`, :meth:`diagonal_dot`, :meth:`low_rank_split` and
    :attr:`is_diagonal` have defaults in terms of them.

    Parameters
    ----------
    n : int
        Number of nodes.
    batch_shape : torch.Size
        Leading (batch) shape.
    """

    def __init__(self, n: int, batch_shape: torch.Size):
        self.n = int(n)
        self.batch_shape = torch.Size(batch_shape)

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype:
        """Dtype of the operator's tensors."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Device of the operator's tensors."""

    @abc.abstractmethod
    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """``Sigma @ X``.

        Parameters
        ----------
        X : torch.Tensor, shape ``(..., n, k)``

        Returns
        -------
        torch.Tensor
            Shape ``(..., n, k)`` broadcast with ``batch_shape``.
        """

    @abc.abstractmethod
    def diagonal(self) -> torch.Tensor:
        """The variances ``diag(Sigma)``.

        Returns
        -------
        torch.Tensor
            Shape ``(*batch_shape, n)`` (may be a broadcast view).
        """

    @abc.abstractmethod
    def sample_noise(self, shape: Tuple[int, ...], generator: Optional[torch.Generator] = None,
                     shared: Shared = None) -> torch.Tensor:
        """Draws of ``N(0, Sigma)``.

        Parameters
        ----------
        shape : tuple of int
            Sample shape.
        generator : torch.Generator, optional
        shared : callable, optional
            Applied to the standard-normal draws that more than one node uses (the latent draws of a low-rank
            factor, those of a dense square root); a domain-decomposed caller passes a broadcast from one rank.

        Returns
        -------
        torch.Tensor
            Shape ``(*shape, *batch_shape, n)``.

        Raises
        ------
        ValueError
            If the operator cannot be sampled on its own (see :class:`DowndatedCovariance`).
        """

    @abc.abstractmethod
    def inv_quad_logdet(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x^T Sigma^-1 x, log det Sigma)``.

        Parameters
        ----------
        x : torch.Tensor, shape ``(..., n)``

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            The quadratic form (shape ``(...)`` broadcast with ``batch_shape``) and the log-determinant (shape
            ``batch_shape``, or broadcast with it).

        Raises
        ------
        ValueError
            If ``Sigma`` is singular (no density in ``R^n``).
        """

    @abc.abstractmethod
    def to(self, dtype: Optional[torch.dtype] = None, device: Device = None) -> "Covariance":
        """The same operator with its tensors cast to ``dtype`` and/or moved to ``device``.

        Parameters
        ----------
        dtype : torch.dtype, optional
        device : torch.device or str, optional

        Returns
        -------
        Covariance
            Of the same class.
        """

    # ------------------------------------------------------------------ defaults
    def to_dense(self) -> torch.Tensor:
        """The dense matrices (``O(n^2)`` memory, for inspection and tests).

        Returns
        -------
        torch.Tensor
            Shape ``(*batch_shape, n, n)``.
        """
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return self.matmul(eye).expand(*self.batch_shape, self.n, self.n)

    @property
    def is_diagonal(self) -> bool:
        """Whether ``Sigma`` is diagonal by construction (then :meth:`diagonal` describes it completely)."""
        return False

    def diagonal_dot(self, W: torch.Tensor) -> torch.Tensor:
        """``diag(Sigma) @ W^T``: the rows of ``W`` (shape ``(m, n)``) summed with the variances as weights.

        Parameters
        ----------
        W : torch.Tensor, shape ``(m, n)``

        Returns
        -------
        torch.Tensor
            Shape ``(*batch_shape, m)``.
        """
        return self.diagonal() @ W.mT

    def low_rank_split(self) -> Tuple["Covariance", Optional[torch.Tensor]]:
        """``(rest, U)`` with ``Sigma = rest + U U^T``, ``U`` of shape ``(..., n, r)`` or ``None``.

        The product with ``U U^T`` goes through the thin ``U^T X`` (``r x k``), a sum over the node axis: a
        domain-decomposed caller sums it over the ranks, so that only ``rest`` needs to act slab by slab.

        Returns
        -------
        (Covariance, torch.Tensor or None)
        """
        return self, None

    def _standard_normal(self, shape: Tuple[int, ...], extra: Tuple[int, ...],
                         generator: Optional[torch.Generator]) -> torch.Tensor:
        return torch.randn(*shape, *extra, dtype=self.dtype, device=self.device, generator=generator)


def _check_operand(t: torch.Tensor, name: str, ndim: int, layout: str) -> None:
    """A floating tensor with at least ``ndim`` dimensions (shape checks only: the layer checks values, e.g.
    non-negative variances, where it reads a prediction; a slab of a split field may hold no node)."""
    check_tensor(t, name, layout=layout, floating=True)
    if t.ndim < ndim:
        raise ValueError(f"{name} must be a tensor of shape {layout}, got shape {tuple(t.shape)}")


def _batch(a: torch.Size, b: torch.Size, name_a: str, name_b: str) -> torch.Size:
    """The broadcast of two batch shapes, or a ``ValueError`` naming both."""
    try:
        return torch.broadcast_shapes(a, b)
    except RuntimeError as err:
        raise ValueError(f"{name_a} and {name_b} must have broadcastable batch shapes, got {tuple(a)} and "
                         f"{tuple(b)}") from err


def _share(shared: Shared, z: torch.Tensor) -> torch.Tensor:
    return z if shared is None else shared(z)


class IdentityCovariance(Covariance):
    """``Sigma = I`` (the metric of the HardC baseline's least-squares projection).

    Parameters
    ----------
    n : int
        Number of nodes.
    dtype : torch.dtype
    device : torch.device or str, optional
    """

    def __init__(self, n: int, dtype: torch.dtype = torch.float64, device: Device = None):
        super().__init__(check_int(n, "n", minimum=1), torch.Size())
        self._dtype = check_float_dtype(dtype, "dtype")
        self._device = torch.device("cpu") if device is None else torch.device(device)

    dtype = property(lambda self: self._dtype, doc="Dtype of the operator's tensors.")
    device = property(lambda self: self._device, doc="Device of the operator's tensors.")

    @property
    def is_diagonal(self) -> bool:
        return True

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        return X

    def diagonal(self) -> torch.Tensor:
        return torch.ones(self.n, dtype=self.dtype, device=self.device)

    def diagonal_dot(self, W: torch.Tensor) -> torch.Tensor:
        return W.sum(-1)  # no vector of ones

    def sample_noise(self, shape: Tuple[int, ...], generator: Optional[torch.Generator] = None,
                     shared: Shared = None) -> torch.Tensor:
        return self._standard_normal(shape, (self.n,), generator)

    def inv_quad_logdet(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return (x * x).sum(-1), torch.zeros((), dtype=x.dtype, device=x.device)

    def to(self, dtype: Optional[torch.dtype] = None, device: Device = None) -> "Covariance":
        return IdentityCovariance(self.n, dtype or self.dtype, device or self.device)


class DiagonalCovariance(Covariance):
    """``Sigma = diag(d)``.

    Parameters
    ----------
    diag : torch.Tensor, shape ``(..., n)``
        Non-negative variances.
    """

    def __init__(self, diag: torch.Tensor):
        _check_operand(diag, "diag", 1, "(..., n)")
        super().__init__(diag.shape[-1], diag.shape[:-1])
        self.diag = diag

    dtype = property(lambda self: self.diag.dtype, doc="Dtype of the operator's tensors.")
    device = property(lambda self: self.diag.device, doc="Device of the operator's tensors.")

    @property
    def is_diagonal(self) -> bool:
        return True

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        return self.diag[..., :, None] * X

    def diagonal(self) -> torch.Tensor:
        return self.diag

    def sample_noise(self, shape: Tuple[int, ...], generator: Optional[torch.Generator] = None,
                     shared: Shared = None) -> torch.Tensor:
        return self.diag.sqrt() * self._standard_normal(shape, self.diag.shape, generator)

    def inv_quad_logdet(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if bool((self.diag <= 0).any()):
            raise ValueError("covariance must be positive definite for a density, but some variances are zero")
        return (x * x / self.diag).sum(-1), self.diag.log().sum(-1)

    def to(self, dtype: Optional[torch.dtype] = None, device: Device = None) -> "Covariance":
        return DiagonalCovariance(self.diag.to(dtype=dtype, device=device))


class LowRankCovariance(Covariance):
    """``Sigma = U U^T + diag(d)``.

    Parameters
    ----------
    factor : torch.Tensor, shape ``(..., n, r)``
    diag : torch.Tensor, shape ``(..., n)``
        Non-negative; may be zero (an ensemble covariance of rank ``r``).
    """

    def __init__(self, factor: torch.Tensor, diag: torch.Tensor):
        _check_operand(factor, "factor", 2, "(..., n, r)")
        _check_operand(diag, "diag", 1, "(..., n)")
        if diag.shape[-1] != factor.shape[-2]:
            raise ValueError(f"diag must have the factor's n = {factor.shape[-2]} nodes in its last dimension, got "
                             f"shape {tuple(diag.shape)}")
        super().__init__(factor.shape[-2], _batch(factor.shape[:-2], diag.shape[:-1], "factor", "diag"))
        self.factor = factor
        self.diag = diag

    dtype = property(lambda self: self.factor.dtype, doc="Dtype of the operator's tensors.")
    device = property(lambda self: self.factor.device, doc="Device of the operator's tensors.")

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        U = self.factor
        return self.diag[..., :, None] * X + U @ (U.mT @ X)

    def diagonal(self) -> torch.Tensor:
        return (self.diag + (self.factor**2).sum(-1)).expand(*self.batch_shape, self.n)

    def low_rank_split(self) -> Tuple[Covariance, Optional[torch.Tensor]]:
        return DiagonalCovariance(self.diag), self.factor

    def sample_noise(self, shape: Tuple[int, ...], generator: Optional[torch.Generator] = None,
                     shared: Shared = None) -> torch.Tensor:
        U = self.factor
        z = _share(shared, self._standard_normal(shape, (*self.batch_shape, U.shape[-1], 1), generator))
        return (U @ z).squeeze(-1) + self.diag.sqrt() * self._standard_normal(shape, (*self.batch_shape, self.n),
                                                                              generator)

    def inv_quad_logdet(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # Woodbury and the matrix determinant lemma with the r x r capacitance C = I + U^T D^-1 U.
        d = self.diag
        if bool((d <= 0).any()):
            raise ValueError(
                "cov_diag must be positive for a density (log_prob) of a low-rank covariance; an ensemble covariance "
                "without one is singular"
            )
        U = self.factor
        Dinv_U = U / d[..., :, None]
        C = torch.eye(U.shape[-1], dtype=U.dtype, device=U.device) + U.mT @ Dinv_U
        L = torch.linalg.cholesky(C)
        y = torch.linalg.solve_triangular(L, (Dinv_U.mT @ x[..., :, None]), upper=False).squeeze(-1)
        quad = (x * x / d).sum(-1) - (y * y).sum(-1)
        logdet = d.log().sum(-1) + 2 * torch.diagonal(L, dim1=-2, dim2=-1).log().sum(-1)
        return quad, logdet

    def to(self, dtype: Optional[torch.dtype] = None, device: Device = None) -> "Covariance":
        return LowRankCovariance(self.factor.to(dtype=dtype, device=device), self.diag.to(dtype=dtype, device=device))


class DenseCovariance(Covariance):
    """A dense covariance.

    Parameters
    ----------
    matrix : torch.Tensor, shape ``(..., n, n)``
        Symmetric positive semi-definite.
    """

    def __init__(self, matrix: torch.Tensor):
        _check_operand(matrix, "matrix", 2, "(..., n, n)")
        if matrix.shape[-1] != matrix.shape[-2]:
            raise ValueError(f"matrix must be a tensor of shape (..., n, n), got shape {tuple(matrix.shape)}")
        super().__init__(matrix.shape[-1], matrix.shape[:-2])
        self.matrix = matrix
        self._root = None

    dtype = property(lambda self: self.matrix.dtype, doc="Dtype of the operator's tensors.")
    device = property(lambda self: self.matrix.device, doc="Device of the operator's tensors.")

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        return self.matrix @ X

    def diagonal(self) -> torch.Tensor:
        return torch.diagonal(self.matrix, dim1=-2, dim2=-1)

    def to_dense(self) -> torch.Tensor:
        return self.matrix  # already dense: no product with the identity

    def _square_root(self):
        # Cholesky factor when positive definite (stable gradients); otherwise a symmetric square root from the
        # eigendecomposition, valid for singular PSD matrices where no Cholesky factor exists.
        if self._root is None:
            L, info = torch.linalg.cholesky_ex(self.matrix)
            if bool((info == 0).all()):
                self._root = L
            else:
                evals, Q = torch.linalg.eigh(self.matrix)
                self._root = Q * evals.clamp_min(0).sqrt()[..., None, :]
        return self._root

    def sample_noise(self, shape: Tuple[int, ...], generator: Optional[torch.Generator] = None,
                     shared: Shared = None) -> torch.Tensor:
        R = self._square_root()
        z = _share(shared, self._standard_normal(shape, (*self.batch_shape, self.n, 1), generator))
        return (R @ z).squeeze(-1)

    def inv_quad_logdet(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        L, info = torch.linalg.cholesky_ex(self.matrix)
        if bool((info != 0).any()):
            raise ValueError("covariance must be positive definite for a density, but the dense covariance is singular")
        y = torch.linalg.solve_triangular(L, x[..., :, None], upper=False).squeeze(-1)
        return (y * y).sum(-1), 2 * torch.diagonal(L, dim1=-2, dim2=-1).log().sum(-1)

    def to(self, dtype: Optional[torch.dtype] = None, device: Device = None) -> "Covariance":
        return DenseCovariance(self.matrix.to(dtype=dtype, device=device))


class DowndatedCovariance(Covariance):
    """``Sigma = base - W W^T`` with a thin ``W``: the ProbConserv posterior covariance.

    ``W = base G^T M`` with ``M M^T = A^+`` for ``A = s2 I + G base G^T``
    (:func:`probconserv_ext.update.factor_update`).
    The products and the diagonal need only ``base`` and ``W``. Sampling and the density also need the update that
    made ``W`` (``G``, ``M``, ``s2``): a draw is ``x - W M^T (G x + e)`` with ``x ~ N(0, base)`` and
    ``e ~ N(0, s2 I)`` (no factor of the possibly singular ``Sigma``), and for ``s2 > 0`` the precision is
    ``base^-1 + G^T G / s2`` with ``log det Sigma = log det base + m log s2 - log det A``. For ``s2 = 0``, ``Sigma``
    has rank ``n - m`` and no density in ``R^n``.

    Parameters
    ----------
    base : Covariance
        The prior covariance.
    W : torch.Tensor, shape ``(..., n, m)``
    G : torch.Tensor, shape ``(m, n)``, optional
        The constraint rows that defined ``W``; without them (and ``M``, ``noise``) :meth:`sample_noise` and
        :meth:`inv_quad_logdet` raise ``ValueError``.
    M : torch.Tensor, shape ``(..., m, m)``, optional
    noise : torch.Tensor, optional
        The constraint variance ``s2 >= 0`` (scalar).
    """

    def __init__(self, base: Covariance, W: torch.Tensor, G: Optional[torch.Tensor] = None,
                 M: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None):
        if not isinstance(base, Covariance):
            raise TypeError(f"base must be a Covariance, got {type(base).__name__}")
        _check_operand(W, "W", 2, "(..., n, m)")
        if W.shape[-2] != base.n:
            raise ValueError(f"W must have the base's n = {base.n} rows, got shape {tuple(W.shape)}")
        super().__init__(base.n, _batch(base.batch_shape, W.shape[:-2], "base", "W"))
        self.base = base
        self.W = W
        self.G, self.M, self.noise = G, M, noise

    dtype = property(lambda self: self.W.dtype, doc="Dtype of the operator's tensors.")
    device = property(lambda self: self.W.device, doc="Device of the operator's tensors.")

    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        return self.base.matmul(X) - self.W @ (self.W.mT @ X)

    def diagonal(self) -> torch.Tensor:
        # base - W W^T is positive semi-definite, so its diagonal is >= 0; the subtraction cancels at nodes the
        # update fixes (a value constraint, an exact row through a single node), where it leaves round-off of either
        # sign (about eps * base_ii). A negative entry is only that round-off: it is returned as 0, so that stddev,
        # sampling and likelihoods never see a negative variance.
        return (self.base.diagonal() - (self.W**2).sum(-1)).clamp_min(0)

    def to_dense(self) -> torch.Tensor:
        """The dense matrices, symmetric and with the (non-negative) diagonal of :meth:`diagonal`.

        Returns
        -------
        torch.Tensor
            Shape ``(*batch_shape, n, n)``.
        """
        dense = super().to_dense()
        dense = 0.5 * (dense + dense.mT)
        diag = torch.diagonal(dense, dim1=-2, dim2=-1)
        # the same round-off as in diagonal(): remove a negative diagonal entry without an in-place write
        return dense - torch.diag_embed(diag.clamp_max(0))

    def _update(self, what):
        if self.G is None or self.M is None or self.noise is None:
            raise ValueError(
                f"covariance must carry the update that defined it (G, M and noise) for {what}, got a "
                "DowndatedCovariance without them; use the ConstrainedGaussian (rsample, log_prob), which draws from "
                "the prior and applies the update"
            )
        return self.G, self.M, self.noise

    def sample_noise(self, shape: Tuple[int, ...], generator: Optional[torch.Generator] = None,
                     shared: Shared = None) -> torch.Tensor:
        G, M, noise = self._update("sampling")
        x = self.base.sample_noise(shape, generator, shared)
        r = x @ G.mT
        if bool(noise > 0):
            r = r + noise.sqrt() * _share(shared, torch.randn(r.shape, dtype=r.dtype, device=r.device,
                                                              generator=generator))
        v = (M * r[..., :, None]).sum(-2)  # M^T r over the short m axis
        return x - (self.W * v[..., None, :]).sum(-1)

    def inv_quad_logdet(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        G, M, noise = self._update("the density")
        if not bool(noise > 0):
            raise ValueError(
                "covariance must be positive definite for a density, but an exact update (noise = 0) leaves rank "
                f"n - m = {self.n - G.shape[0]}: its density lives on the constraint's affine subspace"
            )
        # M M^T = A^-1, so log det A = -2 log |det M|; a generalized inverse (singular A) has det M = 0.
        logdet_A = -2 * torch.linalg.slogdet(M)[1]
        if not bool(torch.isfinite(logdet_A).all()):
            raise ValueError("covariance must come from a non-singular A = noise I + G Sigma G^T for a density")
        q0, l0 = self.base.inv_quad_logdet(x)
        Gx = x @ G.mT
        return q0 + (Gx * Gx).sum(-1) / noise, l0 - logdet_A + G.shape[0] * noise.log()

    def to(self, dtype: Optional[torch.dtype] = None, device: Device = None) -> "Covariance":
        def cast(t):
            return None if t is None else t.to(dtype=dtype, device=device)
        return DowndatedCovariance(self.base.to(dtype, device), cast(self.W), cast(self.G), cast(self.M),
                                   cast(self.noise))
