"""How much of a model's error exact Dirichlet walls can remove, measured on its predictions before wrapping.

BOON's default output step writes the prescribed value into every Dirichlet face node and leaves every other node
as the model made it. Where the data meet their conditions, the prescribed values are the target's, so wrapping a
trained model removes exactly its error at those nodes and nothing else: a share ``s`` of its squared error there
gives an RMS gain of ``1 / sqrt(1 - s)``. Measuring ``s`` on a validation set says, before any training, whether a
boundary method can pay (the hard-regime campaign found 46% at the moving wall of thin-layer Stokes, on 2% of the
nodes, and under 1% on Dirichlet Burgers). The share of the nodes that those faces are is returned beside it: an
error share above the node share means the error crowds at the walls.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

from .enforcement import _as_spec, _check_field, _owned_mask


class WallShare(NamedTuple):
    """What :func:`wall_error_share` measures.

    Attributes
    ----------
    error_share : float
        Share of the squared error (pooled over the batch and channels) at the nodes that exact Dirichlet walls
        set; 0 where the prediction is exact.
    node_share : float
        Share of the (channel, node) entries those nodes are.
    gain : float
        ``1 / sqrt(1 - error_share)``: the factor by which writing the exact wall values into the prediction cuts
        its RMS error (``inf`` if all the error is there).
    """

    error_share: float
    node_share: float
    gain: float


def dirichlet_node_mask(spec, u: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``(channels, *spatial)`` of the nodes whose output value a Dirichlet condition of ``spec`` sets.

    A Dirichlet face node that a later condition on another axis overwrites (a Neumann or periodic corner) is not
    included, as in :func:`~boon_ext.enforcement.enforce_boundary`, which applies the conditions in order.
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


def wall_error_share(prediction: torch.Tensor, target: torch.Tensor, boundary, *,
                     time_dim: Optional[int] = None) -> WallShare:
    """The share of a prediction's squared error at its Dirichlet wall nodes, and what exact walls would gain.

    Parameters
    ----------
    prediction : torch.Tensor
        A model's output, ``(batch, channels, *spatial)``, real floating point: an unconstrained model's, before
        wrapping (a wrapped model's is exact at those nodes already, and its share is 0).
    target : torch.Tensor
        The true fields, same shape, meeting the conditions (their wall values are the prescribed ones).
    boundary : BoundarySpec, condition(s) or config values
        The conditions, as given to :class:`~boon_ext.BOONFNO`. Only Dirichlet faces count: a Neumann or periodic
        condition sets its face node from the nodes behind it, which moves its error but does not remove it.
    time_dim : int, optional
        The time axis of a space-time field (no condition may hold on it).

    Returns
    -------
    WallShare
        ``error_share``, ``node_share`` and ``gain = 1 / sqrt(1 - error_share)``. The gain is exact for the RMS
        error over the batch when every condition is Dirichlet and the output step overwrites the face nodes
        (the default, ``lift_width=None``); with Neumann or periodic faces beside them, their nodes' change is not
        in it.

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
    spec = _as_spec(boundary, prediction, time_dim, "prediction")
    _check_field(prediction, spec, "prediction")
    _check_field(target, spec, "target")
    if target.shape != prediction.shape:
        raise ValueError(f"target must have the prediction's shape {tuple(prediction.shape)}, got "
                         f"{tuple(target.shape)}")
    err2 = (prediction.detach().double() - target.detach().double()).pow(2)
    if not bool(torch.isfinite(err2).all()):
        raise ValueError("prediction and target must be finite: their squared difference has inf or nan entries")
    mask = dirichlet_node_mask(spec, prediction)
    total, walls = float(err2.sum()), float((err2 * mask).sum())
    share = walls / total if total > 0 else 0.0
    gain = math.inf if share >= 1.0 else 1.0 / math.sqrt(1.0 - share)
    return WallShare(error_share=share, node_share=float(mask.double().mean()), gain=gain)
