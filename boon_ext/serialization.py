"""Loading checkpoint files without running code from them.

A pickle can call any importable function while it is read, so ``torch.load(..., weights_only=False)`` on a
file from elsewhere runs whatever the file says. neuralop's checkpoints need a little more than tensors: the
constructor arguments it stores (in ``{name}_metadata.pkl`` and in the state dict's ``_metadata`` entry) hold
the activation function and the ``SpectralConv`` class by reference. :func:`load_checkpoint_file` reads files
with torch's weights-only unpickler and allows exactly those references (:data:`CHECKPOINT_GLOBALS`); any other
global is refused before it is called.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ["CHECKPOINT_GLOBALS", "UnsafeCheckpointError", "load_checkpoint_file"]


def _checkpoint_globals() -> Tuple[object, ...]:
    from neuralop.layers.spectral_convolution import SpectralConv

    # The conv module and the point-wise activations that FNO/TFNO constructors take. Referencing a class or a
    # function is harmless; the unpickler may call them (REDUCE), which for these builds a layer or applies an
    # activation and nothing else. Activations that pickle through ``getattr`` (``torch.tanh``) are not
    # included: allowing ``getattr`` would reach arbitrary attributes.
    acts = (F.gelu, F.relu, F.silu, F.elu, F.leaky_relu, F.softplus, F.tanh, F.sigmoid, F.mish, F.selu, F.celu)
    return (SpectralConv,) + acts


CHECKPOINT_GLOBALS = _checkpoint_globals()


class UnsafeCheckpointError(ValueError):
    """A checkpoint file needs a global outside :data:`CHECKPOINT_GLOBALS` (or is not a torch file)."""


def load_checkpoint_file(path, map_location=None, *, trust_pickle: bool = False):
    """Read a neuralop checkpoint file (state dict or metadata) without executing code from it.

    Parameters
    ----------
    path : str or Path
        A ``*_state_dict.pt`` or ``*_metadata.pkl`` file written by neuralop's ``save_checkpoint``.
    map_location : optional
        As in ``torch.load``.
    trust_pickle : bool, default False
        ``True`` reads the file with the full pickle machinery (``weights_only=False``), as older neuralop
        loaders did. **This runs any code the file contains**: use it only for files you created yourself,
        e.g. a checkpoint whose metadata stores an activation outside :data:`CHECKPOINT_GLOBALS`.

    Returns
    -------
    object
        The unpickled content (a dict for neuralop's files).

    Raises
    ------
    UnsafeCheckpointError
        The file references a global that is not allowed (its name is in the message), or cannot be read by the
        weights-only unpickler.
    """
    path = Path(path)
    if trust_pickle:
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is long and worded differently for allow-listable globals ("Unsupported global:
        # GLOBAL x") and for blocked modules ("Trying to load unsupported GLOBAL x whose module ... is blocked");
        # keep the name of what was refused, which is what the user needs.
        found = re.search(r"GLOBAL ([\w.]+)", str(e)) or re.search(r"WeightsUnpickler error:\s*([^\n]+?)\.?\s*(\n|$)",
                                                                    str(e))
        detail = (f"it references GLOBAL {found.group(1)}" if found and found.re.pattern.startswith("GLOBAL")
                  else found.group(1) if found else str(e).strip().splitlines()[0])
        raise UnsafeCheckpointError(
            f"refusing to load {path}: the weights-only unpickler rejected it ({detail}). Checkpoints may "
            "reference only neuralop's SpectralConv and the activations of torch.nn.functional. If you created "
            "this file yourself, pass trust_pickle=True (this executes any code the file contains), or pass the "
            "constructor arguments as model_kwargs."
        ) from e
