"""The BOON kernel correction of one Fourier layer along one axis (the Gaussian-elimination step T2).

The layer's kernel is ``K x = conv(x) + skip(x)``: an affine operator whose boundary blocks (between the
faces ``p, q`` of the corrected axis) are ``C x C`` matrices per face frequency ``xi`` (a face kernel is a
convolution along the other axes, so the face Fourier transform makes it block diagonal). With both faces
constrained, T2 changes the input on the faces only, ``z = x + d``, so that

    (K z)_0 = (K00 - K0N KNN^-1 KN0) x_0,        (K z)_N = KNN x_N,

i.e. the boundary outputs no longer depend on interior inputs (Saad et al. 2023, Sec. 3: the paper's
formulas, with matrices for its scalars). With one face constrained, ``(K z)_p = Kpp x_p``. The change
``d`` solves one ``(P C) x (P C)`` linear system per face frequency, with the batch as right-hand sides.

References
----------
.. [1] Saad, N., Gupta, G., Alizadeh, S., Maddix, D. C. "Guiding continuous operator learning through
       physics-based boundary constraints." ICLR 2023.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from .spectral import SpectralPlan

__all__ = ["skip_matrix", "FaceSolver", "gather_faces", "faces_of_input", "correct_axis"]


def skip_matrix(skip: Optional[torch.nn.Module], channels: int, n_dim: int, dtype, device) -> Optional[torch.Tensor]:
    """Matrix ``W[i, o]`` of a point-wise skip connection (bias excluded), from its response to unit inputs."""
    if skip is None:
        return None
    shape = (channels, channels) + (1,) * n_dim
    eye = torch.eye(channels, dtype=dtype, device=device).reshape(shape)
    zero = torch.zeros((1, channels) + (1,) * n_dim, dtype=dtype, device=device)
    w = skip(eye) - skip(zero)
    return w.reshape(channels, -1)


class FaceSolver:
    """Boundary blocks of one layer along one axis, factorised once per forward pass.

    Build with :meth:`for_layers` (or :meth:`for_layer`), which computes the blocks from the weights.

    Parameters
    ----------
    positions : sequence of int
        Node indices of the constrained faces along the axis (``[0]``, ``[N-1]`` or ``[0, N-1]``).
    face_weight : torch.Tensor
        The layer's :meth:`SpectralPlan.face_weight` for the axis.
    frequencies : tuple
        :meth:`SpectralPlan.face_frequencies` for the axis.
    m, target : torch.Tensor
        The blocks ``(*F, P*C, P*C)`` (regularised) and what T2 makes of them.
    """

    def __init__(self, positions: Sequence[int], face_weight: torch.Tensor, frequencies, m: torch.Tensor,
                 target: torch.Tensor):
        self.positions = list(positions)
        self.face_weight = face_weight
        self.real_last, self.face_idx, self.face_sizes = frequencies
        self.c = m.shape[-1] // len(self.positions)
        self.m = m
        self.target = target
        self._lu = None
        self._rest = None

    @classmethod
    def for_layer(cls, plan: SpectralPlan, w_skip: Optional[torch.Tensor], axis: int,
                  positions: Sequence[int]) -> "FaceSolver":
        """The solver of one layer (see :meth:`for_layers`)."""
        return cls.for_layers([plan], [w_skip], axis, positions)[0]

    @classmethod
    def for_layers(cls, plans: Sequence[SpectralPlan], w_skips: Sequence[Optional[torch.Tensor]], axis: int,
                   positions: Sequence[int]) -> list:
        """One solver per layer, for the faces ``positions`` of ``axis``.

        Layers with the same layout (every layer of an ``FNOBlocks``) are built together: their weights are
        stacked and each of the few dozen small operations that make the blocks runs once for all of them, in
        the forward and the backward pass, instead of once per layer.

        Parameters
        ----------
        plans : sequence of SpectralPlan
            The layers' spectral convolutions on the current grid.
        w_skips : sequence of (torch.Tensor or None)
            Their skip matrices ``(in, out)`` from :func:`skip_matrix`.
        axis : int
            Spatial axis being corrected.
        positions : sequence of int
            Node indices of the constrained faces along ``axis``.

        Returns
        -------
        list of FaceSolver
        """
        plans, w_skips, positions = list(plans), list(w_skips), list(positions)
        first = plans[0]
        if len(plans) > 1 and not (all(first.same_layout(p) for p in plans[1:])
                                   and len({w is None for w in w_skips}) == 1):
            return [s for p, w in zip(plans, w_skips) for s in cls.for_layers([p], [w], axis, positions)]
        face_weights = [p.face_weight(axis) for p in plans]
        stacked = face_weights[0][None] if len(plans) == 1 else torch.stack(face_weights)
        kf = first.face_kernel_spectrum(axis, positions, stacked)  # (L, i, o, P, Q, *xi)
        n_l, c_in, c_out, n_p = kf.shape[:4]
        if c_in != c_out:
            raise ValueError(f"a corrected layer must keep its width, got {c_in} -> {c_out} channels")
        c = c_in
        n_face = kf.ndim - 5
        # Face frequencies the spectral weight acts on; elsewhere the blocks reduce to the skip and the
        # right-hand side vanishes, so T2 leaves those components unchanged and they need no solve.
        frequencies = first.face_frequencies(axis)
        if w_skips[0] is not None:
            w = w_skips[0][None] if n_l == 1 else torch.stack(w_skips)  # (L, i, o)
            eye_p = torch.eye(n_p, dtype=kf.dtype, device=kf.device)
            kf = kf + (w.to(kf.dtype)[..., None, None] * eye_p).reshape(*kf.shape[:5], *([1] * n_face))
        # (L, i, o, P, Q, *F) -> (L, *F, P*o, Q*i)
        m = kf.permute(0, *range(5, kf.ndim), 3, 2, 4, 1).reshape(n_l, *kf.shape[5:], n_p * c, n_p * c)
        # Blocks can be singular where the spectral weight does not reach (a face frequency held only by the
        # mirror image of a retained mode, or any frequency without a skip path, or a rank-deficient skip).
        # There the right-hand side vanishes too; a shift of one machine epsilon (relative to the largest
        # block of the layer) keeps the correction finite and zero instead of 0/0, and is round-off elsewhere.
        # The shift is a constant of the pass (computed without a graph): its gradient would be of the order
        # of round-off, and differentiating |m| and the maxima costs more than the rest of the blocks.
        scale = m.detach().abs().amax(dim=(-2, -1), keepdim=True)
        per_layer = scale.amax(dim=tuple(range(1, scale.ndim)), keepdim=True)
        shift = torch.finfo(m.real.dtype).eps * (scale + per_layer)
        eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
        if n_p == 2:
            k00, k0n = m[..., :c, :c], m[..., :c, c:]
            kn0, knn = m[..., c:, :c], m[..., c:, c:]
            schur = k00 - k0n @ torch.linalg.solve(knn + shift * eye[:c, :c], kn0)
            zeros = torch.zeros_like(k0n)
            target = torch.cat([torch.cat([schur, zeros], -1), torch.cat([zeros, knn], -1)], -2)
        else:
            target = m
        m = m + shift * eye
        return [cls(positions, face_weights[j], frequencies, m[j], target[j]) for j in range(n_l)]

    def _to_freq(self, t: torch.Tensor, dims) -> torch.Tensor:
        """Retained face frequencies of a real face field (unnormalised transform over ``dims``)."""
        t = torch.fft.rfftn(t, dim=dims) if self.real_last else torch.fft.fftn(t, dim=dims)
        for d, idx in zip(dims, self.face_idx):
            t = t.index_select(d, idx)
        return t

    def _from_freq(self, t: torch.Tensor, dims) -> torch.Tensor:
        full = list(self.face_sizes)
        if self.real_last:
            full[-1] = full[-1] // 2 + 1
        out = t.new_zeros((*t.shape[: dims[0]], *full))
        grids = torch.meshgrid(*self.face_idx, indexing="ij")
        out[(Ellipsis, *grids)] = t
        if self.real_last:
            return torch.fft.irfftn(out, s=self.face_sizes, dim=dims)
        return torch.fft.ifftn(out, s=self.face_sizes, dim=dims).real

    def to_freq(self, faces: torch.Tensor) -> torch.Tensor:
        """Face spectrum of real face fields (batch, C, P, *face) on the retained face frequencies."""
        dims = list(range(3, faces.ndim))
        return self._to_freq(faces, dims) if dims else faces

    def solve(self, xf: torch.Tensor, kxf: torch.Tensor) -> torch.Tensor:
        """Change ``d`` of the face inputs, real (batch, C, P, *face), from the face spectra of ``x`` and of
        the linear part of ``K x`` (both from :meth:`to_freq` / :meth:`SpectralPlan.face_values_spectrum`)."""
        b, c, n_p = xf.shape[:3]
        f_shape = xf.shape[3:]
        nf = len(f_shape)

        # (b, c, P, *F) -> (*F, P*c, b)
        def cols(t):
            return t.permute(*range(3, 3 + nf), 2, 1, 0).reshape(*f_shape, n_p * c, b)

        rhs = self.target @ cols(xf) - cols(kxf)
        if torch.is_grad_enabled():
            # One factorisation whose backward pass reuses it (cheaper than differentiating a factorisation).
            d = torch.linalg.solve(self.m, rhs)
        else:
            if self._lu is None:  # factorised once, reused while the weights do not change (cached solvers)
                self._lu = torch.linalg.lu_factor(self.m)
            d = torch.linalg.lu_solve(*self._lu, rhs)
        d = d.reshape(*f_shape, n_p, c, b).permute(nf + 2, nf + 1, nf, *range(nf))
        if nf:
            d = self._from_freq(d, list(range(3, 3 + nf)))
        return d

    def face_output(self, faces: torch.Tensor, w_skip: Optional[torch.Tensor],
                    xf: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The convolution's share of the face outputs that T2 along this axis gives, from the faces' inputs alone.

        With ``z`` the input corrected along this axis only, ``(K z)_faces = D x_faces`` (bias excluded), ``D``
        the target blocks at the face frequencies the layer acts on and the skip matrix ``W`` elsewhere (where the
        blocks reduce to it). ``D`` is block diagonal in the faces: each face's row reads that face's input only.
        Returned is ``(D - W) x_faces``, which vanishes outside those frequencies; the point-wise skip adds the
        rest, ``W x_faces``.

        Parameters
        ----------
        faces : torch.Tensor
            The faces' inputs ``x_faces``, real (batch, C, P, *face).
        w_skip : torch.Tensor or None
            Skip matrix ``(in, out)`` the blocks were built with.
        xf : torch.Tensor, optional
            ``to_freq(faces)``, if already computed.

        Returns
        -------
        torch.Tensor
            ``(D - W) x_faces``, real (batch, C, P, *face).
        """
        b, c, n_p = faces.shape[:3]
        dims = list(range(3, faces.ndim))
        xf = self.to_freq(faces) if xf is None else xf
        f_shape = xf.shape[3:]
        nf = len(f_shape)
        cols = xf.permute(*range(3, 3 + nf), 2, 1, 0).reshape(*f_shape, n_p * c, b)
        target = self._rest
        if target is None:
            target = self.target
            if w_skip is not None:
                # The skip's blocks: W^T on the diagonal of faces (rows (p, o), columns (q, i)).
                eye_p = torch.eye(n_p, dtype=target.dtype, device=target.device)
                target = target - torch.kron(eye_p, w_skip.t().contiguous().to(target.dtype))
            if not torch.is_grad_enabled():  # kept while the weights do not change (cached solvers), as the LU
                self._rest = target
        v = (target @ cols).reshape(*f_shape, n_p, c, b).permute(nf + 2, nf + 1, nf, *range(nf))
        return self._from_freq(v, dims) if nf else v


def _faces(t: torch.Tensor, axis: int, positions: Sequence[int]) -> torch.Tensor:
    idx = torch.tensor(list(positions), device=t.device, dtype=torch.long)
    return t.index_select(2 + axis, idx).movedim(2 + axis, 2)


def gather_faces(x: torch.Tensor, faces: Sequence[Tuple[int, Sequence[int]]]) -> list:
    """The faces of several axes of ``x`` in one gather.

    Parameters
    ----------
    x : torch.Tensor
        (batch, C, *spatial).
    faces : sequence of (axis, positions)
        Node indices ``positions`` along ``axis``, per axis.

    Returns
    -------
    list of torch.Tensor
        Per entry of ``faces``, (batch, C, P, *face), equal to ``x``'s values there.
    """
    # One gather instead of one per axis: in training each gather's backward pass is a zero tensor of the
    # full size of ``x`` plus its accumulation into the gradient of ``x``, whatever the number of faces.
    spatial = x.shape[2:]
    nodes = torch.arange(x[0, 0].numel(), device=x.device).reshape(spatial)
    idx = [_faces(nodes[None, None], axis, positions)[0, 0] for axis, positions in faces]
    flat = x.flatten(2).index_select(2, torch.cat([i.flatten() for i in idx]))
    out = flat.split([i.numel() for i in idx], dim=2)
    return [o.reshape(*x.shape[:2], *i.shape) for o, i in zip(out, idx)]


def faces_of_input(x: torch.Tensor, corrections, axis: int, positions: Sequence[int],
                   faces: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Faces ``positions`` of ``axis`` of ``x`` plus the face changes already made on other axes.

    Parameters
    ----------
    x : torch.Tensor
        Layer input (batch, C, *spatial).
    corrections : list of (axis, positions, d)
        Earlier face changes ``d`` (batch, C, P, *face) on other axes; they meet these faces on edges.
    faces : torch.Tensor, optional
        The faces of ``x`` itself, if already gathered (see :func:`gather_faces`).

    Returns
    -------
    torch.Tensor
        (batch, C, P, *face).
    """
    nd = x.ndim - 2
    if faces is None:
        faces = _faces(x, axis, positions)
    ours = [a for a in range(nd) if a != axis]
    for c_axis, c_pos, d in corrections:
        theirs = [a for a in range(nd) if a != c_axis]
        k_theirs = theirs.index(axis)
        idx = torch.tensor(list(positions), device=d.device, dtype=torch.long)
        sub = d.index_select(3 + k_theirs, idx).movedim(3 + k_theirs, 2)  # (b, C, P, Pc, *rest)
        k_ours = ours.index(c_axis)
        sub = sub.movedim(3, 3 + k_ours)
        faces = faces.index_add(3 + k_ours, torch.tensor(list(c_pos), device=d.device, dtype=torch.long), sub)
    return faces


def correct_axis(
    plan: SpectralPlan,
    w_skip: Optional[torch.Tensor],
    xm: torch.Tensor,
    z_faces: torch.Tensor,
    axis: int,
    positions: Sequence[int],
    solver: Optional[FaceSolver] = None,
    zf: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Apply T2 along ``axis`` on the faces at ``positions``.

    Parameters
    ----------
    plan : SpectralPlan
    w_skip : torch.Tensor or None
        Skip matrix ``(in, out)``.
    xm : torch.Tensor
        Retained modes of the current layer input ``z``.
    z_faces : torch.Tensor
        The faces of ``z`` at ``positions``, (batch, C, P, *face) (see :func:`faces_of_input`).
    solver : FaceSolver, optional
        The layer's factorised boundary blocks for this axis and these faces, if already built.
    zf : torch.Tensor, optional
        ``solver.to_freq(z_faces)``, if already computed.

    Returns
    -------
    (xm, d)
        Retained modes of the corrected input, and the change ``d`` of its faces, (batch, C, P, *face).
    """
    if solver is None:
        solver = FaceSolver.for_layer(plan, w_skip, axis, positions)
    if zf is None:
        zf = solver.to_freq(z_faces)
    # Linear part only: the biases of the convolution and the skip pass through T2 unchanged, so that
    # (K z)_p = D_p x_p + c_p for the affine kernel K x = L x + c.
    kzf = plan.face_values_spectrum(xm, axis, positions, solver.face_weight)
    if w_skip is not None:
        kzf = kzf + torch.einsum("bi...,io->bo...", zf, w_skip.to(zf.dtype))
    d = solver.solve(zf, kzf)
    return xm + plan.face_delta(d, axis, positions), d
