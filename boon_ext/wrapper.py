"""Exact boundary conditions on the output of any regular-grid model: neuralop's UNO, TFNO, UQNO, or a user's own.

Output enforcement (step T1 of BOON, the Neumann stencil, periodic averaging) needs nothing from inside a model:
only an output of shape ``(batch, channels, *spatial)`` on a grid whose first and last nodes along each axis are
the domain's faces. :class:`BOONWrapper` runs the wrapped module as it is and makes that output exact, so the
interior predictions are the module's own, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch
from neuralop.models import CODANO, UNO
from neuralop.models.base_model import BaseModel

from _physics_constrained.validation import check_int
from .checkpoint import (UnsafeCheckpointError, _as_metadata, _as_state_dict, _build_on_meta, _check_sizes,
                         check_state_fits, load_checkpoint_file, warn_early_checkpoint)
from .conditions import BoundarySpec
from .enforcement import enforce_boundary
from .lift import check_lift_width, lift_boundary
from .metadata import _META_KEYS, _UNSET
from .precision import PrecisionMixin
from .sample_keys import gather_boundary_values

__all__ = ["BOONWrapper"]

# neuralop's regular-grid models that are plain modules (not registered with get_model), by config name.
_PLAIN_MODULES = {"uno": UNO, "codano": CODANO}

# The metadata entry, next to the wrapped model's constructor arguments, that holds the wrapper's own settings.
_WRAPPER_KEY = "_boon_wrapper"


def _inner_dims(model) -> Optional[int]:
    """The wrapped model's number of spatial dims where it says (``n_dim``; a UQNO's base model's)."""
    for m in (model, getattr(model, "base_model", None)):
        n = getattr(m, "n_dim", None)
        if isinstance(n, int) and not isinstance(n, bool):
            return n
    return None


def _inner_channels(model) -> Optional[int]:
    for m in (model, getattr(model, "base_model", None)):
        n = getattr(m, "out_channels", None)
        if isinstance(n, int) and not isinstance(n, bool):
            return n
    return None


def _rename_for_inner(module, state_dict, prefix, *_):
    """Load-state-dict pre-hook: the wrapper's entries carry the inner model's own keys; torch's recursive loader
    (the wrapper inside a bigger model) looks for them under ``model.``."""
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + "model.")]:
        state_dict[prefix + "model." + key[len(prefix):]] = state_dict.pop(key)


class BOONWrapper(PrecisionMixin, BaseModel, name="boon_wrapper"):
    """Any model whose output is a field on a regular grid, with its boundary conditions made exact.

    The wrapped module runs unchanged; its output's constrained face nodes are then overwritten so that every
    condition holds exactly (:func:`~boon_ext.enforce_boundary`), or the residual is spread over ``lift_width``
    nodes (:func:`~boon_ext.lift_boundary`). Every node off the constrained faces is the module's own output.

    Parameters
    ----------
    model : torch.nn.Module, optional
        The model to wrap: neuralop's ``FNO``/``TFNO`` (any ``domain_padding``, ``norm``, factorization), ``UNO``,
        ``UQNO`` (with ``output_index=0``, its solution), or any module whose output is
        ``(batch, channels, *spatial)``. Kept as the submodule ``model``.
    boundary : condition, mapping, list of those, or None
        Boundary conditions, as for :class:`~boon_ext.BOONFNO`. ``None``: the output is the model's.
    n_dim : int, optional
        Number of spatial dims of the output. Default: the model's ``n_dim`` attribute (neuralop models have one).
    time_dim : int, optional
        Time axis of a space-time output, as for :class:`~boon_ext.BOONFNO`.
    output_index : int, optional
        For a model that returns a tuple (``UQNO`` returns ``(solution, quantile)``): the element to make exact;
        the others are returned unchanged.
    lift_width : int, optional
        As for :class:`~boon_ext.BOONFNO`: ``None`` overwrites the face nodes; an int spreads the residual.
    inner_arch : str, optional
        Instead of ``model``: the name of a neuralop model (``"fno"``, ``"uno"``, ...) to build from
        ``**inner_kwargs``, so that configs can name the wrapper (``model_arch: boon_wrapper``,
        ``inner_arch: uno``, and the inner model's arguments beside them).

    Notes
    -----
    The state dict is the wrapped model's, with its own keys (no ``model.`` prefix), and loads into the plain
    model as it is, as the plain model's loads into the wrapper; the conditions are settings, saved by
    :meth:`save_checkpoint` in the metadata file. Keys are renamed also when the wrapper sits inside a bigger
    module, so nesting loads and saves consistently.

    Exactness holds in the output's dtype; an output in half precision (under ``torch.autocast``) is made exact in
    float32.
    """

    def __init__(self, model=None, boundary=None, *, n_dim: Optional[int] = None, time_dim: Optional[int] = None,
                 output_index: Optional[int] = None, lift_width: Optional[int] = None,
                 inner_arch: Optional[str] = None, **inner_kwargs):
        super().__init__()
        if model is not None and (inner_arch is not None or inner_kwargs):
            raise TypeError("model and inner_arch (with the inner model's arguments) must not both be given, got both")
        if model is None:
            model = self._build_inner(inner_arch, inner_kwargs)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(model, BOONWrapper):
            raise TypeError("model must not be a BOONWrapper already: set its boundary instead")
        self.model = model
        if n_dim is None:
            n_dim = _inner_dims(model)
            if n_dim is None:
                raise TypeError(f"n_dim must be given for a {type(model).__name__}, which has no n_dim attribute, "
                                "got None")
        self.n_dim = check_int(n_dim, "n_dim", minimum=1)
        self.output_index = None if output_index is None else check_int(output_index, "output_index", minimum=0)
        self.lift_width = None if lift_width is None else check_lift_width(lift_width)
        self._time_dim = time_dim
        self.boundary_spec = boundary
        self._register_load_state_dict_pre_hook(_rename_for_inner, with_module=True)

    @staticmethod
    def _build_inner(inner_arch, inner_kwargs):
        if inner_arch is None:
            raise TypeError("model must be a torch.nn.Module, or inner_arch the name of a neuralop model, got neither")
        if not isinstance(inner_arch, str):
            raise TypeError(f"inner_arch must be a str, got {type(inner_arch).__name__}")
        models = {**_PLAIN_MODULES, **BaseModel._models}
        cls = models.get(inner_arch.lower())
        if cls is None or issubclass(cls, BOONWrapper):
            known = sorted(k for k, v in models.items() if not issubclass(v, BOONWrapper))
            raise ValueError(f"inner_arch must be one of {known}, got {inner_arch!r}")
        inner_kwargs.pop("_config_name", None)  # added by zencfg's to_dict()
        return cls(**inner_kwargs)

    # -- settings ------------------------------------------------------------------------------------
    @property
    def boundary_spec(self) -> BoundarySpec:
        """The conditions resolved against the output; settable with conditions or a ``BoundarySpec``."""
        return self._boundary_spec

    @boundary_spec.setter
    def boundary_spec(self, value):
        if isinstance(value, BoundarySpec):  # its dims and time axis must be this model's, not dropped
            value = value.conditions_for(self.n_dim, self._time_dim)
        self._boundary_spec = BoundarySpec(value, self.n_dim, time_dim=self._time_dim,
                                           out_channels=_inner_channels(self.model))

    @property
    def boundary(self):
        """The boundary conditions, as condition objects; settable (checked as in the constructor)."""
        return list(self._boundary_spec.conditions)

    @boundary.setter
    def boundary(self, value):
        self.boundary_spec = value

    @property
    def time_dim(self) -> Optional[int]:
        """The time axis of a space-time output, or None."""
        return self._time_dim

    # -- forward -------------------------------------------------------------------------------------
    def forward(self, *args, boundary_values=None, **kwargs):
        """Run the wrapped model and make its output exact.

        Parameters
        ----------
        *args, **kwargs
            The wrapped model's arguments (``x`` for neuralop's models). A sample's target ``y`` is dropped
            (neuralop's ``Trainer`` passes the whole sample), and entries ``"boundary_values.<key>"`` are read as
            boundary values (they reach the model through the ``Trainer`` without a data processor).
        boundary_values : mapping str -> torch.Tensor, optional
            Values of the faces without a constant, as for :class:`~boon_ext.BOONFNO`.

        Returns
        -------
        torch.Tensor or tuple
            The output with every condition exact (with ``output_index``: the tuple, that element made exact).

        Raises
        ------
        TypeError
            The output (or its ``output_index`` element) is not a tensor.
        ValueError
            A value missing or misshapen, or an output without the spatial axes the conditions need.
        """
        kwargs.pop("y", None)
        boundary_values = gather_boundary_values(boundary_values, kwargs)
        spec = self._boundary_spec.for_values(boundary_values)
        if not spec and boundary_values:
            raise ValueError("boundary_values were given but the wrapper has no boundary conditions (boundary=None)")
        spec.check_values(boundary_values, allow_missing=True)
        out = self.model(*args, **kwargs)
        if not spec:
            return out
        if self.output_index is None:
            u = out
        else:
            if not isinstance(out, (tuple, list)) or self.output_index >= len(out):
                raise TypeError(f"output_index={self.output_index} needs a model that returns a tuple of at least "
                                f"{self.output_index + 1} outputs, got a {type(out).__name__}")
            u = out[self.output_index]
        if not torch.is_tensor(u):
            raise TypeError(f"the wrapped model's output must be a tensor (batch, channels, *spatial), got a "
                            f"{type(u).__name__}; for a model that returns a tuple (UQNO), pass output_index")
        device_type = u.device.type
        full = (torch.autocast(device_type, enabled=False) if torch.is_autocast_enabled(device_type)
                else nullcontext())
        if u.dtype in (torch.float16, torch.bfloat16):
            u = u.float()  # round-off in half precision is larger than most conditions' tolerance
        with full:
            if self.lift_width is not None:
                u = lift_boundary(u, spec, boundary_values, self.lift_width)
            else:
                u = enforce_boundary(u, spec, boundary_values)
        if self.output_index is None:
            return u
        return type(out)(u if i == self.output_index else o for i, o in enumerate(out))

    # -- state dict: the inner model's own keys ---------------------------------------------------------
    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """The wrapped model's state dict, with its own keys (and neuralop's ``_metadata`` entry, if it has one).

        Returns
        -------
        dict
        """
        if args:
            raise TypeError("state_dict takes keyword arguments only (destination, prefix, keep_vars)")
        had = destination is not None and "_metadata" in destination
        state = self.model.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        if prefix and not had:
            # Nested in a bigger module: neuralop would put the inner model's record, unprefixed, among the
            # outer module's entries, where the outer loader refuses it as unexpected.
            state.pop("_metadata", None)
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a state dict of the wrapped model (its own keys, as a plain model saved it).

        Returns
        -------
        NamedTuple
            ``missing_keys`` and ``unexpected_keys``, as in ``torch.nn.Module.load_state_dict``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        state_dict = dict(state_dict)
        if not isinstance(self.model, BaseModel):
            state_dict.pop("_metadata", None)
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)

    # -- checkpoints ---------------------------------------------------------------------------------
    def _settings(self) -> dict:
        return dict(boundary=self._boundary_spec.to_config() if self._boundary_spec else None, n_dim=self.n_dim,
                    time_dim=self._time_dim, output_index=self.output_index, lift_width=self.lift_width)

    def save_checkpoint(self, save_folder, save_name) -> None:
        """Save as neuralop's ``save_checkpoint`` does: the wrapped model's files, with the conditions added.

        The state dict file is the wrapped model's own; the metadata file holds its constructor arguments and
        the wrapper's settings under ``"_boon_wrapper"`` (:meth:`from_checkpoint` reads them back).

        Raises
        ------
        TypeError
            The wrapped model is not a neuralop model (it has no recorded constructor arguments).
        """
        if not isinstance(self.model, BaseModel):
            raise TypeError(f"save_checkpoint needs a neuralop model inside (its constructor arguments are saved), "
                            f"got a {type(self.model).__name__}: save self.state_dict() with torch.save instead")
        folder = Path(save_folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), folder / f"{save_name}_state_dict.pt")
        meta = dict(self.model._init_kwargs)
        meta[_WRAPPER_KEY] = self._settings()
        torch.save(meta, folder / f"{save_name}_metadata.pkl")

    @classmethod
    def from_checkpoint(cls, save_folder, save_name, boundary=_UNSET, *, map_location=None, time_dim=_UNSET,
                        output_index=_UNSET, lift_width=_UNSET, trust_pickle: bool = False):
        """Wrap a checkpoint of any neuralop model written by ``save_checkpoint``, without running code from it.

        Both files are read by :func:`~boon_ext.load_checkpoint_file` (a restricted reader: plain values, tensors
        and references to :data:`~boon_ext.CHECKPOINT_GLOBALS`); the metadata's sizes are checked against the
        state dict, and the model is built on the ``meta`` device and compared with the state dict before the
        real one is built.

        Parameters
        ----------
        save_folder, save_name : str
            As given to ``save_checkpoint``.
        boundary : optional
            The conditions. Default: those a :class:`BOONWrapper` checkpoint saved; required for a plain one.
        map_location : optional
            As in ``torch.load``.
        time_dim, output_index, lift_width : optional
            Override the saved settings.
        trust_pickle : bool, default False
            ``True`` reads the files with full pickle, **which executes any code they contain**: only for
            files you created yourself.

        Returns
        -------
        BOONWrapper

        Raises
        ------
        FileNotFoundError
            No state dict or no metadata file.
        UnsafeCheckpointError
            A file is refused (a ``UQNO`` checkpoint is: its metadata holds its two models as objects); the
            metadata names no registered neuralop model, holds sizes its state dict does not, or describes a
            model whose entries, shapes or dtypes differ from the state dict's. The message names the file.
        ValueError
            A plain checkpoint and no ``boundary``.

        Warns
        -----
        EarlyCheckpointWarning
            neuralop's training manifest beside the files says they were saved at epoch 0.
        """
        folder = Path(save_folder)
        state_path, meta_path = folder / f"{save_name}_state_dict.pt", folder / f"{save_name}_metadata.pkl"
        for path in (state_path, meta_path):
            if not path.exists():
                raise FileNotFoundError(f"no {'state dict' if path is state_path else 'metadata'} at {path}")
        trusted = trust_pickle is True
        try:
            meta = load_checkpoint_file(meta_path, map_location, trust_pickle=trust_pickle)
        except UnsafeCheckpointError as e:
            if "GLOBAL neuralop.models." not in str(e):
                raise
            raise UnsafeCheckpointError(
                f"{e} A model whose constructor takes models (UQNO takes its base and residual models) is saved "
                "with those models as objects: build it in code, load its weights with "
                "boon_ext.load_state_dict_file, and wrap it (BOONWrapper(uqno, boundary, output_index=0))"
            ) from None
        meta = _as_metadata(meta, meta_path.name, trusted=trusted)
        state = _as_state_dict(load_checkpoint_file(state_path, map_location, trust_pickle=trust_pickle),
                               state_path.name, trusted)
        saved = meta.pop(_WRAPPER_KEY, None)
        if saved is not None and not isinstance(saved, dict):
            raise UnsafeCheckpointError(f"{meta_path.name}: metadata field {_WRAPPER_KEY!r} must be a dict, got a "
                                        f"{type(saved).__name__}")
        saved = saved or {}
        name = str(meta.get("_name", ""))
        arch = BaseModel._models.get(name.lower())
        if arch is None or issubclass(arch, BOONWrapper):
            raise UnsafeCheckpointError(f"{meta_path.name}: metadata field '_name' must name a neuralop model, got "
                                        f"{name!r}"[:300])
        args = tuple(meta.pop("args", ()))
        for k in _META_KEYS:
            meta.pop(k, None)
        _check_sizes(dict(meta, args=args), state, meta_path.name)
        probe = _build_on_meta(arch, args, meta, meta_path.name)
        check_state_fits(probe, state, state_path.name, meta_path.name)
        held = sum(v.numel() for k, v in state.items() if k != "_metadata")
        own = sum(t.numel() for t in probe.state_dict().values() if torch.is_tensor(t))
        if own > held + 2 ** 20:
            raise UnsafeCheckpointError(f"{state_path.name}: the model {meta_path.name} describes holds {own} "
                                        f"values, the file {held}")
        del probe
        inner = arch(*args, **meta)
        state.pop("_metadata", None)
        if any(v.dtype == torch.float64 for v in state.values()):
            inner = inner.double()
        inner.load_state_dict(state, strict=True)
        warn_early_checkpoint(folder, save_name)
        if boundary is _UNSET:
            if "boundary" not in saved:
                raise ValueError(f"{state_path.name} is a plain {name} checkpoint: pass boundary=... (or "
                                 "boundary=None for none)")
            boundary = saved["boundary"]

        def pick(value, key):
            return saved.get(key) if value is _UNSET else value

        return cls(inner, boundary, n_dim=saved.get("n_dim"), time_dim=pick(time_dim, "time_dim"),
                   output_index=pick(output_index, "output_index"), lift_width=pick(lift_width, "lift_width"))

    def load_checkpoint(self, save_folder, save_name, map_location=None, *, trust_pickle: bool = False):
        """Load weights written by ``save_checkpoint`` into the wrapped model, read by the restricted reader.

        neuralop's ``BaseModel.load_checkpoint``, which this replaces, reads the file with full pickle.

        Raises
        ------
        FileNotFoundError
            No state dict.
        UnsafeCheckpointError
            The file is refused, or its entries, shapes or dtypes differ from the wrapped model's.
        """
        path = Path(save_folder) / f"{save_name}_state_dict.pt"
        if not path.exists():
            raise FileNotFoundError(f"no state dict at {path}")
        state = _as_state_dict(load_checkpoint_file(path, map_location, trust_pickle=trust_pickle), path.name,
                               trusted=trust_pickle is True)
        check_state_fits(self.model, state, path.name)
        self.load_state_dict(state, strict=True)
