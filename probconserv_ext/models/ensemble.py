"""Deep ensemble of FNOs: a Gaussian prediction with a low-rank-plus-diagonal covariance."""

import torch
from torch import nn
from torch.distributions import LowRankMultivariateNormal
from neuralop.models import FNO

from ._seeding import check_seed, seeded
from ._state import HoldsNeuralopModels

__all__ = ["FNOEnsemble"]


class FNOEnsemble(HoldsNeuralopModels):
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
    ValueError
        If a size is not a positive integer (``n_members < 2``), ``jitter`` is not positive and finite, or
        ``seed`` is negative.
    TypeError
        If ``seed`` is not an integer.

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

    def __init__(self, n_members, in_channels, out_channels, n_modes=12, hidden_channels=24, n_layers=3,
                 jitter=1e-6, seed=0, **fno_kwargs):
        super().__init__()
        for name, v, lo in (("n_members", n_members, 2), ("in_channels", in_channels, 1),
                            ("out_channels", out_channels, 1), ("n_modes", n_modes, 1),
                            ("hidden_channels", hidden_channels, 1), ("n_layers", n_layers, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if not (isinstance(jitter, (int, float)) and jitter > 0 and jitter < float("inf")):
            raise ValueError(f"jitter must be a positive finite float, got {jitter!r}")
        check_seed(seed)
        self.jitter = float(jitter)
        self.seed = seed
        fno_kwargs.setdefault("positional_embedding", None)
        members = []
        for i in range(n_members):
            with seeded(seed + i):
                members.append(FNO(n_modes=(n_modes,), in_channels=in_channels, out_channels=out_channels,
                                   hidden_channels=hidden_channels, n_layers=n_layers, **fno_kwargs))
        self.members = nn.ModuleList(members)

    @property
    def n_members(self):
        return len(self.members)

    def forward(self, x):
        """Stack of member predictions (differentiable; the same as :meth:`member_predictions`).

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)

        Returns
        -------
        torch.Tensor, shape (S, batch, out_channels, n)

        Raises
        ------
        ValueError
            If ``x`` is not a 3-D tensor.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(f"x must be a tensor of shape (batch, channels, n), got {getattr(x, 'shape', x)}")
        return torch.stack([m(x) for m in self.members])

    @torch.no_grad()
    def member_predictions(self, x):
        """The members' predictions, e.g. for ``ConstrainedGaussian.update_samples``.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)

        Returns
        -------
        torch.Tensor, shape (S, batch, out_channels, n)
            In the model's dtype, without gradient.
        """
        return self(x)

    @torch.no_grad()
    def predict(self, x, shrinkage=0.0, dtype=torch.float64):
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
            Dtype of the distribution (float64 by default, the ProbConserv layer's compute dtype). The centred
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
        ValueError
            For a bad ``x``, ``shrinkage`` or ``dtype``.
        """
        return self.gaussian_from_samples(self(x), self.jitter, shrinkage, dtype)

    @staticmethod
    def gaussian_from_samples(ens, jitter, shrinkage=0.0, dtype=torch.float64):
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
        ValueError
            If ``ens`` is not a finite tensor with ``S >= 2`` members, ``jitter`` is not positive and finite,
            ``shrinkage`` is outside [0, 1], ``dtype`` is not a floating dtype, or the jitter is too small for the
            members' spread to factor the capacitance matrix in ``dtype``.
        """
        if not isinstance(ens, torch.Tensor) or ens.ndim < 2 or ens.shape[0] < 2:
            raise ValueError(f"ens must be a tensor of shape (S, ...) with S >= 2, got {getattr(ens, 'shape', ens)}")
        if not bool(torch.isfinite(ens).all()):
            raise ValueError("ens must be finite (no NaN or inf)")
        if isinstance(jitter, bool) or not (isinstance(jitter, (int, float)) and 0 < jitter < float("inf")):
            raise ValueError(f"jitter must be a positive finite float, got {jitter!r}")
        if isinstance(shrinkage, bool) or not (isinstance(shrinkage, (int, float)) and 0 <= shrinkage <= 1):
            raise ValueError(f"shrinkage must be a float in [0, 1], got {shrinkage!r}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
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
