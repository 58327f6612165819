"""How the BOON reproduction measures a trained model: relative L2 errors and boundary violations.

Computed here, independently of ``boon_ext``'s enforcement, so that an error there cannot hide from the check.
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def _side_index(side, n):
    return 0 if side == "left" else n - 1


def _face_slope(u, side, h, dim, order):
    """One-sided ``du/dx`` at a face, written out here rather than taken from ``boon_ext``, so that a wrong stencil
    in the package (which enforces the condition with it) cannot hide from the check."""
    if order not in (1, 2):
        raise ValueError(f"order: expected 1 or 2 (the Neumann stencils), got {order!r}")
    n = u.shape[dim]
    nodes = (0, 1, 2) if side == "left" else (n - 1, n - 2, n - 3)
    u0, u1, u2 = (u.select(dim, i) for i in nodes)
    sign = 1.0 if side == "left" else -1.0  # the right face's differences run towards smaller x
    if order == 1:
        return sign * (u1 - u0) / h
    return sign * (-3.0 * u0 + 4.0 * u1 - u2) / (2.0 * h)


def boundary_residual(u, boundary, boundary_values, domain):
    """Largest violation of the plain-config boundary conditions by ``u``, computed here, not by the wrapper.

    Dirichlet: ``|u_b - g|``; Neumann: ``|one-sided stencil - g|`` (second order, or first with ``"order": 1``);
    periodic ``|u_0 - u_N|``.
    """
    u = u.double()
    worst = 0.0
    for cond in boundary:
        dim = cond.get("dim", -1)
        n = u.shape[dim]
        kind = cond["type"]
        if kind == "periodic":
            worst = max(worst, float((u.select(dim, 0) - u.select(dim, -1)).abs().max()))
            continue
        sides = [s for s in ("left", "right") if s in cond] + list(cond.get("faces", []))
        a, b = cond.get("domain", domain)
        h = (b - a) / (n - 1)
        for side in dict.fromkeys(sides):
            if side in cond:
                g = torch.as_tensor(float(cond[side]), dtype=torch.float64)
            else:
                g = boundary_values[side].double()
            face = u.select(dim, _side_index(side, n))
            g = g.reshape(g.shape + (1,) * (face.ndim - g.ndim)) if g.ndim < face.ndim else g
            if kind == "dirichlet":
                res = face - g
            else:
                res = _face_slope(u, side, h, dim, cond.get("order", 2)) - g
            worst = max(worst, float(res.abs().max()))
    return worst


def relative_l2(pred, y, mask=None):
    """Mean over samples of ``||pred - y|| / ||y||`` over the nodes where ``mask`` is True."""
    d = (pred - y).double()
    t = y.double()
    if mask is not None:
        d, t = d * mask, t * mask
    num = d.flatten(1).norm(dim=1)
    den = t.flatten(1).norm(dim=1).clamp_min(1e-30)
    return float((num / den).mean())


def node_masks(shape, band):
    """Boolean masks over the spatial axis (dim 2): interior (end nodes left out) and near-boundary band."""
    n = shape[2]
    idx = torch.arange(n)
    view = (1, 1, n) + (1,) * (len(shape) - 3)
    interior = ((idx > 0) & (idx < n - 1)).view(view)
    near = (((idx >= 1) & (idx <= band)) | ((idx >= n - 1 - band) & (idx <= n - 2))).view(view)
    return interior, near


def to_float64(model):
    """A float64 copy of ``model``; ``Module.double()`` leaves complex (spectral) weights in complex64."""
    model = copy.deepcopy(model)
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_complex():
            t.data = t.data.to(torch.complex128)
        elif t.is_floating_point():
            t.data = t.data.to(torch.float64)
    return model


def _batch_values(problem, idx, dtype=None, device="cpu"):
    if not problem.boundary_values:
        return {}
    return {"boundary_values": {k: v[idx].to(device=device, dtype=dtype or v.dtype)
                                for k, v in problem.boundary_values.items()}}


def _call(model, x, kwargs):
    # FNO takes no boundary values: only BOON models, and the FNO given them as input channels, get them.
    takes = getattr(model, "boundary_spec", None) or getattr(model, "takes_boundary_values", False)
    return model(x, **kwargs) if takes else model(x)


@torch.no_grad()
def predict(model, problem, indices, dtype=torch.float32, batch_size=50):
    """The model's outputs on the samples ``indices``, in ``dtype``, on the CPU."""
    model = model if dtype == torch.float32 else to_float64(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        x = problem.x[idx].to(device=device, dtype=dtype)
        outs.append(_call(model, x, _batch_values(problem, idx, dtype, device)).cpu())
    model.train(was_training)
    return torch.cat(outs)


def evaluate(model, problem, test_idx):
    y = problem.y[test_idx]
    bv = {k: v[test_idx] for k, v in problem.boundary_values.items()}
    pred32 = predict(model, problem, test_idx, torch.float32)
    pred64 = predict(model, problem, test_idx, torch.float64)
    band = max(1, int(round(0.05 * (problem.n_points - 1))))
    interior, near = node_masks(y.shape, band)
    metrics = {
        "rel_l2": relative_l2(pred32, y),
        "rel_l2_interior": relative_l2(pred32, y, interior),
        "rel_l2_near_boundary": relative_l2(pred32, y, near),
        "boundary_error": boundary_residual(pred32, problem.boundary, bv, problem.domain),
        "boundary_error_float64": boundary_residual(pred64, problem.boundary, bv, problem.domain),
        "pred_sample0": np.round(pred32[0, 0].double().numpy(), 7).tolist(),
    }
    if y.ndim == 4:  # space-time: test-mean relative error per output time
        t = y.shape[-1]
        err = (pred32 - y).double().reshape(len(y), -1, t).norm(dim=1) / y.double().reshape(len(y), -1, t).norm(dim=1)
        metrics["rel_l2_over_time"] = err.mean(0).tolist()
    return metrics
