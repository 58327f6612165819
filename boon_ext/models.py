"""BOON-corrected FNO and TFNO: neuralop models whose outputs satisfy boundary conditions exactly.

``BOONFNO`` and ``BOONTFNO`` subclass neuralop's ``FNO`` and ``TFNO`` and keep their module tree, so they
load the wrapped model's state dict as it is, register under ``"boon_fno"`` / ``"boon_tfno"`` for
``neuralop.models.get_model``, and train in neuralop's ``Trainer``.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Mapping, Optional

import torch
from neuralop.models import FNO, TFNO

from _physics_constrained.validation import check_bool, check_fraction, check_int, check_real

from .blocks import CorrectionPlan, boon_block_forward, check_blocks, layer_operators
from .checkpoint import _as_state_dict, check_state_fits, load_checkpoint, load_checkpoint_file
from .conditions import BoundarySpec
from .enforcement import check_nodes, enforce_boundary, resolve_face_values
from .lift import check_lift_width, lift_boundary
from .sample_keys import gather_boundary_values
# The metadata keys and "not given" (_UNSET: None is a value there) live in .metadata, shared with the readers.
from .metadata import _BOON_KEYS, _META_KEYS, _TFNO_DEFAULTS, _UNSET, register_checkpoint_class  # noqa: F401
from .precision import PrecisionMixin
from .measured_risks import warn_measured_risk
from .untrained import warn_untrained_settings

__all__ = ["BOONFNO", "BOONTFNO"]


def _constructor_kwargs(model) -> tuple:
    """(args, kwargs) that rebuild ``model``'s architecture, from neuralop's recorded init arguments."""
    meta = dict(getattr(model, "_init_kwargs", {}))
    args = tuple(meta.pop("args", ()))
    for k in _META_KEYS:
        meta.pop(k, None)
    for k in _BOON_KEYS:
        meta.pop(k, None)
    # TFNO records only the arguments it was given, not its own factorization defaults: read the instance.
    meta["factorization"] = model.factorization
    meta["rank"] = model.rank
    return args, meta


def _live_constructor_kwargs(model) -> dict:
    """Keyword arguments that rebuild ``model`` with its live modes (neuralop's ``n_modes`` setter included).

    The recorded init arguments hold the constructor's ``n_modes``; incremental training changes them later with
    ``model.n_modes = ...``, and the weights keep the size the constructor gave them (``max_n_modes``).
    """
    args, meta = _constructor_kwargs(model)
    # Positional arguments become keywords, so that the live modes below replace a positional n_modes too.
    bound = inspect.signature(FNO.__init__).bind_partial(None, *args).arguments
    bound.pop("self", None)
    meta.update(bound)
    meta.update(_live_modes(model))
    return meta


def _live_modes(model) -> dict:
    """``n_modes``, ``max_n_modes`` and ``layer_modes`` that rebuild ``model``'s Fourier layers as they are now.

    ``layer_modes`` is None when every layer keeps the modes ``n_modes`` gives it; otherwise it lists each layer's
    kept modes as ``SpectralConv`` holds them (neuralop's incremental training changes the first layer's only).
    """
    n_modes = tuple(model.n_modes)
    kept = list(n_modes[:-1]) + [n_modes[-1] // 2 + 1]  # SpectralConv keeps n // 2 + 1 of a real FFT's last axis
    layers = [list(conv.n_modes) for conv in model.fno_blocks.convs]
    return dict(n_modes=n_modes, max_n_modes=list(model.fno_blocks.convs[0].max_n_modes),
                layer_modes=None if all(layer == kept for layer in layers) else layers)


# Private attributes that hold live configuration (set through neuralop's setters); other private attributes are
# caches or bookkeeping.
_LIVE_PRIVATE = ("_n_modes",)
# The model's own attributes (not a submodule's) that neuralop reads after construction.
_LIVE_TOP = ("_n_modes", "non_linearity", "resolution_scaling_factor")


def _copy_live_settings(src, dst) -> None:
    """Copy every setting of ``src``'s submodules that a user can change after construction onto ``dst``.

    ``dst`` is built from ``src``'s init arguments, so the two have the same module tree; what can differ is
    what was set later: per-layer modes (``SpectralConv.n_modes``), ``fft_norm``, an activation, a dropout rate.
    Every public plain attribute of each submodule is copied (with ``_n_modes``), so that ``dst`` computes what
    ``src`` computes.

    Raises
    ------
    ValueError
        The module trees differ (a submodule was added or replaced after construction).
    """
    src_modules, dst_modules = dict(src.named_modules()), dict(dst.named_modules())
    if list(src_modules) != list(dst_modules) or any(
            type(src_modules[n]) is not type(dst_modules[n]) for n in src_modules if n):
        extra = sorted(set(src_modules) ^ set(dst_modules)) or [
            n for n in src_modules if n and type(src_modules[n]) is not type(dst_modules[n])]
        raise ValueError(
            f"fno must have the module tree its init arguments build, got submodules that differ: {extra[:5]} "
            "(a submodule added or replaced after construction cannot be wrapped)"
        )
    for name, module in src_modules.items():
        target = dst_modules[name]
        keys = _LIVE_TOP if not name else [k for k in module.__dict__
                                            if (not k.startswith("_") or k in _LIVE_PRIVATE) and k != "training"]
        for k in keys:
            if k in module.__dict__:
                target.__dict__[k] = copy.deepcopy(module.__dict__[k])


def _check_sequence_of_ints(value, name: str, length: Optional[int] = None) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not len(value):
        raise TypeError(f"{name} must be a tuple of positive ints (one per spatial dim), got {value!r} "
                        f"({type(value).__name__})")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have one entry per spatial dim ({length}), got {value!r}")
    return tuple(check_int(v, f"{name}[{i}]", minimum=1) for i, v in enumerate(value))


def _check_fno_arguments(args, kwargs) -> None:
    """Types and ranges of the FNO arguments BOON relies on, named as the caller named them.

    neuralop reads ``n_modes=(True, 4)``, ``hidden_channels="8"`` or ``n_layers=2.0`` without complaint or fails
    deep inside a layer; here they are refused first, with the argument's name.
    """
    try:
        given = inspect.signature(FNO.__init__).bind_partial(None, *args, **kwargs).arguments
    except TypeError as err:
        raise TypeError(f"{err} (the arguments of neuralop's FNO)") from None
    n_modes = _check_sequence_of_ints(given.get("n_modes"), "n_modes") if "n_modes" in given else None
    for name in ("in_channels", "out_channels", "hidden_channels", "n_layers"):
        if name in given:
            check_int(given[name], name, minimum=1)
    if given.get("max_n_modes") is not None:
        m = given["max_n_modes"]
        if isinstance(m, bool) or not isinstance(m, int):
            _check_sequence_of_ints(m, "max_n_modes", None if n_modes is None else len(n_modes))
        else:
            check_int(m, "max_n_modes", minimum=1)
    for name in ("lifting_channel_ratio", "projection_channel_ratio"):
        if name in given:
            check_real(given[name], name, nonnegative=True)
    if "channel_mlp_expansion" in given:
        check_real(given["channel_mlp_expansion"], "channel_mlp_expansion", positive=True)
    if "channel_mlp_dropout" in given:
        check_fraction(given["channel_mlp_dropout"], "channel_mlp_dropout", include_one=False)
    for name in ("use_channel_mlp", "separable", "preactivation", "complex_data"):
        if name in given:
            check_bool(given[name], name)


def _check_hidden_values(hidden_values: bool, spec: BoundarySpec, out_channels: int) -> None:
    if not hidden_values:
        return
    kinds = sorted({r.kind for r in spec.rules})
    if kinds != ["dirichlet"]:
        raise ValueError(
            "hidden_values=True writes prescribed Dirichlet values into the hidden layers' face nodes; it "
            f"needs Dirichlet conditions only, got {kinds or 'no boundary conditions'} (a Neumann value is a "
            "slope and a periodic pair has no value to write)"
        )
    if out_channels != 1:
        raise ValueError(
            f"hidden_values=True needs out_channels=1, got {out_channels}: a hidden channel has no "
            "output channel whose prescribed value it could take"
        )


def _check_loaded_state(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                        error_msgs) -> None:
    """Refuse, before anything is copied, weights that would load lossily or leave the model inconsistent.

    Registered as a load-state-dict pre-hook of every BOON model, so that every path that loads weights runs it
    (``load_state_dict``, ``load_checkpoint``, ``from_fno``, the checkpoint loaders).
    """
    assign = bool(local_metadata.get("assign_to_params_buffers", False))
    root = prefix.rstrip(".")
    own = list(module.named_parameters(prefix=root)) + list(module.named_buffers(prefix=root))
    for key, current in own:
        if key not in state_dict:
            continue  # missing keys are reported by torch
        value = state_dict[key]
        name = f"state_dict[{key!r}]"
        if not torch.is_tensor(value):
            raise TypeError(f"{name} must be a tensor, got {type(value).__name__}")
        numeric = current.is_floating_point() or current.is_complex()
        if numeric and not (value.is_floating_point() or value.is_complex()):
            raise TypeError(f"{name} must be a floating tensor like the model's {current.dtype} parameter, got dtype "
                            f"{value.dtype}")
        if current.is_complex() and not value.is_complex():
            raise ValueError(
                f"{name} is real ({value.dtype}) where the model's parameter is complex ({current.dtype}): the "
                "imaginary parts of the spectral weights were dropped before saving (by a cast such as "
                "model.to(torch.float64) or model.type(...)); load the weights saved before that cast"
            )
        if value.is_complex() and not current.is_complex():
            raise ValueError(
                f"{name} is complex ({value.dtype}) where the model's parameter is real ({current.dtype}): loading "
                "it would drop its imaginary part"
            )
        if assign and value.dtype != current.dtype:
            raise ValueError(
                f"{name} has dtype {value.dtype} but the model's parameter is {current.dtype}: with assign=True the "
                "model would be left with parameters of mixed precision; cast the model first (model.double() or "
                "model.float()) or load with assign=False"
            )
        if value.numel() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must be finite, but it contains NaN or inf")


class BOONFNO(PrecisionMixin, FNO, name="boon_fno"):
    """Fourier neural operator with BOON boundary corrections (Saad et al., ICLR 2023).

    Takes every argument of :class:`neuralop.models.FNO`, plus:

    Parameters
    ----------
    boundary : condition, mapping, list of those, or None
        Boundary conditions (:class:`~boon_ext.Dirichlet`, :class:`~boon_ext.Neumann`,
        :class:`~boon_ext.Periodic`, or their plain-config dicts). ``None``: the model is the plain FNO.
    kernel_correction : bool, default False
        Apply the paper's kernel correction (step T2) in every Fourier layer, so that each layer's boundary
        outputs depend on boundary inputs only. ``False`` (default): the layers are the plain FNO's and the
        output is made exact (step T1 on the output; the Neumann stencil; periodic averaging), at the plain FNO's
        cost. The correction is opt-in because it costs 1.59x-1.77x the FNO per training step for a 2-D model
        with four corrected walls (the two most recent runs of ``python -m experiments.benchmark_boon``;
        ``docs/benchmarks.md``), above the 1.3x the package allows its default. Trained to convergence on four
        1-D problems (3 seeds each; ``python -m experiments.reproduce_boon``, ``docs/boon_results.md``), the
        default was level with the plain FNO on all four and better on none; the correction was better on a
        Neumann heat problem (the FNO's error 1.08x its own, median), level on two Dirichlet problems and worse on periodic
        Burgers (0.93x: about 7% higher error), so it is worth its cost for Neumann conditions in 1-D. On space-time
        problems (``python -m experiments.reproduce_boon --campaign hard``) it was worse than the plain FNO on
        every run with Dirichlet walls tested inside the training range (thin-layer and ordinary Stokes, the
        lid-driven cavity) and on most runs of the wave equation (Neumann), its training loss above the FNO's:
        leave it off there (with ``hidden_values=True`` as well it was better on one space-time problem and worse
        on another). Weights trained without it lose accuracy when it is switched on (see :meth:`from_fno`).
    time_dim : int, optional
        Axis of a space-time model that is time (negative, of the ``(batch, channels, *dims)`` tensor); no
        condition may hold on it, and face values may vary along it.
    lift_width : int, optional
        How the output is made exact. ``None`` (default): the face nodes are overwritten
        (:func:`~boon_ext.enforce_boundary`). An int ``w``: the boundary residual is spread over ``w`` nodes next
        to each face by a smooth lift (:func:`~boon_ext.lift_boundary`); the conditions hold exactly either way.
        Trained to convergence with ``w = 4`` (``docs/boon_results.md``), it was level with the plain FNO on three
        1-D problems and worse on Stokes' second problem (about 15% higher error, median of 3 seeds), so it is
        not the default.
    hidden_values : bool, default False
        Also write each Dirichlet face's prescribed value into the face nodes of every hidden channel after every
        Fourier layer (after its activation and channel MLP), so that the value enters the hidden layers and not
        only the output: this package's version of the per-layer T1 step of the paper's Dirichlet reference code
        (which holds ``2 g`` there, one ``g`` per branch; here each hidden channel holds ``g``). Combines with
        either ``kernel_correction``. Defined only when every condition is Dirichlet and ``out_channels == 1``
        (a hidden channel has no output channel whose value it could take); refused otherwise. With the kernel
        correction and trained to convergence (``docs/boon_results.md``), it was better than the plain FNO on
        Dirichlet Burgers (the FNO's error 1.17x its own, median of 3 seeds) and worse on Stokes' second
        problem (about 1.6x higher error): compare it with the default on your own validation data before
        relying on it.
    layer_modes : list of tuple of int, optional
        The modes each Fourier layer keeps, as neuralop's ``SpectralConv`` holds them (``n // 2 + 1`` on the last
        axis), when the layers differ: checkpoints record it for a model whose layers were given their own modes
        after construction (neuralop's incremental training changes the first layer's alone). ``None`` (default):
        every layer keeps ``n_modes``.

    Warns
    -----
    BoundaryAccuracyWarning
        ``kernel_correction=True`` on a space-time model (``time_dim``) with a Dirichlet or Neumann face, at
        construction and whenever a setter makes it so: measured worse than the plain FNO there without the values
        in every layer, and mixed with them (see ``kernel_correction``).

    Notes
    -----
    The output satisfies every condition exactly (step T1) in either setting. With ``kernel_correction=True``,
    each Fourier layer's kernel (spectral convolution plus skip) is also corrected on the constrained faces of
    every Dirichlet or Neumann axis so that boundary outputs depend on boundary inputs only (step T2, computed per
    channel block from the weights once per forward pass), the faces of periodic axes are averaged after every
    layer, and point-wise non-linearities act on interior nodes only.
    Output enforcement (the default) runs neuralop's own forward pass when the FNO uses settings BOON's layer loop
    does not (``domain_padding``, norm layers, pre-activation, a stabilizer) and makes its output exact: it needs
    nothing from inside. The per-layer steps (``kernel_correction=True``, ``hidden_values=True``) refuse those
    settings at construction, with the reason that applies to them; half precision is refused in every setting.

    Every argument is checked strictly (a bool must be ``True``/``False``, not ``"false"`` or ``0``; an int is not
    a bool, a string or a float), and ``boundary``, ``kernel_correction``, ``time_dim``, ``lift_width``,
    ``hidden_values`` and ``n_modes`` stay checked when set later as attributes; each such setting is recorded in
    the metadata that checkpoints save. ``double()`` / ``float()`` keep the spectral weights complex
    (complex128 / complex64); casts that would drop their imaginary parts are refused.

    References
    ----------
    .. [1] Saad, N., Gupta, G., Alizadeh, S., Maddix, D. C. "Guiding continuous operator learning through
           physics-based boundary constraints." ICLR 2023.
    """

    def __init__(self, *args, boundary=None, kernel_correction: bool = False, time_dim: Optional[int] = None,
                 lift_width: Optional[int] = None, hidden_values: bool = False, layer_modes=None, **kwargs):
        kwargs.pop("_config_name", None)  # added by zencfg's to_dict()
        # Every argument is checked before anything is built, with the name the caller used.
        _check_fno_arguments(args, kwargs)
        kernel_correction = check_bool(kernel_correction, "kernel_correction")
        hidden_values = check_bool(hidden_values, "hidden_values")
        lift_width = None if lift_width is None else check_lift_width(lift_width)
        super().__init__(*args, **kwargs)
        # neuralop sizes the Fourier weights by max_n_modes and takes any n_modes beside them; modes beyond the
        # weights would be sliced away at the call, so the model would not be the one its arguments describe.
        for i, conv in enumerate(self.fno_blocks.convs):
            if any(k > h for k, h in zip(conv.n_modes, conv.max_n_modes)):
                raise ValueError(f"n_modes must fit the Fourier weights max_n_modes gives ({list(conv.max_n_modes)} "
                                 f"modes kept at most, n // 2 + 1 on the last axis), got {list(conv.n_modes)} kept "
                                 f"in layer {i}")
        self._operator_cache = {}
        self._set_layer_modes(layer_modes)
        self._hidden_values = False
        self._kernel_correction = False  # set below; the conditions are checked against it first
        # The settings are properties: every path that sets them (here, attribute assignment, finetuning) checks
        # them the same way and records them in the metadata saved with checkpoints.
        self._set_boundary(boundary, time_dim)
        self.kernel_correction = kernel_correction
        self.lift_width = lift_width
        self.hidden_values = hidden_values
        self.register_load_state_dict_pre_hook(_check_loaded_state)
        # Warned once the settings are complete (hidden_values, set last, decides), then on every later change.
        self._settings_complete = True
        self._warn_measured_risk(stacklevel=4)

    # -- settings ------------------------------------------------------------------------------------
    def _set_layer_modes(self, layer_modes) -> None:
        """Give each Fourier layer its own kept modes (``SpectralConv``'s layout), checked against its weights."""
        self._init_kwargs["layer_modes"] = None
        if layer_modes is None:
            return
        convs = self.fno_blocks.convs
        is_list = isinstance(layer_modes, Sequence) and not isinstance(layer_modes, (str, bytes))
        if not is_list or len(layer_modes) != len(convs):
            raise TypeError(f"layer_modes must be None or one tuple of kept modes per layer ({len(convs)}), got "
                            f"{layer_modes!r}")
        checked = [_check_sequence_of_ints(m, f"layer_modes[{i}]", self.n_dim) for i, m in enumerate(layer_modes)]
        for i, (modes, conv) in enumerate(zip(checked, convs)):
            if any(k > h for k, h in zip(modes, conv.max_n_modes)):
                raise ValueError(f"layer_modes[{i}] must fit the layer's Fourier weights ({list(conv.max_n_modes)} "
                                 f"modes), got {list(modes)}")
        for modes, conv in zip(checked, convs):
            conv._n_modes = list(modes)  # SpectralConv's own layout (its setter would halve the last axis again)
        self._init_kwargs["layer_modes"] = [list(m) for m in checked]

    def state_dict(self, *args, **kwargs):
        """neuralop's ``BaseModel.state_dict``, whose metadata records the live modes of the Fourier layers.

        neuralop's ``n_modes`` setters (incremental training sets the first layer's alone) change what the model
        computes after construction; the record is brought up to date here, so that a checkpoint (which
        ``save_checkpoint`` writes from this record) rebuilds the model as it is.
        """
        self._init_kwargs.update(_live_modes(self))
        return super().state_dict(*args, **kwargs)

    def _set_boundary(self, boundary, time_dim) -> None:
        """Resolve and check the conditions (and ``time_dim``), and record them in the metadata."""
        if isinstance(boundary, BoundarySpec):  # its dims and time axis must be this model's, not dropped
            boundary = boundary.conditions_for(self.n_dim, time_dim)
        spec = BoundarySpec(boundary, self.n_dim, time_dim=time_dim, out_channels=self.out_channels)
        if spec and self.fno_blocks.complex_data:
            raise ValueError("complex_data must be False with boundary conditions (boundary conditions are imposed on "
                             "real fields), got True")
        if spec and (self._kernel_correction or self._hidden_values):
            self._check_layer_settings(spec, "kernel_correction=True" if self._kernel_correction else
                                       "hidden_values=True")
        _check_hidden_values(self._hidden_values, spec, self.out_channels)
        self._boundary_spec = spec
        self._time_dim = time_dim
        self._correction = CorrectionPlan.from_spec(spec)
        self._operator_cache.clear()
        # The metadata saved with checkpoints holds the conditions as plain config values.
        self._init_kwargs["boundary"] = spec.to_config() if spec else None
        self._init_kwargs["time_dim"] = time_dim
        self._warn_measured_risk(stacklevel=6)  # through the boundary or time_dim setter and Module.__setattr__

    def _warn_measured_risk(self, stacklevel: int = 5) -> None:
        """Warn for settings measured to cost accuracy (:func:`~boon_ext.measured_risks.warn_measured_risk`).

        Called by every path that changes the conditions or the per-layer settings, once construction has set them
        all (so that a model is warned about once, for the settings it ends with).
        ``stacklevel`` is :func:`warnings.warn`'s, counted from ``warn_measured_risk`` (1): 4 from ``__init__``, 5
        from a setter (reached through ``Module.__setattr__``), 6 from ``_set_boundary`` under a setter, so that
        the warning names the user's line.
        """
        if getattr(self, "_settings_complete", False):
            warn_measured_risk(self._boundary_spec, self._kernel_correction, self._hidden_values,
                               stacklevel=stacklevel)

    def _check_layer_settings(self, spec, setting: str) -> None:
        """Refuse, for the per-layer steps (T2, hidden values), the FNO settings under which they are not exact.

        Output enforcement (the default) needs nothing from the layers and takes every setting; the per-layer
        steps act on the grid the Fourier layers see, so they are refused here, each with the reason for them.
        """
        if not spec:
            return
        if self.domain_padding is not None:
            raise ValueError(
                f"domain_padding must be None with {setting} (padding moves the boundary nodes inside the grid "
                "the Fourier layers see, so the per-layer step would act on padded nodes, not on the faces), got "
                f"{self._init_kwargs.get('domain_padding', 'a padding')!r}; output enforcement "
                "(kernel_correction=False, hidden_values=False) accepts it"
            )
        try:
            check_blocks(self.fno_blocks)
        except ValueError as e:
            raise ValueError(f"{e} (with {setting}; output enforcement, kernel_correction=False and "
                             "hidden_values=False, accepts it)") from None

    def _layers_are_plain(self) -> bool:
        """Whether the forward pass must run neuralop's own FNO forward (settings BOON's layer loop lacks)."""
        if self.domain_padding is not None:
            return True
        try:
            check_blocks(self.fno_blocks)
        except ValueError:
            return True
        return False

    @property
    def boundary_spec(self) -> BoundarySpec:
        """The conditions resolved against the model; settable with conditions or a ``BoundarySpec``."""
        return self._boundary_spec

    @boundary_spec.setter
    def boundary_spec(self, value):
        self._set_boundary(value, self._time_dim)

    @property
    def boundary(self):
        """The boundary conditions, as condition objects; settable (checked as in the constructor)."""
        return list(self.boundary_spec.conditions)

    @boundary.setter
    def boundary(self, value):
        self._set_boundary(value, self._time_dim)

    @property
    def time_dim(self) -> Optional[int]:
        """The time axis of a space-time model, or None; settable (the conditions are checked against it)."""
        return self._time_dim

    @time_dim.setter
    def time_dim(self, value):
        self._set_boundary(self._boundary_spec.conditions, value)

    @property
    def kernel_correction(self) -> bool:
        """Whether the per-layer kernel correction (T2) runs; settable with a bool."""
        return self._kernel_correction

    @kernel_correction.setter
    def kernel_correction(self, value):
        value = check_bool(value, "kernel_correction")
        if value:
            self._check_layer_settings(self._boundary_spec, "kernel_correction=True")
        self._kernel_correction = value
        self._init_kwargs["kernel_correction"] = self._kernel_correction
        self._operator_cache.clear()
        self._warn_measured_risk()

    @property
    def hidden_values(self) -> bool:
        """Whether Dirichlet values are written into the hidden layers' faces; settable with a bool."""
        return self._hidden_values

    @hidden_values.setter
    def hidden_values(self, value):
        value = check_bool(value, "hidden_values")
        _check_hidden_values(value, self._boundary_spec, self.out_channels)
        if value:
            self._check_layer_settings(self._boundary_spec, "hidden_values=True")
        self._hidden_values = value
        self._init_kwargs["hidden_values"] = value
        self._warn_measured_risk()

    @property
    def lift_width(self) -> Optional[int]:
        """Width of the smooth lift, or None (the face nodes are overwritten); settable."""
        return self._lift_width

    @lift_width.setter
    def lift_width(self, value):
        self._lift_width = None if value is None else check_lift_width(value)
        self._init_kwargs["lift_width"] = self._lift_width

    @property
    def n_modes(self):
        """Fourier modes kept per spatial axis; settable as in neuralop (incremental training), and checked."""
        return self._n_modes

    @n_modes.setter
    def n_modes(self, n_modes):
        if isinstance(n_modes, int) and not isinstance(n_modes, bool) and self.n_dim == 1:
            n_modes = (n_modes,)
        n_modes = _check_sequence_of_ints(n_modes, "n_modes", self.n_dim)
        for i, conv in enumerate(self.fno_blocks.convs):
            held = list(conv.max_n_modes)
            kept = list(n_modes[:-1]) + [n_modes[-1] // 2 + 1]  # the layer keeps n // 2 + 1 of a real FFT's last axis
            if any(k > h for k, h in zip(kept, held)):
                raise ValueError(
                    f"n_modes must fit the Fourier weights, which hold {held} modes (the last axis of a real FFT "
                    f"keeps n // 2 + 1), got {n_modes} (layer {i} would keep {kept})"
                )
        FNO.n_modes.fset(self, n_modes)
        self._init_kwargs["layer_modes"] = None
        # The metadata records the live modes, with the weights' size, so that a checkpoint rebuilds this model.
        self._init_kwargs["n_modes"] = n_modes
        self._init_kwargs["max_n_modes"] = list(self.fno_blocks.convs[0].max_n_modes)
        self._operator_cache.clear()

    # -- forward -------------------------------------------------------------------------------------
    def _model_dtype(self) -> torch.dtype:
        """The real dtype of the parameters; refuses parameters that cannot carry an exact correction."""
        dtypes = {p.dtype for p in self.parameters() if p.is_floating_point()}
        if len(dtypes) > 1:
            # A submodule cast on its own (model.projection.double()) would fail deep inside torch with a message
            # about one layer's input and bias.
            raise TypeError(
                f"the real parameters of {type(self).__name__} must share one dtype, got {sorted(map(str, dtypes))}: "
                "a submodule was cast on its own; cast the whole model with model.double() or model.float()"
            )
        dtype = next(p for p in self.lifting.parameters() if p.is_floating_point()).dtype
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(
                f"{type(self).__name__} runs in float32 or float64, its parameters are {dtype}: half precision "
                "cannot carry an exact correction. Keep the model in float32 and use torch.autocast for mixed "
                "precision (the correction and the enforcement then run in float32)"
            )
        for conv in self.fno_blocks.convs:
            weight = conv.weight
            for w in (weight.parameters() if isinstance(weight, torch.nn.Module) else [weight]):
                if not w.is_complex():
                    raise ValueError(
                        f"the spectral weights of {type(self).__name__} are real ({w.dtype}) where complex ones are "
                        "expected: a cast such as model.to(torch.float64) dropped their imaginary parts. Change "
                        "precision with model.double() / model.float(), which keep complex weights complex"
                    )
        return dtype

    def _check_call(self, x, boundary_values, spec) -> torch.dtype:
        if not torch.is_tensor(x):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 + self.n_dim:
            raise ValueError(f"x must have shape (batch, {self.in_channels}, *{self.n_dim} spatial dims), got {tuple(x.shape)}")
        dtype = self._model_dtype()
        if x.is_complex() or not x.is_floating_point():
            raise TypeError(f"x must be a real floating-point tensor ({dtype}, as the model), got dtype {x.dtype}")
        if x.dtype != dtype:
            raise TypeError(
                f"x must have the dtype of the model's parameters {dtype}, got {x.dtype}: cast x (x.to({dtype})) "
                f"or the model (model.{'double' if x.dtype == torch.float64 else 'float'}())"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have in_channels={self.in_channels} channels, shape (batch, {self.in_channels}, *spatial), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"x must have at least one sample, got an empty batch (shape {tuple(x.shape)})")
        for i, conv in enumerate(self.fno_blocks.convs):
            # neuralop's per-layer setter takes any modes; beyond the weights' the layer's slicing keeps others
            if any(k > h for k, h in zip(conv.n_modes, conv.max_n_modes)):
                raise ValueError(
                    f"fno_blocks.convs[{i}].n_modes must fit the layer's Fourier weights ({list(conv.max_n_modes)} "
                    f"modes kept at most, n // 2 + 1 on the last axis), got {list(conv.n_modes)}"
                )
        check_nodes(x, spec, "x")
        if any(s == 0 for s in x.shape[2:]):
            raise ValueError(f"x must have no spatial axis of length 0, got shape {tuple(x.shape)}")
        # Missing keys are reported by the face that needs them, when its value is resolved.
        spec.check_values(boundary_values, allow_missing=True)
        if self.kernel_correction:
            for axis, _ in self._correction.corrected:
                for d in range(self.n_dim - 1):
                    if d != axis and x.shape[2 + d] % 2:
                        raise ValueError(
                            f"x must have an even length along spatial axis {d} with kernel_correction=True, got "
                            f"odd length {x.shape[2 + d]}: neuralop's SpectralConv is "
                            "not shift-equivariant along a non-last axis of odd length (its two fftshifts do not "
                            "cancel), so the face blocks of the kernel are not diagonal in Fourier space; use an "
                            "even length there or kernel_correction=False"
                        )
        return dtype

    def forward(self, x, output_shape=None, boundary_values=None, **kwargs):
        """Apply the model.

        Parameters
        ----------
        x : torch.Tensor
            Input (batch, in_channels, *spatial).
        output_shape : None
            Must be None when boundary conditions are set (the grid is fixed).
        boundary_values : mapping str -> torch.Tensor, optional
            Values of the faces without a constant, keyed as in ``model.boundary_spec.required_keys``: shape
            (batch,), (batch, channels) or (batch, channels, *face_shape).
        **kwargs
            Other keys of a Trainer sample; the target ``y`` is accepted and ignored. A value may also come as its
            own entry ``"boundary_values.<key>"`` (``model(**{"x": x, "boundary_values.left": g})``), which
            neuralop's ``Trainer`` passes on without a data processor (it drops a nested dict).

        Returns
        -------
        torch.Tensor
            (batch, out_channels, *spatial), satisfying every condition exactly.
        """
        kwargs.pop("y", None)  # neuralop's Trainer passes the whole sample
        # Values given as flat tensor entries ("boundary_values.left") pass the Trainer without a data processor.
        boundary_values = gather_boundary_values(boundary_values, kwargs)
        if isinstance(output_shape, Mapping):
            # m(x, {"right": g}): face values given positionally land in output_shape, the base class's second
            # argument. Nothing else that is a mapping could be meant there.
            if boundary_values is not None:
                raise TypeError(
                    "output_shape is a mapping and boundary_values is given too: pass the face values once, as "
                    "boundary_values=..."
                )
            output_shape, boundary_values = None, output_shape
        if not self.boundary_spec:
            if boundary_values:
                raise ValueError("boundary_values were given but the model has no boundary conditions (boundary=None)")
            return super().forward(x, output_shape=output_shape, **kwargs)
        if kwargs:
            warnings.warn(f"{type(self).__name__}.forward() ignores the arguments {sorted(kwargs)}", UserWarning, stacklevel=2)
        if output_shape is not None:
            raise ValueError("output_shape is not supported with boundary conditions: the output grid is the input grid")
        # Constants given in the output's units (by BoundaryDataProcessor under a normaliser) replace the physical
        # ones: the spec then reads them from boundary_values.
        spec = self.boundary_spec.for_values(boundary_values)
        dtype = self._check_call(x, boundary_values, spec)
        # Under autocast the point-wise lifting and projection run in low precision; the Fourier layers with their
        # correction and the enforcement run in the model's dtype with autocast off, so that the correction's
        # linear solves are accurate and the conditions hold exactly in the (full-precision) output.
        device_type = x.device.type
        full = torch.autocast(device_type, enabled=False) if torch.is_autocast_enabled(device_type) else nullcontext()
        if not (self.kernel_correction or self.hidden_values) and self._layers_are_plain():
            # Output enforcement needs nothing from inside: neuralop's own forward pass (its domain padding, its
            # norms), then the output made exact.
            x = super().forward(x)
            with full:
                x = x.to(dtype)
                if self.lift_width is not None:
                    return lift_boundary(x, spec, boundary_values, self.lift_width)
                return enforce_boundary(x, spec, boundary_values)
        if self.positional_embedding is not None:
            x = self.positional_embedding(x)
        x = self.lifting(x)
        # Weight-derived operators are reused across calls only when no graph is being built (and not while
        # compiling: the cache's checks compare weights' values, which would cut the graph).
        cache = None if torch.is_grad_enabled() or torch.compiler.is_compiling() else self._operator_cache
        hidden = self._hidden_face_values(x, boundary_values, dtype, spec) if self.hidden_values else None
        with full:
            x = x.to(dtype)
            operators = [None] * self.n_layers
            if cache is None and self.kernel_correction and self._correction.corrected:
                # Every layer's face blocks in one batched build (the grid is the same in every layer).
                operators = layer_operators(self.fno_blocks, range(self.n_layers), x, self._correction, True)
            for i in range(self.n_layers):
                x = boon_block_forward(self.fno_blocks, i, x, self._correction, self.kernel_correction, cache,
                                       hidden, operators[i])
        x = self.projection(x)
        with full:
            x = x.to(dtype)
            if self.lift_width is not None:
                return lift_boundary(x, spec, boundary_values, self.lift_width)
            return enforce_boundary(x, spec, boundary_values)

    def _hidden_face_values(self, x, boundary_values, dtype, spec):
        """(axis, side, g) of every Dirichlet face, ``g`` shaped (batch or 1, 1, *face) for the hidden layers."""
        # A zero-stride stand-in for the output: resolve_face_values reads only its shape, dtype and device.
        out_like = torch.zeros((), dtype=dtype, device=x.device).expand(x.shape[0], self.out_channels, *x.shape[2:])
        return [(r.axis, r.side, resolve_face_values(r, out_like, boundary_values)) for r in spec.rules]

    # -- construction from existing models -----------------------------------------------------------
    @classmethod
    def from_fno(cls, fno, boundary=None, *, kernel_correction: Optional[bool] = None, time_dim: Optional[int] = None,
                 lift_width: Optional[int] = None, hidden_values: Optional[bool] = None):
        """Wrap a trained ``FNO``/``TFNO`` in memory, loading its weights strictly (no retraining).

        By default the wrapped model runs ``fno``'s own layers and makes the output exact by overwriting the
        face nodes (``kernel_correction=False``, ``lift_width=None``): its interior predictions are ``fno``'s
        own, so wrapping never costs accuracy there, and every condition holds exactly. This default was chosen
        by measurement (``python -m experiments.wrap_checkpoint_accuracy``, ``docs/boon_design.md``): switching
        the kernel correction on made trained models 2.5x to 47x less accurate (medians over 3 seeds), and the
        smooth lift helped on single-step Stokes but cost accuracy on heat and on space-time Stokes.

        Parameters
        ----------
        fno : neuralop.models.FNO
            A plain ``FNO``/``TFNO``, or a BOON model (whose weights then count as trained with the kernel
            correction if it uses it).
        boundary, time_dim
            As in the constructor.
        kernel_correction : bool, optional
            Switch on the per-layer BOON kernel correction. Weights trained without it lose accuracy when it is
            switched on as they are (a :class:`~boon_ext.BoundaryAccuracyWarning` says so); fine-tune them with
            :func:`~boon_ext.finetune_kernel_correction`. Default: ``fno``'s own setting when it is a BOON model
            (so re-wrapping keeps its predictions), else False.
        hidden_values : bool, optional
            As in the constructor. Default: ``fno``'s own setting when it is a BOON model, else False.
        lift_width : int or None, default None
            Output enforcement, as in the constructor: ``None`` overwrites the face nodes; an int spreads the
            boundary residual over that many nodes next to each face (opt-in: it changes those interior nodes).

        Returns
        -------
        BOONFNO
            On the device and in the dtype of ``fno``'s parameters, with ``fno``'s live configuration: modes set
            with neuralop's ``n_modes`` setter (incremental training), per-layer modes, ``fft_norm`` and other
            settings changed after construction are taken from ``fno`` itself, not from its init arguments.

        Raises
        ------
        TypeError
            ``fno`` is not a neuralop FNO or TFNO, or an argument has the wrong type (``kernel_correction="false"``).
        ValueError
            ``fno``'s module tree is not the one its init arguments build (a submodule replaced after construction).

        Warns
        -----
        BoundaryAccuracyWarning
            ``kernel_correction=True`` or ``hidden_values=True`` on weights trained without it.
        """
        if not isinstance(fno, FNO):
            raise TypeError(f"fno must be a neuralop FNO or TFNO, got {type(fno).__name__}")
        source_is_boon = isinstance(fno, BOONFNO)
        if kernel_correction is None:
            kernel_correction = source_is_boon and len(fno.boundary_spec.rules) > 0 and fno.kernel_correction
        if hidden_values is None:
            hidden_values = source_is_boon and fno.hidden_values
        # The model's live configuration, not its constructor's: modes changed with neuralop's n_modes setter
        # (incremental training), per-layer settings changed after construction.
        kwargs = _live_constructor_kwargs(fno)
        model = cls(boundary=boundary, kernel_correction=kernel_correction, time_dim=time_dim,
                    lift_width=lift_width, hidden_values=hidden_values, **kwargs)
        _copy_live_settings(fno, model)
        if model.kernel_correction or model.hidden_values:
            # a setting copied above may be one the per-layer steps cannot correct
            model._check_layer_settings(model.boundary_spec, "kernel_correction=True" if model.kernel_correction
                                        else "hidden_values=True")
        # What fno's weights were trained with: its live settings (a plain FNO has none).
        trained = (dict(boundary=bool(fno.boundary_spec), kernel_correction=fno.kernel_correction,
                        hidden_values=fno.hidden_values) if source_is_boon else {})
        warn_untrained_settings(model, trained, f"a {type(fno).__name__} wrapped by from_fno")
        state = fno.state_dict()
        state.pop("_metadata", None)
        ref = next(p for p in fno.parameters() if p.is_floating_point())
        model.to(device=ref.device)
        if ref.dtype == torch.float64:
            model.double()  # complex weights to complex128; .to(torch.float64) would drop their imaginary parts
        model.load_state_dict(state, strict=True)
        return model

    @classmethod
    def from_checkpoint(cls, save_folder, save_name, boundary=_UNSET, *, map_location=None,
                        kernel_correction=_UNSET, time_dim=_UNSET, model_kwargs: Optional[dict] = None,
                        lift_width=_UNSET, trust_pickle: bool = False):
        """Load a checkpoint written by neuralop's ``save_checkpoint``, wrapping it with boundary conditions.

        Parameters
        ----------
        save_folder, save_name : str
            As given to ``save_checkpoint`` (files ``{save_name}_state_dict.pt`` and ``{save_name}_metadata.pkl``).
        boundary : optional
            Conditions to impose. Default: those saved with a BOON checkpoint; required for a plain FNO/TFNO
            checkpoint (pass ``None`` explicitly for none).
        map_location : optional
            As in ``torch.load``.
        kernel_correction, time_dim, lift_width : optional
            Override the saved values. For a plain checkpoint the defaults are those of :meth:`from_fno`:
            ``kernel_correction=False`` (output enforcement: the interior predictions are the checkpoint's own,
            so wrapping costs no accuracy there) and ``lift_width=None`` (the face nodes are overwritten).
        model_kwargs : dict, optional
            Constructor arguments, for checkpoints without a metadata file (saved under DDP).
        trust_pickle : bool, default False
            Both files are read with torch's weights-only unpickler, which allows only the few globals neuralop
            stores (see :func:`~boon_ext.load_checkpoint_file`). ``True`` reads them with full pickle, **which
            executes any code the files contain**: only for files you created yourself.

        Returns
        -------
        BOONFNO

        Raises
        ------
        FileNotFoundError
            No state dict, or no metadata and no ``model_kwargs``.
        TypeError
            ``model_kwargs`` is not a mapping.
        UnsafeCheckpointError
            A file is refused (see :func:`~boon_ext.load_checkpoint_file`); the metadata holds a field of the wrong
            type or a size its state dict does not hold; the state dict's entries, shapes or dtypes differ from
            the model the metadata describes (the model is built on the ``meta`` device and compared before
            anything is allocated). A ``ValueError``; the message names the file and the field.
        ValueError
            A plain checkpoint and no ``boundary``.

        Warns
        -----
        BoundaryAccuracyWarning
            ``kernel_correction=True`` on weights saved without it (a plain checkpoint, or a BOON checkpoint
            saved with ``kernel_correction=False``); fine-tune with :func:`~boon_ext.finetune_kernel_correction`.
        """
        return load_checkpoint(save_folder, save_name, boundary, cls=cls, map_location=map_location,
                               kernel_correction=kernel_correction, time_dim=time_dim, model_kwargs=model_kwargs,
                               lift_width=lift_width, trust_pickle=trust_pickle, _stacklevel=4)

    # -- loading weights into this model -------------------------------------------------------------
    def load_state_dict(self, state_dict, strict=True, assign=False):
        """neuralop's ``BaseModel.load_state_dict``, warning when the weights lack this model's per-layer settings.

        Every entry is checked before anything is copied (on every path that loads weights into a BOON model,
        this method, ``load_checkpoint``, ``from_fno`` and the checkpoint loaders, through a load-state-dict
        pre-hook): a real tensor for a complex spectral weight (its imaginary parts were dropped by a cast), a
        complex tensor for a real parameter, a non-floating or non-finite tensor, and with ``assign=True`` a dtype
        other than the parameter's (which would leave the model in mixed precision) are refused.

        A state dict from ``state_dict()`` records its model's constructor arguments (its ``_metadata`` entry):
        when they show that the weights were trained without the kernel correction or the hidden values this
        model uses, a :class:`~boon_ext.BoundaryAccuracyWarning` says what that costs. A state dict without
        that record loads silently (nothing can be said about it).

        Parameters
        ----------
        state_dict, strict, assign
            As in ``torch.nn.Module.load_state_dict``.

        Returns
        -------
        NamedTuple
            ``missing_keys`` and ``unexpected_keys``, as in ``torch.nn.Module.load_state_dict``.

        Raises
        ------
        TypeError
            An entry is not a floating tensor, or the record's ``kernel_correction`` / ``hidden_values`` is not a
            bool.
        ValueError
            An entry would load lossily or leave the model inconsistent (see above).

        Warns
        -----
        BoundaryAccuracyWarning
            ``kernel_correction`` or ``hidden_values`` on, and the record says the weights were saved without it.
        """
        warn_untrained_settings(self, state_dict.get("_metadata") if isinstance(state_dict, Mapping) else None,
                                "a state dict")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def load_checkpoint(self, save_folder, save_name, map_location=None, *, trust_pickle: bool = False):
        """Load weights written by ``save_checkpoint`` into this model, without running code from the file.

        neuralop's ``BaseModel.load_checkpoint``, which this replaces, reads the file with full pickle
        (``weights_only=False``); here it is read like every other checkpoint of this package, by
        :func:`~boon_ext.load_checkpoint_file` (torch's weights-only unpickler and an allow-list).

        Parameters
        ----------
        save_folder, save_name : str
            As given to ``save_checkpoint`` (the file ``{save_name}_state_dict.pt``).
        map_location : optional
            As in ``torch.load``.
        trust_pickle : bool, default False
            ``True`` reads the file with full pickle, **which executes any code the file contains**: only for
            files you created yourself.

        Raises
        ------
        FileNotFoundError
            No state dict.
        UnsafeCheckpointError
            The file is refused (see :func:`~boon_ext.load_checkpoint_file`), holds no state dict, or its entries,
            shapes or dtypes differ from this model's (a ``ValueError``; the message names the file and the entry).

        Warns
        -----
        BoundaryAccuracyWarning
            ``kernel_correction`` or ``hidden_values`` on, and the file's weights were saved without it.

        Notes
        -----
        The weights are copied into this model's parameters, in its dtype and on its device, as
        ``torch.nn.Module.load_state_dict`` does: a float64 file loaded into a float32 model is rounded to float32.
        ``BOONFNO.from_checkpoint`` builds a model in the file's precision instead.
        """
        path = Path(save_folder) / f"{save_name}_state_dict.pt"
        if not path.exists():
            raise FileNotFoundError(f"no state dict at {path}")
        state = _as_state_dict(load_checkpoint_file(path, map_location, trust_pickle=trust_pickle), path.name,
                               trusted=trust_pickle is True)
        check_state_fits(self, state, path.name)  # entries, shapes and dtypes named, before any copy
        warn_untrained_settings(self, state.get("_metadata"), f"the checkpoint {path.name}")
        # The warning is given above with the file's name: load through the base class, not this class's override.
        super().load_state_dict(state, strict=True)


def _signature(base, **overrides):
    params = [p for n, p in inspect.signature(base.__init__).parameters.items() if n != "self" and p.kind != p.VAR_KEYWORD]
    params = [p.replace(default=overrides[p.name]) if p.name in overrides else p for p in params]
    extra = [
        inspect.Parameter("boundary", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("kernel_correction", inspect.Parameter.KEYWORD_ONLY, default=False),
        inspect.Parameter("time_dim", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("lift_width", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("hidden_values", inspect.Parameter.KEYWORD_ONLY, default=False),
        inspect.Parameter("layer_modes", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    return inspect.Signature(params + extra)


class BOONTFNO(BOONFNO, TFNO, name="boon_tfno"):
    """Tucker-factorised :class:`BOONFNO` (neuralop's ``TFNO`` defaults: ``factorization="Tucker"``, ``rank=0.1``).

    ``TFNO.__init__``, next in the method order after :class:`BOONFNO`, sets those defaults.
    """


# neuralop records a model's constructor arguments (for checkpoints) from its signature: give the wrappers
# FNO's full signature plus their own arguments, with TFNO's factorization defaults for BOONTFNO.
BOONFNO.__signature__ = _signature(FNO)
BOONTFNO.__signature__ = _signature(FNO, **_TFNO_DEFAULTS)

# Checkpoints whose metadata names a (BOON-)TFNO are rebuilt as BOONTFNO, every other as BOONFNO.
register_checkpoint_class(BOONFNO, "fno", "boon_fno", "boonfno")
register_checkpoint_class(BOONTFNO, "tfno", "boon_tfno", "boontfno")
