"""The kept-mode layout of a neuralop ``SpectralConv``, and the operations BOON needs on it.

neuralop's ``SpectralConv`` multiplies the retained Fourier modes of its input by its weight and transforms
back. BOON needs three more things from the same operator, all cheap in the space of retained modes:

* its value on the boundary faces only (a point evaluation of the inverse transform along one axis);
* the response of those faces to an impulse on a face (the boundary blocks of the kernel), straight from the
  weights, independent of the batch;
* the spectrum of a field that is zero except on the faces (to update the input after the boundary nodes have
  been changed, without a second forward transform).

:class:`SpectralPlan` reproduces the mode selection of ``SpectralConv.forward`` (neuraloperator 2.x) index by
index; ``tests/boon/test_spectral.py`` checks that its forward pass equals the layer's. Unlike the layer it runs
in the dtype of its input (the layer's output buffer is complex64 whatever the input), so a float64 model is
float64 throughout.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import torch

from _physics_constrained.validation import check_choice

__all__ = ["SpectralPlan", "check_spectral_conv"]


def _fft_scale(norm: str, n: int, inverse: bool = False, undo: bool = False) -> float:
    """The factor that torch.fft's transform over ``n`` points applies under ``norm`` (or its reciprocal).

    ``inverse`` selects the inverse transform; ``undo`` returns ``1 / factor``. ``"forward"`` divides the forward
    transform by ``n``, ``"backward"`` the inverse, ``"ortho"`` both by ``sqrt(n)``. Each value is computed as
    one rounding from ``n`` (never a reciprocal of a rounded value), so it is the same wherever it is used.
    """
    if norm == "ortho":
        return n ** 0.5 if undo else n ** -0.5
    if norm != ("backward" if inverse else "forward"):
        return 1.0
    return float(n) if undo else 1.0 / n


def require_settings(settings: Sequence[Tuple[str, Any, Any, str]]) -> None:
    """Refuse the first setting that differs from the one BOON supports.

    Parameters
    ----------
    settings : sequence of (name, value, required, reason)
        Each setting's name, its value, the only value supported, and why, for the message.

    Raises
    ------
    ValueError
        ``"<name> must be <required> (<reason>), got <value>"``.
    """
    for name, value, required, reason in settings:
        if value != required:
            raise ValueError(f"{name} must be {required!r} ({reason}), got {value!r}")


def check_spectral_conv(conv) -> None:
    """Raise if ``conv`` has a setting the plan cannot reproduce exactly."""
    from neuralop.layers.spectral_convolution import SpectralConv

    require_settings([
        ("conv_module", type(conv), SpectralConv, "the boundary blocks are read from its Fourier weights"),
        ("complex_data", bool(conv.complex_data), False, "boundary conditions are imposed on real fields"),
        ("resolution_scaling_factor", conv.resolution_scaling_factor, None,
         "a layer that resamples has no fixed boundary nodes"),
        ("fno_block_precision", conv.fno_block_precision, "full", "half-precision spectra cannot carry an exact "
         "correction"),
    ])
    check_choice(conv.fft_norm, "fft_norm", ("forward", "backward", "ortho"))


class SpectralPlan:
    """Retained modes of ``conv`` on a grid of shape ``shape``, with the weight in a given complex dtype.

    Parameters
    ----------
    conv : neuralop.layers.spectral_convolution.SpectralConv
    shape : sequence of int
        Spatial shape of the input.
    dtype : torch.dtype
        Real dtype of the input; the weight is used in the matching complex dtype.
    """

    def __init__(self, conv, shape: Sequence[int], dtype: torch.dtype):
        self.conv = conv
        self.shape = [int(s) for s in shape]
        self.order = order = len(self.shape)
        if order != conv.order:
            raise ValueError(f"input has {order} spatial dims but the layer is {conv.order}-D")
        self.real_dtype = dtype
        self.cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.separable = bool(conv.separable)
        fft_size = list(self.shape)
        fft_size[-1] = fft_size[-1] // 2 + 1
        self.fft_size = fft_size
        # Same slicing as SpectralConv.forward: the weight is cut to the modes the grid can hold.
        starts = [mx - min(size, n) for size, n, mx in zip(fft_size, conv.n_modes, conv.max_n_modes)]
        slices = [slice(None)] * (1 if self.separable else 2)
        slices += [slice(s // 2, -s // 2) if s else slice(s, None) for s in starts[:-1]]
        slices += [slice(None, -starts[-1]) if starts[-1] else slice(None)]
        weight = conv.weight[tuple(slices)]
        if not torch.is_tensor(weight):
            weight = weight.to_tensor()
        self.weight = weight.to(self.cdtype)
        kept = list(self.weight.shape[(1 if self.separable else 2):])
        device = self.weight.device
        # Unshifted frequency index of each retained mode, on the way in and on the way out. The layer
        # centres non-last axes with fftshift before selecting and applies fftshift again before the inverse
        # transform; for an odd axis length the second shift is not the inverse of the first, and the output
        # index below reproduces that.
        # Built as Python ints (index bookkeeping never reads tensor values, which keeps torch.compile graphs
        # whole), with a tensor copy of each list for indexing.
        self.in_list: List[List[int]] = []
        self.out_list: List[List[int]] = []
        for d in range(order):
            m = self.shape[d]
            if d < order - 1:
                k = kept[d]
                t = range(-(k // 2), k // 2 + k % 2)
                self.in_list.append([f % m for f in t])
                self.out_list.append([(f + 2 * (m // 2)) % m for f in t])
            else:
                t = list(range(min(kept[-1], fft_size[-1])))
                self.in_list.append(t)
                self.out_list.append(list(t))
        self.in_idx: List[torch.Tensor] = [torch.tensor(i, dtype=torch.long, device=device) for i in self.in_list]
        self.out_idx: List[torch.Tensor] = [torch.tensor(i, dtype=torch.long, device=device) for i in self.out_list]
        self.kept = [len(i) for i in self.in_list]
        total = math.prod(self.shape)
        norm = conv.fft_norm
        self.fwd_scale = _fft_scale(norm, total)
        self.norm = norm
        bias = conv.bias
        self.bias = None if bias is None else bias.to(dtype)

    # -- the layer itself ----------------------------------------------------------------------------
    def _dims(self, x_ndim: int) -> List[int]:
        return list(range(x_ndim - self.order, x_ndim))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Retained modes of ``x`` (batch, channels, *shape), complex."""
        xh = torch.fft.rfftn(x, dim=self._dims(x.ndim), norm=self.norm)
        for d, idx in enumerate(self.in_idx):
            xh = xh.index_select(x.ndim - self.order + d, idx)
        return xh

    def contract(self, xm: torch.Tensor) -> torch.Tensor:
        """Multiply retained modes by the weight: (batch, in, *kept) -> (batch, out, *kept)."""
        if self.separable:
            return xm * self.weight
        return torch.einsum("bi...,io...->bo...", xm, self.weight)

    def inverse(self, ym: torch.Tensor) -> torch.Tensor:
        """Spatial output (bias included) from retained output modes."""
        out = ym.new_zeros((*ym.shape[:2], *self.fft_size))
        grids = torch.meshgrid(*self.out_idx, indexing="ij")
        out[(slice(None), slice(None), *grids)] = ym
        y = torch.fft.irfftn(out, s=self.shape, dim=self._dims(out.ndim), norm=self.norm)
        return y if self.bias is None else y + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inverse(self.contract(self.transform(x)))

    # -- faces ---------------------------------------------------------------------------------------
    def _eval_phase(self, axis: int, positions: Sequence[int]) -> torch.Tensor:
        """(P, kept_axis) complex: inverse-transform weights that evaluate the output at ``positions``."""
        m = self.shape[axis]
        o = self.out_idx[axis].to(torch.float64)
        p = torch.tensor([float(q % m) for q in positions], dtype=torch.float64, device=o.device)
        phase = torch.exp(2j * math.pi * p[:, None] * o[None, :] / m)
        if axis == self.order - 1:
            # Half spectrum along the last axis: interior modes stand for themselves and their conjugate.
            c = [1.0 if f == 0 or (m % 2 == 0 and f == m // 2) else 2.0 for f in self.out_list[axis]]
            phase = phase * torch.tensor(c, dtype=torch.float64, device=o.device)
        return (phase * _fft_scale(self.norm, m, inverse=True)).to(self.cdtype)

    def _face_inverse(self, v: torch.Tensor, axis: int) -> torch.Tensor:
        """Inverse transform over the face axes of (..., P, *kept_face) -> real (..., P, *face)."""
        face_axes = [d for d in range(self.order) if d != axis]
        lead = v.ndim - (self.order - 1)
        if not face_axes:
            return v.real
        full_shape = [self.fft_size[d] for d in face_axes]
        out = v.new_zeros((*v.shape[:lead], *full_shape))
        grids = torch.meshgrid(*[self.out_idx[d] for d in face_axes], indexing="ij")
        out[(Ellipsis, *grids)] = v
        dims = list(range(lead, out.ndim))
        if axis == self.order - 1:
            return torch.fft.ifftn(out, s=[self.shape[d] for d in face_axes], dim=dims, norm=self.norm).real
        return torch.fft.irfftn(out, s=[self.shape[d] for d in face_axes], dim=dims, norm=self.norm)

    def _impulse_phase(self, axis: int, positions: Sequence[int], scale: Optional[float] = None) -> torch.Tensor:
        """(Q, kept_axis) complex: retained modes, along ``axis``, of unit impulses at ``positions``.

        ``scale`` is the forward transform's factor: by default that of the whole grid (:attr:`fwd_scale`).
        """
        m = self.shape[axis]
        i_idx = self.in_idx[axis].to(torch.float64)
        q = torch.tensor([float(x % m) for x in positions], dtype=torch.float64, device=i_idx.device)
        scale = self.fwd_scale if scale is None else scale
        return (torch.exp(-2j * math.pi * q[:, None] * i_idx[None, :] / m) * scale).to(self.cdtype)

    def face_values(self, ym: torch.Tensor, axis: int, positions: Sequence[int], bias: bool = True) -> torch.Tensor:
        """Output on the faces ``positions`` of ``axis``: (batch, out, P, *face_shape), real.

        The spatial form, for inspection; the correction itself uses :meth:`face_values_spectrum`.
        """
        phase = self._eval_phase(axis, positions)  # (P, k)
        d = 2 + axis
        v = torch.tensordot(ym.movedim(d, -1), phase, dims=([-1], [1]))  # (b, o, *kept_other, P)
        v = v.movedim(-1, 2)
        y = self._face_inverse(v, axis)
        if bias and self.bias is not None:
            y = y + self.bias.reshape(self.bias.shape[0], *([1] * (y.ndim - 2)))
        return y

    def face_kernel(self, axis: int, positions: Sequence[int]) -> torch.Tensor:
        """Response of the faces to a unit impulse at the origin of each face, from the weights alone.

        The spatial form of the boundary blocks (``K00``, ``K0N``, ``KN0``, ``KNN`` of the paper, per channel
        block and face offset), for inspection; the correction uses :meth:`face_kernel_spectrum`.

        Returns
        -------
        torch.Tensor
            ``k[i, o, p, q, *face]``: output channel ``o`` at face ``positions[p]`` and face offset ``y``, for a
            unit impulse in input channel ``i`` at face ``positions[q]``, face offset 0 (bias excluded).
        """
        phase_in = self._impulse_phase(axis, positions)
        w = self._dense_weight()
        shape = [1] * self.order
        kern = []
        for j in range(len(positions)):
            shape[axis] = -1
            ym = w * phase_in[j].reshape(shape)  # impulse spectrum is a pure phase along the axis
            kern.append(self.face_values(ym, axis, positions, bias=False))  # (i, o, P, *face)
        return torch.stack(kern, dim=3)

    def face_frequencies(self, axis: int):
        """Face transform used for the boundary blocks of ``axis``, and the face frequencies the layer acts on.

        Returns
        -------
        (real_last, idx, sizes)
            ``real_last``: the face transform is ``rfftn`` (the last spatial axis is a face axis) rather than
            ``fftn``; ``idx``: per face axis, the frequency indices (in that transform's layout) where the
            face blocks differ from the skip alone; ``sizes``: the face's spatial shape.
        """
        face_axes = [a for a in range(self.order) if a != axis]
        idx = [torch.tensor(i, dtype=torch.long, device=self.weight.device) for i in self._face_frequency_lists(axis)]
        return bool(face_axes) and face_axes[-1] == self.order - 1, idx, [self.shape[a] for a in face_axes]

    def _face_frequency_lists(self, axis: int) -> List[List[int]]:
        """The ``idx`` of :meth:`face_frequencies`, as sorted Python lists."""
        idx = []
        for a in range(self.order):
            if a == axis:
                continue
            i = self.out_list[a]
            if a != self.order - 1:
                # The inverse real transform keeps the real part, which mirrors every retained frequency to
                # its negative: the operator acts on the symmetric closure of the retained set.
                i = sorted(set(i) | {(-f) % self.shape[a] for f in i})
            idx.append(list(i))
        return idx

    def face_kernel_spectrum(self, axis: int, positions: Sequence[int],
                             face_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`face_kernel` transformed over the face axes (unnormalised), on :meth:`face_frequencies`.

        Computed from the retained modes without going through the spatial face: the inverse real transform
        of the layer takes a real part, which in the face spectrum is the Hermitian average
        ``(V(xi) + conj(V(-xi))) / 2`` over the face axes it acts on (all of them when ``axis`` is the last
        axis; the zero and Nyquist columns of the last axis otherwise).

        Parameters
        ----------
        axis : int
        positions : sequence of int
        face_weight : torch.Tensor, optional
            :meth:`face_weight` for ``axis``, if already built (the weight in the layout used here); or several
            layers' face weights stacked along leading dimensions, all laid out as this plan's.

        Returns
        -------
        torch.Tensor
            ``K[..., i, o, p, q, *xi]``, complex (a permuted view of a tensor laid out as ``(..., *xi, i, p, q,
            o)``), with the leading dimensions of a stacked ``face_weight``; real ``(..., i, o, P, Q)`` for a 1-D
            layer.
        """
        if face_weight is None:
            face_weight = self.face_weight(axis)
        phase_in = self._impulse_phase(axis, positions).to(torch.complex128)  # (Q, k)
        both = (self._eval_phase(axis, positions).to(torch.complex128)[:, None, :] * phase_in[None]).to(self.cdtype)
        n_p, n_q, k = both.shape
        layers = tuple(face_weight.shape[:-3])
        n_f, ik, o = face_weight.shape[-3:]
        i = ik // k
        # (P*Q, k) @ (..., F, i, k, o): one batched product over the contiguous weight, no copy of it
        v = torch.matmul(both.reshape(n_p * n_q, k), face_weight.reshape(*layers, n_f, i, k, o))  # (..., F, i, PQ, o)
        kept_face = [len(self.out_list[a]) for a in range(self.order) if a != axis]
        v = v.reshape(*layers, *kept_face, i, n_p, n_q, o)
        nl, nf = len(layers), len(kept_face)
        v = self._face_spectrum(v, axis, lead=nl)  # (..., *xi, i, P, Q, o)
        return v.permute(*range(nl), nl + nf, nl + nf + 3, nl + nf + 1, nl + nf + 2, *range(nl, nl + nf))

    def same_layout(self, other: "SpectralPlan") -> bool:
        """Whether ``other`` has this plan's grid, retained modes, weight shape, dtype and normalisation, so that
        geometry computed for one (phases, index maps) holds for both and their weights can be stacked."""
        return (self.shape == other.shape and self.in_list == other.in_list and self.out_list == other.out_list
                and self.cdtype == other.cdtype and self.norm == other.norm and self.separable == other.separable
                and self.weight.shape == other.weight.shape and self.weight.device == other.weight.device)

    def _dense_weight(self) -> torch.Tensor:
        """The weight as (in, out, *kept); a separable weight is channel-diagonal."""
        w = self.weight
        if self.separable:
            eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
            w = torch.einsum("i...,io->io...", w, eye)
        return w

    def face_weight(self, axis: int) -> torch.Tensor:
        """The weight as one matrix per retained face mode, for :meth:`face_values_spectrum`.

        Returns
        -------
        torch.Tensor
            ``(F, in * K_axis, out)``, ``F`` the number of retained face modes and ``K_axis`` the retained modes
            along ``axis``: face values then need one batched product with a few large matrices instead of the
            full contraction over every retained mode followed by an evaluation.
        """
        w = self._dense_weight().movedim(2 + axis, -1)  # (i, o, *kept_face, k)
        i, o, k = w.shape[0], w.shape[1], w.shape[-1]
        return w.reshape(i, o, -1, k).permute(2, 0, 3, 1).reshape(-1, i * k, o)

    def face_values_spectrum(self, xm: torch.Tensor, axis: int, positions: Sequence[int],
                             face_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`face_values` (bias excluded) of the input with retained modes ``xm``, transformed over the
        face axes, on :meth:`face_frequencies`.

        Parameters
        ----------
        xm : torch.Tensor
            Retained modes of the layer input, (batch, in, *kept).
        face_weight : torch.Tensor, optional
            :meth:`face_weight` for ``axis``, if already built.

        Returns
        -------
        torch.Tensor
            (batch, out, P, *xi), complex; real (batch, out, P) for a 1-D layer.
        """
        if face_weight is None:
            face_weight = self.face_weight(axis)
        x = xm.movedim(2 + axis, -1)  # (b, i, *kept_face, k)
        b, i, k = x.shape[0], x.shape[1], x.shape[-1]
        kept_face = x.shape[2:-1]
        x = x.reshape(b, i, -1, k).permute(2, 0, 1, 3)  # (F, b, i, k)
        phase = self._eval_phase(axis, positions)  # (P, k)
        n_p = phase.shape[0]
        # The evaluation at the faces goes on the input side (batch-sized), not into the weight: a weight
        # times a phase would be a batch-independent tensor P times the weight's size, and its backward pass
        # a reduction over that broadcast. One product per face, stacked: the layout of a single broadcast
        # product over a new face dimension is left to the kernel, and the reshape must not depend on it.
        xp = torch.stack([x * phase[j] for j in range(n_p)], dim=2).reshape(x.shape[0], b * n_p, i * k)
        v = torch.bmm(xp, face_weight)  # (F, b*P, o)
        v = v.reshape(v.shape[0], b, n_p, -1).permute(1, 3, 2, 0).reshape(b, -1, n_p, *kept_face)
        return self._face_spectrum(v, axis)

    def _face_spectrum(self, v: torch.Tensor, axis: int, lead: Optional[int] = None) -> torch.Tensor:
        """Face spectrum (unnormalised, on :meth:`face_frequencies`) of the real face field whose retained
        modes, already evaluated along ``axis``, are ``v`` (..., *kept_face) in the layer's output layout
        (or ``(*kept_face, ...)``, the face dimensions starting at ``lead``).

        The layer's inverse real transform takes a real part, which in the face spectrum is the Hermitian
        average ``(V(xi) + conj(V(-xi))) / 2`` over the face axes it acts on (all of them when ``axis`` is the
        last axis; the zero and Nyquist columns of the last axis otherwise).
        """
        face_axes = [a for a in range(self.order) if a != axis]
        if not face_axes:
            return v.real
        plus_idx, minus_idx, weights = self._face_maps(axis)
        nf = len(face_axes)
        lead = v.ndim - nf if lead is None else lead
        for j, size in enumerate(v.shape[lead:lead + nf]):
            if max(plus_idx[j] + minus_idx[j]) == size:
                # One zero slot stands for the frequencies the layer does not hold.
                pad_shape = list(v.shape)
                pad_shape[lead + j] = 1
                v = torch.cat([v, v.new_zeros(pad_shape)], dim=lead + j)
        plus, minus = v, v
        for j in range(len(face_axes)):
            plus = plus.index_select(lead + j, self._long(plus_idx[j]))
            minus = minus.index_select(lead + j, self._long(minus_idx[j]))
        w_plus, w_minus = weights
        if w_minus is None:  # the same weight everywhere: one product
            return (plus + minus.conj()) * w_plus
        trailing = (1,) * (v.ndim - lead - nf)  # the weights run along the last face dimension
        return plus * w_plus.reshape(-1, *trailing) + minus.conj() * w_minus.reshape(-1, *trailing)

    def _long(self, values: List[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=self.weight.device)

    def _face_maps(self, axis: int):
        """Where each selected face frequency ``xi`` and its mirror ``-xi`` sit among the retained modes, per
        face axis (the index one past the end, a zero slot, when the layer does not hold them), and the weights
        of the two terms.

        Returns
        -------
        (plus, minus, (w_plus, w_minus))
            Index lists per face axis; the face spectrum is ``w_plus V(xi) + w_minus conj(V(-xi))``, both
            weights including the unnormalised transform's factor. ``w_minus`` is ``None`` when it equals
            ``w_plus`` at every frequency (then both are a number); otherwise both are tensors over the last
            face axis (the half spectrum of the last spatial axis, where only the zero and Nyquist columns are
            averaged with their mirror, which is themselves).
        """
        face_axes = [a for a in range(self.order) if a != axis]
        plus, minus = [], []
        for a, s in zip(face_axes, self._face_frequency_lists(axis)):
            kept = self.out_list[a]
            where = {f: k for k, f in enumerate(kept)}
            m = self.shape[a]
            plus.append([where.get(f, len(kept)) for f in s])
            # Along the last axis (half spectrum) a column is its own mirror; only the zero and Nyquist columns
            # get a weight for it below.
            mirror = s if a == self.order - 1 else [(-f) % m for f in s]
            minus.append([where.get(f, len(kept)) for f in mirror])
        scale = _fft_scale(self.norm, math.prod([self.shape[a] for a in face_axes]), undo=True)
        if face_axes[-1] != self.order - 1:
            return plus, minus, (0.5 * scale, None)
        m = self.shape[-1]
        averaged = [f == 0 or (m % 2 == 0 and f == m // 2) for f in self._face_frequency_lists(axis)[-1]]
        w_plus = torch.tensor([0.5 * scale if avg else scale for avg in averaged], dtype=self.real_dtype,
                              device=self.weight.device)
        w_minus = torch.tensor([0.5 * scale if avg else 0.0 for avg in averaged], dtype=self.real_dtype,
                               device=self.weight.device)
        return plus, minus, (w_plus, w_minus)

    def face_delta(self, d: torch.Tensor, axis: int, positions: Sequence[int]) -> torch.Tensor:
        """Retained modes of the field that equals ``d[:, :, p]`` on face ``positions[p]`` and zero elsewhere.

        ``d`` has shape (batch, channels, P, *face_shape).
        """
        m = self.shape[axis]
        face_axes = [a for a in range(self.order) if a != axis]
        lead = 3
        if face_axes:
            dims = list(range(lead, d.ndim))
            if axis == self.order - 1:
                fh = torch.fft.fftn(d.to(self.cdtype), dim=dims, norm=self.norm)
            else:
                fh = torch.fft.rfftn(d, dim=dims, norm=self.norm)
            for j, a in enumerate(face_axes):
                fh = fh.index_select(lead + j, self.in_idx[a])
        else:
            fh = d.to(self.cdtype)
        # The transform over the face axes above is normalised already; along ``axis`` only its own factor.
        phase = self._impulse_phase(axis, positions, _fft_scale(self.norm, m))
        # sum over faces p: fh[b, c, p, *kf] * phase[p, k] -> (b, c, *kf, k), then put k at the axis position
        out = torch.tensordot(fh.movedim(2, -1), phase, dims=([-1], [0]))
        return out.movedim(-1, 2 + axis)
