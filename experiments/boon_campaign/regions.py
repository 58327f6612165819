"""Where a model's error lies: an exact split of the relative L2 error into wall nodes, a near-wall band and the
interior, the error per output frame, and the boundary residual of problems with walls on several axes.

The three regions partition the nodes, and each part is normalised by the whole target's norm, so per sample
``err_wall^2 + err_band^2 + err_interior^2 = err^2`` exactly (up to float64 round-off); over the test set the parts
are combined as a root mean square, which keeps the identity (``tests/boon/test_hard_campaign.py`` checks it with
random data, shapes and bands).
"""

from __future__ import annotations

import torch

from experiments.boon_campaign.metrics import _face_slope

REGIONS = ("wall", "band", "interior")


def band_nodes(n_points, fraction=0.05):
    """Nodes of the near-wall band next to each wall: ``fraction`` of the domain, at least one node."""
    return max(1, int(round(fraction * (n_points - 1))))


def region_masks(shape, spatial_dims, fraction=0.05):
    """Boolean masks (broadcastable to ``shape``) of the wall nodes, the near-wall band and the interior.

    Parameters
    ----------
    shape : tuple of int
        ``(batch, channels, *axes)``.
    spatial_dims : sequence of int
        The axes (negative, as in the boundary conditions' ``dim``) that have walls; a time axis is not one.
    fraction : float
        Width of the band next to each wall, as a fraction of that axis's domain.

    Returns
    -------
    dict of str to torch.Tensor
        ``{"wall", "band", "interior"}``: a partition of the nodes (every node in exactly one).
    """
    ndim = len(shape)
    wall = torch.zeros((1, 1) + tuple(shape[2:]), dtype=torch.bool)
    near = torch.zeros_like(wall)
    for dim in spatial_dims:
        axis = dim % ndim
        if axis < 2:
            raise ValueError(f"spatial_dims must name axes after (batch, channels), got {dim} for shape {shape}")
        n = shape[axis]
        b = band_nodes(n, fraction)
        idx = torch.arange(n)
        view = [1] * ndim
        view[axis] = n
        on_wall = ((idx == 0) | (idx == n - 1)).view(view)
        in_band = ((idx <= b) | (idx >= n - 1 - b)).view(view)
        wall = wall | on_wall
        near = near | in_band
    band = near & ~wall
    return {"wall": wall, "band": band, "interior": ~(wall | band)}


def region_errors(pred, y, masks):
    """Per-sample relative L2 error and its parts per region, each part over the whole target's norm.

    Returns
    -------
    dict of str to torch.Tensor
        ``"total"`` and one entry per region, each ``(S,)`` float64, with ``sum(part^2) = total^2``.
    """
    d = (pred - y).double()
    den = y.double().flatten(1).norm(dim=1).clamp_min(1e-30)
    out = {"total": d.flatten(1).norm(dim=1) / den}
    for name, mask in masks.items():
        out[name] = (d * mask).flatten(1).norm(dim=1) / den
    return out


def region_summary(pred, y, spatial_dims, fraction=0.05):
    """Test-set figures of :func:`region_errors`: the mean relative L2 (the campaign's headline, as the first
    campaign's ``rel_l2``), and the root mean square total with its exact parts and their shares of it."""
    masks = region_masks(tuple(y.shape), spatial_dims, fraction)
    e = region_errors(pred, y, masks)
    rms = {k: float(v.pow(2).mean().sqrt()) for k, v in e.items()}
    total2 = max(rms["total"] ** 2, 1e-300)
    return dict(
        rel_l2=float(e["total"].mean()),
        rms_rel_l2=rms["total"],
        **{f"rms_rel_l2_{r}": rms[r] for r in REGIONS},
        **{f"share_{r}": rms[r] ** 2 / total2 for r in REGIONS},
        **{f"nodes_{r}": int(masks[r].sum()) for r in REGIONS},
    )


def error_over_time(pred, y):
    """Relative L2 error per output frame (last axis), per sample: ``(S, T)`` float64."""
    s, t = y.shape[0], y.shape[-1]
    d = (pred - y).double().reshape(s, -1, t).norm(dim=1)
    return d / y.double().reshape(s, -1, t).norm(dim=1).clamp_min(1e-30)


def face_values(boundary, boundary_values, cond_index, side, n_axes):
    """The value a condition prescribes at one face: its constant, or the call-time values under BOON's key.

    Keys follow ``boon_ext.conditions``: ``"left"`` / ``"right"`` when every condition is on one axis, else
    ``"left{axis}"`` / ``"right{axis}"`` with ``axis`` the spatial axis index (counted over the axes after
    (batch, channels), ``n_axes`` of them, a time axis included). This module does not call ``boon_ext``'s own
    resolution of the values, so a mistake there cannot hide from the check.
    """
    cond = boundary[cond_index]
    if side in cond:
        return float(cond[side])
    dims = {c.get("dim", -1) for c in boundary}
    if len(dims) == 1:
        key = side
    else:
        key = f"{side}{cond.get('dim', -1) % n_axes}"
    if key not in boundary_values:
        raise KeyError(f"boundary_values: no value for the {side} face of condition {cond_index} (key {key!r})")
    return boundary_values[key]


def boundary_residual(u, boundary, boundary_values, domain):
    """Largest violation of the conditions by ``u`` (Dirichlet ``|u_b - g|``, Neumann the one-sided stencil),
    for walls on one axis or several; computed here, not by the wrapper."""
    u = u.double()
    worst = 0.0
    for i, cond in enumerate(boundary):
        dim = cond.get("dim", -1)
        n = u.shape[dim]
        sides = [s for s in ("left", "right") if s in cond] + list(cond.get("faces", []))
        a, b = cond.get("domain", domain)
        h = (b - a) / (n - 1)
        for side in dict.fromkeys(sides):
            g = face_values(boundary, boundary_values, i, side, u.ndim - 2)
            face = u.select(dim, 0 if side == "left" else n - 1)
            g = torch.as_tensor(g, dtype=torch.float64)
            g = g.reshape(g.shape + (1,) * (face.ndim - g.ndim)) if g.ndim < face.ndim else g
            if cond["type"] == "dirichlet":
                res = face - g
            else:
                res = _face_slope(u, side, h, dim, cond.get("order", 2)) - g
            worst = max(worst, float(res.abs().max()))
    return worst
