"""Domain-decomposed ProbConserv on ``torch.distributed``: each rank holds a slab of the nodes.

With the nodes split into contiguous slabs ``u = (u_1, ..., u_P)`` (one per rank) and a covariance that couples
slabs only through a global low-rank factor (diagonal, or ``U U^T + diag(d)`` with ``U`` split by rows), every
quantity of the update that is not per-node is a sum over slabs::

    G mu             = sum_p G_p mu_p                              (m)
    G Sigma G^T      = sum_p G_p D_p G_p^T + C^T C,   C = sum_p U_p^T G_p^T       (m x m, r x m)
    reference, scale = sum_p ...                                   (m each)

so one all-reduce of ``3 m + m^2 (+ r m)`` numbers per field gives every rank the same ``m x m`` system, and each
rank then forms its own slab of ``Sigma G^T`` and of the posterior (mean, covariance factor ``W``) locally. The
arithmetic after the reduction is the single-process layer's (:func:`probconserv_ext.update.factor_update`), so the
result equals :class:`~probconserv_ext.layer.ProbConserv` on the gathered field up to the order of summation.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023.
"""

from typing import Optional, Union

import torch
from torch.distributions import MultivariateNormal

from _physics_constrained.validation import as_tensor, check_finite
from .collectives import FINGERPRINT_SIZE, GroupCollectives, ProcessGroup, fingerprint
from .constraints import LinearConstraint
from .gaussian import ConstrainedGaussian
from .layer import ProbConserv
from .methods import METHOD_NAMES
from .slabs import conservation_slab, constraint_slab, gather_slab, slab_bounds

__all__ = ["DistributedProbConserv", "SlabConstrainedGaussian", "slab_bounds", "constraint_slab", "conservation_slab",
           "gather_slab", "AGREEMENT_SIZE"]

# Batch dimensions the agreement check can describe; more are refused with a clear message.
_MAX_BATCH_DIMS = 8
# What the per-call agreement compares, entry by entry (names for the message of a disagreement): the prediction's
# shape, then the settings every rank must share and a digest of the right-hand side actually used.
_SHAPE_LABELS = (("the shape of the prediction (batch shape)",) * (_MAX_BATCH_DIMS + 1)
                 + ("the shape of the prediction (covariance rank r)",))
_SETTING_LABELS = ("m (constraint rows)", "the global number of nodes n", "method", "compute_dtype", "noise")
_LABELS = _SHAPE_LABELS + _SETTING_LABELS + ("b",) * FINGERPRINT_SIZE
#: Numbers each rank contributes to the per-call agreement check (its all-reduce sends 1 + 2 * AGREEMENT_SIZE).
AGREEMENT_SIZE = len(_LABELS)


class SlabConstrainedGaussian(ConstrainedGaussian):
    """One rank's slab of a :class:`~probconserv_ext.gaussian.ConstrainedGaussian`, from
    :class:`DistributedProbConserv`.

    ``mean``, ``variance`` and ``covariance`` are the slab's (marginals of the global posterior); methods that need
    the whole field (``constraint_residual``, ``update_samples``, ``rsample``) are collective and give each rank its
    slab. ``log_prob`` of a slab is not a density of the field and is refused. In ``rsample`` the draws shared by
    all slabs (latent draws of a low-rank prior, constraint noise) come from the group's first rank; the per-node
    draws come from each rank's generator, so seed the generators differently on each rank.

    Parameters
    ----------
    prior, G, b, noise, loc, factors, method, out_dtype, noise_is_zero, refine_tol, collectives
        As in :class:`~probconserv_ext.gaussian.ConstrainedGaussian`, with ``G``, ``loc``, ``factors.W`` and the
        prior restricted to the slab, and the layer's :class:`~probconserv_ext.collectives.GroupCollectives`.
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Refused: the density of a slab is not a density of the field.

        Parameters
        ----------
        value : torch.Tensor
            A slab of a field.

        Returns
        -------
        torch.Tensor
            Never: see Raises.

        Raises
        ------
        NotImplementedError
            Always.
        """
        raise NotImplementedError(
            "log_prob of a slab is not a density of the field; gather the slabs (gather_slab) and use "
            "ProbConserv on one process, or sum per-node likelihoods (gaussian_nll with joint=False) over ranks"
        )


class DistributedProbConserv(ProbConserv):
    """ProbConserv on a field split into slabs over the ranks of a ``torch.distributed`` process group.

    Every rank builds the layer with its slab ``G_p`` (columns of ``G`` for its nodes) and calls it with its slab of
    the prediction; each gets its slab of the posterior. The update needs one all-reduce of ``3 m + m^2`` numbers
    per field for a diagonal covariance (``+ r m`` for a rank-``r`` factor), plus a small agreement check, so the
    communication does not grow with the number of nodes. Construction and every call are collective: all ranks of
    the group must take part, with the same batch shape, ``m``, rank ``r``, method and noise.

    Parameters
    ----------
    constraint_slab : LinearConstraint or tensor of shape ``(m, n_p)``
        This rank's columns of ``G`` (see :func:`constraint_slab`); its ``b`` (global, shape ``(..., m)``) is used
        unless ``b`` is passed to ``forward``. A row may be zero on some ranks, not on all.
    noise : float
        Constraint variance ``s2 >= 0`` (the same on every rank).
    method : {"probconserv", "hardc"}
    group : ProcessGroup, optional
        The ranks sharing the field (default: the whole world).
    learn_noise, compute_dtype, validate
        As in :class:`~probconserv_ext.layer.ProbConserv`.

    Notes
    -----
    :meth:`forward` takes the arguments of :meth:`ProbConserv.forward <probconserv_ext.layer.ProbConserv.forward>`
    restricted to this rank's slab (``(..., n_p)`` means and variances, the slab's rows ``(..., n_p, r)`` of a
    global factor, every ensemble member's slab; ``b`` is global) and returns this rank's
    :class:`SlabConstrainedGaussian`. Invalid input on any rank raises a ``ValueError`` on every rank (a
    ``TypeError`` on the rank that has non-numeric input), as do ranks that disagree on the batch shape or the
    factor's rank, on ``b`` (compared through a digest of its bytes after broadcasting to the batch shape, so any
    difference, down to one ulp, is caught), on the noise as it is at the call, on ``m``, the global ``n``, the method
    or the compute dtype. All of this is compared in the one agreement all-reduce of each call (``1 + 2 *``
    :data:`AGREEMENT_SIZE` numbers, independent of the problem's size).

    Accepted priors are those whose covariance is a per-node diagonal or a low-rank-plus-diagonal with the
    factor split by rows: ``variance=``, ``cov_factor=``/``cov_diag=``, ``samples=`` (ensemble members' slabs),
    ``Normal`` and ``LowRankMultivariateNormal``. A dense covariance couples every pair of slabs and is refused, as
    is ``nonnegative=True`` (its active-set loop would need a collective per iteration). The agreement check
    keeps a rank with bad input from leaving the others waiting in a collective.

    Unlike the single-process layer, an exact update (``noise = 0``) is not checked against round-off and refined
    afterwards: reading ``G mu~`` would cost a second collective per call. Call ``constraint_residual()`` (one
    collective) to check it when needed.

    References
    ----------
    Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
    ICML 2023.

    Examples
    --------
    >>> start, stop = slab_bounds(n)                    # under torchrun, after init_process_group
    >>> layer = DistributedProbConserv(constraint_slab(conservation_constraint(grid), start, stop))
    >>> post = layer(mean[..., start:stop], variance=var[..., start:stop], b=total)
    >>> post.constraint_residual()                      # global G mean - b, identical on every rank
    """

    posterior_class = SlabConstrainedGaussian

    def __init__(self, constraint_slab: Union[LinearConstraint, torch.Tensor], noise: float = 0.0,
                 method: str = "probconserv", group: Optional[ProcessGroup] = None, *,
                 learn_noise: bool = False, compute_dtype: torch.dtype = torch.float64, validate: bool = True):
        if isinstance(constraint_slab, LinearConstraint):
            G, b = constraint_slab.G, constraint_slab.b
        elif isinstance(constraint_slab, torch.distributions.Distribution) or constraint_slab is None:
            raise TypeError(f"constraint_slab must be a LinearConstraint or a tensor (m, n_p), got {constraint_slab!r}")
        else:
            G, b = as_tensor(constraint_slab, "constraint_slab"), None
        if G.ndim == 1:
            G = G[None, :]
        if G.ndim != 2 or G.shape[0] == 0:
            raise ValueError(f"constraint_slab must have shape (m, n_p) with m >= 1, got {tuple(G.shape)}")
        check_finite(G, "constraint_slab")
        collectives = GroupCollectives(group)
        super().__init__(LinearConstraint(G, b, allow_zero_rows=True), noise=noise, method=method, nonnegative=False,
                         learn_noise=learn_noise, compute_dtype=compute_dtype, validate=validate)
        self.collectives = collectives
        self.rank, self.world_size = collectives.rank, collectives.world_size
        # Collective checks at construction: the same m, noise and method everywhere, and no row of G zero on
        # every slab (the single-process LinearConstraint refuses zero rows).
        m = self.G.shape[0]
        noise_value = float(self.noise.detach())
        if not collectives.agree_values([m, noise_value, METHOD_NAMES.index(self.method), self.G.dtype.itemsize,
                                         *fingerprint(self.b)]):
            raise ValueError(
                "constraint_slab, noise and method must agree on every rank (same number of rows m, same b, same "
                f"noise, same method, same compute_dtype); this rank has m = {m}, noise = {noise_value}, method = "
                f"{self.method!r}, compute_dtype = {compute_dtype}, b of shape "
                f"{None if self.b is None else tuple(self.b.shape)}"
            )
        rows = self.G.abs().sum(-1).double() if self.G.shape[1] else torch.zeros(m, dtype=torch.float64)
        rows, n_total = collectives.sum_pieces([rows, torch.tensor([float(self.G.shape[1])], dtype=torch.float64)],
                                               (1, 1), torch.Size())
        self._n_total = int(n_total)  # the global n, for the round-off tolerances of the solve
        if bool((rows == 0).any()):
            raise ValueError(
                f"constraint_slab: row(s) {torch.nonzero(rows == 0).flatten().tolist()} of G are zero on every rank"
            )

    def _check_nonnegative_supported(self) -> None:
        raise ValueError("nonnegative must be False for a DistributedProbConserv, got True (its active-set loop would "
                         "need a collective per iteration)")

    def _check_constraint_rows(self, G: torch.Tensor, label: str) -> None:
        # A row may vanish on a slab; that no row vanishes on every slab was checked collectively at construction.
        pass

    @property
    def group(self) -> Optional[ProcessGroup]:
        """The process group (``None``: the whole world)."""
        return self.collectives.group

    def extra_repr(self) -> str:
        """The layer's settings and this process's rank, for ``repr``."""
        return f"m={self.m}, n_slab={self.n}, method={self.method!r}, rank={self.rank}/{self.world_size}"

    def _parse(self, mean, variance, covariance, cov_factor, cov_diag, samples, b):
        # Parsed on every rank, then one collective agreement: an error on any rank is raised on all of them
        # (instead of leaving the others waiting in the update's all-reduce), and the shapes must agree.
        error, parsed, spec = None, None, [0.0] * AGREEMENT_SIZE
        try:
            if covariance is not None or isinstance(mean, MultivariateNormal):
                raise ValueError(
                    f"{'covariance' if covariance is not None else 'mean'}: a dense covariance couples every pair of "
                    "slabs; pass variance= (or a Normal) or cov_factor=/cov_diag= (a low-rank factor split by rows, "
                    "samples=, or a LowRankMultivariateNormal)"
                )
            parsed = super()._parse(mean, variance, None, cov_factor, cov_diag, samples, b)
            cov = parsed[0].covariance
            rest, U = cov.low_rank_split()
            if not rest.is_diagonal:
                raise ValueError(
                    f"mean: the distributed layer needs a diagonal or low-rank-plus-diagonal prior covariance, got "
                    f"{type(cov).__name__} (chaining distributed layers: stack the constraints instead)"
                )
            batch = parsed[0].batch_shape
            if len(batch) > _MAX_BATCH_DIMS:
                raise ValueError(f"mean may have at most {_MAX_BATCH_DIMS} leading dimensions, got {len(batch)}")
            r = 0 if U is None else U.shape[-1]
            # b as the update uses it (expanded to the batch), so that the same totals given with different
            # broadcast shapes agree; the noise as read now (a learned or reloaded one may have drifted).
            b = parsed[1].expand(*batch, self.m)
            settings = [self.m, self._n_total, METHOD_NAMES.index(self.method), self.compute_dtype.itemsize,
                        float(self.noise.detach())]
            spec = [len(batch), *batch, *([0] * (_MAX_BATCH_DIMS - len(batch))), r, *settings, *fingerprint(b)]
        except (ValueError, TypeError) as err:
            error = err
            spec = [0.0] * AGREEMENT_SIZE
        # ONE collective compares all of it (and spreads an error of any rank to every rank).
        self.collectives.agree(error, spec, _LABELS)
        return parsed
