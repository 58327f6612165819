"""Exact boundary enforcement by a smooth lift: the boundary residual is spread over a few cells next to the face.

:func:`~boon_ext.enforcement.enforce_boundary` overwrites the face node only, which leaves a kink between the
face and its neighbour when the field was off at the wall. :func:`lift_boundary` instead adds, for each face,
the residual times a profile that is 1 on the face and decays smoothly to 0 over ``width`` nodes inward:

* Dirichlet: ``u += (g - u_face) * phi(j)`` with ``phi(j) = (1 + cos(pi j / width)) / 2`` for ``j < width``
  (``j`` = nodes from the face), 0 beyond;
* Neumann: ``u += (g - D u) * psi(j)``, where ``D`` is the condition's one-sided stencil and ``psi`` is the
  profile whose slope is ``phi`` (``psi(x) = -int_x^L phi``), scaled so that ``D psi = 1`` exactly: the slope
  at the wall is corrected and the correction fades out with zero value and slope at ``width`` nodes;
* periodic: the mismatch ``r = u_right - u_left`` is split, ``+r/2 * phi`` from the left face and ``-r/2 * phi``
  from the right, so both faces meet at their average.

Faces are lifted in the order of :class:`~boon_ext.conditions.BoundarySpec`, and a final
:func:`~boon_ext.enforcement.enforce_boundary` pass makes every condition hold exactly with the package's one
discrete definition (it moves only round-off, or, where two constrained faces meet at a corner, the nodes that
a later face's lift touched).
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import torch

from _physics_constrained.validation import check_int

from .conditions import BoundarySpec, FaceRule
from .enforcement import _check_field, _owned_mask, enforce_boundary, neumann_derivative, resolve_face_values
from .stencil import derivative_and_terms

__all__ = ["lift_boundary", "lift_profile", "check_lift_width"]


def check_lift_width(width) -> int:
    """Validate a lift width (a positive number of nodes over which the lift decays) and return it as an int.

    Raises
    ------
    TypeError, ValueError
        ``width`` is not an integer, or is below 1.
    """
    return check_int(width, "lift_width", minimum=1)


def lift_profile(width: int, n: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Dirichlet lift profile over ``n`` nodes from the face: raised cosine, 1 at the face, 0 from ``width`` on.

    Parameters
    ----------
    width : int
        Nodes over which the profile decays (``width=1`` touches the face node only).
    n : int
        Number of nodes along the axis.

    Returns
    -------
    torch.Tensor
        Shape ``(n,)``.
    """
    j = torch.arange(n, dtype=torch.float64, device=device)
    phi = torch.where(j < width, 0.5 * (1.0 + torch.cos(math.pi * j / width)), torch.zeros_like(j))
    return phi.to(dtype)


def _neumann_profile(rule: FaceRule, width: int, n: int, dtype, device) -> torch.Tensor:
    """``psi`` along the axis (index 0 = left end) with stencil derivative exactly 1 on ``rule``'s face."""
    # Slope phi in the distance s from the face, integrated so that psi vanishes from `width` on:
    # psi(j) = -sum_{k=j}^{width-1} phi(k) (a discrete integral; its stencil derivative is normalised below).
    phi = lift_profile(width, n, torch.float64, device)
    q = -torch.flip(torch.cumsum(torch.flip(phi, [0]), 0), [0])
    if rule.side == "right":
        q = torch.flip(q, [0])
    a, b = rule.domain
    d, _ = derivative_and_terms(q, 0, rule.side, (b - a) / (n - 1), rule.order)
    return (q / d.reshape(())).to(dtype)


def _along(profile: torch.Tensor, u: torch.Tensor, axis: int) -> torch.Tensor:
    shape = [1] * u.ndim
    shape[2 + axis] = profile.numel()
    return profile.reshape(shape)


def _check_width(u: torch.Tensor, spec: BoundarySpec, width: int) -> None:
    for rule in spec.rules:
        n = u.shape[2 + rule.axis]
        if 2 * width > n - 1:
            raise ValueError(
                f"lift_width must be at most {(n - 1) // 2} for {n} nodes along spatial axis {rule.axis} (the lifts "
                f"of the two faces would overlap), got {width}"
            )


def lift_boundary(u: torch.Tensor, spec: BoundarySpec, boundary_values: Optional[Mapping] = None,
                  width: int = 4) -> torch.Tensor:
    """Return ``u`` with every condition of ``spec`` exact, the residual spread over ``width`` nodes per face.

    Out of place and differentiable.

    Parameters
    ----------
    u : torch.Tensor
        Field of shape ``(batch, channels, *spatial)``.
    spec : BoundarySpec
    boundary_values : mapping str -> torch.Tensor, optional
        Call-time values of the faces without a constant (as in :func:`~boon_ext.enforce_boundary`).
    width : int, default 4
        Nodes over which each face's lift decays to zero; ``1`` changes face nodes only.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``u``; the conditions hold exactly (to round-off of ``u``'s dtype).

    Raises
    ------
    TypeError, ValueError
        Bad ``width``, or a grid with fewer than ``2 * width + 1`` nodes along a constrained axis; and the
        errors of :func:`~boon_ext.enforce_boundary` for bad fields or face values.
    """
    width = check_lift_width(width)
    if not isinstance(spec, BoundarySpec):
        raise TypeError(f"spec must be a BoundarySpec, got {type(spec).__name__}")
    _check_field(u, spec)
    _check_width(u, spec, width)
    for k, rule in enumerate(spec.rules):
        if rule.kind == "periodic" and rule.side == "right":
            continue  # the left rule of a periodic pair lifts both faces
        dim = 2 + rule.axis
        n = u.shape[dim]
        idx = None if rule.channels is None else torch.tensor(rule.channels, device=u.device, dtype=torch.long)
        u_sel = u if idx is None else u.index_select(1, idx)
        phi = lift_profile(width, n, u.dtype, u.device)
        if rule.kind == "periodic":
            r = 0.5 * (u_sel.select(dim, -1) - u_sel.select(dim, 0))
            delta = r.unsqueeze(dim) * (_along(phi, u, rule.axis) - _along(torch.flip(phi, [0]), u, rule.axis))
        elif rule.kind == "dirichlet":
            g = resolve_face_values(rule, u, boundary_values)
            r = g - u_sel.select(dim, rule.index)
            prof = phi if rule.side == "left" else torch.flip(phi, [0])
            delta = r.unsqueeze(dim) * _along(prof, u, rule.axis)
        else:
            g = resolve_face_values(rule, u, boundary_values)
            d, _ = neumann_derivative(rule, u_sel)
            r = g - d
            delta = r.unsqueeze(dim) * _along(_neumann_profile(rule, width, n, u.dtype, u.device), u, rule.axis)
        # A face node that a later face owns (a corner) keeps its residual out of this lift: otherwise two faces
        # with different values at a shared corner would each spread their disagreement inward.
        owned = _owned_mask(spec, k, u)
        if idx is not None:
            owned = owned.index_select(0, idx)
        delta = delta * owned.unsqueeze(0).unsqueeze(dim).to(delta.dtype)
        if idx is None:
            u = u + delta
        else:
            u = u.index_add(1, idx, delta.expand(u_sel.shape))
    # The lift makes each face exact up to round-off; the overwrite pass makes it exact by the package's own
    # discrete definitions and resolves corners shared by faces of different axes.
    return enforce_boundary(u, spec, boundary_values)
