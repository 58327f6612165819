"""FNO with a mean and a log-variance output per node, trained with the Gaussian likelihood."""

import math

import torch
from torch import nn
from neuralop.models import FNO

__all__ = ["HeteroscedasticFNO", "gaussian_nll_loss"]


def gaussian_nll_loss(mean, log_var, target):
    """Mean negative Gaussian log-likelihood per node.

    Parameters
    ----------
    mean, log_var, target : torch.Tensor
        Same shapes.

    Returns
    -------
    torch.Tensor
        Scalar ``mean(0.5 * (log 2 pi + log_var + (target - mean)^2 / exp(log_var)))``.
    """
    if not (mean.shape == log_var.shape == target.shape):
        raise ValueError(
            f"mean, log_var and target must have the same shape, got {tuple(mean.shape)}, "
            f"{tuple(log_var.shape)}, {tuple(target.shape)}"
        )
    return 0.5 * (math.log(2 * math.pi) + log_var + (target - mean) ** 2 * torch.exp(-log_var)).mean()


class HeteroscedasticFNO(nn.Module):
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
    **fno_kwargs
        Further arguments of :class:`neuralop.models.FNO`.

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
        self.out_channels = out_channels
        self.min_variance = float(min_variance)
        fno_kwargs.setdefault("positional_embedding", None)
        torch.manual_seed(seed)
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
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(f"x must be a tensor of shape (batch, channels, n), got {getattr(x, 'shape', x)}")
        out = self.fno(x)
        return out[:, : self.out_channels], out[:, self.out_channels:]

    @torch.no_grad()
    def predict(self, x):
        """Gaussian prediction with a diagonal covariance.

        Returns
        -------
        dict
            ``mean`` and ``variance`` (``exp(log_var) + min_variance``), each (batch, C, n).
        """
        mean, log_var = self(x)
        return {"mean": mean, "variance": torch.exp(log_var) + self.min_variance}
