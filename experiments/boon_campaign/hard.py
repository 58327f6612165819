"""The hard-regime campaign's problems, splits, models and sizes (``reproduce_boon.py --campaign hard``).

A second problem family beside the first campaign's (``configurations.py``), built on the same loop
(``training.train``), claims and workers (``campaign``) and rule (``rule.choose_default``): the regimes in which the
BOON paper's errors sit at the walls or propagate inward from them (``boon_ext.datasets``, ``docs/datasets.md``).

A *cell* is a problem under one split: ``"<problem>/iid"`` (the samples in generation order) or
``"<problem>/ordered"`` (sorted by the problem's physical parameter: the lowest train, the next validate, the
highest test, an extrapolation test). Each cell trains every model of :data:`MODELS` defined for it, with the
same architecture, data, initial weights and batch order; ``fno_enforced`` is the trained FNO of the same seed
wrapped by ``BOONFNO.from_fno`` (output enforcement) after training, evaluated inside the FNO's run for free.

The wall-input FNO (``fno_walls``) gets, per wall face, one extra input channel per output channel holding the
face's prescribed values, the numbers BOON receives (its ``boundary_values``, or a condition's constant),
*broadcast along the wall-normal axis*: every node of the line normal to the wall carries that wall's value at
the node's position along the wall (and time). Broadcast rather than a channel with the values at the wall nodes
and zeros elsewhere because the FNO lifts every node pointwise and mixes nodes only through a few Fourier modes:
a value present at every node reaches every prediction through the lifting alone, whereas a one-node spike
spreads over all modes and is mostly cut by the truncation. The broadcast form is the stronger baseline, so an
effect BOON keeps over it is one of enforcement, not of information. Its extra lifting weights start at zero, so
it starts as the same function as the FNO (every other weight identical).

Runs are reported at the end of their full learning-rate schedule (``schedule="paper"``: every epoch, ten
halvings), never at a best-validation checkpoint; the best-validation epoch and its test error are recorded
beside, for reference.
"""

from __future__ import annotations

import copy
import hashlib
import json

import torch
from torch import nn

from experiments.boon_campaign.configurations import build_boon, values_from_target
from experiments.boon_campaign.regions import face_values

# problem -> generator, its arguments (full size), the paper's size, the ordered split's key, the condition kinds
PROBLEMS = {
    "heat": dict(
        generator="heat_neumann_preset", kwargs=dict(preset="reference", n_points=257), order_by="ic_frequency",
        kinds=("neumann",), spacetime=False, cost_key="heat_reference",
        paper="500 nodes, 500 / 100 samples, single step, FNO 16 modes, width 64",
    ),
    "burgers_walls": dict(
        generator="burgers_dirichlet", kwargs=dict(n_points=257, left=(-1.0, 1.0), right=(-1.0, 1.0)),
        order_by="left", kinds=("dirichlet",), spacetime=False, cost_key="burgers_dirichlet_walls",
        paper="500 nodes, 500 / 100 samples, viscosity 0.1, wall values from the target",
    ),
    "stokes_thin": dict(
        generator="stokes_spacetime", kwargs=dict(preset="thin_layer", n_points=129), order_by="frequency",
        kinds=("dirichlet",), spacetime=True, cost_key="stokes_thin_layer",
        paper="500 nodes x 25 frames, 1000 / 200 samples, 12 modes, width 32 (files at viscosity 0.1 and 0.001)",
    ),
    "stokes_ref": dict(
        generator="stokes_spacetime", kwargs=dict(preset="reference", n_points=65), order_by="frequency",
        kinds=("dirichlet",), spacetime=True, cost_key="stokes_reference",
        paper="500 nodes x 25 frames, 1000 / 200 samples, 12 modes, width 32, viscosity 0.1",
    ),
    "wave": dict(
        generator="wave_equation", kwargs=dict(n_points=65, walls="neumann", n_times=25), order_by=None,
        kinds=("neumann",), spacetime=True, cost_key="wave_neumann",
        paper="a data set name only (3-D, Neumann), no code",
    ),
    "cavity_vorticity": dict(
        generator="lid_driven_cavity", kwargs=dict(n_points=18, n_times=25, t_final=2.0, refine=4,
                                                   fields="vorticity"),
        order_by="lid_speed", kinds=("dirichlet",), spacetime=True, cost_key="cavity",
        paper="100 x 100 solved, 50 x 50 x 25 frames learned, 1000 / 200 samples, modes 8, width 20, batch 10, "
              "wall vorticity from the target at every frame",
    ),
    "cavity_velocity": dict(
        generator="lid_driven_cavity", kwargs=dict(n_points=18, n_times=25, t_final=2.0, refine=4,
                                                   fields="velocity"),
        order_by="lid_speed", kinds=("dirichlet",), spacetime=True, cost_key="cavity",
        paper="not in the paper: (u, v) with the no-slip walls and the lid as prescribed Dirichlet data",
    ),
}

MODELS = ("fno", "fno_walls", "boon_output", "boon", "boon_hidden", "fno_enforced")
TRAINED_MODELS = MODELS[:-1]  # fno_enforced is evaluated inside the FNO's run
MODEL_LABELS = {
    "fno": "FNO",
    "fno_walls": "FNO + wall values as input",
    "boon_output": "BOON output only (default)",
    "boon": "BOON T2 + output",
    "boon_hidden": "BOON T2 + values in every layer",
    "fno_enforced": "trained FNO + output enforcement",
}
MODEL_KWARGS = {
    "fno": None,
    "fno_walls": None,
    "boon_output": dict(kernel_correction=False),
    "boon": dict(kernel_correction=True),
    "boon_hidden": dict(kernel_correction=True, hidden_values=True),
}
# Training cost per epoch relative to the FNO, for the plan (T2: docs/datasets.md's 1.7x; the others about 1x).
COST_FACTOR = {"fno": 1.0, "fno_walls": 1.0, "boon_output": 1.0, "boon": 1.7, "boon_hidden": 1.7,
               "fno_enforced": 0.0}
# Cells whose models wait for code, as {(problem, model): "pending ...: why"}; they stay in the plan and the table,
# marked pending. None now. T2 needs an even node count along every non-last spatial axis (neuralop's fftshift on an
# odd-length axis is not shift-equivariant; BOONFNO refuses it), so the cavity runs on 18 x 18 nodes (it ran on
# 17 x 17 before its T2 cells were enabled, and no cavity run had been trained on it).
PENDING = {}
BUDGET_HOURS = 40.0

_ARCH_1D = dict(n_modes=(32,), hidden_channels=64, n_layers=4)
_TRAIN = dict(lr=1e-3, weight_decay=1e-4, gamma=0.5, patience=50, tol=0.01, min_epochs=0, checkpoint_every=10)

# Full sizes: docs/datasets.md's proposal (measured in results/datasets/costs.json), epochs fitted to the budget.
# The learning rate halves ten times over every run (step = epochs / 10). Enabling the cavity's T2 cells (and its
# 18-node grid, 12% more nodes than the 17 measured) put the plan over the budget by 5.9 h. The cuts: the cell
# stokes_ref/ordered (3.8 h; the ordered split is asked for on heat and space-time Stokes, and stokes_thin/ordered
# is the space-time Stokes cell where the boundary carries the most; ``--cells stokes_ref/ordered`` still trains
# it) and the cavity's epochs, 100 -> 90 (still ten halvings, every 9 epochs; 1.2 h).
CONFIGS = {
    "full": dict(
        seeds=[0, 1, 2],
        cells=["heat/iid", "heat/ordered", "burgers_walls/iid", "stokes_thin/iid", "stokes_thin/ordered",
               "stokes_ref/iid", "wave/iid", "cavity_vorticity/iid", "cavity_velocity/iid"],
        problems={
            "heat": dict(sizes=[500, 100, 100], batch_size=20, arch=_ARCH_1D, epochs=250),
            "burgers_walls": dict(sizes=[500, 100, 100], batch_size=20, arch=_ARCH_1D, epochs=250),
            "stokes_thin": dict(sizes=[200, 50, 100], batch_size=20, epochs=100,
                                arch=dict(n_modes=(32, 13), hidden_channels=32, n_layers=4)),
            "stokes_ref": dict(sizes=[300, 50, 100], batch_size=20, epochs=150,
                               arch=dict(n_modes=(16, 13), hidden_channels=32, n_layers=4)),
            "wave": dict(sizes=[300, 50, 100], batch_size=20, epochs=150,
                         arch=dict(n_modes=(16, 13), hidden_channels=32, n_layers=4)),
            "cavity_vorticity": dict(sizes=[200, 50, 100], batch_size=10, epochs=90,
                                     arch=dict(n_modes=(8, 8, 13), hidden_channels=20, n_layers=4)),
            "cavity_velocity": dict(sizes=[200, 50, 100], batch_size=10, epochs=90,
                                    arch=dict(n_modes=(8, 8, 13), hidden_channels=20, n_layers=4)),
        },
        **_TRAIN,
    ),
    # Every problem, split and model at smoke size; the numbers mean nothing.
    "quick": dict(
        seeds=[0],
        cells=["heat/iid", "heat/ordered", "burgers_walls/iid", "stokes_thin/iid", "stokes_thin/ordered",
               "stokes_ref/iid", "wave/iid", "cavity_vorticity/iid", "cavity_velocity/iid"],
        problems={
            "heat": dict(sizes=[12, 4, 4], batch_size=4, epochs=2, kwargs=dict(n_points=33),
                         arch=dict(n_modes=(8,), hidden_channels=8, n_layers=2)),
            "burgers_walls": dict(sizes=[12, 4, 4], batch_size=4, epochs=2, kwargs=dict(n_points=33),
                                  arch=dict(n_modes=(8,), hidden_channels=8, n_layers=2)),
            "stokes_thin": dict(sizes=[8, 4, 4], batch_size=4, epochs=2, kwargs=dict(n_points=33, n_times=6),
                                arch=dict(n_modes=(8, 3), hidden_channels=8, n_layers=2)),
            "stokes_ref": dict(sizes=[8, 4, 4], batch_size=4, epochs=2, kwargs=dict(n_points=17, n_times=6),
                               arch=dict(n_modes=(8, 3), hidden_channels=8, n_layers=2)),
            "wave": dict(sizes=[8, 4, 4], batch_size=4, epochs=2, kwargs=dict(n_points=17, n_times=6),
                         arch=dict(n_modes=(8, 3), hidden_channels=8, n_layers=2)),
            "cavity_vorticity": dict(sizes=[6, 2, 2], batch_size=3, epochs=2,
                                     kwargs=dict(n_points=8, n_times=4, t_final=0.5, refine=1),
                                     arch=dict(n_modes=(4, 4, 3), hidden_channels=6, n_layers=2)),
            "cavity_velocity": dict(sizes=[6, 2, 2], batch_size=3, epochs=2,
                                    kwargs=dict(n_points=8, n_times=4, t_final=0.5, refine=1),
                                    arch=dict(n_modes=(4, 4, 3), hidden_channels=6, n_layers=2)),
        },
        **dict(_TRAIN, checkpoint_every=1),
    ),
}


def make_config(quick=False, seeds=None, cells=None):
    """The mode's configuration, with ``seeds`` and ``cells`` overriding it (checked)."""
    cfg = copy.deepcopy(CONFIGS["quick" if quick else "full"])
    if seeds is not None:
        cfg["seeds"] = [int(s) for s in seeds]
    if not cfg["seeds"]:
        raise ValueError("seeds must be a non-empty list of ints, got []")
    if cells is not None:
        cfg["cells"] = [check_cell(c) for c in cells]
    return cfg


def check_cell(cell):
    """``cell`` (``"<problem>/<split>"``) if valid, else ``ValueError`` naming what was expected."""
    prob, _, split = str(cell).partition("/")
    if prob not in PROBLEMS:
        raise ValueError(f"cells must be <problem>/<split> with a problem of {tuple(PROBLEMS)}, got {cell!r}")
    if split not in ("iid", "ordered"):
        raise ValueError(f"cells must be <problem>/<split> with split 'iid' or 'ordered', got {cell!r}")
    if split == "ordered" and PROBLEMS[prob]["order_by"] is None:
        raise ValueError(f"cells must name an ordered split only for a problem with a per-sample parameter, got "
                         f"{cell!r} ({prob}'s samples share their parameters)")
    return f"{prob}/{split}"


def check_models(models):
    for m in models:
        if m not in MODELS:
            raise ValueError(f"models must be names from {MODELS}, got {m!r}")
    return list(models)


def cell_settings(cfg, cell):
    """Everything one cell's runs depend on, seed aside: generator arguments, sizes, split, architecture, training."""
    prob, _, split = cell.partition("/")
    spec, own = PROBLEMS[prob], cfg["problems"][prob]
    epochs = int(own["epochs"])
    return dict(
        problem=prob, split=split, generator=spec["generator"], kwargs={**spec["kwargs"], **own.get("kwargs", {})},
        order_by=spec["order_by"] if split == "ordered" else None, sizes=list(own["sizes"]),
        batch_size=own["batch_size"], arch=dict(own["arch"]), max_epochs=epochs, step_size=max(1, epochs // 10),
        **{k: cfg[k] for k in ("lr", "weight_decay", "gamma", "patience", "tol", "min_epochs", "checkpoint_every")},
    )


def defined(model, cell):
    """``(True, "")`` where ``model`` trains in ``cell``; else ``(False, why)`` (not defined, or pending)."""
    prob = cell.partition("/")[0]
    if (prob, model) in PENDING:
        return False, PENDING[(prob, model)]
    if model == "boon_hidden":
        if PROBLEMS[prob]["kinds"] != ("dirichlet",):
            return False, "n/a: values in every layer are defined for Dirichlet faces only"
        if prob == "cavity_velocity":
            return False, "n/a: values in every layer need one output channel (here u, v)"
    return True, ""


def run_key(settings, model):
    """Fingerprint of a run's settings (seed aside): only runs with the current one are resumed or reported."""
    relevant = dict(campaign="hard", model=model, model_kwargs=MODEL_KWARGS.get(model), **settings)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def generate(settings, cache_dir):
    """The cell's data: the generator's samples, with 1-axis Dirichlet values taken from the target per sample."""
    import boon_ext.datasets as ds

    n_total = sum(settings["sizes"])
    problem = getattr(ds, settings["generator"])(n_total, cache_dir=cache_dir, **settings["kwargs"])
    if settings["generator"] != "lid_driven_cavity":  # the cavity's values are the target's already, per frame
        problem, _ = values_from_target(problem)
    kinds = tuple(sorted({c["type"] for c in problem.boundary}))
    if kinds != PROBLEMS[settings["problem"]]["kinds"]:
        raise RuntimeError(f"{settings['problem']}: the generator's conditions are {kinds}, PROBLEMS says "
                           f"{PROBLEMS[settings['problem']]['kinds']}")
    return problem


def split_indices(problem, settings):
    """``(train, val, test)`` indices: generation order (iid), or sorted by the parameter (lowest train)."""
    n_train, n_val, n_test = settings["sizes"]
    if settings["order_by"] is None:
        order = list(range(n_train + n_val + n_test))
    else:
        order = problem.parameter_order(settings["order_by"]).tolist()
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:n_train + n_val + n_test]


def wall_axes(problem):
    """The axes (negative) that carry walls."""
    return sorted({c.get("dim", -1) for c in problem.boundary})


def wall_channels(x, boundary, boundary_values):
    """The wall-input FNO's extra channels: :func:`boon_ext.wall_channels` (per condition, face and output channel,
    the face's prescribed values broadcast along the wall-normal axis; ``C`` in = ``C`` out on every problem here)."""
    from boon_ext import wall_channels as channels

    return channels(x, boundary, boundary_values, out_channels=x.shape[1])


class WallInputFNO(nn.Module):
    """neuralop's FNO given the wall values as extra input channels (:func:`wall_channels`)."""

    takes_boundary_values = True  # metrics._call passes it the boundary values

    def __init__(self, boundary, in_channels, out_channels, **arch):
        super().__init__()
        from neuralop.models import FNO

        self.boundary = copy.deepcopy(boundary)
        from boon_ext import n_wall_channels

        self.n_extra = n_wall_channels(boundary, len(arch["n_modes"]), in_channels)
        self.fno = FNO(in_channels=in_channels + self.n_extra, out_channels=out_channels, **arch)

    def forward(self, x, boundary_values=None):
        return self.fno(torch.cat([x, wall_channels(x, self.boundary, boundary_values or {})], dim=1))


def _copy_fno_weights(src, dst, n_in, n_extra):
    """Copy ``src`` (an FNO) into ``dst`` (the wall-input FNO's FNO): identical weights, with zero weights for the
    extra input channels in the lifting's first layer (its input is ``[x, walls, grid]``)."""
    s_state, d_state = src.state_dict(), dst.state_dict()
    for k, v in d_state.items():
        if not isinstance(v, torch.Tensor):
            continue
        w = s_state[k]
        if w.shape == v.shape:
            v.copy_(w)
        elif k.startswith("lifting.") and w.ndim >= 2 and v.shape[1] == w.shape[1] + n_extra:
            v.zero_()
            v[:, :n_in] = w[:, :n_in]
            v[:, n_in + n_extra:] = w[:, n_in:]
        else:
            raise RuntimeError(f"the wall-input FNO's {k} has shape {tuple(v.shape)}, the FNO's {tuple(w.shape)}")
    dst.load_state_dict(d_state)


def build_model(model, problem, arch, seed):
    """The same FNO architecture, plain, with wall inputs or wrapped by BOON, from the same initial weights."""
    from neuralop.models import FNO

    c = problem.x.shape[1]
    tdim = -1 if problem.times is not None and problem.x.ndim >= 4 else None
    kwargs = dict(in_channels=c, out_channels=problem.y.shape[1], **arch)
    torch.manual_seed(seed)
    if model == "fno":
        return FNO(**kwargs)
    if model == "fno_walls":
        fno = FNO(**kwargs)
        wrapped = WallInputFNO(problem.boundary, **kwargs)
        _copy_fno_weights(fno, wrapped.fno, c, wrapped.n_extra)
        return wrapped
    if model not in MODEL_KWARGS:
        raise ValueError(f"model must be a trained model of {TRAINED_MODELS}, got {model!r}")
    return build_boon(problem.boundary, tdim, **MODEL_KWARGS[model], **kwargs)


def enforced(fno, problem):
    """The trained FNO wrapped with output enforcement (no training): ``fno_enforced``."""
    from boon_ext import BOONFNO

    tdim = -1 if problem.times is not None and problem.x.ndim >= 4 else None
    return BOONFNO.from_fno(fno, boundary=problem.boundary, time_dim=tdim)
