"""Gaussian distributions with structured covariance, shaped like ``torch.distributions``.

:class:`StructuredGaussian` wraps a mean and a :class:`~probconserv_ext.covariance.Covariance` operator.
:class:`ConstrainedGaussian` is the output of :class:`~probconserv_ext.layer.ProbConserv`: it keeps its prior and
the thin update factors, so that

* ``covariance`` stays structured (diagonal minus rank ``m`` for a diagonal prior) and ``covariance_matrix``
  densifies only on request;
* ``rsample`` draws from the prior and applies the update to each draw, ``u~ = u - Sigma G^T A^-1 (G u + e - b)``
  with ``e ~ N(0, s2 I)`` (no factor of the singular posterior covariance is needed; with ``s2 = 0`` every draw
  satisfies ``G u~ = b`` to round-off);
* ``log_prob`` is the density in R^n for a soft constraint (``s2 > 0``), and the density on the affine subspace
  ``{G u = b}`` (with respect to its surface measure) for an exact one.

Internally everything is held in the compute dtype (float64 by default); public outputs are cast to the dtype of
the input prediction.
"""

import math
from typing import Optional, Sequence

import torch
from torch.distributions import Distribution, constraints

from _physics_constrained.validation import (check_bool, check_float_dtype, check_generator, check_int, check_tensor,
                                              eps_of)
from .collectives import LOCAL, LocalCollectives
from .covariance import Covariance, DowndatedCovariance, Shared
from .update import UpdateFactors, refine_to_roundoff, residual_tolerance

__all__ = ["StructuredGaussian", "ConstrainedGaussian"]


def check_sample_shape(sample_shape: Sequence[int], name: str = "sample_shape") -> torch.Size:
    """A shape of draws: a ``torch.Size`` or a tuple/list of non-negative integers (``bool`` and floats refused).

    Raises
    ------
    TypeError
        If it is not a sequence of integers (e.g. a bare ``int`` or ``(2.0,)``).
    ValueError
        For a negative size.
    """
    if not isinstance(sample_shape, (torch.Size, tuple, list)):
        raise TypeError(f"{name} must be a tuple of non-negative integers (e.g. (100,)), got {sample_shape!r} "
                        f"({type(sample_shape).__name__})")
    return torch.Size(check_int(s, f"{name}[{i}]", minimum=0) for i, s in enumerate(sample_shape))


class StructuredGaussian(Distribution):
    """A multivariate Gaussian ``N(loc, covariance)`` with a structured covariance operator.

    Parameters
    ----------
    loc : torch.Tensor, shape ``(..., n)``
        Mean (in the compute dtype).
    covariance : Covariance
        Covariance operator (in the compute dtype).
    out_dtype : torch.dtype, optional
        Dtype of public outputs (mean, variance, samples, log_prob). Defaults to ``loc.dtype``.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, covariance: Covariance, out_dtype: Optional[torch.dtype] = None):
        check_tensor(loc, "loc", layout="(..., n)", floating=True)
        if not isinstance(covariance, Covariance):
            raise TypeError(f"covariance must be a Covariance (e.g. DiagonalCovariance), got "
                            f"{type(covariance).__name__}")
        if loc.ndim < 1 or loc.shape[-1] != covariance.n:
            raise ValueError(f"loc must have the covariance's n = {covariance.n} nodes in its last dimension, got "
                             f"shape {tuple(loc.shape)}")
        try:
            batch_shape = torch.broadcast_shapes(loc.shape[:-1], covariance.batch_shape)
        except RuntimeError as err:
            raise ValueError(f"loc of leading shape {tuple(loc.shape[:-1])} must broadcast with the covariance's "
                             f"batch shape {tuple(covariance.batch_shape)}") from err
        self._loc = loc
        self.covariance = covariance
        self.out_dtype = loc.dtype if out_dtype is None else check_float_dtype(out_dtype, "out_dtype")
        super().__init__(batch_shape, torch.Size([loc.shape[-1]]), validate_args=False)

    @property
    def n(self) -> int:
        """Number of nodes."""
        return self.event_shape[0]

    @property
    def loc(self) -> torch.Tensor:
        """The mean as held internally: compute dtype, not expanded to ``batch_shape``."""
        return self._loc

    def _out(self, t):
        return t.to(self.out_dtype)

    @property
    def mean(self) -> torch.Tensor:
        """The mean, shape ``(*batch_shape, n)``, in the output dtype."""
        return self._out(self._loc.expand(*self.batch_shape, self.n))

    @property
    def mode(self) -> torch.Tensor:
        """The mode (the mean)."""
        return self.mean

    @property
    def variance(self) -> torch.Tensor:
        """The variances, shape ``(*batch_shape, n)``, in the output dtype."""
        return self._out(self.covariance.diagonal().expand(*self.batch_shape, self.n))

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """The dense covariance, shape ``(..., n, n)``: formed on request only (``O(n^2)`` memory)."""
        return self._out(self.covariance.to_dense().expand(*self.batch_shape, self.n, self.n))

    def _rsample_compute(self, sample_shape, generator=None, shared: Shared = None):
        return self._loc + self.covariance.sample_noise(tuple(sample_shape), generator, shared)

    def rsample(self, sample_shape: Sequence[int] = torch.Size(),
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Reparameterized draws.

        Parameters
        ----------
        sample_shape : torch.Size or tuple of int
            Leading shape of the draws.
        generator : torch.Generator, optional
            Source of the random numbers (reproducible draws).

        Returns
        -------
        torch.Tensor
            Shape ``(*sample_shape, *batch_shape, n)``, in the output dtype.
        """
        sample_shape = check_sample_shape(sample_shape)
        draws = self._rsample_compute(sample_shape, check_generator(generator))
        return self._out(draws.expand(*sample_shape, *self.batch_shape, self.n))

    def sample(self, sample_shape: Sequence[int] = torch.Size(),
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """:meth:`rsample` without gradients (same shape and dtype).

        Parameters
        ----------
        sample_shape : torch.Size or tuple of int
            As for :meth:`rsample`.
        generator : torch.Generator, optional
            As for :meth:`rsample`.

        Returns
        -------
        torch.Tensor
        """
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def _inv_quad_logdet(self, x):
        return self.covariance.inv_quad_logdet(x)

    def _log_prob_compute(self, value, in_dtype=None):
        quad, logdet = self._inv_quad_logdet(value - self._loc)
        return -0.5 * (self.n * math.log(2 * math.pi) + logdet + quad)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density at ``value``.

        In ``R^n``; for an exactly constrained :class:`ConstrainedGaussian`, the density on ``{G u = b}`` with
        respect to its surface measure. :func:`probconserv_ext.gaussian_nll` with ``joint=False`` gives a per-node
        likelihood defined everywhere.

        Parameters
        ----------
        value : torch.Tensor, shape ``(..., n)``

        Returns
        -------
        torch.Tensor
            Shape ``(...)`` broadcast with ``batch_shape``, in the output dtype.

        Raises
        ------
        ValueError
            If ``value`` has the wrong shape or is not finite, or the covariance is singular; for an exact update,
            if ``value`` does not satisfy ``G value = b`` (to round-off relative to the dtype of ``value``).
        NotImplementedError
            For an exact update of a prior without a density or with a singular ``A``.
        """
        value = self._check_value_shape(value)
        return self._out(self._log_prob_compute(value.to(self._loc.dtype), value.dtype))

    def _check_value_shape(self, value):
        if not isinstance(value, torch.Tensor) or value.shape[-1:] != self.event_shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"value must be a tensor of shape (..., {self.n}), got {shape}")
        # Skipped while compiling (a host synchronisation).
        if not torch.compiler.is_compiling() and not bool(torch.isfinite(value.detach()).all()):
            raise ValueError("value must be finite, but it contains NaN or inf")
        return value

    def __repr__(self):
        return (
            f"{type(self).__name__}(batch_shape={tuple(self.batch_shape)}, n={self.n}, "
            f"covariance={type(self.covariance).__name__}, dtype={self.out_dtype})"
        )


class ConstrainedGaussian(StructuredGaussian):
    """The Gaussian after a ProbConserv (or HardC) update; returned by :class:`ProbConserv`.

    Parameters
    ----------
    prior : StructuredGaussian
        The prediction before the update (in the compute dtype).
    G : torch.Tensor, shape ``(m, n)``
    b : torch.Tensor, shape ``(..., m)``
    noise : torch.Tensor
        Constraint variance ``s2`` (scalar, may require grad).
    loc : torch.Tensor
        Posterior mean.
    factors : UpdateFactors or None
        Update factors (``None`` for HardC, whose covariance is the prior's).
    method : {"probconserv", "hardc"}
    out_dtype : torch.dtype
    noise_is_zero : bool, optional
        Whether ``noise == 0``, when the caller knows it without reading the tensor (the layer knows it from its
        construction); saves a host synchronisation per call, so that sampling compiles without graph breaks.
    refine_tol : float, optional
        Relative round-off tolerance of an exact update; draws pushed through it are refined like the mean
        (``None``: no refinement, e.g. while compiling or on a split field).
    collectives : LocalCollectives, optional
        Sums over the node axis and shared draws (:mod:`probconserv_ext.collectives`); default: one process.

    Attributes
    ----------
    prior, G, b, noise, method
    covariance : Covariance
        Structured posterior covariance (``DowndatedCovariance`` for ProbConserv).

    References
    ----------
    Hansen et al. (2023), Learning physical models that can respect conservation laws, ICML.
    """

    def __init__(self, prior: StructuredGaussian, G: torch.Tensor, b: torch.Tensor, noise: torch.Tensor,
                 loc: torch.Tensor, factors: Optional[UpdateFactors], method: str, out_dtype: torch.dtype,
                 noise_is_zero: Optional[bool] = None, refine_tol: Optional[float] = None,
                 collectives: Optional[LocalCollectives] = None):
        self.prior = prior
        self._collectives = LOCAL if collectives is None else collectives
        self._noise_is_zero = noise_is_zero
        # Relative round-off tolerance of an exact update (None: no refinement, e.g. while compiling). Draws pushed
        # through an ill-conditioned update (G Sigma G^T with a large condition number) are refined like the
        # mean, so that they satisfy G u = b to round-off too.
        self._refine_tol = refine_tol
        self.G = G
        self.b = b
        self.noise = noise
        self.method = method
        self.factors = factors
        if factors is None:
            cov = prior.covariance
        elif self._collectives.local:
            cov = DowndatedCovariance(prior.covariance, factors.W, G, factors.M, noise)
        else:  # a slab's G gives no global G x: the slab's covariance cannot be sampled on its own
            cov = DowndatedCovariance(prior.covariance, factors.W)
        super().__init__(loc, cov, out_dtype)

    @property
    def exact(self) -> bool:
        """Whether the covariance was updated by an exact constraint (``noise == 0``): then ``G u = b`` always."""
        return self.factors is not None and self._zero_noise()

    def _zero_noise(self):
        if self._noise_is_zero is None:
            self._noise_is_zero = not bool(self.noise > 0)
        return self._noise_is_zero

    def constraint_residual(self) -> torch.Tensor:
        """``G mean - b`` (over the whole field, on every part of a split one).

        Returns
        -------
        torch.Tensor
            Shape ``(..., m)``: zero to round-off for an exact update.
        """
        return self._out(self._collectives.sum(self._loc @ self.G.mT) - self.b)

    def _apply(self, u, generator=None, perturb=True):
        if self.factors is None:
            # HardC keeps the prior covariance: draws are shifted with the mean.
            return u + (self._loc - self.prior.loc)
        r = self._collectives.sum(u @ self.G.mT) - self.b
        if perturb and not self._zero_noise():
            # One noise draw per row for the whole field (on a split field, the same on every part).
            e = torch.randn(r.shape, dtype=r.dtype, device=r.device, generator=generator)
            r = r + self.noise.sqrt() * self._collectives.share(e)
        u = u - self.factors.correction(r)
        if self._refine_tol is not None and self.exact:
            # like the mean; a draw that still misses round-off is returned as it is (the mean passed the check)
            u, _ = refine_to_roundoff(u, self.G, self.b, self.factors.correction, self._refine_tol, self.b.abs())
        return u

    def update_samples(self, samples: torch.Tensor, generator: Optional[torch.Generator] = None,
                       perturb: bool = True) -> torch.Tensor:
        """Push draws (e.g. ensemble members) of the prior through the update.

        ``u~ = u - Sigma G^T A^-1 (G u + e - b)`` with ``e ~ N(0, s2 I)``: if ``u ~ N(mu, Sigma)`` then
        ``u~ ~ N(mu~, Sigma~)`` exactly, and for ``s2 = 0`` each ``u~`` satisfies ``G u~ = b``. Applied to the
        members of the ensemble that defined the prior, their empirical mean and covariance become exactly the
        posterior ones (for ``s2 = 0``).

        Parameters
        ----------
        samples : torch.Tensor, shape ``(S, ..., n)``
        generator : torch.Generator, optional
            For the noise draws ``e`` (soft constraint only).
        perturb : bool
            Add the noise draws ``e`` (default). Without them a soft update under-disperses the samples.

        Returns
        -------
        torch.Tensor
            Same shape as ``samples``, in the output dtype.
        """
        samples = self._check_value_shape(samples)
        perturb = check_bool(perturb, "perturb")
        check_generator(generator)
        return self._out(self._apply(samples.to(self._loc.dtype), generator, perturb))

    def _rsample_compute(self, sample_shape, generator=None, shared: Shared = None):
        # Prior draws pushed through the update; draws that several nodes use are shared over a split field.
        return self._apply(self.prior._rsample_compute(sample_shape, generator, self._collectives.share), generator)

    def _inv_quad_logdet(self, x):
        if self.exact:
            raise NotImplementedError(
                "an exactly constrained Gaussian has no density on R^n; its log_prob is the density on {G u = b}, "
                "which is defined for one exact update of a prior with a density"
            )
        # HardC: the prior's covariance; ProbConserv with s2 > 0: precision = prior precision + G^T G / s2.
        return self.covariance.inv_quad_logdet(x)

    def support_tolerance(self, in_dtype: Optional[torch.dtype] = None) -> float:
        """Relative tolerance of the support test ``|G v - b| <= tol (|G| |v| + |b|)`` of an exact update.

        The posterior's mean and draws satisfy ``G u = b`` to the round-off of the compute dtype
        (:func:`probconserv_ext.update.residual_tolerance`), and are then rounded to the output dtype; a value given
        in ``in_dtype`` is rounded once more. Each rounding moves every entry by at most ``eps / 2`` relative, i.e.
        ``G v`` by ``eps / 2 |G| |v|``. The coarsest of the three dtypes therefore sets the tolerance: the package's
        round-off level of a length-``n`` dot product in that dtype. The test is relative to the sizes of ``v``,
        ``G`` and ``b`` alone, so it gives the same verdict at every scale of the field.

        Parameters
        ----------
        in_dtype : torch.dtype, optional
            Dtype the value was given in (default: the output dtype).

        Returns
        -------
        float
        """
        return residual_tolerance(self._coarsest(in_dtype), self.n)

    def _coarsest(self, in_dtype: Optional[torch.dtype]) -> torch.dtype:
        return max((in_dtype or self.out_dtype, self.out_dtype, self._loc.dtype), key=eps_of)

    def _check_support(self, value: torch.Tensor, in_dtype: torch.dtype) -> None:
        """Raise unless ``value`` (compute dtype) lies on ``{G u = b}`` to round-off (:meth:`support_tolerance`)."""
        res = (self._collectives.sum(value @ self.G.mT) - self.b).abs()
        scale = self._collectives.sum(value.abs() @ self.G.abs().mT) + self.b.abs()
        tol = self.support_tolerance(in_dtype)
        bad = res > tol * scale
        if bool(bad.any()):
            rel = res / scale.clamp_min(torch.finfo(scale.dtype).tiny)
            raise ValueError(
                "value must satisfy the exact constraint G value = b (the posterior is supported on that affine "
                f"subspace only), to the relative round-off {tol:.1e} of {self._coarsest(in_dtype)}"
                f"; largest |G value - b| / (|G| |value| + |b|) is {float(rel.detach().amax()):.3e}"
            )

    def _log_prob_compute(self, value, in_dtype=None):
        if not self.exact:
            return super()._log_prob_compute(value)
        # Density on the affine subspace {G u = b} w.r.t. its surface measure: the conditional density
        # p(u | G u = b) = p(u) / (N(b; G mu, A) sqrt(det G G^T)).
        self._check_support(value, in_dtype or value.dtype)
        if self.factors.logdet_A is None or isinstance(self.prior, ConstrainedGaussian):
            raise NotImplementedError(
                "log_prob of an exact update is implemented for a prior with a density and a non-singular A"
            )
        m = self.G.shape[0]
        r0 = self.prior.loc @ self.G.mT - self.b
        w = (self.factors.M.mT @ r0[..., :, None]).squeeze(-1)
        log_evidence = -0.5 * (m * math.log(2 * math.pi) + self.factors.logdet_A + (w * w).sum(-1))
        logdet_GGt = torch.linalg.slogdet(self.G @ self.G.mT)[1]
        return self.prior._log_prob_compute(value) - log_evidence - 0.5 * logdet_GGt
