"""What the BOON reproduction trains: its problems, models and configurations (``experiments/reproduce_boon.py``).

The problems come from the generators in ``boon_ext.datasets``, with every Dirichlet face's value taken per sample
from the target as the paper does; the models are neuralop's FNO and the BOON variants compared with it.
"""

from __future__ import annotations

import copy
import json
import warnings

import torch

from boon_ext.datasets import burgers_dirichlet, burgers_periodic, heat_neumann, stokes_second_problem
from boon_ext.datasets.base import BoundaryProblem


PROBLEMS = ("heat", "stokes", "stokes_spacetime", "burgers_periodic", "burgers_dirichlet", "stokes_nu001")
MODELS = ("fno", "boon", "boon_hidden", "boon_output", "boon_lift")
LIFT_WIDTH = 4
MODEL_LABELS = {
    "fno": "FNO",
    "boon": "BOON (T2 + output T1)",
    "boon_hidden": "BOON (T2 + T1 in every layer)",
    "boon_output": "BOON (output T1 only)",
    "boon_lift": f"BOON (output lift, {LIFT_WIDTH} nodes)",
}
# Keyword arguments of BOONFNO per model (None: the plain FNO).
MODEL_KWARGS = {
    "fno": None,
    "boon": dict(kernel_correction=True),
    "boon_hidden": dict(kernel_correction=True, hidden_values=True),
    "boon_output": dict(kernel_correction=False),
    "boon_lift": dict(kernel_correction=False, lift_width=LIFT_WIDTH),
}
STOKES_VISCOSITY = {"stokes": 0.1, "stokes_spacetime": 0.1, "stokes_nu001": 0.01}
# Kinds of boundary condition per problem; make_problem checks them against the generated data, so that
# --status can tell where a variant is defined without loading any data.
CONDITION_KINDS = {"heat": ("neumann",), "stokes": ("dirichlet",), "stokes_spacetime": ("dirichlet",),
                   "burgers_periodic": ("periodic",), "burgers_dirichlet": ("dirichlet",),
                   "stokes_nu001": ("dirichlet",)}
SCHEDULES = ("paper", "converge")

CONFIGS = {
    # Smoke size: every code path, a few epochs (the criterion is reported, it is not expected to hold).
    "quick": dict(
        n_train=24, n_val=8, n_test=8, st_train=16, st_val=4, st_test=4, batch_size=8, seeds=[0, 1],
        max_epochs=3, step_size=2, gamma=0.5, lr=1e-3, weight_decay=1e-4, patience=2, tol=0.01, min_epochs=0,
        fno_1d=dict(n_modes=(15,), hidden_channels=16, n_layers=2),
        fno_st=dict(n_modes=(8, 7), hidden_channels=8, n_layers=2),
        n_points=dict(heat=65, stokes=65, stokes_spacetime=32, burgers_periodic=33, burgers_dirichlet=65,
                      stokes_nu001=65),
        n_times=8, checkpoint_every=0,
    ),
    # The paper's reference experiments (see experiments/reproduce_boon.py's docstring).
    "full": dict(
        n_train=500, n_val=100, n_test=100, st_train=1000, st_val=200, st_test=200, batch_size=20, seeds=[0, 1, 2],
        max_epochs=500, step_size=50, gamma=0.5, lr=1e-3, weight_decay=1e-4, patience=50, tol=0.01,
        min_epochs=300,
        fno_1d=dict(n_modes=(31,), hidden_channels=64, n_layers=4),
        fno_st=dict(n_modes=(24, 23), hidden_channels=32, n_layers=4),
        n_points=dict(heat=501, stokes=501, stokes_spacetime=501, burgers_periodic=129, burgers_dirichlet=501,
                      stokes_nu001=501),
        n_times=25, checkpoint_every=10,
    ),
}


def _sizes(cfg, name):
    if name == "stokes_spacetime":
        return cfg["st_train"], cfg["st_val"], cfg["st_test"]
    return cfg["n_train"], cfg["n_val"], cfg["n_test"]


def architecture(cfg, name):
    """The FNO settings (``n_modes``, width, layers) of problem ``name``: the space-time ones for space-time Stokes."""
    return cfg["fno_st"] if name == "stokes_spacetime" else cfg["fno_1d"]


def generate(name, cfg, cache_dir):
    """The generator's problem (validation and test samples after the training samples)."""
    n = cfg["n_points"][name]
    total = sum(_sizes(cfg, name))
    if name == "heat":
        return heat_neumann(total, n_points=n, cache_dir=cache_dir)
    if name in STOKES_VISCOSITY:
        # Viscosity fixed, frequency random: with both random, u(., T) is not a function of the initial
        # condition (it only fixes k = sqrt(w / 2 nu)), so no model could learn the map.
        n_times = cfg["n_times"] if name == "stokes_spacetime" else None
        return stokes_second_problem(total, n_points=n, n_times=n_times, viscosity=STOKES_VISCOSITY[name],
                                     cache_dir=cache_dir)
    if name == "burgers_periodic":
        return burgers_periodic(total, n_points=n, cache_dir=cache_dir)
    if name == "burgers_dirichlet":
        return burgers_dirichlet(total, n_points=n, cache_dir=cache_dir)
    raise ValueError(f"problem: expected one of {PROBLEMS}, got {name!r}")


def values_from_target(problem):
    """The problem with every Dirichlet face's value taken per sample from the target, as the paper does.

    The Dirichlet conditions (all on the spatial axis) become one ``{"type": "dirichlet", "faces": [...]}`` with
    no constants, and ``boundary_values`` hold ``y`` on those faces (shape ``(S,)``, or ``(S, 1, T)`` in
    space-time). Neumann and periodic conditions are kept (a Neumann value is a slope, which the generators impose
    with the same stencil the models use).

    Returns
    -------
    (BoundaryProblem, float)
        The problem, and the largest difference between the target's face values and the generator's own.
    """
    dirichlet = [c for c in problem.boundary if c["type"] == "dirichlet"]
    if not dirichlet:
        return problem, 0.0
    dims = {c.get("dim", -1) for c in dirichlet}
    if len(dims) != 1:
        raise ValueError(f"values_from_target expects Dirichlet conditions on one axis, got dims {sorted(dims)}")
    dim = dims.pop()
    boundary = [c for c in problem.boundary if c["type"] != "dirichlet"]
    values = {k: v for k, v in problem.boundary_values.items()}
    faces, diff = [], 0.0
    spatial = 2  # the spatial axis is the first one after (batch, channel) in both layouts
    for side, idx in (("left", 0), ("right", -1)):
        conds = [c for c in dirichlet if side in c or side in c.get("faces", [])]
        if not conds:
            continue
        faces.append(side)
        face = problem.y.select(spatial, idx)  # (S, 1) or (S, 1, T)
        g = face[:, 0] if face.ndim == 2 else face
        if side in conds[0]:
            diff = max(diff, float((g.double() - float(conds[0][side])).abs().max()))
        else:
            old = problem.boundary_values[side].double()
            diff = max(diff, float((g.double().reshape(old.shape) - old).abs().max()))
        values[side] = g.clone()
    new = {"type": "dirichlet", "faces": faces}
    if any("dim" in c for c in dirichlet):
        new["dim"] = dim
    boundary.append(new)
    fixed = BoundaryProblem(
        name=problem.name, x=problem.x, y=problem.y, grid=problem.grid, boundary=boundary, boundary_values=values,
        domain=problem.domain, times=problem.times, params=problem.params, settings=problem.settings,
    )
    return fixed, diff


def make_problem(name, cfg, cache_dir):
    problem, diff = values_from_target(generate(name, cfg, cache_dir))
    kinds = tuple(sorted({c["type"] for c in problem.boundary}))
    if kinds != CONDITION_KINDS[name]:
        raise RuntimeError(f"{name}: the generator's conditions are {kinds}, CONDITION_KINDS says "
                           f"{CONDITION_KINDS[name]}: update CONDITION_KINDS")
    return problem, diff


def defined(model, prob):
    """Whether ``model`` is defined for problem ``prob``'s conditions (``boon_hidden``: Dirichlet conditions only)."""
    kinds = CONDITION_KINDS[prob]
    if model != "boon_hidden" or kinds == ("dirichlet",):
        return True, ""
    return False, f"n/a: per-layer values are defined for Dirichlet faces only ({', '.join(kinds)} here)"


def build_model(kind, problem, arch, seed):
    """The same FNO architecture, unconstrained or wrapped by BOON, with identical initial weights."""
    torch.manual_seed(seed)
    kwargs = dict(in_channels=1, out_channels=1, **arch)
    if MODEL_KWARGS[kind] is None:
        from neuralop.models import FNO

        return FNO(**kwargs)
    time_dim = -1 if problem.x.ndim == 4 else None  # space-time layout (B, C, X, T)
    return build_boon(problem.boundary, time_dim, **MODEL_KWARGS[kind], **kwargs)


def build_boon(boundary, time_dim, **kwargs):
    """``BOONFNO(boundary=..., time_dim=..., **kwargs)``, without the measured-risk warning: both campaigns train
    T2 to measure it, and the warning quotes that measurement."""
    from boon_ext import BOONFNO, BoundaryAccuracyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundaryAccuracyWarning)
        return BOONFNO(boundary=boundary, time_dim=time_dim, **kwargs)


def check_selection(problems, models, schedule):
    """Raise ``ValueError`` naming the argument if a problem, model or schedule is unknown."""
    for p in problems:
        if p not in PROBLEMS:
            raise ValueError(f"problems: expected names from {PROBLEMS}, got {p!r}")
    for m in models:
        if m not in MODELS:
            raise ValueError(f"models: expected names from {MODELS}, got {m!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")


def training_order(seeds, models, problems):
    """(seed, model, problem) in the order runs are trained.

    Seed-major, then models and problems in the order given: a campaign stopped part-way (split over sessions)
    leaves every problem and model with the same seeds done, not some problems with all seeds.
    """
    return [(seed, m, prob) for seed in seeds for m in models for prob in problems]


def make_config(quick=False, config=None, seeds=None, max_epochs=None):
    """The mode's configuration with ``config`` entries, ``seeds`` and ``max_epochs`` overriding it."""
    cfg = copy.deepcopy(CONFIGS["quick" if quick else "full"])
    cfg.update(config or {})
    if seeds is not None:
        cfg["seeds"] = list(seeds)
    if not cfg["seeds"]:
        raise ValueError("seeds: expected at least one seed")
    if max_epochs is not None:
        cfg["max_epochs"] = int(max_epochs)
    return cfg


def parse_overrides(items, cfg):
    """Configuration overrides ``key=value`` or ``key.subkey=value`` (value in JSON), applied to a copy of ``cfg``.

    Parameters
    ----------
    items : sequence of str
    cfg : dict
        The mode's configuration (unchanged).

    Returns
    -------
    dict
        The overridden top-level entries, ready for ``run(config=...)``.

    Raises
    ------
    ValueError
        An item without ``=``, an unknown key, or a value that is not JSON.
    """
    config = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set: expected key=value (value in JSON), got {item!r}")
        path, text = item.split("=", 1)
        keys = path.split(".")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"--set {path}: the value {text!r} is not JSON ({err.msg})") from None
        top = keys[0]
        if top not in cfg:
            raise ValueError(f"--set: unknown key {top!r}; expected one of {sorted(cfg)}")
        if len(keys) == 1:
            config[top] = value
            continue
        entry = copy.deepcopy(config.get(top, cfg[top]))
        node = entry
        for k in keys[1:-1]:
            if not isinstance(node, dict) or k not in node:
                raise ValueError(f"--set: unknown key {path!r}")
            node = node[k]
        if not isinstance(node, dict) or keys[-1] not in node:
            raise ValueError(f"--set: unknown key {path!r}")
        node[keys[-1]] = tuple(value) if isinstance(node[keys[-1]], tuple) else value
        config[top] = entry
    return config
