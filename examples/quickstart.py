"""Quickstart: where a boundary method pays (the lid-driven cavity), then exact fluxes and exact conservation.

Both problems are generated here; nothing is downloaded.

1. Where BOON pays: the lid-driven cavity. The operator maps a cavity's initial flow (u, v) to 10 frames up to
   t = 2 while the lid moves at the sample's speed U (Re = U / nu, 50-150); the walls are known (no slip, u = U on
   the lid), so exact walls can remove the FNO's error there. An FNO and a BOON-FNO (the package's default,
   exact output enforcement; same architecture, initial weights and batches) are trained alike, and the trained
   FNO is also wrapped as it is (``BOONFNO.from_fno``, no retraining). The figure, ``quickstart.png``, shows where
   the FNO's error sits, the test errors and the error over time. At this size (100 training flows, 30 epochs) the
   numbers are not converged; ``--seed`` repeats the training from other initial weights and batch orders, and
   the hard-regime campaign trains the same cavity at a larger size to the end of its schedule
   (``docs/boon_results.md``).
2. Exactness on the 1-D heat equation u_t = k u_xx on [0, 1] with an insulated left end, u_x(0, t) = 0, and a
   prescribed heat flux at the right end, u_x(1, t) = U sin(pi t), where U is the flux amplitude of the sample
   (drawn uniformly from [0.5, 2]). The operator maps u(., 0) to u(., T), T = 0.5, so the right-end flux at T is
   U sin(pi T) = U.

   - BOON: the BOON-FNO satisfies both flux conditions exactly; so does the trained FNO wrapped as it is, whose
     interior predictions stay the FNO's own. An exact flux fixes the slope at a wall, not the values there, so
     the accuracy stays the FNO's.
   - ProbConserv: the FNO's prediction, with a per-node variance estimated from its training residuals, is
     updated so that the total heat equals its exact value (initial total plus the heat that entered through
     the right end) and both flux conditions hold: three linear constraints (the total and the two flux rows),
     satisfied exactly. The figure is ``quickstart_heat.png``.

    python examples/quickstart.py            # about 2 minutes on one CPU core
    python examples/quickstart.py --quick    # a few seconds, for a smoke test

Prints a table per problem and writes ``quickstart.png``, ``quickstart_heat.png`` and ``quickstart.json`` (both
problems' results) to ``--out`` (default outputs/quickstart). The README's figure, ``docs/images/quickstart.png``,
and the guide's ``docs/images/quickstart_heat.png`` are those of a full run (seeded: the same numbers on the same
torch build).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import torch  # noqa: E402
from neuralop.losses import LpLoss  # noqa: E402
from neuralop.models import FNO  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from boon_ext import BOONFNO, boundary_error, one_sided_derivative, wall_error_share  # noqa: E402
from boon_ext.datasets import heat_neumann, lid_driven_cavity  # noqa: E402
from probconserv_ext import (LinearConstraint, ProbConserv, boundary_constraint, conservation_constraint,  # noqa: E402
                             stack_constraints)

warnings.filterwarnings("ignore", category=UserWarning)

SWING_NOTE = (
    "- next to a wall the curves in quickstart_heat.png may still bend: an exact flux fixes the one-sided slope at\n"
    "  the face (the end node against the two behind it), not the nodes behind it, which are the network's own;\n"
    "  spectral layers fit a non-periodic field with a small ripple near its ends. ProbConserv moves the nodes where\n"
    "  the FNO's error variance is large, the three of each flux stencil included.")
WALL_NOTE = ("du/dx = 0 here means (-3 u0 + 4 u1 - u2) / (2h) = 0 on the\n"
             "grid, which the constrained models meet exactly: it sets the\n"
             "end node u0 from the two behind it. Those nodes are the\n"
             "network's own, so the ripple a spectral network leaves next\n"
             "to a non-periodic wall stays: the curves bend behind the\n"
             "wall node although its flux is exact.")


def train(model, problem, train_idx, epochs, batch_size, label, boundary_values=True, lr=1e-3, halvings=3, seed=0):
    """Adam + step decay on the relative L2 loss, as in the BOON paper; returns seconds spent.

    The learning rate starts at ``lr`` and halves ``halvings`` times over the run; the batches come in the same
    order for every model trained with the same ``seed``.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // halvings), gamma=0.5)
    loss_fn = LpLoss(d=problem.x.ndim - 2, p=2)
    g = torch.Generator().manual_seed(seed)  # same batches for every model
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), desc=f"training {label:8s}", unit="epoch")
    for _ in bar:
        perm = train_idx[torch.randperm(len(train_idx), generator=g)]
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i: i + batch_size]
            kw = {}
            if boundary_values:
                kw["boundary_values"] = {k: v[idx] for k, v in problem.boundary_values.items()}
            out = model(problem.x[idx], **kw)
            loss = loss_fn(out, problem.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        sched.step()
        # the training loss per sample: LpLoss sums the relative L2 of each output channel (the cavity has two)
        bar.set_postfix(loss=f"{total / len(train_idx):.4f}")
    return time.perf_counter() - t0


def paired_models(arch, boundary, seed, time_dim=None):
    """An FNO and a BOON-FNO (the package's default, exact output enforcement; the paper's kernel correction is
    opt-in) with the same architecture and the same initial weights, drawn from ``seed``."""
    torch.manual_seed(seed)  # each problem's initial weights are its own, not a consequence of what ran before
    fno = FNO(**arch)
    boon = BOONFNO(**arch, boundary=boundary, time_dim=time_dim)
    initial = fno.state_dict()
    initial.pop("_metadata", None)
    boon.load_state_dict(initial)  # strict: every FNO weight, and nothing else, is BOON's
    print(f"conditions: {boon.boundary}")
    return fno, boon


def train_pair(fno, boon, problem, train_idx, epochs, **fit):
    """Train both models alike (``fit``: :func:`train`'s options; the FNO alone gets no boundary values), leave
    them in eval mode and return the seconds each took."""
    seconds = {"FNO": train(fno, problem, train_idx, epochs, label="FNO", boundary_values=False, **fit),
               "BOON-FNO": train(boon, problem, train_idx, epochs, label="BOON-FNO", **fit)}
    fno.eval()
    boon.eval()
    return seconds


def relative_l2(pred, y):
    return float(((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean())


STYLES = {"FNO": dict(color="C1", marker="o", ms=3, ls="none"),
          "BOON-FNO": dict(color="C0", marker="x", ms=5, ls="none"),
          "FNO wrapped by BOON": dict(color="C3", marker="s", ms=6, mfc="none", ls="none"),
          "FNO + ProbConserv": dict(color="C2", marker="+", ms=7, ls="none")}


def tick_label(name):
    """A model's name broken over two lines for a bar chart's axis."""
    return name.replace(" wrapped ", "\nwrapped ").replace(" + ", " +\n")


def error_bars(a, results, names, styles, claim):
    """Bar chart of the models' test errors, each bar labelled with its value; ``claim`` ends the title."""
    errors = [results[name]["rel_l2"] for name in names]
    bars = a.bar(range(len(names)), errors, color=[styles[name]["color"] for name in names])
    for bar, e in zip(bars, errors):
        a.text(bar.get_x() + bar.get_width() / 2, e, f"{e:.3f}", ha="center", va="bottom", fontsize=9)
    a.set_xticks(range(len(names)), [tick_label(name) for name in names], fontsize=8)
    a.set_title(f"Test error (relative L2): {claim}", fontsize=10)
    a.set_ylabel("relative L2 error, test set")
    a.set_ylim(0, 1.2 * max(errors))


def save(fig, path, title):
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(path, problem, results, pred, y, values, total, w, h):
    """The figure: what the FNO gets wrong and the constrained models get right, then the error, then the walls.

    Top row: the boundary fluxes of every test sample (where the FNO breaks the physics) and the heat total's
    error; bottom row: the test error of every model (ProbConserv's reduction) and one sample next to each wall.
    """
    n_test, n_points = y.shape[0], y.shape[-1]
    fig, ax = plt.subplots(2, 3, figsize=(16, 9.5))
    for j, (side, label) in enumerate([("left", "x = 0, insulated: du/dx = 0"),
                                       ("right", "x = 1, prescribed: du/dx = U sin(pi T)")]):
        a = ax[0, j]
        target = torch.zeros(n_test) if side == "left" else values["right"]
        order = torch.argsort(target)
        a.plot(target[order], "k-", lw=2, label="prescribed")
        for name, u in pred.items():
            a.plot(one_sided_derivative(u[:, 0], side, h)[order], label=name, **STYLES[name])
        a.set_title(f"Boundary flux at {label}", fontsize=10)
        a.set_xlabel("test sample (sorted by prescribed flux)")
        a.set_ylabel("du/dx (one-sided stencil)")
        a.legend(fontsize=7.5, loc="upper left", framealpha=0.9)
    a = ax[0, 2]
    floor = 1e-9
    for name, u in pred.items():
        err = ((u[:, 0].double() @ w) - total).abs().clamp_min(floor)
        a.semilogy(err, label=name, **STYLES[name])
    a.axhline(floor, color="0.6", lw=0.8)
    a.text(0.02, floor * 2.5, f"errors below {floor:.0e} drawn on this line", fontsize=7, color="0.4",
           transform=a.get_yaxis_transform())
    a.set_title("Heat total: |integral of u(x, T) - exact total|", fontsize=10)
    a.set_xlabel("test sample")
    a.set_ylabel("absolute error (log scale)")
    a.legend(fontsize=7.5, loc="center right", framealpha=0.9)

    gain = results["FNO"]["rel_l2"] / results["FNO + ProbConserv"]["rel_l2"]
    error_bars(ax[1, 0], results, list(pred), STYLES, f"ProbConserv cuts the FNO's by {gain:.1f}x")

    k = 0
    xs = problem.grid.numpy()
    zoom = max(4, n_points // 8)
    for j, (sl, label) in enumerate([(slice(0, zoom), "x = 0"), (slice(n_points - zoom, n_points), "x = 1")]):
        a = ax[1, 1 + j]
        a.plot(xs[sl], y[k, 0, sl], "k-", lw=2, label="exact")
        for name, u in pred.items():
            a.plot(xs[sl], u[k, 0, sl], **{**STYLES[name], "ls": "-", "lw": 0.8}, label=name)
        a.set_title(f"Next to the wall at {label}: test sample {k} (zoomed)", fontsize=10)
        a.set_xlabel("x")
        a.set_ylabel("temperature u(x, T)")
        # x = 0: below the note, beside the curves (they end low on the right); x = 1: under the exact curve
        a.legend(fontsize=7, framealpha=0.9,
                 **(dict(loc="upper right", bbox_to_anchor=(1.0, 0.64)) if j == 0 else dict(loc="lower left")))
        if j == 0:  # room above the curves for the note that explains them
            low, high = a.get_ylim()
            a.set_ylim(low, high + 0.8 * (high - low))
            a.text(0.02, 0.97, WALL_NOTE, transform=a.transAxes, fontsize=7.5, va="top",
                   bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    save(fig, path, "Heat equation u_t = k u_xx on [0, 1], insulated at x = 0, heat flux U sin(pi t) entering at "
                    "x = 1 (U: the sample's flux amplitude). FNO vs the constrained models, same data and training")


CAVITY_STYLES = {"FNO": dict(color="C1"), "FNO wrapped by BOON": dict(color="C3"), "BOON-FNO": dict(color="C0")}


def wall_mask(shape):
    """True at the wall nodes (the outer ring of the two spatial axes, every frame) of a ``(S, C, N, N, T)`` field."""
    mask = torch.ones(shape[2:4], dtype=torch.bool)
    mask[1:-1, 1:-1] = False
    return mask[None, None, :, :, None].expand(shape)


def cavity_metrics(u, y, values, boundary):
    """The cavity's errors.

    Parameters
    ----------
    u, y : torch.Tensor
        Prediction and target, ``(S, C, N, N, T)``.
    values, boundary
        The walls' values and conditions, as the models receive them.

    Returns
    -------
    dict
        Relative L2 overall (mean over samples); its parts at the wall nodes and inside (``||e_region|| / ||y||``
        per sample, whose squares add up to the sample's squared error; means over samples); the pooled share of
        the squared error at the wall nodes and the share of nodes they are (``boon_ext.wall_error_share``); the
        relative L2 per frame (mean over samples); the largest wall-value error.
    """
    err, walls = u - y, wall_mask(y.shape)
    norm = y.flatten(1).norm(dim=1)

    def part(mask):
        return float(((err * mask).flatten(1).norm(dim=1) / norm).mean())

    per_frame = (err.flatten(1, 3).norm(dim=1) / y.flatten(1, 3).norm(dim=1)).mean(0)  # (T,)
    walls_hold = wall_error_share(u, y, boundary, values, time_dim=-1)  # what exact walls can remove of u's error
    return dict(rel_l2=relative_l2(u, y), rel_l2_walls=part(walls), rel_l2_interior=part(~walls),
                share_walls=walls_hold.error_share, wall_node_fraction=walls_hold.node_share,
                rel_l2_over_time=per_frame.tolist(),
                boundary_error=float(boundary_error(u, boundary, values, time_dim=-1)))


def plot_cavity(path, problem, results, pred, y):
    """The lead figure: where a boundary method pays (the cavity), what the walls hold and how the gain arises."""
    k, frame = 0, -1
    times = problem.times.numpy()
    fig, ax = plt.subplots(2, 3, figsize=(16, 9.5))
    err = {name: (u[k, 0, :, :, frame] - y[k, 0, :, :, frame]).abs() for name, u in pred.items()}
    vmax = float(max(e.max() for e in err.values()))
    panels = [(f"Target: horizontal velocity u at t = {times[frame]:.1f}", y[k, 0, :, :, frame], "RdBu_r", None)]
    panels += [(f"|error| of the {name}", err[name], "magma", (0.0, vmax)) for name in ("FNO", "BOON-FNO")]
    for a, (title, field, cmap, lim) in zip(ax[0], panels):
        if lim is None:
            m = float(field.abs().max())
            lim = (-m, m)
        im = a.imshow(field.T.numpy(), origin="lower", extent=(0, 1, 0, 1), cmap=cmap, vmin=lim[0], vmax=lim[1])
        fig.colorbar(im, ax=a, fraction=0.046)
        a.set_title(f"{title} (test sample {k})", fontsize=10)
        a.set_xlabel("x")
        a.set_ylabel("y (lid at y = 1)")

    names = list(pred)
    gain = results["FNO"]["rel_l2"] / results["BOON-FNO"]["rel_l2"]
    error_bars(ax[1, 0], results, names, CAVITY_STYLES, f"BOON's default cuts the FNO's by {gain:.2f}x")

    a = ax[1, 1]
    for n in names:
        a.plot(times, results[n]["rel_l2_over_time"], "-o", ms=3, label=n, **CAVITY_STYLES[n])
    a.set_title("Error over time (mean over the test set)", fontsize=10)
    a.set_xlabel("t")
    a.set_ylabel("relative L2 error of the frame")
    a.set_ylim(bottom=0)
    a.legend(fontsize=8)

    a = ax[1, 2]
    width = 0.38
    for j, (key, label) in enumerate([("rel_l2_walls", "at the wall nodes"), ("rel_l2_interior", "inside")]):
        vals = [results[n][key] for n in names]
        a.bar([i + (j - 0.5) * width for i in range(len(names))], vals, width, label=label,
              color=[CAVITY_STYLES[n]["color"] for n in names], alpha=1.0 if j == 0 else 0.45,
              edgecolor="k", hatch=None if j == 0 else "//")
    a.set_xticks(range(len(names)), [tick_label(n) for n in names], fontsize=8)
    fno_r = results["FNO"]
    a.set_title(f"Where the error sits: the wall nodes, {100 * fno_r['wall_node_fraction']:.0f}% of the nodes,\n"
                f"hold {100 * fno_r['share_walls']:.0f}% of the FNO's squared error", fontsize=10)
    a.set_ylabel("||error in region|| / ||target||, test mean")
    a.set_ylim(0, 1.35 * max(max(results[n]["rel_l2_walls"], results[n]["rel_l2_interior"]) for n in names))
    handles = [Patch(facecolor="0.35", edgecolor="k", label="at the wall nodes"),
               Patch(facecolor="0.8", edgecolor="k", hatch="//", label="inside")]
    a.legend(handles=handles, fontsize=8, loc="upper center", ncol=2)  # neutral swatches: the colours are models
    save(fig, path, f"Lid-driven cavity, (u, v) from the initial flow to {len(times)} frames up to t = {times[-1]:g}; "
                    "no-slip walls and a lid moving at the sample's speed (Re 50-150).\nFNO, the trained FNO "
                    "wrapped by BOON, and BOON's default trained alike (same data, initial weights and batches)")


def cavity_part(quick, out, seed=0):
    """Where BOON pays: the lid-driven cavity, whose walls (no slip, and the moving lid) are known. Writes
    ``quickstart.png`` to ``out`` and returns the results per model (:func:`cavity_metrics`)."""
    n_train, n_test, n_points, n_times = (12, 4, 8, 4) if quick else (100, 50, 18, 10)
    epochs = 2 if quick else 30
    print(f"generating {n_train + n_test} lid-driven cavity flows on {n_points} x {n_points} nodes, {n_times} frames "
          "(vorticity-streamfunction solver) ...")
    problem = lid_driven_cavity(n_train + n_test, n_points=n_points, n_times=n_times, t_final=2.0, refine=2,
                                fields="velocity", seed=0)
    train_idx, test_idx = torch.arange(n_train), torch.arange(n_train, n_train + n_test)
    # neuralop keeps n_modes[i] centred modes along a spatial axis (8 of the 18 here) and n_modes[-1] // 2 + 1 rfft
    # modes along the last one, time (4 of the 10 frames' 6). time_dim=-1: the walls hold at every frame.
    arch = dict(n_modes=(8, 8, n_times // 2 + 1), in_channels=2, out_channels=2, hidden_channels=16, n_layers=4)
    fno, boon = paired_models(arch, problem.boundary, seed, time_dim=-1)
    seconds = train_pair(fno, boon, problem, train_idx, epochs, batch_size=10, lr=2e-3, halvings=4, seed=seed)
    wrapped = BOONFNO.from_fno(copy.deepcopy(fno), boundary=problem.boundary, time_dim=-1).eval()
    x, y = problem.x[test_idx], problem.y[test_idx]
    values = {k: v[test_idx] for k, v in problem.boundary_values.items()}
    with torch.no_grad():
        pred = {"FNO": fno(x), "FNO wrapped by BOON": wrapped(x, boundary_values=values),
                "BOON-FNO": boon(x, boundary_values=values)}
    results = {n: dict(cavity_metrics(u, y, values, problem.boundary), train_seconds=seconds.get(n, 0.0))
               for n, u in pred.items()}

    print(f"\nTest set: {n_test} flows; relative L2 error over every node and frame, and its parts at the wall nodes "
          "and inside\n(per sample their squares add up; means over the samples); the walls' share of the squared "
          "error.")
    print("\n| model | rel. L2 | at the walls | inside | walls' share | max wall-value error | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n, r in results.items():
        print(f"| {n} | {r['rel_l2']:.4f} | {r['rel_l2_walls']:.4f} | {r['rel_l2_interior']:.4f} | "
              f"{100 * r['share_walls']:.0f}% | {r['boundary_error']:.1e} | {r['train_seconds']:.0f} |")
    fno_r, wrapped_r, boon_r = results["FNO"], results["FNO wrapped by BOON"], results["BOON-FNO"]
    nodes, share = 100 * fno_r["wall_node_fraction"], 100 * fno_r["share_walls"]
    wrapped_gain, boon_gain = fno_r["rel_l2"] / wrapped_r["rel_l2"], fno_r["rel_l2"] / boon_r["rel_l2"]
    print(f"- the wall nodes are {nodes:.0f}% of the nodes and hold {share:.0f}% of the FNO's squared error. Their "
          "values are known (the lid's\n  speed, no slip elsewhere): written into the trained FNO's output they "
          f"remove that part ({wrapped_gain:.2f}x); trained with\n  them, BOON's default also errs less inside "
          f"({fno_r['rel_l2_interior']:.4f} -> {boon_r['rel_l2_interior']:.4f}): {boon_gain:.2f}x in all. On a finer "
          "grid the walls are fewer of the nodes.\n- on the heat problem below the walls are Neumann: an exact flux "
          "fixes a slope, not values, and the accuracy\n  stays the FNO's.")
    plot_cavity(out / "quickstart.png", problem, results, pred, y)
    return results


def heat_part(quick, out, seed=0):
    """Exactness: BOON's fluxes and ProbConserv's total on the heat problem. Writes ``quickstart_heat.png`` to
    ``out`` and returns the results per model."""
    n_train, n_test, n_points = (48, 16, 64) if quick else (400, 100, 128)
    epochs = 3 if quick else 45
    t_final, diffusivity = 0.5, 0.1
    print(f"\ngenerating {n_train + n_test} heat-equation solutions on {n_points} nodes (Crank-Nicolson) ...")
    problem = heat_neumann(n_train + n_test, n_points=n_points, t_final=t_final, diffusivity=diffusivity,
                           flux_amplitude=(0.5, 2.0), seed=0)
    train_idx, test_idx = torch.arange(n_train), torch.arange(n_train, n_train + n_test)

    # -- 1. BOON ------------------------------------------------------------------------------------
    arch = dict(n_modes=(16,), in_channels=1, out_channels=1, hidden_channels=32, n_layers=4)
    fno, boon = paired_models(arch, problem.boundary, seed)
    seconds = train_pair(fno, boon, problem, train_idx, epochs, batch_size=20, seed=seed)
    x, y = problem.x[test_idx], problem.y[test_idx]
    values = {k: v[test_idx] for k, v in problem.boundary_values.items()}
    # The trained FNO wrapped as it is: output enforcement, its own layers (the default of from_fno).
    wrapped = BOONFNO.from_fno(copy.deepcopy(fno), boundary=problem.boundary).eval()
    seconds["FNO wrapped by BOON"] = 0.0
    with torch.no_grad():
        pred = {"FNO": fno(x), "BOON-FNO": boon(x, boundary_values=values),
                "FNO wrapped by BOON": wrapped(x, boundary_values=values)}
    h = 1.0 / (n_points - 1)
    results = {}
    for name, u in pred.items():
        results[name] = dict(
            rel_l2=relative_l2(u, y),
            rel_l2_interior=relative_l2(u[..., 1:-1], y[..., 1:-1]),
            boundary_error=float(boundary_error(u, problem.boundary, values)),
            boundary_error_relative=float(boundary_error(u, problem.boundary, values, relative=True)),
            train_seconds=seconds[name],
        )

    # -- 2. ProbConserv -------------------------------------------------------------------------------
    # Total heat at T: initial total plus the heat that entered through the right end, k * int_0^T U sin(pi t).
    grid = problem.grid.to(torch.float64)
    U = problem.boundary_values["right"].to(torch.float64) / math.sin(math.pi * t_final)
    w = conservation_constraint(grid).G[0]
    total0 = problem.x[:, 0].to(torch.float64) @ w
    total_T = total0 + diffusivity * U * (1 - math.cos(math.pi * t_final)) / math.pi
    # One posterior for the total and the walls: the heat total's row, then the spec's two flux rows (its
    # second-order one-sided du/dx; the left value is the spec's constant 0, the right one each sample's own).
    walls = boundary_constraint(problem.boundary, grid, {"right": problem.boundary_values["right"]})
    constraint = stack_constraints(conservation_constraint(grid, total=total_T), walls)
    with torch.no_grad():
        residual = fno(problem.x[train_idx]) - problem.y[train_idx]
    variance = residual[:, 0].double().pow(2).mean(0) + 1e-12  # per-node error variance of the FNO
    layer = ProbConserv(LinearConstraint(constraint.G))  # the rows; each test sample's b is given at the call
    prior_mean = pred["FNO"][:, 0].double()
    post = layer(prior_mean, variance=variance.expand_as(prior_mean), b=constraint.b[test_idx])
    u_pc = post.mean.float()[:, None, :]
    cons = lambda u: ((u[:, 0].double() @ w) - total_T[test_idx]).abs()  # noqa: E731
    results["FNO + ProbConserv"] = dict(
        rel_l2=relative_l2(u_pc, y), rel_l2_interior=relative_l2(u_pc[..., 1:-1], y[..., 1:-1]),
        boundary_error=float(boundary_error(u_pc, problem.boundary, values)),
        boundary_error_relative=float(boundary_error(u_pc, problem.boundary, values, relative=True)), train_seconds=0.0)
    for name, u in [*pred.items(), ("FNO + ProbConserv", u_pc)]:
        results[name]["conservation_error"] = float(cons(u).max())
    target = dict(conservation_error=float(cons(y).max()),
                  boundary_error=float(boundary_error(y, problem.boundary, values)),
                  boundary_error_relative=float(boundary_error(y, problem.boundary, values, relative=True)))

    # -- report -----------------------------------------------------------------------------------------
    print(f"\nTest set: {n_test} samples; relative L2 error over all {n_points} nodes and over the interior "
          "(both end nodes left out).")
    print("\n| model | rel. L2 | rel. L2 interior | max flux error | relative flux residual | max heat-total error | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['rel_l2']:.4f} | {r['rel_l2_interior']:.4f} | {r['boundary_error']:.2e} | "
              f"{r['boundary_error_relative']:.1e} | {r['conservation_error']:.2e} | {r['train_seconds']:.0f} |")
    print(f"\nThe exact target itself (Crank-Nicolson solver, trapezoid rule): flux error {target['boundary_error']:.2e}, "
          f"heat-total error {target['conservation_error']:.2e}.")
    print("- flux error: |du/dx - prescribed| by the one-sided stencil; relative flux residual: the same divided by the\n"
          "  size of the stencil's terms, i.e. in units of round-off (float32 eps = 1.2e-7). The stencil multiplies the\n"
          "  float32 rounding of u by 4/(2h), so an exact float32 flux shows an absolute error of about 1e-5 here.\n"
          "- FNO wrapped by BOON: the trained FNO, wrapped without retraining (BOONFNO.from_fno); only the two end nodes\n"
          "  change, so its interior error is the FNO's.\n"
          "- FNO + ProbConserv: the FNO's prediction updated to satisfy three constraints at once: the total heat AND\n"
          "  the two flux rows (du/dx = 0 at x = 0, du/dx = U sin(pi T) at x = 1), hence its exact fluxes too.\n"
          f"{SWING_NOTE}")
    results["exact target"] = target
    plot(out / "quickstart_heat.png", problem, results, {**pred, "FNO + ProbConserv": u_pc}, y, values,
         total_T[test_idx], w, h)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny data and a few epochs (smoke test)")
    p.add_argument("--out", default="outputs/quickstart", help="output folder")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: these small models gain nothing from more, and lose a lot on a "
                        "busy machine)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and the batch order (default 0, the README's figure); the data "
                        "are the same for every seed")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results = {"cavity": cavity_part(args.quick, out, args.seed)}
    results["heat"] = heat_part(args.quick, out, args.seed)
    (out / "quickstart.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out / 'quickstart.png'} (the cavity), {out / 'quickstart_heat.png'} (the heat problem) and "
          f"{out / 'quickstart.json'}")


if __name__ == "__main__":
    main()
