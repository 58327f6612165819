"""Why an update pays or not: the MSE gain's bound and the base model's error, per field.

The exact update moves the mean along the columns of ``D = Sigma G^T`` (``G^T`` for HardC)::

    mu~ = mu - D c,    c = A^-1 (G mu - b)  in R^m

so, whatever ``b``, the noise ``s2`` and the quadrature error of the truth, the constrained error
``e~ = mu~ - u`` is the base error ``e = mu - u`` minus some vector of ``span(D)``. In any inner product
``<x, y>_W = sum_i w_i x_i y_i`` (``w`` the MSE's node weights, uniform for the paper's MSE)::

    ||e~||_W^2  >=  min_c ||e - D c||_W^2  =  ||e||_W^2 - ||P e||_W^2  =  ||e||_W^2 (1 - cos^2)

with ``P`` the ``W``-orthogonal projection onto ``span(D)`` and ``cos = ||P e||_W / ||e||_W`` (for one constraint,
the cosine between ``e`` and ``d = Sigma g``). Hence the gain ``MSE(mu) / MSE(mu~)`` never exceeds
``1 / (1 - cos^2)``. It reaches the bound when the layer's coefficient is the least-squares one: e.g. for
``e = D a + w`` with ``G w = 0`` and ``D^T W w = 0`` (an exact update of a truth with ``G u = b`` gives
``c = A^-1 G D a = a`` and ``e~ = w``, the least-squares residual).

Which weights: the cosine must be taken in the inner product of the MSE that is reported, not in the metric
``Sigma^-1`` in which the update is an orthogonal projection. The quadrature weights of ``G`` enter only through the
direction ``D``; rescaling a row of ``G`` (with its ``b``) changes neither ``span(D)`` nor the bound. The paper's MSE
is the unweighted mean over the nodes, hence the default ``metric_weights=None`` (uniform); pass the quadrature
weights to bound the gain in the discrete L2 norm instead.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023.
"""

from typing import Any, Dict, Optional

import torch

from _physics_constrained.validation import as_tensor, check_choice, check_finite, check_int, eps_of
from .constraints import LinearConstraint
from .layer import ProbConserv
from .priors import PriorReader

__all__ = ["update_diagnostics", "gain_bound"]

_METHODS = ("probconserv", "hardc")


def gain_bound(error: torch.Tensor, directions: torch.Tensor,
               metric_weights: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Best MSE reachable by moving ``error`` along ``directions``, the cosine, and the gain's bound.

    Parameters
    ----------
    error : torch.Tensor, shape ``(..., n)``
        Base error ``mu - u``.
    directions : torch.Tensor, shape ``(..., n, m)``
        Columns spanning the possible moves (``Sigma G^T``), broadcastable with ``error``.
    metric_weights : torch.Tensor, shape ``(n,)``, optional
        Positive node weights of the MSE (normalized here); uniform by default.

    Returns
    -------
    dict of torch.Tensor (float64), shapes ``(...)``
        ``base_mse``: weighted mean of ``error^2``; ``best_mse``: the same after the least-squares move (the
        residual is formed directly, not as ``1 - cos^2``, so that a bound near infinity keeps its relative
        accuracy); ``cosine`` in ``[0, 1]``; ``bound = base_mse / best_mse`` (``inf`` where the error lies in the
        span, NaN where ``error`` is 0).

    Raises
    ------
    TypeError
        For non-numeric input.
    ValueError
        For mismatched shapes, non-finite values or weights that are not positive and finite of shape ``(n,)``.
    """
    e = as_tensor(error, "error", dtype=torch.float64)
    D = as_tensor(directions, "directions", dtype=torch.float64, device=e.device)
    if e.ndim < 1 or D.ndim < 2 or D.shape[-2] != e.shape[-1]:
        raise ValueError(f"directions must have shape (..., n, m) with n = {e.shape[-1] if e.ndim else 0} (the "
                         f"error's last dimension), got error {tuple(e.shape)} and directions {tuple(D.shape)}")
    check_finite(e, "error")
    check_finite(D, "directions")
    n = e.shape[-1]
    if metric_weights is not None:
        metric_weights = as_tensor(metric_weights, "metric_weights", dtype=torch.float64, device=e.device)
        if metric_weights.shape != (n,) or not bool(torch.isfinite(metric_weights).all()) or \
                not bool((metric_weights > 0).all()):
            raise ValueError(f"metric_weights must be positive and finite of shape ({n},), got shape "
                             f"{tuple(metric_weights.shape)}")
    w = torch.ones(n, dtype=e.dtype, device=e.device) if metric_weights is None else \
        metric_weights.to(e.dtype)
    w = w / w.sum()
    sw = w.sqrt()
    es = e * sw
    Ds = D * sw[:, None]
    # Equilibrate the columns (variances may spread over many decades), then an SVD whose relative cut
    # drops only directions that round-off cannot tell from zero.
    norms = Ds.norm(dim=-2, keepdim=True)
    Ds = Ds / torch.where(norms > 0, norms, torch.ones_like(norms))
    es, Ds = torch.broadcast_tensors(es[..., :, None], Ds)
    es = es[..., 0]
    U, S, _ = torch.linalg.svd(Ds, full_matrices=False)
    keep = S > max(n, Ds.shape[-1]) * eps_of(torch.float64) * S.amax(-1, keepdim=True).clamp_min(1e-300)
    coef = (U.mT @ es[..., None])[..., 0] * keep
    proj = (U @ coef[..., None])[..., 0]
    base = (es ** 2).sum(-1)
    best = ((es - proj) ** 2).sum(-1)
    pe2 = (proj ** 2).sum(-1)
    cos = torch.where(base > 0, (pe2 / torch.where(base > 0, base, torch.ones_like(base))).sqrt().clamp(max=1.0),
                      torch.full_like(base, float("nan")))
    bound = torch.where(base > 0, base / best, torch.full_like(base, float("nan")))
    return {"base_mse": base, "best_mse": best, "cosine": cos, "bound": bound}


def update_diagnostics(prediction: Any, truth: Any, constraint: LinearConstraint, b: Any = None, *,
                       variance: Any = None, covariance: Any = None, noise: float = 0.0,
                       method: str = "probconserv", grid: Any = None, shock: Any = None,
                       regions: Optional[int] = None, near_cells: int = 4,
                       metric_weights: Any = None) -> Dict[str, torch.Tensor]:
    """What the update achieved against what it could, and where the base model's error and variance sit.

    The constrained mean is the layer's own (:class:`ProbConserv` with ``noise`` and ``method``); the bound is
    computed independently from ``span(Sigma G^T)`` (see the module's docstring for the derivation and for which
    weights the cosine uses).

    Parameters
    ----------
    prediction : torch.Tensor or torch.distributions.Distribution
        A distribution the layer accepts, or a mean of shape ``(..., n)`` with ``variance=`` or ``covariance=``.
    truth : torch.Tensor or array, shape ``(..., n)``
        The true fields (the prediction's mean shape).
    constraint : LinearConstraint
        ``G`` (``m x n``), and ``b`` unless ``b`` is given.
    b : torch.Tensor, shape ``(..., m)``, optional
        Right-hand side (e.g. the closed-form conserved total).
    variance, covariance : torch.Tensor, optional
        With a mean tensor as ``prediction``.
    noise : float
        Constraint variance of the layer.
    method : {"probconserv", "hardc"}
        HardC moves along ``G^T`` instead of ``Sigma G^T``.
    grid : torch.Tensor or array, shape ``(n,)``, optional
        Strictly increasing node positions; needed for ``shock`` and ``regions``.
    shock : float or torch.Tensor broadcastable to the fields' leading shape ``(...)``, optional
        Front position (e.g. the true shock at each time slice). Adds ``error_behind`` / ``error_ahead``
        (weighted mean signed base error on ``x < shock`` and ``x >= shock``; a front moving towards ``+x`` has
        its filled side behind) and ``variance_share`` (share of the summed marginal variance on the nodes within
        ``near_cells`` nodes of the node nearest the shock).
    regions : int, optional
        For smooth problems: ``region_error`` of shape ``(..., regions)``, the weighted mean signed base error on
        equal-width intervals of the grid.
    near_cells : int
        Half-width, in nodes, of the shock's neighbourhood.
    metric_weights : torch.Tensor, shape ``(n,)``, optional
        Positive node weights of the MSE; uniform (the paper's MSE) by default.

    Returns
    -------
    dict of torch.Tensor (float64)
        Per field, shape ``(...)``: ``base_mse``, ``constrained_mse``, ``best_mse`` (least-squares move along
        the update's directions), ``gain = base_mse / constrained_mse``, ``cosine``, ``bound = base_mse /
        best_mse = 1 / (1 - cosine^2)``, ``coefficient_ratio`` (one row only, else NaN: ``c / c*``,
        the amount moved along ``d = Sigma g`` over the least-squares amount ``<d, e> / <d, d>``; 1 reaches the bound,
        outside ``(0, 2)`` the update raises the error); shape ``(..., m)``: ``mass_error = G mu - b`` and
        ``mass_error_rel``
        (divided by ``max(|b|, |G| |truth|)``); plus the shock or region entries above. Averages over fields pool
        as ``mean(base_mse) / mean(best_mse)``, which bounds the gain of the mean MSE.

    Raises
    ------
    TypeError
        If ``constraint`` is not a :class:`LinearConstraint`, or an input is not numeric.
    ValueError
        If ``truth`` does not have the prediction's shape, ``b`` is missing, the grid is not strictly increasing
        or missing where needed, ``metric_weights`` are not positive and finite of shape ``(n,)``, and whatever
        the layer rejects.
    """
    if not isinstance(constraint, LinearConstraint):
        raise TypeError(f"constraint must be a LinearConstraint, got {type(constraint).__name__}")
    check_choice(method, "method", _METHODS)
    near_cells = check_int(near_cells, "near_cells", minimum=0)
    c = constraint.to(dtype=torch.float64)
    if b is not None:
        c = c.with_b(b)
    if c.b is None:
        raise ValueError("b is required: the constraint has no right-hand side, so pass b= of shape (..., m)")
    G, n = c.G, c.n
    prior = PriorReader(n, torch.float64, True, G.device).read(prediction, variance, covariance)
    mu = prior.loc
    u = as_tensor(truth, "truth", dtype=torch.float64, device=mu.device)
    if u.shape != mu.shape:
        raise ValueError(f"truth must have the prediction's shape {tuple(mu.shape)}, got {tuple(u.shape)}")
    check_finite(u, "truth")
    w = None
    if metric_weights is not None:
        w = as_tensor(metric_weights, "metric_weights", dtype=torch.float64, device=mu.device)
        if w.shape != (n,) or not bool(torch.isfinite(w).all()) or not bool((w > 0).all()):
            raise ValueError(f"metric_weights must be positive and finite of shape ({n},), got shape "
                             f"{tuple(w.shape)}")

    layer = ProbConserv(c, noise=noise, method=method)
    post = layer(prediction, variance, covariance=covariance, b=c.b)
    mu_c = post.mean.to(torch.float64)

    e = mu - u
    if method == "hardc":
        D = G.mT.expand(*mu.shape[:-1], n, G.shape[0])
    else:
        D = prior.covariance.matmul(G.mT)
    out = gain_bound(e, D, w)
    wn = (torch.ones(n, dtype=torch.float64, device=mu.device) if w is None else w)
    wn = wn / wn.sum()
    out["constrained_mse"] = (((mu_c - u) ** 2) * wn).sum(-1)
    base = out["base_mse"]
    out["gain"] = base / out["constrained_mse"]
    # One row: mu - mu~ = c d exactly, and MSE(mu~) = MSE(mu) (1 - cos^2) + (c - c*)^2 ||d||^2 with c* the
    # least-squares amount of the error along d; c / c* = 1 reaches the bound, outside (0, 2) the update loses.
    nan = torch.full_like(base, float("nan"))
    if G.shape[0] == 1:
        d = D[..., 0].to(torch.float64)
        dd = (d * d * wn).sum(-1)
        c_star = (e * d * wn).sum(-1)
        moved = ((mu - mu_c) * d * wn).sum(-1)
        ok = (dd > 0) & (c_star != 0)
        out["coefficient_ratio"] = torch.where(ok, moved / torch.where(ok, c_star, torch.ones_like(c_star)), nan)
    else:
        out["coefficient_ratio"] = nan
    bb = torch.broadcast_to(c.b, (*mu.shape[:-1], G.shape[0]))
    out["mass_error"] = mu @ G.mT - bb
    scale = torch.maximum(bb.abs(), u.abs() @ G.abs().mT)
    out["mass_error_rel"] = out["mass_error"] / torch.where(scale > 0, scale, torch.ones_like(scale))

    if shock is not None or regions is not None:
        if grid is None:
            raise ValueError("grid is required with shock= or regions=: pass the node positions, shape (n,)")
        x = as_tensor(grid, "grid", dtype=torch.float64, device=mu.device)
        if x.shape != (n,):
            raise ValueError(f"grid must have shape ({n},), got {tuple(x.shape)}")
        check_finite(x, "grid")
        if n > 1 and not bool((x[1:] > x[:-1]).all()):
            raise ValueError("grid must be strictly increasing")

        def region_mean(mask):
            wm = wn * mask
            tot = wm.sum(-1)
            return torch.where(tot > 0, (e * wm).sum(-1) / torch.where(tot > 0, tot, torch.ones_like(tot)),
                               torch.full_like(tot, float("nan")))

        if shock is not None:
            s = as_tensor(shock, "shock", dtype=torch.float64, device=mu.device)
            check_finite(s, "shock")
            s = torch.broadcast_to(s, mu.shape[:-1])[..., None]
            behind = (x < s).to(torch.float64)
            out["error_behind"] = region_mean(behind)
            out["error_ahead"] = region_mean(1.0 - behind)
            j = (x - s).abs().argmin(-1, keepdim=True)
            idx = torch.arange(n, device=mu.device)
            near = ((idx - j).abs() <= near_cells).to(torch.float64)
            var = prior.covariance.diagonal().to(torch.float64) * wn
            var = torch.broadcast_to(var, mu.shape)
            total = var.sum(-1)
            out["variance_share"] = torch.where(total > 0, (var * near).sum(-1) / torch.where(
                total > 0, total, torch.ones_like(total)), torch.full_like(total, float("nan")))
        if regions is not None:
            k = check_int(regions, "regions", minimum=1)
            edges = torch.linspace(float(x[0]), float(x[-1]), k + 1, dtype=torch.float64)
            cols = []
            for i in range(k):
                hi = x <= edges[i + 1] if i == k - 1 else x < edges[i + 1]
                cols.append(region_mean(((x >= edges[i]) & hi).to(torch.float64)))
            out["region_error"] = torch.stack(cols, -1)
    return out
