"""A neuralop data processor that normalises boundary conditions consistently with the outputs.

A BOON model trained on normalised targets imposes its conditions on its normalised output: every value a
condition prescribes must be given to it in normalised units, or the condition that holds exactly after the
inverse transform is the wrong one. With the output normaliser ``u_n = (u - m) / s``:

* a Dirichlet value becomes ``(g - m_face) / s_face`` (``m`` and ``s`` may vary along the face);
* a Neumann value becomes ``(g - D m) / s``, where ``D m`` is the same one-sided stencil applied to the mean
  (zero for a mean constant along the axis); this requires ``s`` constant along the stencil's nodes, which is
  checked (otherwise ``D (s u_n)`` is not ``s D u_n`` and no Neumann condition on ``u_n`` expresses it);
* a periodic pair carries no value, and holds in physical units when ``m`` and ``s`` are the same on its two
  faces, which is checked.

This applies to the values given at each call and to the constants of the conditions (``Dirichlet(left=1.0)``)
alike: the constants are given to the model in normalised units at each call, under their
:class:`~boon_ext.conditions.ConstantKey`. After the inverse transform of the output, every condition then holds
in physical units.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from neuralop.data.transforms.data_processors import DefaultDataProcessor

from _physics_constrained.validation import check_int, eps_of
from .conditions import BoundarySpec, FaceRule
from .sample_keys import gather_boundary_values
from .enforcement import neumann_derivative, resolve_face_values, stencil_nodes

__all__ = ["BoundaryDataProcessor"]


def _stats(normalizer, like: torch.Tensor):
    """The normaliser's mean and scale (``std + eps``), broadcast to ``(1, *like.shape[1:])``."""
    mean = getattr(normalizer, "mean", None)
    std = getattr(normalizer, "std", None)
    if mean is None or std is None:
        raise TypeError(
            f"out_normalizer must expose mean and std (as neuralop's UnitGaussianNormalizer does), "
            f"got {type(normalizer).__name__}"
        )
    eps = getattr(normalizer, "eps", 0.0)
    shape = (1, *like.shape[1:])
    mean = torch.as_tensor(mean, dtype=like.dtype, device=like.device)
    std = torch.as_tensor(std, dtype=like.dtype, device=like.device) + eps
    try:
        mean, std = torch.broadcast_to(mean, shape), torch.broadcast_to(std, shape)
    except RuntimeError:
        raise ValueError(
            f"out_normalizer statistics must broadcast to the targets' shape {tuple(like.shape)}, got shapes "
            f"{tuple(mean.shape)}, {tuple(std.shape)}"
        ) from None
    if not bool(torch.isfinite(mean).all()) or not bool(torch.isfinite(std).all()):
        raise ValueError("out_normalizer mean and std must be finite, got NaN or inf")
    if not bool((std > 0).all()):
        raise ValueError(
            f"out_normalizer std + eps must be positive on every node (the inverse transform multiplies by it), got "
            f"smallest {float(std.min()):.3e}"
        )
    return mean, std


def _select(t: torch.Tensor, rule: FaceRule) -> torch.Tensor:
    return t if rule.channels is None else t.index_select(1, torch.tensor(rule.channels, device=t.device))


def _name(rule: FaceRule) -> str:
    value = "constant" if rule.constant is not None else f"boundary_values[{rule.key!r}]"
    return f"the {rule.kind} {value} of the {rule.side} face of spatial axis {rule.axis}"


class BoundaryDataProcessor(DefaultDataProcessor):
    """``DefaultDataProcessor`` that also moves and normalises boundary conditions (values and constants).

    Parameters
    ----------
    in_normalizer, out_normalizer : optional
        As in :class:`neuralop.data.transforms.data_processors.DefaultDataProcessor`. ``out_normalizer`` must
        expose ``mean`` and ``std`` (and optionally ``eps``) and transform as ``(u - mean) / (std + eps)``, as
        neuralop's ``UnitGaussianNormalizer`` and ``Normalizer`` do.
    boundary : BoundarySpec or conditions
        The model's conditions, e.g. ``model.boundary_spec``.
    n_dim : int, optional
        Number of spatial dimensions; needed only when ``boundary`` is not a ``BoundarySpec``.

    Notes
    -----
    With an ``out_normalizer``, :meth:`preprocess` adds the constants of the conditions, in normalised units, to
    ``sample["boundary_values"]`` (under their :class:`~boon_ext.conditions.ConstantKey`), and the model imposes
    those instead of the physical constants; the conditions then hold in physical units after
    :meth:`postprocess`. Statistics under which a condition has no normalised form (a std that varies along a
    Neumann stencil, different statistics on the two faces of a periodic pair) are refused with a ``ValueError``.
    neuralop's own ``DefaultDataProcessor`` knows nothing of boundary conditions: with an output normaliser, use
    this class.
    """

    def __init__(self, in_normalizer=None, out_normalizer=None, boundary=None, n_dim: Optional[int] = None):
        super().__init__(in_normalizer=in_normalizer, out_normalizer=out_normalizer)
        if isinstance(boundary, BoundarySpec):
            if n_dim is not None and n_dim != boundary.n_dim:  # the spec's own dims count; a different n_dim is refused
                raise ValueError(f"n_dim must be the BoundarySpec's own {boundary.n_dim} (or left out), got {n_dim}")
        else:
            if n_dim is None:
                raise ValueError("n_dim must be given with plain conditions (or boundary=model.boundary_spec), got None")
            boundary = BoundarySpec(boundary, check_int(n_dim, "n_dim", minimum=1))
        self.spec = boundary

    def normalize_boundary_values(self, boundary_values: Optional[Mapping], like: torch.Tensor) -> dict:
        """Boundary values in the units of the normalised outputs; ``like`` is a target-shaped tensor.

        Parameters
        ----------
        boundary_values : mapping str -> torch.Tensor, or None
            Call-time values in physical units.
        like : torch.Tensor
            A tensor of the targets' shape, dtype and device.

        Returns
        -------
        dict
            The call-time values in normalised units and, with an ``out_normalizer``, the constants of the
            conditions in normalised units under their :class:`~boon_ext.conditions.ConstantKey`.

        Raises
        ------
        ValueError
            Statistics under which a condition cannot be expressed in normalised units, or that are not finite and
            positive.
        """
        out = {}
        # A missing key is reported by the model, naming the face that needs it.
        self.spec.check_values(boundary_values, allow_missing=True)
        for key, value in (boundary_values or {}).items():
            value = value.to(device=like.device, dtype=like.dtype) if torch.is_tensor(value) else value
            out[key] = value
        if self.out_normalizer is None:
            return out
        mean, std = _stats(self.out_normalizer, like)
        batch = like.shape[0]
        eps = eps_of(like.dtype)
        for rule in self.spec.rules:
            dim = 2 + rule.axis
            m, s = _select(mean, rule), _select(std, rule)
            if rule.kind == "periodic":
                if rule.side == "left":
                    self._check_periodic(rule, m, s, eps)
                continue
            if rule.constant is not None:
                key, g = rule.constant_key, resolve_face_values(rule, like, None)
            elif rule.key in out:
                key, g = rule.key, resolve_face_values(rule, like, out)
            else:
                continue
            if rule.kind == "dirichlet":
                g = (g - m.select(dim, rule.index)) / s.select(dim, rule.index)
            else:
                s_nodes = [s.select(dim, i) for i in stencil_nodes(rule, like.shape[dim])]
                if any(not torch.allclose(s_nodes[0], t, rtol=8 * eps, atol=0) for t in s_nodes[1:]):
                    raise ValueError(
                        f"{_name(rule)} is a Neumann value, which the normaliser maps consistently only if its std is "
                        f"constant along the stencil's nodes; normalise with statistics reduced over spatial axis "
                        f"{rule.axis} (e.g. UnitGaussianNormalizer(dim=[0, {dim}]))"
                    )
                dm, _ = neumann_derivative(rule, m)
                g = (g - dm) / s_nodes[0]
            out[key] = torch.broadcast_to(g, (batch, *g.shape[1:]))
        return out

    @staticmethod
    def _check_periodic(rule: FaceRule, m: torch.Tensor, s: torch.Tensor, eps: float) -> None:
        """Refuse statistics that differ between the two faces of a periodic pair beyond round-off."""
        dim = 2 + rule.axis
        scale = float(m.abs().max()) + float(s.max())
        dm = float((m.select(dim, 0) - m.select(dim, -1)).abs().max())
        ds = float((s.select(dim, 0) - s.select(dim, -1)).abs().max())
        if dm > 8 * eps * scale or ds > 8 * eps * scale:
            raise ValueError(
                f"the periodic condition on spatial axis {rule.axis} holds in physical units only if the "
                f"out_normalizer's mean and std are the same on its two faces, got differences {dm:.3e} (mean) and "
                f"{ds:.3e} (std); fit the normaliser on periodic data or reduce its statistics over spatial axis "
                f"{rule.axis} (e.g. UnitGaussianNormalizer(dim=[0, {dim}]))"
            )

    def preprocess(self, data_dict, batched=True):
        # Values given as flat entries ("boundary_values.left") are normalised like nested ones.
        bv = gather_boundary_values(data_dict.get("boundary_values"), data_dict)
        data_dict = super().preprocess(data_dict, batched=batched)
        if bv is not None or (self.out_normalizer is not None and self.spec.rules):
            # Shapes and statistics come from the targets; y may be normalised already, only its shape is used.
            data_dict["boundary_values"] = self.normalize_boundary_values(bv, data_dict["y"])
        return data_dict

    def forward(self, **data_dict):
        data_dict = self.preprocess(data_dict)
        output = self.model(**data_dict)
        output, data_dict = self.postprocess(output, data_dict)
        return output, data_dict
