"""Deep ensemble of FNOs: a Gaussian prediction with a low-rank-plus-diagonal covariance."""

from typing import Any

import torch
from torch import nn
from torch.distributions import LowRankMultivariateNormal

from _physics_constrained.validation import (check_compute_dtype, check_finite, check_fraction, check_int, check_real,
                                              check_tensor)
from ._fno import FNOModel

__all__ = ["FNOEnsemble"]


class FNOEnsemble(FNOModel):
    """S independently initialised 1-D FNOs over x whose output channels are the time slices.

    The members' spread gives the covariance ``U U^T + jitter I`` with ``U`` the centred members scaled
    by ``1 / sqrt(S - 1)`` (rank S - 1): the sample covariance of the ensemble, kept in factored form so
    that a conservation update costs O(n S^2) instead of O(n^3).

    Parameters
    ----------
    n_members : int
        Ensemble size S >= 2.
    in_channels : int
        Input channels (e.g. 2: PDE parameter field and grid).
    out_channels : int
        Output channels (number of time slices).
    n_modes : int
        Fourier modes kept along x.
    hidden_channels : int
        FNO width.
    n_layers : int
        Number of FNO blocks.
    jitter : float
        Diagonal variance added to the low-rank covariance (> 0, keeps it positive definite).
    seed : int
        Member ``i`` is initialised from seed ``seed + i``. The caller's global random state is left unchanged
        (the seeding happens inside ``torch.random.fork_rng``), and the same seed gives the same ensemble.
    **fno_kwargs
        Further arguments of :class:`neuralop.models.FNO`.

    Raises
    ------
    TypeError
        If a size or ``seed`` is not an integer, or ``jitter`` not a real number.
    ValueError
        If a size is smaller than 1 (``n_members`` smaller than 2), ``jitter`` is not positive and finite, or
        ``seed`` is negative.

    Examples
    --------
    >>> model = FNOEnsemble(4, in_channels=2, out_channels=5, seed=0)
    >>> prior = model.predict(x)                          # LowRankMultivariateNormal, batch (batch, 5), event n
    >>> post = ProbConserv(conservation_constraint(grid))(prior, b=totals)   # totals: (batch, 5, 1), one row each
    >>> members = post.update_samples(model.member_predictions(x).double())   # the members, conserved

    References
    ----------
    .. [1] Lakshminarayanan, B., Pritzel, A., Blundell, C. "Simple and scalable predictive uncertainty
       estimation using deep ensembles", NeurIPS 2017.
    .. [2] Ledoit, O., Wolf, M. "A well-conditioned estimator for large-dimensional covariance matrices",
       J. Multivariate Anal. 88, 2004.
    .. [3] Li, Z. et al. "Fourier neural operator for parametric partial differential equations", ICLR 2021.
    """

    def __init__(self, n_members: int, in_channels: int, out_channels: int, n_modes: int = 12,
                 hidden_channels: int = 24, n_layers: int = 3, jitter: float = 1e-6, seed: int = 0,
                 **fno_kwargs: Any) -> None:
        check_int(n_members, "n_members", minimum=2)
        super().__init__(in_channels, out_channels, n_modes, hidden_channels, n_layers, seed, fno_kwargs)
        self.jitter = check_real(jitter, "jitter", positive=True)
        self.members = nn.ModuleList(self._seeded_fno(self.out_channels, self.seed + i) for i in range(n_members))

    @property
    def jitter(self) -> float:
        """Diagonal variance added to the low-rank covariance (a positive, finite float; checked when set)."""
        return self._jitter

    @jitter.setter
    def jitter(self, value: float) -> None:
        self._jitter = check_real(value, "jitter", positive=True)

    @property
    def n_members(self) -> int:
        """The ensemble size S."""
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stack of the members' predictions (differentiable, e.g. for training).

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)

        Returns
        -------
        torch.Tensor, shape (S, batch, out_channels, n)

        Raises
        ------
        TypeError, ValueError
            If ``x`` is not a 3-D tensor.
        """
        x = self._check_x(x)
        return torch.stack([m(x) for m in self.members])

    @torch.no_grad()
    def member_predictions(self, x: torch.Tensor) -> torch.Tensor:
        """The members' predictions for ``x`` of shape ``(batch, in_channels, n)``, e.g. for
        ``ConstrainedGaussian.update_samples``: :meth:`forward` without gradient (the same errors).

        Returns
        -------
        torch.Tensor, shape (S, batch, out_channels, n)
            In the model's dtype.
        """
        return self(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, shrinkage: float = 0.0,
                dtype: torch.dtype = torch.float64) -> LowRankMultivariateNormal:
        """Gaussian prediction of the ensemble, ready for :class:`~probconserv_ext.ProbConserv`.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)
        shrinkage : float
            Weight ``lam`` in [0, 1] moved from the low-rank sample covariance to its diagonal:
            ``(1 - lam) U U^T + lam diag(U U^T) + jitter I``. The marginal variances are unchanged; ``lam > 0``
            keeps a small ensemble's covariance from being rank-deficient, which otherwise lets a
            conditioning update collapse the variance to the jitter at every node (covariance shrinkage,
            Ledoit and Wolf 2004). ``0`` gives the plain sample covariance.
        dtype : torch.dtype
            Dtype of the distribution, ``torch.float32`` or ``torch.float64`` (float64 by default, the ProbConserv
            layer's compute dtype; its capacitance matrix is factored in it). The centred
            factor has rank ``S - 1`` < ``S`` columns, so the distribution's capacitance matrix
            ``I + U^T D^-1 U`` has eigenvalues 1 and about ``var / jitter``; its Cholesky factor fails in float32
            for the default jitter.

        Returns
        -------
        torch.distributions.LowRankMultivariateNormal
            Batch shape ``(batch, C)``, event shape ``(n,)``: ``loc`` the members' mean, ``cov_factor``
            ``(batch, C, n, S)`` the centred members over ``sqrt(S - 1)`` (times ``sqrt(1 - lam)``), ``cov_diag``
            ``jitter + lam * diag(U U^T)``. Its ``variance`` is the members' sample variance plus ``jitter``.
            ``ProbConserv(constraint)(model.predict(x))`` applies the update.

        Raises
        ------
        TypeError, ValueError
            For a bad ``x``, ``shrinkage`` or ``dtype``.
        """
        return self.gaussian_from_samples(self(x), self.jitter, shrinkage, dtype)

    @staticmethod
    def gaussian_from_samples(ens: torch.Tensor, jitter: float, shrinkage: float = 0.0,
                              dtype: torch.dtype = torch.float64) -> LowRankMultivariateNormal:
        """Mean and low-rank-plus-diagonal covariance of ensemble members ``ens`` of shape ``(S, ..., n)``.

        See :meth:`predict` for ``shrinkage`` and ``dtype``.

        Parameters
        ----------
        ens : torch.Tensor, shape ``(S, ..., n)``
            ``S >= 2`` members, finite.
        jitter : float
            Diagonal variance added (> 0: the distribution needs a positive diagonal).
        shrinkage : float
        dtype : torch.dtype

        Returns
        -------
        torch.distributions.LowRankMultivariateNormal

        Raises
        ------
        TypeError
            If ``ens`` is not a tensor or ``jitter``/``shrinkage`` not a real number.
        ValueError
            If ``ens`` is not finite or has fewer than 2 members, ``jitter`` is not positive and finite,
            ``shrinkage`` is outside [0, 1], ``dtype`` is not a floating dtype, or the jitter is too small for the
            members' spread to factor the capacitance matrix in ``dtype``.
        """
        check_tensor(ens, "ens", layout="(S, ...) with S >= 2")
        if ens.ndim < 2 or ens.shape[0] < 2 or 0 in ens.shape[1:]:
            raise ValueError(f"ens must be a tensor of shape (S, ..., n) with S >= 2 and no empty dimension (n >= 1 "
                             f"nodes), got shape {tuple(ens.shape)}")
        check_finite(ens, "ens")
        jitter = check_real(jitter, "jitter", positive=True)
        shrinkage = check_fraction(shrinkage, "shrinkage")
        check_compute_dtype(dtype, "dtype")
        s = ens.shape[0]
        # statistics in the members' dtype (as the models produce them), then cast
        mean = ens.mean(0)
        factor = ((ens - mean) / (s - 1) ** 0.5).movedim(0, -1)
        marginal = factor.pow(2).sum(-1)
        diag = shrinkage * marginal + jitter
        factor = factor * (1.0 - shrinkage) ** 0.5
        try:
            return LowRankMultivariateNormal(mean.to(dtype), factor.to(dtype), diag.to(dtype))
        except torch.linalg.LinAlgError as err:
            raise ValueError(
                f"the ensemble covariance cannot be factored in {dtype} with jitter={jitter:g}: the members' spread "
                "is too large relative to the jitter; use dtype=torch.float64, a larger jitter or shrinkage > 0"
            ) from err
