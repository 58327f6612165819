"""Structured covariance operators: diagonal, low rank plus diagonal, dense, and a rank-m downdate.

Each operator represents a batch of ``n x n`` covariance matrices without forming them (except
:class:`DenseCovariance`, which holds what the user passed). The ProbConserv update only needs products
``Sigma @ X`` with thin ``X`` (``n x m``) and the diagonal, so a diagonal prior costs ``O(n m^2)`` time and
``O(n m)`` memory, and its posterior stays "diagonal minus rank m" (:class:`DowndatedCovariance`), in the
spirit of ``linear_operator``/GPyTorch.
"""

import torch

__all__ = ["Covariance", "DiagonalCovariance", "LowRankCovariance", "DenseCovariance", "DowndatedCovariance"]


class Covariance:
    """Base class of a batch of ``n x n`` covariance matrices with batch shape ``batch_shape``."""

    n: int
    batch_shape: torch.Size

    @property
    def dtype(self):
        raise NotImplementedError

    def matmul(self, X):
        """``Sigma @ X`` for ``X`` of shape ``(..., n, k)``."""
        raise NotImplementedError

    def diagonal(self):
        """Variances, shape ``(*batch_shape, n)``."""
        raise NotImplementedError

    def to_dense(self):
        """The dense matrices, shape ``(*batch_shape, n, n)``: ``O(n^2)`` memory, for inspection and tests."""
        return self.matmul(torch.eye(self.n, dtype=self.dtype, device=self.device))

    def sample_noise(self, shape, generator=None):
        """Draws of ``N(0, Sigma)`` with shape ``(*shape, *batch_shape, n)``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be sampled directly")

    def inv_quad_logdet(self, x):
        """``(x^T Sigma^-1 x, log det Sigma)`` for ``x`` of shape ``(..., n)``."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    def to(self, dtype):
        raise NotImplementedError

    def _randn(self, shape, extra, generator):
        return torch.randn(*shape, *extra, dtype=self.dtype, device=self.device, generator=generator)


class DiagonalCovariance(Covariance):
    """``Sigma = diag(d)``.

    Parameters
    ----------
    diag : torch.Tensor, shape ``(..., n)``
        Non-negative variances.
    """

    def __init__(self, diag):
        self.diag = diag
        self.n = diag.shape[-1]
        self.batch_shape = diag.shape[:-1]

    dtype = property(lambda self: self.diag.dtype)
    device = property(lambda self: self.diag.device)

    def matmul(self, X):
        return self.diag[..., :, None] * X

    def diagonal(self):
        return self.diag

    def to_dense(self):
        return torch.diag_embed(self.diag)

    def sample_noise(self, shape, generator=None):
        return self.diag.sqrt() * self._randn(shape, self.diag.shape, generator)

    def inv_quad_logdet(self, x):
        if bool((self.diag <= 0).any()):
            raise ValueError("log_prob needs a positive definite covariance, but some variances are zero")
        return (x * x / self.diag).sum(-1), self.diag.log().sum(-1)

    def to(self, dtype):
        return DiagonalCovariance(self.diag.to(dtype))


class LowRankCovariance(Covariance):
    """``Sigma = U U^T + diag(d)``.

    Parameters
    ----------
    factor : torch.Tensor, shape ``(..., n, r)``
    diag : torch.Tensor, shape ``(..., n)``
        Non-negative; may be zero (an ensemble covariance of rank ``r``).
    """

    def __init__(self, factor, diag):
        self.factor = factor
        self.diag = diag
        self.n = factor.shape[-2]
        self.batch_shape = torch.broadcast_shapes(factor.shape[:-2], diag.shape[:-1])

    dtype = property(lambda self: self.factor.dtype)
    device = property(lambda self: self.factor.device)

    def matmul(self, X):
        U = self.factor
        return self.diag[..., :, None] * X + U @ (U.mT @ X)

    def diagonal(self):
        return (self.diag + (self.factor**2).sum(-1)).expand(*self.batch_shape, self.n)

    def to_dense(self):
        U = self.factor
        return U @ U.mT + torch.diag_embed(self.diag)

    def sample_noise(self, shape, generator=None):
        U = self.factor
        z = self._randn(shape, (*self.batch_shape, U.shape[-1], 1), generator)
        return (U @ z).squeeze(-1) + self.diag.sqrt() * self._randn(shape, (*self.batch_shape, self.n), generator)

    def inv_quad_logdet(self, x):
        # Woodbury and the matrix determinant lemma with the r x r capacitance C = I + U^T D^-1 U.
        d = self.diag
        if bool((d <= 0).any()):
            raise ValueError(
                "log_prob of a low-rank covariance needs a positive diagonal (cov_diag); an ensemble covariance "
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

    def to(self, dtype):
        return LowRankCovariance(self.factor.to(dtype), self.diag.to(dtype))


class DenseCovariance(Covariance):
    """A dense covariance ``Sigma`` of shape ``(..., n, n)`` (symmetric positive semi-definite)."""

    def __init__(self, matrix):
        self.matrix = matrix
        self.n = matrix.shape[-1]
        self.batch_shape = matrix.shape[:-2]
        self._root = None

    dtype = property(lambda self: self.matrix.dtype)
    device = property(lambda self: self.matrix.device)

    def matmul(self, X):
        return self.matrix @ X

    def diagonal(self):
        return torch.diagonal(self.matrix, dim1=-2, dim2=-1)

    def to_dense(self):
        return self.matrix

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

    def sample_noise(self, shape, generator=None):
        R = self._square_root()
        z = self._randn(shape, (*self.batch_shape, self.n, 1), generator)
        return (R @ z).squeeze(-1)

    def inv_quad_logdet(self, x):
        L, info = torch.linalg.cholesky_ex(self.matrix)
        if bool((info != 0).any()):
            raise ValueError("log_prob needs a positive definite covariance, but the dense covariance is singular")
        y = torch.linalg.solve_triangular(L, x[..., :, None], upper=False).squeeze(-1)
        return (y * y).sum(-1), 2 * torch.diagonal(L, dim1=-2, dim2=-1).log().sum(-1)

    def to(self, dtype):
        return DenseCovariance(self.matrix.to(dtype))


class DowndatedCovariance(Covariance):
    """``Sigma = base - W W^T`` with a thin ``W`` of shape ``(..., n, m)``: the ProbConserv posterior covariance.

    Parameters
    ----------
    base : Covariance
        The prior covariance.
    W : torch.Tensor, shape ``(..., n, m)``
        ``W = Sigma_prior G^T M`` with ``M M^T = (s2 I + G Sigma_prior G^T)^-1``.
    """

    def __init__(self, base, W):
        self.base = base
        self.W = W
        self.n = base.n
        self.batch_shape = torch.broadcast_shapes(base.batch_shape, W.shape[:-2])

    dtype = property(lambda self: self.W.dtype)
    device = property(lambda self: self.W.device)

    def matmul(self, X):
        return self.base.matmul(X) - self.W @ (self.W.mT @ X)

    def diagonal(self):
        return self.base.diagonal() - (self.W**2).sum(-1)

    def to_dense(self):
        return self.base.to_dense() - self.W @ self.W.mT

    def to(self, dtype):
        return DowndatedCovariance(self.base.to(dtype), self.W.to(dtype))
