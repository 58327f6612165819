"""FNO with a mean and a log-variance output per node, trained with the Gaussian likelihood."""

from typing import Any, Tuple

import torch
from torch.distributions import Normal

from _physics_constrained.validation import check_compute_dtype, check_real
from ..losses import gaussian_nll_loss
from ._fno import FNOModel

__all__ = ["HeteroscedasticFNO", "gaussian_nll_loss"]


class HeteroscedasticFNO(FNOModel):
    """1-D FNO over x with ``2 C`` output channels: C means and C log-variances (one per time slice).

    Parameters
    ----------
    in_channels : int
    out_channels : int
        Number C of predicted fields (time slices).
    n_modes, hidden_channels, n_layers : int
        FNO size.
    min_variance : float
        Variance floor added to ``exp(log_var)`` in :meth:`predict` (documents the model's resolution
        limit; the training loss uses the raw log-variance).
    seed : int
        Seed of the initial weights. The caller's global random state is left unchanged (the seeding happens
        inside ``torch.random.fork_rng``), and the same seed gives the same model.
    **fno_kwargs
        Further arguments of :class:`neuralop.models.FNO`.

    Raises
    ------
    TypeError, ValueError
        As :class:`~probconserv_ext.FNOEnsemble` for the sizes and the seed; for ``min_variance`` if it is not a
        real number (``TypeError``) or is negative or not finite (``ValueError``).

    Examples
    --------
    >>> model = HeteroscedasticFNO(in_channels=2, out_channels=5, seed=0)
    >>> post = ProbConserv(conservation_constraint(grid))(model.predict(x), b=totals)  # totals: (batch, 5, 1)

    References
    ----------
    .. [1] Nix, D. A., Weigend, A. S. "Estimating the mean and variance of the target probability
       distribution", ICNN 1994.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: int = 12, hidden_channels: int = 24,
                 n_layers: int = 3, min_variance: float = 1e-6, seed: int = 0, **fno_kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, n_modes, hidden_channels, n_layers, seed, fno_kwargs)
        self.min_variance = check_real(min_variance, "min_variance", nonnegative=True)
        self.fno = self._seeded_fno(2 * self.out_channels, self.seed)

    @property
    def min_variance(self) -> float:
        """Variance floor of :meth:`predict` (a non-negative, finite float; checked when set)."""
        return self._min_variance

    @min_variance.setter
    def min_variance(self, value: float) -> None:
        self._min_variance = check_real(value, "min_variance", nonnegative=True)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of every field at every node (differentiable, e.g. for training).

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``mean`` and ``log_var``, each (batch, out_channels, n).

        Raises
        ------
        TypeError, ValueError
            If ``x`` is not a 3-D tensor.
        """
        out = self.fno(self._check_x(x))
        return out[:, : self.out_channels], out[:, self.out_channels:]

    @torch.no_grad()
    def predict(self, x: torch.Tensor, dtype: torch.dtype = torch.float64) -> Normal:
        """Gaussian prediction with independent nodes, ready for :class:`~probconserv_ext.ProbConserv`.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)
        dtype : torch.dtype
            Dtype of the distribution, ``torch.float32`` or ``torch.float64`` (float64 by default, the ProbConserv
            layer's compute dtype).

        Returns
        -------
        torch.distributions.Normal
            ``loc`` the mean, ``scale`` the square root of ``exp(log_var) + min_variance`` (computed in the model's
            dtype), each (batch, C, n). ``ProbConserv(constraint)(model.predict(x))`` applies the update.

        Raises
        ------
        TypeError, ValueError
            For a bad ``x`` or ``dtype``, or (``ValueError``) if a predicted variance is zero
            (``min_variance = 0`` and ``exp(log_var)`` underflows).
        """
        check_compute_dtype(dtype, "dtype")
        mean, log_var = self(x)
        var = torch.exp(log_var) + self.min_variance
        if not bool((var > 0).all()):
            raise ValueError("the predicted variance underflows to 0 at some node; construct the model with "
                             "min_variance > 0")
        return Normal(mean.to(dtype), var.to(dtype).sqrt())
