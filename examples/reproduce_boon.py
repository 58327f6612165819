"""Reproduce BOON's claims: FNO against BOON variants on the paper's test problems, at the paper's schedule.

Every model on a problem gets the same data, architecture, initial weights (same seed), optimizer,
learning-rate schedule and batch order. Models (``--models``):

- ``fno``: neuralop's FNO;
- ``boon``: BOON-FNO with the kernel correction T2 in every layer and exact output enforcement;
- ``boon_hidden``: as ``boon``, plus each Dirichlet face's prescribed value written into every hidden channel's
  face node after every layer (``BOONFNO(hidden_values=True)``: this package's version of the per-layer T1 of the
  paper's Dirichlet reference code); defined for Dirichlet problems only, reported as "n/a" elsewhere;
- ``boon_output``: exact output enforcement only (``kernel_correction=False``), face nodes overwritten;
- ``boon_lift``: exact output enforcement only, by the smooth lift over 4 nodes (``lift_width=4``; when wrapping
  trained models, ``examples/wrap_checkpoint_accuracy.py`` over seeds 0-2, it helped on single-step Stokes, was
  neutral on Burgers and cost accuracy on heat and space-time Stokes: ``docs/boon_design.md``).

Full mode follows the paper's reference experiments: 1-D FNO with 16 retained Fourier modes (neuralop's
``n_modes=(31,)``: its last axis keeps ``n // 2 + 1`` rfft modes, so ``(16,)`` keeps 9 and ``(32,)`` 17), width 64,
4 layers; space-time FNO with 12 modes per axis (``n_modes=(24, 23)``: 24 centred along x, 12 rfft along t), width
32; N = 500 intervals (501 nodes; periodic Burgers 129), 500/100 samples (space-time 1000/200), batch 20, Adam lr
1e-3 with weight decay 1e-4, relative L2 loss, Stokes viscosity 0.1, boundary values per sample taken from the
target. Training (``--schedule``):

- ``paper`` (default): 500 epochs, learning rate x0.5 every 50 epochs (12,500 steps on 500 samples);
- ``converge``: the same step decay, stopped once the convergence criterion below holds, but not before
  ``--min-epochs`` (default 300: six halvings of the learning rate, so that a plateau at a large learning rate
  cannot end a run; measured: periodic Burgers' FNO met the criterion at epoch 165, with the learning rate at a
  quarter of its start); cap: the max epochs.

Convergence criterion, checked and reported for every run under either schedule: the best validation error
(relative L2 on a held-out validation set, separate from the test set) improved by less than ``--tol`` (default
1%, relative) over the last ``--patience`` epochs (default 50, one learning-rate step).

Writes to ``--out``: ``results.md`` (the table, with the exact command and git commit above it), ``results.json``,
``runs/<problem>_<model>_s<seed>.json`` per finished run, ``runs/<...>.ckpt.pt`` while a run trains (every
``--checkpoint-every`` epochs; read back weights-only), PNG training curves per problem and model
(``curves_<problem>_<model>.png``: train loss and test error against epoch, every seed) and a solution plot per
problem. ``--resume`` keeps finished runs and continues interrupted ones from their checkpoint; the table is built
from every finished run in ``--out`` with the current settings, so a run split over sessions by ``--problems``,
``--models`` or ``--seeds`` adds up in one folder.

Runs are independent: ``--jobs N`` trains N at once, one process each (``--threads`` torch threads per process),
with the same numbers as one after another. Each run in training holds a claim file (``runs/<name>.claim``), so
separate calls may also share one ``--out``; a claim left by a process that has ended is taken over.

Following and checking a long run: ``--status`` lists every run as finished, in training, interrupted or pending,
with the training time left; ``--verify EPOCHS`` retrains the first epochs of every finished run and checks that
they give the recorded curves bit for bit (same torch build and ``--threads``), i.e. that the committed runs are
what the current code trains; ``--report-only --docs PAGE`` rebuilds the table and writes it, or its summary, into a
page's generated block.

Usage::

    python examples/reproduce_boon.py --quick                          # < 2 min on 2 CPU cores
    nohup python examples/reproduce_boon.py --threads 1 --jobs 2 --resume --schedule converge \
        --out results/boon_full --problems stokes,burgers_dirichlet,heat,burgers_periodic > boon_full.log 2>&1 &

The cost of the full run at these settings is measured by ``examples/estimate_boon_cost.py`` (see
``docs/boon_results.md``); ``--device cuda`` trains on a GPU (metrics are still computed on the CPU).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boon_ext.datasets import (  # noqa: E402
    burgers_dirichlet,
    burgers_periodic,
    heat_neumann,
    stokes_second_problem,
)
from boon_ext.datasets.base import BoundaryProblem  # noqa: E402

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (tests) rather than run as a script
    sys.path.append(str(Path(__file__).resolve().parent))
from _boon_rule import choose_default, load_costs, markdown as decision_markdown, summary_markdown  # noqa: E402

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
    # The paper's reference experiments (see the module docstring).
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


# ------------------------------------------------------------------------------ data
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


# ---------------------------------------------------------------------------- models
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
    from boon_ext import BOONFNO

    time_dim = -1 if problem.x.ndim == 4 else None  # space-time layout (B, C, X, T)
    return BOONFNO(boundary=problem.boundary, time_dim=time_dim, **MODEL_KWARGS[kind], **kwargs)


# --------------------------------------------------------------------------- metrics
def _side_index(side, n):
    return 0 if side == "left" else n - 1


def _face_slope(u, side, h, dim, order):
    """One-sided ``du/dx`` at a face, written out here rather than taken from ``boon_ext``, so that a wrong stencil
    in the package (which enforces the condition with it) cannot hide from the check."""
    n = u.shape[dim]
    nodes = (0, 1, 2) if side == "left" else (n - 1, n - 2, n - 3)
    u0, u1, u2 = (u.select(dim, i) for i in nodes)
    sign = 1.0 if side == "left" else -1.0  # the right face's differences run towards smaller x
    if order == 1:
        return sign * (u1 - u0) / h
    return sign * (-3.0 * u0 + 4.0 * u1 - u2) / (2.0 * h)


def boundary_residual(u, boundary, boundary_values, domain):
    """Largest violation of the plain-config boundary conditions by ``u``, computed here, not by the wrapper.

    Dirichlet: ``|u_b - g|``; Neumann: ``|one-sided stencil - g|`` (second order, or first with ``"order": 1``);
    periodic ``|u_0 - u_N|``.
    """
    u = u.double()
    worst = 0.0
    for cond in boundary:
        dim = cond.get("dim", -1)
        n = u.shape[dim]
        kind = cond["type"]
        if kind == "periodic":
            worst = max(worst, float((u.select(dim, 0) - u.select(dim, -1)).abs().max()))
            continue
        sides = [s for s in ("left", "right") if s in cond] + list(cond.get("faces", []))
        a, b = cond.get("domain", domain)
        h = (b - a) / (n - 1)
        for side in dict.fromkeys(sides):
            if side in cond:
                g = torch.as_tensor(float(cond[side]), dtype=torch.float64)
            else:
                g = boundary_values[side].double()
            face = u.select(dim, _side_index(side, n))
            g = g.reshape(g.shape + (1,) * (face.ndim - g.ndim)) if g.ndim < face.ndim else g
            if kind == "dirichlet":
                res = face - g
            else:
                res = _face_slope(u, side, h, dim, cond.get("order", 2)) - g
            worst = max(worst, float(res.abs().max()))
    return worst


def relative_l2(pred, y, mask=None):
    """Mean over samples of ``||pred - y|| / ||y||`` over the nodes where ``mask`` is True."""
    d = (pred - y).double()
    t = y.double()
    if mask is not None:
        d, t = d * mask, t * mask
    num = d.flatten(1).norm(dim=1)
    den = t.flatten(1).norm(dim=1).clamp_min(1e-30)
    return float((num / den).mean())


def node_masks(shape, band):
    """Boolean masks over the spatial axis (dim 2): interior (end nodes left out) and near-boundary band."""
    n = shape[2]
    idx = torch.arange(n)
    view = (1, 1, n) + (1,) * (len(shape) - 3)
    interior = ((idx > 0) & (idx < n - 1)).view(view)
    near = (((idx >= 1) & (idx <= band)) | ((idx >= n - 1 - band) & (idx <= n - 2))).view(view)
    return interior, near


def to_float64(model):
    """A float64 copy of ``model``; ``Module.double()`` leaves complex (spectral) weights in complex64."""
    model = copy.deepcopy(model)
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_complex():
            t.data = t.data.to(torch.complex128)
        elif t.is_floating_point():
            t.data = t.data.to(torch.float64)
    return model


def _batch_values(problem, idx, dtype=None, device="cpu"):
    if not problem.boundary_values:
        return {}
    return {"boundary_values": {k: v[idx].to(device=device, dtype=dtype or v.dtype)
                                for k, v in problem.boundary_values.items()}}


def _call(model, x, kwargs):
    # FNO takes no boundary values: only BOON models get them.
    return model(x, **kwargs) if getattr(model, "boundary_spec", None) else model(x)


@torch.no_grad()
def predict(model, problem, indices, dtype=torch.float32, batch_size=50):
    """The model's outputs on the samples ``indices``, in ``dtype``, on the CPU."""
    model = model if dtype == torch.float32 else to_float64(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        x = problem.x[idx].to(device=device, dtype=dtype)
        outs.append(_call(model, x, _batch_values(problem, idx, dtype, device)).cpu())
    model.train(was_training)
    return torch.cat(outs)


def evaluate(model, problem, test_idx):
    y = problem.y[test_idx]
    bv = {k: v[test_idx] for k, v in problem.boundary_values.items()}
    pred32 = predict(model, problem, test_idx, torch.float32)
    pred64 = predict(model, problem, test_idx, torch.float64)
    band = max(1, int(round(0.05 * (problem.n_points - 1))))
    interior, near = node_masks(y.shape, band)
    metrics = {
        "rel_l2": relative_l2(pred32, y),
        "rel_l2_interior": relative_l2(pred32, y, interior),
        "rel_l2_near_boundary": relative_l2(pred32, y, near),
        "boundary_error": boundary_residual(pred32, problem.boundary, bv, problem.domain),
        "boundary_error_float64": boundary_residual(pred64, problem.boundary, bv, problem.domain),
        "pred_sample0": np.round(pred32[0, 0].double().numpy(), 7).tolist(),
    }
    if y.ndim == 4:  # space-time: test-mean relative error per output time
        t = y.shape[-1]
        err = (pred32 - y).double().reshape(len(y), -1, t).norm(dim=1) / y.double().reshape(len(y), -1, t).norm(dim=1)
        metrics["rel_l2_over_time"] = err.mean(0).tolist()
    return metrics


# --------------------------------------------------------------------------- training
def convergence(best_curve, patience, tol):
    """Whether the best validation error improved by less than ``tol`` (relative) over the last ``patience`` epochs.

    Parameters
    ----------
    best_curve : sequence of float
        Best validation error so far, per epoch.
    patience : int
    tol : float

    Returns
    -------
    (bool, float or None)
        The criterion, and the relative improvement over the window (None before ``patience + 1`` epochs).
    """
    if len(best_curve) <= patience:
        return False, None
    before, now = best_curve[-1 - patience], best_curve[-1]
    improvement = (before - now) / max(before, 1e-30)
    return improvement < tol, float(improvement)


def _state_for_checkpoint(model):
    state = model.state_dict()
    state.pop("_metadata", None)  # neuralop's metadata holds functions and classes: not weights-only loadable
    return state


def train(model, problem, prob, cfg, seed, schedule, ckpt_path=None, log=None, keys=(), stop_after=None):
    """Adam + step decay on the relative L2 loss, with per-epoch curves and the convergence criterion.

    ``stop_after``: train only the first epochs of the run (:func:`verify_runs`); everything else, the learning
    rate schedule included, is the run's.

    ``keys``: the fingerprints under which a checkpoint at ``ckpt_path`` is resumed (see :func:`resumable_keys`);
    checkpoints are written under the first.

    Returns
    -------
    dict
        ``epochs``, ``train_loss``, ``val_rel_l2``, ``test_rel_l2`` (per epoch), ``converged``,
        ``improvement`` (over the last window), ``stopped_early``, ``train_seconds``.
    """
    from neuralop.losses import LpLoss

    if isinstance(keys, str):  # `in` would test substrings, and keys[0] be one character
        raise TypeError(f"keys: expected a sequence of fingerprints (resumable_keys), got the str {keys!r}")
    device = next(model.parameters()).device
    n_train, n_val, n_test = _sizes(cfg, prob)
    train_idx = torch.arange(n_train)
    val_idx = list(range(n_train, n_train + n_val))
    test_idx = list(range(n_train + n_val, n_train + n_val + n_test))
    loss_fn = LpLoss(d=problem.x.ndim - 2, p=2)  # relative L2, summed over the batch
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg["step_size"], gamma=cfg["gamma"])
    gen = torch.Generator().manual_seed(seed)
    hist = dict(train_loss=[], val_rel_l2=[], test_rel_l2=[], best_val=[], train_seconds=0.0)
    start_epoch = 0
    ck = None
    if ckpt_path is not None and Path(ckpt_path).exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if ck is not None and ck.get("key") not in keys:
        if log:
            log(f"  {Path(ckpt_path).name} was written with other settings: ignored, training from the start")
        ck = None
    if ck is not None:
        model.load_state_dict(ck["model"], strict=True)
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        hist = ck["history"]
        start_epoch = int(ck["epoch"])
        if log:
            log(f"  resumed from {Path(ckpt_path).name} at epoch {start_epoch}")
    converged, improvement = convergence(hist["best_val"], cfg["patience"], cfg["tol"])
    stopped_early = False
    last = cfg["max_epochs"] if stop_after is None else min(int(stop_after), cfg["max_epochs"])
    for epoch in range(start_epoch, last):
        if schedule == "converge" and converged and epoch >= cfg.get("min_epochs", 0):
            stopped_early = True
            break
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for idx in train_idx[torch.randperm(n_train, generator=gen)].split(cfg["batch_size"]):
            x, y = problem.x[idx].to(device), problem.y[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            out = _call(model, x, _batch_values(problem, idx, device=device))
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + len(idx)
        scheduler.step()
        hist["train_seconds"] += time.perf_counter() - t0
        hist["train_loss"].append(total / count)
        val = relative_l2(predict(model, problem, val_idx), problem.y[val_idx])
        hist["val_rel_l2"].append(val)
        hist["test_rel_l2"].append(relative_l2(predict(model, problem, test_idx), problem.y[test_idx]))
        hist["best_val"].append(min(val, hist["best_val"][-1]) if hist["best_val"] else val)
        converged, improvement = convergence(hist["best_val"], cfg["patience"], cfg["tol"])
        every = cfg.get("checkpoint_every", 0)
        if ckpt_path is not None and every and (epoch + 1) % every == 0 and epoch + 1 < cfg["max_epochs"]:
            tmp = Path(str(ckpt_path) + ".tmp")
            torch.save(dict(model=_state_for_checkpoint(model), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), generator=gen.get_state(), history=hist,
                            epoch=epoch + 1, key=keys[0] if keys else None), tmp)
            os.replace(tmp, ckpt_path)  # atomic: an interruption leaves the previous checkpoint intact
        if log and ((epoch + 1) % max(1, cfg["max_epochs"] // 10) == 0):
            log(f"  epoch {epoch + 1}: train {hist['train_loss'][-1]:.4f} val {val:.4f} test "
                f"{hist['test_rel_l2'][-1]:.4f}")
    return dict(epochs=len(hist["train_loss"]), train_loss=hist["train_loss"], val_rel_l2=hist["val_rel_l2"],
                test_rel_l2=hist["test_rel_l2"], converged=bool(converged), improvement=improvement,
                stopped_early=stopped_early, train_seconds=hist["train_seconds"])


# ----------------------------------------------------------------------------- runs
def run_key(cfg, prob, model, schedule, legacy=False):
    """Fingerprint of everything that determines a run (seed aside), to resume only matching runs.

    ``legacy=True``: the fingerprint as computed before ``min_epochs`` existed (see :func:`_valid_under_min_epochs`).
    """
    st = prob == "stokes_spacetime"
    relevant = dict(
        problem=prob, model=model, model_kwargs=MODEL_KWARGS[model], schedule=schedule,
        sizes=_sizes(cfg, prob), n_points=cfg["n_points"][prob], n_times=cfg["n_times"] if st else None,
        arch=architecture(cfg, prob), viscosity=STOKES_VISCOSITY.get(prob),
        **{k: cfg[k] for k in ("batch_size", "max_epochs", "step_size", "gamma", "lr", "weight_decay", "patience",
                               "tol")},
    )
    if not legacy:
        relevant["min_epochs"] = cfg.get("min_epochs", 0)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resumable_keys(cfg, prob, model, schedule):
    """The fingerprints under which a run's checkpoint is resumed: the current one, then the legacy one.

    A checkpoint under the legacy fingerprint is of a run that had not stopped: the current rule, which stops no
    earlier, has it at the same point (see :func:`_valid_under_min_epochs`).
    """
    return run_key(cfg, prob, model, schedule), run_key(cfg, prob, model, schedule, legacy=True)


def _valid_under_min_epochs(record, cfg):
    """Whether a run recorded under the legacy fingerprint is what the current settings would train.

    Before ``min_epochs`` a ``converge`` run stopped at the first epoch the criterion held. Under the current rule
    it stops at the first such epoch from ``min_epochs`` on; so a run that stopped at or after ``min_epochs``, or
    never stopped early, follows the same trajectory to the same end, and only its fingerprint is out of date.
    """
    if record.get("stopped_early") is None or record.get("epochs") is None:
        return False
    return (not record["stopped_early"]) or record["epochs"] >= cfg.get("min_epochs", 0)


def _write_json(path, record):
    """Write ``record`` to ``path`` atomically: an interruption leaves the previous file intact."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def _current(record, path, cfg, prob, model, schedule, write=True):
    """``record`` (read from ``path``) if it has the current settings, updating a legacy fingerprint that still
    holds (in the file too, the old one kept as ``key_before``, unless ``write=False``); else ``None``."""
    key = run_key(cfg, prob, model, schedule)
    if record.get("key") == key:
        return record
    if record.get("key") == run_key(cfg, prob, model, schedule, legacy=True) and _valid_under_min_epochs(record, cfg):
        record = dict(record, key_before=record["key"], key=key)
        if write:
            _write_json(path, record)
        return record
    return None


def finished_run(path, cfg, prob, model, schedule, write=True):
    """The finished run at ``path`` if it has the current settings (see :func:`_current`), else ``None``."""
    if not path.exists():
        return None
    return _current(json.loads(path.read_text()), path, cfg, prob, model, schedule, write)


def _run_name(prob, model, seed):
    return f"{prob}_{model}_s{seed}"


def _git_commit():
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "examples/reproduce_boon.py", "boon_ext"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return (head or "unknown") + (" (with uncommitted changes in boon_ext/ or the script)" if dirty else "")


def _machine():
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores visible, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads")


# ---------------------------------------------------------------------------- report
def _stats(vals):
    a = np.asarray(vals, dtype=float)
    return dict(median=float(np.median(a)), min=float(a.min()), max=float(a.max()))


def summarize(runs, problems, models):
    """Median and min..max over seeds per problem and model; FNO / model factors per seed."""
    summary = {}
    for prob in problems:
        summary[prob] = {}
        for m in models:
            rs = sorted((r for r in runs if r["problem"] == prob and r["model"] == m), key=lambda r: r["seed"])
            if not rs:
                continue
            if any("not_defined" in r for r in rs):
                summary[prob][m] = {"not_defined": rs[0]["not_defined"], "n_seeds": 0}
                continue
            entry = {k: _stats([r[k] for r in rs]) for k in
                     ("rel_l2", "rel_l2_interior", "rel_l2_near_boundary", "train_seconds", "epochs")}
            entry["boundary_error"] = max(r["boundary_error"] for r in rs)
            entry["boundary_error_float64"] = max(r["boundary_error_float64"] for r in rs)
            entry["converged"] = sum(bool(r["converged"]) for r in rs)
            entry["seeds"] = [r["seed"] for r in rs]
            entry["n_seeds"] = len(rs)
            summary[prob][m] = entry
        fno = {r["seed"]: r for r in runs if r["problem"] == prob and r["model"] == "fno"}
        for m in models:
            e = summary[prob].get(m)
            if m == "fno" or not e or "not_defined" in e:
                continue
            per_seed = [fno[r["seed"]]["rel_l2"] / r["rel_l2"]
                        for r in runs if r["problem"] == prob and r["model"] == m and r["seed"] in fno]
            if per_seed:
                e["factor"] = dict(_stats(per_seed), n=len(per_seed))
    return summary


def markdown_table(summary, models):
    lines = [
        "| problem | model | seeds | rel. L2, median [min..max] | interior | near boundary | boundary error f32 / f64 "
        "(max) | FNO / model, median [min..max] | epochs | converged | train s (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    # Three significant digits: converged errors are of order 1e-3, where fixed decimals would hide differences.
    def mm(s, fmt="{:.3g}"):
        return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}..{fmt.format(s['max'])}]"

    for prob, per_model in summary.items():
        for m in models:
            if m not in per_model:
                continue
            e = per_model[m]
            if "not_defined" in e:
                lines.append(f"| {prob} | {MODEL_LABELS[m]} | - | {e['not_defined']} | | | | | | | |")
                continue
            factor = mm(e["factor"], "{:.2f}") if "factor" in e else "-"
            if "factor" in e and e["factor"]["n"] != e["n_seeds"]:  # seeds without an FNO run have no ratio
                factor += f" ({e['factor']['n']} seeds)"
            lines.append(
                f"| {prob} | {MODEL_LABELS[m]} | {e['n_seeds']} | {mm(e['rel_l2'])} | {mm(e['rel_l2_interior'])} | "
                f"{e['rel_l2_near_boundary']['median']:.3g} | {e['boundary_error']:.1e} / "
                f"{e['boundary_error_float64']:.1e} | {factor} | {e['epochs']['median']:.0f} | "
                f"{e['converged']}/{e['n_seeds']} | {e['train_seconds']['median']:.0f} |"
            )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(out_dir, prob, model, runs):
    """Train loss and test error against epoch, one line per seed."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for r in sorted(runs, key=lambda r: r["seed"]):
        ep = np.arange(1, len(r["train_loss"]) + 1)
        axes[0].semilogy(ep, r["train_loss"], label=f"seed {r['seed']}")
        axes[1].semilogy(ep, r["test_rel_l2"], label=f"seed {r['seed']}")
    axes[0].set(xlabel="epoch", ylabel="train loss (relative L2, per sample)", title="training loss")
    axes[1].set(xlabel="epoch", ylabel="test relative L2", title="test error")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"{prob}: {MODEL_LABELS[model]}")
    fig.tight_layout()
    path = Path(out_dir) / f"curves_{prob}_{model}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def plot_solutions(out_dir, prob, problem, test0, runs):
    """Solution and error near the boundaries on test sample 0, for each model's first seed."""
    plt = _plt()
    grid = problem.grid.numpy()
    y = problem.y[test0, 0].double().numpy()
    if y.ndim == 2:
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        times = problem.times.numpy()
        w = max(4, len(grid) // 3)
        axes[2].plot(grid[:w], y[:w, -1], "k-", lw=2, label="truth")
        for r in runs:
            p = np.asarray(r["pred_sample0"])
            axes[0].semilogy(times, r["rel_l2_over_time"], label=MODEL_LABELS[r["model"]])
            axes[1].semilogy(grid, np.abs(p[:, -1] - y[:, -1]) + 1e-16, label=MODEL_LABELS[r["model"]])
            axes[2].plot(grid[:w], p[:w, -1], "--", label=MODEL_LABELS[r["model"]])
        axes[0].set(xlabel="t", ylabel="relative L2 (test mean)", title="error over time")
        axes[1].set(xlabel="y", ylabel="|error| at final time", title="error over space (sample 0)")
        axes[2].set(xlabel="y", title="solution near the oscillating wall (final time)")
        for ax in axes:
            ax.legend(fontsize=7)
    else:
        fig, axes = plt.subplots(2, 2, figsize=(11, 7))
        w = max(4, len(grid) // 8)
        for col, sl in enumerate([slice(0, w), slice(len(grid) - w, len(grid))]):
            axes[0, col].plot(grid[sl], y[sl], "k-", lw=2, label="truth")
            for r in runs:
                p = np.asarray(r["pred_sample0"])
                axes[0, col].plot(grid[sl], p[sl], ".--", label=MODEL_LABELS[r["model"]])
                axes[1, col].semilogy(grid[sl], np.abs(p[sl] - y[sl]) + 1e-16, ".-", label=MODEL_LABELS[r["model"]])
            axes[0, col].set(title=f"solution near the {'left' if col == 0 else 'right'} boundary", xlabel="x")
            axes[1, col].set(title="|error| (floored at 1e-16)", xlabel="x")
            axes[0, col].legend(fontsize=7)
            axes[1, col].legend(fontsize=7)
    fig.suptitle(f"{prob}: test sample 0, seed {runs[0]['seed']}")
    fig.tight_layout()
    path = Path(out_dir) / f"{prob}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


# ------------------------------------------------------------------------- one run
def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def claim_held(path):
    """Whether the claim file ``path`` is held: it exists and its process is alive or on another host.

    An unreadable or half-written claim (its owner is between creating and writing it) counts as held.
    """
    try:
        owner = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    if not isinstance(owner, dict) or owner.get("host") != platform.node() or not isinstance(owner.get("pid"), int):
        return True
    return _pid_alive(owner["pid"])


def claim_run(runs_dir, name):
    """Claim run ``name`` for this process (``runs/<name>.claim``, created atomically); ``None`` if taken.

    Several calls may train into one ``--out`` at once (``--jobs``, or separate commands on other problems,
    models or seeds): a claim keeps two of them from training the same run. A claim left by a process that no
    longer runs on this host (killed, or the session ended) is taken over; one from another host is respected,
    since its process cannot be checked from here.

    Returns
    -------
    Path or None
        The claim file (delete it when the run ends), or ``None`` if a live process holds the run.
    """
    path = Path(runs_dir) / f"{name}.claim"
    host = platform.node()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not claim_held(path):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            return None
        with os.fdopen(fd, "w") as f:
            json.dump(dict(pid=os.getpid(), host=host), f)
        return path
    return None


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


def campaign_status(out, problems, models, cfg, schedule):
    """Where a reproduction stands in ``out``: every selected run finished, in training, or still to train.

    Reads the run files, claims and checkpoints only: it trains, generates and writes nothing. The time left is
    estimated from finished runs, as the median training seconds per epoch of the same problem and model (of the
    problem, any model, where the model has none), times the epochs up to ``max_epochs``. It omits the per-epoch
    evaluation (about a tenth more) and counts every epoch, though ``--schedule converge`` may stop from
    ``min_epochs`` on: an estimate, not a bound.

    Returns
    -------
    list of dict
        One per (seed, model, problem) in training order: ``name``, ``state`` (``"finished"``, ``"training"``,
        ``"interrupted"`` (a checkpoint nobody holds), ``"pending"`` or ``"not defined"``), ``epoch`` (of the
        checkpoint, or the final one), ``rel_l2`` (finished runs) and ``seconds_left`` (``None`` where no run of
        the problem has finished).

    Raises
    ------
    ValueError
        Unknown problem, model or schedule.
    """
    check_selection(problems, models, schedule)
    runs_dir = Path(out) / "runs"
    rates = {}  # (problem, model) -> seconds per epoch of finished runs
    for prob in problems:
        for m in MODELS:
            for path in runs_dir.glob(f"{_run_name(prob, m, '*')}.json"):
                r = finished_run(path, cfg, prob, m, schedule, write=False)
                if r is not None and r.get("epochs"):
                    rates.setdefault((prob, m), []).append(r["train_seconds"] / r["epochs"])

    def rate(prob, m):
        own = rates.get((prob, m)) or [v for (p, _), vs in rates.items() if p == prob for v in vs]
        return float(np.median(own)) if own else None

    rows = []
    for seed, m, prob in training_order(cfg["seeds"], models, problems):
        name = _run_name(prob, m, seed)
        if not defined(m, prob)[0]:
            rows.append(dict(name=name, state="not defined", epoch=None, rel_l2=None, seconds_left=0.0))
            continue
        done = finished_run(runs_dir / f"{name}.json", cfg, prob, m, schedule, write=False)
        if done is not None:
            rows.append(dict(name=name, state="finished", epoch=done.get("epochs"), rel_l2=done.get("rel_l2"),
                             seconds_left=0.0))
            continue
        epoch, ckpt = 0, runs_dir / f"{name}.ckpt.pt"
        if ckpt.exists():
            try:
                ck = torch.load(ckpt, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001  (being replaced at this moment, or damaged: counted from the start)
                ck = {}
            if ck.get("key") in resumable_keys(cfg, prob, m, schedule):  # what train() would resume
                epoch = int(ck.get("epoch", 0))
        held = claim_held(runs_dir / f"{name}.claim")
        state = "training" if held else ("interrupted" if epoch else "pending")
        per_epoch = rate(prob, m)
        left = None if per_epoch is None else per_epoch * (cfg["max_epochs"] - epoch)
        rows.append(dict(name=name, state=state, epoch=epoch, rel_l2=None, seconds_left=left))
    return rows


CURVES = ("train_loss", "val_rel_l2", "test_rel_l2")


def verify_runs(out, problems, models, cfg, schedule, epochs, cache_dir=None, device="cpu", log=None):
    """Retrain the first ``epochs`` epochs of every selected finished run in ``out`` and compare the curves.

    Every run is seeded (initial weights, batch order), so the same code, torch build and thread count give the
    recorded curves bit for bit; a difference means the code, the data or the platform changed since the run.
    Cheap evidence that the committed runs start as the current code trains them, without training them again in
    full. Each run is retrained with the thread count it records (runs from before that was recorded: the
    caller's, which must then be the one they were trained with: 1 in ``--jobs`` campaigns).

    Parameters
    ----------
    out : str or Path
        A reproduction's folder (its ``runs/`` and data cache).
    problems, models : sequence of str
        Which runs to check (those not finished are skipped).
    cfg : dict
        The configuration the runs were trained with (:func:`make_config`).
    schedule : str
        Their schedule.
    epochs : int
        Epochs to retrain per run (fewer where the run stopped earlier).
    cache_dir : str or Path, optional
        Data cache (default ``<out>/data``).

    Returns
    -------
    list of dict
        ``name``, ``epochs`` (compared), ``identical`` (every curve equal bit for bit), ``max_rel_diff`` (over
        the three curves), ``recorded_commit`` and ``seconds``.

    Raises
    ------
    ValueError
        Unknown problem, model or schedule, ``epochs`` below 1, or no finished run in ``out`` with these settings
        (the error lists run files of the selection trained with other settings).
    """
    check_selection(problems, models, schedule)
    if int(epochs) < 1:
        raise ValueError(f"epochs (--verify): expected a positive number of epochs to retrain, got {epochs!r}")
    out = Path(out)
    cache_dir = Path(cache_dir) if cache_dir is not None else out / "data"
    rows, data, other = [], {}, []
    for seed, m, prob in training_order(cfg["seeds"], models, problems):
        name = _run_name(prob, m, seed)
        path = out / "runs" / f"{name}.json"
        record = finished_run(path, cfg, prob, m, schedule, write=False)
        if record is None and path.exists():
            other.append(name)
        if record is None or "not_defined" in record or not record.get("epochs"):
            continue
        n = min(int(epochs), record["epochs"])
        if prob not in data:
            data[prob] = make_problem(prob, cfg, cache_dir)[0]
        problem = data[prob]
        model = build_model(m, problem, architecture(cfg, prob), seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(record.get("threads", threads))
        t0 = time.perf_counter()
        try:
            hist = train(model.to(device), problem, prob, cfg, seed, schedule, stop_after=n)
        finally:
            torch.set_num_threads(threads)
        new = np.array([hist[k][:n] for k in CURVES], dtype=float)
        old = np.array([record[k][:n] for k in CURVES], dtype=float)
        both = np.isfinite(new) & np.isfinite(old)
        diff = np.abs(new - old)[both] / np.maximum(np.abs(old[both]), 1e-30)
        row = dict(name=name, epochs=n, identical=bool(np.array_equal(new, old, equal_nan=True)),
                   max_rel_diff=float(diff.max(initial=0.0)), recorded_commit=record.get("commit"),
                   threads=record.get("threads"), seconds=time.perf_counter() - t0)
        rows.append(row)
        if log:
            log(f"{name}: {n} epochs, " + ("identical" if row["identical"] else
                                           f"differs (max rel. diff {row['max_rel_diff']:.2e})"))
    if not rows:
        raise ValueError(f"out: no finished run in {out} with these settings (schedule {schedule!r}, problems "
                         f"{list(problems)}, models {list(models)}, seeds {cfg['seeds']})"
                         + (f"; trained with other settings: {', '.join(other)}" if other else ""))
    return rows


def verify_text(rows):
    """The rows of :func:`verify_runs` as a table with a one-line count."""
    lines = [f"{'run':36s} {'epochs':>6s} {'identical':>9s} {'max rel. diff':>13s}  recorded at"]
    lines += [f"{r['name']:36s} {r['epochs']:6d} {str(r['identical']):>9s} {r['max_rel_diff']:13.2e}  "
              f"{r['recorded_commit']}" for r in rows]
    lines.append(f"{sum(r['identical'] for r in rows)} of {len(rows)} runs identical")
    return "\n".join(lines)


def status_text(rows, jobs=1):
    """The rows of :func:`campaign_status` as a table with a one-line total."""
    lines = [f"{'run':36s} {'state':12s} {'epoch':>5s} {'rel. L2':>9s} {'h left':>7s}"]
    for r in rows:
        err = "" if r["rel_l2"] is None else f"{r['rel_l2']:.3g}"
        left = "?" if r["seconds_left"] is None else f"{r['seconds_left'] / 3600:.1f}"
        epoch = "" if r["epoch"] is None else str(r["epoch"])
        lines.append(f"{r['name']:36s} {r['state']:12s} {epoch:>5s} {err:>9s} {left:>7s}")
    count = {s: sum(r["state"] == s for r in rows)
             for s in ("finished", "training", "interrupted", "pending", "not defined")}
    known = [r["seconds_left"] for r in rows if r["seconds_left"] is not None]
    unknown = sum(r["seconds_left"] is None for r in rows)
    hours = sum(known) / 3600
    lines.append(", ".join(f"{n} {s}" for s, n in count.items())
                 + f"; about {hours:.1f} core-hours of training left ({hours / max(1, jobs):.1f} h with {jobs} "
                 f"job(s))" + (f", plus {unknown} run(s) of problems with no finished run to estimate from" if unknown
                               else ""))
    return "\n".join(lines)


def train_one(job):
    """Train one (problem, model, seed) and write ``runs/<name>.json``; the unit of work of :func:`run`.

    ``job`` holds ``prob``, ``model``, ``seed``, ``cfg``, ``schedule``, ``runs_dir``, ``cache_dir``, ``device``,
    ``resume``, ``verbose`` and ``commit`` (of the calling process's code; plain values, so that a worker process
    can receive it). Returns the run's name,
    or ``None`` if another process holds it.
    """
    prob, m, seed, cfg, schedule = job["prob"], job["model"], job["seed"], job["cfg"], job["schedule"]
    runs_dir, device = Path(job["runs_dir"]), job["device"]
    name = _run_name(prob, m, seed)
    log = (lambda msg: print(msg, flush=True)) if job["verbose"] else None
    claim = claim_run(runs_dir, name)
    if claim is None:
        if log:
            log(f"{name}: being trained by another process (runs/{name}.claim), skipped")
        return None
    try:
        key = run_key(cfg, prob, m, schedule)
        path = runs_dir / f"{name}.json"
        if job["resume"] and finished_run(path, cfg, prob, m, schedule) is not None:
            if log:  # another process finished it after this call listed it
                log(f"{name}: finished by another process, kept")
            return name
        problem, _ = make_problem(prob, cfg, job["cache_dir"])
        ok, why = defined(m, prob)
        # the thread count too: with another one, the same seeds give other rounding (see verify_runs)
        record = dict(problem=prob, model=m, seed=seed, key=key, device=str(device), threads=torch.get_num_threads())
        if not ok:
            path.write_text(json.dumps(dict(record, not_defined=why)))
            return name
        if log:
            log(f"{name}: training ({schedule}, up to {cfg['max_epochs']} epochs)")
        model = build_model(m, problem, architecture(cfg, prob), seed).to(device)
        ckpt = runs_dir / f"{name}.ckpt.pt"
        if not job["resume"] and ckpt.exists():
            ckpt.unlink()
        hist = train(model, problem, prob, cfg, seed, schedule, ckpt_path=ckpt, log=log,
                     keys=resumable_keys(cfg, prob, m, schedule))
        n_train, n_val, n_test = _sizes(cfg, prob)
        test_idx = list(range(n_train + n_val, n_train + n_val + n_test))
        metrics = evaluate(model, problem, test_idx)
        record.update(hist, **metrics, commit=job.get("commit") or _git_commit())
        _write_json(path, record)
        ckpt.unlink(missing_ok=True)
        Path(str(ckpt) + ".tmp").unlink(missing_ok=True)  # left by a session stopped while writing a checkpoint
        if log:
            log(f"{name}: rel. L2 {metrics['rel_l2']:.4f}, {hist['epochs']} epochs, converged "
                f"{hist['converged']}, {hist['train_seconds']:.0f} s")
        return name
    finally:
        claim.unlink(missing_ok=True)


def _worker_init(threads):
    torch.set_num_threads(threads)


def _train_in_parallel(jobs, n_jobs, threads_per_job):
    """Train ``jobs`` in ``n_jobs`` worker processes of ``threads_per_job`` torch threads each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A worker imports this file by name. When it was loaded from its path rather than run as a script, that
    # name resolves only with its folder on the path, which spawned workers copy from this process.
    here = str(Path(__file__).resolve().parent)
    if __name__ != "__main__" and here not in sys.path:
        sys.path.append(here)
    # "spawn": a forked child would inherit torch's thread pools (unsafe after they have started).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(threads_per_job,)) as pool:
        for future in [pool.submit(train_one, job) for job in jobs]:
            future.result()  # re-raises a worker's exception


# ------------------------------------------------------------------------------ main
def run(problems=PROBLEMS, models=MODELS, quick=False, out=None, seeds=None, max_epochs=None, schedule="paper",
        cache_dir=None, config=None, plots=True, resume=False, command=None, verbose=True, device="cpu", jobs=1,
        threads_per_job=None, report_only=False, costs=None, docs=None):
    """Train every (problem, model, seed) not finished yet and write the report to ``out``.

    Parameters
    ----------
    problems, models : sequence of str
        Subsets of ``PROBLEMS`` and ``MODELS``.
    quick : bool
        Smoke-sized configuration.
    out : str or Path, optional
        Output folder (default ``outputs/boon_quick`` or ``outputs/boon_full``).
    seeds : sequence of int, optional
        Override the configuration's seeds.
    max_epochs : int, optional
        Override the epoch count (the cap under ``schedule="converge"``).
    schedule : {"paper", "converge"}
        Train every epoch, or stop once the convergence criterion holds.
    cache_dir : str or Path, optional
        Data cache (default ``<out>/data``).
    config : dict, optional
        Override configuration entries (used by the smoke test).
    plots : bool
        Write PNGs.
    resume : bool
        Keep finished runs with the same settings and continue interrupted ones from their checkpoints;
        ``False`` retrains every selected run.
    command : str, optional
        Command line recorded in ``results.md``.
    verbose : bool
        Print progress.
    device : str or torch.device
        Where the models train (data move there batch by batch; metrics are computed on the CPU). Runs are
        resumed whatever the device, but CPU and GPU runs differ in round-off.
    jobs : int
        Runs trained at once, each in its own process (``1``: one after another, in this process). Every run
        is deterministic given its seed and thread count, so the numbers do not depend on ``jobs``.
    threads_per_job : int, optional
        Torch threads of each worker process when ``jobs > 1`` (default: the CPU count divided by ``jobs``).
    report_only : bool
        Train nothing: rebuild the table and the plots from the finished runs in ``out``.
    costs : str or Path, optional
        ``benchmark_boon.json`` written by ``examples/benchmark_boon.py``: the training-step costs with which
        the report applies the default-selection rule (``examples/_boon_rule.py``). Without it the report lists
        the verdicts and chooses no default.
    docs : str or Path or sequence of them, optional
        Markdown files whose generated blocks are rewritten, so that a page shows exactly what the finished runs
        give. A block between ``DOCS_BEGIN`` and ``DOCS_END`` (``docs/boon_results.md``) gets the whole report
        (command, commit, table, the rule's verdicts, plots); one between ``SUMMARY_BEGIN`` and ``SUMMARY_END``
        (the README) gets the ratios and verdicts per problem and variant and the outcome
        (:func:`_boon_rule.summary_markdown`). Each file holds one or both.

    Returns
    -------
    dict
        ``{"mode", "schedule", "config", "runs", "summary", "decision", ...}``, as written to ``results.json``.

    Raises
    ------
    ValueError
        Unknown problem, model or schedule, no seeds, ``jobs`` / ``threads_per_job`` below 1, or a ``costs``
        file that does not time every variant in every configuration, or a ``docs`` file without a block.
    """
    training_costs = load_costs(costs)  # read first: a bad file fails before hours of training, not after
    docs = [] if docs is None else [docs] if isinstance(docs, (str, os.PathLike)) else list(docs)
    for page in docs:
        check_docs_block(page)
    n_jobs = int(jobs)
    if n_jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    if threads_per_job is None:
        threads_per_job = max(1, (os.cpu_count() or 1) // n_jobs)
    if int(threads_per_job) < 1:
        raise ValueError(f"threads_per_job must be a positive int, got {threads_per_job!r}")
    threads_per_job = int(threads_per_job)
    check_selection(problems, models, schedule)
    mode = "quick" if quick else "full"
    cfg = make_config(quick, config, seeds, max_epochs)
    out = Path(out or f"outputs/boon_{mode}")
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else out / "data"
    log = print if verbose else None
    t_start = time.perf_counter()
    data_checks = {}
    pending = []  # (problem, model, seed) still to train
    for seed, m, prob in training_order(cfg["seeds"], models, problems):
        name = _run_name(prob, m, seed)
        path = runs_dir / f"{name}.json"
        if resume and path.exists():
            if finished_run(path, cfg, prob, m, schedule) is not None:
                if log:
                    log(f"{name}: finished earlier, kept")
                continue
            if log:
                log(f"{name}: finished earlier with other settings, retrained")
        if not report_only:
            pending.append((prob, m, seed))
    for prob in dict.fromkeys(p for p, _, _ in pending):
        # Generated (or read from the cache) here, once per problem, so parallel workers only read the cache.
        t0 = time.perf_counter()
        _, diff = make_problem(prob, cfg, cache_dir)
        data_checks[prob] = dict(target_vs_generator_face_values=diff, data_seconds=time.perf_counter() - t0)
    # The code these runs train with: taken now, before hours of training in which the tree may change.
    training_commit = _git_commit()
    jobs = [dict(prob=p, model=m, seed=s, cfg=cfg, schedule=schedule, runs_dir=str(runs_dir),
                 cache_dir=str(cache_dir), device=str(device), resume=resume, verbose=verbose,
                 commit=training_commit)
            for p, m, s in pending]
    if n_jobs == 1 or len(jobs) <= 1:
        for job in jobs:
            train_one(job)
    else:
        _train_in_parallel(jobs, n_jobs, threads_per_job)
    # The report covers every finished run in `out` that has the current settings, whichever call trained it.
    runs = []
    for path in sorted(runs_dir.glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("problem") in PROBLEMS and r.get("model") in MODELS:
            r = _current(r, path, cfg, r["problem"], r["model"], schedule)
            if r is not None:
                runs.append(r)
    all_problems = [p for p in PROBLEMS if any(r["problem"] == p for r in runs)]
    all_models = [m for m in MODELS if any(r["model"] == m for r in runs)]
    summary = summarize(runs, all_problems, all_models)
    decision = choose_default(summary, training_costs, expected=problems)  # 3 seeds at least, in every mode
    pngs = {}
    if plots:
        for prob in all_problems:
            trained = [r for r in runs if r["problem"] == prob and "not_defined" not in r]
            for m in all_models:
                rs = [r for r in trained if r["model"] == m]
                if rs:
                    pngs[f"{prob}/{m}"] = plot_curves(out, prob, m, rs)
            first = min((r["seed"] for r in trained), default=None)
            if first is not None:
                problem_plot = generate(prob, cfg, cache_dir)  # from the data cache
                n_train, n_val, _ = _sizes(cfg, prob)
                first_runs = [r for r in trained if r["seed"] == first]
                first_runs.sort(key=lambda r: MODELS.index(r["model"]))
                pngs[prob] = plot_solutions(out, prob, problem_plot, n_train + n_val, first_runs)
    machine = _machine()
    commit = _git_commit()  # the report's code (the runs record the code they trained with)
    command = command or "run(...) called from Python"
    slim = [{k: v for k, v in r.items() if k != "pred_sample0"} for r in runs]
    result = dict(mode=mode, schedule=schedule, command=command, commit=commit, machine=machine,
                  config={k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
                  seconds_this_call=time.perf_counter() - t_start, data_checks=data_checks, runs=slim,
                  summary=summary, decision=decision, costs_file=None if costs is None else str(costs), plots=pngs)
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    criterion = (f"best validation error improved by less than {cfg['tol']:.0%} over the last {cfg['patience']} "
                 f"epochs (under --schedule converge, a run stops once it holds, from epoch {cfg.get('min_epochs', 0)} "
                 "on)")
    header = [
        "",
        f"Command: `{command}`",
        "",
        f"Commit: {commit}. Machine: {machine}.",
        "",
        f"Convergence criterion ('converged' = seeds meeting it at the end): {criterion}.",
        "Relative L2 on the test set; 'FNO / model' is FNO's error divided by the model's, per seed.",
        "",
    ]

    def report(link, top, sub):  # Markdown with headings ``top`` / ``sub``; PNGs linked through ``link(name)``
        return (f"{top} BOON reproduction ({mode} mode, schedule {schedule})\n" + "\n".join(header) + "\n"
                + markdown_table(summary, all_models) + "\n\n" + decision_markdown(decision, MODEL_LABELS, sub)
                + "\n" + "\n".join(f"![{k}]({link(v)})" for k, v in pngs.items()) + "\n")

    (out / "results.md").write_text(report(lambda name: name, "#", "##"))
    for page in docs:  # links relative to the page; the report sits inside a "###" section of it
        rel = os.path.relpath(out.resolve(), Path(page).resolve().parent)
        source = f"[{Path(rel).as_posix()}]({Path(rel, 'results.md').as_posix()})"
        write_docs_blocks(page, dict(
            report=report(lambda name: Path(rel, name).as_posix(), "####", "####"),
            summary=f"Generated by `{command}` at commit {commit} from the finished runs.\n\n"
                    + summary_markdown(decision, summary, MODEL_LABELS, source)))
    return result


DOCS_BEGIN = "<!-- reproduce_boon --docs: begin (generated from the finished runs; do not edit by hand) -->"
DOCS_END = "<!-- reproduce_boon --docs: end -->"
SUMMARY_BEGIN = "<!-- reproduce_boon --docs summary: begin (generated from the finished runs; do not edit by hand) -->"
SUMMARY_END = "<!-- reproduce_boon --docs summary: end -->"
# What each kind of generated block holds (see run()'s ``docs``).
DOCS_BLOCKS = dict(report=(DOCS_BEGIN, DOCS_END), summary=(SUMMARY_BEGIN, SUMMARY_END))


def check_docs_block(docs):
    """The kinds of generated block (keys of ``DOCS_BLOCKS``) that the Markdown file ``docs`` holds.

    Raises ``ValueError`` (naming ``docs``) for an unreadable file, a file with no block, a block whose begin
    and end lines are not there once each, begin first, or blocks that overlap.
    """
    return _read_docs_blocks(docs)[1]


def _read_docs_blocks(docs):
    """``(text, kinds)`` of the Markdown file ``docs`` (see :func:`check_docs_block`)."""
    try:
        text = Path(docs).read_text()
    except OSError as err:
        raise ValueError(f"docs: cannot read {docs}: {err!r}") from err
    kinds, spans = [], []
    for kind, (begin, end) in DOCS_BLOCKS.items():
        if begin not in text and end not in text:
            continue
        if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
            raise ValueError(f"docs: {docs} must hold the line {begin!r} once, followed by {end!r} once; the "
                             f"generated {kind} replaces what lies between them")
        kinds.append(kind)
        spans.append((text.index(begin), text.index(end)))
    if not kinds:
        raise ValueError(f"docs: {docs} holds no generated block; expected the lines "
                         + " or ".join(f"{b!r} ... {e!r}" for b, e in DOCS_BLOCKS.values()))
    if len(spans) == 2 and max(a for a, _ in spans) < min(b for _, b in spans):
        raise ValueError(f"docs: the generated blocks of {docs} overlap; expected one after the other")
    return text, kinds


def write_docs_blocks(docs, bodies):
    """Replace each generated block of ``docs`` (see :func:`check_docs_block`) with ``bodies[kind]``."""
    text, kinds = _read_docs_blocks(docs)
    for kind in kinds:
        begin, end = DOCS_BLOCKS[kind]
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        text = head + begin + "\n\n" + bodies[kind] + "\n" + end + tail
    Path(docs).write_text(text)


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke-sized run (< 2 min on 2 CPU cores)")
    parser.add_argument("--out", default=None, help="output folder (default outputs/boon_quick or outputs/boon_full)")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated subset of {PROBLEMS}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the mode's)")
    parser.add_argument("--schedule", default="paper", choices=SCHEDULES,
                        help="paper: all epochs, x0.5 every 50; converge: stop once the criterion holds")
    parser.add_argument("--max-epochs", type=int, default=None, help="epochs (cap under --schedule converge)")
    parser.add_argument("--patience", type=int, default=None, help="window of the convergence criterion, epochs")
    parser.add_argument("--tol", type=float, default=None, help="relative improvement threshold of the criterion")
    parser.add_argument("--min-epochs", type=int, default=None,
                        help="--schedule converge stops no earlier than this (default 300 in full mode)")
    parser.add_argument("--resume", action="store_true", help="keep finished runs, continue interrupted ones")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 with --quick, torch's choice otherwise)")
    parser.add_argument("--cache-dir", default=None, help="data cache folder (default <out>/data)")
    parser.add_argument("--device", default="cpu", help="torch device to train on (default cpu)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, one process each (default 1); with --threads, threads per run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="override a configuration entry, e.g. --set n_points.stokes_spacetime=129 "
                             "(recorded in results.json; runs with other settings are not mixed)")
    parser.add_argument("--costs", default=None, metavar="JSON",
                        help="benchmark_boon.json of examples/benchmark_boon.py: with it the report applies the "
                             "default-selection rule (examples/_boon_rule.py)")
    parser.add_argument("--docs", action="append", default=None, metavar="MARKDOWN",
                        help="also rewrite this page's generated blocks: the report (docs/boon_results.md) or its "
                             "summary (README.md); may be given more than once")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--status", action="store_true",
                        help="list which runs in --out are finished, in training or to train, with an estimate of "
                             "the training time left (reads run files, claims and checkpoints; writes nothing)")
    parser.add_argument("--verify", type=int, default=None, metavar="EPOCHS",
                        help="retrain the first EPOCHS epochs of every selected finished run in --out and compare "
                             "its curves with the recorded ones (bit for bit with the same torch build and "
                             "--threads); prints a table, writes <out>/verify.json, exits 1 if any differs")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing; rebuild the table and plots from the finished runs in --out")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif args.quick:
        # Small tensors: a second intra-op thread costs more in synchronisation than it gains, and stalls badly
        # when the other core is busy (measured: 281 s with torch's 2 threads next to a busy core, 15 s with 1).
        torch.set_num_threads(1)
    config = parse_overrides(args.set, CONFIGS["quick" if args.quick else "full"])
    if args.patience is not None:
        config["patience"] = args.patience
    if args.tol is not None:
        config["tol"] = args.tol
    if args.min_epochs is not None:
        config["min_epochs"] = args.min_epochs
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",") if s]
    problems, models = [p for p in args.problems.split(",") if p], [m for m in args.models.split(",") if m]
    out = Path(args.out or f"outputs/boon_{'quick' if args.quick else 'full'}")
    if args.status:
        cfg = make_config(args.quick, config, seeds, args.max_epochs)
        rows = campaign_status(out, problems, models, cfg, args.schedule)
        print(status_text(rows, args.jobs))
        return
    command = "python " + shlex.join(["examples/reproduce_boon.py"] + list(sys.argv[1:] if argv is None else argv))
    if args.verify is not None:
        cfg = make_config(args.quick, config, seeds, args.max_epochs)
        rows = verify_runs(out, problems, models, cfg, args.schedule, args.verify, args.cache_dir, args.device,
                           log=lambda msg: print(msg, flush=True))
        (out / "verify.json").write_text(json.dumps(dict(command=command, commit=_git_commit(), machine=_machine(),
                                                         rows=rows), indent=1))
        print(verify_text(rows) + f"; wrote {out / 'verify.json'}")
        if not all(r["identical"] for r in rows):
            sys.exit(1)
        return
    result = run(
        problems=problems, models=models, quick=args.quick, out=out, seeds=seeds, max_epochs=args.max_epochs,
        schedule=args.schedule, cache_dir=args.cache_dir, config=config, plots=not args.no_plots, resume=args.resume,
        command=command, device=args.device, jobs=args.jobs, threads_per_job=args.threads,
        report_only=args.report_only, costs=args.costs, docs=args.docs,
    )
    print(markdown_table(result["summary"], [m for m in MODELS if any(r["model"] == m for r in result["runs"])]))
    print(f"{result['seconds_this_call']:.0f} s this call; wrote {out}")


if __name__ == "__main__":
    main()
