"""Figures of the hard-regime data sets: a few samples per family, the cavity's frames and its Ghia comparison.

    OMP_NUM_THREADS=1 python -m experiments.datasets.plot --out docs/figures/datasets

Writes ``cavity_frames.png`` (vorticity, u, v of one sample at four times, from rest and from a random field),
``cavity_ghia.png`` (centreline profiles against Ghia, Ghia & Shin 1982, from
``results/datasets/cavity_validation.json``), ``wave.png``, ``stokes_spacetime.png``, ``heat_reference.png`` and
``burgers_dirichlet_walls.png``. About a minute on one core.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

from boon_ext.datasets import (  # noqa: E402
    burgers_dirichlet,
    heat_neumann_preset,
    lid_driven_cavity,
    stokes_spacetime,
    wave_equation,
)


def cavity_frames(out):
    fig, axes = plt.subplots(6, 4, figsize=(11, 16), constrained_layout=True)
    for block, initial in enumerate(("rest", "random")):
        p = lid_driven_cavity(2, n_points=33, fields="both", initial=initial, seed=0)
        g = p.grid.numpy()
        frames = [0, 4, 12, 24]  # t = 0 (input), 0.4, 1.04, 2.0
        for row, (c, name, cmap) in enumerate(((0, "vorticity", "RdBu_r"), (1, "u", "viridis"), (2, "v", "PuOr"))):
            for col, f in enumerate(frames):
                ax = axes[3 * block + row, col]
                field = (p.x[0, c, :, :, 0] if col == 0 else p.y[0, c, :, :, f]).numpy()
                lim = np.percentile(np.abs(field), 99) if c == 0 else np.abs(field).max()
                im = ax.pcolormesh(g, g, field.T, cmap=cmap, vmin=-lim if c != 1 else field.min(), vmax=lim,
                                   shading="nearest")
                t = 0.0 if col == 0 else float(p.times[f])
                ax.set_title(f"{initial}, {name}, t = {t:.2f}", fontsize=9)
                ax.set_aspect("equal")
                ax.set_xticks([])
                ax.set_yticks([])
                fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"lid-driven cavity, lid speed {p.params['lid_speed'][0]:.2f} (Re {p.params['reynolds'][0]:.0f}), "
                 "33 x 33 nodes (solved on 65 x 65); vorticity colour range clipped at its 99th percentile "
                 "(the lid corners are singular)", fontsize=9)
    fig.savefig(out / "cavity_frames.png", dpi=80)
    plt.close(fig)


def cavity_ghia(out, validation):
    rec = json.loads(Path(validation).read_text())["ghia"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.5), constrained_layout=True)
    for k, (re, tab) in enumerate(sorted(rec.items(), key=lambda kv: float(kv[0]))):
        col = f"C{k}"
        a.plot(tab["u"], tab["y"], "x", color=col, label=f"Re {re}, this solver ({tab['n_points']}^2)")
        a.plot(tab["u_ghia"], tab["y"], "o", color=col, mfc="none", ms=8, label=f"Re {re}, Ghia et al.")
        b.plot(tab["x"], tab["v"], "x", color=col)
        b.plot(tab["x"], tab["v_ghia"], "o", color=col, mfc="none", ms=8)
    a.set_xlabel("u(0.5, y)")
    a.set_ylabel("y")
    b.set_xlabel("x")
    b.set_ylabel("v(x, 0.5)")
    a.legend(fontsize=7)
    a.set_title("at the published points", fontsize=9)
    b.set_title("(the Re 400 point at x = 0.9063 is a misprint in the table)", fontsize=8)
    fig.savefig(out / "cavity_ghia.png", dpi=90)
    plt.close(fig)


def space_time(out, name, problems, title):
    fig, axes = plt.subplots(len(problems), 3, figsize=(11, 3.2 * len(problems)), constrained_layout=True)
    for r, (label, p) in enumerate(problems):
        g, t = p.grid.numpy(), p.times.numpy()
        for s in range(3):
            ax = axes[r, s]
            y = p.y[s, 0].numpy()
            lim = np.abs(y).max()
            im = ax.pcolormesh(t, g, y, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
            ax.set_title(f"{label}, sample {s}", fontsize=9)
            ax.set_xlabel("t")
            ax.set_ylabel("x")
            fig.colorbar(im, ax=ax)
    fig.suptitle(title, fontsize=10)
    fig.savefig(out / name, dpi=80)
    plt.close(fig)


def lines(out, name, p, title, param):
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    g = p.grid.numpy()
    for s in range(4):
        lab = f"{param} = {p.params[param][s]:.2f}"
        ax[0].plot(g, p.x[s, 0].numpy(), label=lab)
        ax[1].plot(g, p.y[s, 0].numpy(), label=lab)
    ax[0].set_title("input u(x, 0)")
    ax[1].set_title(f"target u(x, {float(p.times[-1]):g})")
    ax[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(out / name, dpi=80)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/figures/datasets")
    ap.add_argument("--validation", default=str(ROOT / "results/datasets/cavity_validation.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cavity_frames(out)
    cavity_ghia(out, args.validation)
    space_time(out, "wave.png", [("Dirichlet", wave_equation(3, n_points=129, walls="dirichlet")),
                                 ("Neumann", wave_equation(3, n_points=129, walls="neumann"))],
               "wave equation u_tt = u_xx from rest: 25 frames up to t = 1")
    space_time(out, "stokes_spacetime.png", [("reference (viscosity 0.1)", stokes_spacetime(3, "reference")),
                                             ("thin layer (viscosity 0.005)", stokes_spacetime(3, "thin_layer"))],
               "space-time Stokes' second problem, 25 frames up to t = 1.2, wall at x = 0 oscillating, N = 129")
    lines(out, "heat_reference.png", heat_neumann_preset(4, n_points=257),
          "heat, reference regime: diffusivity 0.01, flux 5 sin(pi t) at x = 1, u0 = cos(w pi x)", "ic_frequency")
    lines(out, "burgers_dirichlet_walls.png", burgers_dirichlet(4, n_points=257, left=(-1, 1), right=(-1, 1)),
          "Dirichlet Burgers (viscosity 0.1) with wall values drawn per sample in [-1, 1]", "left")
    for f in sorted(out.glob("*.png")):
        print(f)


if __name__ == "__main__":
    main()
