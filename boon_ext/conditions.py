"""Boundary conditions: Dirichlet, Neumann and periodic faces, in plain config values.

A condition names one spatial axis (``dim``, an axis of the ``(batch, channels, *spatial)`` tensor, negative
counts from the end), the faces it holds on (``"left"`` is index 0 along that axis, ``"right"`` the last index),
optionally the output channels it applies to, and for each face either a constant value given at construction
or nothing, in which case the value is supplied at each call under the face's key.

Every condition round-trips through :meth:`BoundaryCondition.to_config` / :func:`parse_boundary`, so a list of
conditions can live in a YAML or zencfg config and in a weights-only checkpoint.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from _physics_constrained.validation import check_choice, check_index, check_int, check_interval, check_real
from .sample_keys import NO_PROCESSOR_HINT

__all__ = [
    "BoundaryCondition",
    "Dirichlet",
    "Neumann",
    "Periodic",
    "FaceRule",
    "BoundarySpec",
    "ConstantKey",
    "parse_boundary",
    "missing_value_message",
]

SIDES = ("left", "right")
# Enforcement order: a node shared by two constrained faces ends with the value written last, so a value
# constraint (Dirichlet) owns corners over a derivative constraint (Neumann) over a periodic identification.
PRIORITY = {"periodic": 0, "neumann": 1, "dirichlet": 2}

Value = Union[None, float, Sequence[float]]


def _check_value(name: str, value: Value) -> Optional[Tuple[float, ...]]:
    """A face's constant: None (value given at each call), a finite number, or finite per-channel numbers."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (check_real(value, name),)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise ValueError(f"{name} must be a non-empty list of per-channel numbers, got {value!r}")
        return tuple(check_real(v, f"{name}[{i}]") for i, v in enumerate(value))
    raise TypeError(
        f"{name} must be a number, a list of per-channel numbers, or None (value given at each call), "
        f"got {type(value).__name__} {value!r}"
    )


class BoundaryCondition:
    """Base class of the boundary conditions; use :class:`Dirichlet`, :class:`Neumann` or :class:`Periodic`.

    Parameters
    ----------
    left, right : float, list of float or None
        Constant value on that face (a list gives one value per selected channel). ``None`` leaves the face
        free, unless it is named in ``faces``, in which case its value is supplied at each call.
    faces : sequence of {"left", "right"}, optional
        Faces the condition holds on. Default: the faces given a constant value, or both faces when no value
        is given.
    dim : int, default -1
        Spatial axis of the ``(batch, channels, *spatial)`` output the condition holds along.
    channels : sequence of int, optional
        Output channels the condition applies to; default all channels.
    keys : mapping {"left": str, "right": str}, optional
        Your own names for the call-time values of this condition's faces in ``boundary_values`` (e.g.
        ``keys={"left": "inlet"}``); only faces without a constant value read one. Default: ``"left"`` /
        ``"right"`` when all of the model's conditions are on one axis (in any dimension), else
        ``"left{axis}"`` / ``"right{axis}"`` with the spatial axis index counted from 0 over the spatial axes of
        ``(batch, channels, *spatial)``: in 2-D, ``dim=-2`` is axis 0 (``"left0"``, ``"right0"``) and
        ``dim=-1`` is axis 1 (``"left1"``, ``"right1"``). Two faces that need a value under the same key (e.g.
        one face, two conditions on different channels) must be given distinct names here.
    """

    kind: str = ""

    def __init__(
        self,
        left: Value = None,
        right: Value = None,
        *,
        faces: Optional[Sequence[str]] = None,
        dim: int = -1,
        channels: Optional[Sequence[int]] = None,
        keys: Optional[Mapping[str, str]] = None,
    ):
        values = {"left": _check_value("left", left), "right": _check_value("right", right)}
        if faces is None:
            faces = [s for s in SIDES if values[s] is not None] or list(SIDES)
        elif isinstance(faces, str):
            faces = [faces]
        faces = list(faces)
        for i, f in enumerate(faces):
            check_choice(f, f"faces[{i}]", SIDES)
        if len(set(faces)) != len(faces):
            raise ValueError(f"faces must not repeat a face, got {faces!r}")
        for s in SIDES:
            if values[s] is not None and s not in faces:
                raise ValueError(f"a value is given for the {s} face but faces={faces!r} does not include it")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int (an axis of the (batch, channels, *spatial) tensor), got {dim!r}")
        if channels is not None:
            channels = [check_index(c, "channels") for c in channels]
            if not channels or any(c < 0 for c in channels) or len(set(channels)) != len(channels):
                raise ValueError(f"channels must be distinct non-negative channel indices, got {channels!r}")
        if keys is not None and not isinstance(keys, Mapping):
            raise TypeError(f"keys must be a mapping {{'left': name, 'right': name}}, got {type(keys).__name__}")
        keys = dict(keys or {})
        for s, name in keys.items():
            if s not in SIDES:
                raise ValueError(f"keys must map 'left'/'right' to names, got key {s!r}")
            if not isinstance(name, str) or not name:
                raise TypeError(f"keys[{s!r}] must be a non-empty str (the name in boundary_values), got {name!r}")
        for s in SIDES:
            v = values[s]
            if v is not None and channels is not None and len(v) not in (1, len(channels)):
                raise ValueError(
                    f"{s} must be one value or per-channel values, one for each of the {len(channels)} channels it "
                    f"applies to (the selected channels), got {len(v)} values"
                )
        self.faces = tuple(s for s in SIDES if s in faces)
        self.values = values
        self.dim = dim
        self.channels = None if channels is None else tuple(channels)
        self.keys = keys

    # -- config round trip ---------------------------------------------------------------------------
    def _extra_config(self) -> dict:
        return {}

    def to_config(self) -> dict:
        """Plain-value description (strings, numbers, lists, dicts) that :func:`parse_boundary` reads back."""
        cfg = {"type": self.kind, "dim": self.dim, "faces": list(self.faces)}
        for s in SIDES:
            v = self.values.get(s)
            if v is not None:
                cfg[s] = v[0] if len(v) == 1 else list(v)
        if self.channels is not None:
            cfg["channels"] = list(self.channels)
        if self.keys:
            cfg["keys"] = dict(self.keys)
        cfg.update(self._extra_config())
        return cfg

    def __eq__(self, other):
        return isinstance(other, BoundaryCondition) and self.to_config() == other.to_config()

    def __hash__(self):
        return hash(repr(self))

    def __repr__(self):
        cfg = self.to_config()
        cfg.pop("type")
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


class Dirichlet(BoundaryCondition):
    """Prescribed value ``u = g`` on a face.

    Examples
    --------
    >>> Dirichlet(left=0.5, right=-1.0)          # both faces, constants
    >>> Dirichlet(faces=("right",))              # right face, value given at each call
    """

    kind = "dirichlet"


class Neumann(BoundaryCondition):
    """Prescribed outward-axis derivative ``du/dx = g`` on a face, in physical units.

    The grid along ``dim`` includes both end points of ``domain``, so ``h = (b - a) / (N - 1)``. The
    derivative is the one-sided finite difference of the given ``order``: with ``order=2`` (default),
    ``(-3 u0 + 4 u1 - u2) / (2h) = g_left`` and ``(3 uN - 4 u(N-1) + u(N-2)) / (2h) = g_right``; with
    ``order=1``, ``(u1 - u0) / h`` and ``(uN - u(N-1)) / h``.

    Signs: ``g`` is the derivative along the axis (``+x``) at both faces, not the outward normal derivative. At
    the left face the outward normal points to ``-x``, so the outward derivative there is ``-g_left``; at the
    right face it is ``g_right``.

    Parameters
    ----------
    domain : (float, float), default (0.0, 1.0)
        End points of the axis.
    order : {1, 2}, default 2
        Order of the one-sided stencil.

    Examples
    --------
    Heat ``u_t = -F_x`` with Fourier's flux ``F = -k u_x`` (positive in ``+x``) on ``[0, L]``: a heat flux ``q``
    *into* the domain at the left wall is ``F(0) = q``, so ``u_x(0) = -q / k``; a flux ``q`` into the domain at
    the right wall is ``F(L) = -q``, so ``u_x(L) = q / k``; an insulated wall is ``0``. The same fluxes give the
    conserved total its boundary term: ``probconserv_ext.conserved_total(times, total0, flux_left=F(0),
    flux_right=F(L))`` adds the net inflow ``F(0) - F(L)``. Heating the left wall of ``[0, 2]`` at ``q = 3`` with
    ``k = 0.5``, right wall insulated:

    >>> q, k, L = 3.0, 0.5, 2.0
    >>> walls = Neumann(left=-q / k, right=0.0, domain=(0.0, L))   # u_x(0) = -6: heat flows in, towards +x
    >>> # conserved_total(times, total0, flux_left=q * torch.ones_like(times)) = total0 + q * (t - t0)

    docs/guide/constraints.md ("Flux signs") runs this example against an exact solution.
    """

    kind = "neumann"

    def __init__(self, left: Value = None, right: Value = None, *, domain=(0.0, 1.0), order: int = 2, **kwargs):
        super().__init__(left, right, **kwargs)
        self.domain = check_interval(domain, "domain")
        # check_int first: True and 2.0 compare equal to 1 and 2, and would pass the choice alone.
        self.order = check_choice(check_int(order, "order"), "order", (1, 2))

    def _extra_config(self) -> dict:
        return {"domain": list(self.domain), "order": self.order}


class Periodic(BoundaryCondition):
    """Periodicity ``u(left) = u(right)`` along one axis, on a grid whose last node repeats the first.

    The grid along ``dim`` holds both end points of the period (``N + 1`` nodes, node ``N`` the same point as
    node 0), as the generated periodic problems of :mod:`boon_ext.datasets` do. Both faces are always
    constrained, and the condition takes no values: the output's two face nodes are replaced by their average,
    so they are equal to the last bit. With ``kernel_correction=True`` the two faces of the hidden fields are
    averaged after every Fourier layer as well (the FFT convolution is periodic already, so the kernel itself
    needs no correction along a periodic axis). In a mix of conditions, periodic faces are written first, so a
    corner shared with a Neumann or Dirichlet face belongs to that face.

    Parameters
    ----------
    dim : int, default -1
        The periodic axis of the ``(batch, channels, *spatial)`` output.
    channels : sequence of int, optional
        Output channels the condition applies to (default: all).
    faces : sequence of str, optional
        Accepted for symmetry with the other conditions; must name both faces.

    Raises
    ------
    ValueError
        If ``faces`` is not both faces, or a face value or ``keys`` is given (a periodic condition reads no
        values).

    Examples
    --------
    >>> Periodic()                               # the last axis
    >>> Periodic(dim=-2, channels=[0])           # the first spatial axis of a 2-D field, channel 0 only
    """

    kind = "periodic"

    def __init__(self, *, dim: int = -1, channels: Optional[Sequence[int]] = None, faces=None, **kwargs):
        if faces is not None and set(faces if not isinstance(faces, str) else [faces]) != set(SIDES):
            raise ValueError(f"faces must be both faces (a periodic condition holds on both), got {faces!r}")
        for s in SIDES:
            if kwargs.get(s) is not None:
                raise ValueError(f"{s} must be None (a periodic condition takes no face values), got {kwargs[s]!r}")
        keys = kwargs.pop("keys", None)
        if keys:
            raise ValueError(f"keys must be None (a periodic condition reads no call-time values), got {keys!r}")
        kwargs.pop("left", None), kwargs.pop("right", None)
        if kwargs:
            raise TypeError(f"Periodic got unexpected arguments {sorted(kwargs)}")
        super().__init__(faces=SIDES, dim=dim, channels=channels)


_KINDS = {"dirichlet": Dirichlet, "neumann": Neumann, "periodic": Periodic}


def _condition_from_config(cfg) -> BoundaryCondition:
    if isinstance(cfg, BoundaryCondition):
        return cfg
    if not isinstance(cfg, Mapping):
        raise TypeError(
            f"each boundary condition must be a Dirichlet/Neumann/Periodic object or a mapping with a 'type' key, "
            f"got {type(cfg).__name__}"
        )
    cfg = {k: v for k, v in dict(cfg).items() if not str(k).startswith("_")}
    kind = str(cfg.pop("type", "")).lower()
    if kind not in _KINDS:
        raise ValueError(f"boundary condition 'type' must be one of {sorted(_KINDS)}, got {kind!r}")
    return _KINDS[kind](**cfg)


def parse_boundary(boundary) -> List[BoundaryCondition]:
    """Read conditions from objects or plain config values.

    Parameters
    ----------
    boundary : BoundaryCondition, mapping, or a list of those, or None
        A mapping is ``{"type": "dirichlet" | "neumann" | "periodic", ...}`` with the constructor's
        keyword arguments.

    Returns
    -------
    list of BoundaryCondition
    """
    if boundary is None:
        return []
    if isinstance(boundary, (BoundaryCondition, Mapping)):
        boundary = [boundary]
    if isinstance(boundary, str) or not isinstance(boundary, Sequence):
        raise TypeError(
            f"boundary must be a condition, a mapping, a list of those, or None; got {type(boundary).__name__}"
        )
    return [_condition_from_config(c) for c in boundary]


def _given_needed(boundary_values: Optional[Mapping], needed: Sequence[str]) -> str:
    given = sorted(boundary_values, key=str) if boundary_values else []
    return f"given: {given}, needed: {sorted(needed)}"


def missing_value_message(rule: "FaceRule", boundary_values: Optional[Mapping]) -> str:
    """Error message for a face whose call-time value is not in ``boundary_values``.

    Parameters
    ----------
    rule : FaceRule
        The face that needs a value.
    boundary_values : mapping or None
        What the caller gave.

    Returns
    -------
    str
        Names the missing key and the face, then ``given: [...], needed: [...]`` with the keys given and every
        key the model needs.
    """
    needed = rule.needed_keys or (rule.key,)
    message = (
        f"boundary_values[{rule.key!r}] is missing: the {rule.kind} condition on the {rule.side} face of spatial "
        f"axis {rule.axis} has no constant value, so its value must be given at each call "
        f"({_given_needed(boundary_values, needed)})"
    )
    if not boundary_values:
        # Nothing at all arrived: the usual cause is the Trainer's tensor-only filter (see sample_keys).
        message += f". If neuralop's Trainer calls the model: {NO_PROCESSOR_HINT}"
    return message


class ConstantKey(NamedTuple):
    """Key, in ``boundary_values``, of a constant face's value given in the units the model's output is in.

    :class:`~boon_ext.BoundaryDataProcessor` gives a model trained on normalised outputs its constant conditions
    in normalised units under these keys (see :meth:`BoundarySpec.with_constants_at_call`). Call-time keys are
    strings, so these can never collide with them. (A named tuple: ``torch.compile`` traces dictionaries keyed by
    tuples, not by dataclass instances.)
    """

    kind: str
    axis: int
    side: str
    source: int  # index of the condition the face comes from


@dataclass(frozen=True)
class FaceRule:
    """One condition on one face, resolved against a model of known dimension."""

    kind: str
    axis: int  # spatial axis index, 0 .. n_dim-1
    side: str
    channels: Optional[Tuple[int, ...]]
    constant: Optional[Tuple[float, ...]]
    key: str
    domain: Tuple[float, float] = (0.0, 1.0)
    order: int = 2
    source: int = 0  # index of the condition the rule comes from
    # Every key the model's boundary_values must hold, for error messages that list them all.
    needed_keys: Tuple[str, ...] = field(default=(), compare=False)

    @property
    def index(self) -> int:
        """Node index along the axis: 0 for the left face, -1 for the right."""
        return 0 if self.side == "left" else -1

    @property
    def needs_value(self) -> bool:
        return self.kind != "periodic" and self.constant is None

    @property
    def constant_key(self) -> ConstantKey:
        """The key under which a data processor gives this face's constant in the output's units."""
        return ConstantKey(self.kind, self.axis, self.side, self.source)


class BoundarySpec:
    """The conditions of a model, resolved against its number of spatial dimensions.

    Parameters
    ----------
    boundary : see :func:`parse_boundary`
    n_dim : int
        Number of spatial dimensions of the model.
    time_dim : int, optional
        Axis (negative, of the ``(batch, channels, *spatial)`` tensor) that is time: no condition may
        hold on it.
    out_channels : int, optional
        Number of output channels, to check ``channels`` selections.
    """

    def __init__(self, boundary, n_dim: int, time_dim: Optional[int] = None, out_channels: Optional[int] = None):
        self.conditions = parse_boundary(boundary)
        self.n_dim = check_int(n_dim, "n_dim", minimum=1)
        if time_dim is not None and (isinstance(time_dim, bool) or not isinstance(time_dim, numbers.Integral)):
            raise TypeError(f"time_dim must be an int (an axis of the (batch, channels, *spatial) tensor) or None, "
                            f"got {time_dim!r} ({type(time_dim).__name__})")
        if out_channels is not None:
            out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.time_axis = None if time_dim is None else self._axis(int(time_dim), "time_dim")
        axes = {self._axis(c.dim, "dim") for c in self.conditions}
        single_axis = len(axes) <= 1
        rules: List[FaceRule] = []
        for ci, c in enumerate(self.conditions):
            axis = self._axis(c.dim, "dim")
            if axis == self.time_axis:
                raise ValueError(
                    f"dim must be a spatial axis, not the time axis (time_dim={time_dim}): boundary conditions hold "
                    f"on spatial axes only, got dim={c.dim} in {c!r}"
                )
            if out_channels is not None and c.channels is not None and max(c.channels) >= out_channels:
                raise ValueError(
                    f"channels must be output channels of the model (out_channels={out_channels}), got channel "
                    f"{max(c.channels)} in {c!r}"
                )
            n_sel = len(c.channels) if c.channels is not None else out_channels
            for side in SIDES:
                v = c.values.get(side)
                if v is not None and n_sel is not None and len(v) not in (1, n_sel):
                    raise ValueError(
                        f"{side} must be one value or per-channel values, one for each of the {n_sel} channels it "
                        f"applies to ({'the selected channels' if c.channels is not None else 'out_channels'}), got "
                        f"{len(v)} values in {c!r}"
                    )
            for side in c.faces:
                key = c.keys.get(side) or (side if single_axis else f"{side}{axis}")
                rules.append(
                    FaceRule(
                        kind=c.kind,
                        axis=axis,
                        side=side,
                        channels=c.channels,
                        constant=c.values.get(side),
                        key=key,
                        domain=getattr(c, "domain", (0.0, 1.0)),
                        order=getattr(c, "order", 2),
                        source=ci,
                    )
                )
        self._check_overlaps(rules)
        rules.sort(key=lambda r: (PRIORITY[r.kind], r.axis, SIDES.index(r.side)))
        seen: Dict[str, FaceRule] = {}
        for r in rules:
            if r.needs_value:
                if r.key in seen:
                    o = seen[r.key]
                    raise ValueError(
                        f"two faces take their call-time value under the key {r.key!r} (the {o.kind} {o.side} face "
                        f"of spatial axis {o.axis} and the {r.kind} {r.side} face of spatial axis {r.axis}); give "
                        "one of the conditions its own names with keys={'left': ..., 'right': ...}"
                    )
                seen[r.key] = r
        needed = tuple(seen)
        self.rules: Tuple[FaceRule, ...] = tuple(replace(r, needed_keys=needed) for r in rules)

    def conditions_for(self, n_dim: int, time_dim: Optional[int] = None, name: str = "boundary"):
        """This spec's conditions, to be resolved again for a model of ``n_dim`` spatial dims and ``time_dim``.

        A spec given where conditions are expected carries its own dimensions and time axis; they are checked
        against the model's instead of being dropped, and a mismatch raises ``ValueError`` naming ``name``.
        """
        own_time = None if self.time_axis is None else self.time_axis - self.n_dim
        if time_dim is not None and not isinstance(time_dim, bool) and isinstance(time_dim, numbers.Integral):
            n = check_int(n_dim, "n_dim", minimum=1)
            time_dim = int(time_dim) if time_dim < 0 else int(time_dim) - 2 - n  # negative, as the spec keeps it
        if self.n_dim != n_dim or own_time != time_dim:
            raise ValueError(
                f"{name} must be conditions, or a BoundarySpec made for this model ({n_dim} spatial dims, time_dim="
                f"{time_dim}), got a BoundarySpec for {self.n_dim} spatial dims with time_dim={own_time}"
            )
        return self.conditions

    def _axis(self, dim: int, name: str) -> int:
        nd = self.n_dim
        # dims count in the (batch, channels, *spatial) tensor, as in torch
        axis = dim + nd if dim < 0 else dim - 2
        if not 0 <= axis < nd:
            raise ValueError(
                f"{name} must be a spatial axis of a {nd}-D model, one of {list(range(-nd, 0))} or "
                f"{list(range(2, 2 + nd))}, got {dim}"
            )
        return axis

    @staticmethod
    def _check_overlaps(rules: List[FaceRule]):
        for i, a in enumerate(rules):
            for b in rules[i + 1 :]:
                if a.axis != b.axis or a.source == b.source:
                    continue
                same_face = a.side == b.side or "periodic" in (a.kind, b.kind)
                overlap = a.channels is None or b.channels is None or set(a.channels) & set(b.channels)
                if same_face and overlap:
                    raise ValueError(
                        f"conditions conflict: a {a.kind} and a {b.kind} condition both hold on the {a.side} face "
                        f"of spatial axis {a.axis} for the same channels"
                    )

    # -- constants in other units ------------------------------------------------------------------
    @property
    def constant_keys(self) -> Tuple[ConstantKey, ...]:
        """Keys of the faces with a constant value (see :class:`ConstantKey`)."""
        return tuple(r.constant_key for r in self.rules if r.constant is not None)

    def with_constants_at_call(self) -> "BoundarySpec":
        """This spec with every constant face reading its value at call time, under its :class:`ConstantKey`.

        A model trained on normalised outputs must impose its constants in normalised units, which depend on the
        normaliser's statistics: :class:`~boon_ext.BoundaryDataProcessor` gives them at each call, and the model
        enforces this spec when ``boundary_values`` holds them (see :meth:`for_values`).
        """
        derived = self.__dict__.get("_constants_at_call")
        if derived is None:
            rules = [replace(r, constant=None, key=r.constant_key) if r.constant is not None else r for r in self.rules]
            needed = tuple(r.key for r in rules if r.needs_value)
            derived = copy.copy(self)
            derived.rules = tuple(replace(r, needed_keys=needed) for r in rules)
            derived._constants_at_call = derived
            self._constants_at_call = derived
        return derived

    def for_values(self, boundary_values) -> "BoundarySpec":
        """The spec to enforce with ``boundary_values``: :meth:`with_constants_at_call` if they hold a
        :class:`ConstantKey`, else this one."""
        if isinstance(boundary_values, Mapping) and any(isinstance(k, ConstantKey) for k in boundary_values):
            return self.with_constants_at_call()
        return self

    # -- queries -------------------------------------------------------------------------------------
    def __bool__(self):
        return bool(self.rules)

    @property
    def required_keys(self) -> Tuple[str, ...]:
        """Keys that ``boundary_values`` must hold at each call."""
        return tuple(r.key for r in self.rules if r.needs_value)

    def check_values(self, boundary_values: Optional[Mapping], allow_missing: bool = False) -> None:
        """Check that ``boundary_values`` holds exactly the keys :attr:`required_keys` names.

        Parameters
        ----------
        boundary_values : mapping str -> value, or None
        allow_missing : bool, default False
            Check only for keys that no face reads (a model's forward leaves a missing key to the face that
            needs it, whose message names the face).

        Raises
        ------
        TypeError
            If ``boundary_values`` is neither None nor a mapping.
        ValueError
            If a needed key is missing or a key is given that no face reads; the message lists the keys given
            and the keys needed.
        """
        if boundary_values is not None and not isinstance(boundary_values, Mapping):
            raise TypeError(
                f"boundary_values must be a mapping from face keys to tensors, got {type(boundary_values).__name__}"
            )
        given = set(boundary_values or ())
        needed = set(self.required_keys)
        missing = () if allow_missing else needed - given
        unknown = given - needed
        if missing or unknown:  # (sorted only here: the check runs in every forward pass)
            missing, unknown = sorted(missing), sorted(unknown, key=str)
            what = ([f"missing {missing}"] if missing else []) + ([f"no face reads {unknown}"] if unknown else [])
            raise ValueError(
                "boundary_values must hold exactly the keys of the faces without a constant value, got "
                f"{'; '.join(what)} ({_given_needed(boundary_values, self.required_keys)})"
            )

    def axes(self, kinds=("dirichlet", "neumann", "periodic")) -> Tuple[int, ...]:
        return tuple(sorted({r.axis for r in self.rules if r.kind in kinds}))

    def sides(self, axis: int, kinds=("dirichlet", "neumann")) -> Tuple[str, ...]:
        """Faces of ``axis`` that carry a condition of one of ``kinds``, in left-right order."""
        s = {r.side for r in self.rules if r.axis == axis and r.kind in kinds}
        return tuple(x for x in SIDES if x in s)

    def to_config(self) -> List[dict]:
        return [c.to_config() for c in self.conditions]

    def __repr__(self):
        return f"BoundarySpec({self.conditions!r}, n_dim={self.n_dim})"
