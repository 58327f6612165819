"""Boundary values given as flat sample keys, so that they reach a model through neuralop's ``Trainer`` unaided.

Without a data processor, neuralop's ``Trainer`` keeps only the tensor entries of a sample
(``{k: v.to(device) for k, v in sample.items() if torch.is_tensor(v)}``), so a nested ``boundary_values`` dict
is dropped before the model is called. A value given as its own tensor entry, ``"boundary_values.<key>"``
(``"boundary_values.left"``), survives that filter, and the BOON models read it back into ``boundary_values``.
"""

from __future__ import annotations

from typing import Mapping, MutableMapping, Optional

__all__ = ["FLAT_PREFIX", "flat_key", "gather_boundary_values", "NO_PROCESSOR_HINT"]

#: Prefix of a sample key that holds one boundary value (``"boundary_values.left"``).
FLAT_PREFIX = "boundary_values."

#: What to do when the values were dropped on the way (said where the model finds none).
NO_PROCESSOR_HINT = (
    "neuralop's Trainer without a data processor keeps only a sample's tensor entries and drops the nested "
    "boundary_values dict: pass data_processor=BoundaryDataProcessor(None, None, boundary=model.boundary_spec) "
    "to the Trainer, or give each value as its own sample entry \"boundary_values.<key>\" "
    "(e.g. sample[\"boundary_values.left\"] = g)"
)


def flat_key(key: str) -> str:
    """The sample key that carries the boundary value ``key`` as a tensor entry of its own.

    Parameters
    ----------
    key : str
        A key of ``model.boundary_spec.required_keys``.

    Returns
    -------
    str
        ``"boundary_values." + key``.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    return FLAT_PREFIX + key


def gather_boundary_values(boundary_values: Optional[Mapping], kwargs: MutableMapping) -> Optional[Mapping]:
    """``boundary_values`` with the flat ``"boundary_values.<key>"`` entries of ``kwargs`` moved into it.

    Parameters
    ----------
    boundary_values : mapping or None
        The nested values given, if any.
    kwargs : mutable mapping
        The other keyword arguments of the call (a sample); the flat entries are removed from it.

    Returns
    -------
    mapping or None
        ``boundary_values`` itself when there is no flat entry, else a new dict holding both.

    Raises
    ------
    ValueError
        A key given both nested and flat, or a flat key with nothing after the prefix.
    """
    flat = {k[len(FLAT_PREFIX):]: kwargs.pop(k) for k in [k for k in kwargs if isinstance(k, str)
                                                           and k.startswith(FLAT_PREFIX)]}
    if not flat:
        return boundary_values
    if "" in flat:
        raise ValueError(f"a sample key must name its face value after {FLAT_PREFIX!r}, got {FLAT_PREFIX!r} alone")
    merged = dict(boundary_values or {})
    both = sorted(set(merged) & set(flat), key=str)
    if both:
        raise ValueError(f"boundary_values must give each value once, got {both} both in boundary_values and as "
                         f"{[flat_key(k) for k in both]}")
    merged.update(flat)
    return merged
