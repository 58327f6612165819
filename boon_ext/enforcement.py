"""Exact enforcement of boundary conditions on a field, and the measure of their violation.

Both use the same discrete definitions: a Dirichlet face holds ``u = g``; a Neumann face holds the one-sided
stencil of :class:`~boon_ext.conditions.Neumann`; a periodic pair holds ``u(left) = u(right)``. Faces are
written in the order of :class:`~boon_ext.conditions.BoundarySpec` (periodic, then Neumann, then Dirichlet,
then by axis), so a node shared by two constrained faces belongs to the face written last, and the
violation of a face is measured on the nodes it owns.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import torch

from _physics_constrained.validation import check_bool, check_optional_int

from . import stencil
from .conditions import BoundarySpec, FaceRule, missing_value_message

__all__ = ["enforce_boundary", "boundary_error", "resolve_face_values", "min_nodes", "check_nodes"]


def _face_shape(u: torch.Tensor, axis: int):
    return tuple(s for i, s in enumerate(u.shape[2:]) if i != axis)


def _representable(v: float, dtype: torch.dtype) -> bool:
    """Whether the finite Python float ``v`` stays finite when rounded to ``dtype``."""
    if dtype == torch.float64:
        return True
    fi = torch.finfo(dtype)
    # Rounding to nearest gives inf from half a unit in the last place above the largest finite value on
    # (ties round to the even neighbour, which is the overflow since the largest value's mantissa is odd).
    _, e = math.frexp(fi.max)
    return abs(v) < fi.max + fi.eps * 2.0 ** (e - 1) / 2


def resolve_face_values(rule: FaceRule, u: torch.Tensor, boundary_values: Optional[Mapping]) -> torch.Tensor:
    """Value of a Dirichlet or Neumann face as a tensor of shape ``(batch, n_sel, *face_shape)``.

    ``n_sel`` is the number of channels the rule applies to; singleton dimensions are kept for broadcasting.
    Call-time values may have shape ``(batch,)``, ``(batch, n_sel)`` or ``(batch, n_sel or 1, *face_shape)``
    (with 1 allowed in any face dimension).
    """
    batch = u.shape[0]
    n_sel = u.shape[1] if rule.channels is None else len(rule.channels)
    face_shape = _face_shape(u, rule.axis)
    nf = len(face_shape)
    if rule.constant is not None:
        if not all(_representable(v, u.dtype) for v in rule.constant):
            raise ValueError(
                f"the {rule.kind} value {rule.constant if len(rule.constant) > 1 else rule.constant[0]!r} of the "
                f"{rule.side} face of spatial axis {rule.axis} is not finite in the output dtype {u.dtype} (largest "
                f"{torch.finfo(u.dtype).max:.4g}): rescale the problem or use a float64 model"
            )
        g = torch.tensor(rule.constant, dtype=u.dtype, device=u.device)
        if g.numel() not in (1, n_sel):
            raise ValueError(
                f"the {rule.side} face of spatial axis {rule.axis} has {g.numel()} per-channel values but the "
                f"condition applies to {n_sel} channels"
            )
        return g.reshape(1, -1, *([1] * nf))
    name = f"boundary_values[{rule.key!r}]"
    if boundary_values is None or rule.key not in boundary_values:
        raise ValueError(missing_value_message(rule, boundary_values))
    g = boundary_values[rule.key]
    if not torch.is_tensor(g):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(g).__name__}")
    if g.is_complex() or not g.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {g.dtype}")
    if g.ndim == 0 or g.shape[0] != batch:
        raise ValueError(f"{name} must have the batch size {batch} as its first dimension, got shape {tuple(g.shape)}")
    if g.ndim == 1:
        g = g.reshape(batch, 1, *([1] * nf))
    elif g.ndim == 2:
        if g.shape[1] not in (1, n_sel):
            raise ValueError(f"{name} of shape {tuple(g.shape)} must be (batch,) or (batch, {n_sel})")
        g = g.reshape(batch, g.shape[1], *([1] * nf))
    elif g.ndim == 2 + nf:
        ok = g.shape[1] in (1, n_sel) and all(a in (1, b) for a, b in zip(g.shape[2:], face_shape))
        if not ok:
            raise ValueError(
                f"{name} must broadcast to (batch, channels, *face) = {(batch, n_sel, *face_shape)}, got shape "
                f"{tuple(g.shape)}"
            )
    else:
        raise ValueError(
            f"{name} must have shape (batch,), (batch, {n_sel}) or (batch, {n_sel}, *{face_shape}); "
            f"got {tuple(g.shape)}"
        )
    g = g.to(device=u.device, dtype=u.dtype)
    # Checked after the cast: a finite float64 value can overflow the output dtype. Skipped while compiling, where
    # reading a tensor's value would cut the graph.
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(g).all()):
        raise ValueError(
            f"{name} must be finite in the output dtype, got NaN or inf, or values beyond the range of the output "
            f"dtype {u.dtype}"
        )
    return g


def _replace_face(u: torch.Tensor, dim: int, side: str, face: torch.Tensor) -> torch.Tensor:
    n = u.shape[dim]
    face = face.unsqueeze(dim)
    if side == "left":
        return torch.cat([face, u.narrow(dim, 1, n - 1)], dim)
    return torch.cat([u.narrow(dim, 0, n - 1), face], dim)


def _spacing(rule: FaceRule, n: int) -> float:
    a, b = rule.domain
    return (b - a) / (n - 1)


def _neumann_face(rule: FaceRule, u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Face value that makes the one-sided stencil equal ``g`` exactly."""
    dim = 2 + rule.axis
    return stencil.face_value(u, dim, rule.side, _spacing(rule, u.shape[dim]), rule.order, g)


def stencil_nodes(rule: FaceRule, n: int):
    """Node indices along the axis that the Neumann stencil of ``rule`` reads, face node first."""
    return [i % n for i in stencil.stencil_nodes(rule.side, rule.order)]


def neumann_derivative(rule: FaceRule, u: torch.Tensor):
    """One-sided derivative along the axis of ``u`` at the face of ``rule``, and the size of the stencil's terms.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Derivative and sum of absolute stencil terms, each (batch, channels, *face_shape).
    """
    dim = 2 + rule.axis
    return stencil.derivative_and_terms(u, dim, rule.side, _spacing(rule, u.shape[dim]), rule.order)


def min_nodes(rule: FaceRule) -> int:
    """Fewest nodes along its axis that a face rule needs (two faces, plus the Neumann stencil's nodes)."""
    return {"dirichlet": 2, "periodic": 2, "neumann": rule.order + 2}[rule.kind]


def check_nodes(u: torch.Tensor, spec: BoundarySpec, name: str) -> None:
    """Raise ``ValueError`` unless ``u`` has enough nodes along every constrained axis (see :func:`min_nodes`)."""
    for r in spec.rules:
        n = u.shape[2 + r.axis]
        if n < min_nodes(r):
            raise ValueError(
                f"{name} must have at least {min_nodes(r)} nodes along spatial axis {r.axis} (a {r.kind} condition "
                f"holds there), got {n} (shape {tuple(u.shape)})"
            )


def _check_field(u: torch.Tensor, spec: BoundarySpec, name: str = "u"):
    if not torch.is_tensor(u):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(u).__name__}")
    if u.is_complex() or not u.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {u.dtype}")
    if u.ndim != 2 + spec.n_dim:
        raise ValueError(
            f"{name} must have shape (batch, channels, *spatial) with {spec.n_dim} spatial dims, got {tuple(u.shape)}"
        )
    check_nodes(u, spec, name)
    for r in spec.rules:
        if r.channels is not None and max(r.channels) >= u.shape[1]:
            raise ValueError(
                f"{name} must have the channel {max(r.channels)} that a {r.kind} condition selects, got "
                f"{u.shape[1]} channels"
            )


def _as_spec(conditions, u, time_dim=None, name="u") -> BoundarySpec:
    if isinstance(conditions, BoundarySpec):
        # A spec carries its own time axis; a different time_dim beside it would be ignored, so it is refused.
        time_dim = check_optional_int(time_dim, "time_dim")
        if time_dim is not None and conditions._axis(time_dim, "time_dim") != conditions.time_axis:
            raise ValueError(f"time_dim={time_dim} disagrees with the time axis of the given BoundarySpec "
                             f"({'none' if conditions.time_axis is None else conditions.time_axis - conditions.n_dim})"
                             "; pass the conditions as a list, or leave time_dim out")
        return conditions
    if not torch.is_tensor(u):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(u).__name__}")
    if u.ndim < 3:  # the conditions are read against the spatial dims: there must be one
        raise ValueError(f"{name} must have shape (batch, channels, *spatial) with at least one spatial dim, got "
                         f"{tuple(u.shape)}")
    return BoundarySpec(conditions, u.ndim - 2, time_dim)


def enforce_boundary(u: torch.Tensor, spec, boundary_values: Optional[Mapping] = None) -> torch.Tensor:
    """Return ``u`` with every condition of ``spec`` holding exactly (out of place, differentiable).

    Parameters
    ----------
    u : torch.Tensor
        Field of shape ``(batch, channels, *spatial)``, real floating point.
    spec : BoundarySpec, condition(s) or config values
        The conditions (a list of conditions is resolved against ``u``'s number of spatial dims, see
        :func:`~boon_ext.conditions.parse_boundary`).
    boundary_values : mapping str -> torch.Tensor, optional
        Call-time values of the faces without a constant (see :func:`resolve_face_values`).

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``u``.

    Raises
    ------
    TypeError
        ``u`` is not a real floating-point tensor, or a call-time value has the wrong type.
    ValueError
        Too few nodes for a condition, or a value missing, misshapen or not finite in ``u``'s dtype.
    """
    spec = _as_spec(spec, u)
    _check_field(u, spec)
    for rule in spec.rules:
        if rule.kind == "periodic" and rule.side == "right":
            continue  # the left rule of a periodic pair writes both faces
        dim = 2 + rule.axis
        idx = None if rule.channels is None else _idx(rule, u)
        u_sel = u if idx is None else u.index_select(1, idx)
        if rule.kind == "periodic":
            avg = 0.5 * (u_sel.select(dim, 0) + u_sel.select(dim, -1))
            new = {"left": avg, "right": avg}
        elif rule.kind == "dirichlet":
            g = resolve_face_values(rule, u, boundary_values)
            new = {rule.side: g.expand(u_sel.select(dim, 0).shape)}
        else:
            g = resolve_face_values(rule, u, boundary_values)
            new = {rule.side: _neumann_face(rule, u_sel, g)}
        for side, face in new.items():
            if idx is not None:
                face = u.select(dim, 0 if side == "left" else -1).index_copy(1, idx, face)
            u = _replace_face(u, dim, side, face)
    return u


def _idx(rule: FaceRule, u: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rule.channels, device=u.device, dtype=torch.long)


def _owned_mask(spec: BoundarySpec, k: int, u: torch.Tensor) -> torch.Tensor:
    """Boolean mask (channels, *face_shape) of the nodes of rule ``k``'s face that no later rule overwrites."""
    rule = spec.rules[k]
    face_axes = [a for a in range(spec.n_dim) if a != rule.axis]
    shape = (u.shape[1], *_face_shape(u, rule.axis))
    mask = torch.ones(shape, dtype=torch.bool, device=u.device)
    for later in spec.rules[k + 1 :]:
        if later.axis == rule.axis:
            continue
        d = 1 + face_axes.index(later.axis)
        chans = slice(None) if later.channels is None else list(later.channels)
        sl = [slice(None)] * len(shape)
        sl[d] = 0 if later.side == "left" else -1
        sub = mask[tuple(sl)]
        sub[chans] = False
        mask[tuple(sl)] = sub
    return mask


def owned_residual(spec, k: int, u: torch.Tensor, boundary_values: Optional[Mapping] = None,
                   relative: bool = False) -> torch.Tensor:
    """The violations of ``spec.rules[k]`` by ``u`` at the face nodes that rule owns, flattened.

    One definition of a condition's residual for every check that reads one (:func:`boundary_error`, the target check
    of :func:`~boon_ext.wall_share.wall_error_share`), so they cannot drift apart. A node shared by several faces
    belongs to the last rule that writes it, as in enforcement.

    Parameters
    ----------
    spec : BoundarySpec
        The conditions.
    k : int
        Index of the rule in ``spec.rules``.
    u : torch.Tensor
        Field of shape ``(batch, channels, *spatial)``, already checked against ``spec``.
    boundary_values : mapping str -> torch.Tensor, optional
        Call-time face values.
    relative : bool, default False
        Divide by the magnitude of the constraint's terms (see :func:`boundary_error`).

    Returns
    -------
    torch.Tensor
        1-D tensor of absolute (or relative) residuals; empty when the rule owns no node.
    """
    rule = spec.rules[k]
    dim = 2 + rule.axis
    us = u if rule.channels is None else u.index_select(1, _idx(rule, u))
    face = us.select(dim, rule.index)
    if rule.kind == "periodic":
        other = us.select(dim, -1 if rule.side == "left" else 0)
        res, scale = face - other, face.abs() + other.abs()
    else:
        g = resolve_face_values(rule, u, boundary_values)
        if rule.kind == "dirichlet":
            res, scale = face - g, face.abs() + g.abs()
        else:
            d, terms = neumann_derivative(rule, us)
            res, scale = d - g, terms + g.abs()
    res = res.abs()
    if relative:
        res = res / scale.clamp_min(torch.finfo(u.dtype).tiny)
    mask = _owned_mask(spec, k, u)
    if rule.channels is not None:
        mask = mask.index_select(0, _idx(rule, u))
    return res[mask.expand(res.shape)]


def boundary_error(
    u: torch.Tensor,
    conditions,
    boundary_values: Optional[Mapping] = None,
    *,
    relative: bool = False,
    per_face: bool = False,
    time_dim: Optional[int] = None,
):
    """Largest violation of the boundary conditions by ``u``.

    Parameters
    ----------
    u : torch.Tensor
        Field of shape ``(batch, channels, *spatial)``.
    conditions : BoundarySpec, condition(s) or config values
        The conditions (see :func:`~boon_ext.conditions.parse_boundary`).
    boundary_values : mapping str -> torch.Tensor, optional
        Call-time face values.
    relative : bool, default False
        Divide each residual by the magnitude of the terms of its constraint (``|u| + |g|`` for Dirichlet,
        the sum of the absolute stencil terms plus ``|g|`` for Neumann, ``|u_left| + |u_right|`` for
        periodic), floored at the dtype's tiny value; this is the scale on which round-off acts.
    per_face : bool, default False
        Return a dict ``"{kind}:{side}{axis}" -> error`` instead of the maximum.
    time_dim : int, optional
        The time axis of a space-time field (negative, or positive as torch counts the dims of the
        ``(batch, channels, *spatial)`` tensor), as given to :class:`~boon_ext.BOONFNO`: no condition may hold on
        it, and face values may vary along it. With a ``BoundarySpec``, it must be the spec's own.

    Returns
    -------
    torch.Tensor or dict
        The maximum absolute (or relative) violation over owned face nodes, as a 0-d tensor.
    """
    relative, per_face = check_bool(relative, "relative"), check_bool(per_face, "per_face")  # "false" is not False
    spec = _as_spec(conditions, u, time_dim)
    _check_field(u, spec)
    u = u.detach()
    errors: Dict[str, torch.Tensor] = {}
    for k, rule in enumerate(spec.rules):
        res = owned_residual(spec, k, u, boundary_values, relative)
        err = res.max() if res.numel() else u.new_zeros(())
        errors[f"{rule.kind}:{rule.side}{rule.axis}"] = torch.maximum(
            errors.get(f"{rule.kind}:{rule.side}{rule.axis}", err.new_zeros(())), err
        )
    if per_face:
        return errors
    return torch.stack(list(errors.values())).max() if errors else u.new_zeros(())
