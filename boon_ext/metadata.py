"""What a BOON model records about itself in neuralop's metadata, and the registry of the model classes.

The checkpoint readers (:mod:`boon_ext.checkpoint`) build models from this record, and the models
(:mod:`boon_ext.models`) load checkpoints; both import this small module, so neither imports the other's
module at load time and no import runs in a circle.
"""

from __future__ import annotations

from typing import Dict

__all__ = ["register_checkpoint_class", "checkpoint_class"]

#: Marks an argument the caller did not give (``None`` can be a given value).
_UNSET = object()
# Keys BaseModel puts into its metadata that are not constructor arguments.
_META_KEYS = ("_version", "_name", "args", "_config_name")
# The wrappers' own constructor arguments, recorded in their metadata next to FNO's.
_BOON_KEYS = ("boundary", "kernel_correction", "time_dim", "lift_width", "hidden_values")
# neuralop's TFNO sets these in its __init__ (which BOONTFNO runs); its metadata records only given arguments.
_TFNO_DEFAULTS = {"factorization": "Tucker", "rank": 0.1}

# The BOON model classes by the lower-cased ``_name`` neuralop records in a checkpoint's metadata; filled by
# ``boon_ext.models`` as it defines them.
_CLASSES: Dict[str, type] = {}


def register_checkpoint_class(cls: type, *names: str) -> type:
    """Make ``cls`` the class a checkpoint whose metadata names any of ``names`` is rebuilt as."""
    for name in names:
        _CLASSES[name.lower()] = cls
    return cls


def checkpoint_class(name: str) -> type:
    """The BOON class for a checkpoint whose metadata names ``name`` (a plain FNO's gives ``BOONFNO``)."""
    name = str(name).lower()
    return _CLASSES.get(name, _CLASSES["fno"])
