"""Metrics of the ProbConserv paper: shock position, per-node log-likelihood, and the comparison of methods.

* :func:`shock_positions`: where each sample of a front-propagating solution (Stefan, porous medium) first drops
  to a threshold along x;
* :func:`gaussian_log_likelihood`: the per-node Gaussian log-likelihood of a target under a prediction;
* :func:`posteriors` and :func:`compare_methods`: the unconstrained prediction, HardC, ProbConserv and
  ProbConserv with a non-negative mean, with MSE, conservation error and log-likelihood per field;
* :func:`draw_samples`: draws from any of these distributions with an explicit ``torch.Generator``.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023.
"""

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.distributions import Distribution, Normal

from _physics_constrained.validation import (as_tensor, check_broadcasts_to, check_choice, check_finite,
                                              check_generator, check_real)
from .constraints import LinearConstraint
from .gaussian import StructuredGaussian, check_sample_shape
from .layer import ProbConserv
from .diagnostics import gain_bound, update_diagnostics
from .losses import gaussian_nll
from .models._seeding import seeded

# the diagnostics that explain a gain (its bound, the mass error, where the variance and the error lie) are evaluation
# metrics too: they live in diagnostics.py and are offered here beside the others
__all__ = ["METHODS", "shock_positions", "gaussian_log_likelihood", "draw_samples", "posteriors", "evaluate",
           "compare_methods", "gain_bound", "update_diagnostics"]

METHODS = ("unconstrained", "hardc", "probconserv", "probconserv+nn")
_RULES = ("node", "crossing")
_NO_CROSSING = ("last", "nan")


ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[float]]


def shock_positions(samples: ArrayLike, grid: ArrayLike, threshold: float = 0.0, rule: str = "node",
                    no_crossing: str = "last") -> torch.Tensor:
    """Shock (front) position of each sample: where ``u`` first drops to ``threshold`` along x.

    Two rules:

    * ``rule="node"``: the first node ``x_i`` with ``u_i <= threshold``. With ``threshold = 0`` this is the rule of
      the ProbConserv paper (first node where ``u <= 0``). Its resolution is one grid cell, and noise ahead of the
      front (``u`` around 0) can trigger it early.
    * ``rule="crossing"``: the first crossing of ``threshold`` from above, linearly interpolated between the last
      node above it, ``x_(i-1)``, and the first node at or below it, ``x_i``. A threshold away from both states
      (e.g. half the jump height, ``p*/2`` for Stefan) is not triggered by small noise around 0.

    Parameters
    ----------
    samples : torch.Tensor or array, shape ``(..., n)``
        Fields along x in the last dimension (e.g. posterior samples), finite.
    grid : torch.Tensor or array, shape ``(n,)``
        Strictly increasing node positions.
    threshold : float
        Finite level.
    rule : {"node", "crossing"}
    no_crossing : {"last", "nan"}
        Position reported for a sample that stays above ``threshold`` everywhere: the right end of the grid
        (``"last"``, the front has not entered the domain's last cell yet or lies beyond it) or NaN.

    Returns
    -------
    torch.Tensor, shape ``(...)``, float64
        Positions in ``[grid[0], grid[-1]]`` (or NaN). A sample already at or below ``threshold`` at the first
        node gets ``grid[0]`` under both rules.

    Raises
    ------
    TypeError
        If ``samples``, ``grid`` or ``threshold`` is not numeric.
    ValueError
        If the shapes do not match, ``grid`` is not strictly increasing, a value is not finite, or ``rule`` or
        ``no_crossing`` is unknown.

    Examples
    --------
    >>> grid = torch.linspace(0, 1, 5)
    >>> shock_positions(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]), grid)                    # paper's rule
    tensor(0.5000, dtype=torch.float64)
    >>> shock_positions(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]), grid, 0.5, "crossing")
    tensor(0.3750, dtype=torch.float64)
    """
    check_choice(rule, "rule", _RULES)
    check_choice(no_crossing, "no_crossing", _NO_CROSSING)
    u = as_tensor(samples, "samples", dtype=torch.float64)
    x = as_tensor(grid, "grid", dtype=torch.float64, device=u.device)
    threshold = check_real(threshold, "threshold")
    if x.ndim != 1 or x.numel() < 1:
        raise ValueError(f"grid must be a 1-D tensor of node positions, got shape {tuple(x.shape)}")
    if u.ndim < 1 or u.shape[-1] != x.numel():
        raise ValueError(f"samples must have shape (..., n) with n = {x.numel()} (the grid's size), "
                         f"got {tuple(u.shape)}")
    check_finite(x, "grid")
    check_finite(u, "samples")
    if x.numel() > 1 and not bool((x[1:] > x[:-1]).all()):
        i = int(torch.nonzero(x[1:] <= x[:-1])[0])
        raise ValueError(f"grid must be strictly increasing, got grid[{i + 1}] = {float(x[i + 1])!r} <= "
                         f"grid[{i}] = {float(x[i])!r}")
    below = u <= threshold
    found = below.any(-1)
    first = below.to(torch.int8).argmax(-1)  # index of the first True (argmax returns the first maximum)
    pos = x[first]
    if rule == "crossing":
        prev = (first - 1).clamp_min(0)
        u0 = u.gather(-1, prev[..., None]).squeeze(-1)
        u1 = u.gather(-1, first[..., None]).squeeze(-1)
        inside = found & (first > 0)
        # u0 > threshold >= u1 where inside, so the fraction lies in (0, 1]; elsewhere the denominator is unused
        frac = (u0 - threshold) / torch.where(inside, u0 - u1, torch.ones_like(u0))
        pos = torch.where(inside, x[prev] + frac * (x[first] - x[prev]), pos)
    missing = x[-1] if no_crossing == "last" else torch.tensor(float("nan"), dtype=x.dtype, device=x.device)
    return torch.where(found, pos, missing)


def _check_distribution(dist: Distribution, name: str = "dist") -> Distribution:
    if not isinstance(dist, Distribution):
        raise TypeError(f"{name} must be a torch Distribution (e.g. model.predict(x)), got {type(dist).__name__}")
    return dist


def _check_target(target: ArrayLike, mean: torch.Tensor) -> torch.Tensor:
    """``target`` as a tensor of the prediction's dtype, device and shape."""
    t = as_tensor(target, "target", dtype=mean.dtype, device=mean.device)
    if t.shape != mean.shape:
        raise ValueError(f"target must have the prediction's shape {tuple(mean.shape)}, got {tuple(t.shape)}")
    return t


def gaussian_log_likelihood(dist: Distribution, target: ArrayLike, var_floor: float = 0.0) -> torch.Tensor:
    """Per-node Gaussian log-likelihood of ``target``, averaged over the nodes of each field.

    ``mean_i log N(target_i; mu_i, max(var_i, var_floor))`` with the prediction's marginal means ``mu`` and
    variances ``var``: the LL metric of the ProbConserv paper, i.e. ``-gaussian_nll`` per field divided by ``n``.

    Parameters
    ----------
    dist : torch.distributions.Distribution
        Any prediction with ``mean`` and ``variance`` of shape ``(..., n)`` (``Normal``, ``LowRankMultivariateNormal``,
        the layer's ``ConstrainedGaussian``).
    target : torch.Tensor or array, shape ``(..., n)``
        Same shape as ``dist.mean``.
    var_floor : float
        Lower bound on the variances (>= 0), e.g. the model's resolution, so that nodes pinned at zero variance (by
        the non-negative update, or an exact constraint) do not give unbounded densities. With the default 0 a zero
        variance raises.

    Returns
    -------
    torch.Tensor, shape ``(...)``
        One value per field, in the dtype of ``dist.mean``.

    Raises
    ------
    TypeError
        If ``dist`` is not a distribution or ``target`` not numeric.
    ValueError
        If ``target`` does not have the prediction's shape, ``var_floor`` is negative or not finite, or a variance
        is zero with ``var_floor = 0``.
    """
    _check_distribution(dist)
    var_floor = check_real(var_floor, "var_floor", nonnegative=True)
    mean = dist.mean
    t = _check_target(target, mean)
    if var_floor == 0 and not bool((dist.variance > 0).all()):  # said here in terms of this function's argument
        raise ValueError("var_floor must be positive where the prediction has a zero variance, got 0 "
                         "(pass var_floor > 0)")
    # gaussian_nll's marginal form floors the variances at eps itself
    return -gaussian_nll(dist, t, reduction="none", eps=var_floor) / mean.shape[-1]


def draw_samples(dist: Distribution, sample_shape: Sequence[int],
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Reproducible draws ``dist.sample(sample_shape)`` from any distribution, with a local generator.

    The layer's distributions take the generator directly. Torch's own distributions (``Normal``,
    ``LowRankMultivariateNormal``) draw from the global generators (CPU or CUDA); they are sampled inside
    ``torch.random.fork_rng`` seeded from ``generator``, so the caller's global random state is unchanged.

    Parameters
    ----------
    dist : torch.distributions.Distribution
    sample_shape : tuple of int
    generator : torch.Generator, optional
        ``None`` draws from the global generator (and advances it), as ``dist.sample`` does.

    Returns
    -------
    torch.Tensor, shape ``(*sample_shape, *dist.batch_shape, *dist.event_shape)``

    Raises
    ------
    TypeError
        If ``dist`` is not a distribution or ``generator`` not a ``torch.Generator``.
    """
    _check_distribution(dist)
    check_generator(generator)
    sample_shape = check_sample_shape(sample_shape)
    if isinstance(dist, StructuredGaussian):
        return dist.sample(sample_shape, generator=generator)
    if generator is None:
        return dist.sample(sample_shape)
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with seeded(seed):
        return dist.sample(sample_shape)


def _check_methods(methods: Sequence[str]) -> Tuple[str, ...]:
    if isinstance(methods, str) or not isinstance(methods, (tuple, list)):
        raise TypeError(f"methods must be a tuple or list of names from {METHODS}, got {methods!r}")
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct names from {METHODS}, got {methods!r}")
    return methods


def posteriors(prediction: Distribution, constraint: LinearConstraint, b: Optional[ArrayLike] = None,
               methods: Sequence[str] = METHODS) -> Dict[str, Distribution]:
    """The unconstrained prediction and its HardC, ProbConserv and non-negative ProbConserv updates.

    Parameters
    ----------
    prediction : torch.distributions.Distribution
        A Gaussian prediction the layer accepts (``Normal``, ``LowRankMultivariateNormal``,
        ``MultivariateNormal`` or a ``StructuredGaussian``), e.g. ``model.predict(x)``.
    constraint : LinearConstraint
    b : torch.Tensor, shape ``(..., m)``, optional
        Right-hand side, overriding the constraint's.
    methods : sequence of str
        Subset of :data:`METHODS`: ``"unconstrained"`` (the prediction itself), ``"hardc"`` (least-squares
        projection of the mean), ``"probconserv"`` (the exact Bayesian update), ``"probconserv+nn"`` (the same with a
        non-negative mean; it needs a diagonal covariance, so a correlated prediction passes its marginal variances
        as a ``Normal``). Leave the last one out for solutions that change sign.

    Returns
    -------
    dict
        ``{method: distribution}`` in the order of ``methods``.

    Raises
    ------
    TypeError
        If ``prediction`` is not a distribution or ``constraint`` not a :class:`LinearConstraint`.
    ValueError
        For unknown or repeated methods, and whatever the layer rejects.
    """
    _check_distribution(prediction, "prediction")
    _check_constraint(constraint)
    out = {}
    for method in _check_methods(methods):
        if method == "unconstrained":
            out[method] = prediction
        elif method == "probconserv+nn":
            diag = prediction if isinstance(prediction, Normal) else \
                Normal(prediction.mean, prediction.variance.sqrt(), validate_args=False)
            out[method] = ProbConserv(constraint, nonnegative=True)(diag, b=b)
        else:
            out[method] = ProbConserv(constraint, method=method)(prediction, b=b)
    return out


def _check_constraint(constraint: LinearConstraint) -> LinearConstraint:
    if not isinstance(constraint, LinearConstraint):
        raise TypeError(f"constraint must be a LinearConstraint, got {type(constraint).__name__}")
    return constraint


def evaluate(dist: Distribution, target: ArrayLike, constraint: LinearConstraint, b: Optional[ArrayLike] = None,
             var_floor: float = 0.0) -> Dict[str, torch.Tensor]:
    """MSE, conservation error and log-likelihood of a prediction, per field.

    Parameters
    ----------
    dist : torch.distributions.Distribution
        Prediction with ``mean`` and ``variance`` of shape ``(..., n)``.
    target : torch.Tensor or array, shape ``(..., n)``
        The true fields, same shape as ``dist.mean``.
    constraint : LinearConstraint
        ``G`` (e.g. quadrature weights of the total); its ``b`` unless ``b`` is given.
    b : torch.Tensor, shape ``(..., m)``, optional
        Right-hand side, broadcastable to the fields' leading shape.
    var_floor : float
        See :func:`gaussian_log_likelihood`.

    Returns
    -------
    dict of torch.Tensor, each of shape ``(...)`` (one value per field)
        ``mse``: mean over nodes of ``(mean - target)^2``; ``ce_abs``: largest ``|G mean - b|`` over the rows;
        ``ce_rel``: largest ``|G mean - b| / max(|b|, |G| |target|)`` over the rows (for conservation: the error in
        the total relative to the integral of ``|u|``; ``inf`` where that scale is 0 and the error is not, 0 where
        both are); ``ll``: :func:`gaussian_log_likelihood`.

    Raises
    ------
    TypeError
        For a bad ``dist`` or ``constraint``.
    ValueError
        If ``target`` does not have the prediction's shape, ``b`` is missing or does not broadcast to the fields'
        leading shape, or for a bad ``var_floor``.
    """
    _check_distribution(dist)
    _check_constraint(constraint)
    mean = dist.mean
    t = _check_target(target, mean)
    if mean.shape[-1] != constraint.n:
        raise ValueError(f"dist must have n = {constraint.n} nodes (the constraint's columns) in its last "
                         f"dimension, got a prediction of shape {tuple(mean.shape)}")
    check_finite(t, "target")
    # the constraint in the prediction's dtype; its b (or the b given here) checked by the constraint itself
    c = constraint.to(dtype=mean.dtype, device=mean.device)
    if b is not None:
        c = c.with_b(b)
    elif c.b is None:
        raise ValueError("b is required: the constraint has no right-hand side, so pass b= of shape (..., m)")
    lead = mean.shape[:-1]
    check_broadcasts_to(c.b.shape[:-1], lead, "b", f"the fields' leading shape {tuple(lead)}", full_shape=c.b.shape)
    ce = c.residual(mean).abs()
    b, G = c.b, c.G
    scale = torch.maximum(b.abs(), t.abs() @ G.abs().mT)
    zero = torch.where(ce == 0, torch.zeros_like(ce), torch.full_like(ce, math.inf))
    ce_rel = torch.where(scale > 0, ce / torch.where(scale > 0, scale, torch.ones_like(scale)), zero)
    return {
        "mse": ((mean - t) ** 2).mean(-1),
        "ce_abs": ce.amax(-1),
        "ce_rel": ce_rel.amax(-1),
        "ll": gaussian_log_likelihood(dist, t, var_floor),
    }


def compare_methods(prediction: Distribution, target: ArrayLike, constraint: LinearConstraint,
                    b: Optional[ArrayLike] = None, methods: Sequence[str] = METHODS,
                    var_floor: float = 0.0) -> Dict[str, Dict[str, Union[Distribution, torch.Tensor]]]:
    """Apply the methods of :func:`posteriors` to a prediction and :func:`evaluate` each against the target.

    Parameters
    ----------
    prediction : torch.distributions.Distribution
        E.g. ``model.predict(x)``.
    target : torch.Tensor or array, shape ``(..., n)``
    constraint : LinearConstraint
    b : torch.Tensor, shape ``(..., m)``, optional
    methods : sequence of str
        Subset of :data:`METHODS`.
    var_floor : float
        See :func:`gaussian_log_likelihood`.

    Returns
    -------
    dict
        ``{method: {"posterior": distribution, "mse": ..., "ce_abs": ..., "ce_rel": ..., "ll": ...}}``, the metrics
        as returned by :func:`evaluate` (one value per field).

    Raises
    ------
    TypeError, ValueError
        As :func:`posteriors` and :func:`evaluate`.

    Examples
    --------
    >>> c = conservation_constraint(grid)
    >>> res = compare_methods(model.predict(x), y, c, b=totals[..., None], var_floor=1e-6)
    >>> res["probconserv"]["ce_rel"].max()      # round-off
    """
    out = {}
    for method, dist in posteriors(prediction, constraint, b, methods).items():
        out[method] = {"posterior": dist, **evaluate(dist, target, constraint, b, var_floor)}
    return out
