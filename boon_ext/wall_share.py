"""How much of a model's error exact Dirichlet walls can remove, measured on its predictions before wrapping.

BOON's default output step writes the prescribed value into every Dirichlet face node and leaves every other node
as the model made it. Where the data meet their conditions, the prescribed values are the target's, so wrapping a
trained model removes exactly its error at those nodes and nothing else: a share ``s`` of its squared error there
gives an RMS gain of ``1 / sqrt(1 - s)``. Measuring ``s`` on a validation set says, before training with exact walls,
whether a boundary method can pay (the hard-regime campaign found 46% at the moving wall of thin-layer Stokes, on 2% of the
nodes, and under 1% on Dirichlet Burgers). The share of the nodes that those faces are is returned beside it: an
error share above the node share means the error crowds at the walls.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Optional

import torch

from _physics_constrained.validation import check_bool

from .enforcement import _as_spec, _check_field, _owned_mask, owned_residual


__all__ = ["WallShare", "wall_error_share"]


class WallShare(NamedTuple):
    """What :func:`wall_error_share` measures.

    Attributes
    ----------
    error_share : float
        Share of the squared error (pooled over the batch and channels, each sample weighted by ``1 / ||target||^2``
        when ``relative``) at the nodes that exact Dirichlet walls set; 0 where the prediction is exact.
    node_share : float
        Share of the (channel, node) entries those nodes are.
    gain : float
        ``1 / sqrt(1 - error_share)``, computed from the two parts' sums: the factor by which writing the exact wall
        values into the prediction cuts its RMS error (``inf`` only if all the error is there).
    """

    error_share: float
    node_share: float
    gain: float


def _dirichlet_node_mask(spec, u: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``(channels, *spatial)`` of the entries whose output value a Dirichlet condition of ``spec`` sets.

    Read with enforcement's own ownership of shared nodes (:func:`~boon_ext.enforcement._owned_mask`, in the order
    of ``spec.rules``). ``BoundarySpec`` applies Dirichlet conditions last, so a Dirichlet face owns every corner it
    shares with a Neumann or periodic one.
    """
    mask = torch.zeros(u.shape[1:], dtype=torch.bool, device=u.device)
    for k, rule in enumerate(spec.rules):
        if rule.kind != "dirichlet":
            continue
        owned = _owned_mask(spec, k, u)  # (channels, *face): the nodes no later rule overwrites
        if rule.channels is not None:
            selected = torch.zeros(u.shape[1], dtype=torch.bool, device=u.device)
            selected[list(rule.channels)] = True
            owned = owned & selected.view(-1, *([1] * (owned.ndim - 1)))
        face = mask.select(1 + rule.axis, rule.index)  # a view: the face of every channel
        face |= owned
    return mask


def _check_target_walls(target, spec, boundary_values):
    """Refuse a target whose Dirichlet faces differ from their known values by more than its dtype's round-off."""
    tol = 64 * torch.finfo(target.dtype).eps  # a value rounded to the target's dtype, and a few operations on it
    for k, rule in enumerate(spec.rules):
        if rule.kind != "dirichlet" or (rule.constant is None and (boundary_values is None
                                                                   or rule.key not in boundary_values)):
            continue  # a call-time value that was not given: nothing to check against
        gap = owned_residual(spec, k, target.detach(), boundary_values, relative=True)
        worst = float(gap.max()) if gap.numel() else 0.0
        if worst > tol:
            raise ValueError(f"target must meet its Dirichlet conditions (wrapping writes their values), got a relative "
                             f"gap of {worst:.2e} on the {rule.side} face of spatial axis {rule.axis} "
                             f"({rule.key!r})")


def wall_error_share(prediction: torch.Tensor, target: torch.Tensor, boundary,
                     boundary_values: Optional[Mapping] = None, *, relative: bool = False,
                     time_dim: Optional[int] = None) -> WallShare:
    """The share of a prediction's squared error at its Dirichlet wall nodes, and what exact walls would gain.

    Parameters
    ----------
    prediction : torch.Tensor
        A model's output, ``(batch, channels, *spatial)``, real floating point: an unconstrained model's, before
        wrapping (a wrapped model's is exact at those nodes already, and its share is 0).
    target : torch.Tensor
        The true fields, same shape and device (any real floating dtype; both are read in float64), meeting the
        conditions: their wall values are the prescribed ones.
    boundary : BoundarySpec, condition(s) or config values
        The conditions, as given to :class:`~boon_ext.BOONFNO`; at least one Dirichlet. Only Dirichlet faces
        count: a Neumann or periodic condition sets its face node from the nodes behind it, which makes the flux
        exact but not the value.
    boundary_values : mapping str -> torch.Tensor, optional
        The call-time values of the faces without a constant, as the model receives them. The target's Dirichlet
        faces are checked against every value known here (the constants, and these): a target that misses its
        conditions would make the share count an error that wrapping does not remove (it may even add one).
    relative : bool, default False
        Weight each sample's squared error by ``1 / ||target||^2`` first, so that the share and the gain are those
        of the relative RMS error over the batch (the hard-regime campaign's region split) rather than of the
        absolute one. Refused if a target is zero.
    time_dim : int, optional
        The time axis of a space-time field (no condition may hold on it).

    Returns
    -------
    WallShare
        ``error_share``, ``node_share`` and ``gain = 1 / sqrt(1 - error_share)``. The gain is exact for the RMS
        error over the batch when every condition is Dirichlet and the output step overwrites the face nodes
        (``BOONFNO``'s default; a smooth lift, ``lift_width``, also moves the nodes behind a wall, and T2,
        ``kernel_correction``, changes the whole network). With Neumann or periodic faces beside the Dirichlet
        ones, their nodes' change is not in it.

    Raises
    ------
    TypeError
        ``prediction`` or ``target`` not a real floating-point tensor.
    ValueError
        Mismatched shapes or devices, no sample, no spatial dim, non-finite entries, no Dirichlet condition, a
        target whose Dirichlet faces differ from their known values by more than round-off, or (``relative``) a
        zero target.

    Notes
    -----
    The difference is formed in float64 and scaled by its largest entry before squaring, so neither tiny nor huge
    errors under- or overflow; it holds one float64 copy of the field.

    Examples
    --------
    >>> import torch
    >>> from boon_ext import Dirichlet, wall_error_share
    >>> y = torch.zeros(4, 1, 64)
    >>> pred = y + 0.01
    >>> pred[..., 0] += 1.0  # a model that misses the left wall
    >>> share = wall_error_share(pred, y, Dirichlet(left=0.0, right=0.0))
    >>> share.node_share  # the two end nodes of 64
    0.03125
    >>> round(share.error_share, 3), round(share.gain, 1)  # wrapping would cut the RMS error 12.9x
    (0.994, 12.9)
    """
    relative = check_bool(relative, "relative")
    spec = _as_spec(boundary, prediction, time_dim, "prediction")
    _check_field(prediction, spec, "prediction")
    _check_field(target, spec, "target")
    if target.shape != prediction.shape:
        raise ValueError(f"target must have the prediction's shape {tuple(prediction.shape)}, got "
                         f"{tuple(target.shape)}")
    if target.device != prediction.device:
        raise ValueError(f"target must be on the prediction's device {prediction.device}, got {target.device}")
    if prediction.shape[0] == 0:
        raise ValueError(f"prediction must hold at least one sample, got shape {tuple(prediction.shape)}")
    if not any(r.kind == "dirichlet" for r in spec.rules):
        raise ValueError(f"boundary must hold a Dirichlet condition, got {[r.kind for r in spec.rules]}: only a "
                         "Dirichlet face's output step writes the true value, so only its error can be removed")
    for name, t in (("prediction", prediction), ("target", target)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite, got inf or nan entries")
    _check_target_walls(target, spec, boundary_values)
    diff = prediction.detach().double() - target.detach().double()
    if relative:
        y = target.detach().double()
        norms = (y / y.abs().max().clamp_min(torch.finfo(torch.float64).tiny)).flatten(1).norm(dim=1)
        if not bool((norms > 0).all()):
            raise ValueError("target must have no all-zero sample when relative=True: its relative error is undefined")
        diff = diff / norms.view(-1, *([1] * (diff.ndim - 1)))
    largest = diff.abs().max()
    mask = _dirichlet_node_mask(spec, prediction)
    node_share = float(mask.double().mean())
    if not bool(largest > 0):
        return WallShare(error_share=0.0, node_share=node_share, gain=1.0)
    err2 = (diff / largest).pow_(2)
    walls, rest = float(err2[:, mask].sum()), float(err2[:, ~mask].sum())
    gain = math.inf if rest == 0 else math.sqrt((walls + rest) / rest)
    return WallShare(error_share=walls / (walls + rest), node_share=node_share, gain=gain)
