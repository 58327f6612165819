"""The Gaussian negative log-likelihood: :func:`gaussian_nll`, the package's one NLL.

``gaussian_nll_loss`` (mean, log-variance form) is kept as a deprecated alias.
"""

import math
import warnings

import torch
from torch.distributions import Distribution

from _physics_constrained.validation import (check_bool, check_broadcasts_to, check_choice, check_finite, check_real,
                                              check_tensor)

__all__ = ["gaussian_nll", "gaussian_nll_loss"]


def gaussian_nll(dist: Distribution, target: torch.Tensor, joint: bool = False, reduction: str = "mean",
                 eps: float = 0.0) -> torch.Tensor:
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
        Lower bound (>= 0) applied to the variances (marginal form only). The default 0 raises on a zero variance
        instead of clipping silently.

    Returns
    -------
    torch.Tensor
        Differentiable with respect to the mean, covariance and learnable noise behind ``dist``.

    Raises
    ------
    TypeError
        If ``dist`` is not a torch Distribution or ``target`` not a tensor.
    ValueError
        For a bad ``reduction``, a negative ``eps``, a ``target`` with the wrong number of nodes or non-finite
        values, or a zero variance with ``eps = 0``.

    Examples
    --------
    A heteroscedastic model's mean and log-variance (the deprecated ``gaussian_nll_loss(mean, log_var, target)``)::

        gaussian_nll(Normal(mean, (0.5 * log_var).exp()), target)
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a torch Distribution (e.g. a ConstrainedGaussian), got {type(dist).__name__}")
    joint = check_bool(joint, "joint")
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    check_tensor(target, "target", layout="(..., n)")
    eps = check_real(eps, "eps", nonnegative=True)
    mean = dist.mean
    if target.shape[-1] != mean.shape[-1]:
        raise ValueError(f"target must have {mean.shape[-1]} nodes in its last dimension, got {tuple(target.shape)}")
    # a larger target would average the likelihood over cross pairs of fields instead of erroring
    check_broadcasts_to(target.shape, mean.shape, "target", f"the prediction's shape {tuple(mean.shape)}")
    check_finite(target, "target")
    n = mean.shape[-1]
    if joint:
        per_field = -dist.log_prob(target)
    else:
        var = dist.variance
        if eps > 0:
            var = var.clamp_min(eps)
        elif bool((var <= 0).any()):
            raise ValueError("eps must be positive where the prediction has a zero variance, got 0 (pass eps > 0 "
                             "or use joint=True)")
        t = target.to(mean.dtype)
        per_field = 0.5 * (math.log(2 * math.pi) + var.log() + (t - mean) ** 2 / var).sum(-1)
    if reduction == "none":
        return per_field
    if reduction == "sum":
        return per_field.sum()
    if per_field.numel() == 0:  # the mean of no field is NaN, not a likelihood
        raise ValueError(f"target must hold at least one field for reduction='mean', got shape {tuple(target.shape)}")
    return per_field.mean() / n


def _nll_log_var(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-node mean of ``0.5 (log 2 pi + log_var + (target - mean)^2 exp(-log_var))``: the marginal form of
    :func:`gaussian_nll` parametrised by the log-variance (the training loss of a heteroscedastic model: no
    ``log(exp(.))`` round trip, no underflow of ``exp(log_var)`` to a zero variance)."""
    for name, t in (("mean", mean), ("log_var", log_var), ("target", target)):
        check_tensor(t, name)
    if not (mean.shape == log_var.shape == target.shape):
        raise ValueError(
            f"mean, log_var and target must have the same shape, got {tuple(mean.shape)}, "
            f"{tuple(log_var.shape)}, {tuple(target.shape)}"
        )
    return 0.5 * (math.log(2 * math.pi) + log_var + (target - mean) ** 2 * torch.exp(-log_var)).mean()


def gaussian_nll_loss(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deprecated alias: use :func:`gaussian_nll` with ``Normal(mean, (0.5 * log_var).exp())``.

    Mean negative Gaussian log-likelihood per node, unchanged from earlier versions.

    Parameters
    ----------
    mean, log_var, target : torch.Tensor
        Same shapes.

    Returns
    -------
    torch.Tensor
        Scalar ``mean(0.5 * (log 2 pi + log_var + (target - mean)^2 / exp(log_var)))``.

    Raises
    ------
    ValueError
        If the shapes differ.
    TypeError
        If an argument is not a tensor.

    Warns
    -----
    DeprecationWarning
        On every call.
    """
    warnings.warn(
        "gaussian_nll_loss(mean, log_var, target) is deprecated; use "
        "gaussian_nll(Normal(mean, (0.5 * log_var).exp()), target)",
        DeprecationWarning,
        stacklevel=2,
    )
    return _nll_log_var(mean, log_var, target)
