"""Deep ensemble of FNOs: a Gaussian prediction with a low-rank-plus-diagonal covariance."""

import torch
from torch import nn
from neuralop.models import FNO

__all__ = ["FNOEnsemble"]


class FNOEnsemble(nn.Module):
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
        Member ``i`` is initialised with ``torch.manual_seed(seed + i)``.
    **fno_kwargs
        Further arguments of :class:`neuralop.models.FNO`.

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
        self.jitter = float(jitter)
        fno_kwargs.setdefault("positional_embedding", None)
        members = []
        for i in range(n_members):
            torch.manual_seed(seed + i)
            members.append(FNO(n_modes=(n_modes,), in_channels=in_channels, out_channels=out_channels,
                               hidden_channels=hidden_channels, n_layers=n_layers, **fno_kwargs))
        self.members = nn.ModuleList(members)

    @property
    def n_members(self):
        return len(self.members)

    def forward(self, x):
        """Stack of member predictions.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)

        Returns
        -------
        torch.Tensor, shape (S, batch, out_channels, n)
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(f"x must be a tensor of shape (batch, channels, n), got {getattr(x, 'shape', x)}")
        return torch.stack([m(x) for m in self.members])

    @torch.no_grad()
    def predict(self, x, shrinkage=0.0):
        """Gaussian prediction of the ensemble.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)
        shrinkage : float
            Weight ``lam`` in [0, 1] moved from the low-rank sample covariance to its diagonal:
            ``(1 - lam) U U^T + lam diag(U U^T) + jitter I``. The marginal variances are unchanged; ``lam > 0``
            keeps a small ensemble's covariance from being rank-deficient, which otherwise lets a
            conditioning update collapse the variance to the jitter at every node (covariance shrinkage,
            Ledoit and Wolf 2004). ``0`` gives the plain sample covariance.

        Returns
        -------
        dict
            ``mean`` (batch, C, n); ``cov_factor`` (batch, C, n, S) with ``cov_factor @ cov_factor^T`` the
            sample covariance of the members per slice; ``cov_diag`` (batch, C, n) equal to ``jitter``;
            ``variance`` (batch, C, n), the diagonal of the full covariance; ``samples`` (S, batch, C, n).
        """
        ens = self(x)
        return self.gaussian_from_samples(ens, self.jitter, shrinkage)

    @staticmethod
    def gaussian_from_samples(ens, jitter, shrinkage=0.0):
        """Mean and low-rank-plus-diagonal covariance of ensemble members ``ens`` of shape (S, ...).

        See :meth:`predict` for ``shrinkage``.
        """
        if not isinstance(ens, torch.Tensor) or ens.ndim < 2 or ens.shape[0] < 2:
            raise ValueError(f"ens must be a tensor of shape (S, ...) with S >= 2, got {getattr(ens, 'shape', ens)}")
        if not bool(torch.isfinite(ens).all()):
            raise ValueError("ens must be finite (no NaN or inf)")
        if not (isinstance(jitter, (int, float)) and 0 <= jitter < float("inf")):
            raise ValueError(f"jitter must be a finite float >= 0, got {jitter!r}")
        if isinstance(shrinkage, bool) or not (isinstance(shrinkage, (int, float)) and 0 <= shrinkage <= 1):
            raise ValueError(f"shrinkage must be a float in [0, 1], got {shrinkage!r}")
        s = ens.shape[0]
        mean = ens.mean(0)
        factor = ((ens - mean) / (s - 1) ** 0.5).movedim(0, -1)
        marginal = factor.pow(2).sum(-1)
        diag = shrinkage * marginal + jitter
        factor = factor * (1.0 - shrinkage) ** 0.5
        return {"mean": mean, "cov_factor": factor, "cov_diag": diag,
                "variance": marginal + jitter, "samples": ens}
