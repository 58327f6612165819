"""A neuralop data processor that normalises boundary values consistently with the outputs.

A BOON model trained on normalised targets must receive normalised boundary values, or the condition it
imposes exactly is the wrong one. With the output normaliser ``u_n = (u - m) / s``:

* a Dirichlet value becomes ``(g - m_face) / s_face``;
* a Neumann value becomes ``(g - D m) / s``, where ``D m`` is the same one-sided stencil applied to the mean
  (zero for a mean constant along the axis); this requires ``s`` constant along the stencil's nodes, which is
  checked;
* periodic conditions carry no values.

After the inverse transform of the output, the conditions then hold in physical units.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from neuralop.data.transforms.data_processors import DefaultDataProcessor

from .conditions import BoundarySpec
from .enforcement import neumann_derivative, resolve_face_values, stencil_nodes

__all__ = ["BoundaryDataProcessor"]


def _stats(normalizer, like: torch.Tensor):
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
        return torch.broadcast_to(mean, shape), torch.broadcast_to(std, shape)
    except RuntimeError:
        raise ValueError(
            f"out_normalizer statistics must broadcast to the targets' shape {tuple(like.shape)}, got shapes "
            f"{tuple(mean.shape)}, {tuple(std.shape)}"
        ) from None


class BoundaryDataProcessor(DefaultDataProcessor):
    """``DefaultDataProcessor`` that also moves and normalises ``sample["boundary_values"]``.

    Parameters
    ----------
    in_normalizer, out_normalizer : optional
        As in :class:`neuralop.data.transforms.data_processors.DefaultDataProcessor`.
    boundary : BoundarySpec or conditions
        The model's conditions, e.g. ``model.boundary_spec``.
    n_dim : int, optional
        Number of spatial dimensions; needed only when ``boundary`` is not a ``BoundarySpec``.
    """

    def __init__(self, in_normalizer=None, out_normalizer=None, boundary=None, n_dim: Optional[int] = None):
        super().__init__(in_normalizer=in_normalizer, out_normalizer=out_normalizer)
        if not isinstance(boundary, BoundarySpec):
            if n_dim is None:
                raise ValueError("n_dim must be given with plain conditions (or boundary=model.boundary_spec), got None")
            boundary = BoundarySpec(boundary, n_dim)
        self.spec = boundary

    def normalize_boundary_values(self, boundary_values: Mapping, like: torch.Tensor) -> dict:
        """Boundary values in the units of the normalised outputs; ``like`` is a target-shaped tensor."""
        out = {}
        rules = {r.key: r for r in self.spec.rules if r.needs_value}
        # A missing key is reported by the model, naming the face that needs it.
        self.spec.check_values(boundary_values, allow_missing=True)
        for key, value in boundary_values.items():
            value = value.to(device=like.device, dtype=like.dtype) if torch.is_tensor(value) else value
            out[key] = value
        if self.out_normalizer is None:
            return out
        mean, std = _stats(self.out_normalizer, like)
        for key, rule in rules.items():
            if key not in out:
                continue
            g = resolve_face_values(rule, like, out)
            dim = 2 + rule.axis
            n = like.shape[dim]
            sel = (lambda t: t) if rule.channels is None else (
                lambda t: t.index_select(1, torch.tensor(rule.channels, device=t.device))
            )
            m, s = sel(mean), sel(std)
            if rule.kind == "dirichlet":
                out[key] = (g - m.select(dim, rule.index)) / s.select(dim, rule.index)
            else:
                s_nodes = [s.select(dim, i) for i in stencil_nodes(rule, n)]
                if any(not torch.allclose(s_nodes[0], t, rtol=1e-6, atol=0) for t in s_nodes[1:]):
                    raise ValueError(
                        f"boundary_values[{key!r}] is a Neumann value, which the normaliser maps consistently only "
                        "if its std is constant along the stencil's nodes; normalise with statistics reduced over "
                        f"spatial axis {rule.axis} (e.g. UnitGaussianNormalizer(dim=[0, {dim}]))"
                    )
                dm, _ = neumann_derivative(rule, m)
                out[key] = (g - dm) / s_nodes[0]
        return out

    def preprocess(self, data_dict, batched=True):
        bv = data_dict.get("boundary_values")
        data_dict = super().preprocess(data_dict, batched=batched)
        if bv is not None:
            # Shapes and statistics come from the targets; y may be normalised already, only its shape is used.
            data_dict["boundary_values"] = self.normalize_boundary_values(bv, data_dict["y"])
        return data_dict

    def forward(self, **data_dict):
        data_dict = self.preprocess(data_dict)
        output = self.model(**data_dict)
        output, data_dict = self.postprocess(output, data_dict)
        return output, data_dict
