"""Checkpoints of BOON models: reading files without running code from them, loading, and saving under DDP.

A pickle can call any importable function while it is read, so ``torch.load(..., weights_only=False)`` on a
file from elsewhere runs whatever the file says; torch's weights-only unpickler still calls the globals it allows,
which lets a small file allocate without bound. neuralop's checkpoints need a little more than tensors: the
constructor arguments it stores (in ``{name}_metadata.pkl`` and in the state dict's ``_metadata`` entry) hold
the activation function and the ``SpectralConv`` class by reference. :func:`load_checkpoint_file` reads files
with a restricted interpreter (:mod:`boon_ext.torch_file`) that lets a file reference exactly those globals
(:data:`CHECKPOINT_GLOBALS`) and call none of them; any other global is refused before anything is built.
:func:`load_checkpoint` then checks the metadata's types and sizes, builds the model on the ``meta`` device and
compares it with the state dict, so that neither file can make it allocate more than the weights it holds.

DDP needs nothing BOON-specific to train (each rank computes the boundary correction from its own, identical,
copy of the weights); it changes checkpointing: neuralop's ``save_training_state`` writes only
``model.module.state_dict()`` for a DDP model (no ``*_metadata.pkl``), though that state dict still carries the
constructor arguments in its ``_metadata`` entry. :func:`load_ddp_checkpoint` reads them from there, so such
checkpoints load without retyping the arguments. Every loader here reads each file at most once.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .torch_file import UnsafeCheckpointError, read_torch_file, reference_names
from .metadata import _BOON_KEYS, _META_KEYS, _TFNO_DEFAULTS, _UNSET, checkpoint_class
from .untrained import warn_untrained_settings

__all__ = ["CHECKPOINT_GLOBALS", "EarlyCheckpointWarning", "UnsafeCheckpointError", "load_checkpoint_file",
           "load_state_dict_file", "warn_early_checkpoint",
           "load_checkpoint",
           "check_metadata_tree", "check_state_fits", "unwrap_ddp", "save_ddp_checkpoint", "load_ddp_checkpoint"]


# ------------------------------------------------------------------ trusted reading
def _checkpoint_globals() -> Tuple[object, ...]:
    from neuralop.layers.spectral_convolution import SpectralConv

    # The conv module and the point-wise activations that FNO/TFNO constructors take, which neuralop's metadata
    # holds by reference. A file may reference them, never call them (see torch_file). Activations that pickle
    # through ``getattr`` (``torch.tanh``) are not included: allowing ``getattr`` would reach arbitrary attributes.
    acts = (F.gelu, F.relu, F.silu, F.elu, F.leaky_relu, F.softplus, F.tanh, F.sigmoid, F.mish, F.selu, F.celu)
    return (SpectralConv,) + acts


CHECKPOINT_GLOBALS = _checkpoint_globals()
_REFERENCES = reference_names(CHECKPOINT_GLOBALS)
_REFERENCE_IDS = {id(v) for v in _REFERENCES.values()}


def load_checkpoint_file(path, map_location=None, *, trust_pickle: bool = False):
    """Read a neuralop checkpoint file (state dict or metadata) without executing code from it.

    The file is read by a restricted pickle interpreter (``boon_ext.torch_file``): plain values, tensors that fit
    inside the file's own storage records, and references to :data:`CHECKPOINT_GLOBALS`, which the file can
    name but never call. Nothing the file says can make the reader allocate more than the file holds.

    Parameters
    ----------
    path : str or Path
        A ``*_state_dict.pt`` or ``*_metadata.pkl`` file written by neuralop's ``save_checkpoint`` (any file
        written by ``torch.save`` that holds only such content, e.g. a training state).
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
    FileNotFoundError
        No file at ``path``.
    UnsafeCheckpointError
        The file references or calls a global that is not allowed (its name is in the message), is not in
        ``torch.save``'s zip format (a text file, a legacy-format file, an empty or truncated file), is damaged,
        or is not a regular file (a directory, a device). The message names the file.
    """
    path = Path(path)
    if trust_pickle:
        if not isinstance(trust_pickle, bool):
            raise TypeError(f"trust_pickle must be a bool, got {trust_pickle!r}")
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        return read_torch_file(path, map_location, _REFERENCES)
    except UnsafeCheckpointError as e:
        if "GLOBAL" in str(e) or " calls " in str(e):
            raise UnsafeCheckpointError(
                f"{e}. Checkpoints may reference only neuralop's SpectralConv and the activations of "
                "torch.nn.functional, and call nothing but torch's tensor rebuilding. If you created this file "
                "yourself, pass trust_pickle=True (this executes any code the file contains), or pass the "
                "constructor arguments as model_kwargs."
            ) from None
        raise


def load_state_dict_file(path, map_location=None, *, trust_pickle: bool = False) -> dict:
    """Read a state dict saved with ``torch.save(model.state_dict(), path)``, without executing code from it.

    ``torch.load(path)`` (weights-only) refuses the state dict of a neuralop ``BaseModel`` (FNO, TFNO, UQNO):
    its ``_metadata`` entry holds the activation by reference (``torch._C._nn.gelu``). This reads it with
    :func:`load_checkpoint_file` and checks it is a state dict: string keys, dense tensors, and a ``_metadata``
    entry of plain values.

    Parameters
    ----------
    path : str or Path
    map_location : optional
        As in ``torch.load``.
    trust_pickle : bool, default False
        As in :func:`load_checkpoint_file` (``True`` runs any code in the file).

    Returns
    -------
    dict
        Ready for ``model.load_state_dict`` (neuralop models read and drop ``_metadata``).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    UnsafeCheckpointError
        The file is refused, or does not hold a state dict; the message names the file and the entry.
    """
    path = Path(path)
    return _as_state_dict(load_checkpoint_file(path, map_location, trust_pickle=trust_pickle), path.name,
                          trusted=trust_pickle is True)


class EarlyCheckpointWarning(UserWarning):
    """A checkpoint's training manifest says its weights are those of the first epoch."""


def warn_early_checkpoint(save_folder, save_name: str, stacklevel: int = 3) -> None:
    """Warn when neuralop's training manifest beside a checkpoint says it was saved at epoch 0.

    neuralop's ``Trainer`` saves only when ``epoch % save_every == 0``, counting from 0: 8 epochs with
    ``save_every=8`` leave the weights after the first epoch, and a model wrapped from them looks broken. The
    manifest (``manifest.pt``, read by the restricted reader) records the epoch but not the run's length, so only
    epoch 0 can be told; nothing is said without a manifest, or when it names another checkpoint.

    Parameters
    ----------
    save_folder : str or Path
    save_name : str
    stacklevel : int, default 3
        As in ``warnings.warn`` called here: the default points at the caller of the loader that calls this.

    Warns
    -----
    EarlyCheckpointWarning
    """
    path = Path(save_folder) / "manifest.pt"
    if not path.is_file():
        return
    try:
        manifest = load_checkpoint_file(path)
    except (UnsafeCheckpointError, OSError):
        return  # the manifest is not loaded for anything else: a refused one only means nothing can be said
    if not isinstance(manifest, dict) or manifest.get("model") != f"{save_name}_state_dict.pt":
        return
    if type(manifest.get("epoch")) is int and manifest["epoch"] == 0:
        warnings.warn(
            f"{path} says the checkpoint {save_name!r} was saved at epoch 0: these are the weights after the first "
            "epoch. neuralop's Trainer saves only when epoch % save_every == 0 (epochs count from 0), so a run of "
            "n epochs with save_every=n saves only epoch 0; use a save_every that divides n - 1, or call "
            "model.save_checkpoint(folder, name) after training",
            EarlyCheckpointWarning, stacklevel=stacklevel)


# ------------------------------------------------------------------ checking what a file holds
# Bounds on a metadata tree: neuralop's holds about 40 values, none nested more than 3 deep.
_MAX_META_NODES = 10_000
_MAX_META_DEPTH = 16
_MAX_META_STR = 10_000


def _field(path) -> str:
    return "".join(f"[{k!r}]" for k in path) if path else "(top level)"


def check_metadata_tree(value, source: str, root: str = "metadata") -> None:
    """Refuse anything but plain values and :data:`CHECKPOINT_GLOBALS` references in a metadata tree.

    Plain values: ``None``, bools, ints, floats, strings, and tuples, lists and dicts of them (dict keys: strings).
    The tree is walked with its shared parts counted each time they are reached, so a file that repeats one list
    many times is refused as the size it would expand to; a value that contains itself is refused as recursive.

    Parameters
    ----------
    value : object
        What the file holds (or one part of it).
    source : str
        The file's name, for messages.
    root : str
        What ``value`` is, for messages (e.g. ``"metadata"`` or ``"the state dict's _metadata"``).

    Raises
    ------
    UnsafeCheckpointError
        With the file, the field and what was expected.
    """
    count = 0
    active = set()

    def walk(v, path):
        nonlocal count
        count += 1
        if count > _MAX_META_NODES:
            raise UnsafeCheckpointError(f"{source}: {root} holds more than {_MAX_META_NODES} values (counting "
                                        "repeated parts each time), more than any model's constructor arguments")
        if len(path) > _MAX_META_DEPTH:
            raise UnsafeCheckpointError(f"{source}: {root} is nested more than {_MAX_META_DEPTH} levels deep at "
                                        f"{_field(path[:4])}...")
        if v is None or type(v) in (bool, int, float) or id(v) in _REFERENCE_IDS:
            return
        if type(v) is str:
            if len(v) > _MAX_META_STR:
                raise UnsafeCheckpointError(f"{source}: {root} field {_field(path)} is a string of {len(v)} "
                                            f"characters, more than {_MAX_META_STR}")
            return
        if isinstance(v, (dict, list, tuple)) and type(v) in (dict, OrderedDict, list, tuple):
            if id(v) in active:
                raise UnsafeCheckpointError(f"{source}: {root} field {_field(path)} contains itself (a recursive "
                                            "value)")
            active.add(id(v))
            if isinstance(v, dict):
                for k, item in v.items():
                    if type(k) is not str:
                        raise UnsafeCheckpointError(f"{source}: {root} field {_field(path)} must have string keys, "
                                                    f"got the key {k!r} ({type(k).__name__})"[:300])
                    walk(item, path + (k,))
            else:
                for i, item in enumerate(v):
                    walk(item, path + (i,))
            active.discard(id(v))
            return
        raise UnsafeCheckpointError(f"{source}: {root} field {_field(path)} must be a plain value (None, bool, int, "
                                    f"float, str, list, tuple or dict), got a {type(v).__name__}")

    walk(value, ())


def _as_metadata(content, source: str, root: str = "metadata", trusted: bool = False) -> dict:
    """``content`` checked as a metadata dict (see ``check_metadata_tree``, skipped for a ``trusted`` file,
    which may hold any object) and the BOON fields' types."""
    if not isinstance(content, dict):
        raise UnsafeCheckpointError(f"{source}: {root} must be a dict of constructor arguments, got a "
                                    f"{type(content).__name__}")
    if not trusted:
        check_metadata_tree(content, source, root)
    checks = {
        "args": (lambda v: type(v) in (list, tuple), "a list or tuple of positional arguments"),
        "_name": (lambda v: type(v) is str, "a str"),
        "kernel_correction": (lambda v: type(v) is bool, "a bool"),
        "hidden_values": (lambda v: type(v) is bool, "a bool"),
        "lift_width": (lambda v: v is None or type(v) is int, "an int or None"),
        "time_dim": (lambda v: v is None or type(v) is int, "an int or None"),
        "boundary": (lambda v: v is None or type(v) in (list, tuple, dict, OrderedDict), "a list, a dict or None"),
    }
    for key, (ok, expected) in checks.items():
        if key in content and not ok(content[key]):
            raise UnsafeCheckpointError(f"{source}: {root} field {key!r} must be {expected}, got "
                                        f"{content[key]!r}"[:300])
    return dict(content)


def _as_state_dict(content, source: str, trusted: bool = False) -> dict:
    """``content`` checked as a state dict: string keys, dense tensors, and neuralop's ``_metadata`` entry checked
    as metadata (see ``_as_metadata``)."""
    if not isinstance(content, Mapping):
        raise UnsafeCheckpointError(f"{source} holds a {type(content).__name__}, expected a state dict (a dict of "
                                    "tensors)")
    for k, v in content.items():
        if type(k) is not str:
            raise UnsafeCheckpointError(f"{source}: state dict keys must be strings, got the key {k!r} "
                                        f"({type(k).__name__})"[:300])
        if k == "_metadata":
            _as_metadata(v, source, "the state dict's '_metadata' entry", trusted)
            continue
        if not torch.is_tensor(v):
            raise UnsafeCheckpointError(f"{source}: state dict entry {k!r} must be a tensor, got a "
                                        f"{type(v).__name__}")
        if v.layout != torch.strided:
            raise UnsafeCheckpointError(f"{source}: state dict entry {k!r} must be a dense tensor, got layout "
                                        f"{v.layout}")
    return dict(content)


def _size_bound(state: dict) -> int:
    """The largest int a constructor argument may take: a size no tensor of ``state`` could hold is refused."""
    dims = [d for v in state.values() if torch.is_tensor(v) for d in v.shape]
    return max(4096, 2 * max(dims, default=0), len(state))


def _check_sizes(meta: dict, state: dict, source: str) -> None:
    """Refuse ints in the metadata (outside ``boundary``) beyond ``_size_bound``, before anything is built."""
    bound = _size_bound(state)

    def walk(v, path):
        if type(v) is int and abs(v) > bound:
            raise UnsafeCheckpointError(
                f"{source}: metadata field {_field(path)} is {v}, larger than any size the state dict's tensors "
                f"support (at most {bound})"
            )
        if isinstance(v, dict):
            for k, item in v.items():
                walk(item, path + (k,))
        elif isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                walk(item, path + (i,))

    for key, value in meta.items():
        if key != "boundary":  # values and domains in the conditions are not sizes
            walk(value, (key,))
    # Building costs time per layer even on the meta device: every layer holds weights, so there are fewer layers
    # than state dict entries.
    layers = meta.get("n_layers")
    if type(layers) is int and layers > len(state):
        raise UnsafeCheckpointError(f"{source}: metadata field 'n_layers' is {layers}, more than the {len(state)} "
                                    "entries of the state dict (each layer holds weights)")


def check_state_fits(model, state: dict, source: str, described_by: Optional[str] = None) -> None:
    """Refuse a state dict whose keys, shapes or dtypes differ from ``model``'s, naming the first entry that does.

    ``model`` may live on the ``meta`` device (nothing is allocated). Real weights must be real and complex ones
    complex (complex weights stay complex64 under ``model.double()``), real floating weights all float32 or all
    float64.

    Parameters
    ----------
    model : torch.nn.Module
    state : dict
        A state dict as read from a file (string keys, tensors, and possibly a ``_metadata`` entry).
    source : str
        The file, for messages.
    described_by : str, optional
        The file the model's constructor arguments come from, for messages (the two files disagree, and either
        may be the wrong one).

    Raises
    ------
    UnsafeCheckpointError
    """
    described = f"the model {described_by} describes" if described_by else f"the model ({type(model).__name__})"
    expected = {k: v for k, v in model.state_dict().items() if k != "_metadata"}
    given = {k: v for k, v in state.items() if k != "_metadata"}
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise UnsafeCheckpointError(
            f"{source} does not hold the weights of {described}: "
            f"missing entries {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected entries "
            f"{extra[:5]}{'...' if len(extra) > 5 else ''}"
        )
    reals = {v.dtype for v in given.values() if v.is_floating_point()}
    for k, want in expected.items():
        got = given[k]
        if tuple(got.shape) != tuple(want.shape):
            raise UnsafeCheckpointError(f"{source}: state dict entry {k!r} has shape {tuple(got.shape)}, "
                                        f"{described} needs {tuple(want.shape)}")
        if want.is_complex():
            ok, expected_dtype = got.dtype in (torch.complex64, torch.complex128), "complex64 or complex128"
        elif want.is_floating_point():
            ok, expected_dtype = got.dtype in (torch.float32, torch.float64), "float32 or float64"
            if ok and len(reals) > 1:
                raise UnsafeCheckpointError(f"{source}: state dict entry {k!r} is {got.dtype} next to "
                                            f"{sorted(map(str, reals - {got.dtype}))[0]} weights: one precision per file")
        else:
            ok, expected_dtype = got.dtype == want.dtype, str(want.dtype)
        if not ok:
            raise UnsafeCheckpointError(f"{source}: state dict entry {k!r} is {got.dtype}, expected {expected_dtype}")


# ------------------------------------------------------------------ loading models
def _read_metadata(state_path: Path, meta_path: Path, model_kwargs, embedded: bool, read, trusted: bool):
    """The constructor arguments, whether they come from a file, and the state dict if it was read for them.

    Sources in order: ``model_kwargs``, the metadata file, and (only if ``embedded``) the state dict's
    ``_metadata`` entry; in the last case the state dict read here is returned so that it is not read twice.
    """
    if model_kwargs is not None:
        if not isinstance(model_kwargs, Mapping):
            raise TypeError(
                f"model_kwargs must be a dict of constructor arguments, got {type(model_kwargs).__name__}"
            )
        return dict(model_kwargs), None, None
    if meta_path.exists():
        return _as_metadata(read(meta_path), meta_path.name, trusted=trusted), meta_path.name, None
    if not embedded:
        raise FileNotFoundError(
            f"no metadata at {meta_path} (checkpoints saved under DDP have none): pass the constructor "
            "arguments as model_kwargs"
        )
    state = _as_state_dict(read(state_path), state_path.name, trusted)  # checks a '_metadata' entry's type
    if not isinstance(state.get("_metadata"), dict):
        raise ValueError(
            f"{state_path.name} has neither a metadata file nor an embedded '_metadata' entry: pass the "
            "constructor arguments as model_kwargs"
        )
    return (_as_metadata(state["_metadata"], state_path.name, "the state dict's '_metadata' entry", trusted),
            state_path.name, state)


def _check_override(value, name: str, expected: str, ok) -> None:
    if not ok(value):
        raise TypeError(f"{name} must be {expected}, got {value!r}")


def _build_on_meta(cls, args, kwargs, source):
    """``cls(*args, **kwargs)`` on the meta device: its shapes, with nothing allocated.

    Warnings are left to the real construction, which follows. When the arguments come from a file (``source``),
    whatever the constructor raises is reported as a refusal naming the file, with the constructor's message;
    arguments the caller gave (``source=None``) keep the constructor's own exception.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.device("meta"):
                return cls(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        if source is None:
            raise
        raise UnsafeCheckpointError(
            f"{source}: the constructor arguments it holds (with any overrides passed) do not build a "
            f"{cls.__name__}: {type(e).__name__}: {str(e)[:500]}"
        ) from e


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
        ``model_kwargs`` is not a mapping; an override of the wrong type.
    UnsafeCheckpointError
        A file is refused (see :func:`load_checkpoint_file`); its metadata holds a value of the wrong type or a
        size beyond what its state dict holds; the state dict's entries, shapes or dtypes differ from the model
        the metadata describes. The model is built on the ``meta`` device and compared with the state dict
        before anything is allocated. The message names the file and the field.
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

    meta, source, state = _read_metadata(state_path, meta_path, model_kwargs, embedded_metadata, read,
                                         trust_pickle is True)
    name = str(meta.get("_name", "")).lower()
    if cls is None:
        cls = checkpoint_class(name)  # BOONTFNO for a (BOON-)TFNO, else BOONFNO
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
    _check_override(kernel_correction, "kernel_correction", "a bool", lambda v: type(v) is bool)
    if lift_width is _UNSET:
        lift_width = saved.get("lift_width")  # None for plain checkpoints and those saved before lift_width
    if time_dim is _UNSET:
        time_dim = saved.get("time_dim")
    kwargs = dict(boundary=boundary, kernel_correction=kernel_correction, time_dim=time_dim, lift_width=lift_width,
                  hidden_values=saved.get("hidden_values", False), **meta)
    if state is None:
        state = _as_state_dict(read(state_path), state_path.name, trust_pickle is True)
    if source is not None:
        _check_sizes(dict(meta, args=args, lift_width=lift_width, time_dim=time_dim), state, source)
        # Sizes come from a file, the weights from another part of it: build on the meta device and compare, so
        # that a small file cannot make the real construction allocate more than its weights hold. (The first
        # meta construction in a process imports torch._dynamo, which torch's meta kernels need: about 1-3 s once.)
        probe = _build_on_meta(cls, args, kwargs, source)
        check_state_fits(probe, state, state_path.name, source)
        held = sum(v.numel() for k, v in state.items() if k != "_metadata")
        own = sum(b.numel() for b in probe.buffers()) + sum(p.numel() for p in probe.parameters())
        if own > held + 2 ** 20:
            raise UnsafeCheckpointError(f"{state_path.name}: the model {source} describes holds {own} values, "
                                        f"the file {held}")
        del probe
    model = cls(*args, **kwargs)
    if source is None:  # the caller's own model_kwargs: their sizes are the caller's choice, checked after building
        check_state_fits(model, state, state_path.name)
    warn_early_checkpoint(folder, save_name, stacklevel=_stacklevel)
    # Weights count as trained with a per-layer setting only if a BOON model saved them with it on.
    warn_untrained_settings(model, saved, f"the checkpoint {state_path.name}", stacklevel=_stacklevel)
    state.pop("_metadata", None)
    if any(v.dtype == torch.float64 for v in state.values()):
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
        A file is refused, or its contents do not fit each other, as in :func:`load_checkpoint` (a
        ``ValueError`` naming the file and the field).
    ValueError
        No constructor arguments anywhere, or a plain checkpoint and no ``boundary``.
    """
    return load_checkpoint(save_folder, save_name, boundary, map_location=map_location,
                           kernel_correction=kernel_correction, time_dim=time_dim, model_kwargs=model_kwargs,
                           lift_width=lift_width, trust_pickle=trust_pickle, embedded_metadata=True, _stacklevel=4)
