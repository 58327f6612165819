"""The constrained Gaussian log-likelihood as a training loss."""

import math

import torch
from torch.distributions import Distribution

__all__ = ["gaussian_nll"]


def gaussian_nll(dist, target, joint=False, reduction="mean", eps=0.0):
    """Negative Gaussian log-likelihood of ``target`` under a (constrained) Gaussian prediction.

    Parameters
    ----------
    dist : ConstrainedGaussian, StructuredGaussian or a torch Gaussian distribution
        Prediction with ``mean``/``variance`` (and ``log_prob`` when ``joint=True``).
    target : torch.Tensor, shape ``(..., n)``
    joint : bool
        ``False`` (default): sum over nodes of the per-node (marginal) Normal NLL, defined for any target,
        the likelihood metric of the ProbConserv paper. ``True``: the joint ``-dist.log_prob(target)``; for an
        exact constraint the target must satisfy it (density on ``{G u = b}``).
    reduction : {"mean", "sum", "none"}
        ``"mean"`` averages over leading dimensions and divides by ``n`` (NLL per node), ``"sum"`` sums, ``"none"``
        returns shape ``(...)`` (per field, summed over nodes).
    eps : float
        Lower bound applied to the variances (marginal form only). The default 0 raises on a zero variance
        instead of clipping silently.

    Returns
    -------
    torch.Tensor
        Differentiable with respect to the mean, covariance and learnable noise behind ``dist``.
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a torch Distribution (e.g. a ConstrainedGaussian), got {type(dist).__name__}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a tensor, got {type(target).__name__}")
    mean = dist.mean
    if target.shape[-1] != mean.shape[-1]:
        raise ValueError(f"target must have {mean.shape[-1]} nodes in its last dimension, got {tuple(target.shape)}")
    if not bool(torch.isfinite(target).all()):
        raise ValueError("target must be finite, but it contains NaN or inf")
    n = mean.shape[-1]
    if joint:
        per_field = -dist.log_prob(target)
    else:
        var = dist.variance
        if eps > 0:
            var = var.clamp_min(eps)
        elif bool((var <= 0).any()):
            raise ValueError("the prediction has zero variance at some node; pass eps > 0 or use joint=True")
        t = target.to(mean.dtype)
        per_field = 0.5 * (math.log(2 * math.pi) + var.log() + (t - mean) ** 2 / var).sum(-1)
    if reduction == "none":
        return per_field
    if reduction == "sum":
        return per_field.sum()
    return per_field.mean() / n
