"""Reading a prediction, in any form the layer accepts, as a Gaussian with a structured covariance.

A prediction is a mean with per-node variances, a dense covariance or a low-rank-plus-diagonal one; ensemble
members (their mean and sample covariance); a ``torch.distributions`` ``Normal``, ``MultivariateNormal`` or
``LowRankMultivariateNormal``; or a :class:`~probconserv_ext.gaussian.StructuredGaussian` (e.g. the output of
another layer). :class:`PriorReader` checks each form once (shapes always; finiteness, variances and positive
semi-definiteness when validating and not compiling) and returns a ``StructuredGaussian`` in the compute dtype.
"""

import math
from typing import Any, Tuple

import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal, Normal

from _physics_constrained.validation import (
    as_tensor,
    check_broadcasts_to,
    check_finite,
    check_variance,
    compiling,
    eps_of,
)
from .covariance import DenseCovariance, DiagonalCovariance, LowRankCovariance
from .gaussian import StructuredGaussian

__all__ = ["PriorReader"]


class PriorReader:
    """Reads predictions on ``n`` nodes into :class:`StructuredGaussian` priors.

    Parameters
    ----------
    n : int
        Number of nodes (the constraint's columns).
    compute_dtype : torch.dtype
        Dtype of the returned prior (public outputs keep the input's dtype).
    validate : bool
        Check values (finite, variances, PSD of a dense covariance); shapes are always checked.
    device : torch.device, optional
        Where tensors given as arrays or numbers are created.
    """

    def __init__(self, n: int, compute_dtype: torch.dtype, validate: bool = True, device: Any = None):
        self.n = n
        self.compute_dtype = compute_dtype
        self.validate = validate
        self.device = device

    def read(self, mean: Any = None, variance: Any = None, covariance: Any = None, cov_factor: Any = None,
             cov_diag: Any = None, samples: Any = None) -> StructuredGaussian:
        """The prior given by one accepted combination of arguments.

        Parameters
        ----------
        mean, variance, covariance, cov_factor, cov_diag, samples
            As in :meth:`probconserv_ext.layer.ProbConserv.forward`.

        Returns
        -------
        StructuredGaussian
            In the compute dtype, with ``out_dtype`` the input's dtype.

        Raises
        ------
        ValueError
            For a missing or conflicting combination, wrong shapes, or (when validating) non-finite values,
            negative or subnormal variances or a covariance that is not symmetric positive semi-definite.
        TypeError
            For non-numeric input or an unsupported distribution.
        """
        others = (variance, covariance, cov_factor, samples, cov_diag)
        if isinstance(mean, Distribution):
            if any(x is not None for x in others):
                raise ValueError("pass either a distribution or mean with a covariance, not both")
            return self._from_distribution(mean)
        if samples is not None:
            if mean is not None or variance is not None or covariance is not None or cov_factor is not None:
                raise ValueError("samples= defines the prior by itself; pass only cov_diag (optional) with it")
            return self._from_samples(samples, cov_diag)
        if mean is None:
            raise ValueError("mean is required (a tensor of shape (..., n), a distribution, or samples=)")
        mu = self._nodes(self._tensor(mean, "mean"), "mean")
        if sum(x is not None for x in (variance, covariance, cov_factor)) != 1:
            raise ValueError("give exactly one of variance=, covariance= or cov_factor= (with cov_diag=) with mean")
        if cov_diag is not None and cov_factor is None:
            raise ValueError("cov_diag= goes with cov_factor= (or samples=); for a diagonal covariance use variance=")
        cd = self.compute_dtype
        if variance is not None:
            cov = DiagonalCovariance(self._variance(variance, "variance", mu.shape).to(cd))
        elif covariance is not None:
            cov = self._dense(covariance, mu.shape[:-1])
        else:
            cov = self._low_rank(cov_factor, cov_diag, mu.shape)
        return StructuredGaussian(mu.to(cd), cov, mu.dtype)

    # ------------------------------------------------------------------ the forms
    def _from_distribution(self, dist: Distribution) -> StructuredGaussian:
        if isinstance(dist, StructuredGaussian):
            self._nodes(dist.loc, "mean")
            if dist.loc.dtype != self.compute_dtype:
                raise ValueError(
                    f"mean is a {type(dist).__name__} held in {dist.loc.dtype}, but this layer computes in "
                    f"{self.compute_dtype}; chain layers with the same compute_dtype"
                )
            if self.validate and not compiling():
                # built by hand, it has had no check yet: its mean and variances get those of the other forms
                # (a chained posterior passes them at O(n m) cost)
                check_finite(dist.loc, "mean")
                check_variance(dist.covariance.diagonal(), "mean (the variances of its covariance)", self.compute_dtype)
            return dist
        if isinstance(dist, Normal):
            return self.read(dist.loc, variance=dist.scale**2)
        if isinstance(dist, MultivariateNormal):
            return self.read(dist.loc, covariance=dist.covariance_matrix)
        if isinstance(dist, LowRankMultivariateNormal):
            return self.read(dist.loc, cov_factor=dist.cov_factor, cov_diag=dist.cov_diag)
        raise TypeError(
            f"mean must be a tensor, Normal, MultivariateNormal, LowRankMultivariateNormal or a "
            f"StructuredGaussian; got {type(dist).__name__}"
        )

    def _from_samples(self, samples: Any, cov_diag: Any) -> StructuredGaussian:
        s = self._nodes(self._tensor(samples, "samples"), "samples")
        if s.ndim < 2 or s.shape[0] < 2:
            raise ValueError(f"samples must have shape (S, ..., n) with S >= 2 members, got {tuple(s.shape)}")
        cd = self.compute_dtype
        out_dtype = s.dtype
        s = s.to(cd)
        loc = s.mean(0)
        U = ((s - loc) / math.sqrt(s.shape[0] - 1)).movedim(0, -1)
        d = torch.zeros_like(loc) if cov_diag is None else self._variance(cov_diag, "cov_diag", loc.shape).to(cd)
        return StructuredGaussian(loc, LowRankCovariance(U, d), out_dtype)

    def _dense(self, covariance: Any, lead: torch.Size) -> DenseCovariance:
        S = self._tensor(covariance, "covariance")
        if S.ndim < 2 or S.shape[-1] != self.n or S.shape[-2] != self.n:
            raise ValueError(f"covariance must have shape (..., {self.n}, {self.n}), got {tuple(S.shape)}")
        check_broadcasts_to(S.shape[:-2], lead, "covariance", f"the mean's leading shape {tuple(lead)}",
                            full_shape=S.shape)
        if self.validate and not compiling():
            self._check_psd(S)
        S = S.to(self.compute_dtype)
        return DenseCovariance(0.5 * (S + S.mT))

    def _low_rank(self, cov_factor: Any, cov_diag: Any, shape: torch.Size) -> LowRankCovariance:
        U = self._tensor(cov_factor, "cov_factor")
        if U.ndim < 2 or U.shape[-2] != self.n:
            raise ValueError(f"cov_factor must have shape (..., {self.n}, r), got {tuple(U.shape)}")
        lead = shape[:-1]
        check_broadcasts_to(U.shape[:-2], lead, "cov_factor", f"the mean's leading shape {tuple(lead)}",
                            full_shape=U.shape)
        d = torch.zeros(self.n, dtype=U.dtype) if cov_diag is None else self._variance(cov_diag, "cov_diag", shape)
        cd = self.compute_dtype
        return LowRankCovariance(U.to(cd), d.to(cd))

    # ------------------------------------------------------------------ checks
    def _tensor(self, x: Any, name: str) -> torch.Tensor:
        t = as_tensor(x, name, device=self.device)
        if self.validate and not compiling():
            check_finite(t, name)
        return t

    def _nodes(self, t: torch.Tensor, name: str) -> torch.Tensor:
        if t.ndim < 1 or t.shape[-1] != self.n:
            raise ValueError(
                f"{name} must have n = {self.n} nodes (the constraint's number of columns) in dimension -1, "
                f"got shape {tuple(t.shape)}"
            )
        return t

    def _variance(self, v: Any, name: str, shape: Tuple[int, ...]) -> torch.Tensor:
        v = self._nodes(self._tensor(v, name), name)
        hint = ""
        if v.ndim >= 2 and v.shape[-2] == self.n and v.ndim == len(shape) + 1:
            hint = f"; an (..., {self.n}, {self.n}) matrix is a dense covariance: pass it as covariance="
        check_broadcasts_to(v.shape, shape, name, f"the mean of shape {tuple(shape)}", hint)
        if self.validate and not compiling():
            check_variance(v, name, self.compute_dtype)
        return v

    def _check_psd(self, S: torch.Tensor) -> None:
        S = S.detach()  # a check reads values; it must not trigger autograd's scalar-conversion warning
        eps = eps_of(S.dtype)
        scale = S.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(S.dtype).tiny)
        asym = ((S - S.mT).abs() / scale).amax()
        if float(asym) > 100 * eps:
            raise ValueError(f"covariance must be symmetric; max |S - S^T| / max |S| = {float(asym):.3e}")
        S64 = (0.5 * (S + S.mT)).double()
        jitter = 10 * self.n * eps * scale.double()
        eye = torch.eye(self.n, dtype=torch.float64, device=S.device)
        _, info = torch.linalg.cholesky_ex(S64 + jitter * eye)
        if bool((info != 0).any()):
            lam = float(torch.linalg.eigvalsh(S64).amin())
            raise ValueError(
                f"covariance must be positive semi-definite; its smallest eigenvalue is {lam:.3e} "
                f"(beyond the tolerance {float(jitter.amax()):.1e})"
            )
