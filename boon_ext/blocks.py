"""Forward pass of neuralop's ``FNOBlocks`` with the BOON correction, on the blocks' own modules.

The corrected pass uses the very parameters of an ``FNOBlocks`` instance, so a wrapped model keeps the
state-dict layout of the model it wraps. Per layer it (1) corrects the input on the constrained faces of every
Dirichlet/Neumann axis (T2, :mod:`boon_ext.correction`), (2) applies the spectral convolution and the skip to
the corrected input (with such faces on several axes, each of them then gets the row its own axis's elimination
gives, which reads face inputs only), (3) averages the two faces of every periodic
axis, and (4) applies the point-wise non-linearities on interior nodes only, so the values on constrained faces
pass through unchanged.

Optionally (``hidden_values``, the ``hidden_values=True`` option of :class:`~boon_ext.BOONFNO`), (5) every
Dirichlet face node of the layer's output, in every hidden channel, is overwritten with the prescribed value
``g`` of that face (per sample, and per time step in space-time models): the prescribed value then enters every
hidden layer, not only the final output. This is this package's own version of the per-layer T1 step of the
paper's Dirichlet reference code (which writes the value on its spectral and skip branches separately, so that
its hidden face nodes hold ``2 g``); here each hidden channel holds ``g`` itself, written after the layer's
last point-wise step (activation, channel MLP), for every layer including the last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from .conditions import BoundarySpec
from .correction import FaceSolver, correct_axis, faces_of_input, gather_faces, skip_matrix
from .spectral import SpectralPlan, check_spectral_conv, require_settings

__all__ = ["CorrectionPlan", "check_blocks", "boon_block_forward", "layer_operators", "write_hidden_values"]


@dataclass(frozen=True)
class CorrectionPlan:
    """What the corrected pass does, derived once from the boundary spec."""

    corrected: Tuple[Tuple[int, Tuple[str, ...]], ...]  # (axis, sides) of Dirichlet/Neumann faces
    periodic_axes: Tuple[int, ...]
    face_axes: Tuple[Tuple[int, Tuple[str, ...]], ...]  # every constrained face: activations skip them
    # Order in which the rows of corrected faces are written when several axes are corrected (a node shared by
    # two faces keeps the later one's): the output's order (BoundarySpec), so that hidden layers and the output
    # give an edge or corner to the same face. Empty: by axis, left before right.
    face_order: Tuple[Tuple[int, str], ...] = ()

    @classmethod
    def from_spec(cls, spec: BoundarySpec) -> "CorrectionPlan":
        corrected = tuple((a, spec.sides(a)) for a in spec.axes(("dirichlet", "neumann")))
        periodic = spec.axes(("periodic",))
        faces = tuple((a, spec.sides(a, ("dirichlet", "neumann", "periodic"))) for a in spec.axes())
        last = {(r.axis, r.side): k for k, r in enumerate(spec.rules) if r.kind in ("dirichlet", "neumann")}
        return cls(corrected, periodic, faces, tuple(sorted(last, key=last.get)))

    def write_order(self) -> Tuple[Tuple[int, str], ...]:
        """The corrected faces ``(axis, side)`` in the order their rows are written (see ``face_order``)."""
        return self.face_order or tuple((a, s) for a, sides in self.corrected for s in sides)

    def face_mask(self, shape, device) -> torch.Tensor:
        """Boolean (1, 1, *shape): True on the nodes of a constrained face."""
        mask = torch.zeros(tuple(shape), dtype=torch.bool, device=device)
        for axis, sides in self.face_axes:
            for side in sides:
                idx = [slice(None)] * len(shape)
                idx[axis] = 0 if side == "left" else -1
                mask[tuple(idx)] = True
        return mask.reshape(1, 1, *shape)


def check_blocks(blocks) -> None:
    """Refuse FNOBlocks settings under which the correction cannot be exact, with the reason."""
    # FNOBlocks holds its norm as modules: name their class in the message.
    norm = None if blocks.norm is None else type(next(iter(blocks.norm), blocks.norm)).__name__
    require_settings([
        ("norm", norm, None, "instance/group/batch norms and AdaIN use statistics over all nodes, so "
         "boundary outputs would depend on interior inputs again"),
        ("preactivation", bool(blocks.preactivation), False, "BOON corrects the default post-activation FNO blocks"),
        ("stabilizer", blocks.stabilizer, None, "it applies a non-linearity before the kernel, which is then no "
         "longer affine in the layer input"),
        ("complex_data", bool(blocks.complex_data), False, "boundary conditions are imposed on real fields"),
    ])
    for conv in blocks.convs:
        check_spectral_conv(conv)
    if blocks.in_channels != blocks.out_channels:
        raise ValueError(
            f"FNO blocks must keep their width to be corrected, got {blocks.in_channels} -> {blocks.out_channels}"
        )


def _copy_faces(dst: torch.Tensor, src: torch.Tensor, face_axes) -> torch.Tensor:
    """``dst`` with the nodes of every constrained face copied from ``src`` (in place; face nodes only)."""
    for axis, sides in face_axes:
        for side in sides:
            i = 0 if side == "left" else src.shape[2 + axis] - 1
            dst.select(2 + axis, i).copy_(src.select(2 + axis, i))
    return dst


class _FaceKeepingGELU(torch.autograd.Function):
    """GELU on interior nodes, identity on constrained faces, in one pass each way.

    The generic masked select costs three passes over the field besides the activation (one forward, two
    backward); here the forward pass writes the faces into the fresh GELU output and the backward pass into
    the fresh GELU gradient, touching face nodes only.
    """

    @staticmethod
    def forward(ctx, h, face_axes):
        ctx.face_axes = face_axes
        ctx.save_for_backward(h)
        return _copy_faces(torch.nn.functional.gelu(h), h, face_axes)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (h,) = ctx.saved_tensors
        return _copy_faces(torch.ops.aten.gelu_backward(grad, h), grad, ctx.face_axes), None


def _act(blocks, h, plan: CorrectionPlan, corrected: bool):
    if corrected and plan.face_axes and torch.is_grad_enabled() and blocks.non_linearity is torch.nn.functional.gelu:
        return _FaceKeepingGELU.apply(h, plan.face_axes)
    y = blocks.non_linearity(h)
    if not corrected or not plan.face_axes:
        return y
    if not torch.is_grad_enabled() and y is not h:
        # Inference: write the faces' pre-activation values into the fresh output, touching face nodes only.
        return _copy_faces(y, h, plan.face_axes)
    # Training with an activation other than GELU: one masked select, whose backward pass is two element-wise
    # masks (cheaper than slice copies), and which is safe for activations that save their output for the
    # backward pass.
    return torch.where(plan.face_mask(h.shape[2:], h.device), h, y)


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The bits of ``t``'s values (so that NaN payloads and signed zeros count as different)."""
    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    # An integer view of the same width: compared as integers, equal means bit for bit equal.
    return t.contiguous().view(_INT_OF_SIZE[t.element_size()])


def _cache_hit(entry, key, params) -> bool:
    """Whether a cached entry was built from a layer identical to the current one, values included."""
    if entry is None or entry[0] != key:
        return False
    snapshot = entry[1]
    return len(snapshot) == len(params) and all(torch.equal(s, _bits(p)) for s, p in zip(snapshot, params))


def layer_operators(blocks, indices, x: torch.Tensor, plan: CorrectionPlan, corrected: bool) -> list:
    """Spectral plan, skip matrix and factorised face blocks of each layer in ``indices`` on ``x``'s grid.

    They depend on the weights only. The face blocks of all the given layers are built together, axis by axis
    (:meth:`~boon_ext.correction.FaceSolver.for_layers`): in training they are rebuilt and differentiated in
    every pass, and one batched computation for all layers costs a fraction of one per layer.

    Returns
    -------
    list of (SpectralPlan, skip module or None, skip matrix or None, {axis: FaceSolver})
    """
    spectrals = [SpectralPlan(blocks.convs[i], x.shape[2:], x.dtype) for i in indices]
    skips = [blocks.fno_skips[i] if blocks.fno_skips is not None else None for i in indices]
    if not (corrected and plan.corrected):
        return [(sp, sk, None, {}) for sp, sk in zip(spectrals, skips)]
    w_skips = [skip_matrix(sk, x.shape[1], sp.order, x.dtype, x.device) for sp, sk in zip(spectrals, skips)]
    solvers = [{} for _ in spectrals]
    for axis, sides in plan.corrected:
        n = spectrals[0].shape[axis]
        built = FaceSolver.for_layers(spectrals, w_skips, axis, [0 if s == "left" else n - 1 for s in sides])
        for per_layer, solver in zip(solvers, built):
            per_layer[axis] = solver
    return list(zip(spectrals, skips, w_skips, solvers))


def _layer_operators(blocks, index: int, x: torch.Tensor, plan: CorrectionPlan, corrected: bool, cache):
    """:func:`layer_operators` of layer ``index``, kept in ``cache`` (a dict, used when autograd is off).

    An entry is reused only while everything it is built from is unchanged: the grid, dtype and device of ``x``,
    the layer's mode counts, and the weights' values, compared byte for byte with a snapshot. Version counters or
    storage pointers would not do: writes through ``.data``, tensorly-torch's re-initialisation of factorised
    weights and neuralop's ``n_modes`` setter change the operators without bumping them.
    """
    conv = blocks.convs[index]
    skip = blocks.fno_skips[index] if blocks.fno_skips is not None else None
    key = params = None
    if cache is not None:
        params = list(conv.parameters()) + (list(skip.parameters()) if skip is not None else [])
        key = (tuple(x.shape[2:]), x.dtype, x.device, corrected, plan, tuple(conv.n_modes), tuple(conv.max_n_modes),
               tuple((p.dtype, p.device, tuple(p.shape)) for p in params))
        hit = cache.get(index)
        if _cache_hit(hit, key, params):
            return hit[2]
    (ops,) = layer_operators(blocks, [index], x, plan, corrected)
    if cache is not None:
        cache[index] = (key, [_bits(p).clone() for p in params], ops)
    return ops


def write_hidden_values(h: torch.Tensor, hidden_values) -> torch.Tensor:
    """``h`` with every hidden channel of the given Dirichlet faces set to the prescribed value.

    Parameters
    ----------
    h : torch.Tensor
        Hidden field (batch, width, *spatial).
    hidden_values : sequence of (axis, side, g)
        ``axis`` a spatial axis index, ``side`` ``"left"`` or ``"right"``, ``g`` the face value of shape
        ``(batch or 1, 1, *face_shape)`` with 1 allowed in any face dimension; it is broadcast over the width.

    Returns
    -------
    torch.Tensor
        A new tensor (``h`` is not modified); faces are written in the order given, so at a node shared by two
        faces the later one's value stays, and only that value receives the node's gradient.
    """
    dims_sides, faces = [], []
    for axis, side, g in hidden_values:
        face_shape = tuple(s for i, s in enumerate(h.shape[2:]) if i != axis)
        dims_sides.append((2 + axis, side))
        faces.append(g.to(h.dtype).expand(h.shape[0], h.shape[1], *face_shape))
    return _WriteFaces.apply(h, tuple(dims_sides), *faces)


class _WriteFaces(torch.autograd.Function):
    """``h`` with whole faces overwritten by given values, in one copy of the field each way.

    Replacing one face at a time (a concatenation per face) copies the field once per face in the forward pass and
    again in the backward pass, 8 copies per layer in 2-D with four walls; here the forward pass writes every face
    into one contiguous clone and the backward pass clears the faces in one clone of the gradient. The values
    and the gradient of ``h`` are those of the face-by-face concatenation bit for bit; a face value's gradient
    (when the values require one) sums the same terms, possibly in another order.
    """

    @staticmethod
    def forward(ctx, h, dims_sides, *faces):
        ctx.dims_sides = dims_sides
        out = h.clone(memory_format=torch.contiguous_format)  # contiguous, as a concatenation's result is
        for (dim, side), face in zip(dims_sides, faces):
            out.select(dim, 0 if side == "left" else h.shape[dim] - 1).copy_(face)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        grad_h = grad.clone(memory_format=torch.contiguous_format)
        grad_faces = [None] * len(ctx.dims_sides)
        # Last written first: a node shared with an earlier face (a corner) holds the later face's value, so its
        # gradient goes to that face, and is cleared before the earlier face takes its own.
        for k in reversed(range(len(ctx.dims_sides))):
            dim, side = ctx.dims_sides[k]
            node = grad_h.select(dim, 0 if side == "left" else grad.shape[dim] - 1)
            if ctx.needs_input_grad[2 + k]:
                grad_faces[k] = node.clone()
            node.zero_()
        return (grad_h if ctx.needs_input_grad[0] else None, None, *grad_faces)


class _OverwriteFaces(_WriteFaces):
    """:class:`_WriteFaces` writing into ``h`` itself, for an ``h`` that nothing else holds (the fresh output of the
    layer's sum, whose producers save no output for their backward pass): the forward pass then copies nothing but
    the faces; the backward pass is the same."""

    @staticmethod
    def forward(ctx, h, dims_sides, *faces):
        ctx.dims_sides = dims_sides
        for (dim, side), face in zip(dims_sides, faces):
            h.select(dim, 0 if side == "left" else h.shape[dim] - 1).copy_(face)
        ctx.mark_dirty(h)
        return h


def _own_face_rows(y, x_faces, solvers, axes, spectral: SpectralPlan, w_skip, order, first_spectrum=None
                   ) -> torch.Tensor:
    """The convolution's output ``y`` with every corrected face set so that, once the skip is added, the face holds
    the output T2 along its own axis gives, ``D x_faces + c``.

    Along one axis, T2 makes ``(K z)_faces = D x_faces + c`` exactly (``D`` the eliminated face blocks, ``c`` the
    biases). Along several, the faces' rows of ``K z`` also see the other axes' changes, which depend on the
    interior; cancelling those by a change of the face inputs alone would couple every retained face frequency of
    every corrected axis into one dense system per layer. Instead each face's row is the one its own elimination
    gives, which reads that face's inputs only; faces are written in ``order`` (the output's order), so an edge or
    corner shared by two corrected faces keeps the later face's row, as in the output. Interior rows are those of
    ``K z``.

    ``y`` gets the convolution's share ``(D - W) x_faces`` plus its bias; the point-wise skip, added afterwards to
    the uncorrected input, brings ``W x_faces`` and its own bias on the faces. ``first_spectrum`` is the face
    spectrum of the first axis's faces, if already computed (their T2 step uses the same).
    """
    bias = None if spectral.bias is None else spectral.bias.reshape(1, -1, *([1] * (y.ndim - 2)))
    rows = {}
    for k, (axis, faces, solver) in enumerate(zip(axes, x_faces, solvers)):
        r = solver.face_output(faces, w_skip, first_spectrum if k == 0 else None)  # (b, C, P, *face)
        rows[axis] = (r if bias is None else r + bias).to(y.dtype)
    faces = [rows[axis].select(2, 0 if side == "left" else rows[axis].shape[2] - 1) for axis, side in order]
    dims_sides = tuple((2 + axis, side) for axis, side in order)
    # y is the fresh output of the inverse transform (plus bias), written in place. With autograd, the backward
    # pass clears the faces in one copy of the gradient (slice assignments would clone it once per face); without,
    # plain copies (torch.compile does not trace mark_dirty there).
    if torch.is_grad_enabled():
        return _OverwriteFaces.apply(y, dims_sides, *faces)
    for (dim, side), face in zip(dims_sides, faces):
        y.select(dim, 0 if side == "left" else y.shape[dim] - 1).copy_(face)
    return y


def boon_block_forward(blocks, index: int, x: torch.Tensor, plan: CorrectionPlan, corrected: bool = True,
                       cache=None, hidden_values=None, operators=None) -> torch.Tensor:
    """Layer ``index`` of ``blocks`` with the BOON correction (see the module docstring).

    Parameters
    ----------
    blocks : neuralop.layers.fno_block.FNOBlocks
    index : int
    x : torch.Tensor
        Layer input (batch, width, *spatial).
    plan : CorrectionPlan
    corrected : bool
        ``False`` runs the plain layer (the output-enforcement-only ablation).
    cache : dict, optional
        Per-model store of the weight-derived operators; pass one only when autograd is off.
    hidden_values : sequence of (axis, side, g), optional
        Dirichlet faces whose prescribed values are written into every hidden channel of the layer's output
        (see :func:`write_hidden_values`); ``None`` writes nothing.
    operators : tuple, optional
        The layer's entry of :func:`layer_operators`, if already built (with those of the other layers);
        otherwise built here (or taken from ``cache``).

    Returns
    -------
    torch.Tensor
        The layer output (batch, width, *spatial).
    """
    if operators is None:
        operators = _layer_operators(blocks, index, x, plan, corrected, cache)
    spectral, skip, w_skip, solvers = operators
    xm = spectral.transform(x)
    corrections = []  # (axis, positions, d): the corrected input is z = x + d on those faces
    axes = [axis for axis, _ in plan.corrected] if corrected else []
    x_faces = gather_faces(x, [(axis, solvers[axis].positions) for axis in axes]) if axes else []
    first_spectrum = None
    for axis, faces in zip(axes, x_faces):
        positions = solvers[axis].positions
        z_faces = faces_of_input(x, corrections, axis, positions, faces)
        zf = None
        if not corrections and len(axes) > 1:
            # The first axis's faces are the input's own: their spectrum serves its face rows too.
            zf = first_spectrum = solvers[axis].to_freq(z_faces)
        xm, d = correct_axis(spectral, w_skip, xm, z_faces, axis, positions, solver=solvers[axis], zf=zf)
        corrections.append((axis, positions, d))
    h = spectral.inverse(spectral.contract(xm))
    # On several axes the per-axis changes do not compose: a later axis's change reaches an earlier axis's face
    # rows through the convolution (and the earlier change reaches the later faces on the edges they share), so
    # the face rows of K z see the interior again. Each constrained face then gets the row its own axis's
    # elimination gives, D x_faces + c, from the faces' inputs alone (see _own_face_rows).
    own_rows = len(corrections) > 1
    if own_rows:
        h = _own_face_rows(h, x_faces, [solvers[axis] for axis in axes], axes, spectral, w_skip, plan.write_order(),
                           first_spectrum)
    if skip is not None:
        h = h + skip(x)
        # skip(z) = skip(x) + W d on the faces: the skip is point-wise, so only face nodes change. h is the
        # fresh output of an addition, which may be updated in place. (With rows of their own the faces take
        # skip(x) itself: W x_faces plus the skip's bias.)
        for axis, positions, d in corrections if not own_rows else ():
            dw = torch.einsum("bi...,io->bo...", d, w_skip).movedim(2, 2 + axis)
            h.index_add_(2 + axis, torch.tensor(positions, device=h.device), dw)
    if corrected:
        for axis in plan.periodic_axes:
            dim = 2 + axis
            avg = 0.5 * (h.select(dim, 0) + h.select(dim, -1)).unsqueeze(dim)
            h = torch.cat([avg, h.narrow(dim, 1, h.shape[dim] - 2), avg], dim)
    last = index == blocks.n_layers - 1
    if not last:
        h = _act(blocks, h, plan, corrected)
    if blocks.use_channel_mlp:
        out = blocks.channel_mlp[index](h)
        if blocks.channel_mlp_skips is not None:
            out = out + blocks.channel_mlp_skips[index](x)
        h = out
    if not last:
        h = _act(blocks, h, plan, corrected)
    if hidden_values:
        h = write_hidden_values(h, hidden_values)
    return h
