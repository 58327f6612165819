"""The seam between the ProbConserv arithmetic and where the nodes live: one process, or slabs over ranks.

Every quantity of the update that is not per node is a sum over the node axis (``G mu``, ``G Sigma G^T``, the
scales, ``U^T G^T`` of a low-rank factor), and every random draw that more than one node uses (the constraint noise,
the latent draws of a low-rank factor) must be the same for all nodes. :class:`LocalCollectives` (one process) does
nothing for either; :class:`GroupCollectives` sums over the ranks of a ``torch.distributed`` group and broadcasts
the shared draws from its first rank. The layer and its posterior call only these methods, so the same code runs on
one process and on a domain-decomposed field; all ``torch.distributed`` calls of the package are in this module.
"""

import hashlib
import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

# The type of a process group (None: the whole world); torch exposes it only where distributed is built.
ProcessGroup = Any

__all__ = ["LocalCollectives", "GroupCollectives", "CountingCollectives", "group_info", "fingerprint", "LOCAL",
           "FINGERPRINT_SIZE"]

#: Numbers :func:`fingerprint` returns.
FINGERPRINT_SIZE = 3


def fingerprint(t: Optional[torch.Tensor]) -> List[float]:
    """A short digest of a tensor's shape, dtype and values, as floats that compare exactly across ranks.

    Ranks that must hold the same tensor (the global right-hand side ``b``) compare digests instead of the tensor,
    so that the check costs a fixed number of values in a collective whatever the size of ``b``: a BLAKE2b digest
    of the bytes, split into integers below ``2**48`` (exact in float64). ``-0.0`` counts as ``0.0``.

    Parameters
    ----------
    t : torch.Tensor or None

    Returns
    -------
    list of float
        :data:`FINGERPRINT_SIZE` numbers (``-1.0`` each for ``None``).
    """
    if t is None:
        return [-1.0] * FINGERPRINT_SIZE
    flat = (t.detach() + 0.0).to("cpu").contiguous()
    h = hashlib.blake2b(digest_size=6 * FINGERPRINT_SIZE)
    h.update(repr((tuple(flat.shape), str(flat.dtype))).encode())
    h.update(flat.reshape(-1).view(torch.uint8).numpy().tobytes())
    d = h.digest()
    return [float(int.from_bytes(d[6 * i:6 * i + 6], "little")) for i in range(FINGERPRINT_SIZE)]


def group_info(group: Optional[ProcessGroup] = None) -> Tuple[int, int]:
    """``(rank, world_size)`` of this process in ``group``.

    Parameters
    ----------
    group : ProcessGroup, optional
        Default: the whole world.

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError
        If ``torch.distributed`` is not initialized.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "group: torch.distributed is not initialized; call torch.distributed.init_process_group (e.g. under "
            "torchrun) before building or calling a distributed layer"
        )
    return dist.get_rank(group), dist.get_world_size(group)


class LocalCollectives:
    """All nodes in this process: sums over the node axis are complete and draws are already shared."""

    #: Whether the node axis is whole here (a posterior can then be sampled and refined on its own).
    local = True

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of ``t`` over the parts of the node axis: ``t`` itself.

        Parameters
        ----------
        t : torch.Tensor
            This part's contribution (e.g. ``G_p u_p``).

        Returns
        -------
        torch.Tensor
            The total over all parts, the same on each.
        """
        return t

    def sum_pieces(self, pieces: Sequence[torch.Tensor], event_dims: Sequence[int],
                   batch_shape: torch.Size) -> List[torch.Tensor]:
        """Sum several tensors over the parts of the node axis at once (one collective at most).

        Parameters
        ----------
        pieces : sequence of torch.Tensor
            Each of shape ``(..., *event)``, its leading shape broadcastable to ``batch_shape``.
        event_dims : sequence of int
            Number of trailing (event) dimensions of each piece.
        batch_shape : torch.Size
            The common leading shape.

        Returns
        -------
        list of torch.Tensor
            The sums, in order (here: the pieces themselves).
        """
        return list(pieces)

    def share(self, t: torch.Tensor) -> torch.Tensor:
        """Draws that every node must see alike: ``t`` itself.

        Parameters
        ----------
        t : torch.Tensor
            Standard-normal draws made by this process.

        Returns
        -------
        torch.Tensor
            The draws all parts use (those of the group's first rank).
        """
        return t

    def agree(self, error: Optional[Exception], spec: Sequence[float], labels: Optional[Sequence[str]] = None) -> None:
        """Raise ``error`` if parsing the input failed (with several ranks: on every rank, and ``spec`` agrees).

        Parameters
        ----------
        error : Exception or None
        spec : sequence of float
            What every part must agree on (unused on one process).
        labels : sequence of str, optional
            A name per entry of ``spec``, for the message of a disagreement (default: the prediction's shape).

        Raises
        ------
        Exception
            ``error``, when given.
        """
        if error is not None:
            raise error


LOCAL = LocalCollectives()


class _AllReduceSum(torch.autograd.Function):
    """``sum_p t_p`` on every rank. With the global loss the sum of the ranks' losses, the gradient with respect
    to each rank's ``t_p`` is the sum over ranks of the gradients with respect to the total."""

    @staticmethod
    def forward(ctx, t, group):
        ctx.group = group
        t = t.clone()
        dist.all_reduce(t, group=group)
        return t

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class GroupCollectives(LocalCollectives):
    """The node axis split into slabs over the ranks of a ``torch.distributed`` process group.

    Every method is collective: all ranks of the group must call it, in the same order.

    Parameters
    ----------
    group : ProcessGroup, optional
        Default: the whole world.

    Raises
    ------
    ValueError
        If ``torch.distributed`` is not initialized.
    """

    local = False

    def __init__(self, group: Optional[ProcessGroup] = None):
        self.group = group
        self.rank, self.world_size = group_info(group)

    # ------------------------------------------------------------------ primitives (one place to instrument)
    def all_reduce(self, t: torch.Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM) -> torch.Tensor:
        """All-reduce a copy of ``t`` (differentiable for sums when autograd needs it).

        Parameters
        ----------
        t : torch.Tensor
            Left unchanged.
        op : torch.distributed.ReduceOp
            The reduction (a sum by default).

        Returns
        -------
        torch.Tensor
            The reduction over the ranks, identical on every rank.
        """
        if op == dist.ReduceOp.SUM and torch.is_grad_enabled() and t.requires_grad:
            return _AllReduceSum.apply(t, self.group)
        t = t.clone()
        dist.all_reduce(t, op=op, group=self.group)
        return t

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` of the group's first rank, on every rank (in place).

        Parameters
        ----------
        t : torch.Tensor
            Overwritten on every rank but the first.

        Returns
        -------
        torch.Tensor
            ``t`` itself.
        """
        src = dist.get_global_rank(self.group, 0) if self.group is not None else 0
        dist.broadcast(t, src=src, group=self.group)
        return t

    def all_gather(self, t: torch.Tensor) -> List[torch.Tensor]:
        """Every rank's ``t`` (all of the same shape), in rank order.

        Parameters
        ----------
        t : torch.Tensor
            This rank's tensor.

        Returns
        -------
        list of torch.Tensor
            One tensor per rank.
        """
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t.contiguous(), group=self.group)
        return parts

    # ------------------------------------------------------------------ the seam
    def sum(self, t: torch.Tensor) -> torch.Tensor:
        return self.all_reduce(t)

    def sum_pieces(self, pieces: Sequence[torch.Tensor], event_dims: Sequence[int],
                   batch_shape: torch.Size) -> List[torch.Tensor]:
        # One all-reduce for all pieces: each expanded to the batch shape, flattened behind it and concatenated.
        events = [p.shape[p.ndim - k:] for p, k in zip(pieces, event_dims)]
        flat = torch.cat([p.expand(*batch_shape, *e).reshape(*batch_shape, -1) for p, e in zip(pieces, events)],
                         dim=-1)
        flat = self.all_reduce(flat)
        out, offset = [], 0
        for e in events:
            k = math.prod(e)
            out.append(flat[..., offset:offset + k].reshape(*batch_shape, *e))
            offset += k
        return out

    def share(self, t: torch.Tensor) -> torch.Tensor:
        return self.broadcast(t)

    def agree(self, error: Optional[Exception], spec: Sequence[float], labels: Optional[Sequence[str]] = None) -> None:
        spec = torch.as_tensor(spec, dtype=torch.float64)
        flag = torch.tensor([0.0 if error is None else 1.0], dtype=torch.float64)
        # ONE collective: the error flag and the max of spec and of -spec (max and -min) of every entry.
        v = self.all_reduce(torch.cat([flag, spec, -spec]), op=dist.ReduceOp.MAX)
        if error is not None:
            raise error
        if float(v[0]) > 0:
            raise ValueError("invalid input on another rank of the group (its own error message says which argument)")
        k = spec.numel()
        differs = v[1:1 + k] != -v[1 + k:]
        if bool(differs.any()):
            if labels is None:
                raise ValueError(
                    "the ranks disagree on the shape of the prediction: batch shape, ensemble size or covariance rank "
                    f"r must be the same on every rank (this rank: batch shape and r = {spec.long().tolist()})"
                )
            names = sorted({labels[i] for i in torch.nonzero(differs).flatten().tolist()}, key=list(labels).index)
            what = ", ".join(names)
            raise ValueError(f"{what} must be the same on every rank of the group, got different values on different "
                             f"ranks (the ranks disagree on {what})")

    def agree_values(self, values: Sequence[float]) -> bool:
        """Whether every rank holds the same ``values`` (one MAX all-reduce of ``2 len(values)`` numbers).

        Parameters
        ----------
        values : sequence of float

        Returns
        -------
        bool
        """
        spec = torch.as_tensor(values, dtype=torch.float64)
        both = self.all_reduce(torch.cat([spec, -spec]), op=dist.ReduceOp.MAX)
        return torch.equal(both[:spec.numel()], -both[spec.numel():])


class CountingCollectives(GroupCollectives):
    """:class:`GroupCollectives` that counts the bytes this rank all-reduces (instrumentation for benchmarks).

    Install it on a layer for the calls to measure (``layer.collectives = CountingCollectives(layer.group)``) and
    read :attr:`bytes`; the production class carries no counter.

    Parameters
    ----------
    group : ProcessGroup, optional
    """

    def __init__(self, group: Optional[ProcessGroup] = None):
        super().__init__(group)
        self.bytes = 0

    def all_reduce(self, t: torch.Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM) -> torch.Tensor:
        self.bytes += t.numel() * t.element_size()
        return super().all_reduce(t, op)
