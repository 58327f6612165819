"""BOON models under ``torch.nn.parallel.DistributedDataParallel``: unwrap, save and load checkpoints.

DDP needs nothing BOON-specific to train: the boundary correction of every Fourier layer is computed from that
rank's copy of the weights, which DDP keeps identical on all ranks, and the exact output enforcement is per sample.
What DDP changes is checkpointing: neuralop's ``save_training_state`` writes only ``model.module.state_dict()``
for a DDP model (no ``*_metadata.pkl``), though that state dict still carries the constructor arguments in its
``_metadata`` entry. These helpers read them back, so such checkpoints load without retyping the arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .models import BOONFNO, BOONTFNO
from .serialization import load_checkpoint_file

__all__ = ["unwrap_ddp", "save_ddp_checkpoint", "load_ddp_checkpoint"]

_UNSET = object()


def unwrap_ddp(model):
    """The model inside (possibly nested) ``DistributedDataParallel`` / ``DataParallel`` wrappers.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    while isinstance(model, (DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    return model


def save_ddp_checkpoint(model, save_folder, save_name, group=None):
    """Save a (DDP-wrapped) model with neuralop's ``save_checkpoint`` from the group's first rank (collective).

    Unlike neuralop's ``save_training_state`` under DDP, this writes the metadata file too, so
    ``BOONFNO.from_checkpoint(save_folder, save_name)`` loads the result directly. The other ranks wait at a
    barrier until the files exist.

    Parameters
    ----------
    model : torch.nn.Module
        A neuralop model (e.g. :class:`~boon_ext.BOONFNO`), DDP-wrapped or not.
    save_folder : str or Path
    save_name : str
    group : ProcessGroup, optional
        Default: the whole world. Without an initialized process group the model is simply saved.
    """
    inner = unwrap_ddp(model)
    if not hasattr(inner, "save_checkpoint"):
        raise TypeError(f"model must be a neuralop BaseModel (with save_checkpoint), got {type(inner).__name__}")
    distributed = dist.is_available() and dist.is_initialized()
    if not distributed or dist.get_rank(group) == 0:
        Path(save_folder).mkdir(parents=True, exist_ok=True)
        inner.save_checkpoint(save_folder, save_name)
    if distributed:
        dist.barrier(group=group)


def load_ddp_checkpoint(save_folder, save_name, boundary=_UNSET, *, map_location=None,
                        model_kwargs: Optional[dict] = None, trust_pickle: bool = False, **kwargs):
    """Load a BOON (or plain FNO/TFNO) checkpoint, also one written under DDP without a metadata file.

    Parameters
    ----------
    save_folder, save_name : str
        As given to neuralop's ``save_checkpoint`` / ``save_training_state`` (the file
        ``{save_name}_state_dict.pt``).
    boundary : optional
        Conditions to impose; default: those saved with a BOON checkpoint (required for a plain FNO/TFNO one).
    map_location : optional
        As in ``torch.load``.
    model_kwargs : dict, optional
        Constructor arguments. Default: the metadata file if present, else the ``_metadata`` entry that
        neuralop's ``BaseModel.state_dict`` embeds in the state dict.
    trust_pickle : bool, default False
        Files are read with torch's weights-only unpickler and an allow-list (see
        :func:`~boon_ext.load_checkpoint_file`). ``True`` uses full pickle, **which executes any code the files
        contain**: only for files you created yourself.
    **kwargs
        ``kernel_correction``, ``time_dim``, ``lift_width``: passed to ``from_checkpoint``.

    Returns
    -------
    BOONFNO or BOONTFNO
        ``BOONTFNO`` when the checkpoint is a (BOON-)TFNO.

    Raises
    ------
    UnsafeCheckpointError
        A file references a global outside the allow-list (a ``ValueError``).
    """
    folder = Path(save_folder)
    state_path = folder / f"{save_name}_state_dict.pt"
    if not state_path.exists():
        raise FileNotFoundError(f"no state dict at {state_path}")
    meta_path = folder / f"{save_name}_metadata.pkl"
    if model_kwargs is None:
        if meta_path.exists():
            model_kwargs = dict(load_checkpoint_file(meta_path, map_location, trust_pickle=trust_pickle))
        else:
            state = load_checkpoint_file(state_path, map_location, trust_pickle=trust_pickle)
            if not isinstance(state, dict) or not isinstance(state.get("_metadata"), dict):
                raise ValueError(
                    f"{state_path.name} has neither a metadata file nor an embedded '_metadata' entry: pass the "
                    "constructor arguments as model_kwargs"
                )
            model_kwargs = dict(state["_metadata"])
    elif not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict of constructor arguments, got {type(model_kwargs).__name__}")
    name = str(model_kwargs.get("_name", "")).lower()
    cls = BOONTFNO if name in ("tfno", "boon_tfno", "boontfno") else BOONFNO
    if boundary is not _UNSET:
        kwargs["boundary"] = boundary
    return cls.from_checkpoint(folder, save_name, map_location=map_location, model_kwargs=model_kwargs,
                               trust_pickle=trust_pickle, **kwargs)
