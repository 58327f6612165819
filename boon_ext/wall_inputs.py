"""The wall values as input channels: the information BOON receives, given to any model as plain inputs.

BOON receives each face's prescribed values at every call and writes them into the output. Where those values carry
information the input does not (a wall forced at a per-sample frequency, say, when the model sees only the initial
state), a model gains far more from *seeing* them than from having them enforced. :func:`wall_channels` builds
them as input channels, so that an FNO can be trained on ``torch.cat([x, wall_channels(x, ...)], dim=1)``, and
wrapped by :class:`~boon_ext.BOONWrapper` (or ``BOONFNO.from_fno``) for exact walls on top.

Each face's values are *broadcast along the wall-normal axis*: every node of a line normal to the wall carries that
wall's value at the node's position along the wall (and time). An FNO lifts every node pointwise and mixes nodes
only through a few Fourier modes, so a value present at every node reaches every prediction through the lifting,
whereas a value at the wall node alone would spread over all modes and be mostly cut by the truncation.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch

from _physics_constrained.validation import check_int

from .conditions import SIDES, BoundarySpec
from .enforcement import resolve_face_values

__all__ = ["wall_channels", "n_wall_channels"]


def _rules(spec):
    # Conditions in the order given, each one's faces left then right: a stable layout the user can read off
    # their own list of conditions (the spec's own order sorts by kind for enforcement).
    return sorted((r for r in spec.rules if r.kind != "periodic"), key=lambda r: (r.source, SIDES.index(r.side)))


def n_wall_channels(boundary, n_dim: int, out_channels: int, time_dim: Optional[int] = None) -> int:
    """The number of channels :func:`wall_channels` returns for these conditions (e.g. to size an FNO's input).

    Parameters
    ----------
    boundary : see :func:`boon_ext.parse_boundary`
    n_dim : int
        Number of axes of the model's tensors after ``(batch, channels)``, i.e. ``x.ndim - 2``: the spatial axes,
        and the time axis too for a space-time model (then give ``time_dim``).
    out_channels : int
        Number of output channels the conditions apply to.
    time_dim : int, optional
        The time axis (negative), on which no condition may hold.

    Returns
    -------
    int
        One channel per Dirichlet or Neumann face and output channel it applies to (periodic faces have none).
    """
    spec = BoundarySpec(boundary, n_dim, time_dim=time_dim, out_channels=out_channels)
    return sum(out_channels if r.channels is None else len(r.channels) for r in _rules(spec))


def wall_channels(x: torch.Tensor, boundary, boundary_values: Optional[Mapping] = None, *, out_channels: int,
                  time_dim: Optional[int] = None) -> torch.Tensor:
    """Each face's prescribed values as input channels, broadcast along the wall-normal axis.

    Parameters
    ----------
    x : torch.Tensor
        The model's input, ``(batch, channels, *axes)``; only its batch size, axes, dtype and device are used.
    boundary : see :func:`boon_ext.parse_boundary`
        The conditions, as given to BOON.
    boundary_values : mapping of str to torch.Tensor, optional
        The call-time values, under BOON's keys and in BOON's shapes: ``(batch,)``, ``(batch, channels)`` or
        ``(batch, channels, *face)``. Constants given in the conditions need none.
    out_channels : int
        Number of output channels of the model the conditions apply to (required: a condition names output
        channels, and the input's channel count may differ).
    time_dim : int, optional
        The time axis (negative) of a space-time input, on which no condition may hold.

    Returns
    -------
    torch.Tensor
        ``(batch, n, *axes)`` in ``x``'s dtype and device, ``n`` = :func:`n_wall_channels`: per condition in the
        order given, its faces left then right, one channel per output channel the face applies to. The channel of
        a face on axis ``a`` holds, at every node, the face's value at the node's position along the other axes.
        A Neumann face contributes its prescribed flux. Periodic faces contribute nothing.

    Raises
    ------
    ValueError, TypeError
        As BOON does for the same conditions and values: a missing key, a value of the wrong shape or dtype, a
        value that is not finite in ``x``'s dtype.

    Examples
    --------
    >>> import torch
    >>> from boon_ext import Dirichlet, wall_channels
    >>> x = torch.zeros(2, 1, 5)
    >>> walls = Dirichlet(left=1.0, faces=["left", "right"])
    >>> wall_channels(x, walls, {"right": torch.tensor([2.0, 3.0])}, out_channels=1)[:, :, 0]
    tensor([[1., 2.],
            [1., 3.]])
    """
    if not torch.is_tensor(x) or x.ndim < 3:
        raise ValueError(f"x must be a tensor (batch, channels, *axes) with at least one axis, got "
                         f"{type(x).__name__ if not torch.is_tensor(x) else tuple(x.shape)}")
    if not x.is_floating_point() or x.is_complex():
        raise TypeError(f"x must be a real floating-point tensor, got dtype {x.dtype}")
    c_out = check_int(out_channels, "out_channels", minimum=1)
    spec = BoundarySpec(boundary, x.ndim - 2, time_dim=time_dim, out_channels=c_out)
    spec.check_values(boundary_values)
    batch, axes = x.shape[0], tuple(x.shape[2:])
    like = x.new_zeros(()).expand(batch, c_out, *axes)  # the output's shape, no memory
    chans = []
    for rule in _rules(spec):
        n_sel = c_out if rule.channels is None else len(rule.channels)
        face = axes[:rule.axis] + axes[rule.axis + 1:]
        g = resolve_face_values(rule, like, boundary_values).expand(batch, n_sel, *face)
        chans.append(g.unsqueeze(2 + rule.axis).expand(batch, n_sel, *axes))
    if not chans:
        return x.new_zeros(batch, 0, *axes)
    return torch.cat(chans, dim=1)
