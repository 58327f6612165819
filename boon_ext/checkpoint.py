"""Checkpoints of BOON models: reading files without running code from them, loading, and saving under DDP.

A pickle can call any importable function while it is read, so ``torch.load(..., weights_only=False)`` on a
file from elsewhere runs whatever the file says. neuralop's checkpoints need a little more than tensors: the
constructor arguments it stores (in ``{name}_metadata.pkl`` and in the state dict's ``_metadata`` entry) hold
the activation function and the ``SpectralConv`` class by reference. :func:`load_checkpoint_file` reads files
with torch's weights-only unpickler and allows exactly those references (:data:`CHECKPOINT_GLOBALS`); any other
global is refused before it is called.

DDP needs nothing BOON-specific to train (each rank computes the boundary correction from its own, identical,
copy of the weights); it changes checkpointing: neuralop's ``save_training_state`` writes only
``model.module.state_dict()`` for a DDP model (no ``*_metadata.pkl``), though that state dict still carries the
constructor arguments in its ``_metadata`` entry. :func:`load_ddp_checkpoint` reads them from there, so such
checkpoints load without retyping the arguments. Every loader here reads each file at most once.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .finetune import warn_untrained_settings
from .models import _BOON_KEYS, _META_KEYS, _TFNO_DEFAULTS, _UNSET, BOONFNO, BOONTFNO

__all__ = ["CHECKPOINT_GLOBALS", "UnsafeCheckpointError", "load_checkpoint_file", "load_checkpoint",
           "unwrap_ddp", "save_ddp_checkpoint", "load_ddp_checkpoint"]


# ------------------------------------------------------------------ trusted reading
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


# ------------------------------------------------------------------ loading models
def _read_metadata(state_path: Path, meta_path: Path, model_kwargs, embedded: bool, read):
    """The constructor arguments, and the state dict when it had to be read for them (else None).

    Sources in order: ``model_kwargs``, the metadata file, and (only if ``embedded``) the state dict's
    ``_metadata`` entry; in the last case the state dict read here is returned so that it is not read twice.
    """
    if model_kwargs is not None:
        if not isinstance(model_kwargs, Mapping):
            raise TypeError(
                f"model_kwargs must be a dict of constructor arguments, got {type(model_kwargs).__name__}"
            )
        return dict(model_kwargs), None
    if meta_path.exists():
        return dict(read(meta_path)), None
    if not embedded:
        raise FileNotFoundError(
            f"no metadata at {meta_path} (checkpoints saved under DDP have none): pass the constructor "
            "arguments as model_kwargs"
        )
    state = read(state_path)
    if not isinstance(state, dict) or not isinstance(state.get("_metadata"), dict):
        raise ValueError(
            f"{state_path.name} has neither a metadata file nor an embedded '_metadata' entry: pass the "
            "constructor arguments as model_kwargs"
        )
    return dict(state["_metadata"]), state


def load_checkpoint(save_folder, save_name, boundary=_UNSET, *, cls=None, map_location=None,
                    kernel_correction=_UNSET, time_dim=_UNSET, model_kwargs: Optional[dict] = None,
                    lift_width=_UNSET, trust_pickle: bool = False, embedded_metadata: bool = False,
                    _stacklevel: int = 3):
    """Load a checkpoint written by neuralop's ``save_checkpoint`` as a BOON model, reading each file once.

    The arguments are those of :meth:`BOONFNO.from_checkpoint <boon_ext.BOONFNO.from_checkpoint>`, plus:

    Parameters
    ----------
    cls : type, optional
        ``BOONFNO``, ``BOONTFNO`` or a subclass. Default: ``BOONTFNO`` when the metadata names a (BOON-)TFNO,
        else ``BOONFNO``.
    embedded_metadata : bool, default False
        Without ``model_kwargs`` and without a metadata file, read the constructor arguments from the state
        dict's ``_metadata`` entry (what neuralop's ``save_training_state`` writes under DDP) instead of
        raising ``FileNotFoundError``.
    _stacklevel : int, default 3
        Where a :class:`~boon_ext.BoundaryAccuracyWarning` points, as in ``warnings.warn``: the caller of this
        function by default; the public wrappers around it pass 4, so that it points at their caller.

    Returns
    -------
    BOONFNO or BOONTFNO

    Raises
    ------
    FileNotFoundError
        No state dict, or no constructor arguments to be found.
    TypeError
        ``model_kwargs`` is not a mapping.
    UnsafeCheckpointError
        A file references a global outside the allow-list (a ``ValueError``).
    ValueError
        A plain checkpoint and no ``boundary``; no constructor arguments in the state dict.
    """
    folder = Path(save_folder)
    meta_path = folder / f"{save_name}_metadata.pkl"
    state_path = folder / f"{save_name}_state_dict.pt"
    if not state_path.exists():
        raise FileNotFoundError(f"no state dict at {state_path}")

    def read(path):
        return load_checkpoint_file(path, map_location, trust_pickle=trust_pickle)

    meta, state = _read_metadata(state_path, meta_path, model_kwargs, embedded_metadata, read)
    name = str(meta.get("_name", "")).lower()
    if cls is None:
        cls = BOONTFNO if name in ("tfno", "boon_tfno", "boontfno") else BOONFNO
    args = tuple(meta.pop("args", ()))
    for k in _META_KEYS:
        meta.pop(k, None)
    saved = {k: meta.pop(k) for k in _BOON_KEYS if k in meta}
    if name == "tfno":
        for k, v in _TFNO_DEFAULTS.items():
            meta.setdefault(k, v)
    if boundary is _UNSET:
        if "boundary" not in saved:
            raise ValueError(
                f"{state_path.name} is a plain {name.upper() or 'FNO'} checkpoint: pass boundary=... "
                "(or boundary=None for none)"
            )
        boundary = saved["boundary"]
    if kernel_correction is _UNSET:
        kernel_correction = saved.get("kernel_correction", False)
    kernel_correction = bool(kernel_correction)
    if lift_width is _UNSET:
        lift_width = saved.get("lift_width")  # None for plain checkpoints and those saved before lift_width
    if time_dim is _UNSET:
        time_dim = saved.get("time_dim")
    model = cls(*args, boundary=boundary, kernel_correction=kernel_correction, time_dim=time_dim,
                lift_width=lift_width, hidden_values=bool(saved.get("hidden_values", False)), **meta)
    # Weights count as trained with a per-layer setting only if a BOON model saved them with it on.
    warn_untrained_settings(model, saved, f"the checkpoint {state_path.name}", stacklevel=_stacklevel)
    if state is None:  # read after construction: bad arguments are reported before a large file is read
        state = read(state_path)
    state.pop("_metadata", None)
    if any(v.dtype == torch.float64 for v in state.values() if torch.is_tensor(v)):
        model.double()
    model.load_state_dict(state, strict=True)
    return model


# ------------------------------------------------------------------ DDP
def unwrap_ddp(model):
    """The model inside (possibly nested) ``DistributedDataParallel`` / ``DataParallel`` wrappers.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    TypeError
        ``model`` is not a ``torch.nn.Module``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    while isinstance(model, (DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    return model


def save_ddp_checkpoint(model, save_folder, save_name, group=None) -> None:
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

    Raises
    ------
    TypeError
        ``model`` is not a neuralop model.
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
                        kernel_correction=_UNSET, time_dim=_UNSET, model_kwargs: Optional[dict] = None,
                        lift_width=_UNSET, trust_pickle: bool = False):
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
    kernel_correction, time_dim, lift_width : optional
        Override the saved values, as in :meth:`BOONFNO.from_checkpoint <boon_ext.BOONFNO.from_checkpoint>`.
    model_kwargs : dict, optional
        Constructor arguments. Default: the metadata file if present, else the ``_metadata`` entry that
        neuralop's ``BaseModel.state_dict`` embeds in the state dict (the state dict is then read only once).
    trust_pickle : bool, default False
        Files are read with torch's weights-only unpickler and an allow-list (see
        :func:`~boon_ext.load_checkpoint_file`). ``True`` uses full pickle, **which executes any code the files
        contain**: only for files you created yourself.

    Returns
    -------
    BOONFNO or BOONTFNO
        ``BOONTFNO`` when the checkpoint is a (BOON-)TFNO.

    Raises
    ------
    FileNotFoundError
        No state dict.
    TypeError
        ``model_kwargs`` is not a mapping.
    UnsafeCheckpointError
        A file references a global outside the allow-list (a ``ValueError``).
    ValueError
        No constructor arguments anywhere, or a plain checkpoint and no ``boundary``.
    """
    return load_checkpoint(save_folder, save_name, boundary, map_location=map_location,
                           kernel_correction=kernel_correction, time_dim=time_dim, model_kwargs=model_kwargs,
                           lift_width=lift_width, trust_pickle=trust_pickle, embedded_metadata=True, _stacklevel=4)
