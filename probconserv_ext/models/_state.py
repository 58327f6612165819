"""State dicts of modules that hold neuralop models."""

import warnings
from typing import Any, Dict, Optional

from torch import nn

__all__ = ["HoldsNeuralopModels"]

_NEURALOP_METADATA_WARNING = "Attempting to update metadata for a module with metadata already"


class HoldsNeuralopModels(nn.Module):
    """Base for containers of neuralop models whose ``state_dict`` must round-trip through ``load_state_dict``.

    neuralop's ``BaseModel.state_dict`` writes its constructor arguments under the un-prefixed key ``_metadata``
    of the dictionary it is given. Inside a plain container that dictionary is the container's own, so the entry
    lands at the top level, where the container's ``load_state_dict`` rejects it as an unexpected key; with
    several members, every member after the first also warns that the entry exists already. The entry holds one
    member's constructor arguments, which the container's own constructor already determines, so it is dropped
    (an entry that was there before this container added its parameters, e.g. a parent's, is left alone).
    """

    def state_dict(self, *, destination: Optional[Dict[str, Any]] = None, prefix: str = "",
                   keep_vars: bool = False) -> Dict[str, Any]:
        """:meth:`torch.nn.Module.state_dict` without neuralop's stray top-level ``_metadata`` entry.

        Parameters
        ----------
        destination : dict, optional
        prefix : str
        keep_vars : bool
            As for :meth:`torch.nn.Module.state_dict`.

        Returns
        -------
        dict
            Parameters and buffers, loadable with ``load_state_dict`` (strict).
        """
        had_metadata = destination is not None and "_metadata" in destination
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NEURALOP_METADATA_WARNING, category=UserWarning)
            state = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        if not had_metadata:
            state.pop("_metadata", None)
        return state
