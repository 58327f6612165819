"""FNO with a mean and a log-variance output per node, trained with the Gaussian likelihood."""

import torch
from torch.distributions import Normal
from neuralop.models import FNO

from ..losses import gaussian_nll_loss
from ._seeding import check_seed, seeded
from ._state import HoldsNeuralopModels

__all__ = ["HeteroscedasticFNO", "gaussian_nll_loss"]


class HeteroscedasticFNO(HoldsNeuralopModels):
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
    ValueError
        If a size is not a positive integer, ``min_variance`` is negative or not finite, or ``seed`` is negative.
    TypeError
        If ``seed`` is not an integer.

    Examples
    --------
    >>> model = HeteroscedasticFNO(in_channels=2, out_channels=5, seed=0)
    >>> post = ProbConserv(conservation_constraint(grid))(model.predict(x), b=totals)  # totals: (batch, 5, 1)

    References
    ----------
    .. [1] Nix, D. A., Weigend, A. S. "Estimating the mean and variance of the target probability
       distribution", ICNN 1994.
    """

    def __init__(self, in_channels, out_channels, n_modes=12, hidden_channels=24, n_layers=3,
                 min_variance=1e-6, seed=0, **fno_kwargs):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("n_modes", n_modes),
                        ("hidden_channels", hidden_channels), ("n_layers", n_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(min_variance, (int, float)) and 0 <= min_variance < float("inf")):
            raise ValueError(f"min_variance must be a finite float >= 0, got {min_variance!r}")
        check_seed(seed)
        self.out_channels = out_channels
        self.min_variance = float(min_variance)
        self.seed = seed
        fno_kwargs.setdefault("positional_embedding", None)
        with seeded(seed):
            self.fno = FNO(n_modes=(n_modes,), in_channels=in_channels, out_channels=2 * out_channels,
                           hidden_channels=hidden_channels, n_layers=n_layers, **fno_kwargs)

    def forward(self, x):
        """Mean and log-variance.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``mean`` and ``log_var``, each (batch, out_channels, n).

        Raises
        ------
        ValueError
            If ``x`` is not a 3-D tensor.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(f"x must be a tensor of shape (batch, channels, n), got {getattr(x, 'shape', x)}")
        out = self.fno(x)
        return out[:, : self.out_channels], out[:, self.out_channels:]

    @torch.no_grad()
    def predict(self, x, dtype=torch.float64):
        """Gaussian prediction with independent nodes, ready for :class:`~probconserv_ext.ProbConserv`.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, in_channels, n)
        dtype : torch.dtype
            Dtype of the distribution (float64 by default, the ProbConserv layer's compute dtype).

        Returns
        -------
        torch.distributions.Normal
            ``loc`` the mean, ``scale`` the square root of ``exp(log_var) + min_variance`` (computed in the model's
            dtype), each (batch, C, n). ``ProbConserv(constraint)(model.predict(x))`` applies the update.

        Raises
        ------
        ValueError
            For a bad ``x`` or ``dtype``, or if a predicted variance is zero (``min_variance = 0`` and
            ``exp(log_var)`` underflows).
        """
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        mean, log_var = self(x)
        var = torch.exp(log_var) + self.min_variance
        if not bool((var > 0).all()):
            raise ValueError("the predicted variance underflows to 0 at some node; construct the model with "
                             "min_variance > 0")
        return Normal(mean.to(dtype), var.to(dtype).sqrt())
