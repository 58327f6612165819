"""neuralop's UQNO as a Gaussian prediction for ProbConserv: a calibrated band turned into per-node variances.

neuralop's ``UQNO`` returns ``(solution, quantile)``. Its residual model is trained with neuralop's
``PointwiseQuantileLoss(alpha)`` on the absolute error ``|u - solution|`` of the frozen base model, so ``quantile``
is a pointwise ``1 - alpha`` quantile of that absolute error: the symmetric band ``solution +- quantile`` is meant to
hold the truth at a fraction ``1 - alpha`` of the nodes. neuralop's recipe then calibrates the band on held-out
data with a single factor ``lambda`` (conformal risk control: for a fraction ``1 - delta`` of functions, at least
``1 - alpha`` of their nodes fall in ``solution +- lambda * quantile``).

The coverage-to-variance rule used here: a centred Gaussian error ``e ~ N(0, sigma^2)`` lies in ``[-q, q]`` with
probability ``coverage`` when ``q = z * sigma``, ``z = Phi^{-1}((1 + coverage) / 2) = sqrt(2) erfinv(coverage)``.
So ``sigma = lambda * quantile / z`` node by node.

Assumptions, stated where users meet them: the error is centred on ``solution`` (the band is symmetric, as
UQNO's is) and Gaussian at each node. A band fixes each node's variance but not the correlations: by default the
nodes are independent (a diagonal covariance); ``correlation=`` adds a shared component with the same marginals.
``coverage`` is the pointwise ``1 - alpha`` of the calibration; the ``delta`` level of neuralop's recipe only
widens the band, so the variances are conservative (too large rather than too small) when the calibration holds.

References
----------
Ma, Pitt, Azizzadenesheli, Anandkumar (2024). Calibrated uncertainty quantification for operator learning via
conformal prediction. TMLR.
"""

import math
from typing import Any, Optional

import torch

from _physics_constrained.validation import (as_tensor, check_broadcasts_to, check_compute_dtype, check_finite,
                                             check_fraction, check_real)
from .covariance import DiagonalCovariance, LowRankCovariance
from .gaussian import StructuredGaussian

__all__ = ["band_z_score", "band_to_std", "from_uqno"]


def band_z_score(coverage: Any) -> float:
    """``z`` with ``P(|N(0, 1)| <= z) = coverage``: the half-width of a symmetric band in standard deviations.

    Parameters
    ----------
    coverage : float in (0, 1)
        Fraction of the truth the band ``mean +- z sigma`` holds (``1 - alpha``).

    Returns
    -------
    float
        ``z = sqrt(2) erfinv(coverage) = Phi^{-1}((1 + coverage) / 2)``; e.g. 1.959964 for 0.95.

    Raises
    ------
    TypeError
        If ``coverage`` is not a real number.
    ValueError
        If it does not lie strictly between 0 and 1.
    """
    coverage = check_real(coverage, "coverage")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be a probability strictly between 0 and 1 (1 - alpha), got {coverage}")
    return math.sqrt(2.0) * float(torch.erfinv(torch.tensor(coverage, dtype=torch.float64)))


def band_to_std(half_width: Any, coverage: Any, calibration: Any = 1.0) -> torch.Tensor:
    """Standard deviations of the Gaussian whose symmetric ``coverage`` band has the given half-widths.

    ``sigma = calibration * half_width / z``, ``z`` from :func:`band_z_score`.

    Parameters
    ----------
    half_width : tensor or array, shape ``(...)``
        Non-negative half-widths of the band (UQNO's ``quantile``).
    coverage : float in (0, 1)
        The band's coverage ``1 - alpha``.
    calibration : float, default 1.0
        Positive factor the band is multiplied by (the conformal ``lambda`` of neuralop's UQNO recipe), when
        ``half_width`` is the raw residual-model output.

    Returns
    -------
    torch.Tensor
        Same shape and (floating) dtype as ``half_width``.

    Raises
    ------
    TypeError
        For non-numeric input.
    ValueError
        For a negative or non-finite half-width, a coverage outside (0, 1), or a calibration that is not positive.
    """
    z = band_z_score(coverage)
    calibration = check_real(calibration, "calibration", positive=True)
    q = check_finite(as_tensor(half_width, "half_width"), "half_width")
    if q.numel() and float(q.detach().amin()) < 0:
        raise ValueError(f"half_width must be non-negative (a band's half-width), but its smallest entry is "
                         f"{float(q.detach().amin()):.3e}; a quantile model can output negative values where it is "
                         "poorly trained: take its absolute value or raise it to a floor explicitly (from_uqno's "
                         "floor=) before converting")
    return q * (calibration / z)


def from_uqno(solution: Any, quantile: Any, coverage: Any, *, calibration: Any = 1.0,
              floor: Optional[Any] = None, correlation: Any = 0.0,
              compute_dtype: torch.dtype = torch.float64) -> StructuredGaussian:
    """The Gaussian prediction ProbConserv takes, from neuralop UQNO's ``(solution, quantile)``.

    Mean ``solution``, per-node variances ``sigma^2`` with ``sigma = calibration * quantile / z``,
    ``z = Phi^{-1}((1 + coverage) / 2)`` (the module's docstring states the rule and its assumptions), and
    independent nodes unless ``correlation`` says otherwise.

    Parameters
    ----------
    solution : tensor or array, shape ``(..., n)``
        UQNO's solution (its base model's prediction); the last dimension holds the nodes the constraint acts on
        (flatten 2-D/3-D fields with :func:`probconserv_ext.flatten_field`).
    quantile : tensor or array, shape broadcasting to ``solution``'s
        UQNO's band half-widths ``|u - solution| <= quantile`` at a fraction ``coverage`` of the nodes.
    coverage : float in (0, 1)
        The pointwise coverage ``1 - alpha`` the band was trained and calibrated for (the ``alpha`` of
        ``PointwiseQuantileLoss``).
    calibration : float, default 1.0
        The conformal factor ``lambda`` of the calibration step, if ``quantile`` is the raw residual-model output
        (1 when it is already calibrated).
    floor : float, optional
        If given, half-widths below ``floor`` (>= 0) are raised to it before the conversion: an explicit choice
        for a quantile model that outputs zero or negative widths at some nodes. Without it, a negative width
        is an error.
    correlation : float in [0, 1], default 0.0
        A band fixes each node's variance, not how the errors of different nodes move together. ``0`` takes them
        independent (a diagonal covariance); ``rho > 0`` adds a shared component with the same marginals,
        ``Sigma = (1 - rho) diag(sigma^2) + rho sigma sigma^T`` (low rank plus diagonal, still ``O(n)``), for a
        model whose errors share a sign over the domain (an FNO's usually do). The layer then spreads a
        conservation correction in proportion to ``sigma`` instead of ``sigma^2``. Estimate it on calibration data
        (``examples/uqno_probconserv.py`` fits it to the spread of the calibration totals).
    compute_dtype : torch.dtype, default torch.float64
        The ``compute_dtype`` of the layer it goes to (the layer's default): the Gaussian is held in it, and the
        layer's outputs come back in ``solution``'s dtype.

    Returns
    -------
    StructuredGaussian
        Mean ``solution`` and a diagonal covariance, held in ``compute_dtype``; pass it to
        :class:`probconserv_ext.ProbConserv` as the prediction.

    Raises
    ------
    TypeError
        For non-numeric input.
    ValueError
        For non-finite input, a negative half-width (without ``floor``), a ``quantile`` that would broadcast
        ``solution`` to a larger shape, a coverage outside (0, 1), a non-positive calibration, a negative floor or
        a correlation outside [0, 1].

    Examples
    --------
    >>> solution, quantile = uqno(x)                         # neuralop.models.UQNO, (batch, nt, nx)
    >>> prior = from_uqno(solution, quantile, coverage=0.9)
    >>> post = ProbConserv(conservation_constraint(grid, total=totals))(prior)
    """
    compute_dtype = check_compute_dtype(compute_dtype)
    rho = check_fraction(correlation, "correlation")
    mean = check_finite(as_tensor(solution, "solution"), "solution")
    out_dtype = mean.dtype
    if mean.ndim < 1:
        raise ValueError("solution must have the nodes in its last dimension, shape (..., n), got a scalar")
    mean = mean.to(compute_dtype)
    q = as_tensor(quantile, "quantile", dtype=compute_dtype, device=mean.device)
    check_broadcasts_to(q.shape, mean.shape, "quantile", f"solution's shape {tuple(mean.shape)}")
    if floor is not None:
        floor = check_real(floor, "floor", nonnegative=True)
        q = q.clamp_min(floor)
    try:
        std = band_to_std(q, coverage, calibration)
    except ValueError as err:
        raise ValueError(str(err).replace("half_width", "quantile", 1)) from None
    std = std.expand(mean.shape)
    if rho == 0.0:
        return StructuredGaussian(mean, DiagonalCovariance(std.square()), out_dtype)
    cov = LowRankCovariance((math.sqrt(rho) * std)[..., None], (1.0 - rho) * std.square())
    return StructuredGaussian(mean, cov, out_dtype)
